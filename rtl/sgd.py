"""The SGD update unit: ``w ← saturate(w − round_shift(lr_mul·g + wd_mul·w, lr_shift))``."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.params import ACC_WIDTH, OPERAND_WIDTH
from spec.timing import SGD_LATENCY
from .requant import (SAT_COUNT_WIDTH, Pipeline, check_lanes, check_widths, count_saturations,
                      lane_mask)
from .rng import RngSignature
from .rounding import (MAX_SHIFT, SHIFT_BITS, clear_lsb, narrow_quotient, rounding_addend,
                       rounding_masks, tie)

__all__ = ["SgdUpdate"]


class SgdUpdate(wiring.Component):
    """The SGD weight-update unit, ``lanes`` weights per beat, fully pipelined.

    Per weight of a beat, exactly :func:`golden.fixedpoint.sgd_update` on the tensor the beats
    walk row-major::

        p     = lr_mul·g + wd_mul·w                            # exact
        step  = round_shift(p, lr_shift, rounding, rng)        # one draw if stochastic
        w_new = saturate(w − step, width)                      # counted when it clamps

    Beats. As for :class:`~rtl.requant.Requantizer`: lanes ``0 .. n_valid-1`` are weights, the
    others padding; padding lanes take no draw, never count as saturated, and pass ``w`` through
    unchanged (so writing a whole row back keeps them). In stochastic mode valid lane ``l`` takes
    the next draw of lane ``l``'s generator. ``last`` is carried through.

    Static inputs. ``lr_shift`` (0..32), ``lr_mul`` and ``wd_mul`` (unsigned, 0..2**width-1) and
    ``rounding`` (0 nearest-even, 1 stochastic) apply to every beat in flight: change them only
    while ``busy`` is low. Values outside the ranges are illegal and give unspecified results.

    Without multipliers (``multipliers=False``, for FPGAs short of DSP blocks such as the
    iCE40UP5K) the unit computes the same function with ``lr_mul = 1`` and ``wd_mul = 0`` fixed,
    and has no ``lr_mul``/``wd_mul`` ports; the learning rate is then ``2**-lr_shift`` only.

    Timing. Four pipeline stages (products; their sum plus the rounding addend; narrow shift,
    clamped; subtract and saturate into the output register): a beat accepted in cycle ``t`` is
    presented on ``o`` in cycle ``t + LATENCY`` if the output was not stalled, one beat per cycle
    with ``o.ready`` high; the same latency with or without multipliers. Back-pressure stalls the
    whole pipeline (``i.ready = ~o.valid | o.ready``): nothing is lost or repeated, and the
    generator advances only for accepted beats.

    Saturation counter. As for the requantizer: ``sat_count`` adds each leaving beat's saturated
    weights, sticking at ``2**32 - 1``; ``sat_clr`` zeroes it (a beat leaving in that cycle is
    counted from zero).

    Parameters
    ----------
    lanes : int
        Weights per beat.
    grad_width : int
        Width of the signed gradient inputs (≥ ``2 * width``); default
        :data:`spec.params.ACC_WIDTH` (gradients are accumulator rows).
    width : int
        Width of the signed weights (≥ 2); default :data:`spec.params.OPERAND_WIDTH`.
    multipliers : bool
        Build the ``lr_mul``/``wd_mul`` multipliers (default ``True``).

    Members
    -------
    i : In(stream.Signature(SgdUpdate.in_layout))
        Input beats: ``w`` (signed ``width``) and ``g`` (signed ``grad_width``) per lane,
        ``n_valid`` (1..lanes), ``last``.
    o : Out(stream.Signature(SgdUpdate.out_layout))
        Output beats: ``w`` (the updated weights, signed ``width``, per lane), ``n_valid``,
        ``last``.
    rng : Out(RngSignature(lanes))
        Draws from the shared :class:`~rtl.rng.Xorshift32Lanes`: lane ``l`` takes generator
        ``l``'s draw; ``advance`` steps lanes ``0 .. n_valid-1`` for each accepted
        stochastic beat, else 0.
    lr_shift : In(6)
        Static: 0..32.
    lr_mul, wd_mul : In(width)
        Static: learning-rate and weight-decay multipliers (only with ``multipliers``).
    rounding : In(1)
        Static: stochastic rounding (else nearest-even).
    busy : Out(1)
        A beat is in the pipeline.
    sat_count : Out(32)
        Saturated weights since the last clear (saturating count).
    sat_clr : In(1)
        Zero ``sat_count``.

    Raises
    ------
    TypeError
        If ``lanes`` or a width is not an integer, or ``multipliers`` is not a bool.
    ValueError
        If ``lanes`` is not positive, ``width < 2`` or ``grad_width < 2 * width``.
    """

    #: Cycles from a beat's acceptance to its presentation on the output
    #: (:data:`spec.timing.SGD_LATENCY`).
    LATENCY = SGD_LATENCY

    def __init__(self, lanes, *, grad_width=ACC_WIDTH, width=OPERAND_WIDTH, multipliers=True):
        check_lanes(lanes)
        check_widths(width, "Weight width", grad_width, "Gradient width")
        if not isinstance(multipliers, bool):
            raise TypeError(f"Multipliers must be a bool, not {multipliers!r}")
        self._lanes, self._grad_width, self._width = lanes, grad_width, width
        self._multipliers = multipliers
        self._in_layout = data.StructLayout({
            "w": data.ArrayLayout(signed(width), lanes),
            "g": data.ArrayLayout(signed(grad_width), lanes),
            "n_valid": range(lanes + 1),
            "last": 1,
        })
        self._out_layout = data.StructLayout({
            "w": data.ArrayLayout(signed(width), lanes),
            "n_valid": range(lanes + 1),
            "last": 1,
        })
        members = {
            "i": In(stream.Signature(self._in_layout)),
            "o": Out(stream.Signature(self._out_layout)),
            "rng": Out(RngSignature(lanes)),
            "lr_shift": In(SHIFT_BITS),
            "rounding": In(1),
            "busy": Out(1),
            "sat_count": Out(SAT_COUNT_WIDTH),
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
    def grad_width(self):
        return self._grad_width

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
        L, W, GW = self._lanes, self._width, self._grad_width
        lo, hi = -(1 << (W - 1)), (1 << (W - 1)) - 1
        pipe = Pipeline(m, self.i, self.o)
        p = self.i.payload
        m.d.comb += self.rng.advance.eq(Mux(pipe.take & self.rounding,
                                            lane_mask(p.n_valid, L), 0))

        # |lr_mul·g + wd_mul·w| < 2**(grad_width-1)·2**width + 2**(width-1)·2**width
        #                       ≤ 2**(grad_width+width), since grad_width ≥ 2·width.
        p_shape = signed(GW + W + 1) if self._multipliers else signed(GW)
        # The step is kept to width + 2 bits, clamped: any step beyond that range saturates
        # w − step exactly as the true step does (|w| ≤ 2**(width-1)).
        step_w = W + 2
        masks = rounding_masks(m, self.lr_shift, p_shape, step_w, "lr_shift")
        smin, smax = -(1 << (step_w - 1)), (1 << (step_w - 1)) - 1

        # Stage 1: products (registered on both sides of the multiplier for DSP timing).
        s1 = pipe.stage("s1", self.i.valid, p.n_valid, p.last)
        s1_w, s1_p, s1_add = [], [], []
        for i in range(L):
            w, g = p.w[i], p.g[i]
            s1_w.append(pipe.reg(f"s1_w_{i}", signed(W), w))
            if self._multipliers:
                pg = pipe.reg(f"s1_pg_{i}", p_shape, g * self.lr_mul)
                pw = pipe.reg(f"s1_pw_{i}", signed(2 * W + 1), w * self.wd_mul)
                s1_p.append(pg + pw)
            else:                               # lr_mul = 1, wd_mul = 0
                s1_p.append(pipe.reg(f"s1_g_{i}", signed(GW), g))
            s1_add.append(pipe.reg(f"s1_add_{i}", MAX_SHIFT,
                                   rounding_addend(self.rounding, self.rng.draws[i], masks)))

        # Stage 2: the sum lr_mul·g + wd_mul·w + addend, and whether it is a nearest-even tie.
        s2 = pipe.stage("s2", *s1)
        s2_w = [pipe.reg(f"s2_w_{i}", signed(W), s1_w[i]) for i in range(L)]
        total = [s1_p[i] + s1_add[i] for i in range(L)]
        s2_sum = [pipe.reg(f"s2_sum_{i}", signed(masks.sum_width), total[i]) for i in range(L)]
        s2_tie = pipe.reg("s2_tie", L, Cat(*[tie(total[i], self.rounding, masks)
                                              for i in range(L)]))

        # Stage 3: step = round_shift(p, lr_shift), clamped to width + 2 bits.
        s3 = pipe.stage("s3", *s2)
        s3_w = [pipe.reg(f"s3_w_{i}", signed(W), s2_w[i]) for i in range(L)]
        s3_step = []
        for i in range(L):
            q, over, under = narrow_quotient(m, s2_sum[i], masks, f"round_{i}")
            s3_step.append(pipe.reg(f"s3_step_{i}", signed(step_w),
                                    Mux(over, smax, Mux(under, smin, clear_lsb(q, s2_tie[i])))))

        # Stage 4 (output register): w − step, saturated; padding lanes pass w through.
        s3_valid, s3_n, s3_last = s3
        pipe.output(s3_valid, s3_n, s3_last)
        assert pipe.latency == self.LATENCY
        o_sat = Signal(L, name="o_sat")
        for i in range(L):
            lane_valid = s3_n > i
            d = s3_w[i] - s3_step[i]
            over, under = d > hi, d < lo
            new = Mux(over, hi, Mux(under, lo, d[:W].as_signed()))
            with m.If(pipe.en):
                m.d.sync += [
                    self.o.payload.w[i].eq(Mux(lane_valid, new, s3_w[i])),
                    o_sat[i].eq(lane_valid & (over | under)),
                ]

        m.d.comb += self.busy.eq(pipe.busy)
        count_saturations(m, self.sat_count, self.sat_clr, self.o.valid & self.o.ready, o_sat)
        return m
