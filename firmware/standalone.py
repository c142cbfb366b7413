"""``--standalone``: the whole recipe as one program image the sequencer runs from start to halt.

The host writes the image — the programs of both networks, their weights, the unlabeled stream,
the labeled set, the batch order — runs it **once**, and reads the results (the selection and
the student's weights) after the halt: the device labels the stream with the teacher, selects,
builds the student's training batches from the selection itself, trains, finetunes, and (with
the guard) checkpoints, validates and rolls back, with no host access in between. Everything
uses instructions the ISA already has (``LDW``/``STW``/``ADD``/``BR`` for control and address
arithmetic, the DMA for gathers and for widening 16-bit tables to 32-bit words).

How the image is put together (``docs/pipeline.md``):

* the teacher's programs (``selclr``, ``select``, a variant for the stream's last partial block,
  ``selout``) and the student's (``seed``, one ``train`` program per learning rate, ``valacc``)
  are the compiler's own, the student compiled at an ``origin`` after the teacher so both are
  resident; every ``HALT`` in them is patched into a branch to the image's *dispatcher*, which
  waits for the units (``FENCE``), reads the return code the caller stored and branches back:
  the programs become subroutines;
* **batches from slots.** The host cannot know the selection, so the batch order cannot be over
  the selected samples themselves: it is over ``C·K + |L|`` fixed *slots* — slot ``c·K + r``
  is class ``c``'s ``r``-th selected sample (``r mod n_c`` if the class kept ``n_c < K``; a
  labeled sample if it kept none), slot ``C·K + i`` labeled sample ``i`` —, drawn by
  :func:`golden.data.batch_order` over the slots, so the host writes it in advance. After
  ``SELOUT`` the device fills the slot table (each slot's input address and target address),
  then per chunk of steps gathers the batches (DMA) into the training stream and calls
  ``train``;
* :func:`slot_examples` is the same rule on the host: ``MLP.fit`` on its output is the
  host-driven run of the same recipe (:func:`run_host_driven`), and the standalone run equals
  it bit for bit (``tests/test_standalone.py``).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from spec import isa
from spec.isa import Cond, Op, Unit
from spec.memory import Dir, Space
from spec.params import check_positive_int
from .asm import Assembler
from .compiler import (CompiledMLP, MLPDescription, PARAM_DATA, PARAM_ID, PARAM_OUT,
                       PARAM_STEPS)
from .device import DeviceWrapper
from .plan import MemoryLayout

__all__ = ["slot_examples", "StandaloneImage", "run_standalone", "run_host_driven",
           "AccessCounter"]

_ALL_UNITS = (1 << len(Unit)) - 1

# Registers of the control code, named by what they hold in each routine. The called programs
# clobber all of them: nothing lives in a register across a call, only in the image's variables.
_TMP = 1                                   # a value on its way to or from memory
# the dispatcher
_CODE, _CASE = 1, 2                        # the caller's return code; the code tried
# the slot table (slot_table)
_POS = 1                                   # position in SELOUT's words
_N = 2                                     # samples class c kept (or |L|): the modulus
_FIRST = 3                                 # position of class c's first record
_RANK = 4                                  # slot rank r within class c
_OFF = 5                                   # a word offset (into the wide tables)
_MOD = 6                                   # r mod n, then an offset from it
_VAL = 7                                   # a value read from a table
# gathering a chunk of steps (_chunk)
_ORDER, _STREAM, _LEFT = 1, 2, 3           # order pointer, stream pointer, steps left
_SLOT, _INPUT, _TARGET = 5, 6, 7           # a sample's slot offset, input and target address
# the guard's check (and the gate's and the choice's: a count, the count it is compared with)
_AFTER, _DROP, _LIMIT = 1, 2, 3            # correct after; checkpoint − after; the margin
# bits of the ``flags`` variable
_FLAG_GATE, _FLAG_SSL = 1, 2               # the gate let the labels through; SSL delivered

#: The delivered student when the SSL and the supervised student count the same validation
#: samples correct (the gate having let the teacher's labels through): the SSL one if the
#: validation set has at least :data:`TIE_MIN_SAMPLES` samples, else the supervised one (on a
#: handful of samples a tie says nothing, and the pipeline falls back to the student that needs
#: no teacher). The host-driven pipeline's rule too (:func:`tie_delivers`).
TIE_MIN_SAMPLES = 10


def tie_delivers(validation_samples):
    """``"ssl"`` or ``"supervised"``: who a tie delivers (:data:`TIE_MIN_SAMPLES`)."""
    return "ssl" if validation_samples >= TIE_MIN_SAMPLES else "supervised"

#: The gate's slack: the teacher's labels are used unless it classifies more than this many
#: validation samples fewer correctly than the supervised-only student (about one standard error
#: of the difference on the validation sets the pipeline carves, 2 to 20 samples: a teacher
#: within it is not told apart from one that beats the student, and the choice after training
#: decides). The host-driven pipeline's rule too (:func:`gate_passes`).
GATE_SLACK = 1


def gate_passes(teacher_correct, supervised_correct):
    """The gate's rule on the validation counts (:data:`GATE_SLACK`)."""
    return teacher_correct + GATE_SLACK >= supervised_correct


def delivers_ssl(ssl_correct, supervised_correct, validation_samples):
    """The choice's rule on the validation counts: the SSL student if it counts more, the
    supervised one if it counts more, a tie as :func:`tie_delivers`."""
    return ssl_correct > supervised_correct or (ssl_correct == supervised_correct and
                                                tie_delivers(validation_samples) == "ssl")


def _runs(items):
    """``[(item, count)]``: consecutive equal items of ``items`` counted."""
    out = []
    for x in items:
        if out and out[-1][0] == x:
            out[-1] = (x, out[-1][1] + 1)
        else:
            out.append((x, 1))
    return out


def _slot_source(per_class, k, n_labeled):
    """Slot ``q`` → ``("u", sample id, class)`` or ``("l", labeled index, None)``."""
    out = []
    for c, lst in enumerate(per_class):
        n = len(lst)
        for r in range(k):
            out.append(("u", lst[r % n][0], c) if n else ("l", r % n_labeled, None))
    out += [("l", i, None) for i in range(n_labeled)]
    return out


def slot_examples(per_class, k, U_X, L_X, L_y):
    """The standalone recipe's student-train set on the host: one example per slot (module
    docstring), ``(X, y)`` with ``C·K + |L|`` rows; ``MLP.fit`` on it draws the same batches as
    the image."""
    xs, ys = [], []
    L_y = torch.as_tensor(L_y)
    for kind, i, c in _slot_source(per_class, k, len(L_X)):
        xs.append(U_X[i] if kind == "u" else L_X[i])
        ys.append(c if kind == "u" else int(L_y[i]))
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys)


def _patch_halts(prog, target):
    """The program's words with every ``HALT`` replaced by ``BR ALWAYS target``."""
    out = []
    for insn in prog.assemble():
        op, _ = isa.decode(insn)
        if op is Op.HALT:
            insn = isa.encode(Op.BR, cond=Cond.ALWAYS, rs1=0, rs2=0, target=target)
        out += isa.to_words(insn)
    return np.asarray(out, dtype=np.int64)


def _inputs_aug(X, fmt):
    from golden.mlp import FixedMLP
    xq = FixedMLP((X.shape[1], 1), formats=fmt).quantize_inputs(torch.as_tensor(X)).numpy()
    return np.concatenate([xq, np.full((xq.shape[0], 1), fmt.act.scale, dtype=np.int64)], 1)


def _pad_blocks(xa, B):
    """``xa`` padded with zero rows to whole blocks of ``B``."""
    pad = np.zeros((-(-xa.shape[0] // B) * B, xa.shape[1]), dtype=np.int64)
    pad[:xa.shape[0]] = xa
    return pad


def _words32(vals):
    """32-bit values as (low, high) 16-bit word pairs."""
    vals = np.asarray(vals, dtype=np.int64)
    return np.stack([vals & 0xFFFF, vals >> 16], axis=1).ravel()


@dataclass(frozen=True)
class _Guard:
    margin: float
    samples: int


class _Control:
    """The image's control program while it is emitted: calls of the resident programs (each
    with its return code), DMA copies, and the dispatcher the patched ``HALT``\\ s branch to.

    Members
    -------
    asm : Assembler
    ret : int
        Address of the return-code variable.
    """

    def __init__(self, base, soc, lanes, ret):
        self.asm = Assembler(base)
        self.soc, self.lanes, self.ret = soc, lanes, ret
        self._returns = []                      # labels of the return points, by code − 1
        self._loops = 0

    def loop_label(self, prefix, advance=True):
        """A fresh label ``prefix{n}`` (``advance=False``: the number the next
        ``loop_label`` call will take)."""
        if advance:
            self._loops += 1
            return f"{prefix}{self._loops}"
        return f"{prefix}{self._loops + 1}"

    def call(self, prog, steps=0, data=0, out=0, first_id=0):
        """Set the program's parameters and its return code, branch to it; it comes back here
        through the dispatcher."""
        p, code = self.asm, len(self._returns) + 1
        for addr, v in ((PARAM_STEPS, steps), (PARAM_DATA, data), (PARAM_OUT, out),
                        (PARAM_ID, first_id), (self.ret, code)):
            p.seti(rd=_TMP, imm=v)
            p.stw(rt=_TMP, rs=0, imm=addr)
        p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=prog.base)
        self._returns.append(f"ret{code}")
        p.label(f"ret{code}")

    def widen(self, src, dst, words):
        """32-bit copies (sign-extended) of ``words`` 16-bit words: DMA through the scratchpad,
        ``lanes`` words per row. ``src``, ``dst``: ``(register, offset)``."""
        p, Lw = self.asm, self.lanes
        row0, depth = 2 * self.soc.sp_depth, self.soc.sp_depth
        for w0 in range(0, words, depth * Lw):
            rows = min(depth, -(-(words - w0) // Lw))
            p.dma(direction=Dir.LOAD, space=Space.SP, transpose=0, elem_words=1, rm=src[0],
                  mem_off=src[1] + w0, sp_row=row0, rows=rows, cols=Lw, stride=Lw)
            p.dma(direction=Dir.STORE, space=Space.SP, transpose=0, elem_words=2, rm=dst[0],
                  mem_off=dst[1] + 2 * w0, sp_row=row0, rows=rows, cols=Lw, stride=2 * Lw)

    def copy(self, src, dst, words):
        """``words`` words from ``src`` to ``dst`` (constant addresses) by DMA."""
        p, Lw, depth = self.asm, self.lanes, self.soc.sp_depth
        row0 = 0
        for w0 in range(0, words, depth * Lw):
            n = min(depth * Lw, words - w0)
            rows, rest = divmod(n, Lw)
            for off, cnt, cols in ((0, rows, Lw), (rows * Lw, 1, rest)):
                if cnt and cols:
                    p.dma(direction=Dir.LOAD, space=Space.SP, transpose=0, elem_words=1, rm=0,
                          mem_off=src + w0 + off, sp_row=row0, rows=cnt, cols=cols, stride=Lw)
                    p.dma(direction=Dir.STORE, space=Space.SP, transpose=0, elem_words=1,
                          rm=0, mem_off=dst + w0 + off, sp_row=row0, rows=cnt, cols=cols,
                          stride=Lw)

    def dispatcher(self):
        """The dispatcher: wait for the units, branch back to the caller of the return code
        stored. Returns its address."""
        p = self.asm
        addr = p.label("dispatch")
        p.fence(mask=_ALL_UNITS)
        p.ldw(rd=_CODE, rs=0, imm=self.ret)
        for code, name in enumerate(self._returns, 1):
            p.seti(rd=_CASE, imm=code)
            p.br(cond=Cond.EQ, rs1=_CODE, rs2=_CASE, target=name)
        p.halt()
        return addr


class StandaloneImage:
    """The recipe compiled into one memory image (module docstring).

    Parameters
    ----------
    soc : SocConfig
    teacher : MLPDescription
        The (inference-only) teacher; ``teacher_weights`` its augmented weight matrices.
    student : MLPDescription
        The student; ``student_weights`` its initial weights, ``seed`` its run seed (batch
        order and stochastic rounding, as ``MLP(seed=)``).
    U_X, L_X : tensor (N, D)
        The unlabeled stream and the labeled training set; ``L_y`` the labels.
    student_schedule, finetune_schedule : sequence of (steps, lr)
    validation : (V_X, V_y)
        The validation set (nothing trains on it): the gate and the choice count on all of it,
        the guard on its first samples.
    supervised_schedule : sequence of (steps, lr)
        The supervised-only student's SGD on L, run first as the fits of
        :func:`supervised_fits` of at most the finetune's step count, each drawing the
        finetune's batch order from its start (the image stores no other).
    guard : (margin, samples), optional
        The divergence guard around both phases of the SSL student: validation on the first
        ``samples`` of the validation set, counted by ``valacc``; a phase that loses more than
        ``margin`` is undone from the checkpoint copied (by DMA) before it.
    chunk_steps : int
        Training steps gathered per ``train`` call.

    Members
    -------
    writes : list of (address, words)
        What the host writes before the run.
    entry : int
        The image's entry address.
    regions : dict of str to Region
    tcm, scm : CompiledMLP
        The teacher and the student, compiled to be resident together.

    Raises
    ------
    ValueError
        If the image does not fit main memory, or the sets are too large for the tables.
    """

    def __init__(self, soc, teacher, teacher_weights, student, student_weights, seed, U_X,
                 L_X, L_y, student_schedule, finetune_schedule, *, validation,
                 supervised_schedule, guard=None, chunk_steps=8):
        from golden.data import batch_order
        for d, what in ((teacher, "Teacher"), (student, "Student")):
            if not isinstance(d, MLPDescription):
                raise TypeError(f"{what} must be an MLPDescription, not {d!r}")
        check_positive_int(chunk_steps, "Chunk steps")
        C, K, B = student.sizes[-1], soc.selector.k, student.batch
        if teacher.batch != B or teacher.sizes[0] != student.sizes[0]:
            raise ValueError("Teacher and student must share the batch and the input size")
        self.guard = guard
        self._compile(soc, teacher, student)
        fmt = student.formats
        xu, xl = _inputs_aug(U_X, fmt), _inputs_aug(L_X, fmt)
        xv = _inputs_aug(validation[0], fmt)
        yl = np.asarray(L_y, dtype=np.int64)
        yv = np.asarray(validation[1], dtype=np.int64)
        if yv.size == 0:
            raise ValueError("The standalone image needs a validation set")
        nU, nL = xu.shape[0], xl.shape[0]
        S = C * K + nL
        if max(S, nU) >= 1 << 15:
            raise ValueError(f"The standalone image's tables hold at most {(1 << 15) - 1} "
                             f"slots and samples, not {max(S, nU)}")
        n_s = sum(s for s, _ in student_schedule)
        n_f = sum(s for s, _ in finetune_schedule)
        if n_f < 1:
            raise ValueError("The standalone image needs a finetune of at least one step (the "
                             "supervised student's batch order is the finetune's)")
        self.sup_fits = supervised_fits(supervised_schedule, n_f)
        order = [batch_order(S, B, n_s, seed).numpy().ravel(),
                 batch_order(nL, B, n_f, seed).numpy().ravel() + C * K]
        self._sup_order = n_s * B                 # words into the order: the finetune's
        self.n_labeled, self.n_validation, self.k, self.C = nL, yv.size, K, C
        schedules = (student_schedule, finetune_schedule)
        lay = self._plan(nU, nL, [o.size for o in order], schedules, chunk_steps)
        ctl = self._emit_control(lay, seed, nU, nL, schedules, chunk_steps)
        lay.add("control", isa.INSN_WORDS * len(ctl.asm), align=isa.INSN_WORDS)
        self.regions = dict(lay.regions)
        self.entry = ctl.asm.labels["entry"]
        dispatch = ctl.asm.labels["dispatch"]
        progs = [self.tcm.programs[k] for k in ("select", "selclr", "selout", "valacc")]
        progs += [self._seed_prog, *self._extra.values()]
        progs += [self.scm.programs[k] for k in self.scm.kinds]
        self.writes = [(prog.base, _patch_halts(prog, dispatch)) for prog in progs]
        self.writes.append((ctl.asm.base, np.asarray(ctl.asm.words(), dtype=np.int64)))
        self.writes += self._data_writes(teacher_weights, student_weights, xu, xl, yl, xv, yv,
                                         order)

    # --- the pass's steps -------------------------------------------------------------------------
    def _compile(self, soc, teacher, student):
        """Both networks, the student's regions after the teacher's (both resident)."""
        self.soc = soc
        self.tcm = tcm = CompiledMLP(teacher, soc, ("select", "valacc"))
        t_end = max(r.end for n, r in tcm.regions.items() if n != "data")
        self.scm = scm = CompiledMLP(student, soc, ("train", "valacc"),
                                     origin=-(-t_end // 8) * 8)
        if student.batch % scm.lanes:
            raise ValueError(f"The standalone image needs a batch that is a multiple of the "
                             f"{scm.lanes} lanes, not {student.batch}")

    def _plan(self, nU, nL, order_words, schedules, chunk_steps):
        """Main memory after the student: the extra programs (the stream's last partial
        block, a ``train`` program per further learning rate), the data, the tables, the
        weight copies (initial, supervised, SSL), the validation set and ``valacc``'s output
        areas, the variables, the guard's checkpoint. Returns the layout (``control`` still to
        add)."""
        tcm, scm, soc = self.tcm, self.scm, self.soc
        W, B, C, K = isa.INSN_WORDS, scm.desc.batch, self.C, self.k
        s_end = max(r.end for n, r in scm.regions.items() if n != "data")
        lay = MemoryLayout(soc.mem_words, -(-s_end // W) * W)
        self._extra = {}
        tail = nU % B
        if tail:
            p = tcm.select_program(tail, base=-(-lay.here // W) * W)
            lay.add("select_tail", W * len(p), align=W)
            self._extra["select_tail"] = p
        self._train_progs = {}
        rates = {lr for _, lr in (*schedules[0], *schedules[1])}
        rates |= {lr for fit in self.sup_fits for _, lr in fit}
        for lr in sorted(rates):
            if lr == scm.desc.lr:
                self._train_progs[lr] = scm.programs["train"]
                continue
            p = scm.train_program(lr, base=-(-lay.here // W) * W)
            lay.add(f"train_{lr}", W * len(p), align=W)
            self._train_progs[lr] = self._extra[f"train_{lr}"] = p
        Lw, fmt = scm.lanes, scm.desc.formats
        lay.add("U", -(-nU // B) * scm.block_words)
        lay.add("L", -(-nL // B) * scm.block_words)
        lay.add("xaddr", 2 * nU)
        lay.add("slots", 4 * (C * K + nL))
        lay.add("onehot", C * C)
        sel_words = isa.sel_out_max_words(soc.selector, fmt.width)
        lay.add("sel", -(-sel_words // Lw) * Lw)
        lay.add("wsel", 2 * lay.regions["sel"].words)
        lay.add("order", order_words[0] + order_words[1])
        wwords = sum(r.words for r in self._weight_regions())
        for name in ("init", "sup", "ssl"):
            lay.add(name, wwords)
        vb = -(-self.n_validation // B)
        lay.add("V", vb * scm.block_words)
        lay.add("tval", tcm.validation_words(vb))
        lay.add("sval", scm.validation_words(vb))
        lay.add("worder", 2 * chunk_steps * B)
        lay.add("stream", (chunk_steps + 1) * scm.step_words)
        lay.add("vars", 24)
        if self.guard is not None:
            g = _Guard(*self.guard)
            if g.samples > self.n_validation:
                raise ValueError(f"The guard's {g.samples} validation samples exceed the "
                                 f"{self.n_validation} of the validation set")
            lay.add("ckpt", sum(r.words for r in self._weight_regions()))
            lay.add("valout", scm.validation_words(-(-g.samples // B)))
        V = lay.regions["vars"].addr
        self._var = dict(ret=V, ordptr=V + 2, count=V + 4, ck=V + 6, rolled=V + 8,
                         flags=V + 10, supck=V + 12, tck=V + 14, sslck=V + 16, fits=V + 18)
        return lay

    def _weight_regions(self):
        return [self.scm.regions[f"W{l}"] for l in range(1, self.scm.desc.layers + 1)]

    def _emit_control(self, lay, seed, nU, nL, schedules, chunk_steps):
        """The control program: the supervised student, the gate, label and select, the slot
        table, the SSL student's training chunks (with the guard around each phase), the
        choice, the dispatcher."""
        from golden.mlp import rng_seed
        R, tcm, scm = lay.regions, self.tcm, self.scm
        B, var = scm.desc.batch, self._var
        ctl = _Control(-(-lay.here // isa.INSN_WORDS) * isa.INSN_WORDS, self.soc, scm.lanes,
                       var["ret"])
        p = ctl.asm
        self._seed_prog = scm.seed_program(rng_seed(seed))
        p.label("entry")
        p.seti(rd=_TMP, imm=0)
        for name in ("rolled", "flags"):
            p.stw(rt=_TMP, rs=0, imm=var[name])
        # the supervised-only student, from the initial weights
        ctl.call(self._seed_prog)
        for fit, repeat in _runs(self.sup_fits):              # a loop per run of equal fits
            loop = ctl.loop_label("fits", advance=False) + "_"
            p.seti(rd=_TMP, imm=repeat)
            p.stw(rt=_TMP, rs=0, imm=var["fits"])
            p.label(loop)
            self._emit_fit(ctl, R, fit, R["order"].addr + self._sup_order, chunk_steps)
            p.ldw(rd=_TMP, rs=0, imm=var["fits"])
            p.addi(rd=_TMP, rs=_TMP, imm=-1)
            p.stw(rt=_TMP, rs=0, imm=var["fits"])
            p.br(cond=Cond.NE, rs1=_TMP, rs2=0, target=loop)
        self._save(ctl, R["sup"].addr)
        self._count(ctl, R, scm, "sval", "supck")
        # the gate: the teacher's labels unless it counts more than GATE_SLACK fewer correct
        self._count(ctl, R, tcm, "tval", "tck")
        p.ldw(rd=_AFTER, rs=0, imm=var["tck"])
        p.addi(rd=_AFTER, rs=_AFTER, imm=GATE_SLACK)
        p.ldw(rd=_DROP, rs=0, imm=var["supck"])
        p.br(cond=Cond.LT, rs1=_AFTER, rs2=_DROP, target="done")
        self._set_flag(p, _FLAG_GATE)
        # the SSL student, from the initial weights: label + select
        self._restore(ctl, R["init"].addr)
        full, tail = divmod(nU, B)
        ctl.call(tcm.programs["selclr"])
        if full:
            ctl.call(tcm.programs["select"], steps=full, data=R["U"].addr, first_id=0)
        if tail:
            ctl.call(self._extra["select_tail"], steps=1,
                     data=R["U"].addr + full * scm.block_words, first_id=full * B)
        ctl.call(tcm.programs["selout"], out=R["sel"].addr)
        self._emit_slot_table(ctl, R, nL)
        # training: chunks of steps gathered from the slots, then a train call
        ctl.call(self._seed_prog)
        p.seti(rd=_TMP, imm=R["order"].addr)
        p.stw(rt=_TMP, rs=0, imm=var["ordptr"])
        for n_phase, schedule in enumerate(schedules):
            if self.guard is not None:
                self._emit_checkpoint(ctl, R)
            self._emit_fit(ctl, R, schedule, None, chunk_steps)
            if self.guard is not None:
                self._emit_check(ctl, R, n_phase)
        self._save(ctl, R["ssl"].addr)
        # the choice: the SSL student if it counts more correct; a tie as tie_delivers
        self._count(ctl, R, scm, "sval", "sslck")
        p.ldw(rd=_AFTER, rs=0, imm=var["sslck"])
        p.ldw(rd=_DROP, rs=0, imm=var["supck"])
        p.br(cond=Cond.LT, rs1=_DROP, rs2=_AFTER, target="deliver_ssl")
        if tie_delivers(self.n_validation) == "ssl":
            p.br(cond=Cond.EQ, rs1=_DROP, rs2=_AFTER, target="deliver_ssl")
        self._restore(ctl, R["sup"].addr)
        p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target="done")
        p.label("deliver_ssl")
        self._set_flag(p, _FLAG_SSL)
        p.label("done")
        p.halt()
        ctl.dispatcher()
        return ctl

    def _matrix_words(self):
        """Words of each layer's matrix, ``(n_in + 1) · n_out`` (its region may be longer: the
        words after the matrix are the programs', not the weights, and are not copied)."""
        s = self.scm.desc.sizes
        return [(a + 1) * b for a, b in zip(s, s[1:])]

    def _save(self, ctl, addr):
        """Copy the student's weight matrices (one after the other, each at its region's
        offset) to ``addr``."""
        for r, n in zip(self._weight_regions(), self._matrix_words()):
            ctl.copy(r.addr, addr, n)
            addr += r.words

    def _restore(self, ctl, addr):
        """Copy the weight matrices saved at ``addr`` back into the student's regions, as the
        host writes them (``MLP.weights``)."""
        for r, n in zip(self._weight_regions(), self._matrix_words()):
            ctl.copy(addr, r.addr, n)
            addr += r.words

    def _set_flag(self, p, bit):
        p.ldw(rd=_TMP, rs=0, imm=self._var["flags"])
        p.addi(rd=_TMP, rs=_TMP, imm=bit)
        p.stw(rt=_TMP, rs=0, imm=self._var["flags"])

    def _count(self, ctl, R, cm, out, var):
        """``cm``'s ``valacc`` on the whole validation set into variable ``var``."""
        blocks = -(-self.n_validation // self.scm.desc.batch)
        ctl.call(cm.programs["valacc"], steps=blocks, data=R["V"].addr, out=R[out].addr)
        ctl.asm.ldw(rd=_TMP, rs=0, imm=PARAM_ID)
        ctl.asm.stw(rt=_TMP, rs=0, imm=self._var[var])

    def _emit_fit(self, ctl, R, schedule, order, chunk_steps):
        """One fit: its chunks of steps; the batch order from ``order`` (an address), or from
        where the previous fit's ended (``None``)."""
        p = ctl.asm
        if order is not None:
            p.seti(rd=_TMP, imm=order)
            p.stw(rt=_TMP, rs=0, imm=self._var["ordptr"])
        for steps, lr in schedule:
            full_chunks, rest = divmod(steps, chunk_steps)
            if full_chunks:
                loop = ctl.loop_label("chunks", advance=False)
                p.seti(rd=_TMP, imm=full_chunks)
                p.stw(rt=_TMP, rs=0, imm=self._var["count"])
                p.label(loop)
                self._emit_chunk(ctl, R, chunk_steps, lr)
                p.ldw(rd=_TMP, rs=0, imm=self._var["count"])
                p.addi(rd=_TMP, rs=_TMP, imm=-1)
                p.stw(rt=_TMP, rs=0, imm=self._var["count"])
                p.br(cond=Cond.NE, rs1=_TMP, rs2=0, target=loop)
            if rest:
                self._emit_chunk(ctl, R, rest, lr)

    def _emit_slot_table(self, ctl, R, nL):
        """After ``SELOUT``: each slot's input and target address (module docstring)."""
        p, C, K = ctl.asm, self.C, self.k
        ctl.widen((0, R["sel"].addr), (0, R["wsel"].addr), R["sel"].words)
        slots, wsel, xaddr = R["slots"].addr, R["wsel"].addr, R["xaddr"].addr
        p.seti(rd=_POS, imm=0)
        for c in range(C):
            p.add(rd=_OFF, rs1=_POS, rs2=_POS)
            p.ldw(rd=_N, rs=_OFF, imm=wsel)                     # n_c
            p.addi(rd=_FIRST, rs=_POS, imm=1)                   # its first record
            p.seti(rd=_RANK, imm=0)
            p.br(cond=Cond.EQ, rs1=_N, rs2=0, target=f"empty{c}")
            p.label(f"slot{c}")
            p.add(rd=_MOD, rs1=_RANK, rs2=0)
            p.label(f"mod{c}")                                  # r mod n_c
            p.br(cond=Cond.LT, rs1=_MOD, rs2=_N, target=f"modok{c}")
            p.sub(rd=_MOD, rs1=_MOD, rs2=_N)
            p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=f"mod{c}")
            p.label(f"modok{c}")
            p.add(rd=_MOD, rs1=_MOD, rs2=_MOD)
            p.add(rd=_MOD, rs1=_MOD, rs2=_FIRST)
            p.add(rd=_MOD, rs1=_MOD, rs2=_MOD)                  # 2·(first + 2·r')
            p.ldw(rd=_VAL, rs=_MOD, imm=wsel)                   # the sample id
            p.add(rd=_VAL, rs1=_VAL, rs2=_VAL)
            p.ldw(rd=_VAL, rs=_VAL, imm=xaddr)                  # its input's address
            p.add(rd=_OFF, rs1=_RANK, rs2=_RANK)
            p.add(rd=_OFF, rs1=_OFF, rs2=_OFF)
            p.stw(rt=_VAL, rs=_OFF, imm=slots + 4 * c * K)
            p.addi(rd=_RANK, rs=_RANK, imm=1)
            p.seti(rd=_MOD, imm=K)
            p.br(cond=Cond.LT, rs1=_RANK, rs2=_MOD, target=f"slot{c}")
            p.add(rd=_POS, rs1=_POS, rs2=_N)
            p.add(rd=_POS, rs1=_POS, rs2=_N)
            p.addi(rd=_POS, rs=_POS, imm=1)
            p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=f"next{c}")
            p.label(f"empty{c}")                                # labeled sample r mod |L|
            p.seti(rd=_N, imm=nL)
            p.label(f"eslot{c}")
            p.add(rd=_MOD, rs1=_RANK, rs2=0)
            p.label(f"emod{c}")
            p.br(cond=Cond.LT, rs1=_MOD, rs2=_N, target=f"emodok{c}")
            p.sub(rd=_MOD, rs1=_MOD, rs2=_N)
            p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=f"emod{c}")
            p.label(f"emodok{c}")
            p.add(rd=_MOD, rs1=_MOD, rs2=_MOD)
            p.add(rd=_MOD, rs1=_MOD, rs2=_MOD)
            p.add(rd=_OFF, rs1=_RANK, rs2=_RANK)
            p.add(rd=_OFF, rs1=_OFF, rs2=_OFF)
            for w in (0, 2):
                p.ldw(rd=_VAL, rs=_MOD, imm=slots + 4 * C * K + w)
                p.stw(rt=_VAL, rs=_OFF, imm=slots + 4 * c * K + w)
            p.addi(rd=_RANK, rs=_RANK, imm=1)
            p.seti(rd=_MOD, imm=K)
            p.br(cond=Cond.LT, rs1=_RANK, rs2=_MOD, target=f"eslot{c}")
            p.addi(rd=_POS, rs=_POS, imm=1)
            p.label(f"next{c}")

    def _emit_chunk(self, ctl, R, m, lr):
        """Gather ``m`` steps' batches from the slots into the training stream (DMA), then
        call the ``train`` program of rate ``lr``."""
        p, scm, soc = ctl.asm, self.scm, self.soc
        B, Lw, bw, C = scm.desc.batch, scm.lanes, scm.block_words, self.C
        D1 = scm.desc.sizes[0] + 1
        slots = R["slots"].addr
        g_row, t_row = 0, soc.sp_depth                          # gather rows (banks 0 and 1)
        loop = ctl.loop_label("gather")
        p.ldw(rd=_ORDER, rs=0, imm=self._var["ordptr"])
        ctl.widen((_ORDER, 0), (0, R["worder"].addr), m * B)
        p.seti(rd=_ORDER, imm=R["worder"].addr)
        p.seti(rd=_STREAM, imm=R["stream"].addr)
        p.seti(rd=_LEFT, imm=m)
        p.label(loop)
        for s in range(B):
            j, lane = divmod(s, Lw)
            p.ldw(rd=_SLOT, rs=_ORDER, imm=2 * s)               # the slot
            p.add(rd=_SLOT, rs1=_SLOT, rs2=_SLOT)
            p.add(rd=_SLOT, rs1=_SLOT, rs2=_SLOT)
            p.ldw(rd=_INPUT, rs=_SLOT, imm=slots)               # its input
            p.ldw(rd=_TARGET, rs=_SLOT, imm=slots + 2)          # its target
            # the input: a lane of the packed blocks (stride lanes); the target: a row of the
            # one-hot table
            for rm, row, rows, stride, off in ((_INPUT, g_row, D1, Lw, j * D1 * Lw + lane),
                                               (_TARGET, t_row, C, 1, bw + j * C * Lw + lane)):
                p.dma(direction=Dir.LOAD, space=Space.SP, transpose=0, elem_words=1, rm=rm,
                      mem_off=0, sp_row=row, rows=rows, cols=1, stride=stride)
                p.dma(direction=Dir.STORE, space=Space.SP, transpose=0, elem_words=1,
                      rm=_STREAM, mem_off=off, sp_row=row, rows=rows, cols=1, stride=Lw)
        p.addi(rd=_ORDER, rs=_ORDER, imm=2 * B)
        p.addi(rd=_STREAM, rs=_STREAM, imm=scm.step_words)
        p.addi(rd=_LEFT, rs=_LEFT, imm=-1)
        p.br(cond=Cond.NE, rs1=_LEFT, rs2=0, target=loop)
        ctl.call(self._train_progs[lr], steps=m, data=R["stream"].addr)
        p.ldw(rd=_TMP, rs=0, imm=self._var["ordptr"])
        p.addi(rd=_TMP, rs=_TMP, imm=m * B)
        p.stw(rt=_TMP, rs=0, imm=self._var["ordptr"])

    def _call_valacc(self, ctl, R):
        blocks = -(-self.guard[1] // self.scm.desc.batch)
        ctl.call(self.scm.programs["valacc"], steps=blocks, data=R["V"].addr,
                 out=R["valout"].addr)

    def _emit_checkpoint(self, ctl, R):
        """Before a phase: copy the student's weights, count its correct validation samples."""
        self._save(ctl, R["ckpt"].addr)
        self._call_valacc(ctl, R)
        p = ctl.asm
        p.ldw(rd=_TMP, rs=0, imm=PARAM_ID)
        p.stw(rt=_TMP, rs=0, imm=self._var["ck"])

    def _emit_check(self, ctl, R, n_phase):
        """After phase ``n_phase``: count again; roll back if checkpoint − after >
        floor(margin · samples), and set the phase's bit of ``rolled``."""
        p, g = ctl.asm, _Guard(*self.guard)
        self._call_valacc(ctl, R)
        p.ldw(rd=_AFTER, rs=0, imm=PARAM_ID)
        p.ldw(rd=_DROP, rs=0, imm=self._var["ck"])
        p.sub(rd=_DROP, rs1=_DROP, rs2=_AFTER)
        p.seti(rd=_LIMIT, imm=math.floor(g.margin * g.samples))
        p.br(cond=Cond.GE, rs1=_LIMIT, rs2=_DROP, target=f"kept{n_phase}")
        self._restore(ctl, R["ckpt"].addr)
        p.ldw(rd=_TMP, rs=0, imm=self._var["rolled"])
        p.addi(rd=_TMP, rs=_TMP, imm=1 << n_phase)
        p.stw(rt=_TMP, rs=0, imm=self._var["rolled"])
        p.label(f"kept{n_phase}")

    def _data_writes(self, teacher_weights, student_weights, xu, xl, yl, xv, yv, order):
        """The host's writes besides the programs: constants and weights of both networks
        (the student's initial weights also into ``init``), the packed sets, the tables, the
        batch orders, the validation labels of ``valacc``'s output areas."""
        tcm, scm, R = self.tcm, self.scm, self.regions
        B, Lw, bw, C, K = scm.desc.batch, scm.lanes, scm.block_words, self.C, self.k
        D1, nU, nL = scm.desc.sizes[0] + 1, xu.shape[0], xl.shape[0]
        w = []
        for cm, weights in ((tcm, teacher_weights), (scm, student_weights)):
            w += [(a, np.asarray(v)) for a, v in cm.constants()]
            for l, m in enumerate(weights, 1):
                w.append((cm.regions[f"W{l}"].addr, np.asarray(m, dtype=np.int64).ravel()))
        init = np.zeros(R["init"].words, dtype=np.int64)       # laid out as _save copies
        off = 0
        for r, m in zip(self._weight_regions(), student_weights):
            m = np.asarray(m, dtype=np.int64).ravel()
            init[off:off + m.size] = m
            off += r.words
        w.append((R["init"].addr, init))
        w.append((R["U"].addr, scm.pack_inputs(_pad_blocks(xu, B))))
        w.append((R["L"].addr, scm.pack_inputs(_pad_blocks(xl, B))))
        w.append((R["V"].addr, scm.pack_inputs(_pad_blocks(xv, B))))

        def labels(n):
            out = np.full(-(-n // B) * B, -1, dtype=np.int64)
            out[:n] = yv[:n]
            return out
        w.append((R["tval"].addr, tcm.pack_validation(labels(yv.size))))
        w.append((R["sval"].addr, scm.pack_validation(labels(yv.size))))

        def addr_of(base, i):
            b, s = divmod(i, B)
            j, lane = divmod(s, Lw)
            return base + b * bw + j * D1 * Lw + lane

        w.append((R["xaddr"].addr, _words32([addr_of(R["U"].addr, i) for i in range(nU)])))
        onehot = R["onehot"].addr
        tab = np.zeros((C * K + nL, 2), dtype=np.int64)
        for c in range(C):
            tab[c * K:(c + 1) * K, 1] = onehot + c * C
        for i in range(nL):
            tab[C * K + i] = (addr_of(R["L"].addr, i), onehot + yl[i] * C)
        w.append((R["slots"].addr, _words32(tab.ravel())))
        w.append((onehot, np.eye(C, dtype=np.int64).ravel() * scm.desc.formats.prob.scale))
        w.append((R["order"].addr, np.concatenate(order)))
        if self.guard is not None:
            w.append((R["valout"].addr, scm.pack_validation(labels(self.guard[1]))))
        return w

    def load(self, device):
        """Write the image into ``device``."""
        for addr, words in self.writes:
            device.write_words(addr, words)

    def results(self, device):
        """After the run: a dict of ``per_class`` (the selection; ``None`` if the gate refused
        the teacher's labels), ``weights`` (the delivered student's), ``supervised_weights``,
        ``ssl_weights`` (``None`` if refused), ``rolled_back`` (phases), ``teacher_correct``,
        ``supervised_correct``, ``ssl_correct`` (validation counts; ``None`` if refused),
        ``gate_passed`` and ``delivered`` (``"ssl"`` or ``"supervised"``)."""
        sel = self.soc.selector
        fmt = self.scm.desc.formats
        s = self.scm.desc.sizes
        shapes = [(s[l - 1] + 1, s[l]) for l in range(1, len(s))]

        def word32(name):
            lo, hi = (int(v) for v in device.read_words(self._var[name], 2))
            return lo | hi << 16

        def saved(addr):                               # as _save laid them out
            out = []
            for r, shape in zip(self._weight_regions(), shapes):
                out.append(device.read_int16(addr, shape[0] * shape[1]).reshape(shape)
                           .astype(np.int64))
                addr += r.words
            return out
        flags = word32("flags")
        passed = bool(flags & _FLAG_GATE)
        per_class = None
        if passed:
            per_class = isa.sel_out_unpack(
                device.read_words(self.regions["sel"].addr,
                                  isa.sel_out_max_words(sel, fmt.width)), sel, fmt.width)
        weights = [device.read_int16(self.scm.regions[f"W{l}"].addr, a * b)
                   .reshape(a, b).astype(np.int64) for l, (a, b) in enumerate(shapes, 1)]
        rolled = word32("rolled")
        return dict(per_class=per_class, weights=weights,
                    supervised_weights=saved(self.regions["sup"].addr),
                    ssl_weights=saved(self.regions["ssl"].addr) if passed else None,
                    rolled_back=[name for n, name in enumerate(("student-train", "finetune"))
                                 if rolled >> n & 1],
                    teacher_correct=word32("tck"), supervised_correct=word32("supck"),
                    ssl_correct=word32("sslck") if passed else None, gate_passed=passed,
                    delivered="ssl" if flags & _FLAG_SSL else "supervised")


class AccessCounter(DeviceWrapper):
    """Passes through to a device and logs every host access: ``("write"|"read"|"run", ...)``
    in :attr:`log`; :meth:`between_runs` counts the accesses between the first run's start
    and the last run's end (0 for a standalone run: one run, nothing in between)."""

    def __init__(self, device):
        super().__init__(device)
        self.log = []

    def _write(self, addr, words):
        self.log.append(("write", addr, len(words)))
        super()._write(addr, words)

    def _read(self, addr, n):
        self.log.append(("read", addr, n))
        return super()._read(addr, n)

    def _run(self, entry, max_cycles):
        self.log.append(("run", entry))
        return super()._run(entry, max_cycles)

    @property
    def runs(self):
        return sum(1 for e in self.log if e[0] == "run")

    def between_runs(self):
        """Host reads and writes after the first run started and before the last ended."""
        idx = [i for i, e in enumerate(self.log) if e[0] == "run"]
        if not idx:
            return 0
        return sum(1 for e in self.log[idx[0]:idx[-1] + 1] if e[0] != "run")


def supervised_fits(schedule, period):
    """The supervised-only student's schedule as fits of at most ``period`` steps (each a
    schedule of one ``(steps, lr)``): each fit draws its batch order afresh from the seed over
    L, as :meth:`firmware.MLP.fit` does, which is a prefix of the finetune's order when
    ``period`` is the finetune's step count: the image stores no order for the supervised
    student (the whole schedule's would be 128 000 words, main memory has 262 144)."""
    fits = []
    for steps, lr in schedule:
        while steps > 0:
            fits.append(((min(steps, period), lr),))
            steps -= period
    return fits


def _descs(t_sizes, s_sizes, batch, schedule):
    return (MLPDescription(tuple(t_sizes), batch=batch),
            MLPDescription(tuple(s_sizes), batch=batch, lr=schedule[0][1]))


def run_standalone(device, teacher_weights, t_sizes, s_sizes, seed, U_X, L_X, L_y, recipe,
                   *, validation, guard=None, max_cycles=None):
    """Load the image on ``device`` (wrapped in an :class:`AccessCounter`), run it once, read
    the results. Returns :meth:`StandaloneImage.results`' dict with ``cycles``,
    ``instructions``, ``counter`` and ``image``."""
    from golden.mlp import FixedMLP, init_float_params
    td, sd = _descs(t_sizes, s_sizes, recipe.batch, recipe.student_schedule)
    init = FixedMLP(sd.sizes, formats=sd.formats).load_float(
        init_float_params(sd.sizes, seed)).params
    img = StandaloneImage(device.config, td, teacher_weights, sd, [w.numpy() for w in init],
                          seed, U_X, L_X, L_y, recipe.student_schedule,
                          recipe.finetune_schedule, validation=validation,
                          supervised_schedule=recipe.supervised_schedule, guard=guard)
    counter = AccessCounter(device)
    img.load(counter)
    r = counter.run(img.entry, max_cycles=max_cycles)
    out = img.results(counter)
    out.update(cycles=r.cycles, instructions=r.instructions, counter=counter, image=img)
    return out


def run_host_driven(acc, teacher_weights, t_sizes, s_sizes, seed, U_X, L_X, L_y, recipe,
                    *, validation, guard=None):
    """The same recipe with the host scheduling every program (``firmware.MLP``): the
    supervised-only student (:func:`supervised_fits`), the gate (the teacher's and its
    validation counts, ``valacc``; :func:`gate_passes`), then only if it passes: label and select,
    the slot set (:func:`slot_examples`), student-train, finetune, with the guard
    (:class:`firmware.guard.DivergenceGuard`) on the first validation samples; the choice
    (:func:`delivers_ssl`). Returns the keys of :meth:`StandaloneImage.results` with
    ``student`` (the delivered network), ``supervised`` and ``ssl`` (the networks; ``ssl``
    ``None`` if refused) and ``guard_events``."""
    from .guard import DivergenceGuard
    V_X, V_y = validation
    sup = acc.mlp(s_sizes, batch=recipe.batch, seed=seed, validate=True)
    for fit in supervised_fits(recipe.supervised_schedule,
                               sum(s for s, _ in recipe.finetune_schedule)):
        sup.fit(L_X, L_y, schedule=fit)
    sup_ck = sup.count_correct(V_X, V_y)
    teacher = acc.mlp(t_sizes, batch=recipe.batch, seed=seed, train=False, select=True,
                      validate=True)
    teacher.weights = teacher_weights
    t_ck = teacher.count_correct(V_X, V_y)
    out = dict(per_class=None, supervised_weights=sup.weights, ssl_weights=None,
               rolled_back=[], teacher_correct=t_ck, supervised_correct=sup_ck,
               ssl_correct=None, gate_passed=gate_passes(t_ck, sup_ck), delivered="supervised",
               weights=sup.weights, student=sup, supervised=sup, ssl=None, guard_events=[])
    if not out["gate_passed"]:
        return out
    per_class = teacher.label_select(U_X)
    k = acc.soc.selector.k
    Xs, ys = slot_examples(per_class, k, U_X, L_X, L_y)
    student = acc.mlp(s_sizes, batch=recipe.batch, seed=seed, validate=True)
    g = None if guard is None else DivergenceGuard(V_X[:guard[1]], V_y[:guard[1]], guard[0])
    rolled = []
    for name, X, y, sched in (("student-train", Xs, ys, recipe.student_schedule),
                              ("finetune", L_X, L_y, recipe.finetune_schedule)):
        ck = g.checkpoint(student, name) if g is not None else None
        student.fit(X, y, schedule=sched)
        if g is not None and g.check(student, ck)["rolled_back"]:
            rolled.append(name)
    ssl_ck = student.count_correct(V_X, V_y)
    ssl_wins = delivers_ssl(ssl_ck, sup_ck, len(V_y))
    out.update(per_class=per_class, ssl_weights=student.weights, rolled_back=rolled,
               ssl_correct=ssl_ck, ssl=student,
               guard_events=g.events if g is not None else [])
    if ssl_wins:
        out.update(delivered="ssl", weights=student.weights, student=student)
    return out
