"""The softmax unit: fixed-point softmax with temperature, or the cross-entropy gradient."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.dsp import MAX_OPERAND_WIDTH, PRODUCT_LATENCY, registered_product
from rtl.memattrs import COLLISION_FREE
from spec.params import OPERAND_WIDTH, check_int, check_positive_int
from spec.softmax_tables import (
    EXP_FRAC, EXP_INDEX_BITS, EXP_TABLE, GRAD_SHIFT_MAX, INV_TEMP_WIDTH, K_FRAC, K_SHIFT, K_WIDTH,
    LOG2E_Q, RECIP_BITS, RECIP_CYCLES, RECIP_SHIFT, RECIP_STEP_BITS, SOFTMAX_DIV_HANDOFF,
    SOFTMAX_EXP_LATENCY, SOFTMAX_MAX_WIDTH, SOFTMAX_OUT_LATENCY,
)

__all__ = ["SoftmaxMode", "SoftmaxUnit"]


class SoftmaxMode(enum.Enum, shape=1):
    """What :class:`SoftmaxUnit` outputs."""
    PROBS = 0   #: probabilities ``softmax(z/T)`` (prob format)
    GRAD = 1    #: cross-entropy gradient ``softmax(z/T) - target`` (gradient format)


def _round_ne(m, x, shift, name, mask=None, *, parts=False):
    """Round ``x / 2**shift`` half to even, for ``shift >= 1`` (an int or an unsigned Value).

    Returns ``(q, up)``: the floor ``q = x >> shift`` and the rounding increment
    ``up = r & (sticky | q[0])``, where ``r`` is bit ``shift - 1`` of ``x`` (the half) and
    ``sticky`` is the OR of the bits below it; the rounded value is ``q + up``. No comparators:
    shifters and OR-reductions only. ``mask``, if given, is :func:`_sticky_mask` of ``shift``
    (a register, which keeps the mask's decoder off the path). With ``parts`` it returns
    ``(q, r, sticky)`` instead, for a pipeline that registers them and forms ``up`` a stage later.
    """
    max_shift = shift if isinstance(shift, int) else (1 << len(shift)) - 1
    width = max(len(x), max_shift) + 1
    xs = Signal(signed(width), name=f"{name}_x")
    q = Signal(signed(width), name=f"{name}_q")
    half_bit = Signal(name=f"{name}_half")
    m.d.comb += [
        xs.eq(x),
        q.eq(xs >> shift),
        half_bit.eq((xs << 1) >> shift),        # bit shift - 1 of x (truncated to bit 0)
    ]
    if mask is None:
        mask = Signal(unsigned(width), name=f"{name}_sticky_mask")
        m.d.comb += mask.eq(~(Const((1 << width) - 1, width) << shift) >> 1)
    sticky = (xs.as_unsigned() & mask).any()
    if parts:
        return q, half_bit, sticky
    return q, half_bit & (sticky | q[0])


def _sticky_mask(m, shift, name):
    """A register holding the sticky mask of :func:`_round_ne` for the unsigned Value ``shift``
    (bits ``0 .. shift - 2`` set), one cycle after ``shift``."""
    width = (1 << len(shift)) - 1
    mask = Signal(unsigned(width), name=name)
    m.d.sync += mask.eq(~(Const((1 << (width + 1)) - 1, width + 1) << shift) >> 1)
    return mask


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
    """Softmax with temperature, or the softmax cross-entropy gradient, of groups of samples that
    arrive as whole scratchpad rows.

    Bit-exact with :func:`golden.softmax.softmax_probs` (``mode = PROBS``) and
    :func:`golden.softmax.softmax_xent_grad` (``mode = GRAD``); a group takes exactly
    :func:`golden.softmax.softmax_cycles` cycles. The algorithm and its constants
    (:mod:`spec.softmax_tables`) are described in ``docs/softmax.md``.

    A *group* is ``S = samples`` samples of ``C`` classes (``1 <= S <= lanes``,
    ``1 <= C <= classes_max``), laid out as the scratchpad holds them: row ``j`` carries class
    ``j`` of every sample, sample ``s`` in lane ``s`` (lanes ``S`` and up are ignored). The unit
    takes the group's ``C`` rows ``S + 1`` times in a row (*passes*), one row per beat on
    ``i_row``, ``last`` on each pass's final row; in gradient mode each row also carries the
    targets, in the same layout. Pass ``p`` finds sample ``p``'s maximum and, in the same beats,
    sends sample ``p - 1``'s logits through the exponential pipeline: the re-read rows take the
    place of a buffer of the whole group, and each row's two lanes are picked from a row
    register (no block RAM or bank multiplexer in front of the lane selection). The samples then
    overlap:

    * *exp* (13 stages: row register, lane register, ``u = max - z``, ``u·k`` in a DSP block's
      three registers (operands, pipeline, product), shift and round bit, rounding increment,
      table read, table data register, shift, rounding increment, write and sum): one
      exponential per cycle into an ``e``/target
      buffer indexed by sample and class; a sample's sum goes into a per-sample memory
      ``SOFTMAX_EXP_LATENCY`` cycles after its last row;
    * *div*: the reciprocal of each sum in turn by radix-4 division, ``RECIP_STEP_BITS`` quotient
      bits per cycle, ``RECIP_CYCLES`` cycles per sample back to back, plus
      ``SOFTMAX_DIV_HANDOFF`` cycles (load the divisor, store the reciprocal per sample);
    * *out* (10 stages: read ``e_j``, ``t_j`` and ``R``, their registers, ``e·R``'s two partial
      products in two DSP blocks' three registers (operands, pipeline, product) beside the target
      shift, ``e·R``, difference, shift and rounding bit, rounding increment and saturation,
      output register):
      each sample's ``C`` results in class order on ``o_result``, samples in order, as soon as
      its reciprocal is stored. The pipeline stalls whole while the output register is not taken,
      so back-pressure loses or duplicates nothing; exp and div never wait for it (their results
      are kept per sample).

    Every product is a :func:`rtl.dsp.registered_product` (issue 27 item 5: on the ECP5 a
    ``MULT18X18D`` with its operand, pipeline and product registers, the SoC's one multiplier
    configuration): ``u·k``, ``e·R``'s two partial products, and ``k = log2(e)/T`` itself
    (``inv_temp`` times the constant ``LOG2E_Q``, once per group).

    ``i_row.ready`` is high from a group's first row to its final pass's last row, then low until
    the group's last result is accepted: the next group's first row is accepted at the earliest
    in the cycle after.

    A pass of more than ``classes_max`` rows keeps its first ``classes_max``; the extra rows are
    accepted and dropped and ``overflow`` is set. Every pass must have pass 0's number of rows.

    The per-operation inputs (``samples``, ``mode``, the fraction bits, ``inv_temp``,
    ``grad_shift``) must be held stable from a group's first row until its last result is
    accepted (while ``busy``, and in the cycle the first row is accepted); values of ``z_frac``,
    ``prob_frac`` or ``grad_frac`` of ``width`` or more give undefined results.

    Parameters
    ----------
    classes_max : int
        Largest number of classes per sample.
    lanes : int
        Elements per row: the largest number of samples per group.
    width : int
        Operand width, ``2 .. SOFTMAX_MAX_WIDTH``; default :data:`spec.params.OPERAND_WIDTH`.

    Members
    -------
    i_row : In(stream.Signature(StructLayout({"logits", "targets", "last"})))
        ``logits`` and ``targets`` are ``ArrayLayout(signed(width), lanes)``, ``last`` one bit.
        A row of the group: class ``j`` of every sample's logits (``z_frac`` fraction bits) and
        targets (prob format; ignored in ``PROBS`` mode), and whether it is the pass's last row.
    o_result : Out(stream.Signature(StructLayout({"value": signed(width), "sample": range(lanes),
    "last": 1})))
        The results, sample by sample, each in class order: probabilities (``prob_frac``
        fraction bits) or gradients (``grad_frac`` fraction bits, scaled by
        ``2**-grad_shift``), the sample (lane) they belong to, ``last`` on a sample's final one.
    samples : In(range(lanes + 1))
        ``S``, the samples of the group (``1 .. lanes``).
    mode : In(SoftmaxMode)
        Probabilities or gradient.
    z_frac, prob_frac, grad_frac : In(range(width))
        Fraction bits of the logits, of probabilities and targets, and of gradients.
    inv_temp : In(INV_TEMP_WIDTH)
        ``1/T`` with ``INV_TEMP_FRAC`` fraction bits (``INV_TEMP_ONE``: ``T = 1``).
    grad_shift : In(range(GRAD_SHIFT_MAX + 1))
        Extra right shift of the gradient.
    busy : Out(1)
        A group is in progress (from its first accepted row to its last result's acceptance).
    overflow : Out(1)
        Sticky: a pass had more than ``classes_max`` rows. Cleared by ``overflow_clr``.
    overflow_clr : In(1)
        Clear ``overflow``.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If ``classes_max < 1``, ``lanes < 1`` or ``width`` is not in ``2 .. SOFTMAX_MAX_WIDTH``.
    """

    def __init__(self, classes_max, lanes, *, width=OPERAND_WIDTH):
        check_positive_int(classes_max, "Maximum number of classes")
        check_positive_int(lanes, "Lanes")
        check_int(width, "Width")
        if not 2 <= width <= SOFTMAX_MAX_WIDTH:
            raise ValueError(f"Width must be between 2 and {SOFTMAX_MAX_WIDTH}, not {width!r}")
        self._classes_max = classes_max
        self._lanes = lanes
        self._width = width
        row = data.ArrayLayout(signed(width), lanes)
        super().__init__({
            "i_row": In(stream.Signature(data.StructLayout({
                "logits": row, "targets": row, "last": 1}))),
            "o_result": Out(stream.Signature(data.StructLayout({
                "value": signed(width), "sample": range(lanes), "last": 1}))),
            "samples": In(range(lanes + 1)),
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
    def lanes(self):
        return self._lanes

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        width, cmax, lanes = self._width, self._classes_max, self._lanes
        e_shape = unsigned(EXP_FRAC + 1)                         # e <= 2**EXP_FRAC
        sum_shape = unsigned(EXP_FRAC + 1 + (cmax - 1).bit_length())
        j_bits, s_bits = (cmax - 1).bit_length(), (lanes - 1).bit_length()

        # the e/target buffer, addressed {sample, class}; the per-sample sums and reciprocals
        # The output phase reads a sample's e, target and R only once its R is stored (its e are
        # written by then, and the next group's only after its last result): a read that meets a
        # write to its address is never used (COLLISION_FREE: no bypass after the block RAM).
        m.submodules.et_mem = et_mem = Memory(
            shape=data.StructLayout({"e": e_shape, "target": signed(width)}),
            depth=lanes << j_bits, init=[], attrs={COLLISION_FREE: 1})
        m.submodules.sum_mem = sum_mem = Memory(shape=sum_shape, depth=lanes, init=[])
        m.submodules.r_mem = r_mem = Memory(shape=RECIP_BITS, depth=lanes, init=[],
                                            attrs={COLLISION_FREE: 1})
        m.submodules.exp_rom = exp_rom = Memory(shape=e_shape, depth=len(EXP_TABLE),
                                                init=EXP_TABLE)

        def et_addr(sample, cls):
            return Cat(cls[:j_bits], sample[:s_bits])

        cfg = self._operation_registers(m, platform)
        with m.If(self.overflow_clr):
            m.d.sync += self.overflow.eq(0)

        group_end = Signal(name="group_end")
        inp = self._input(m, group_end)
        sums = self._exp(m, inp, cfg, et_mem, et_addr, sum_mem, exp_rom, sum_shape, e_shape,
                         group_end, platform)
        recips = self._div(m, sums, sum_mem, r_mem, sum_shape, group_end)
        self._out(m, recips, cfg, inp, et_mem, et_addr, r_mem, e_shape, group_end, platform)
        return m

    def _operation_registers(self, m, platform):
        """The per-operation values, registered (the inputs are stable from a group's first row
        on). Counting edges from the one that accepts the first row (edge 0), ``k`` is loaded at
        edge ``PRODUCT_LATENCY`` = 3 (``inv_temp · LOG2E_Q``'s operand, pipeline and product
        registers in a DSP block, then its rounding); its first use, the ``u·k`` multiplier's
        operand register, loads at edge ``C + 3 >= 4`` at the earliest (pass 1's first row is
        accepted at edge ``C >= 1``, then the row, lane and ``u`` registers). The others are
        loaded at edges 0 and 1 and used later still."""
        assert PRODUCT_LATENCY < 4
        cfg = _Config()
        k_full = registered_product(m, "k_full", self.inv_temp,
                                    Const(LOG2E_Q, LOG2E_Q.bit_length()), en=Const(1, 1),
                                    platform=platform)
        cfg.k = Signal(K_WIDTH, name="k")                   # log2(e)/T, K_FRAC fraction bits
        m.d.sync += cfg.k.eq(_rounded(m, k_full, K_SHIFT, "k_round"))
        cfg.a_shift = Signal(range(self._width + K_FRAC), name="a_shift")
        m.d.sync += cfg.a_shift.eq(self.z_frac + (K_FRAC - EXP_INDEX_BITS))
        cfg.t_shift = Signal(range(RECIP_SHIFT + 1), name="t_shift")
        m.d.sync += cfg.t_shift.eq(RECIP_SHIFT - self.prob_frac)
        cfg.out_shift = Signal(range(RECIP_SHIFT + GRAD_SHIFT_MAX + 1), name="out_shift")
        cfg.grad_mode = Signal(name="grad_mode")
        m.d.sync += cfg.grad_mode.eq(self.mode == SoftmaxMode.GRAD)
        with m.If(self.mode == SoftmaxMode.GRAD):
            m.d.sync += cfg.out_shift.eq(RECIP_SHIFT + self.grad_shift - self.grad_frac)
        with m.Else():
            m.d.sync += cfg.out_shift.eq(RECIP_SHIFT - self.prob_frac)
        cfg.out_mask = _sticky_mask(m, cfg.out_shift, "out_mask")
        return cfg

    def _input(self, m, group_end):
        """Passes over the rows: counters, the row register (stage 1), the lane registers (stage
        2). Returns the stage-2 element: the exp lane's logit and target with its flags and
        address, and the max lane's logit."""
        width, cmax, lanes = self._width, self._classes_max, self._lanes
        j_bits, s_bits = (cmax - 1).bit_length(), (lanes - 1).bit_length()
        inp = _Input()
        pass_ = Signal(range(lanes + 1), name="in_pass")     # p: max of lane p, exp of p - 1
        j = Signal(range(cmax + 1), name="in_class")         # rows kept so far in this pass
        x_lane = Signal(range(lanes), name="in_exp_lane")    # p - 1
        draining = Signal(name="in_draining")                # all passes in, results pending
        inp.cls_last = Signal(range(cmax), name="cls_last")  # C - 1, from pass 0
        beat = self.i_row.payload
        accept = Signal(name="in_accept")
        kept = Signal(name="in_kept")
        m.d.comb += [
            self.i_row.ready.eq(~draining),
            accept.eq(self.i_row.valid & ~draining),
            kept.eq(j != cmax),
            self.busy.eq(draining | (pass_ != 0) | (j != 0)),
        ]
        with m.If(accept):
            with m.If(kept):
                m.d.sync += j.eq(j + 1)
            with m.Else():
                m.d.sync += self.overflow.eq(1)
            with m.If(beat.last):
                m.d.sync += [j.eq(0), x_lane.eq(pass_)]
                with m.If(pass_ == 0):
                    m.d.sync += inp.cls_last.eq(Mux(kept, j, cmax - 1))
                with m.If(pass_ == self.samples):
                    m.d.sync += [draining.eq(1), pass_.eq(0)]
                with m.Else():
                    m.d.sync += pass_.eq(pass_ + 1)
        with m.If(group_end):
            m.d.sync += draining.eq(0)

        # stage 1: the row register and the element's flags
        row = Signal.like(beat, name="row")
        r_exp, r_max = Signal(name="row_exp_valid"), Signal(name="row_max_valid")
        r_first, r_end = Signal(name="row_first"), Signal(name="row_end")
        r_cls = Signal(range(cmax), name="row_class")
        r_xl, r_ml = Signal(range(lanes), name="row_exp_lane"), Signal(range(lanes),
                                                                      name="row_max_lane")
        m.d.sync += [
            row.eq(beat),
            r_exp.eq(accept & kept & (pass_ != 0)),
            r_max.eq(accept & kept & (pass_ != self.samples)),
            r_first.eq(j == 0),
            r_end.eq(beat.last | (j == cmax - 1)),
            r_cls.eq(j[:j_bits] if j_bits else 0),
            r_xl.eq(x_lane),
            r_ml.eq(pass_[:s_bits] if s_bits else 0),
        ]
        # stage 2: the two lanes, picked from the row register
        inp.exp_valid = Signal(name="lane_exp_valid")
        inp.max_end = Signal(name="lane_max_end")
        inp.first, inp.end = Signal(name="lane_first"), Signal(name="lane_end")
        inp.sample = Signal(range(lanes), name="lane_sample")
        inp.cls = Signal(range(cmax), name="lane_class")
        inp.z = Signal(signed(width), name="lane_z")
        inp.target = Signal(signed(width), name="lane_target")
        inp.z_max_lane = Signal(unsigned(width), name="lane_z_max_lane")
        m.d.sync += [
            inp.exp_valid.eq(r_exp), inp.max_end.eq(r_max & r_end),
            inp.first.eq(r_first), inp.end.eq(r_end),
            inp.sample.eq(r_xl), inp.cls.eq(r_cls),
            inp.z.eq(row.logits[r_xl]),
            inp.target.eq(row.targets[r_xl]),
            # the max lane's logit in offset binary (sign bit inverted: the unsigned order is the
            # signed one), or 0, the smallest value, when there is none (the maximum then holds
            # without an enable in its path)
            inp.z_max_lane.eq(Mux(r_max, row.logits[r_ml].as_unsigned() ^ (1 << (width - 1)),
                                  0)),
        ]
        return inp

    def _exp(self, m, inp, cfg, et_mem, et_addr, sum_mem, exp_rom, sum_shape, e_shape,
             group_end, platform):
        """The maximum tracker and the exponential pipeline (stages 2 to 12). Returns the count of
        samples whose sum is in ``sum_mem``."""
        assert SOFTMAX_EXP_LATENCY == 9 + PRODUCT_LATENCY
        width, cmax, lanes = self._width, self._classes_max, self._lanes
        # stage 2: the max lane's running maximum (offset binary: an unsigned comparator, one
        # carry chain), back to the smallest value after a pass's last row; the exp lane's
        # sample's maximum is complete (its pass ended at least a cycle before)
        run_max = Signal(unsigned(width), name="max_run")
        z_max = Signal(signed(width), name="max_sample")
        new_max = Signal(unsigned(width), name="max_new")
        m.d.comb += new_max.eq(Mux(inp.z_max_lane > run_max, inp.z_max_lane, run_max))
        m.d.sync += run_max.eq(Mux(inp.max_end, 0, new_max))
        with m.If(inp.max_end):
            m.d.sync += z_max.eq((new_max ^ (1 << (width - 1))).as_signed())

        # the element's tag, stages 3 .. 12
        tag_layout = data.StructLayout({
            "valid": 1, "first": 1, "end": 1, "sample": range(lanes), "cls": range(cmax),
            "target": signed(width)})
        tags = [Signal(tag_layout, name=f"exp_tag_{i}") for i in range(3, SOFTMAX_EXP_LATENCY + 1)]
        m.d.sync += [
            tags[0].valid.eq(inp.exp_valid), tags[0].first.eq(inp.first),
            tags[0].end.eq(inp.end), tags[0].sample.eq(inp.sample), tags[0].cls.eq(inp.cls),
            tags[0].target.eq(inp.target),
        ]
        for prev, nxt in zip(tags, tags[1:]):
            m.d.sync += nxt.eq(prev)
        last = tags[-1]

        rom_rd = exp_rom.read_port()
        u = Signal(width, name="exp_u")
        m.d.sync += u.eq(z_max - inp.z)                                         # stage 2
        prod = self._u_times_k(m, u, cfg.k, platform)                           # stages 3 .. 5
        a_floor, a_up = _round_ne(m, prod, cfg.a_shift, "a_round")
        a_q = Signal.like(a_floor, name="exp_a_floor")
        a_q_up = Signal(name="exp_a_up")
        a = Signal(len(prod) + 1, name="exp_a")
        n = Signal(range(EXP_FRAC + 3), name="exp_n")
        n_q = Signal(range(EXP_FRAC + 3), name="exp_n_q")
        rom_q = Signal(e_shape, name="exp_table_q")
        half_up = Signal(EXP_FRAC + 2, name="exp_half_up")
        e_val = Signal(e_shape, name="exp_e")
        a_int = a[EXP_INDEX_BITS:]
        # the rounded shift (x + 2**n >> 1) >> n in two stages: x·2 >> n, then (that + 1) >> 1
        # (the same for every n >= 0, and no adder in front of the shifter)
        m.d.sync += [
            a_q.eq(a_floor), a_q_up.eq(a_up),                                   # stage 6
            a.eq(a_q + a_q_up),                                                 # stage 7
            n.eq(Mux(a_int > EXP_FRAC + 2, EXP_FRAC + 2, a_int)),               # stage 8
            rom_q.eq(rom_rd.data),                                              # stage 9
            n_q.eq(n),
            half_up.eq(Cat(0, rom_q) >> n_q),                                   # stage 10
            e_val.eq((half_up + 1) >> 1),                                       # stage 11
        ]
        m.d.comb += rom_rd.addr.eq(a[:EXP_INDEX_BITS])                          # stage 8

        # stage 12: write e and the target, add e to the sample's sum; the complete sum goes to
        # the sample's entry of sum_mem
        et_wr = et_mem.write_port()
        total = Signal(sum_shape, name="exp_sum")
        total_next = Signal(sum_shape, name="exp_sum_next")
        m.d.comb += [
            total_next.eq(Mux(last.first, 0, total) + e_val),
            et_wr.addr.eq(et_addr(last.sample, last.cls)),
            et_wr.data.e.eq(e_val),
            et_wr.data.target.eq(last.target),
            et_wr.en.eq(last.valid),
        ]
        sum_wr = sum_mem.write_port()
        sums_done = Signal(range(lanes + 1), name="sums_done")
        m.d.comb += [sum_wr.addr.eq(last.sample), sum_wr.data.eq(total_next),
                     sum_wr.en.eq(last.valid & last.end)]
        with m.If(last.valid):
            m.d.sync += total.eq(total_next)
            with m.If(last.end):
                m.d.sync += sums_done.eq(sums_done + 1)
        with m.If(group_end):
            m.d.sync += sums_done.eq(0)
        return sums_done

    def _u_times_k(self, m, u, k, platform):
        """``u·k`` (``width + K_WIDTH`` bits), ``PRODUCT_LATENCY`` edges after ``u``: one DSP block
        up to 18-bit operands (the SoC's 16), two above, whose partial products are added in front
        of the next stage's shifter (a longer path at widths 19 and 20 only, which keeps the
        pipeline's depth the same at every width)."""
        if len(u) <= MAX_OPERAND_WIDTH:
            return registered_product(m, "exp_uk", u, k, en=Const(1, 1), platform=platform)
        lo = registered_product(m, "exp_uk_lo", u[:MAX_OPERAND_WIDTH], k, en=Const(1, 1),
                                platform=platform)
        hi = registered_product(m, "exp_uk_hi", u[MAX_OPERAND_WIDTH:], k, en=Const(1, 1),
                                platform=platform)
        prod = Signal(len(u) + K_WIDTH, name="exp_prod")
        m.d.comb += prod.eq(lo + (hi << MAX_OPERAND_WIDTH))
        return prod

    def _div(self, m, sums_done, sum_mem, r_mem, sum_shape, group_end):
        """The divider: ``R = 2**RECIP_SHIFT // S`` for each sample's sum in turn,
        ``RECIP_STEP_BITS = 2`` quotient bits per cycle, into ``r_mem``. Returns the count of
        samples whose reciprocal is there."""
        lanes = self._lanes
        # Radix 4 with the three trial subtractions side by side (4·rem − S, − 2S, − 3S; one carry
        # chain deep, not two in a row): 3S is a register that follows the divisor, a cycle late,
        # so the first cycle compares with S alone. That is exact: R < 2**RECIP_BITS, so the first
        # cycle's upper quotient bit (bit RECIP_CYCLES·2 − 1 ≥ RECIP_BITS) is 0, i.e. 4·rem < 2S.
        assert RECIP_STEP_BITS == 2 and RECIP_CYCLES * RECIP_STEP_BITS > RECIP_BITS
        assert SOFTMAX_DIV_HANDOFF == 2     # the load cycle and the write cycle below
        ds = Signal(range(lanes + 1), name="div_next")          # next sample to divide
        d_sample = Signal(range(lanes), name="div_sample")      # the one being divided
        running = Signal(name="div_running")
        step = Signal(range(RECIP_CYCLES), name="div_step")
        dvs = Signal(sum_shape, name="div_divisor")
        dvs3 = Signal(sum_shape.width + 2, name="div_divisor3")
        rem = Signal(sum_shape.width, name="div_rem")            # always < S
        quo = Signal(RECIP_CYCLES * RECIP_STEP_BITS, name="div_quo")
        first = Signal(name="div_first")
        m.d.sync += dvs3.eq(dvs + (dvs << 1))
        t = Signal(sum_shape.width + 2, name="div_trial")
        m.d.comb += t.eq(rem << 2)
        diffs = []
        for k, sub in ((1, dvs), (2, dvs << 1), (3, dvs3)):
            d = Signal(signed(sum_shape.width + 4), name=f"div_trial_{k}")
            m.d.comb += d.eq(t - sub)
            diffs.append(d)
        ge1, ge2, ge3 = (~d[-1] for d in diffs)
        ge2, ge3 = ge2 & ~first, ge3 & ~first
        rem_next = Signal(sum_shape.width, name="div_rem_next")
        m.d.comb += rem_next.eq(Mux(ge3, diffs[2], Mux(ge2, diffs[1], Mux(ge1, diffs[0], t))))
        quo_bits = [ge3 | (ge1 & ~ge2), ge2]                     # low bit first

        done_now = Signal(name="div_done_now")
        m.d.comb += done_now.eq(running & (step == RECIP_CYCLES - 1))
        with m.If(running):
            m.d.sync += [step.eq(step + 1), rem.eq(rem_next), quo.eq(Cat(*quo_bits, quo)),
                         first.eq(0)]
            with m.If(done_now):
                m.d.sync += running.eq(0)
        # load the next sum (the cycle the previous division's last step runs, or any idle one)
        sum_rd = sum_mem.read_port(domain="comb")
        m.d.comb += sum_rd.addr.eq(ds)
        with m.If((~running | done_now) & (ds != sums_done)):
            m.d.sync += [
                dvs.eq(sum_rd.data), rem.eq(1 << (RECIP_SHIFT - len(quo))),  # top of the dividend
                first.eq(1), step.eq(0), running.eq(1), d_sample.eq(ds), ds.eq(ds + 1),
            ]
        # the quotient is complete the cycle after the last step: store it (quo shifts only from
        # the end of that cycle on)
        r_wr = r_mem.write_port()
        recips_done = Signal(range(lanes + 1), name="recips_done")
        m.d.sync += [r_wr.en.eq(done_now), r_wr.addr.eq(d_sample)]
        m.d.comb += r_wr.data.eq(quo[:RECIP_BITS])
        with m.If(r_wr.en):
            m.d.sync += recips_done.eq(recips_done + 1)
        with m.If(group_end):
            m.d.sync += [ds.eq(0), recips_done.eq(0)]
        return recips_done

    def _out(self, m, recips_done, cfg, inp, et_mem, et_addr, r_mem, e_shape, group_end,
             platform):
        """The output pipeline (stalls whole while the output register is not taken):
        0 read e_j, t_j, R | 1 registered | 2 .. 4 e*R's two partial products (a DSP block each:
        operands, pipeline, product), t delayed, then t << | 5 e*R | 6 difference | 7 shift,
        round and sticky bits | 8 increment, saturate -> output."""
        assert SOFTMAX_OUT_LATENCY == 6 + PRODUCT_LATENCY
        width, cmax, lanes = self._width, self._classes_max, self._lanes
        s_bits = (lanes - 1).bit_length()
        advance = Signal(name="out_advance")
        m.d.comb += advance.eq(~self.o_result.valid | self.o_result.ready)
        o_s = Signal(range(lanes + 1), name="out_sample")
        o_j = Signal(range(cmax), name="out_class")
        issue = Signal(name="out_issue")
        m.d.comb += issue.eq(o_s != recips_done)
        o_valid = [Signal(name=f"out_valid_{i}") for i in range(1, SOFTMAX_OUT_LATENCY)]
        o_last = [Signal(name=f"out_last_{i}") for i in range(1, SOFTMAX_OUT_LATENCY)]
        o_smp = [Signal(range(lanes), name=f"out_sample_{i}")
                 for i in range(1, SOFTMAX_OUT_LATENCY)]
        et_rd = et_mem.read_port()
        r_rd = r_mem.read_port()
        o_e = Signal(e_shape, name="out_e")
        o_t = Signal(signed(width), name="out_t")
        o_r = Signal(RECIP_BITS, name="out_r")
        r_split = MAX_OPERAND_WIDTH                     # a DSP block's operand width
        o_plo = registered_product(m, "out_prod_lo", o_e, o_r[:r_split], en=advance,
                                   platform=platform)                           # stages 2 .. 4
        o_phi = registered_product(m, "out_prod_hi", o_e, o_r[r_split:], en=advance,
                                   platform=platform)
        # the target waits beside the products (16 bits, not its 57-bit shift)
        o_t_late = [Signal(signed(width), name=f"out_t_{i}")
                    for i in range(2, PRODUCT_LATENCY + 1)]
        o_prod = Signal(EXP_FRAC + 1 + RECIP_BITS, name="out_prod")
        o_tsh0 = Signal(signed(width + RECIP_SHIFT), name="out_target_0")
        o_tsh = Signal(signed(width + RECIP_SHIFT), name="out_target")
        diff = Signal(signed(len(o_tsh) + 1), name="out_diff")
        floor_q, half_bit, sticky = _round_ne(m, diff, cfg.out_shift, "out_round", cfg.out_mask,
                                              parts=True)
        out_q = Signal.like(floor_q, name="out_floor")
        out_half, out_sticky = Signal(name="out_half"), Signal(name="out_sticky")
        out_up = Signal(name="out_up")          # the increment, formed in stage 6
        m.d.comb += out_up.eq(out_half & (out_sticky | out_q[0]))
        m.d.comb += [
            et_rd.addr.eq(et_addr(o_s, o_j)), et_rd.en.eq(advance),
            r_rd.addr.eq(o_s[:s_bits] if s_bits else 0), r_rd.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += [
                o_valid[0].eq(issue),
                o_last[0].eq(o_j == inp.cls_last),
                o_smp[0].eq(o_s[:s_bits] if s_bits else 0),
                o_e.eq(et_rd.data.e),                                             # stage 1
                o_t.eq(et_rd.data.target),
                o_r.eq(r_rd.data),
                o_t_late[0].eq(o_t),                                              # stage 2
                o_tsh0.eq(Mux(cfg.grad_mode, o_t_late[-1] << cfg.t_shift, 0)),    # stage 4
                o_prod.eq(o_plo + (o_phi << r_split)),                            # stage 5
                o_tsh.eq(o_tsh0),
                diff.eq(o_prod - o_tsh),                                          # stage 6
                out_q.eq(floor_q),                                                # stage 7
                out_half.eq(half_bit), out_sticky.eq(sticky),
                self.o_result.payload.value.eq(_saturate_inc(out_q, out_up, width)),  # stage 8
                self.o_result.valid.eq(o_valid[-1]),
                self.o_result.payload.last.eq(o_last[-1]),
                self.o_result.payload.sample.eq(o_smp[-1]),
            ]
            for prev, nxt in zip(o_t_late, o_t_late[1:]):
                m.d.sync += nxt.eq(prev)
            for i in range(1, SOFTMAX_OUT_LATENCY - 1):
                m.d.sync += [o_valid[i].eq(o_valid[i - 1]), o_last[i].eq(o_last[i - 1]),
                             o_smp[i].eq(o_smp[i - 1])]
            with m.If(issue):
                with m.If(o_j == inp.cls_last):
                    m.d.sync += [o_j.eq(0), o_s.eq(o_s + 1)]
                with m.Else():
                    m.d.sync += o_j.eq(o_j + 1)
        # the group's last result is taken: back to the first pass (S - 1 from a register of its
        # own: samples holds from the first row, so its copy one cycle late is right long before)
        samples_last = Signal(range(lanes), name="out_samples_last")
        m.d.sync += samples_last.eq(self.samples - 1)
        res = self.o_result
        m.d.comb += group_end.eq(res.valid & res.ready & res.payload.last
                                 & (res.payload.sample == samples_last))
        with m.If(group_end):
            m.d.sync += o_s.eq(0)


class _Config:
    """The per-operation registers (``k``, ``a_shift``, ``t_shift``, ``out_shift``,
    ``grad_mode``)."""


class _Input:
    """The stage-2 element of :meth:`SoftmaxUnit._input` and the class count ``cls_last``."""
