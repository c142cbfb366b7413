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
                       PARAM_STEPS, _two_pass)
from .device import Device, RunResult
from .plan import MemoryLayout

__all__ = ["slot_examples", "StandaloneImage", "run_standalone", "run_host_driven",
           "AccessCounter"]

_ALL_UNITS = (1 << len(Unit)) - 1
# registers of the control code (the called programs clobber all of them)
_R1, _R2, _R3, _R4, _R5, _R6, _R7 = 1, 2, 3, 4, 5, 6, 7


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
    blocks = -(-xa.shape[0] // B)
    pad = np.zeros((blocks * B, xa.shape[1]), dtype=np.int64)
    pad[:xa.shape[0]] = xa
    return pad, blocks


@dataclass(frozen=True)
class _Guard:
    margin: float
    samples: int


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
        The unlabeled stream and the labeled set; ``L_y`` the labels.
    student_schedule, finetune_schedule : sequence of (steps, lr)
    guard : (margin, samples), optional
        The divergence guard around both phases: validation on the first ``samples`` of L,
        counted by ``valacc``; a phase that loses more than ``margin`` is undone from the
        checkpoint copied (by DMA) before it.
    chunk_steps : int
        Training steps gathered per ``train`` call.

    Members
    -------
    writes : list of (address, words)
        What the host writes before the run.
    entry : int
        The image's entry address.
    regions : dict of str to Region

    Raises
    ------
    ValueError
        If the image does not fit main memory, or the sets are too large for the tables.
    """

    def __init__(self, soc, teacher, teacher_weights, student, student_weights, seed, U_X,
                 L_X, L_y, student_schedule, finetune_schedule, *, guard=None,
                 chunk_steps=8):
        from golden.data import batch_order
        from golden.mlp import rng_seed
        for d, what in ((teacher, "Teacher"), (student, "Student")):
            if not isinstance(d, MLPDescription):
                raise TypeError(f"{what} must be an MLPDescription, not {d!r}")
        check_positive_int(chunk_steps, "Chunk steps")
        sel = soc.selector
        C, K, B = student.sizes[-1], sel.k, student.batch
        D1 = student.sizes[0] + 1
        if teacher.batch != B or teacher.sizes[0] != student.sizes[0]:
            raise ValueError("Teacher and student must share the batch and the input size")
        tcm = CompiledMLP(teacher, soc, ("select",))
        t_end = max(r.end for n, r in tcm.regions.items() if n != "data")
        kinds = ("train",) + (("valacc",) if guard is not None else ())
        scm = CompiledMLP(student, soc, kinds, origin=-(-t_end // 8) * 8)
        Lw = scm.lanes
        if B % Lw:
            raise ValueError(f"The standalone image needs a batch that is a multiple of the "
                             f"{Lw} lanes, not {B}")
        self.soc, self.tcm, self.scm = soc, tcm, scm
        fmt = student.formats
        xu, xl = _inputs_aug(U_X, fmt), _inputs_aug(L_X, fmt)
        yl = np.asarray(L_y, dtype=np.int64)
        nU, nL = xu.shape[0], xl.shape[0]
        S = C * K + nL
        if max(S, nU) >= 1 << 15:
            raise ValueError(f"The standalone image's tables hold at most {(1 << 15) - 1} "
                             f"slots and samples, not {max(S, nU)}")
        n_s = sum(s for s, _ in student_schedule)
        n_f = sum(s for s, _ in finetune_schedule)
        order = [batch_order(S, B, n_s, seed).numpy().ravel(),
                 batch_order(nL, B, n_f, seed).numpy().ravel() + C * K]
        self.n_labeled, self.k, self.C = nL, K, C

        W = isa.INSN_WORDS
        s_end = max(r.end for n, r in scm.regions.items() if n != "data")
        lay = MemoryLayout(soc.mem_words, -(-s_end // W) * W)
        # extra programs: the stream's last partial block, a train program per learning rate
        extra = {}
        full, tail = divmod(nU, B)
        if tail:
            base = -(-lay.here // W) * W
            p = _two_pass(tcm._emit_forward("select", tail), *tcm._allocators("select"), base)[0]
            lay.add("select_tail", W * len(p), align=W)
            extra["select_tail"] = p
        train_progs = {}
        for lr in sorted({lr for _, lr in (*student_schedule, *finetune_schedule)}):
            if lr == student.lr:
                train_progs[lr] = scm.programs["train"]
                continue
            other = CompiledMLP.__new__(CompiledMLP)
            other.__dict__.update(scm.__dict__)
            other.desc = student.with_lr(lr)
            base = -(-lay.here // W) * W
            p = _two_pass(other._emit_train, *scm._allocators("train"), base)[0]
            lay.add(f"train_{lr}", W * len(p), align=W)
            train_progs[lr] = extra[f"train_{lr}"] = p
        pu, bu = _pad_blocks(xu, B)
        pl, bl = _pad_blocks(xl, B)
        bw = scm.block_words
        R = lay.regions
        lay.add("U", bu * bw)
        lay.add("L", bl * bw)
        lay.add("xaddr", 2 * nU)
        lay.add("slots", 4 * S)
        lay.add("onehot", C * C)
        sel_words = isa.sel_out_max_words(sel, fmt.width)
        lay.add("sel", -(-sel_words // Lw) * Lw)
        lay.add("wsel", 2 * R["sel"].words)
        lay.add("order", sum(o.size for o in order))
        lay.add("worder", 2 * chunk_steps * B)
        lay.add("stream", (chunk_steps + 1) * scm.step_words)
        lay.add("vars", 16)
        if guard is not None:
            g = _Guard(*guard)
            vb = -(-g.samples // B)
            if g.samples > nL:
                raise ValueError(f"The guard's {g.samples} validation samples exceed the "
                                 f"{nL} labeled ones")
            w_words = sum(scm.regions[f"W{l}"].words for l in range(1, student.layers + 1))
            lay.add("ckpt", w_words)
            lay.add("valout", scm.validation_words(vb))
        self.guard = guard
        control_base = -(-lay.here // W) * W
        V = R["vars"].addr
        self._var = dict(ret=V, ordptr=V + 2, count=V + 4, ck=V + 6, rolled=V + 8)

        # --- the control program --------------------------------------------------------------
        p = Assembler(control_base)
        rets = []

        def call(prog, steps=0, data=0, out=0, first_id=0):
            code = len(rets) + 1
            for addr, v in ((PARAM_STEPS, steps), (PARAM_DATA, data), (PARAM_OUT, out),
                            (PARAM_ID, first_id), (self._var["ret"], code)):
                p.seti(rd=_R1, imm=v)
                p.stw(rt=_R1, rs=0, imm=addr)
            p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=prog.base)
            rets.append(f"ret{code}")
            p.label(f"ret{code}")

        def widen(src, dst, words):
            """32-bit copies (sign-extended) of ``words`` 16-bit words: DMA through the
            scratchpad, ``Lw`` words per row."""
            row0, depth = 2 * soc.sp_depth, soc.sp_depth
            for w0 in range(0, words, depth * Lw):
                rows = min(depth, -(-(words - w0) // Lw))
                p.dma(direction=Dir.LOAD, space=Space.SP, transpose=0, elem_words=1, rm=src[0],
                      mem_off=src[1] + w0, sp_row=row0, rows=rows, cols=Lw, stride=Lw)
                p.dma(direction=Dir.STORE, space=Space.SP, transpose=0, elem_words=2,
                      rm=dst[0], mem_off=dst[1] + 2 * w0, sp_row=row0, rows=rows, cols=Lw,
                      stride=2 * Lw)

        def copy(src, dst, words):
            """``words`` words from ``src`` to ``dst`` (constant addresses) by DMA."""
            row0 = 0
            for w0 in range(0, words, soc.sp_depth * Lw):
                n = min(soc.sp_depth * Lw, words - w0)
                rows, rest = divmod(n, Lw)
                for r, (off, cnt, cols) in enumerate(((0, rows, Lw), (rows * Lw, 1, rest))):
                    if cnt and cols:
                        p.dma(direction=Dir.LOAD, space=Space.SP, transpose=0, elem_words=1,
                              rm=0, mem_off=src + w0 + off, sp_row=row0, rows=cnt, cols=cols,
                              stride=Lw)
                        p.dma(direction=Dir.STORE, space=Space.SP, transpose=0, elem_words=1,
                              rm=0, mem_off=dst + w0 + off, sp_row=row0, rows=cnt, cols=cols,
                              stride=Lw)

        def w_regions():
            return [scm.regions[f"W{l}"] for l in range(1, student.layers + 1)]

        def checkpoint():
            off = R["ckpt"].addr
            for r in w_regions():
                copy(r.addr, off, r.words)
                off += r.words
            call(scm_progs["valacc"], steps=vb, data=R["L"].addr, out=R["valout"].addr)
            p.ldw(rd=_R1, rs=0, imm=PARAM_ID)
            p.stw(rt=_R1, rs=0, imm=self._var["ck"])

        def check(n_phase):
            call(scm_progs["valacc"], steps=vb, data=R["L"].addr, out=R["valout"].addr)
            # roll back if checkpoint − after > floor(margin · samples)
            p.ldw(rd=_R1, rs=0, imm=PARAM_ID)
            p.ldw(rd=_R2, rs=0, imm=self._var["ck"])
            p.sub(rd=_R2, rs1=_R2, rs2=_R1)
            p.seti(rd=_R3, imm=math.floor(g.margin * g.samples))
            p.br(cond=Cond.GE, rs1=_R3, rs2=_R2, target=f"kept{n_phase}")
            off = R["ckpt"].addr
            for r in w_regions():
                copy(off, r.addr, r.words)
                off += r.words
            p.ldw(rd=_R1, rs=0, imm=self._var["rolled"])
            p.addi(rd=_R1, rs=_R1, imm=1 << n_phase)
            p.stw(rt=_R1, rs=0, imm=self._var["rolled"])
            p.label(f"kept{n_phase}")

        scm_progs = dict(scm.programs)
        p.label("entry")
        p.seti(rd=_R1, imm=0)
        p.stw(rt=_R1, rs=0, imm=self._var["rolled"])
        # label + select
        call(tcm.programs["selclr"])
        if full:
            call(tcm.programs["select"], steps=full, data=R["U"].addr, first_id=0)
        if tail:
            call(extra["select_tail"], steps=1, data=R["U"].addr + full * bw, first_id=full * B)
        call(tcm.programs["selout"], out=R["sel"].addr)
        # the slot table from the selection
        widen((0, R["sel"].addr), (0, R["wsel"].addr), R["sel"].words)
        slots, wsel, xaddr = R["slots"].addr, R["wsel"].addr, R["xaddr"].addr
        p.seti(rd=_R1, imm=0)                                   # position in SELOUT's words
        for c in range(C):
            p.add(rd=_R5, rs1=_R1, rs2=_R1)
            p.ldw(rd=_R2, rs=_R5, imm=wsel)                     # n_c
            p.addi(rd=_R3, rs=_R1, imm=1)                       # its first record
            p.seti(rd=_R4, imm=0)                               # rank r
            p.br(cond=Cond.EQ, rs1=_R2, rs2=0, target=f"empty{c}")
            p.label(f"slot{c}")
            p.add(rd=_R6, rs1=_R4, rs2=0)
            p.label(f"mod{c}")                                  # r mod n_c
            p.br(cond=Cond.LT, rs1=_R6, rs2=_R2, target=f"modok{c}")
            p.sub(rd=_R6, rs1=_R6, rs2=_R2)
            p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=f"mod{c}")
            p.label(f"modok{c}")
            p.add(rd=_R6, rs1=_R6, rs2=_R6)
            p.add(rd=_R6, rs1=_R6, rs2=_R3)
            p.add(rd=_R6, rs1=_R6, rs2=_R6)                     # 2·(first + 2·r')
            p.ldw(rd=_R7, rs=_R6, imm=wsel)                     # the sample id
            p.add(rd=_R7, rs1=_R7, rs2=_R7)
            p.ldw(rd=_R7, rs=_R7, imm=xaddr)                    # its input's address
            p.add(rd=_R5, rs1=_R4, rs2=_R4)
            p.add(rd=_R5, rs1=_R5, rs2=_R5)
            p.stw(rt=_R7, rs=_R5, imm=slots + 4 * c * K)
            p.addi(rd=_R4, rs=_R4, imm=1)
            p.seti(rd=_R6, imm=K)
            p.br(cond=Cond.LT, rs1=_R4, rs2=_R6, target=f"slot{c}")
            p.add(rd=_R1, rs1=_R1, rs2=_R2)
            p.add(rd=_R1, rs1=_R1, rs2=_R2)
            p.addi(rd=_R1, rs=_R1, imm=1)
            p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=f"next{c}")
            p.label(f"empty{c}")                                # labeled sample r mod |L|
            p.seti(rd=_R2, imm=nL)
            p.label(f"eslot{c}")
            p.add(rd=_R6, rs1=_R4, rs2=0)
            p.label(f"emod{c}")
            p.br(cond=Cond.LT, rs1=_R6, rs2=_R2, target=f"emodok{c}")
            p.sub(rd=_R6, rs1=_R6, rs2=_R2)
            p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=f"emod{c}")
            p.label(f"emodok{c}")
            p.add(rd=_R6, rs1=_R6, rs2=_R6)
            p.add(rd=_R6, rs1=_R6, rs2=_R6)
            p.add(rd=_R5, rs1=_R4, rs2=_R4)
            p.add(rd=_R5, rs1=_R5, rs2=_R5)
            for w in (0, 2):
                p.ldw(rd=_R7, rs=_R6, imm=slots + 4 * C * K + w)
                p.stw(rt=_R7, rs=_R5, imm=slots + 4 * c * K + w)
            p.addi(rd=_R4, rs=_R4, imm=1)
            p.seti(rd=_R6, imm=K)
            p.br(cond=Cond.LT, rs1=_R4, rs2=_R6, target=f"eslot{c}")
            p.addi(rd=_R1, rs=_R1, imm=1)
            p.label(f"next{c}")

        # training: chunks of steps gathered from the slots, then a train call
        seed_prog = scm.seed_program(rng_seed(seed))
        call(seed_prog)
        g_row, t_row = 0, soc.sp_depth                          # gather rows (banks 0 and 1)
        label_n = [0]

        def chunk(m, lr):
            n = label_n[0] = label_n[0] + 1
            p.ldw(rd=_R1, rs=0, imm=self._var["ordptr"])
            widen((_R1, 0), (0, R["worder"].addr), m * B)
            p.seti(rd=_R1, imm=R["worder"].addr)
            p.seti(rd=_R2, imm=R["stream"].addr)
            p.seti(rd=_R3, imm=m)
            p.label(f"gather{n}")
            for s in range(B):
                j, lane = divmod(s, Lw)
                p.ldw(rd=_R5, rs=_R1, imm=2 * s)                # the slot
                p.add(rd=_R5, rs1=_R5, rs2=_R5)
                p.add(rd=_R5, rs1=_R5, rs2=_R5)
                p.ldw(rd=_R6, rs=_R5, imm=slots)                # its input
                p.ldw(rd=_R7, rs=_R5, imm=slots + 2)            # its target
                # the input: a lane of the packed blocks (stride lanes); the target: a row of
                # the one-hot table
                for rm, row, rows, stride, off in ((_R6, g_row, D1, Lw, j * D1 * Lw + lane),
                                                   (_R7, t_row, C, 1, bw + j * C * Lw + lane)):
                    p.dma(direction=Dir.LOAD, space=Space.SP, transpose=0, elem_words=1,
                          rm=rm, mem_off=0, sp_row=row, rows=rows, cols=1, stride=stride)
                    p.dma(direction=Dir.STORE, space=Space.SP, transpose=0, elem_words=1,
                          rm=_R2, mem_off=off, sp_row=row, rows=rows, cols=1, stride=Lw)
            p.addi(rd=_R1, rs=_R1, imm=2 * B)
            p.addi(rd=_R2, rs=_R2, imm=scm.step_words)
            p.addi(rd=_R3, rs=_R3, imm=-1)
            p.br(cond=Cond.NE, rs1=_R3, rs2=0, target=f"gather{n}")
            call(train_progs[lr], steps=m, data=R["stream"].addr)
            p.ldw(rd=_R1, rs=0, imm=self._var["ordptr"])
            p.addi(rd=_R1, rs=_R1, imm=m * B)
            p.stw(rt=_R1, rs=0, imm=self._var["ordptr"])

        p.seti(rd=_R1, imm=R["order"].addr)
        p.stw(rt=_R1, rs=0, imm=self._var["ordptr"])
        for n_phase, schedule in enumerate((student_schedule, finetune_schedule)):
            if guard is not None:
                checkpoint()
            for steps, lr in schedule:
                full_chunks, rest = divmod(steps, chunk_steps)
                if full_chunks:
                    n = label_n[0] + 1
                    p.seti(rd=_R1, imm=full_chunks)
                    p.stw(rt=_R1, rs=0, imm=self._var["count"])
                    p.label(f"chunks{n}")
                    chunk(chunk_steps, lr)
                    p.ldw(rd=_R1, rs=0, imm=self._var["count"])
                    p.addi(rd=_R1, rs=_R1, imm=-1)
                    p.stw(rt=_R1, rs=0, imm=self._var["count"])
                    p.br(cond=Cond.NE, rs1=_R1, rs2=0, target=f"chunks{n}")
                if rest:
                    chunk(rest, lr)
            if guard is not None:
                check(n_phase)
        p.halt()
        # the dispatcher: wait for the units, branch back to the caller
        p.label("dispatch")
        p.fence(mask=_ALL_UNITS)
        p.ldw(rd=_R1, rs=0, imm=self._var["ret"])
        for code, name in enumerate(rets, 1):
            p.seti(rd=_R2, imm=code)
            p.br(cond=Cond.EQ, rs1=_R1, rs2=_R2, target=name)
        p.halt()
        lay.add("control", W * len(p), align=W)
        self.regions = dict(lay.regions)
        self.entry = p._labels["entry"]
        dispatch = p._labels["dispatch"]

        # --- what the host writes -----------------------------------------------------------------
        w = []
        progs = [tcm.programs[k] for k in ("select", "selclr", "selout")] + [seed_prog]
        progs += list(extra.values()) + [scm.programs[k] for k in kinds]
        for prog in progs:
            w.append((prog.base, _patch_halts(prog, dispatch)))
        w.append((p.base, np.asarray(p.words(), dtype=np.int64)))
        for cm, weights in ((tcm, teacher_weights), (scm, student_weights)):
            w += [(a, np.asarray(v)) for a, v in cm.constants()]
            for l, m in enumerate(weights, 1):
                w.append((cm.regions[f"W{l}"].addr, np.asarray(m, dtype=np.int64).ravel()))
        w.append((R["U"].addr, scm.pack_inputs(pu)))
        w.append((R["L"].addr, scm.pack_inputs(pl)))

        def addr_of(base, i):
            b, s = divmod(i, B)
            j, lane = divmod(s, Lw)
            return base + b * bw + j * D1 * Lw + lane

        def words32(vals):
            vals = np.asarray(vals, dtype=np.int64)
            return np.stack([vals & 0xFFFF, vals >> 16], axis=1).ravel()

        w.append((xaddr, words32([addr_of(R["U"].addr, i) for i in range(nU)])))
        onehot = R["onehot"].addr
        tab = np.zeros((S, 2), dtype=np.int64)
        for c in range(C):
            tab[c * K:(c + 1) * K, 1] = onehot + c * C
        for i in range(nL):
            tab[C * K + i] = (addr_of(R["L"].addr, i), onehot + yl[i] * C)
        w.append((slots, words32(tab.ravel())))
        w.append((onehot, np.eye(C, dtype=np.int64).ravel() * fmt.prob.scale))
        w.append((R["order"].addr, np.concatenate(order)))
        if guard is not None:
            labels = np.full(vb * B, -1, dtype=np.int64)
            labels[:g.samples] = yl[:g.samples]
            w.append((R["valout"].addr, scm.pack_validation(labels)))
        self.writes = w

    def load(self, device):
        """Write the image into ``device``."""
        for addr, words in self.writes:
            device.write_words(addr, words)

    def results(self, device):
        """After the run: ``(per_class, student weights, rolled_back phases)``."""
        sel = self.soc.selector
        fmt = self.scm.desc.formats
        per_class = isa.sel_out_unpack(
            device.read_words(self.regions["sel"].addr, isa.sel_out_max_words(sel, fmt.width)),
            sel, fmt.width)
        s = self.scm.desc.sizes
        weights = [device.read_int16(self.scm.regions[f"W{l}"].addr, (s[l - 1] + 1) * s[l])
                   .reshape(s[l - 1] + 1, s[l]).astype(np.int64)
                   for l in range(1, len(s))]
        lo, hi = (int(v) for v in device.read_words(self._var["rolled"], 2))
        flags = lo | hi << 16
        rolled = [name for n, name in enumerate(("student-train", "finetune")) if flags >> n & 1]
        return per_class, weights, rolled


class AccessCounter(Device):
    """Passes through to a device and logs every host access: ``("write"|"read"|"run", ...)``
    in :attr:`log`; :meth:`between_runs` counts the accesses between the first run's start
    and the last run's end (0 for a standalone run: one run, nothing in between)."""

    def __init__(self, device):
        self.device = device
        self.log = []

    @property
    def config(self):
        return self.device.config

    def _write(self, addr, words):
        self.log.append(("write", addr, len(words)))
        self.device._write(addr, words)

    def _read(self, addr, n):
        self.log.append(("read", addr, n))
        return self.device._read(addr, n)

    def _run(self, entry, max_cycles):
        self.log.append(("run", entry))
        return self.device._run(entry, max_cycles)

    def counters(self):
        return self.device.counters()

    @property
    def runs(self):
        return sum(1 for e in self.log if e[0] == "run")

    def between_runs(self):
        """Host reads and writes after the first run started and before the last ended."""
        idx = [i for i, e in enumerate(self.log) if e[0] == "run"]
        if not idx:
            return 0
        return sum(1 for e in self.log[idx[0]:idx[-1] + 1] if e[0] != "run")


def _descs(t_sizes, s_sizes, batch, schedule):
    return (MLPDescription(tuple(t_sizes), batch=batch),
            MLPDescription(tuple(s_sizes), batch=batch, lr=schedule[0][1]))


def run_standalone(device, teacher_weights, t_sizes, s_sizes, seed, U_X, L_X, L_y, recipe,
                   *, guard=None, max_cycles=None):
    """Load the image on ``device`` (wrapped in an :class:`AccessCounter`), run it once, read
    the results. Returns ``dict(per_class, weights, rolled_back, cycles, counter, image)``."""
    from golden.mlp import FixedMLP, init_float_params
    td, sd = _descs(t_sizes, s_sizes, recipe.batch, recipe.student_schedule)
    init = FixedMLP(sd.sizes, formats=sd.formats).load_float(
        init_float_params(sd.sizes, seed)).params
    img = StandaloneImage(device.config, td, teacher_weights, sd, [w.numpy() for w in init],
                          seed, U_X, L_X, L_y, recipe.student_schedule,
                          recipe.finetune_schedule, guard=guard)
    counter = AccessCounter(device)
    img.load(counter)
    r = counter.run(img.entry, max_cycles=max_cycles)
    per_class, weights, rolled = img.results(counter)
    return dict(per_class=per_class, weights=weights, rolled_back=rolled, cycles=r.cycles,
                instructions=r.instructions, counter=counter, image=img)


def run_host_driven(acc, teacher_weights, t_sizes, s_sizes, seed, U_X, L_X, L_y, recipe,
                    *, guard=None):
    """The same recipe with the host scheduling every program (``firmware.MLP``): label and
    select, the slot set (:func:`slot_examples`), student-train, finetune, and the guard
    (:class:`firmware.guard.DivergenceGuard`). Returns ``dict(per_class, weights,
    rolled_back, student, guard_events)``."""
    from .guard import DivergenceGuard
    teacher = acc.mlp(t_sizes, batch=recipe.batch, seed=seed, train=False, select=True)
    teacher.weights = teacher_weights
    per_class = teacher.label_select(U_X)
    k = acc.soc.selector.k
    Xs, ys = slot_examples(per_class, k, U_X, L_X, L_y)
    student = acc.mlp(s_sizes, batch=recipe.batch, seed=seed, validate=guard is not None)
    g = None if guard is None else DivergenceGuard(L_X[:guard[1]], L_y[:guard[1]], guard[0])
    rolled = []
    for name, X, y, sched in (("student-train", Xs, ys, recipe.student_schedule),
                              ("finetune", L_X, L_y, recipe.finetune_schedule)):
        ck = g.checkpoint(student, name) if g is not None else None
        student.fit(X, y, schedule=sched)
        if g is not None and g.check(student, ck)["rolled_back"]:
            rolled.append(name)
    return dict(per_class=per_class, weights=student.weights, rolled_back=rolled,
                student=student, guard_events=g.events if g is not None else [])
