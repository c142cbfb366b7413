"""The requantizer/activation unit: bias, rounding shift, saturation, ReLU; ReLU backward."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.params import ACC_WIDTH, OPERAND_WIDTH, check_int, check_positive_int
from spec.timing import REQ_LATENCY
from .rng import RngSignature
from .rounding import (MAX_SHIFT, SHIFT_BITS, clear_lsb, narrow_quotient, rounding_addend,
                       rounding_masks, tie)

__all__ = ["SAT_COUNT_WIDTH", "check_lanes", "check_widths", "lane_mask", "count_saturations",
           "Pipeline", "Requantizer"]

#: Width of the units' saturation counters.
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


def count_saturations(m, counter, clear, add_en, flags):
    """Saturating ``counter += popcount(flags)`` when ``add_en``; ``clear`` zeroes it first.

    A beat counted in the cycle of a clear is kept (the counter restarts from 0 + its count).
    """
    total = sum(flags[i] for i in range(len(flags)))
    base = Mux(clear, 0, counter)
    new = base + Mux(add_en, total, 0)
    top = (1 << len(counter)) - 1
    m.d.sync += counter.eq(Mux(new > top, top, new))


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
        r = Signal(shape, name=name)
        with self.m.If(self.en):
            self.m.d.sync += r.eq(value)
        return r

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


class Requantizer(wiring.Component):
    """The requantizer/activation unit, ``lanes`` elements per beat, fully pipelined.

    Forward mode (``backward = 0``), per element of a beat, exactly
    :func:`golden.fixedpoint.requantize_act` on the tensor the beats walk row-major::

        x    = acc + (bias << bias_shift)  if bias_en  else  acc     # exact
        r    = round_shift(x, shift, rounding, rng)                  # one draw if stochastic
        sat  = r outside the width-bit range
        y    = clamp(r);   mask = ~sat
        if relu_en:  mask &= y > 0;  y = max(y, 0)

    Backward mode (``backward = 1``): ``y = grad if mask_in else 0``
    (:func:`golden.fixedpoint.relu_backward`), ``mask = mask_in``; no draws, no saturations.

    Beats. A beat is one row chunk: lanes ``0 .. n_valid-1`` carry elements, the others are
    padding (a tensor whose width is not a multiple of ``lanes`` ends each row with a short beat).
    Padding lanes take no draw, never count as saturated and come out as ``y = 0``, ``mask = 0``.
    In stochastic forward mode valid lane ``l`` takes the next draw of lane ``l``'s generator
    (:class:`golden.fixedpoint.LaneGenerators`). ``last`` is carried through unchanged
    (it marks an operation's final beat for the consumer; the unit does not act on it).

    Static inputs. ``shift`` (0..32), ``bias_shift`` (0..32), ``bias_en``, ``relu_en``,
    ``rounding`` (0 nearest-even, 1 stochastic) and ``backward`` apply to every beat in flight:
    change them only while ``busy`` is low. Values outside the ranges are illegal (the sequencer
    checks them) and give unspecified results.

    Without bias (``bias=False``) the unit has no ``bias`` payload field and no ``bias_shift`` /
    ``bias_en`` ports, and computes the same with ``bias_en = 0``: the bias barrel shifter and
    adder are about a third of a lane's logic, and the SoC's networks carry the bias in an
    augmented weight matrix (``golden/mlp.py``), so its ``REQ`` instruction has none.

    Timing. Four pipeline stages (bias added; rounding addend added; narrow shift with range
    flags; saturation, ReLU and mask into the output register): a beat accepted in cycle ``t``
    (``i.valid & i.ready``) is presented on ``o`` in cycle ``t + LATENCY`` if the output was not
    stalled; with ``o.ready`` high the unit takes and delivers one beat per cycle. Back-pressure
    stalls the whole pipeline (``i.ready = ~o.valid | o.ready``, :class:`Pipeline`): nothing is
    lost or repeated, and the generator advances only for accepted beats.

    Saturation counter. ``sat_count`` adds the saturated valid lanes of each beat when the beat
    leaves (``o.valid & o.ready``), sticking at ``2**32 - 1``. ``sat_clr`` zeroes it at the clock
    edge; a beat leaving in that same cycle is counted from zero.

    Parameters
    ----------
    lanes : int
        Elements per beat.
    acc_width : int
        Width of the signed accumulator inputs (≥ ``2 * width``); default
        :data:`spec.params.ACC_WIDTH`.
    width : int
        Width of the signed bias, gradient and output elements (≥ 2); default
        :data:`spec.params.OPERAND_WIDTH`.
    bias : bool
        Build the bias path (default ``True``).

    Members
    -------
    i : In(stream.Signature(Requantizer.in_layout))
        Input beats: ``acc``, ``bias``, ``grad`` (signed, per lane), ``mask`` (1 bit per lane),
        ``n_valid`` (1..lanes), ``last``. Forward mode reads ``acc`` and ``bias``; backward mode
        reads ``grad`` and ``mask``. No ``bias`` field without ``bias``.
    o : Out(stream.Signature(Requantizer.out_layout))
        Output beats: ``y`` (signed ``width``, per lane), ``mask`` (1 bit per lane), ``n_valid``,
        ``last``.
    rng : Out(RngSignature(lanes))
        Draws from the shared :class:`~rtl.rng.Xorshift32Lanes`: lane ``l`` takes generator
        ``l``'s draw; ``advance`` steps lanes ``0 .. n_valid-1`` for each accepted
        stochastic forward beat, else 0.
    shift, bias_shift : In(6)
        Static: output shift and bias alignment shift, 0..32 (``bias_shift`` only with
        ``bias``).
    bias_en, relu_en, rounding, backward : In(1)
        Static: add the bias (only with ``bias``); apply ReLU; stochastic rounding (else
        nearest-even); backward mode.
    busy : Out(1)
        A beat is in the pipeline.
    sat_count : Out(32)
        Saturated elements since the last clear (saturating count).
    sat_clr : In(1)
        Zero ``sat_count``.

    Raises
    ------
    TypeError
        If ``lanes`` or a width is not an integer, or ``bias`` is not a bool.
    ValueError
        If ``lanes`` is not positive, ``width < 2`` or ``acc_width < 2 * width``.
    """

    #: Cycles from a beat's acceptance to its presentation on the output
    #: (:data:`spec.timing.REQ_LATENCY`).
    LATENCY = REQ_LATENCY

    def __init__(self, lanes, *, acc_width=ACC_WIDTH, width=OPERAND_WIDTH, bias=True):
        check_lanes(lanes)
        check_widths(width, "Operand width", acc_width, "Accumulator width")
        if not isinstance(bias, bool):
            raise TypeError(f"Bias must be a bool, not {bias!r}")
        self._lanes, self._acc_width, self._width, self._bias = lanes, acc_width, width, bias
        fields = {"acc": data.ArrayLayout(signed(acc_width), lanes)}
        if bias:
            fields["bias"] = data.ArrayLayout(signed(width), lanes)
        fields.update({
            "grad": data.ArrayLayout(signed(width), lanes),
            "mask": data.ArrayLayout(1, lanes),
            "n_valid": range(lanes + 1),
            "last": 1,
        })
        self._in_layout = data.StructLayout(fields)
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
            "shift": In(SHIFT_BITS),
            "relu_en": In(1),
            "rounding": In(1),
            "backward": In(1),
            "busy": Out(1),
            "sat_count": Out(SAT_COUNT_WIDTH),
            "sat_clr": In(1),
        }
        if bias:
            members.update({"bias_shift": In(SHIFT_BITS), "bias_en": In(1)})
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
    def bias(self):
        return self._bias

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
        L, W = self._lanes, self._width
        lo, hi = -(1 << (W - 1)), (1 << (W - 1)) - 1
        # x = acc + (bias << bias_shift) needs max(acc_width, width + 32) + 1 bits.
        x_shape = signed(max(self._acc_width, W + MAX_SHIFT) + 1 if self._bias else
                         self._acc_width)
        pipe = Pipeline(m, self.i, self.o)

        # Static operation controls. Backward mode passes grad through as x with shift 0 and
        # addend 0.
        fwd_stochastic = Signal(name="fwd_stochastic")
        shift = Signal(SHIFT_BITS, name="eff_shift")
        m.d.comb += [fwd_stochastic.eq(self.rounding & ~self.backward),
                     shift.eq(Mux(self.backward, 0, self.shift))]
        masks = rounding_masks(m, shift, x_shape, W, "shift")
        m.d.comb += self.rng.advance.eq(Mux(pipe.take & fwd_stochastic,
                                            lane_mask(self.i.payload.n_valid, L), 0))

        # Stage 1: x (bias added, or grad), the lane's rounding addend.
        p = self.i.payload
        s1 = pipe.stage("s1", self.i.valid, p.n_valid, p.last)
        s1_x, s1_add = [], []
        for i in range(L):
            if self._bias:          # bias << bias_shift fits W + 32 bits (bias_shift <= 32)
                shifted = (p.bias[i] << self.bias_shift)[:W + MAX_SHIFT].as_signed()
                x = p.acc[i] + Mux(self.bias_en, shifted, 0)
            else:
                x = p.acc[i]
            s1_x.append(pipe.reg(f"s1_x_{i}", x_shape, Mux(self.backward, p.grad[i], x)))
            s1_add.append(pipe.reg(f"s1_add_{i}", MAX_SHIFT,
                                   rounding_addend(fwd_stochastic, self.rng.draws[i], masks)))
        s1_mask = pipe.reg("s1_mask", L, p.mask.as_value())

        # Stage 2: the sum x + addend, and whether it is a nearest-even tie.
        s2 = pipe.stage("s2", *s1)
        s2_sum = [pipe.reg(f"s2_sum_{i}", signed(masks.sum_width), s1_x[i] + s1_add[i])
                  for i in range(L)]
        s2_tie = pipe.reg("s2_tie", L, Cat(*[tie(s1_x[i] + s1_add[i], fwd_stochastic, masks)
                                              for i in range(L)]))
        s2_mask = pipe.reg("s2_mask", L, s1_mask)

        # Stage 3: the quotient, narrowed to width bits, with out-of-range flags.
        s3 = pipe.stage("s3", *s2)
        s3_q, s3_over, s3_under = [], [], []
        for i in range(L):
            q, over, under = narrow_quotient(m, s2_sum[i], masks, f"round_{i}")
            s3_q.append(pipe.reg(f"s3_q_{i}", signed(W), clear_lsb(q, s2_tie[i])))
            s3_over.append(pipe.reg(f"s3_over_{i}", 1, over))
            s3_under.append(pipe.reg(f"s3_under_{i}", 1, under))
        s3_mask = pipe.reg("s3_mask", L, s2_mask)

        # Stage 4 (output register): saturation, ReLU and mask; or the backward gate (backward
        # mode's q is the gradient: shift 0, addend 0, never out of range).
        s3_valid, s3_n, s3_last = s3
        pipe.output(s3_valid, s3_n, s3_last)
        assert pipe.latency == self.LATENCY
        o_sat = Signal(L, name="o_sat")
        for i in range(L):
            lane_valid = s3_n > i
            q, over, under = s3_q[i], s3_over[i], s3_under[i]
            y = Mux(over, hi, Mux(under, lo, q))
            keep = ~over & ~under
            y_relu = Mux(self.relu_en & (y < 0), 0, y)
            mask_fwd = keep & ~(self.relu_en & (y <= 0))
            y_bwd = Mux(s3_mask[i], q, 0)
            with m.If(pipe.en):
                m.d.sync += [
                    self.o.payload.y[i].eq(Mux(~lane_valid, 0,
                                               Mux(self.backward, y_bwd, y_relu))),
                    self.o.payload.mask[i].eq(lane_valid & Mux(self.backward, s3_mask[i],
                                                                mask_fwd)),
                    o_sat[i].eq(lane_valid & ~self.backward & ~keep),
                ]

        m.d.comb += self.busy.eq(pipe.busy)
        count_saturations(m, self.sat_count, self.sat_clr, self.o.valid & self.o.ready, o_sat)
        return m
