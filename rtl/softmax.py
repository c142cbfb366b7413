"""The softmax unit: fixed-point softmax with temperature, or the cross-entropy gradient."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spec.params import OPERAND_WIDTH, check_int, check_positive_int
from spec.softmax_tables import (
    EXP_FRAC, EXP_INDEX_BITS, EXP_TABLE, GRAD_SHIFT_MAX, INV_TEMP_WIDTH, K_FRAC, K_SHIFT, K_WIDTH,
    LOG2E_Q, RECIP_BITS, RECIP_CYCLES, RECIP_SHIFT, RECIP_STEP_BITS, SOFTMAX_EXP_LATENCY,
    SOFTMAX_MAX_WIDTH, SOFTMAX_OUT_LATENCY,
)

__all__ = ["SoftmaxMode", "SoftmaxUnit"]


class SoftmaxMode(enum.Enum, shape=1):
    """What :class:`SoftmaxUnit` outputs."""
    PROBS = 0   #: probabilities ``softmax(z/T)`` (prob format)
    GRAD = 1    #: cross-entropy gradient ``softmax(z/T) - target`` (gradient format)


class _State(enum.Enum, shape=2):
    LOAD = 0
    EXP = 1
    DIV = 2
    OUT = 3


def _round_ne(m, x, shift, name):
    """Round ``x / 2**shift`` half to even, for ``shift >= 1`` (an int or an unsigned Value).

    Returns ``(q, up)``: the floor ``q = x >> shift`` and the rounding increment
    ``up = r & (sticky | q[0])``, where ``r`` is bit ``shift - 1`` of ``x`` (the half) and
    ``sticky`` is the OR of the bits below it; the rounded value is ``q + up``. No comparators:
    shifters and OR-reductions only.
    """
    max_shift = shift if isinstance(shift, int) else (1 << len(shift)) - 1
    width = max(len(x), max_shift) + 1
    xs = Signal(signed(width), name=f"{name}_x")
    q = Signal(signed(width), name=f"{name}_q")
    half_bit = Signal(name=f"{name}_half")
    sticky_mask = Signal(unsigned(width), name=f"{name}_sticky_mask")
    m.d.comb += [
        xs.eq(x),
        q.eq(xs >> shift),
        half_bit.eq((xs << 1) >> shift),        # bit shift - 1 of x (truncated to bit 0)
        sticky_mask.eq(~(Const((1 << width) - 1, width) << shift) >> 1),
    ]
    sticky = (xs.as_unsigned() & sticky_mask).any()
    return q, half_bit & (sticky | q[0])


def _rounded(m, x, shift, name):
    """``x / 2**shift`` rounded half to even (see :func:`_round_ne`), in one stage."""
    q, up = _round_ne(m, x, shift, name)
    return q + up


def _saturate(value, width):
    """``value`` clamped to the ``width``-bit signed range (by its top bits, no comparator)."""
    top = value[width - 1:]
    fits = (top == 0) | (top == (1 << len(top)) - 1)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return Mux(fits, value[:width], Mux(value[-1], lo, hi))


def _saturate_inc(q, up, width):
    """``q + up`` (``up`` one bit) clamped to the ``width``-bit signed range, without the wide
    sum: when ``q`` fits, ``q + up`` is its low bits plus ``up`` (a ``width``-bit increment),
    clamped at the top when ``q`` is already the largest value; when it does not, ``q + up``
    cannot fit either (below the range ``q + 1`` is at most the smallest value), so the clamp
    follows ``q``'s sign."""
    top = q[width - 1:]
    fits = (top == 0) | (top == (1 << len(top)) - 1)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    low = q[:width].as_signed()
    inc = Mux(up & (low == hi), hi, low + up)
    return Mux(fits, inc, Mux(q[-1], lo, hi))


class SoftmaxUnit(wiring.Component):
    """Softmax with temperature, or the softmax cross-entropy gradient, of a stream of samples.

    Bit-exact with :func:`golden.softmax.softmax_probs` (``mode = PROBS``) and
    :func:`golden.softmax.softmax_xent_grad` (``mode = GRAD``); the cycle count per sample is
    exactly :func:`golden.softmax.softmax_cycles`. The algorithm and its constants
    (:mod:`spec.softmax_tables`) are described in ``docs/softmax.md``.

    A *sample* is ``C`` logits (``1 <= C <= classes_max``, may vary from sample to sample), one
    per beat on ``i_logit``, the last flagged by ``last``; in gradient mode each beat also carries
    the class's target. The unit processes one sample at a time in four phases:

    * *load*: one beat per cycle into a buffer, tracking the maximum; ``C`` cycles;
    * *exp*: a 9-stage pipeline (read, read data register, ``u = max - z``, ``u·k``, round, table
      read, table data register, shift, write and sum) computes one exponential per cycle into a
      second buffer and sums them; ``C + SOFTMAX_EXP_LATENCY`` cycles;
    * *div*: the reciprocal of the sum by radix-4 division, ``RECIP_STEP_BITS`` quotient bits per
      cycle; ``RECIP_CYCLES`` cycles;
    * *out*: a 7-stage pipeline (read, read data register, ``e·R`` and target shift, difference,
      shift and rounding bit, rounding increment and saturation, output register) produces one
      result per beat on ``o_result``, ``last`` on the sample's final one;
      ``C + SOFTMAX_OUT_LATENCY`` cycles while ``o_result.ready`` stays high.
      The pipeline stalls whole while the output register is not taken, so back-pressure loses or
      duplicates nothing.

    ``i_logit.ready`` is high only in the load phase, so the next sample's first beat is accepted
    at the earliest in the cycle after the previous sample's last result.

    A sample of more than ``classes_max`` beats keeps its first ``classes_max`` elements; the
    extra beats are accepted and dropped and ``overflow`` is set.

    The per-operation inputs (``mode``, the fraction bits, ``inv_temp``, ``grad_shift``) must be
    held stable from a sample's first input beat until its last output beat is accepted (while
    ``busy``, and in the cycle the first beat is accepted); values of ``z_frac``, ``prob_frac`` or
    ``grad_frac`` of ``width`` or more give undefined results.

    Parameters
    ----------
    classes_max : int
        Largest number of classes per sample (the depth of the buffers).
    width : int
        Operand width, ``2 .. SOFTMAX_MAX_WIDTH``; default :data:`spec.params.OPERAND_WIDTH`.

    Members
    -------
    i_logit : In(stream.Signature(StructLayout({"logit", "target", "last"})))
        ``logit`` and ``target`` are ``signed(width)``, ``last`` one bit. The samples: a logit
        (``z_frac`` fraction bits), its target (prob format; ignored in ``PROBS`` mode) and
        whether it is the sample's last element.
    o_result : Out(stream.Signature(StructLayout({"value": signed(width), "last": 1})))
        The results, in input order: probabilities (``prob_frac`` fraction bits) or gradients
        (``grad_frac`` fraction bits, scaled by ``2**-grad_shift``); ``last`` on a sample's
        final one.
    mode : In(SoftmaxMode)
        Probabilities or gradient.
    z_frac, prob_frac, grad_frac : In(range(width))
        Fraction bits of the logits, of probabilities and targets, and of gradients.
    inv_temp : In(INV_TEMP_WIDTH)
        ``1/T`` with ``INV_TEMP_FRAC`` fraction bits (``INV_TEMP_ONE``: ``T = 1``).
    grad_shift : In(range(GRAD_SHIFT_MAX + 1))
        Extra right shift of the gradient.
    busy : Out(1)
        A sample is in progress (from its first accepted beat to its last result's acceptance).
    overflow : Out(1)
        Sticky: a sample had more than ``classes_max`` elements. Cleared by ``overflow_clr``.
    overflow_clr : In(1)
        Clear ``overflow``.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If ``classes_max < 1`` or ``width`` is not in ``2 .. SOFTMAX_MAX_WIDTH``.
    """

    def __init__(self, classes_max, *, width=OPERAND_WIDTH):
        check_positive_int(classes_max, "Maximum number of classes")
        check_int(width, "Width")
        if not 2 <= width <= SOFTMAX_MAX_WIDTH:
            raise ValueError(f"Width must be between 2 and {SOFTMAX_MAX_WIDTH}, not {width!r}")
        self._classes_max = classes_max
        self._width = width
        super().__init__({
            "i_logit": In(stream.Signature(data.StructLayout({
                "logit": signed(width), "target": signed(width), "last": 1}))),
            "o_result": Out(stream.Signature(data.StructLayout({
                "value": signed(width), "last": 1}))),
            "mode": In(SoftmaxMode),
            "z_frac": In(range(width)),
            "prob_frac": In(range(width)),
            "grad_frac": In(range(width)),
            "inv_temp": In(INV_TEMP_WIDTH),
            "grad_shift": In(range(GRAD_SHIFT_MAX + 1)),
            "busy": Out(1),
            "overflow": Out(1),
            "overflow_clr": In(1),
        })

    @property
    def classes_max(self):
        return self._classes_max

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        width, cmax = self._width, self._classes_max
        e_shape = unsigned(EXP_FRAC + 1)                         # e <= 2**EXP_FRAC
        sum_shape = unsigned(EXP_FRAC + 1 + (cmax - 1).bit_length())

        m.submodules.zt_mem = zt_mem = Memory(
            shape=data.StructLayout({"logit": signed(width), "target": signed(width)}),
            depth=cmax, init=[])
        m.submodules.e_mem = e_mem = Memory(shape=e_shape, depth=cmax, init=[])
        m.submodules.exp_rom = exp_rom = Memory(shape=e_shape, depth=len(EXP_TABLE),
                                                init=EXP_TABLE)
        zt_wr = zt_mem.write_port()
        zt_rd = zt_mem.read_port()
        e_wr = e_mem.write_port()
        e_rd = e_mem.read_port()
        rom_rd = exp_rom.read_port()

        state = Signal(_State, name="state")
        count = Signal(range(cmax + 1), name="count")       # elements loaded so far
        classes = Signal(range(cmax + 1), name="classes")   # C of the sample in progress
        z_max = Signal(signed(width), name="z_max")

        # Static per-operation values, registered (the inputs are stable from a sample's first
        # beat on; the first use of each comes at least two cycles later).
        k_full = Signal(INV_TEMP_WIDTH + LOG2E_Q.bit_length(), name="k_full")
        k = Signal(K_WIDTH, name="k")                       # log2(e)/T, K_FRAC fraction bits
        m.d.sync += [
            k_full.eq(self.inv_temp * LOG2E_Q),
            k.eq(_rounded(m, k_full, K_SHIFT, "k_round")),
        ]
        a_shift = Signal(range(width + K_FRAC), name="a_shift")
        m.d.sync += a_shift.eq(self.z_frac + (K_FRAC - EXP_INDEX_BITS))
        t_shift = Signal(range(RECIP_SHIFT + 1), name="t_shift")
        m.d.sync += t_shift.eq(RECIP_SHIFT - self.prob_frac)
        out_shift = Signal(range(RECIP_SHIFT + GRAD_SHIFT_MAX + 1), name="out_shift")
        grad_mode = Signal(name="grad_mode")
        m.d.sync += grad_mode.eq(self.mode == SoftmaxMode.GRAD)
        with m.If(self.mode == SoftmaxMode.GRAD):
            m.d.sync += out_shift.eq(RECIP_SHIFT + self.grad_shift - self.grad_frac)
        with m.Else():
            m.d.sync += out_shift.eq(RECIP_SHIFT - self.prob_frac)

        m.d.comb += self.busy.eq((state != _State.LOAD) | (count != 0))
        with m.If(self.overflow_clr):
            m.d.sync += self.overflow.eq(0)

        # ---- load ------------------------------------------------------------------------------
        beat = self.i_logit.payload
        m.d.comb += [
            self.i_logit.ready.eq(state == _State.LOAD),
            zt_wr.addr.eq(count),
            zt_wr.data.logit.eq(beat.logit),
            zt_wr.data.target.eq(beat.target),
        ]
        with m.If((state == _State.LOAD) & self.i_logit.valid):
            with m.If(count < cmax):
                m.d.comb += zt_wr.en.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If((count == 0) | (beat.logit > z_max)):
                    m.d.sync += z_max.eq(beat.logit)
            with m.Else():
                m.d.sync += self.overflow.eq(1)
            with m.If(beat.last):
                m.d.sync += [
                    classes.eq(Mux(count < cmax, count + 1, count)),
                    count.eq(0),
                    state.eq(_State.EXP),
                ]

        # ---- exp: a pipeline, one element entering per cycle: 0 read z_j | 1 z_j registered
        # | 2 u = max - z | 3 u*k | 4 round to a | 5 table read | 6 table data register | 7 e
        # | 8 write, sum
        step = Signal(range(max(cmax + SOFTMAX_EXP_LATENCY, RECIP_CYCLES)), name="step")
        in_exp = state == _State.EXP
        e_valid = [Signal(name=f"exp_valid_{i}") for i in range(1, SOFTMAX_EXP_LATENCY + 1)]
        e_addr = [Signal(range(cmax), name=f"exp_addr_{i}")
                  for i in range(1, SOFTMAX_EXP_LATENCY + 1)]
        m.d.sync += [
            e_valid[0].eq(in_exp & (step < classes)),
            e_addr[0].eq(step),
        ]
        for i in range(1, SOFTMAX_EXP_LATENCY):
            m.d.sync += [e_valid[i].eq(e_valid[i - 1]), e_addr[i].eq(e_addr[i - 1])]

        z_q = Signal(signed(width), name="exp_z")
        u = Signal(width, name="exp_u")
        prod = Signal(width + K_WIDTH, name="exp_prod")
        a = Signal(len(prod) + 1, name="exp_a")
        n = Signal(range(EXP_FRAC + 3), name="exp_n")
        n_q = Signal(range(EXP_FRAC + 3), name="exp_n_q")
        rom_q = Signal(e_shape, name="exp_table_q")
        e_val = Signal(e_shape, name="exp_e")
        total = Signal(sum_shape, name="exp_sum")
        a_int = a[EXP_INDEX_BITS:]
        m.d.sync += [
            z_q.eq(zt_rd.data.logit),                                           # stage 1
            u.eq(z_max - z_q),                                                  # stage 2
            prod.eq(u * k),                                                     # stage 3
            a.eq(_rounded(m, prod, a_shift, "a_round")),                       # stage 4
            n.eq(Mux(a_int > EXP_FRAC + 2, EXP_FRAC + 2, a_int)),               # stage 5
            rom_q.eq(rom_rd.data),                                              # stage 6
            n_q.eq(n),
            e_val.eq((rom_q + (Const(1, EXP_FRAC + 3) << n_q >> 1)) >> n_q),    # stage 7
        ]
        m.d.comb += [
            rom_rd.addr.eq(a[:EXP_INDEX_BITS]),                                 # stage 5
            e_wr.addr.eq(e_addr[-1]),                                           # stage 8
            e_wr.data.eq(e_val),
            e_wr.en.eq(e_valid[-1]),
        ]
        with m.If(e_valid[-1]):
            m.d.sync += total.eq(total + e_val)

        # ---- div: R = 2**RECIP_SHIFT // S, RECIP_STEP_BITS = 2 quotient bits per cycle ----------
        # Radix 4 with the three trial subtractions side by side (4·rem − S, − 2S, − 3S; one carry
        # chain deep, not two in a row): 3S is a register that follows the sum, a cycle late, so
        # the first cycle compares with S alone. That is exact: R < 2**RECIP_BITS, so the first
        # cycle's upper quotient bit (bit RECIP_CYCLES·2 − 1 ≥ RECIP_BITS) is 0, i.e. 4·rem < 2S.
        assert RECIP_STEP_BITS == 2 and RECIP_CYCLES * RECIP_STEP_BITS > RECIP_BITS
        rem = Signal(sum_shape.width, name="div_rem")            # always < S
        quo = Signal(RECIP_CYCLES * RECIP_STEP_BITS, name="div_quo")
        first = Signal(name="div_first")
        total3 = Signal(sum_shape.width + 2, name="div_total3")
        m.d.sync += total3.eq(total + (total << 1))
        t = Signal(sum_shape.width + 2, name="div_trial")
        m.d.comb += t.eq(rem << 2)
        diffs = []
        for k, sub in ((1, total), (2, total << 1), (3, total3)):
            d = Signal(signed(sum_shape.width + 4), name=f"div_trial_{k}")
            m.d.comb += d.eq(t - sub)
            diffs.append(d)
        ge1, ge2, ge3 = (~d[-1] for d in diffs)
        ge2, ge3 = ge2 & ~first, ge3 & ~first
        rem_next = Signal(sum_shape.width, name="div_rem_next")
        m.d.comb += rem_next.eq(Mux(ge3, diffs[2], Mux(ge2, diffs[1], Mux(ge1, diffs[0], t))))
        quo_bits = [ge3 | (ge1 & ~ge2), ge2]                     # low bit first

        # ---- out: a pipeline that stalls whole while the output register is not taken:
        # 0 read e_j, t_j | 1 e_j, t_j registered | 2 e*R, t << | 3 difference | 4 shift, round bit
        # | 5 saturate -> output
        advance = Signal(name="out_advance")
        m.d.comb += advance.eq(~self.o_result.valid | self.o_result.ready)
        in_out = state == _State.OUT
        o_idx = Signal(range(cmax + 1), name="out_idx")
        o_valid = [Signal(name=f"out_valid_{i}") for i in range(1, SOFTMAX_OUT_LATENCY)]
        o_last = [Signal(name=f"out_last_{i}") for i in range(1, SOFTMAX_OUT_LATENCY)]
        o_e = Signal(e_shape, name="out_e")
        o_t = Signal(signed(width), name="out_t")
        o_prod = Signal(EXP_FRAC + 1 + RECIP_BITS, name="out_prod")
        o_tsh = Signal(signed(width + RECIP_SHIFT), name="out_target")
        diff = Signal(signed(len(o_tsh) + 1), name="out_diff")
        floor_q, round_up = _round_ne(m, diff, out_shift, "out_round")
        out_q = Signal.like(floor_q, name="out_floor")
        out_up = Signal(name="out_up")
        m.d.comb += [
            zt_rd.addr.eq(Mux(in_out, o_idx, step)),
            zt_rd.en.eq(~in_out | advance),
            e_rd.addr.eq(o_idx),
            e_rd.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += [
                o_valid[0].eq(in_out & (o_idx < classes)),
                o_last[0].eq(o_idx == classes - 1),
                o_e.eq(e_rd.data),                                                # stage 1
                o_t.eq(zt_rd.data.target),
                o_prod.eq(o_e * quo[:RECIP_BITS]),                                # stage 2
                o_tsh.eq(Mux(grad_mode, o_t << t_shift, 0)),
                diff.eq(o_prod - o_tsh),                                          # stage 3
                out_q.eq(floor_q),                                                # stage 4
                out_up.eq(round_up),
                self.o_result.payload.value.eq(_saturate_inc(out_q, out_up, width)),  # stage 5
                self.o_result.valid.eq(o_valid[-1]),
                self.o_result.payload.last.eq(o_last[-1]),
            ]
            for i in range(1, SOFTMAX_OUT_LATENCY - 1):
                m.d.sync += [o_valid[i].eq(o_valid[i - 1]), o_last[i].eq(o_last[i - 1])]
            with m.If(in_out & (o_idx < classes)):
                m.d.sync += o_idx.eq(o_idx + 1)

        # ---- sequencing -------------------------------------------------------------------------
        with m.Switch(state):
            with m.Case(_State.LOAD):
                m.d.sync += [step.eq(0), total.eq(0)]
            with m.Case(_State.EXP):
                m.d.sync += step.eq(step + 1)
                with m.If(step == classes + SOFTMAX_EXP_LATENCY - 1):
                    m.d.sync += [
                        state.eq(_State.DIV),
                        step.eq(0),
                        rem.eq(1 << (RECIP_SHIFT - len(quo))),  # top of the dividend
                        quo.eq(0),
                        first.eq(1),
                    ]
            with m.Case(_State.DIV):
                m.d.sync += [
                    step.eq(step + 1),
                    rem.eq(rem_next),
                    quo.eq(Cat(*quo_bits, quo)),
                    first.eq(0),
                ]
                with m.If(step == RECIP_CYCLES - 1):
                    m.d.sync += [state.eq(_State.OUT), o_idx.eq(0)]
            with m.Case(_State.OUT):
                with m.If(self.o_result.valid & self.o_result.ready
                          & self.o_result.payload.last):
                    m.d.sync += state.eq(_State.LOAD)
        return m
