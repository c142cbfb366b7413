"""The vector engine: runs REQ, RELUB, SGD, FILL and SMX instructions on the vector units.

Row operations (REQ, RELUB, SGD, FILL) stream one scratchpad row per cycle through a fully
pipelined unit (:class:`~rtl.requant.Requantizer`, :class:`~rtl.sgd.SgdUpdate`) and write each
result row as it comes out. SMX walks the samples (lanes) one at a time through the
:class:`~rtl.softmax.SoftmaxUnit`, reading one logit row per element and writing the result into
its lane. The stochastic-rounding generators (:class:`~rtl.rng.Xorshift32Lanes`, one per lane)
are shared by REQ and SGD: an element in lane ``l`` takes generator ``l``'s next draw, in program
order.
"""

from amaranth.hdl import Module, Signal, Mux, Const
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spec import isa
from spec.isa import Op
from spec.soc import check_soc
from .sequencer import field
from .spport import ReadPortSignature, WritePortSignature
from .requant import Requantizer, lane_mask as lane_mask_of
from .sgd import SgdUpdate
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
        Operand scratchpad reads (two operands; the sequencer keeps them in distinct banks).
    acc_rd : Out(ReadPortSignature)
        Accumulator scratchpad read.
    sp_w, sp_m : Out(WritePortSignature)
        Operand scratchpad writes (result rows; REQ's mask rows).
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

        m.submodules.req = req = Requantizer(L, acc_width=AW, width=W, bias=False)
        m.submodules.sgd = sgd = SgdUpdate(L, grad_width=AW, width=W)
        m.submodules.smx = smx = SoftmaxUnit(SMX_CLASSES_MAX, width=W)
        m.submodules.rng = rng = Xorshift32Lanes(L)
        m.d.comb += [rng.seed.eq(self.seed), rng.seed_stb.eq(self.seed_stb)]
        for c in range(L):
            m.d.comb += [req.rng.draws[c].eq(rng.port.draws[c]),
                         sgd.rng.draws[c].eq(rng.port.draws[c])]
        m.d.comb += rng.port.advance.eq(req.rng.advance | sgd.rng.advance)
        m.d.comb += [self.sat_req.eq(req.sat_count), self.sat_sgd.eq(sgd.sat_count),
                     req.sat_clr.eq(self.sat_clr), sgd.sat_clr.eq(self.sat_clr)]

        # ---------------- the instruction, latched at start -------------------------------------
        ir = Signal(isa.INSN_BITS)
        with m.If(self.start):
            m.d.sync += ir.eq(self.ir)
        opcode = ir[:isa.OPCODE_BITS]
        f = lambda op, name: field(ir, op, name)
        is_req, is_relub = opcode == Op.REQ, opcode == Op.RELUB
        is_sgd, is_fill, is_smx = opcode == Op.SGD, opcode == Op.FILL, opcode == Op.SMX

        rows = Signal(isa.ROW_BITS)
        lanes = Signal(range(L + 1))
        with m.Switch(opcode):
            for op in (Op.REQ, Op.RELUB, Op.SGD, Op.FILL):
                with m.Case(op):
                    m.d.comb += rows.eq(f(op, "rows"))
                    if op is not Op.FILL:
                        m.d.comb += lanes.eq(f(op, "lanes"))

        # static unit inputs (stable while the engine is busy)
        m.d.comb += [
            req.shift.eq(f(Op.REQ, "shift")),
            req.relu_en.eq(is_req & f(Op.REQ, "relu")),
            req.rounding.eq(is_req & f(Op.REQ, "rounding")),
            req.backward.eq(is_relub),
            sgd.lr_shift.eq(f(Op.SGD, "lr_shift")),
            sgd.lr_mul.eq(f(Op.SGD, "lr_mul")),
            sgd.wd_mul.eq(f(Op.SGD, "wd_mul")),
            sgd.rounding.eq(f(Op.SGD, "rounding")),
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
        rowop = Signal()
        t_rd = Signal(isa.ROW_BITS)
        t_wr = Signal(isa.ROW_BITS)
        reading = Signal()
        with m.If(self.start):
            m.d.sync += [t_rd.eq(0), t_wr.eq(0), rowop.eq(0)]
            with m.Switch(self.ir[:isa.OPCODE_BITS]):
                with m.Case(Op.REQ, Op.RELUB, Op.SGD, Op.FILL):
                    m.d.sync += [rowop.eq(1), reading.eq(1)]

        x_addr, y_addr, a_addr = Signal(isa.ROW_BITS), Signal(isa.ROW_BITS), Signal(isa.ROW_BITS)
        with m.Switch(opcode):
            with m.Case(Op.REQ):
                m.d.comb += a_addr.eq(f(Op.REQ, "src"))
            with m.Case(Op.RELUB):
                m.d.comb += [x_addr.eq(f(Op.RELUB, "g_row")), y_addr.eq(f(Op.RELUB, "mask_row"))]
            with m.Case(Op.SGD):
                m.d.comb += [x_addr.eq(f(Op.SGD, "w_row")), a_addr.eq(f(Op.SGD, "g_row"))]

        rd_now = Signal()
        m.d.comb += rd_now.eq(rowop & reading)
        with m.If(rd_now):
            with m.If(t_rd == rows - 1):
                m.d.sync += reading.eq(0)
            m.d.sync += t_rd.eq(t_rd + 1)
        beat = Signal()          # rows read last cycle arrive now
        beat_last = Signal()
        m.d.sync += [beat.eq(rd_now), beat_last.eq(t_rd == rows - 1)]

        # operands feed the units (they are always ready: their outputs are never stalled)
        m.d.comb += [
            req.i.valid.eq(beat & (is_req | is_relub)),
            req.i.payload.n_valid.eq(lanes),
            req.i.payload.last.eq(beat_last),
            req.o.ready.eq(1),
            sgd.i.valid.eq(beat & is_sgd),
            sgd.i.payload.n_valid.eq(lanes),
            sgd.i.payload.last.eq(beat_last),
            sgd.o.ready.eq(1),
        ]
        for c in range(L):
            m.d.comb += [
                req.i.payload.acc[c].eq(self.acc_rd.data[c]),
                req.i.payload.grad[c].eq(self.sp_x.data[c]),
                req.i.payload.mask[c].eq(self.sp_y.data[c] != 0),
                sgd.i.payload.w[c].eq(self.sp_x.data[c]),
                sgd.i.payload.g[c].eq(self.acc_rd.data[c]),
            ]

        wr_row = Signal()
        with m.If(rowop & (req.o.valid | sgd.o.valid | (is_fill & beat))):
            m.d.comb += wr_row.eq(1)
            m.d.sync += t_wr.eq(t_wr + 1)
            with m.If(t_wr == rows - 1):
                m.d.comb += finish.eq(1)
                m.d.sync += rowop.eq(0)

        # ---------------- SMX: one sample (lane) at a time ------------------------------------
        smx_on = Signal()
        s_rd, j_rd = Signal(range(L + 1)), Signal(6)        # next element to read
        s_wr, j_wr = Signal(range(L + 1)), Signal(6)        # next result to write
        have = Signal()                                     # an element's rows are on the ports
        have_s, have_last = Signal(range(L)), Signal()
        classes, samples = f(Op.SMX, "classes"), f(Op.SMX, "samples")
        more = Signal()
        with m.If(self.start):
            m.d.sync += [s_rd.eq(0), j_rd.eq(0), s_wr.eq(0), j_wr.eq(0), have.eq(0),
                         smx_on.eq(self.ir[:isa.OPCODE_BITS] == Op.SMX)]
        m.d.comb += more.eq(smx_on & (s_rd != samples))
        take = Signal()
        m.d.comb += take.eq(smx.i_logit.valid & smx.i_logit.ready)
        smx_rd = Signal()
        # read the next element when nothing is held, or when the held one is taken now
        m.d.comb += smx_rd.eq(more & (~have | take))
        with m.If(smx_rd):
            m.d.sync += [have.eq(1), have_s.eq(s_rd), have_last.eq(j_rd == classes - 1)]
            with m.If(j_rd == classes - 1):
                m.d.sync += [j_rd.eq(0), s_rd.eq(s_rd + 1)]
            with m.Else():
                m.d.sync += j_rd.eq(j_rd + 1)
        with m.Elif(take):
            m.d.sync += have.eq(0)
        m.d.comb += [
            smx.i_logit.valid.eq(have),
            smx.i_logit.payload.logit.eq(self.sp_x.data.as_value().word_select(have_s, W)),
            smx.i_logit.payload.target.eq(self.sp_y.data.as_value().word_select(have_s, W)),
            smx.i_logit.payload.last.eq(have_last),
            smx.o_result.ready.eq(1),
        ]
        smx_wr = Signal()
        with m.If(smx_on & smx.o_result.valid):
            m.d.comb += smx_wr.eq(1)
            with m.If(j_wr == classes - 1):
                m.d.sync += [j_wr.eq(0), s_wr.eq(s_wr + 1)]
                with m.If(s_wr == samples - 1):
                    m.d.comb += finish.eq(1)
                    m.d.sync += smx_on.eq(0)
            with m.Else():
                m.d.sync += j_wr.eq(j_wr + 1)

        # ---------------- scratchpad ports ------------------------------------------------------
        with m.If(smx_on):
            m.d.comb += [
                self.sp_x.addr.eq(f(Op.SMX, "z_row") + j_rd), self.sp_x.en.eq(smx_rd),
                self.sp_y.addr.eq(f(Op.SMX, "t_row") + j_rd),
                self.sp_y.en.eq(smx_rd & f(Op.SMX, "mode")),
                self.sp_w.addr.eq(f(Op.SMX, "dst") + j_wr),
                self.sp_w.en.eq(Mux(smx_wr, Const(1, L) << s_wr, 0)),
            ]
            for c in range(L):
                m.d.comb += self.sp_w.data[c].eq(smx.o_result.payload.value)
        with m.Else():
            m.d.comb += [
                self.sp_x.addr.eq(x_addr + t_rd),
                self.sp_x.en.eq(rd_now & (is_relub | is_sgd)),
                self.sp_y.addr.eq(y_addr + t_rd),
                self.sp_y.en.eq(rd_now & is_relub),
                self.acc_rd.addr.eq(a_addr + t_rd),
                self.acc_rd.en.eq(rd_now & (is_req | is_sgd)),
            ]
            # result rows
            dst = Signal(isa.ROW_BITS)
            with m.Switch(opcode):
                with m.Case(Op.REQ):
                    m.d.comb += dst.eq(f(Op.REQ, "dst"))
                with m.Case(Op.RELUB):
                    m.d.comb += dst.eq(f(Op.RELUB, "dst"))
                with m.Case(Op.SGD):
                    m.d.comb += dst.eq(f(Op.SGD, "w_row"))
                with m.Case(Op.FILL):
                    m.d.comb += dst.eq(f(Op.FILL, "dst"))
            fill_sp = is_fill & (f(Op.FILL, "space") == 0)
            fill_acc = is_fill & (f(Op.FILL, "space") == 1)
            lane_mask = Signal(L)
            m.d.comb += lane_mask.eq(lane_mask_of(lanes, L))
            m.d.comb += [
                self.sp_w.addr.eq(dst + t_wr),
                self.sp_w.en.eq(Mux(wr_row & ~fill_acc,
                                    Mux(is_sgd, lane_mask, all_lanes), 0)),
                self.sp_m.addr.eq(f(Op.REQ, "mask_row") + t_wr),
                self.sp_m.en.eq(Mux(wr_row & is_req & f(Op.REQ, "mask_en"), all_lanes, 0)),
                self.acc_wr.addr.eq(dst + t_wr),
                self.acc_wr.en.eq(Mux(wr_row & fill_acc, all_lanes, 0)),
            ]
            value = f(Op.FILL, "value")
            for c in range(L):
                m.d.comb += [
                    self.sp_w.data[c].eq(Mux(fill_sp, value, Mux(is_sgd, sgd.o.payload.w[c],
                                                                  req.o.payload.y[c]))),
                    self.sp_m.data[c].eq(req.o.payload.mask[c]),
                    self.acc_wr.data[c].eq(value),
                ]
        return m

