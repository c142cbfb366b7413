"""The softmax unit: fixed-point softmax with temperature, or the cross-entropy gradient."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spec.params import OPERAND_WIDTH, check_int, check_positive_int
from spec.softmax_tables import (
    EXP_FRAC, EXP_INDEX_BITS, EXP_TABLE, GRAD_SHIFT_MAX, INV_TEMP_WIDTH, K_FRAC, K_SHIFT, K_WIDTH,
    LOG2E_Q, RECIP_BITS, RECIP_CYCLES, RECIP_SHIFT, RECIP_STEP_BITS, SOFTMAX_MAX_WIDTH,
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
    """``x / 2**shift`` rounded half to even, for ``shift >= 1`` (an int or an unsigned Value)."""
    max_shift = shift if isinstance(shift, int) else (1 << len(shift)) - 1
    width = max(len(x), max_shift) + 2          # holds x, 2**(shift-1) and the remainder
    xs = Signal(signed(width), name=f"{name}_x")
    q = Signal(signed(width), name=f"{name}_q")
    mask = Signal(unsigned(width), name=f"{name}_mask")
    rem = Signal(unsigned(width), name=f"{name}_rem")
    half = Signal(unsigned(width), name=f"{name}_half")
    m.d.comb += [
        xs.eq(x),
        q.eq(xs >> shift),
        mask.eq(~(Const((1 << width) - 1, width) << shift)),
        rem.eq(xs.as_unsigned() & mask),
        half.eq((Const(1, width) << shift) >> 1),
    ]
    up = (rem > half) | ((rem == half) & q[0])
    return q + up


class SoftmaxUnit(wiring.Component):
    """Softmax with temperature, or the softmax cross-entropy gradient, of a stream of samples.

    Bit-exact with :func:`golden.softmax.softmax_probs` (``mode = PROBS``) and
    :func:`golden.softmax.softmax_xent_grad` (``mode = GRAD``); the cycle count per sample is
    exactly :func:`golden.softmax.softmax_cycles`. The algorithm and its constants
    (:mod:`spec.softmax_tables`) are described in ``docs/softmax.md``.

    A *sample* is ``C`` logits (``1 <= C <= classes_max``, may vary from sample to sample), one per
    beat on ``i_logit``, the last flagged by ``last``; in gradient mode each beat also carries the
    class's target. The unit processes one sample at a time in four phases: *load* (one beat per
    cycle into a buffer, tracking the maximum; ``C`` cycles), *exp* (one exponential per cycle into
    a second buffer, and their sum; ``C + 3`` cycles), *div* (the reciprocal of the sum by restoring
    division, two quotient bits per cycle; ``RECIP_CYCLES`` cycles) and *out* (one result per beat on
    ``o_result`` with ``last`` on the sample's final one; ``C + 3`` cycles when ``o_result.ready``
    stays high). ``i_logit.ready`` is high only in the load phase. The output pipeline stalls
    whole while ``o_result`` is not accepted, so back-pressure loses or duplicates nothing.

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
    i_logit : In(stream.Signature(StructLayout({"logit": signed(width), "target": signed(width), "last": 1})))
        The samples: a logit (``z_frac`` fraction bits), its target (prob format; ignored in
        ``PROBS`` mode) and whether it is the sample's last element.
    o_result : Out(stream.Signature(StructLayout({"value": signed(width), "last": 1})))
        The results, in input order: probabilities (``prob_frac`` fraction bits) or gradients
        (``grad_frac`` fraction bits, scaled by ``2**-grad_shift``); ``last`` on a sample's final one.
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

        # Static per-operation values, registered (inputs are stable while busy).
        k = Signal(K_WIDTH, name="k")                       # log2(e)/T, K_FRAC fraction bits
        k_full = Signal(INV_TEMP_WIDTH + LOG2E_Q.bit_length(), name="k_full")
        m.d.comb += k_full.eq(self.inv_temp * LOG2E_Q)
        m.d.sync += k.eq(_round_ne(m, k_full, K_SHIFT, "k_round"))
        a_shift = Signal(range(width + K_FRAC), name="a_shift")
        m.d.sync += a_shift.eq(self.z_frac + (K_FRAC - EXP_INDEX_BITS))
        out_shift = Signal(range(RECIP_SHIFT + GRAD_SHIFT_MAX + 1), name="out_shift")
        t_shift = Signal(range(RECIP_SHIFT + 1), name="t_shift")
        m.d.sync += t_shift.eq(RECIP_SHIFT - self.prob_frac)
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

        # ---- exp: issue read j (stage 0), u*k (stage 1), round + table read (stage 2),
        # ---- shift, write and sum (stage 3) -----------------------------------------------------
        step = Signal(range(max(cmax + 3, RECIP_CYCLES)), name="step")   # cycle within exp/div
        s0_valid = Signal(name="exp_s0_valid")
        s1_valid = Signal(name="exp_s1_valid")
        s2_valid = Signal(name="exp_s2_valid")
        prod = Signal(width + K_WIDTH, name="exp_prod")
        n = Signal(range(EXP_FRAC + 3), name="exp_n")
        w_addr1 = Signal(range(cmax), name="exp_addr1")
        w_addr2 = Signal(range(cmax), name="exp_addr2")
        w_addr3 = Signal(range(cmax), name="exp_addr3")
        total = Signal(sum_shape, name="exp_sum")

        u = Signal(width, name="exp_u")
        m.d.comb += u.eq(z_max - zt_rd.data.logit)
        a = Signal(len(prod) + 1, name="exp_a")
        m.d.comb += a.eq(_round_ne(m, prod, a_shift, "a_round"))
        a_int = a[EXP_INDEX_BITS:]
        m.d.comb += rom_rd.addr.eq(a[:EXP_INDEX_BITS])
        e_val = Signal(e_shape, name="exp_e")
        m.d.comb += e_val.eq((rom_rd.data + (Const(1, EXP_FRAC + 3) << n >> 1)) >> n)

        in_exp = state == _State.EXP
        m.d.sync += [
            s0_valid.eq(in_exp & (step < classes)),
            w_addr1.eq(step),
            s1_valid.eq(s0_valid),
            prod.eq(u * k),
            w_addr2.eq(w_addr1),
            s2_valid.eq(s1_valid),
            n.eq(Mux(a_int > EXP_FRAC + 2, EXP_FRAC + 2, a_int)),
            w_addr3.eq(w_addr2),
        ]
        m.d.comb += [
            e_wr.addr.eq(w_addr3),
            e_wr.data.eq(e_val),
            e_wr.en.eq(s2_valid),
        ]
        with m.If(s2_valid):
            m.d.sync += total.eq(total + e_val)

        # ---- div: R = 2**RECIP_SHIFT // S, RECIP_STEP_BITS quotient bits per cycle ----------
        rem = Signal(sum_shape.width, name="div_rem")            # always < S
        quo = Signal(RECIP_CYCLES * RECIP_STEP_BITS, name="div_quo")
        rem_next, quo_bits = rem, []
        for i in range(RECIP_STEP_BITS):
            trial = Signal(sum_shape.width + 1, name=f"div_trial_{i}")
            bit = Signal(name=f"div_bit_{i}")
            nxt = Signal(sum_shape.width, name=f"div_rem_{i}")
            m.d.comb += [
                trial.eq(Cat(Const(0, 1), rem_next)),
                bit.eq(trial >= total),
                nxt.eq(Mux(bit, trial - total, trial)),
            ]
            rem_next = nxt
            quo_bits.insert(0, bit)

        # ---- out: issue reads (stage 0), e*R and target shift (stage 1), round (stage 2) -------
        advance = Signal(name="out_advance")
        m.d.comb += advance.eq(~self.o_result.valid | self.o_result.ready)
        o_idx = Signal(range(cmax + 1), name="out_idx")
        o0_valid = Signal(name="out_s0_valid")
        o0_last = Signal(name="out_s0_last")
        o1_valid = Signal(name="out_s1_valid")
        o1_last = Signal(name="out_s1_last")
        o_prod = Signal(EXP_FRAC + 1 + RECIP_BITS, name="out_prod")
        o_tsh = Signal(signed(width + RECIP_SHIFT), name="out_target")
        diff = Signal(signed(len(o_tsh) + 1), name="out_diff")
        m.d.comb += diff.eq(o_prod - o_tsh)
        y = Signal(signed(len(diff) + 1), name="out_rounded")
        m.d.comb += y.eq(_round_ne(m, diff, out_shift, "out_round"))
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        y_sat = Mux(y < lo, lo, Mux(y > hi, hi, y))

        in_out = state == _State.OUT
        m.d.comb += [
            zt_rd.addr.eq(Mux(in_out, o_idx, step)),
            zt_rd.en.eq(~in_out | advance),
            e_rd.addr.eq(o_idx),
            e_rd.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += [
                o0_valid.eq(in_out & (o_idx < classes)),
                o0_last.eq(o_idx == classes - 1),
                o1_valid.eq(o0_valid),
                o1_last.eq(o0_last),
                o_prod.eq(e_rd.data * quo[:RECIP_BITS]),
                o_tsh.eq(Mux(self.mode == SoftmaxMode.GRAD,
                             zt_rd.data.target << t_shift, 0)),
                self.o_result.valid.eq(o1_valid),
                self.o_result.payload.last.eq(o1_last),
                self.o_result.payload.value.eq(y_sat),
            ]
            with m.If(in_out & (o_idx < classes)):
                m.d.sync += o_idx.eq(o_idx + 1)

        # ---- sequencing -------------------------------------------------------------------------
        with m.Switch(state):
            with m.Case(_State.LOAD):
                m.d.sync += [step.eq(0), total.eq(0)]
            with m.Case(_State.EXP):
                m.d.sync += step.eq(step + 1)
                with m.If(step == classes + 2):
                    m.d.sync += [
                        state.eq(_State.DIV),
                        step.eq(0),
                        rem.eq(1 << (RECIP_SHIFT - len(quo))),  # top of the dividend
                        quo.eq(0),
                    ]
            with m.Case(_State.DIV):
                m.d.sync += [
                    step.eq(step + 1),
                    rem.eq(rem_next),
                    quo.eq(Cat(*quo_bits, quo)),
                ]
                with m.If(step == RECIP_CYCLES - 1):
                    m.d.sync += [state.eq(_State.OUT), o_idx.eq(0)]
            with m.Case(_State.OUT):
                with m.If(self.o_result.valid & self.o_result.ready
                          & self.o_result.payload.last):
                    m.d.sync += state.eq(_State.LOAD)
        return m
