"""The vector engine: runs REQ, RELUB, SGD, FILL and SMX instructions on the vector units.

Row operations (REQ, RELUB, SGD, FILL) stream one scratchpad row per cycle through the fully
pipelined post-processing datapath (:class:`~rtl.postproc.PostProcessor`, which the three
instructions configure: its operation, shift, rounding mode and multipliers are registered the
cycle after the instruction starts) and write each result row as it comes out. SMX walks the
group's logit rows (and target rows), whole, through the :class:`~rtl.softmax.SoftmaxUnit`,
``samples + 1`` times (the unit's passes, which overlap the samples), and writes each result into
its class's row, in its sample's lane. The stochastic-rounding generators
(:class:`~rtl.rng.Xorshift32Lanes`, one per lane) serve REQ and SGD: an element in lane ``l``
takes generator ``l``'s next draw, in program order.
"""

from amaranth.hdl import Cat, Module, Signal, Mux, Const
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spec import isa
from spec.isa import Op
from spec.soc import check_soc
from .sequencer import field
from .spport import ReadPortSignature, WritePortSignature
from .postproc import PostOp, PostProcessor, lane_mask as lane_mask_of
from .softmax import SoftmaxUnit, SoftmaxMode
from .rng import Xorshift32Lanes

__all__ = ["VecEngine"]

#: Largest class count of an SMX instruction (its ``classes`` field).
SMX_CLASSES_MAX = (1 << isa.field_slices(Op.SMX)["classes"][1].width) - 1


class VecEngine(wiring.Component):
    """Executes the vector instructions of ``docs/isa.md``.

    Timing: the engine takes the instruction in the cycle ``start`` is high (``t``) and is busy
    from ``t+1`` to the cycle of its last scratchpad write, both included
    (:class:`golden.machine.Timing` gives the count per opcode).

    Parameters
    ----------
    soc : SocConfig

    Members
    -------
    start : In(1)
    ir : In(128)
    busy : Out(1)
    sp_x, sp_y : Out(ReadPortSignature)
        Operand scratchpad reads (two operands; the sequencer keeps them in distinct banks):
        late ports (``rtl.scratchpad``), the row two cycles after the read.
    acc_rd : Out(ReadPortSignature)
        Accumulator scratchpad read, a late port too.
    sp_w, sp_m : Out(WritePortSignature)
        Operand scratchpad writes: the datapath's result rows (REQ, RELUB, SGD); the rows of one
        word per lane (REQ's mask rows, FILL's rows, SMX's results).
    acc_wr : Out(WritePortSignature)
        Accumulator scratchpad write (FILL).
    seed_stb : In(1)
        Load ``seed`` into the stochastic-rounding generator.
    seed : In(32)
    sat_req, sat_sgd : Out(32)
        Saturation counts of REQ and SGD since ``sat_clr``.
    sat_clr : In(1)
    """

    def __init__(self, soc=None):
        soc = check_soc(soc, "Vector engine")
        self._soc = soc
        a = soc.config.array
        L = soc.lanes
        W, AW = a.operand_width, a.acc_width
        super().__init__({
            "start": In(1),
            "ir": In(isa.INSN_BITS),
            "busy": Out(1),
            "sp_x": Out(ReadPortSignature(soc.sp_rows, W, L)),
            "sp_y": Out(ReadPortSignature(soc.sp_rows, W, L)),
            "acc_rd": Out(ReadPortSignature(soc.acc_rows, AW, L)),
            "sp_w": Out(WritePortSignature(soc.sp_rows, W, L)),
            "sp_m": Out(WritePortSignature(soc.sp_rows, W, L)),
            "acc_wr": Out(WritePortSignature(soc.acc_rows, AW, L)),
            "seed_stb": In(1),
            "seed": In(32),
            "sat_req": Out(32),
            "sat_sgd": Out(32),
            "sat_clr": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        soc = self._soc
        L = soc.lanes
        W, AW = soc.config.array.operand_width, soc.config.array.acc_width
        fm = soc.config.formats
        all_lanes = (1 << L) - 1

        # its statics are registered the cycle after the instruction starts, two cycles before
        # the first row arrives (the late ports): early enough for its registered multiplier operands
        m.submodules.post = post = PostProcessor(L, acc_width=AW, width=W, early_statics=True)
        m.submodules.smx = smx = SoftmaxUnit(SMX_CLASSES_MAX, L, width=W)
        m.submodules.rng = rng = Xorshift32Lanes(L)
        m.d.comb += [rng.seed.eq(self.seed), rng.seed_stb.eq(self.seed_stb)]
        wiring.connect(m, post.rng, rng.port)
        m.d.comb += [self.sat_req.eq(post.sat_req), self.sat_sgd.eq(post.sat_sgd),
                     post.sat_clr.eq(self.sat_clr)]

        # ---------------- the instruction, latched at start -------------------------------------
        ir = Signal(isa.INSN_BITS)
        with m.If(self.start):
            m.d.sync += ir.eq(self.ir)
        f = lambda op, name: field(ir, op, name)
        self._configure_post(m, post, ir, m.d.sync)

        # static unit inputs (stable while the engine is busy)
        m.d.comb += [
            smx.mode.eq(Mux(f(Op.SMX, "mode"), SoftmaxMode.GRAD, SoftmaxMode.PROBS)),
            smx.z_frac.eq(f(Op.SMX, "z_frac")),
            smx.prob_frac.eq(fm.prob_frac),
            smx.grad_frac.eq(fm.grad_frac),
            smx.inv_temp.eq(f(Op.SMX, "inv_temp")),
            smx.grad_shift.eq(f(Op.SMX, "grad_shift")),
        ]

        active = Signal()
        m.d.comb += self.busy.eq(active)
        finish = Signal()
        with m.If(self.start):
            m.d.sync += active.eq(1)
        with m.Elif(finish):
            m.d.sync += active.eq(0)

        # ---------------- row operations ----------------------------------------------------------
        # Decoded when the instruction starts, into registers: the kind, the row count, the lanes
        # and the first row of every port (address counters: no adder before a port).
        rc = _RowControl(m, self.start, self.ir, L)
        rowop = Signal()
        t_rd = Signal(isa.ROW_BITS)
        t_wr = Signal(isa.ROW_BITS)
        reading = Signal()
        with m.If(self.start):
            m.d.sync += [t_rd.eq(0), t_wr.eq(0), rowop.eq(rc.starts), reading.eq(rc.starts)]

        rd_now = Signal()
        m.d.comb += rd_now.eq(rowop & reading)
        rd_last = Signal()
        m.d.comb += rd_last.eq(t_rd == rc.rows_last)
        rd_en = _ReadEnables(m, self.start, self.ir)
        with m.If(rd_now):
            with m.If(rd_last):
                m.d.sync += reading.eq(0)
                rd_en.stop(m)
            m.d.sync += [t_rd.eq(t_rd + 1), rc.x_row.eq(rc.x_row + 1), rc.y_row.eq(rc.y_row + 1),
                         rc.a_row.eq(rc.a_row + 1)]
        # The ports are the scratchpads' late ones: a row read in cycle c arrives in cycle c + 2
        # (spec.timing.VEC_READ_STAGES). FILL reads nothing and writes a cycle after its "read".
        beat = Signal()          # FILL: a row "read" last cycle is written now
        post_beat_1 = Signal()   # rows read last cycle (not FILL's) ...
        beat_last_1 = Signal()
        post_beat = Signal()     # ... arrive now and go into the datapath: a flip-flop, since
        beat_last = Signal()     # it enables the generators
        m.d.sync += [beat.eq(rd_now), beat_last_1.eq(rd_last), beat_last.eq(beat_last_1),
                     post_beat_1.eq(rd_now & ~rc.fill), post_beat.eq(post_beat_1)]

        # operands feed the units (they are always ready: their outputs are never stalled)
        m.d.comb += [
            post.i.valid.eq(post_beat),
            post.i.payload.n_valid.eq(rc.lanes),
            post.i.payload.last.eq(beat_last),
            post.o.ready.eq(1),
        ]
        for c in range(L):
            m.d.comb += [
                post.i.payload.a[c].eq(self.acc_rd.data[c]),          # REQ's acc, SGD's g
                post.i.payload.w[c].eq(self.sp_x.data[c]),            # SGD's w, RELUB's g
                post.i.payload.mask[c].eq(self.sp_y.data[c] != 0),
            ]

        wr_row = Signal()
        with m.If(rowop & Mux(rc.fill, beat, post.o.valid)):
            m.d.comb += wr_row.eq(1)
            m.d.sync += [t_wr.eq(t_wr + 1), rc.d_row.eq(rc.d_row + 1),
                         rc.m_row.eq(rc.m_row + 1)]
            with m.If(t_wr == rc.rows_last):
                m.d.comb += finish.eq(1)
                m.d.sync += rowop.eq(0)

        # ---------------- SMX: whole rows into the softmax unit ----------------------------------
        # The group's rows are read samples + 1 times (the unit's passes), one row per cycle;
        # each result goes to its class's row, in its sample's lane. Row addresses are running
        # registers, loaded from the instruction when it starts. The unit's i_row.ready is high
        # from a group's first row to its last pass's last row (rtl.softmax.SoftmaxUnit), so the
        # engine reads a row every cycle while reading and each row, two cycles after its read
        # (the late ports), is taken as it arrives: a valid pipeline, no handshake.
        smx_on = Signal()
        sx = _SmxControl(m, self.start, self.ir, L, rc)
        have_1, have_last_1 = Signal(), Signal()            # a row read last cycle
        have, have_last = Signal(), Signal()                # a row on the ports now
        smx_rd = Signal()
        # reading implies smx_on: both are set when SMX starts, reading is cleared first
        m.d.comb += smx_rd.eq(sx.reading)
        m.d.sync += [have_1.eq(smx_rd), have_last_1.eq(sx.j_last),
                     have.eq(have_1), have_last.eq(have_last_1)]
        with m.If(self.start):
            m.d.sync += smx_on.eq(self.ir[:isa.OPCODE_BITS] == Op.SMX)
        # the read control works from flags computed a read ahead: j_last (this read is the
        # pass's last row) and p_last (this pass is the last), down-counters behind them
        with m.If(smx_rd):
            with m.If(sx.j_last):
                m.d.sync += [sx.j_left.eq(sx.cls_last), sx.j_last.eq(sx.cls_one),
                             sx.z_rd.eq(sx.z_base), sx.t_rd.eq(sx.t_base),
                             sx.p_left.eq(sx.p_left - 1), sx.p_last.eq(sx.p_left == 1)]
                with m.If(sx.p_last):
                    m.d.sync += sx.reading.eq(0)
                    rd_en.stop(m)
            with m.Else():
                m.d.sync += [sx.j_left.eq(sx.j_left - 1), sx.j_last.eq(sx.j_left == 1),
                             sx.z_rd.eq(sx.z_rd + 1), sx.t_rd.eq(sx.t_rd + 1)]
        m.d.comb += [
            smx.samples.eq(sx.samples),
            smx.i_row.valid.eq(have),
            smx.i_row.payload.logits.eq(self.sp_x.data),
            smx.i_row.payload.targets.eq(self.sp_y.data),
            smx.i_row.payload.last.eq(have_last),
            smx.o_result.ready.eq(1),
        ]
        smx_wr = Signal()
        res = smx.o_result.payload
        with m.If(smx_on & smx.o_result.valid):
            m.d.comb += smx_wr.eq(1)
            with m.If(res.last):
                m.d.sync += sx.d_wr.eq(sx.d_base)
                with m.If(res.sample == sx.samples_last):
                    m.d.comb += finish.eq(1)
                    m.d.sync += smx_on.eq(0)
            with m.Else():
                m.d.sync += sx.d_wr.eq(sx.d_wr + 1)

        # ---------------- scratchpad ports ------------------------------------------------------
        # addresses: one register per port whatever the operation (a port without en ignores it)
        m.d.comb += [self.sp_x.addr.eq(rc.x_row), self.sp_y.addr.eq(rc.y_row),
                     self.sp_w.addr.eq(rc.d_row), self.acc_rd.addr.eq(rc.a_row),
                     self.sp_m.addr.eq(rc.m_row), self.acc_wr.addr.eq(rc.m_row)]
        # read enables: registers (the scratchpad's bank decode and address AND-OR behind them)
        m.d.comb += [self.sp_x.en.eq(rd_en.x), self.sp_y.en.eq(rd_en.y),
                     self.acc_rd.en.eq(rd_en.a)]
        with m.If(smx_on):
            m.d.comb += self.sp_m.en.eq(Mux(smx_wr, Const(1, L) << res.sample, 0))
        with m.Else():
            m.d.comb += [
                self.sp_w.en.eq(Mux(wr_row & ~rc.fill, rc.write_lanes, 0)),
                self.sp_m.en.eq(Mux(wr_row & rc.m_write, all_lanes, 0)),
                self.acc_wr.en.eq(Mux(wr_row & rc.fill_acc, all_lanes, 0)),
            ]
        # result data: sp_w takes the datapath's lanes, no multiplexer; sp_m REQ's mask bits, or
        # one word in every lane (SMX's result, FILL's value; the word is 0 otherwise, so its
        # upper bits are 0 under a REQ and only bit 0 chooses)
        word = Signal(W, name="word")
        m.d.comb += word.eq(Mux(smx_on, smx.o_result.payload.value,
                                Mux(rc.fill, rc.fill_value, 0)))
        from_post = ~smx_on & ~rc.fill
        # FILL's value in the accumulator space: the word's LUTs, and LUTs for the bits above it
        # (with fill_value's flip-flops straight on the eight lanes' ports, Yosys 0.70's netlist
        # drove one port bit from two of them: nextpnr stops)
        acc_word = Signal(AW, name="acc_word")
        m.d.comb += acc_word.eq(Cat(word, Mux(rc.fill, rc.fill_value[W:], 0)))
        for c in range(L):
            m.d.comb += [
                self.sp_w.data[c].eq(post.o.payload.y[c]),
                self.sp_m.data[c].eq(Cat(Mux(from_post, post.o.payload.mask[c], word[0]),
                                         word[1:])),
                self.acc_wr.data[c].eq(acc_word),
            ]
        return m

    @staticmethod
    def _configure_post(m, post, ir, domain):
        """Load the post-processing datapath's static inputs from the latched instruction ``ir``
        (registers, so that its shift and rounding masks come from flip-flops; loaded every cycle,
        they settle the cycle after the instruction starts, before its first row arrives)."""
        f = lambda op, name: field(ir, op, name)
        op, shift, rounding = Signal(PostOp), Signal(len(post.shift)), Signal()
        relu_en, lr_mul, wd_mul = Signal(), Signal(len(post.lr_mul)), Signal(len(post.wd_mul))
        with m.Switch(ir[:isa.OPCODE_BITS]):
            with m.Case(Op.REQ):
                domain += [op.eq(PostOp.REQ), shift.eq(f(Op.REQ, "shift")),
                           rounding.eq(f(Op.REQ, "rounding")), relu_en.eq(f(Op.REQ, "relu"))]
            with m.Case(Op.RELUB):
                domain += [op.eq(PostOp.RELUB), shift.eq(0), rounding.eq(0), relu_en.eq(0)]
            with m.Case(Op.SGD):
                domain += [op.eq(PostOp.SGD), shift.eq(f(Op.SGD, "lr_shift")),
                           rounding.eq(f(Op.SGD, "rounding")), relu_en.eq(0)]
        domain += [lr_mul.eq(f(Op.SGD, "lr_mul")), wd_mul.eq(f(Op.SGD, "wd_mul"))]
        m.d.comb += [post.op.eq(op), post.shift.eq(shift), post.rounding.eq(rounding),
                     post.relu_en.eq(relu_en), post.lr_mul.eq(lr_mul), post.wd_mul.eq(wd_mul)]


class _ReadEnables:
    """The read ports' enables as registers, each set when an instruction that reads through its
    port starts (from the incoming ``ir``) and cleared with the instruction's last read
    (:meth:`stop`): ``x`` (``sp_x``: RELUB's g, SGD's w, SMX's logits), ``y`` (``sp_y``: RELUB's
    mask, SMX's targets in gradient mode), ``a`` (``acc_rd``: REQ's accumulators, SGD's g). They
    are high exactly while the row operation's ``reading`` (or SMX's ``sx.reading``) is and its
    kind reads through the port, so the scratchpads' bank decode starts from flip-flops."""

    def __init__(self, m, start, ir):
        self.x, self.y, self.a = (Signal(name=f"rd_en_{n}") for n in ("x", "y", "a"))
        op = ir[:isa.OPCODE_BITS]
        smx = op == Op.SMX
        with m.If(start):
            m.d.sync += [
                self.x.eq((op == Op.RELUB) | (op == Op.SGD) | smx),
                self.y.eq((op == Op.RELUB) | (smx & field(ir, Op.SMX, "mode"))),
                self.a.eq((op == Op.REQ) | (op == Op.SGD)),
            ]

    def stop(self, m):
        """Clear the enables (in the cycle of the instruction's last read)."""
        m.d.sync += [self.x.eq(0), self.y.eq(0), self.a.eq(0)]


class _RowControl:
    """A row operation's decoded fields, registered when the instruction starts (``start``, from
    the incoming ``ir``): the kind (``req``, ``relub``, ``sgd``, ``fill``, ``fill_acc``;
    ``starts``, combinational, tells that ``ir`` is a row operation), ``rows_last`` (rows − 1),
    ``fill_value``, ``lanes``, ``write_lanes`` (the lanes a
    result row writes on ``sp_w``), ``m_write`` (rows are written on ``sp_m``: REQ's mask, FILL
    of the operand space), and the next row of each port (``x_row``, ``y_row``, ``a_row`` read;
    ``d_row`` written by ``sp_w``, ``m_row`` by ``sp_m`` and ``acc_wr``: REQ's mask rows, FILL's
    and SMX's destination rows), which the engine steps (SMX's too: :class:`_SmxControl`)."""

    def __init__(self, m, start, ir, lanes):
        f = lambda op, name: field(ir, op, name)
        rb = isa.ROW_BITS
        self.req, self.relub, self.sgd, self.fill = (Signal(name=f"rc_{n}") for n in
                                                     ("req", "relub", "sgd", "fill"))
        self.fill_acc, self.m_write = Signal(name="rc_fill_acc"), Signal(name="rc_m_write")
        self.starts = Signal(name="rc_starts")
        self.rows_last = Signal(rb, name="rc_rows_last")
        self.fill_value = Signal(len(f(Op.FILL, "value")), name="rc_fill_value")
        self.lanes = Signal(range(lanes + 1), name="rc_lanes")
        self.write_lanes = Signal(lanes, name="rc_write_lanes")
        self.x_row, self.y_row, self.a_row, self.d_row, self.m_row = (
            Signal(rb, name=f"rc_{n}_row") for n in ("x", "y", "a", "d", "m"))
        all_lanes = (1 << lanes) - 1
        with m.If(start):
            m.d.sync += [self.fill_value.eq(f(Op.FILL, "value")),
                         self.req.eq(0), self.relub.eq(0), self.sgd.eq(0), self.fill.eq(0),
                         self.fill_acc.eq(0), self.m_write.eq(0),
                         self.write_lanes.eq(all_lanes)]
            with m.Switch(ir[:isa.OPCODE_BITS]):
                with m.Case(Op.REQ):
                    m.d.sync += [self.req.eq(1), self.a_row.eq(f(Op.REQ, "src")),
                                 self.d_row.eq(f(Op.REQ, "dst")),
                                 self.m_row.eq(f(Op.REQ, "mask_row")),
                                 self.m_write.eq(f(Op.REQ, "mask_en"))]
                with m.Case(Op.RELUB):
                    m.d.sync += [self.relub.eq(1), self.x_row.eq(f(Op.RELUB, "g_row")),
                                 self.y_row.eq(f(Op.RELUB, "mask_row")),
                                 self.d_row.eq(f(Op.RELUB, "dst"))]
                with m.Case(Op.SGD):
                    m.d.sync += [self.sgd.eq(1), self.x_row.eq(f(Op.SGD, "w_row")),
                                 self.a_row.eq(f(Op.SGD, "g_row")),
                                 self.d_row.eq(f(Op.SGD, "w_row")),
                                 self.write_lanes.eq(lane_mask_of(f(Op.SGD, "lanes"), lanes))]
                with m.Case(Op.FILL):
                    m.d.sync += [self.fill.eq(1), self.m_row.eq(f(Op.FILL, "dst")),
                                 self.fill_acc.eq(f(Op.FILL, "space") == 1),
                                 self.m_write.eq(f(Op.FILL, "space") == 0)]
                with m.Case(Op.SMX):            # SMX's rows (see _SmxControl)
                    m.d.sync += [self.x_row.eq(f(Op.SMX, "z_row")),
                                 self.y_row.eq(f(Op.SMX, "t_row")),
                                 self.m_row.eq(f(Op.SMX, "dst"))]
            for op in (Op.REQ, Op.RELUB, Op.SGD, Op.FILL):
                with m.If(ir[:isa.OPCODE_BITS] == op):
                    m.d.comb += self.starts.eq(1)
                    m.d.sync += self.rows_last.eq(f(op, "rows") - 1)
                    if op is not Op.FILL:
                        m.d.sync += self.lanes.eq(f(op, "lanes"))


class _SmxControl:
    """SMX's decoded fields, registered when the instruction starts (``start``, from the incoming
    ``ir``): ``samples``, ``samples_last`` (samples − 1), ``cls_last`` (classes − 1), the first
    row of each port (``z_base``, ``t_base``, ``d_base``), ``cls_one`` (one class), and the read
    state the engine steps: ``reading`` (the port enables are :class:`_ReadEnables`),
    ``p_left`` (passes after this one: samples .. 0) and ``j_left`` (rows after the next read in
    this pass: classes − 1 .. 0), each with its flag computed a read ahead (``p_last``: ``p_left``
    is 0; ``j_last``: ``j_left`` is 0), so that the read control compares nothing, and the next
    rows (``z_rd``, ``t_rd``; ``d_wr`` written): these are the row operations' ``rc.x_row``,
    ``rc.y_row``, ``rc.m_row`` (one address register per port, no multiplexer in front of it),
    which ``rc`` loads when SMX starts."""

    def __init__(self, m, start, ir, lanes, rc):
        f = lambda name: field(ir, Op.SMX, name)
        rb = isa.ROW_BITS
        cls_width = len(f("classes"))
        self.samples = Signal(range(lanes + 1), name="sx_samples")
        self.samples_last = Signal(range(lanes), name="sx_samples_last")
        self.cls_last = Signal(cls_width, name="sx_cls_last")
        self.z_base, self.t_base, self.d_base = (Signal(rb, name=f"sx_{n}_base")
                                                 for n in ("z", "t", "d"))
        self.z_rd, self.t_rd, self.d_wr = rc.x_row, rc.y_row, rc.m_row
        self.cls_one = Signal(name="sx_cls_one")
        self.reading = Signal(name="sx_reading")
        self.p_left = Signal(range(lanes + 1), name="sx_p_left")
        self.p_last = Signal(name="sx_p_last")
        self.j_left = Signal(cls_width, name="sx_j_left")
        self.j_last = Signal(name="sx_j_last")
        cls_last = Signal(cls_width, name="sx_cls_last_in")
        samples = Signal(range(lanes + 1), name="sx_samples_in")
        m.d.comb += [cls_last.eq(f("classes") - 1), samples.eq(f("samples"))]
        with m.If(start):
            m.d.sync += [
                self.samples.eq(samples), self.samples_last.eq(samples - 1),
                self.cls_last.eq(cls_last), self.cls_one.eq(cls_last == 0),
                self.z_base.eq(f("z_row")), self.t_base.eq(f("t_row")),
                self.d_base.eq(f("dst")),
                self.reading.eq(ir[:isa.OPCODE_BITS] == Op.SMX),
                self.p_left.eq(samples), self.p_last.eq(samples == 0),
                self.j_left.eq(cls_last), self.j_last.eq(cls_last == 0),
            ]
