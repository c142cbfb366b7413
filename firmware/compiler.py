"""The compiler: an MLP description or a matrix product → memory plan and accelerator programs.

``docs/firmware.md`` explains the plan and the mapping of a training step onto the instruction
set, which this module follows.

* :class:`MLPDescription` — the network (layer sizes, formats, batch, learning rate, rounding).
* :func:`compile_mlp` → :class:`CompiledMLP` — main-memory plan, scratchpad plans and the
  programs: training (a loop of SGD steps over a stream of batches), logits and probabilities
  (a loop over blocks of samples).
* :func:`compile_matmul` → :class:`CompiledMatmul` — a tiled ``round(A·B / 2**shift)``.

Programs read their loop counts and data addresses from a small parameter block in main memory
(:data:`PARAM_STEPS`, :data:`PARAM_DATA`, :data:`PARAM_OUT`, 32-bit words), so one program runs
any number of steps without being rebuilt.
"""

import math
from dataclasses import dataclass, field
from numbers import Real

import numpy as np


from spec import isa
from spec.isa import Cond, Op, Unit
from spec.memory import DESC_FIELDS, Dir, Space
from spec.params import DEFAULT_FORMATS, Formats, check_int, check_positive_int
from spec.soc import SocConfig, DEFAULT_SOC
from spec.softmax_tables import INV_TEMP_ONE
from .asm import Assembler
from .plan import BankAllocator, MemoryLayout, Recorder, overlap_pairs

__all__ = [
    "MLPDescription", "CompiledMLP", "compile_mlp", "CompiledMatmul", "compile_matmul",
    "matmul_max_square", "mlp_lanes",
    "PARAM_STEPS", "PARAM_DATA", "PARAM_OUT", "PARAM_ID", "PARAM_WORDS", "PROGRAM_KINDS",
]

#: Programs :class:`CompiledMLP` can emit: training, logits, probabilities, teacher labeling
#: with the selector (``select``; with ``selclr`` and ``selout``, which clear the selector and
#: write the selected set), and ``valacc``, the number of correctly classified samples of a
#: labeled set counted on the device (the divergence guard's validation accuracy,
#: :meth:`CompiledMLP.pack_validation`).
PROGRAM_KINDS = ("train", "logits", "probs", "select", "valacc")

#: Word addresses (in main memory) of the programs' 32-bit parameters: loop count, data address,
#: output address; the first sample id of a ``select`` run.
PARAM_STEPS, PARAM_DATA, PARAM_OUT, PARAM_ID = 0, 2, 4, 6
#: Size of the parameter block.
PARAM_WORDS = 8

_DESC = dict(DESC_FIELDS)
_MAX_DMA_COLS = (1 << _DESC["cols"]) - 1
_MAX_DMA_ROWS = (1 << _DESC["rows"]) - 1
#: Registers of the generated programs.
_R_DATA, _R_OUT, _R_COUNT, _R_ID = 1, 2, 3, 4
#: Scratch registers of the ``valacc`` program's argmax loop.
_R_BEST, _R_ARG, _R_CAND = 5, 6, 7
#: The unit each opcode runs on (others: the sequencer itself).
_UNITS = {Op.DMA: Unit.DMA, Op.GEMM: Unit.GEMM, Op.REQ: Unit.VEC, Op.RELUB: Unit.VEC,
          Op.SMX: Unit.VEC, Op.SGD: Unit.VEC, Op.FILL: Unit.VEC, Op.SELFEED: Unit.SEL,
          Op.SELOUT: Unit.SEL, Op.SELCLR: Unit.SEL}


def _ceil_div(a, b):
    return -(-a // b)


def _array_shape(soc):
    """``(lanes, pad)`` of the programs for ``soc``'s ``R × C`` array (``docs/firmware.md``,
    *Arrays with rows ≠ cols*): the panel width ``lanes = min(R, C)``, and ``pad = R − lanes``,
    the rows by which a ``GEMM``'s row tile of ``R`` rows overruns a panel of ``lanes`` rows
    (0 unless ``R > C``; then every ``GEMM`` is emitted one row tile at a time and the
    accumulator panels are ``pad`` rows apart)."""
    if not isinstance(soc, SocConfig):
        raise TypeError(f"SoC configuration must be a SocConfig, not {soc!r}")
    a = soc.config.array
    if soc.sp_banks < 2:
        raise ValueError(f"The compiler needs at least 2 scratchpad banks, not {soc.sp_banks}")
    lanes = min(a.rows, a.cols)
    return lanes, a.rows - lanes


def mlp_lanes(soc):
    """The panel width of :func:`compile_mlp`'s programs on ``soc``: ``min(rows, cols)`` of its
    array (``CompiledMLP.lanes``; ``soc.lanes`` on a square array). The golden trainer draws
    as the device does with ``FixedMLP.train(..., update_lanes=mlp_lanes(soc))``."""
    return _array_shape(soc)[0]


def _gemm(p, pad, lanes, *, a_row, mt, a_ps, c_row, **fields):
    """One ``GEMM`` of ``mt`` row tiles of ``lanes`` rows, ``ACC[c_row + j·c_ps + i·lanes + r]``
    for ``r < lanes``; with ``pad`` (an array of ``lanes + pad`` rows) one ``GEMM`` per row
    tile, in order: tile ``i``'s ``pad`` extra rows (products of lanes ``≥ lanes`` of ``A``)
    land on tile ``i + 1``'s rows, which its own ``GEMM`` then writes, and the last tile's in
    the ``pad`` rows after the panel (``c_ps`` must leave them: :func:`_panel_rows`). What the
    extra rows hold is whatever lanes ``≥ lanes`` of ``A`` give: callers do not accumulate."""
    if not pad:
        p.gemm(a_row=a_row, mt=mt, a_ps=a_ps, c_row=c_row, **fields)
        return
    for i in range(mt):
        p.gemm(a_row=a_row + i * a_ps, mt=1, a_ps=a_ps, c_row=c_row + i * lanes, **fields)


def _panel_rows(tiles, lanes, pad):
    """Accumulator rows of one output panel of ``tiles`` row tiles (a ``GEMM``'s ``c_ps``):
    ``tiles·lanes``, plus the ``pad`` rows the last tile overruns (:func:`_gemm`)."""
    return tiles * lanes + pad


def _dma(p, *, store, transpose, rm, off, sp_row, rows, cols, stride, space=Space.SP):
    """Emit one DMA descriptor, split into several if the block exceeds a field's range.

    The block is ``rows × cols`` in main memory at ``r[rm] + off`` (row stride ``stride``);
    ``transpose`` puts block column ``j`` in scratchpad row ``sp_row + j``.
    """
    d = Dir.STORE if store else Dir.LOAD
    if transpose:
        for c0 in range(0, cols, _MAX_DMA_COLS):
            c = min(_MAX_DMA_COLS, cols - c0)
            p.dma(direction=d, space=space, transpose=1, elem_words=1, rm=rm, mem_off=off + c0,
                  sp_row=sp_row + c0, rows=rows, cols=c, stride=stride)
    else:
        for r0 in range(0, rows, _MAX_DMA_ROWS):
            r = min(_MAX_DMA_ROWS, rows - r0)
            p.dma(direction=d, space=space, transpose=0, elem_words=1, rm=rm,
                  mem_off=off + r0 * stride, sp_row=sp_row + r0, rows=r, cols=cols,
                  stride=stride)


class _AccAllocator(BankAllocator):
    """The accumulator scratchpad: buffers in one bank each if they fit (units then overlap
    more), else anywhere (a GEMM's output may span banks)."""

    def __init__(self, banks, depth):
        super().__init__(banks, depth, "Accumulator scratchpad")

    def allocate(self, uses, prefer_apart=None):
        try:
            return super().allocate(uses, prefer_apart)
        except ValueError:
            self.span_banks = True
            return super().allocate(uses)


def _duration_estimate(op, f):
    """Rough cycles of one instruction's unit operation (to weigh bank conflicts)."""
    if op is Op.DMA:
        return f["rows"] * f["cols"]
    if op is Op.GEMM:
        return f["mt"] * f["nt"] * max(f["k"], 8)
    if op is Op.SMX:
        return f["samples"] * (3 * f["classes"] + 26)
    if op in (Op.REQ, Op.RELUB, Op.SGD, Op.FILL):
        return f["rows"]
    return 0


def _two_pass(emit, sp_alloc, acc_alloc, base):
    """Emit a program twice: once with a :class:`Recorder` to find each buffer's live range
    and which buffers are used while others units run, then with the buffers placed.
    Returns ``(assembler, sp_rows, acc_rows)``."""
    probe = Assembler(base)
    rec_sp = Recorder(lambda: len(probe))
    rec_acc = Recorder(lambda: len(probe))
    emit(probe, rec_sp, rec_acc)
    insns = [isa.decode(w) for w in probe.assemble()]
    units = [_UNITS.get(op) for op, _ in insns]
    costs = [_duration_estimate(op, f) for op, f in insns]
    soft_sp, soft_acc = overlap_pairs(units, [rec_sp, rec_acc], costs)
    sp = sp_alloc.allocate(rec_sp.uses, soft_sp)
    acc = acc_alloc.allocate(rec_acc.uses, soft_acc)
    p = Assembler(base)
    emit(p, sp, acc)
    assert len(p) == len(probe)
    return p, sp, acc


# ------------------------------------------------------------------------------------------------
# MLP

_ROUNDING = {"nearest-even": 0, "stochastic": 1}


@dataclass(frozen=True)
class MLPDescription:
    """A fully connected network to train on the accelerator (the golden trainer's numerics,
    ``docs/training.md``).

    Parameters
    ----------
    sizes : sequence of int
        ``(D, H_1, ..., C)``: inputs, hidden widths, classes (``C <= 63``: the ``SMX`` field).
    formats : Formats
        Fixed-point formats; ``act_frac`` and ``prob_frac`` at most ``width − 2``.
    batch : int
        Samples per SGD step, a power of two (the batch mean is folded into the update's shift).
    lr : float
        Learning rate ``lr_mul · 2**-k`` with an integer ``lr_mul`` (e.g. ``2**-3``); with the
        batch and formats it gives the ``SGD`` fields ``lr_mul`` and ``lr_shift``.
    rounding : str
        Rounding of the weight update: ``"stochastic"`` or ``"nearest-even"``.
    temperature : float, optional
        Softmax temperature of the loss and of the probabilities (``None``: 1).

    Raises
    ------
    TypeError, ValueError
        On a bad field (messages name it).
    """
    sizes: tuple
    formats: Formats = DEFAULT_FORMATS
    batch: int = 32
    lr: float = 2**-3
    rounding: str = "stochastic"
    temperature: float = None
    step: object = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        from golden.mlp import FixedMLP, check_sizes
        sizes = check_sizes(self.sizes)
        object.__setattr__(self, "sizes", sizes)
        if not isinstance(self.formats, Formats):
            raise TypeError(f"Formats must be a Formats, not {self.formats!r}")
        check_positive_int(self.batch, "Batch size")
        if self.batch & (self.batch - 1):
            raise ValueError(f"Batch size must be a power of two, not {self.batch!r}")
        if self.rounding not in _ROUNDING:
            raise ValueError(f"Rounding must be one of {', '.join(map(repr, _ROUNDING))}, "
                             f"not {self.rounding!r}")
        if not isinstance(self.lr, Real) or isinstance(self.lr, bool):
            raise TypeError(f"Learning rate must be a real number, not {self.lr!r}")
        from golden.softmax import temperature_to_inv_temp
        if self.temperature is not None:
            temperature_to_inv_temp(self.temperature)       # validates
        if sizes[-1] > 63:
            raise ValueError(f"Classes must be at most 63 (the SMX classes field), "
                             f"not {sizes[-1]!r}")
        # the golden trainer's constants: shifts, learning-rate folding, format checks
        ref = FixedMLP(sizes, formats=self.formats)
        object.__setattr__(self, "step", ref.plan(self.lr, self.batch, self.temperature))

    @property
    def layers(self):
        return len(self.sizes) - 1

    @property
    def inv_temp(self):
        """The ``SMX`` ``inv_temp`` field (``INV_TEMP_ONE`` for ``T = 1``)."""
        return INV_TEMP_ONE if self.step.inv_temp is None else self.step.inv_temp

    def with_lr(self, lr):
        """A copy with another learning rate."""
        return MLPDescription(self.sizes, self.formats, self.batch, lr, self.rounding,
                              self.temperature)


class CompiledMLP:
    """An :class:`MLPDescription` compiled for a SoC: the main-memory plan and the programs.

    Main memory (word addresses, all ``regions[...]``: :class:`~firmware.plan.Region`)
    ----------------------------------------------------------------------------------
    ``params``
        The programs' parameters (:data:`PARAM_STEPS`, :data:`PARAM_DATA`, :data:`PARAM_OUT`).
    ``W{l}``
        Layer ``l``'s augmented weights, ``(n_in + 1) × n_out`` row-major, last row the bias,
        weight format, then (hidden layers) one word 1.0 in the weight format (the *ones
        column*, see ``docs/firmware.md``). The programs load the weights at start; training
        stores them back at the end.
    ``identity``
        The ``lanes × lanes`` identity matrix (transposes are GEMMs with it).
    ``seed``, ``train``, ``logits``, ``probs``, ``select``, ``selclr``, ``selout``, ``valacc``
        The programs (those of ``kinds``; ``selclr`` and ``selout`` come with ``select``).
    ``data``
        The rest. Training reads a stream of steps (:meth:`pack_steps`: each step's inputs
        with the ones column in both layouts and its targets, as panels one DMA descriptor
        loads); :attr:`train_capacity` steps fit (plus the one the last step prefetches).
        Inference reads blocks of ``batch`` inputs (:meth:`pack_inputs`) from the start of the
        region and writes ``batch × C`` output rows per block to the output area after them
        (:meth:`eval_layout`).

    With ``origin`` (a word address) the regions after ``params`` start there, so that two
    networks can be resident at once (the standalone image, ``firmware/standalone.py``).

    Attributes
    ----------
    desc : MLPDescription
    soc : SocConfig
    lanes : int
        The panel width: the array's ``min(rows, cols)`` (:func:`mlp_lanes`; on a square array
        the SoC's lanes).
    regions : dict of str to Region
    programs : dict of str to Assembler
        ``"train"``, ``"logits"``, ``"probs"``, ``"select"``, ``"selclr"``, ``"selout"``,
        ``"valacc"`` (those compiled). ``valacc`` stores its logits to the output area of
        :meth:`pack_validation` (at :data:`PARAM_OUT`) and its count at :data:`PARAM_ID`.
    kinds : tuple of str
        The programs compiled (:data:`PROGRAM_KINDS`).
    sp_plan, acc_plan : dict of str to dict
        Per program, each buffer's first scratchpad row.
    train_capacity, eval_capacity : int
        Training steps, inference blocks (of ``batch`` samples) one run can take.
    """

    def __init__(self, desc, soc=DEFAULT_SOC, kinds=("train", "logits", "probs"), origin=0):
        if not isinstance(desc, MLPDescription):
            raise TypeError(f"Description must be an MLPDescription, not {desc!r}")
        check_int(origin, "Origin")
        if origin and origin < PARAM_WORDS:
            raise ValueError(f"Origin must be 0 or at least {PARAM_WORDS}, not {origin!r}")
        self.lanes, self._pad = _array_shape(soc)
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in PROGRAM_KINDS]
        if bad or not kinds:
            raise ValueError(f"Program kinds must be some of {', '.join(PROGRAM_KINDS)}, "
                             f"not {kinds!r}")
        if "select" in kinds:
            sel = soc.selector
            if sel is None:
                raise ValueError("Teacher labeling (select) needs a SoC with a selector")
            if sel.classes != desc.sizes[-1]:
                raise ValueError(f"The SoC's selector has {sel.classes} classes, the network "
                                 f"{desc.sizes[-1]}")
        self.kinds = kinds
        self.desc, self.soc = desc, soc
        s, B, L = desc.sizes, desc.batch, desc.layers
        f = desc.formats
        if any(n % self.lanes for n in s[1:-1]) and f.weight_frac > f.width - 2:
            raise ValueError(f"Weight fraction bits must be at most width − 2 "
                             f"({f.width - 2}) for the ones column of hidden layers whose width "
                             f"is not a multiple of {self.lanes}, not {f.weight_frac!r}")
        self._check_fits(kinds)
        lay = MemoryLayout(soc.mem_words)
        lay.add("params", PARAM_WORDS)
        if origin:                             # another network's regions come first
            lay.add("below", origin - PARAM_WORDS)
        for l in range(1, L + 1):
            lay.add(f"W{l}", (s[l - 1] + 1) * s[l] + (1 if l < L else 0))
        lay.add("identity", self.lanes * self.lanes)
        self.sp_plan, self.acc_plan, self.programs = {}, {}, {}
        self.regions = lay.regions
        W = isa.INSN_WORDS
        lay.add("seed", 2 * W, align=W)
        for kind in kinds:
            base = -(-lay.here // W) * W
            emit = self._emit_train(desc) if kind == "train" else self._emit_forward(kind)
            sp_alloc, acc_alloc = self._allocators(kind)
            p, self.sp_plan[kind], self.acc_plan[kind] = _two_pass(emit, sp_alloc, acc_alloc,
                                                                   base)
            lay.add(kind, W * len(p), align=W)
            self.programs[kind] = p
        if "select" in kinds:
            for kind in ("selclr", "selout"):
                p = Assembler(-(-lay.here // W) * W)
                if kind == "selclr":
                    p.selclr()
                else:
                    p.ldw(rd=_R_OUT, rs=0, imm=PARAM_OUT)
                    p.selout(rm=_R_OUT, mem_off=0)
                p.halt()
                lay.add(kind, W * len(p), align=W)
                self.programs[kind] = p
        data = lay.rest("data")
        if "train" not in kinds:
            self.train_capacity = 0
        else:
            self.train_capacity = data.words // self.step_words - 1
        self.eval_capacity = data.words // (self.block_words + B * s[-1])
        if "train" in kinds and self.train_capacity < 1:
            raise ValueError(f"Main memory is too small: training needs "
                             f"{2 * self.step_words} words of data, {data.words} are left")

    def _check_fits(self, kinds):
        """Refuse, before any program is emitted, a network whose layers cannot be placed:
        a buffer every program needs larger than a scratchpad bank, or a ``GEMM`` over more
        tiles than its ``mt``/``nt`` fields count. The message names the layer, the buffer,
        by how much it is too big and what would fit."""
        s, Lw, B, soc = self.desc.sizes, self.lanes, self.desc.batch, self.soc
        depth, tiles = soc.sp_depth, isa.field_slices(Op.GEMM)["mt"][1].max
        nbp = self.sample_panels
        if nbp > tiles:
            raise ValueError(f"Batch {B} is {nbp} sample panels of {Lw}, more than a GEMM "
                             f"takes ({tiles}, its mt field): at most {tiles * Lw} samples")
        train = "train" in kinds
        for l in range(1, self.desc.layers + 1):
            n_in, n_out = s[l - 1], s[l]
            npo, ma = _ceil_div(n_out, Lw), _ceil_div(n_in + 1, Lw)
            layer = f"layer {l} ({n_in} inputs, {n_out} outputs)"
            rows = npo * (n_in + 1)
            if rows > depth:
                fit = []
                if depth // npo > 1:
                    fit.append(f"at most {depth // npo - 1} inputs with {n_out} outputs")
                if depth // (n_in + 1):
                    fit.append(f"at most {depth // (n_in + 1) * Lw} outputs with {n_in} inputs")
                fit = " or ".join(fit) or f"no layer with {n_in} inputs"
                raise ValueError(
                    f"Operand scratchpad is too small for this network: {layer}'s weights "
                    f"need {rows} rows in one bank ({npo} panels of {Lw} outputs × {n_in + 1} "
                    f"rows: the inputs and the bias), a bank holds {depth}, {rows - depth} too "
                    f"many; {fit} fit")
            rows = nbp * (n_in + 1)
            if rows > depth:
                raise ValueError(
                    f"Operand scratchpad is too small for this network: {layer}'s input "
                    f"activations need {rows} rows in one bank ({nbp} sample panels × "
                    f"{n_in + 1} rows), a bank holds {depth}, {rows - depth} too many; at most "
                    f"{depth // nbp - 1} inputs fit with batch {B}")
            if npo > tiles or (train and ma > tiles):
                big, what, most = (npo, f"its {n_out} outputs", tiles * Lw) if npo > tiles \
                    else (ma, f"its {n_in} inputs and the bias", tiles * Lw - 1)
                raise ValueError(f"The network's {layer} is too wide for one GEMM: {what} make "
                                 f"{big} tiles of {Lw}, a GEMM takes at most {tiles} (its mt "
                                 f"field); at most {most} fit")

    def constants(self):
        """``[(address, words)]`` the host writes once before running the programs: the
        identity matrix and the 1.0 after each hidden layer's weights."""
        f, Lw = self.desc.formats, self.lanes
        out = [(self.regions["identity"].addr, np.eye(Lw, dtype=np.int64).ravel())]
        for l in range(1, self.desc.layers):
            out.append((self.regions[f"W{l}"].end - 1, np.array([f.weight.scale])))
        return out

    # --- sizes -----------------------------------------------------------------------------------
    @property
    def block_words(self):
        """Words of one block of ``batch`` inputs, feature-major panels (:meth:`pack_inputs`)."""
        return self.sample_panels * (self.desc.sizes[0] + 1) * self.lanes

    @property
    def step_words(self):
        """Words of one training step's data (:meth:`pack_steps`)."""
        return self.block_words + self.sample_panels * self.desc.sizes[-1] * self.lanes

    def _feature_major(self, a):
        """``(steps, batch, n)`` → ``(steps, panels · n · lanes)``: per sample panel, one row
        per feature, one lane per sample (lanes past the batch are 0)."""
        n_steps, B, n = a.shape
        P, Lw = self.sample_panels, self.lanes
        out = np.zeros((n_steps, P * Lw, n), dtype=np.int64)
        out[:, :B] = a
        return out.reshape(n_steps, P, Lw, n).transpose(0, 1, 3, 2).reshape(n_steps, -1)

    def pack_inputs(self, x_aug):
        """Inference data: ``x_aug`` (``blocks · batch`` × ``D + 1``, act format with the ones
        column) as ``blocks`` blocks of :attr:`block_words` words."""
        x = np.asarray(x_aug).reshape(-1, self.desc.batch, self.desc.sizes[0] + 1)
        return self._feature_major(x).ravel()

    def pack_steps(self, x_aug, targets):
        """Training data: ``x_aug`` (``steps`` × ``batch`` × ``D + 1``, act format with the ones
        column) and ``targets`` (``steps`` × ``batch`` × ``C``, prob format) as a stream of
        :attr:`step_words`-word steps: the inputs, then the targets, both feature-major."""
        x, t = np.asarray(x_aug), np.asarray(targets)
        return np.concatenate([self._feature_major(x), self._feature_major(t)], axis=1).ravel()

    @property
    def sample_panels(self):
        return _ceil_div(self.desc.batch, self.lanes)

    def _width(self, j):
        """Samples in sample panel ``j``."""
        return min(self.lanes, self.desc.batch - j * self.lanes)

    def eval_layout(self, blocks):
        """``(input address, output address)`` in the data region for ``blocks`` blocks."""
        s, B = self.desc.sizes, self.desc.batch
        data = self.regions["data"].addr
        return data, data + blocks * self.block_words

    def validation_words(self, blocks):
        """Words of ``valacc``'s output area for ``blocks`` blocks: per sample ``C + 1`` 32-bit
        slots (:meth:`pack_validation`)."""
        return blocks * self.desc.batch * 2 * (self.desc.sizes[-1] + 1)

    def pack_validation(self, labels):
        """The ``valacc`` output area the host writes before the run, for ``labels`` (one per
        sample of the padded blocks; ``-1`` for a padding sample, never counted): per sample,
        ``C`` 32-bit slots whose high words the program fills with the logits (low words 0,
        so a ``LDW`` of a slot reads ``logit · 2**16``: signed comparisons of logits), then a
        slot holding the label."""
        labels = np.asarray(labels, dtype=np.int64)
        C = self.desc.sizes[-1]
        if labels.ndim != 1 or labels.size % self.desc.batch:
            raise ValueError(f"Validation labels must be one per sample of whole blocks of "
                             f"{self.desc.batch}, not of shape {labels.shape}")
        if labels.size and (labels.min() < -1 or labels.max() >= C):
            raise ValueError(f"Validation labels must be in -1..{C - 1}")
        out = np.zeros((labels.size, C + 1, 2), dtype=np.int64)
        out[:, C, 0] = labels & 0xFFFF
        out[:, C, 1] = np.where(labels < 0, 0xFFFF, 0)
        return out.ravel()

    def train_program(self, lr, *, base=None):
        """The training program for learning rate ``lr``, the same size as
        ``programs["train"]`` and at its place, or at ``base`` (a word address, a multiple of
        8: another copy resident at once, as in the standalone image)."""
        if base is None:
            if lr == self.desc.lr:
                return self.programs["train"]
            base = self.programs["train"].base
        return _two_pass(self._emit_train(self.desc.with_lr(lr)), *self._allocators("train"),
                         base)[0]

    def select_program(self, valid, *, base=None):
        """The ``select`` program feeding only the first ``valid`` samples of each block to the
        selector (at most the size of ``programs["select"]``, which feeds all ``batch``): for
        a last, partly filled block. At ``programs["select"]``'s place, or at ``base``."""
        check_positive_int(valid, "Valid samples per block")
        if valid > self.desc.batch:
            raise ValueError(f"Valid samples per block must be at most the batch "
                             f"({self.desc.batch}), not {valid!r}")
        if base is None:
            if valid == self.desc.batch:
                return self.programs["select"]
            base = self.programs["select"].base
        p = _two_pass(self._emit_forward("select", valid), *self._allocators("select"), base)[0]
        assert len(p) <= len(self.programs["select"])
        return p

    def select_out_words(self):
        """Words the ``selout`` program may write (the largest selection)."""
        return isa.sel_out_max_words(self.soc.selector, self.desc.formats.width)

    def seed_program(self, seed):
        """``SEED seed; HALT`` at the ``seed`` region."""
        p = Assembler(self.regions["seed"].addr)
        p.seed(seed=seed)
        p.halt()
        return p

    # --- the array's shape ------------------------------------------------------------------------
    def _gemm(self, p, **fields):
        _gemm(p, self._pad, self.lanes, **fields)

    def _cps(self, tiles):
        return _panel_rows(tiles, self.lanes, self._pad)

    # --- scratchpad buffers -----------------------------------------------------------------------
    def _allocators(self, kind):
        """Buffers (``docs/firmware.md``): ``W{l}`` weight panels; feature-major (one row per
        feature, one lane per sample) ``F{l}`` activations (``F0`` the batch), ``M{l}`` masks,
        ``G{l}``/``D{l}`` gradients before/after the mask, ``Z`` logits, ``T`` targets, ``P``
        probabilities; sample-major (one row per sample, one lane per feature) ``Sin{l}``
        (layer ``l``'s augmented input), ``Ms{l}`` masks, ``Gs{l}`` gradients, ``Sd{l}``
        (layer ``l``'s output gradient); ``WT{l}`` transposed weights. Accumulators: ``Y{l}``,
        ``Ys{l}`` (forward), ``E{l}``, ``Es{l}`` (backward), ``dW{l}``."""
        s, L, Lw, B = self.desc.sizes, self.desc.layers, self.lanes, self.desc.batch
        soc = self.soc
        sp = BankAllocator(soc.sp_banks, soc.sp_depth, "Operand scratchpad")
        acc = _AccAllocator(soc.acc_banks, soc.acc_depth)
        nbp = self.sample_panels
        for l in range(1, L + 1):
            n_in, n_out = s[l - 1], s[l]
            npo, mi = _ceil_div(n_out, Lw), _ceil_div(n_in, Lw)
            sp.add(f"W{l}", npo * (n_in + 1), persistent=True)
            # F0 is prefetched for the next step, F{l} hold ones rows: all live across steps
            sp.add(f"F{l - 1}", nbp * (n_in + 1), persistent=True)
            sp.apart(f"W{l}", f"F{l - 1}")
            acc.add(f"Y{l}", nbp * self._cps(npo))
            acc.add(f"Ys{l}", npo * self._cps(nbp))
            sp.add(f"M{l}", nbp * n_out)
            sp.add(f"Ms{l}", npo * B)
            sp.add(f"G{l}", nbp * n_out)
            sp.add(f"Gs{l}", npo * B)
            sp.add(f"D{l}", nbp * n_out)
            sp.add(f"Sin{l}", _ceil_div(n_in + 1, Lw) * B)
            sp.add(f"Sd{l}", npo * B)
            sp.add(f"WT{l}", mi * n_out)
            acc.add(f"WTa{l}", mi * self._cps(npo))
            acc.add(f"dW{l}", npo * self._cps(_ceil_div(n_in + 1, Lw)))
            acc.add(f"E{l}", nbp * self._cps(mi))
            acc.add(f"Es{l}", mi * self._cps(nbp))
            sp.apart(f"G{l}", f"M{l}")
            sp.apart(f"Gs{l}", f"Ms{l}")
            sp.apart(f"Sin{l}", f"Sd{l}")
            sp.apart(f"WT{l}", f"D{l}")
            if l < L:
                sp.apart(f"F{l}", f"M{l}")
                sp.apart(f"Sin{l + 1}", f"Ms{l}")
        C = s[-1]
        for name in ("Z", "T", "P"):
            sp.add(name, nbp * C)
        acc.add("Dsa", _ceil_div(C, Lw) * self._cps(nbp))
        acc.add("Xsa", _ceil_div(s[0] + 1, Lw) * self._cps(nbp))
        sp.add("I", Lw, persistent=True)
        for a in ["F0", f"D{L}"] + [f"W{l}" for l in range(2, L + 1)]:   # transposed with I
            sp.apart("I", a)
        sp.apart("Z", "T")
        sp.apart("Z", f"M{L}")
        return sp, acc

    # --- programs --------------------------------------------------------------------------------
    def _prologue(self, p, sp, params):
        """Load the parameters into registers, the weights into their panels (with the ones
        column of hidden layers), FILL the ones rows of the hidden layers' feature-major
        activations."""
        s, L, Lw, f = self.desc.sizes, self.desc.layers, self.lanes, self.desc.formats
        for reg, addr in params:
            p.ldw(rd=reg, rs=0, imm=addr)
        for l in range(1, L + 1):
            n_in, n_out = s[l - 1], s[l]
            w = self.regions[f"W{l}"]
            for po in range(_ceil_div(n_out, Lw)):
                wo = min(Lw, n_out - po * Lw)
                row = sp[f"W{l}"] + po * (n_in + 1)
                ones = l < L and wo < Lw               # the ones column fits in this panel
                _dma(p, store=False, transpose=False, rm=0, off=w.addr + po * Lw, sp_row=row,
                     rows=n_in + (not ones), cols=wo, stride=n_out)
                if ones:                               # bias row + the 1.0 after the matrix
                    _dma(p, store=False, transpose=False, rm=0,
                         off=w.addr + n_in * n_out + po * Lw, sp_row=row + n_in, rows=1,
                         cols=wo + 1, stride=n_out)
        ones = f.act.scale
        for l in range(1, L):
            for j in range(self.sample_panels):
                p.fill(space=Space.SP, dst=sp[f"F{l}"] + j * (s[l] + 1) + s[l], rows=1,
                       value=ones)

    def _load_identity(self, p, sp):
        """The ``lanes × lanes`` identity matrix into ``I``."""
        Lw = self.lanes
        _dma(p, store=False, transpose=False, rm=0, off=self.regions["identity"].addr,
             sp_row=sp["I"], rows=Lw, cols=Lw, stride=Lw)

    def _transpose(self, p, sp, acc, a, a_ps, a_panels, n, via, dst, dst_ps, dst_rows):
        """Transpose by ``GEMM`` with the identity and ``REQ`` (shift 0: exact). ``a`` has
        ``a_panels`` panels (stride ``a_ps``) of ``n`` rows, one lane per row of ``dst``;
        ``dst`` gets ``ceil(n / lanes)`` panels (stride ``dst_ps``) of ``dst_rows`` rows, panel
        ``j`` holding rows ``j·lanes ..`` of ``a`` as lanes. Returns a function that emits the
        ``REQ`` instructions, for the caller to call where it suits the schedule."""
        Lw = self.lanes
        panels = [(j, min(Lw, n - j * Lw)) for j in range(_ceil_div(n, Lw))]
        for j, k in panels:
            self._gemm(p, a_row=sp[a] + j * Lw, b_row=sp["I"],
                       c_row=acc[via] + j * self._cps(a_panels), k=k, mt=a_panels, nt=1,
                       a_ps=a_ps, b_ps=Lw, c_ps=self._cps(a_panels), accumulate=0)

        def reqs():
            for j, k in panels:
                p.req(src=acc[via] + j * self._cps(a_panels), dst=sp[dst] + j * dst_ps,
                      rows=dst_rows, lanes=k, shift=0, relu=0, rounding=0, mask_en=0,
                      mask_row=0)
        return reqs

    def _load_panels(self, p, sp_row, rows, off):
        """One descriptor: ``rows`` packed rows of ``lanes`` words at ``r[_R_DATA] + off``."""
        _dma(p, store=False, transpose=False, rm=_R_DATA, off=off, sp_row=sp_row, rows=rows,
             cols=self.lanes, stride=self.lanes)

    def _forward_layer(self, p, sp, acc, l, masks):
        """GEMM and one REQ per sample panel: layer ``l``'s output, feature-major, into ``F{l}``
        (hidden) or ``Z`` (logits); masks into ``M{l}`` if ``masks``."""
        s, L, Lw = self.desc.sizes, self.desc.layers, self.lanes
        n_in, n_out = s[l - 1], s[l]
        npo, nbp = _ceil_div(n_out, Lw), self.sample_panels
        self._gemm(p, a_row=sp[f"W{l}"], b_row=sp[f"F{l - 1}"], c_row=acc[f"Y{l}"],
                   k=n_in + 1, mt=npo, nt=nbp, a_ps=n_in + 1, b_ps=n_in + 1,
                   c_ps=self._cps(npo), accumulate=0)
        for j in range(nbp):
            dst = sp[f"F{l}"] + j * (n_out + 1) if l < L else sp["Z"] + j * n_out
            p.req(src=acc[f"Y{l}"] + j * self._cps(npo), dst=dst, rows=n_out, lanes=self._width(j),
                  shift=self.desc.step.fwd_shift, relu=int(l < L), rounding=0,
                  mask_en=int(masks), mask_row=sp[f"M{l}"] + j * n_out if masks else 0)

    def _forward_sample_major(self, p, sp, acc, l, gemm, req):
        """Hidden layer ``l``'s output again, sample-major (``H = H_in,aug · W``: the same
        values), with its ones column and masks: ``Sin{l+1}`` and ``Ms{l}`` (the ``GEMM`` if
        ``gemm``, the ``REQ`` and ``FILL`` if ``req``)."""
        s, Lw, B = self.desc.sizes, self.lanes, self.desc.batch
        n_in, n_out = s[l - 1], s[l]
        npo, nbp = _ceil_div(n_out, Lw), self.sample_panels
        if gemm:
            self._gemm(p, a_row=sp[f"F{l - 1}"], b_row=sp[f"W{l}"], c_row=acc[f"Ys{l}"],
                       k=n_in + 1, mt=nbp, nt=npo, a_ps=n_in + 1, b_ps=n_in + 1,
                       c_ps=self._cps(nbp), accumulate=0)
        if not req:
            return
        for j in range(npo):
            wo = min(Lw, n_out - j * Lw)
            # the last panel's lane wo is the ones column (weights 1.0 on the ones row)
            p.req(src=acc[f"Ys{l}"] + j * self._cps(nbp), dst=sp[f"Sin{l + 1}"] + j * B, rows=B,
                  lanes=min(Lw, wo + 1), shift=self.desc.step.fwd_shift, relu=1, rounding=0,
                  mask_en=1, mask_row=sp[f"Ms{l}"] + j * B)
        if n_out % Lw == 0:                            # the ones column is a panel of its own
            p.fill(space=Space.SP, dst=sp[f"Sin{l + 1}"] + npo * B, rows=B,
                   value=self.desc.formats.act.scale)

    def _emit_train(self, desc):
        """The training program for ``desc`` (this network's description, or a copy at another
        learning rate: only the ``SGD`` fields differ)."""
        def emit(p, sp, acc):
            self._emit_train_steps(p, sp, acc, desc)
        return emit

    def _emit_train_steps(self, p, sp, acc, d):
        s, L, Lw, B = d.sizes, d.layers, self.lanes, d.batch
        nbp, C, D1 = self.sample_panels, s[-1], s[0] + 1
        reg = self.regions
        st = d.step
        x_rows = nbp * D1                           # packed rows of one step's inputs
        self._prologue(p, sp, [(_R_COUNT, PARAM_STEPS), (_R_DATA, PARAM_DATA)])
        self._load_identity(p, sp)
        self._load_panels(p, sp["F0"], x_rows, 0)                 # the first step's inputs
        p.label("step")
        wt_reqs = []                                # Wᵀ of the current weights (for dH)
        for l in range(2, L + 1):
            n_in, n_out = s[l - 1], s[l]
            wt_reqs.append(self._transpose(p, sp, acc, f"W{l}", n_in + 1, _ceil_div(n_out, Lw),
                                           n_in, f"WTa{l}", f"WT{l}", n_out, n_out))
        # forward, feature-major: the next layer's operand (F0 was prefetched)
        self._forward_layer(p, sp, acc, 1, masks=False)
        self._load_panels(p, sp["T"], nbp * C, x_rows * Lw)      # targets feature-major
        for reqs in wt_reqs:
            reqs()
        for l in range(2, L + 1):
            self._forward_layer(p, sp, acc, l, masks=True)   # (layer 1's: not needed)
        # sample-major inputs and hidden activations (GEMM) while the logit gradients are
        # computed (VEC)
        xs_reqs = self._transpose(p, sp, acc, "F0", D1, nbp, D1, "Xsa", "Sin1", B, B)
        for l in range(1, L):
            self._forward_sample_major(p, sp, acc, l, gemm=True, req=False)
        for j in range(nbp):
            p.smx(mode=1, z_row=sp["Z"] + j * C, t_row=sp["T"] + j * C, dst=sp[f"G{L}"] + j * C,
                  classes=C, samples=self._width(j), z_frac=d.formats.act_frac, grad_shift=0,
                  inv_temp=d.inv_temp)
        xs_reqs()
        for l in range(1, L):
            self._forward_sample_major(p, sp, acc, l, gemm=False, req=True)
        self._load_panels(p, sp["F0"], x_rows, self.step_words)  # prefetch the next inputs
        p.relub(g_row=sp[f"G{L}"], mask_row=sp[f"M{L}"], dst=sp[f"D{L}"], rows=nbp * C,
                lanes=min(Lw, B))
        self._transpose(p, sp, acc, f"D{L}", C, nbp, C, "Dsa", f"Sd{L}", B, B)()   # dZ, by sample
        # backward and update
        for l in range(L, 0, -1):
            n_in, n_out = s[l - 1], s[l]
            npo, mi, ma = _ceil_div(n_out, Lw), _ceil_div(n_in, Lw), _ceil_div(n_in + 1, Lw)
            if l > 1:                               # dH_{l-1} = dY_l · W_l[:n_in]ᵀ (old W)
                self._gemm(p, a_row=sp[f"D{l}"], b_row=sp[f"WT{l}"], c_row=acc[f"Es{l}"],
                           k=n_out, mt=nbp, nt=mi, a_ps=n_out, b_ps=n_out,
                           c_ps=self._cps(nbp), accumulate=0)
            if l > 2:                               # the same, feature-major: dH_{l-1}ᵀ
                self._gemm(p, a_row=sp[f"WT{l}"], b_row=sp[f"D{l}"], c_row=acc[f"E{l}"],
                           k=n_out, mt=mi, nt=nbp, a_ps=n_out, b_ps=n_out,
                           c_ps=self._cps(mi), accumulate=0)
            # dW_l = H_{l-1,aug}ᵀ · dY_l: panel po at rows po·ma·R, one row per input feature
            self._gemm(p, a_row=sp[f"Sin{l}"], b_row=sp[f"Sd{l}"], c_row=acc[f"dW{l}"], k=B,
                       mt=ma, nt=npo, a_ps=B, b_ps=B, c_ps=self._cps(ma), accumulate=0)
            if l > 1:
                for i in range(mi):
                    p.req(src=acc[f"Es{l}"] + i * self._cps(nbp), dst=sp[f"Gs{l - 1}"] + i * B,
                          rows=B, lanes=min(Lw, n_in - i * Lw), shift=st.bwd_shift, relu=0,
                          rounding=0, mask_en=0, mask_row=0)
                p.relub(g_row=sp[f"Gs{l - 1}"], mask_row=sp[f"Ms{l - 1}"],
                        dst=sp[f"Sd{l - 1}"], rows=mi * B, lanes=Lw)
            if l > 2:
                for j in range(nbp):
                    p.req(src=acc[f"E{l}"] + j * self._cps(mi), dst=sp[f"G{l - 1}"] + j * n_in,
                          rows=n_in, lanes=self._width(j), shift=st.bwd_shift, relu=0,
                          rounding=0, mask_en=0, mask_row=0)
                p.relub(g_row=sp[f"G{l - 1}"], mask_row=sp[f"M{l - 1}"], dst=sp[f"D{l - 1}"],
                        rows=nbp * n_in, lanes=min(Lw, B))
            for po in range(npo):
                p.sgd(w_row=sp[f"W{l}"] + po * (n_in + 1), g_row=acc[f"dW{l}"] + po * self._cps(ma),
                      rows=n_in + 1, lanes=min(Lw, n_out - po * Lw), lr_shift=st.lr_shift,
                      lr_mul=st.lr_mul, wd_mul=0, rounding=_ROUNDING[d.rounding])
        p.addi(rd=_R_DATA, rs=_R_DATA, imm=self.step_words)
        p.addi(rd=_R_COUNT, rs=_R_COUNT, imm=-1)
        p.br(cond=Cond.NE, rs1=_R_COUNT, rs2=0, target="step")
        for l in range(1, L + 1):
            self._store_weights(p, sp, l)
        p.halt()

    def _store_weights(self, p, sp, l):
        n_in, n_out, Lw = self.desc.sizes[l - 1], self.desc.sizes[l], self.lanes
        for po in range(_ceil_div(n_out, Lw)):
            _dma(p, store=True, transpose=False, rm=0,
                 off=self.regions[f"W{l}"].addr + po * Lw, sp_row=sp[f"W{l}"] + po * (n_in + 1),
                 rows=n_in + 1, cols=min(Lw, n_out - po * Lw), stride=n_out)

    def _emit_forward(self, kind, valid=None):
        """Inference over blocks: ``logits`` and ``probs`` store their outputs; ``select``
        feeds the probabilities of the first ``valid`` samples of each block (default all) to
        the selector as samples ``r[_R_ID] + i`` (ids continue from block to block) and stores
        nothing."""
        def emit(p, sp, acc):
            d, s, L, Lw, B = (self.desc, self.desc.sizes, self.desc.layers, self.lanes,
                              self.desc.batch)
            nbp, C, D1 = self.sample_panels, s[-1], s[0] + 1
            n_valid = B if valid is None else valid
            slot = 2 * (C + 1)                     # valacc: words per sample of its output
            params = [(_R_COUNT, PARAM_STEPS), (_R_DATA, PARAM_DATA)]
            params.append((_R_ID, PARAM_ID) if kind == "select" else (_R_OUT, PARAM_OUT))
            self._prologue(p, sp, params)
            p.label("block")
            self._load_panels(p, sp["F0"], nbp * D1, 0)
            for l in range(1, L + 1):
                self._forward_layer(p, sp, acc, l, masks=False)
            out = "Z"
            if kind in ("probs", "select"):
                out = "P"
                for j in range(nbp):
                    p.smx(mode=0, z_row=sp["Z"] + j * C, t_row=0, dst=sp["P"] + j * C,
                          classes=C, samples=self._width(j), z_frac=d.formats.act_frac,
                          grad_shift=0, inv_temp=d.inv_temp)
                    w = min(self._width(j), n_valid - j * Lw)
                    if kind == "select" and w > 0:
                        p.selfeed(prob_row=sp["P"] + j * C, samples=w, rid=_R_ID)
                        p.addi(rd=_R_ID, rs=_R_ID, imm=w)
            if kind in ("logits", "probs"):
                for j in range(nbp):
                    _dma(p, store=True, transpose=True, rm=_R_OUT, off=j * Lw * C,
                         sp_row=sp[out] + j * C, rows=self._width(j), cols=C, stride=C)
            elif kind == "valacc":                 # logit c of sample s: high word of slot c
                for j in range(nbp):
                    for c in range(C):
                        _dma(p, store=True, transpose=True, rm=_R_OUT,
                             off=j * Lw * slot + 2 * c + 1, sp_row=sp[out] + j * C + c,
                             rows=self._width(j), cols=1, stride=slot)
            p.addi(rd=_R_DATA, rs=_R_DATA, imm=self.block_words)
            if kind in ("logits", "probs"):
                p.addi(rd=_R_OUT, rs=_R_OUT, imm=B * C)
            elif kind == "valacc":
                p.addi(rd=_R_OUT, rs=_R_OUT, imm=B * slot)
            p.addi(rd=_R_COUNT, rs=_R_COUNT, imm=-1)
            p.br(cond=Cond.NE, rs1=_R_COUNT, rs2=0, target="block")
            if kind == "valacc":
                self._emit_count_correct(p)
            p.halt()
        return emit

    def _emit_count_correct(self, p):
        """``valacc``'s tail: for every sample of the output area, the first index of its
        largest logit (``LDW`` of the slots, signed compares) against its label; the number of
        matches is stored at :data:`PARAM_ID`."""
        C, B = self.desc.sizes[-1], self.desc.batch
        slot = 2 * (C + 1)
        p.ldw(rd=_R_OUT, rs=0, imm=PARAM_OUT)
        p.ldw(rd=_R_COUNT, rs=0, imm=PARAM_STEPS)
        for _ in range(B.bit_length() - 1):        # blocks · batch samples
            p.add(rd=_R_COUNT, rs1=_R_COUNT, rs2=_R_COUNT)
        p.seti(rd=_R_ID, imm=0)
        p.label("sample")
        p.ldw(rd=_R_BEST, rs=_R_OUT, imm=0)
        p.seti(rd=_R_ARG, imm=0)
        for c in range(1, C):                      # a later class wins only if strictly larger
            p.ldw(rd=_R_CAND, rs=_R_OUT, imm=2 * c)
            p.br(cond=Cond.GE, rs1=_R_BEST, rs2=_R_CAND, target=f"keep{c}")
            p.add(rd=_R_BEST, rs1=_R_CAND, rs2=0)
            p.seti(rd=_R_ARG, imm=c)
            p.label(f"keep{c}")
        p.ldw(rd=_R_CAND, rs=_R_OUT, imm=2 * C)
        p.br(cond=Cond.NE, rs1=_R_ARG, rs2=_R_CAND, target="wrong")
        p.addi(rd=_R_ID, rs=_R_ID, imm=1)
        p.label("wrong")
        p.addi(rd=_R_OUT, rs=_R_OUT, imm=slot)
        p.addi(rd=_R_COUNT, rs=_R_COUNT, imm=-1)
        p.br(cond=Cond.NE, rs1=_R_COUNT, rs2=0, target="sample")
        p.stw(rt=_R_ID, rs=0, imm=PARAM_ID)


def compile_mlp(desc, soc=DEFAULT_SOC, kinds=("train", "logits", "probs")):
    """Compile ``desc`` (an :class:`MLPDescription`) for ``soc``: a :class:`CompiledMLP` with
    the programs ``kinds`` (some of :data:`PROGRAM_KINDS`; an inference-only network needs
    less scratchpad than one that trains).

    Raises
    ------
    TypeError
        If ``desc`` or ``soc`` has the wrong type.
    ValueError
        If the network and batch do not fit the scratchpads or main memory.
    """
    return CompiledMLP(desc, soc, kinds)


# ------------------------------------------------------------------------------------------------
# Matrix product

def _matmul_row_block(m, k, soc):
    """Row tiles per *row block*: the unit of the order in which :func:`compile_matmul`
    requantizes (row blocks top to bottom; in each, the column panels left to right, one
    ``REQ`` over the block's rows per panel). With stochastic rounding that order is the draw
    order of each lane's generator, so the block is the first tiled program's (``A`` loaded
    transposed in chunks of at most 255 rows of ``K`` and half a bank, sharing its bank with
    the ``REQ`` output): the draws are the same as they have always been. A row tile is the
    array's ``R`` rows."""
    R, depth = soc.config.array.rows, soc.sp_depth
    kc = min(k, _MAX_DMA_COLS, depth // 2)
    gemm_tiles = isa.field_slices(Op.GEMM)["mt"][1].max
    return max(1, min(_ceil_div(m, R), gemm_tiles, depth // (kc + R)))


@dataclass(frozen=True)
class _MatmulStep:
    """One ``GEMM`` of a matrix product: row tiles ``i0 .. i0 + mbi`` (row block ``rb``),
    column panels ``j0 .. j0 + nbj`` (group ``g``), rows ``k0 .. k0 + kk`` of ``K`` (chunk
    ``c``); ``last``: the output block's last chunk."""
    rb: int
    g: int
    c: int
    i0: int
    mbi: int
    j0: int
    nbj: int
    k0: int
    kk: int
    last: bool


@dataclass(frozen=True)
class _MatmulPlan:
    """The tiling of :func:`compile_matmul` for ``A`` (m×k) · ``B`` (k×n) on ``soc``.

    Output blocks are a row block (``mb`` row tiles, :func:`_matmul_row_block`) by a group of
    ``nb`` column panels; each is accumulated over ``chunks`` chunks of ``kc`` rows of ``K``,
    one ``GEMM`` per chunk. ``A`` buffers (a row block's panels of one chunk, then the block's
    ``REQ`` output) alternate between the banks ``a_banks``, ``B`` buffers (a group's panels of
    one chunk) between ``b_banks``, output blocks between the accumulator ``slots``. The whole
    ``R × C`` array works: ``A``'s panels are ``rows = R`` wide (a row tile), ``B``'s and the
    output's ``cols = C`` (a column tile); no buffer is both an ``A`` and a ``B`` operand.
    """
    m: int
    k: int
    n: int
    rows: int
    cols: int
    depth: int
    mb: int
    kc: int
    chunks: int
    nb: int
    a_banks: tuple
    b_banks: tuple
    slots: tuple

    @classmethod
    def make(cls, m, k, n, soc):
        _array_shape(soc)
        R, C = soc.config.array.rows, soc.config.array.cols
        depth, banks = soc.sp_depth, soc.sp_banks
        mt, nt = _ceil_div(m, R), _ceil_div(n, C)
        gemm_tiles = isa.field_slices(Op.GEMM)["nt"][1].max
        mb = _matmul_row_block(m, k, soc)
        kc_max = depth // mb - R                  # the A chunk and its REQ output: one bank
        if kc_max < 1:
            raise ValueError(f"Scratchpad banks of {depth} rows are too small for a row block "
                             f"of {mb} tiles of {R} rows")
        chunks = _ceil_div(k, kc_max)
        kc = _ceil_div(k, chunks)
        panel = mb * R                            # accumulator rows of an output panel
        if soc.acc_banks >= 2 and panel <= soc.acc_depth:
            slot_rows, slots = soc.acc_depth, (0, soc.acc_depth)
        else:
            slot_rows, slots = soc.acc_rows, (0,)
        nb = max(1, min(nt, gemm_tiles, depth // kc, slot_rows // panel))
        if panel * nb > slot_rows:
            raise ValueError("Accumulator scratchpad is too small for one output tile")
        a_banks = (0, 1) if banks >= 4 else (0,)
        b_banks = (banks - 2, banks - 1) if banks >= 3 else (banks - 1,)
        return cls(m, k, n, R, C, depth, mb, kc, chunks, nb, a_banks, b_banks[:2], slots)

    @property
    def mt(self):
        return _ceil_div(self.m, self.rows)

    @property
    def nt(self):
        return _ceil_div(self.n, self.cols)

    @property
    def row_blocks(self):
        return _ceil_div(self.mt, self.mb)

    @property
    def groups(self):
        return _ceil_div(self.nt, self.nb)

    def steps(self):
        """The :class:`_MatmulStep` of every ``GEMM``, in program order."""
        for rb in range(self.row_blocks):
            i0 = rb * self.mb
            for g in range(self.groups):
                j0 = g * self.nb
                for c in range(self.chunks):
                    k0 = c * self.kc
                    yield _MatmulStep(rb, g, c, i0, min(self.mb, self.mt - i0), j0,
                                      min(self.nb, self.nt - j0), k0, min(self.kc, self.k - k0),
                                      c == self.chunks - 1)

    def instructions(self, seed=None):
        """Instructions of the program (:func:`_emit_matmul`'s loops in closed form)."""
        r, g, ch, mt, nt = self.row_blocks, self.groups, self.chunks, self.mt, self.nt
        n = (seed is not None) + 1 + r * g * ch             # SEED, HALT, GEMMs
        # with one chunk, a row block's A panels are loaded once, the full-width ones by one
        # descriptor (consecutive in main memory), a narrower last one by its own; else every
        # step, one descriptor per panel. B likewise: once (one group) or every step.
        if ch == 1:
            n += r + self._split(self.m, self.rows, self.mt - (r - 1) * self.mb)
            n += 1 + self._split(self.n, self.cols, nt) if g == 1 else \
                r * (g + self._split(self.n, self.cols, nt - (g - 1) * self.nb))
        else:
            n += mt * g * ch + r * ch * nt
        return n + 2 * r * nt                               # a REQ and a store per panel

    @staticmethod
    def _split(size, lanes, last_panels):
        """1 if the last block of panels (``last_panels`` of them) of a dimension of ``size``
        in panels of ``lanes`` needs two descriptors: full-width panels and a narrower last
        one."""
        return int(size % lanes != 0 and last_panels > 1)

    @staticmethod
    def width(size, lanes, panel):
        """Columns of panel ``panel`` of a dimension of ``size`` in panels of ``lanes``:
        ``lanes``, fewer in the last."""
        return min(lanes, size - panel * lanes)

    def region_words(self):
        """Main-memory words of ``A``, ``B`` and ``C`` in the panel layouts
        (:class:`CompiledMatmul`): as many as the matrices have elements."""
        return self.m * self.k, self.k * self.n, self.m * self.n


def _load_panels(p, plan, *, addr, size, lanes, panels, k0, kk, sp_row):
    """Load rows ``k0 .. k0 + kk`` of ``K`` of the consecutive panels ``panels`` (a range) of
    ``A`` (``size = m``, ``lanes = R``) or ``B`` (``size = n``, ``lanes = C``) at ``addr``,
    non-transposed, to ``kk`` scratchpad rows per panel from ``sp_row``. A panel's row is its
    ``width`` consecutive words; with the whole of ``K`` (one chunk) the full-width panels are
    consecutive in main memory and move as one block (a narrower last panel by its own
    descriptor), else one per panel."""
    L, K = lanes, plan.k
    if kk == K:
        full = [j for j in panels if plan.width(size, L, j) == L]
        runs = [full] + [[j] for j in panels if plan.width(size, L, j) < L]
    else:
        runs = [[j] for j in panels]
    for run in filter(None, runs):
        w = plan.width(size, L, run[0])
        p.dma(direction=Dir.LOAD, space=Space.SP, transpose=0, elem_words=1, rm=0,
              mem_off=addr + run[0] * L * K + k0 * w, sp_row=sp_row + (run[0] - panels[0]) * kk,
              rows=len(run) * kk, cols=w, stride=w)


def _emit_matmul(p, plan, shift, rounding, seed, a_addr, b_addr, c_addr):
    """The program of :func:`compile_matmul` (addresses of the panel layouts).

    Step ``s``: ``GEMM`` ``s``; the loads of step ``s + 1`` into the other ``A``/``B`` bank
    (only what changes: ``A`` stays for a row block when ``K`` is one chunk, ``B`` for the
    whole product when it is one group); then ``REQ`` and store of each panel of the output
    block finished at step ``s − 1`` (its accumulator slot is not the one ``GEMM`` ``s``
    writes) into the ``A`` bank ``GEMM`` ``s`` does not read. So the DMA and the vector unit
    work while the array does. With one accumulator slot the block is requantized right after
    its last ``GEMM``."""
    R, C, depth, m, n = plan.rows, plan.cols, plan.depth, plan.m, plan.n
    if seed is not None:
        p.seed(seed=seed)
    steps = list(plan.steps())
    groups = plan.groups

    def load_a(st, bank):
        _load_panels(p, plan, addr=a_addr, size=m, lanes=R,
                     panels=range(st.i0, st.i0 + st.mbi),
                     k0=st.k0, kk=st.kk, sp_row=bank * depth)

    def load_b(st, bank):
        _load_panels(p, plan, addr=b_addr, size=n, lanes=C,
                     panels=range(st.j0, st.j0 + st.nbj),
                     k0=st.k0, kk=st.kk, sp_row=bank * depth)

    def slot(st):
        return plan.slots[(st.rb * groups + st.g) % len(plan.slots)]

    def requantize(st, bank):
        rows = min(st.mbi * R, m - st.i0 * R)
        out = bank * depth + plan.mb * plan.kc
        for j in range(st.nbj):
            c0, w = (st.j0 + j) * C, plan.width(n, C, st.j0 + j)
            p.req(src=slot(st) + j * st.mbi * R, dst=out, rows=rows, lanes=w, shift=shift,
                  relu=0, rounding=_ROUNDING[rounding], mask_en=0, mask_row=0)
            p.dma(direction=Dir.STORE, space=Space.SP, transpose=0, elem_words=1, rm=0,
                  mem_off=c_addr + c0 * m + st.i0 * R * w, sp_row=out, rows=rows, cols=w,
                  stride=w)

    xa = xb = 0
    load_a(steps[0], plan.a_banks[0])
    load_b(steps[0], plan.b_banks[0])
    lag = len(plan.slots) - 1
    ready = []
    for s, st in enumerate(steps):
        p.gemm(a_row=plan.a_banks[xa] * depth, b_row=plan.b_banks[xb] * depth, c_row=slot(st),
               k=st.kk, mt=st.mbi, nt=st.nbj, a_ps=st.kk, b_ps=st.kk, c_ps=st.mbi * R,
               accumulate=int(st.c > 0))
        out_bank = plan.a_banks[(xa + 1) % len(plan.a_banks)]
        if s + 1 < len(steps):
            nx = steps[s + 1]
            if (nx.rb, nx.c) != (st.rb, st.c):
                xa = (xa + 1) % len(plan.a_banks)
                load_a(nx, plan.a_banks[xa])
            if (nx.g, nx.c) != (st.g, st.c):
                xb = (xb + 1) % len(plan.b_banks)
                load_b(nx, plan.b_banks[xb])
        if st.last and not lag:
            ready.append(st)
        for done in ready:
            requantize(done, out_bank)
        ready = [st] if st.last and lag else []
    for done in ready:
        requantize(done, plan.a_banks[(xa + 1) % len(plan.a_banks)])
    p.halt()


@dataclass(frozen=True)
class CompiledMatmul:
    """A tiled matrix product ``C = sat(round(A·B / 2**shift))``.

    Main memory holds the operands and the result as **panels**, ``A``'s of ``rows`` (the
    array's ``R``) rows, ``B``'s and ``C``'s of ``cols`` (its ``C``) columns, the last one
    narrower if the dimension is not a multiple, one after the other, each panel's rows
    consecutive, so that every scratchpad row moves as one block row of consecutive words,
    non-transposed; each region has as many words as its matrix has elements:

    * ``A`` (m×k) at ``a_addr``: row panel ``i`` (rows ``i·rows ..``, ``w`` of them)
      transposed, at word ``i·rows·k``: ``k`` rows of ``w`` words, ``A[i·rows + r, κ]`` at
      ``i·rows·k + κ·w + r``;
    * ``B`` (k×n) at ``b_addr``: column panel ``j`` (``w`` columns) at word ``j·cols·k``,
      ``B[κ, j·cols + c]`` at ``j·cols·k + κ·w + c``;
    * ``C`` (m×n) at ``c_addr``: column panel ``j`` at word ``j·cols·m``, ``C[r, j·cols + c]``
      at ``j·cols·m + r·w + c``.

    :meth:`pack_a`, :meth:`pack_b` and :meth:`unpack_c` convert.

    Attributes
    ----------
    program : Assembler
        At word address 0.
    a_addr, b_addr, c_addr : int
    m, k, n, rows, cols : int
    c_words : int
        Words of the ``C`` region, ``m·n``.
    """
    program: Assembler
    a_addr: int
    b_addr: int
    c_addr: int
    m: int
    k: int
    n: int
    rows: int
    cols: int

    @property
    def c_words(self):
        return self.m * self.n

    def pack_a(self, a):
        """``A`` (m×k integers) as the words of its region."""
        a, R = np.asarray(a, dtype=np.int64), self.rows
        return np.concatenate([a[r0:r0 + R].T.ravel() for r0 in range(0, self.m, R)])

    def pack_b(self, b):
        """``B`` (k×n integers) as the words of its region."""
        b, C = np.asarray(b, dtype=np.int64), self.cols
        return np.concatenate([b[:, c0:c0 + C].ravel() for c0 in range(0, self.n, C)])

    def unpack_c(self, words):
        """``C`` (m×n) from the :attr:`c_words` words of its region."""
        words, m, C = np.asarray(words), self.m, self.cols
        return np.hstack([words[c0 * m:(c0 + min(C, self.n - c0)) * m].reshape(m, -1)
                          for c0 in range(0, self.n, C)])


def _matmul_instructions(m, k, n, soc, seed=None):
    """Instructions of :func:`compile_matmul`'s program, counted without emitting it."""
    return _MatmulPlan.make(m, k, n, soc).instructions(seed)


def _matmul_layout(soc, program, plan):
    """Main-memory regions ``A``, ``B``, ``C`` after a program of ``program`` words."""
    lay = MemoryLayout(soc.mem_words)
    lay.add("program", program)
    # each region starts a main-memory line (the sequencer fetches an instruction as one line):
    # a full-width panel's rows then touch as few lines as they can
    return tuple(lay.add(name, words, align=isa.INSN_WORDS)
                 for name, words in zip("ABC", plan.region_words()))


def matmul_max_square(soc=DEFAULT_SOC):
    """The largest ``s`` for which an ``s×s`` by ``s×s`` product fits ``soc``'s main memory
    (its program and the three matrices: :func:`compile_matmul`)."""
    def fits(s):
        try:
            plan = _MatmulPlan.make(s, s, s, soc)
            _matmul_layout(soc, 8 * plan.instructions(1), plan)
        except ValueError:
            return False
        return True
    lo, hi = 0, 1
    while fits(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def compile_matmul(m, k, n, shift=0, rounding="nearest-even", soc=DEFAULT_SOC, seed=None):
    """Compile ``C = sat(round(A·B / 2**shift))`` for ``A`` (m×k) and ``B`` (k×n).

    The operands and the result live in main memory as panels (:class:`CompiledMatmul`), so
    every load and store is non-transposed, whole panel rows of consecutive words. Output
    blocks of a row block (:func:`_matmul_row_block`) by up to ``nb`` column panels are
    accumulated over chunks of ``K`` (one ``GEMM`` each, ``accumulate`` after the first),
    requantized by one ``REQ`` per column panel and stored; a row block's ``A`` panels stay in
    the scratchpad for all its column panels when ``K`` is one chunk, and ``B`` for the whole
    product when it is one group. Loads of the next ``GEMM``'s operands and the previous
    block's ``REQ`` and stores run while the array computes (:func:`_emit_matmul`). With
    ``seed`` the program starts with ``SEED seed`` (for stochastic rounding); the draws go in
    the order of the ``REQ``\\s.

    Raises
    ------
    TypeError, ValueError
        On a bad size, shift or rounding, or if the program and the operands do not fit main
        memory (checked before the program is built; the message names the largest square
        product that fits, :func:`matmul_max_square`).
    """
    for v, what in ((m, "Rows of A"), (k, "Inner dimension"), (n, "Columns of B")):
        check_positive_int(v, what)
    check_int(shift, "Shift")
    if not 0 <= shift <= 32:
        raise ValueError(f"Shift must be between 0 and 32, not {shift!r}")
    if rounding not in _ROUNDING:
        raise ValueError(f"Rounding must be one of {', '.join(map(repr, _ROUNDING))}, "
                         f"not {rounding!r}")
    _array_shape(soc)
    plan = _MatmulPlan.make(m, k, n, soc)
    program = 8 * plan.instructions(seed)
    try:                                      # refused before compiling, with what fits
        a, b, c = _matmul_layout(soc, program, plan)
    except ValueError as e:
        s = matmul_max_square(soc)
        raise ValueError(f"{e}: a {m}×{k} by {k}×{n} product needs "
                         f"{program + sum(plan.region_words())} words (program, A, B and C); "
                         f"the largest square product that fits is {s}×{s}") from None
    p = Assembler(0)
    _emit_matmul(p, plan, shift, rounding, seed, a.addr, b.addr, c.addr)
    assert 8 * len(p) == program
    return CompiledMatmul(p, a.addr, b.addr, c.addr, m, k, n, plan.rows, plan.cols)
