"""The vector engine's one post-processing datapath: REQ, RELUB and SGD configure the same lanes."""


from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.params import ACC_WIDTH, OPERAND_WIDTH, check_int, check_positive_int
from spec.timing import REQ_LATENCY, SGD_LATENCY
from .dsp import PRODUCT_LATENCY, registered_product
from .rng import RngSignature
from .rounding import (MAX_SHIFT, SHIFT_BITS, clear_lsb, rounding_addend, rounding_masks, shift_right_bits,
                       tie)

__all__ = ["SAT_COUNT_WIDTH", "PostOp", "PostProcessor", "Pipeline", "check_lanes",
           "check_widths", "count_saturations", "lane_mask", "popcount"]

#: Width of the saturation counters.
SAT_COUNT_WIDTH = 32


def check_lanes(lanes):
    """Validate a vector unit's lane count (positive integer)."""
    return check_positive_int(lanes, "Vector unit lanes")


def check_widths(narrow, narrow_what, wide, wide_what):
    """Validate an operand width (≥ 2) and a wide width (≥ 2 × the operand width)."""
    for v, what in ((narrow, narrow_what), (wide, wide_what)):
        check_int(v, what)
    if narrow < 2:
        raise ValueError(f"{narrow_what} must be at least 2, not {narrow!r}")
    if wide < 2 * narrow:
        raise ValueError(f"{wide_what} must be at least twice the {narrow_what.lower()} "
                         f"({2 * narrow}), not {wide!r}")


def popcount(m, flags, name, *, en=None):
    """The number of set bits of ``flags`` in two LUT levels: a table per group of four bits
    (one LUT4 per result bit), then a small sum of the groups' counts (no adder per bit).
    With ``en`` the groups' counts are registers loading when ``en`` is high: the
    count is then that of the flags at the last such edge, one LUT level after the registers."""
    parts = []
    for k in range(0, len(flags), 4):
        group = flags[k:k + 4]
        count = Signal(range(len(group) + 1), name=f"{name}_{k // 4}")
        with m.Switch(group):
            for v in range(1 << len(group)):
                with m.Case(v):
                    if en is None:
                        m.d.comb += count.eq(bin(v).count("1"))
                    else:
                        with m.If(en):
                            m.d.sync += count.eq(bin(v).count("1"))
        parts.append(count)
    total = Signal(range(len(flags) + 1), name=name)
    m.d.comb += total.eq(sum(parts))
    return total


def count_saturations(m, counters, clear, total):
    """Saturating counters sharing one adder: ``counter += total`` for the triple
    ``(counter, add_en, chosen)`` of ``counters`` whose ``add_en`` is high (at most one at a
    time); ``clear`` zeroes them all first.

    ``chosen`` (at most one high, and high wherever that counter's ``add_en`` is) picks the
    adder's other operand ahead of ``add_en``: with ``chosen`` from a register, the adder does
    not wait for the enable. A beat counted in the cycle of a clear is kept (its counter restarts
    from 0 + its count). The sum has one bit more than the counters: that bit is the overflow
    (no comparator).
    """
    width = len(counters[0][0])
    base = Signal(width, name=f"{counters[0][0].name}_base")
    m.d.comb += base.eq(0)
    with m.If(~clear):
        for counter, _, chosen in counters:
            with m.If(chosen):
                m.d.comb += base.eq(counter)
    new = Signal(width + 1, name=f"{counters[0][0].name}_next")
    m.d.comb += new.eq(base + total)
    for counter, add_en, _ in counters:
        with m.If(add_en):
            m.d.sync += counter.eq(Mux(new[-1], (1 << width) - 1, new[:-1]))
        with m.Elif(clear):
            m.d.sync += counter.eq(0)


def lane_mask(n_valid, lanes):
    """The lanes a beat of ``n_valid`` elements fills: bit ``l`` is ``n_valid > l`` (a stochastic
    beat takes a draw from each of these lanes' generators)."""
    return Cat(*[n_valid > l for l in range(lanes)])


class Pipeline:
    """A stall-as-one pipeline between stream ``i`` and stream ``o`` (the vector units' scheme).

    All registers load when ``en = ~o.valid | o.ready`` (``i.ready = en``): back-pressure stops
    every stage at once, nothing is lost or repeated. :meth:`stage` carries a beat's flags one
    stage on, :meth:`reg` a datapath value, :meth:`output` loads ``o``'s flags; ``busy`` is high
    while any stage holds a beat.
    """

    def __init__(self, m, i, o):
        self.m, self.o = m, o
        self.en = Signal(name="pipe_en")
        m.d.comb += [self.en.eq(~o.valid | o.ready), i.ready.eq(self.en)]
        self.take = i.valid & self.en           # a beat is accepted this cycle
        self._valids = []

    def reg(self, name, shape, value):
        """A register loading ``value`` with the pipeline. It has the domain's reset, on purpose:
        with a free set/reset input Yosys turns a ``Mux(c, 0, v)`` into a synchronous reset
        ``c & en``, which puts the stall enable's long path before the flip-flops' LSR."""
        r = Signal(shape, name=name)
        with self.m.If(self.en):
            self.m.d.sync += r.eq(value)
        return r

    def delay(self, name, value, n):
        """``value`` through ``n`` datapath registers (``{name}_d{k}``)."""
        for k in range(n):
            value = self.reg(f"{name}_d{k + 1}", Value.cast(value).shape(), value)
        return value

    def stage(self, name, valid, n_valid, last):
        sv = self.reg(f"{name}_valid", 1, valid)
        self._valids.append(sv)
        return sv, self.reg(f"{name}_n_valid", n_valid.shape(), n_valid), \
            self.reg(f"{name}_last", 1, last)

    def output(self, valid, n_valid, last):
        with self.m.If(self.en):
            self.m.d.sync += [self.o.valid.eq(valid), self.o.payload.n_valid.eq(n_valid),
                              self.o.payload.last.eq(last)]

    @property
    def busy(self):
        return Cat(*self._valids, self.o.valid).any()

    @property
    def latency(self):
        """Cycles from a beat's acceptance to its presentation on ``o``: one per :meth:`stage`,
        one for the output register."""
        return len(self._valids) + 1


class PostOp(enum.IntEnum, shape=2):
    """What the :class:`PostProcessor` computes (its ``op`` input)."""
    REQ = 0         #: requantize: round-shift, saturate, optional ReLU, derivative mask
    RELUB = 1       #: ReLU backward: ``w`` gated by ``mask``
    SGD = 2         #: weight update: ``w − round_shift(lr_mul·a + wd_mul·w)``, saturated


class PostProcessor(wiring.Component):
    """The post-processing datapath of REQ, RELUB and SGD: ``lanes`` elements per beat, fully
    pipelined, one lane pipeline that the three operations configure (multiply/add → rounding
    shift → saturate → optional ``w − q``).

    Per element of a beat, by ``op``:

    * ``REQ`` — :func:`golden.fixedpoint.requantize_act` without bias::

          r    = round_shift(a, shift, rounding, rng)        # one draw if stochastic
          sat  = r outside the width-bit range;  y = clamp(r);  mask = ~sat
          if relu_en:  mask &= y > 0;  y = max(y, 0)

    * ``RELUB`` — :func:`golden.fixedpoint.relu_backward`: ``y = w if mask_in else 0``,
      ``mask = mask_in``; no draws, no saturations.
    * ``SGD`` — :func:`golden.fixedpoint.sgd_update`::

          step = round_shift(lr_mul·a + wd_mul·w, shift, rounding, rng)   # one draw if stochastic
          y    = saturate(w − step, width)                               # counted when it clamps

    One lane, eight stages (:data:`LATENCY`): the products ``a·m_a`` and ``w·m_w`` (``m_a, m_w =
    lr_mul, wd_mul`` for SGD, ``1, 0`` otherwise) in DSP blocks with their own operand, pipeline
    and product registers (:func:`rtl.dsp.registered_product`, three stages), the rounding addend
    from the lane's draw beside them; two partial sums; the sum; the coarse shift with the range
    and tie flags; the fine shift and the tie correction, ``width + 1`` bits kept and a flag when
    the step is outside that range (such a step saturates ``w − step`` exactly as the true one
    does, and REQ's step is outside the ``width``-bit range); the output register: ``w − step``
    (SGD, and RELUB with step 0) or ``step`` (REQ), saturated to ``width`` bits with ReLU and
    mask, or zero. ``rtl/rounding.py``
    explains the rounding.

    Beats. A beat is one row chunk: lanes ``0 .. n_valid-1`` carry elements, the others are
    padding. Padding lanes take no draw and never count as saturated; they come out as ``y = 0``,
    ``mask = 0`` (REQ, RELUB) or ``y = w`` (SGD, so that writing a whole row back keeps them).
    In stochastic mode valid lane ``l`` takes the next draw of lane ``l``'s generator
    (:class:`golden.fixedpoint.LaneGenerators`). ``last`` is carried through unchanged.

    Static inputs. ``op``, ``shift`` (0..32), ``rounding`` (0 nearest-even, 1 stochastic),
    ``relu_en``, ``lr_mul`` and ``wd_mul`` (unsigned) apply to every beat in flight: change them
    only while ``busy`` is low. They should come from registers (the vector engine loads them when
    an instruction starts): the shift drives the narrow shifter's selects and the rounding masks
    directly. Values outside the ranges are illegal and give unspecified results.

    Without multipliers (``multipliers=False``, for FPGAs short of DSP blocks) ``lr_mul = 1`` and
    ``wd_mul = 0`` are fixed and the unit has no ``lr_mul``/``wd_mul`` ports.

    Timing. A beat accepted in cycle ``t`` (``i.valid & i.ready``) is presented on ``o`` in cycle
    ``t + LATENCY`` if the output was not stalled; with ``o.ready`` high the unit takes and
    delivers one beat per cycle. Back-pressure stalls the whole pipeline (:class:`Pipeline`):
    nothing is lost or repeated, and the generators advance only for accepted beats.

    Saturation counters. ``sat_req`` (REQ) and ``sat_sgd`` (SGD) add the saturated valid lanes of
    each beat when it leaves (``o.valid & o.ready``), sticking at ``2**32 - 1``. ``sat_clr``
    zeroes both at the clock edge; a beat leaving in that same cycle is counted from zero.

    Parameters
    ----------
    lanes : int
        Elements per beat.
    acc_width : int
        Width of the signed ``a`` inputs (accumulators, gradients; ≥ ``2 * width``); default
        :data:`spec.params.ACC_WIDTH`.
    width : int
        Width of the signed ``w`` inputs and ``y`` outputs (≥ 2); default
        :data:`spec.params.OPERAND_WIDTH`.
    multipliers : bool
        Build the ``lr_mul``/``wd_mul`` multipliers (default ``True``).
    early_statics : bool
        The static inputs are set at least one cycle before the first beat that uses them
        (default ``False``: in that beat's cycle). Then the multipliers' static operands
        (``lr_mul``/``wd_mul`` for SGD, ``1``/``0`` otherwise) are registered, so that the DSP
        blocks' operand inputs come from flip-flops, not from ``op``'s decoder and a multiplexer
        (the vector engine sets them two cycles before its first row).

    Members
    -------
    i : In(stream.Signature(PostProcessor.in_layout))
        Input beats: ``a`` (signed ``acc_width``), ``w`` (signed ``width``: SGD's weights,
        RELUB's gradients) and ``mask`` (1 bit: RELUB) per lane, ``n_valid`` (1..lanes), ``last``.
    o : Out(stream.Signature(PostProcessor.out_layout))
        Output beats: ``y`` (signed ``width``) and ``mask`` (1 bit) per lane, ``n_valid``,
        ``last``.
    rng : Out(RngSignature(lanes))
        Draws from the :class:`~rtl.rng.Xorshift32Lanes`: lane ``l`` takes generator ``l``'s
        draw; ``advance`` steps lanes ``0 .. n_valid-1`` for each accepted stochastic REQ or SGD
        beat as it leaves the first stage (where it reads the draws), else 0.
    op : In(PostOp)
    shift : In(6)
    rounding, relu_en : In(1)
    lr_mul, wd_mul : In(width)
        Only with ``multipliers``.
    busy : Out(1)
        A beat is in the pipeline.
    sat_req, sat_sgd : Out(32)
        Saturated elements since the last clear (saturating counts).
    sat_clr : In(1)
        Zero ``sat_req`` and ``sat_sgd``.

    Raises
    ------
    TypeError
        If ``lanes`` or a width is not an integer, or ``multipliers`` is not a bool.
    ValueError
        If ``lanes`` is not positive, ``width < 2`` or ``acc_width < 2 * width``.
    """

    #: Cycles from a beat's acceptance to its presentation on the output
    #: (:data:`spec.timing.REQ_LATENCY`, equal to :data:`spec.timing.SGD_LATENCY`).
    LATENCY = REQ_LATENCY
    assert SGD_LATENCY == REQ_LATENCY

    def __init__(self, lanes, *, acc_width=ACC_WIDTH, width=OPERAND_WIDTH, multipliers=True,
                 early_statics=False):
        check_lanes(lanes)
        check_widths(width, "Operand width", acc_width, "Accumulator width")
        if not isinstance(multipliers, bool):
            raise TypeError(f"Multipliers must be a bool, not {multipliers!r}")
        if not isinstance(early_statics, bool):
            raise TypeError(f"Early statics must be a bool, not {early_statics!r}")
        self._early_statics = early_statics
        self._lanes, self._acc_width, self._width = lanes, acc_width, width
        self._multipliers = multipliers
        self._in_layout = data.StructLayout({
            "a": data.ArrayLayout(signed(acc_width), lanes),
            "w": data.ArrayLayout(signed(width), lanes),
            "mask": data.ArrayLayout(1, lanes),
            "n_valid": range(lanes + 1),
            "last": 1,
        })
        self._out_layout = data.StructLayout({
            "y": data.ArrayLayout(signed(width), lanes),
            "mask": data.ArrayLayout(1, lanes),
            "n_valid": range(lanes + 1),
            "last": 1,
        })
        members = {
            "i": In(stream.Signature(self._in_layout)),
            "o": Out(stream.Signature(self._out_layout)),
            "rng": Out(RngSignature(lanes)),
            "op": In(PostOp),
            "shift": In(SHIFT_BITS),
            "rounding": In(1),
            "relu_en": In(1),
            "busy": Out(1),
            "sat_req": Out(SAT_COUNT_WIDTH),
            "sat_sgd": Out(SAT_COUNT_WIDTH),
            "sat_clr": In(1),
        }
        if multipliers:
            members["lr_mul"] = In(width)
            members["wd_mul"] = In(width)
        super().__init__(members)

    @property
    def lanes(self):
        return self._lanes

    @property
    def acc_width(self):
        return self._acc_width

    @property
    def width(self):
        return self._width

    @property
    def multipliers(self):
        return self._multipliers

    @property
    def in_layout(self):
        """The input payload's :class:`~amaranth.lib.data.StructLayout`."""
        return self._in_layout

    @property
    def out_layout(self):
        """The output payload's :class:`~amaranth.lib.data.StructLayout`."""
        return self._out_layout

    def elaborate(self, platform):
        m = Module()
        L, W, AW = self._lanes, self._width, self._acc_width
        lo, hi = -(1 << (W - 1)), (1 << (W - 1)) - 1
        pipe = Pipeline(m, self.i, self.o)
        p = self.i.payload

        is_req, is_relub, is_sgd = (self.op == PostOp.REQ), (self.op == PostOp.RELUB), \
            (self.op == PostOp.SGD)
        stochastic = Signal(name="stochastic")
        m.d.comb += stochastic.eq(self.rounding & (is_req | is_sgd))
        # A stochastic beat's draws are read in stage 1, and its generators step as it leaves
        # stage 1 (the cycle after its acceptance, or later under a stall): the enable of the
        # generators' flip-flops comes from a register, not from the input handshake.
        adv = pipe.reg("rng_adv", L, Mux(self.i.valid & stochastic, lane_mask(p.n_valid, L), 0))
        m.d.comb += self.rng.advance.eq(Mux(pipe.en, adv, 0))

        # |lr_mul·a + wd_mul·w| < 2**(AW-1)·2**W + 2**(W-1)·2**W ≤ 2**(AW+W) (AW ≥ 2·W).
        p_shape = signed(AW + W + 1) if self._multipliers else signed(AW)
        step_w = W + 1                      # the step, clamped: enough for w − step (below)
        masks = rounding_masks(m, self.shift, p_shape, step_w, "shift")
        split = min(W + 1, AW - 1)          # a's low part: an unsigned multiplier operand

        # The multipliers' static operands (m_a, m_w = lr_mul, wd_mul for SGD; 1, 0 otherwise):
        # the DSP blocks' operand registers load them with each beat.
        mul_a = Signal(W + 1, name="mul_a")
        mul_w = Signal(W, name="mul_w")
        if self._multipliers:
            statics = m.d.sync if self._early_statics else m.d.comb
            statics += [mul_a.eq(Mux(is_sgd, self.lr_mul, 1)),
                        mul_w.eq(Mux(is_sgd, self.wd_mul, 0))]

        # Stages 1-3: the products, a DSP block each with its own operand, pipeline and product
        # registers (rtl/dsp.py): a's low 17 bits (unsigned) and high bits (signed) times m_a, and
        # w times m_w. Beside them, in the fabric: w, the mask and the rounding addend from the
        # lane's draw (read in stage 1, one register fewer).
        s1 = pipe.stage("s1", self.i.valid, p.n_valid, p.last)
        s2 = pipe.stage("s2", *s1)
        s3 = pipe.stage("s3", *s2)
        s3_lo, s3_hi, s3_pw = [], [], []
        for i in range(L):
            a_lo, a_hi = p.a[i][:split], p.a[i][split:].as_signed()
            if self._multipliers:
                s3_lo.append(registered_product(m, f"plo_{i}", a_lo, mul_a, en=pipe.en,
                                                platform=platform))
                s3_hi.append(registered_product(m, f"phi_{i}", a_hi, mul_a, en=pipe.en,
                                                platform=platform))
                s3_pw.append(registered_product(m, f"pw_{i}", p.w[i], mul_w, en=pipe.en,
                                                platform=platform))
            else:
                s3_lo.append(pipe.delay(f"plo_{i}", a_lo, PRODUCT_LATENCY))
                s3_hi.append(pipe.delay(f"phi_{i}", a_hi, PRODUCT_LATENCY))
                s3_pw.append(0)
        s3_w = [pipe.delay(f"w_{i}", p.w[i], PRODUCT_LATENCY) for i in range(L)]
        s3_add = [pipe.delay(f"add_{i}", rounding_addend(stochastic, self.rng.draws[i], masks),
                             PRODUCT_LATENCY - 1) for i in range(L)]
        s3_mask = pipe.delay("mask", p.mask.as_value(), PRODUCT_LATENCY)

        # Stage 4: two partial sums, side by side: low product + addend, high product + w's.
        s4 = pipe.stage("s4", *s3)
        s4_u = [pipe.reg(f"s4_u_{i}", signed(masks.sum_width), s3_lo[i] + s3_add[i])
                for i in range(L)]
        s4_v = [pipe.reg(f"s4_v_{i}", signed(masks.sum_width),
                         (s3_hi[i] << split) + s3_pw[i]) for i in range(L)]
        s4_w = [pipe.reg(f"s4_w_{i}", signed(W), s3_w[i]) for i in range(L)]
        s4_mask = pipe.reg("s4_mask", L, s3_mask)

        # Stage 5: the sum lr_mul·a + wd_mul·w + addend.
        s5 = pipe.stage("s5", *s4)
        s5_sum = [pipe.reg(f"s5_sum_{i}", signed(masks.sum_width), s4_u[i] + s4_v[i])
                  for i in range(L)]
        s5_w = [pipe.reg(f"s5_w_{i}", signed(W), s4_w[i]) for i in range(L)]
        s5_mask = pipe.reg("s5_mask", L, s4_mask)

        # Stage 6: the coarse shift, by 8·h (h = shift // 8, 0..4): `keep` bits of the sum from
        # bit 8·h (one multiplexer of five slices); whether the sum's bits above those all equal
        # its sign (from 8-bit groups: the part of the range test that does not depend on
        # shift % 8); and whether it is a nearest-even tie.
        s6 = pipe.stage("s6", *s5)
        keep = step_w + 7
        h = masks.shift[3:]
        coarse_n = MAX_SHIFT // 8 + 1
        sw = masks.sum_width
        s6_q, s6_above_ok, s6_sign = [], [], []
        for i in range(L):
            total = s5_sum[i]
            sign = total[-1]
            ext = Cat(total, sign.replicate(8 * (coarse_n - 1) + keep))
            coarse = Signal(keep, name=f"coarse_{i}")
            with m.Switch(h):
                for k in range(coarse_n - 1):
                    with m.Case(k):
                        m.d.comb += coarse.eq(ext[8 * k:8 * k + keep])
                with m.Default():                   # shift 32 (larger shifts are illegal)
                    m.d.comb += coarse.eq(ext[8 * (coarse_n - 1):8 * (coarse_n - 1) + keep])
            # group g: the sum's bits 8·g + keep .. 8·g + keep + 7 all equal its sign
            groups = []
            for g in range(coarse_n):
                end = sw if g == coarse_n - 1 else min(8 * g + keep + 8, sw)
                bits = total[min(8 * g + keep, sw):end]
                groups.append(~(bits ^ sign.replicate(len(bits))).any() if len(bits) else
                              Const(1, 1))
            above_ok = Signal(name=f"above_ok_{i}")  # all groups from h up equal the sign
            with m.Switch(h):
                for k in range(coarse_n - 1):
                    with m.Case(k):
                        m.d.comb += above_ok.eq(Cat(*groups[k:]).all())
                with m.Default():
                    m.d.comb += above_ok.eq(groups[-1])
            s6_q.append(pipe.reg(f"s6_q_{i}", signed(keep), coarse.as_signed()))
            s6_above_ok.append(pipe.reg(f"s6_above_ok_{i}", 1, above_ok))
            s6_sign.append(pipe.reg(f"s6_sign_{i}", 1, sign))
        s6_tie = pipe.reg("s6_tie", L, Cat(*[tie(s5_sum[i], stochastic, masks) for i in range(L)]))
        s6_w = [pipe.reg(f"s6_w_{i}", signed(W), s5_w[i]) for i in range(L)]
        s6_mask = pipe.reg("s6_mask", L, s5_mask)

        # Stage 7: the fine shift (by shift % 8) and the tie correction. The quotient fits in
        # width + 1 bits when the kept bits from (shift % 8) + width up and the groups above them
        # all equal the sign; when it does not (`oor`), its register holds wrapped bits and the
        # output stage saturates by the sign (|step| >= 2**width saturates w − step exactly as
        # the true step does, for any width-bit w, and REQ's step is out of the width-bit range).
        # Lanes whose output is w (RELUB, SGD's padding lanes) get step 0 instead, so that the
        # output stage's w − step passes w.
        s7 = pipe.stage("s7", *s6)
        top = Signal(keep, name="fine_top")             # kept bits >= shift % 8 + step_w - 1
        with m.Switch(masks.shift[:3]):
            for f in range(8):
                with m.Case(f):
                    m.d.sync += top.eq(((1 << keep) - 1) >> (f + step_w - 1) << (f + step_w - 1))
        s7_q, s7_oor, s7_sign = [], [], []
        for i in range(L):
            pass_w = Signal(name=f"s7_pass_w_{i}")
            m.d.comb += pass_w.eq(is_relub | (is_sgd & ~(s6[1] > i)))
            q = shift_right_bits(m, s6_q[i], masks.shift[:3], step_w, f"fine_{i}").as_signed()
            sign = s6_sign[i]
            fits = s6_above_ok[i] & ~((s6_q[i] ^ sign.replicate(keep)) & top).any()
            s7_q.append(pipe.reg(f"s7_q_{i}", signed(step_w),
                                 Mux(pass_w, 0, clear_lsb(q, s6_tie[i]))))
            s7_oor.append(pipe.reg(f"s7_oor_{i}", 1, Mux(pass_w, 0, ~fits)))
            s7_sign.append(pipe.reg(f"s7_sign_{i}", 1, sign))
        s7_w = [pipe.reg(f"s7_w_{i}", signed(W), s6_w[i]) for i in range(L)]
        s7_mask = pipe.reg("s7_mask", L, s6_mask)

        # Stage 8 (output register): w − step (SGD; RELUB and SGD's padding lanes with step 0)
        # or step (REQ), saturated, one of the two by the operation; zero for REQ/RELUB padding
        # lanes, RELUB's masked lanes and ReLU's negative steps.
        s7_valid, s7_n, s7_last = s7
        pipe.output(s7_valid, s7_n, s7_last)
        assert pipe.latency == self.LATENCY
        use_diff = Signal(name="use_diff")
        m.d.comb += use_diff.eq(is_sgd | is_relub)

        def in_range(v, name):
            """``v``'s bits from width − 1 up all equal (it fits in ``width`` bits)."""
            high = v[W - 1:]
            fits = Signal(name=f"{name}_fits")
            m.d.comb += fits.eq((high == 0) | (high == (1 << len(high)) - 1))
            return fits

        o_sat = Signal(L, name="o_sat")        # the beat's saturated lanes
        for i in range(L):
            lane_valid = s7_n > i
            q, oor, sign = s7_q[i], s7_oor[i], s7_sign[i]
            # SGD (and RELUB): w − step, saturated by its sign, or by the step's when out of range
            diff = Signal(signed(step_w + 1), name=f"s8_diff_{i}")
            m.d.comb += diff.eq(s7_w[i] - q)
            fits_sgd = in_range(diff, f"s8_sgd_{i}") & ~oor
            y_sgd = Mux(fits_sgd, diff[:W], Mux(Mux(oor, ~sign, diff[-1]), lo, hi))
            # REQ: step, saturated by its sign (straight from the stage register)
            fits_req = in_range(q, f"s8_req_{i}") & ~oor
            y_req = Mux(fits_req, q[:W], Mux(sign, lo, hi))
            relu_zero = self.relu_en & (sign | ((q == 0) & ~oor))      # ReLU and y <= 0
            kill = Signal(name=f"s8_kill_{i}")
            m.d.comb += kill.eq((~lane_valid & ~is_sgd) | (is_relub & ~s7_mask[i]) |
                                (is_req & self.relu_en & sign))
            y_q = Signal(signed(W), name=f"o_y_{i}")
            mask_q = Signal(name=f"o_mask_{i}")
            with m.If(pipe.en):
                m.d.sync += [
                    y_q.eq(Mux(kill, 0, Mux(use_diff, y_sgd, y_req))),
                    mask_q.eq(Mux(lane_valid, Mux(is_relub, s7_mask[i], fits_req & ~relu_zero),
                                  0)),
                ]
            m.d.comb += [self.o.payload.y[i].eq(y_q), self.o.payload.mask[i].eq(mask_q),
                         o_sat[i].eq(lane_valid & ~is_relub & ~Mux(is_sgd, fits_sgd, fits_req))]

        m.d.comb += self.busy.eq(pipe.busy)
        leave = self.o.valid & self.o.ready
        # the output beat's saturated lanes, counted by groups of four in the output stage
        n_sat = popcount(m, o_sat, "o_sat_count", en=pipe.en)
        # the counted operation, copied into registers of its own next to the counters (op is
        # static while a beat is in the pipeline: a copy one cycle late is right when it leaves)
        count_req, count_sgd = Signal(name="count_req"), Signal(name="count_sgd")
        m.d.sync += [count_req.eq(is_req), count_sgd.eq(is_sgd)]
        count_saturations(m, [(self.sat_req, leave & count_req, count_req),
                              (self.sat_sgd, leave & count_sgd, count_sgd)],
                          self.sat_clr, n_sat)
        return m
