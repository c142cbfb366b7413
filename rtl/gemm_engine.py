"""The GEMM engine: runs a ``GEMM`` instruction on the systolic array.

It reads the operand rows from the scratchpad, feeds the array tile by tile (keeping to the
array's spacing rule) and writes each finished row to the accumulator scratchpad, adding the old
row when the instruction accumulates.
"""

from amaranth.hdl import Module, Signal, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spec import isa
from spec.isa import Op
from spec.soc import check_soc
from .array import SystolicArray
from .sequencer import field
from .spport import ReadPortSignature, WritePortSignature

__all__ = ["GemmEngine"]


class GemmEngine(wiring.Component):
    """Executes GEMM instructions (``docs/isa.md``) on a :class:`~rtl.array.SystolicArray`.

    Timing: the engine takes the instruction in the cycle ``start`` is high (``t``), reads its first
    operand rows in ``t+1`` and presents the array's first input in ``t+2``; tiles follow in the
    order ``for j < nt: for i < mt`` as :func:`golden.array.schedule` feeds them; each output row
    is written one cycle after the array presents it (a read of the old row for accumulation in
    between). ``busy`` is high from ``t+1`` to the cycle of the last write, both included:
    ``schedule(...).total_cycles + 2`` cycles.

    Parameters
    ----------
    soc : SocConfig

    Members
    -------
    start : In(1)
        Take the GEMM instruction on ``ir``.
    ir : In(128)
    busy : Out(1)
    a_rd, b_rd : Out(ReadPortSignature)
        Operand scratchpad reads (A and B operands; the sequencer keeps them in distinct banks).
    acc_rd : Out(ReadPortSignature)
        Accumulator scratchpad read (old rows, when accumulating).
    acc_wr : Out(WritePortSignature)
        Accumulator scratchpad write.
    """

    def __init__(self, soc=None):
        soc = check_soc(soc, "GEMM engine")
        self._soc = soc
        a = soc.config.array
        L = soc.lanes
        super().__init__({
            "start": In(1),
            "ir": In(isa.INSN_BITS),
            "busy": Out(1),
            "a_rd": Out(ReadPortSignature(soc.sp_rows, a.operand_width, L)),
            "b_rd": Out(ReadPortSignature(soc.sp_rows, a.operand_width, L)),
            "acc_rd": Out(ReadPortSignature(soc.acc_rows, a.acc_width, L)),
            "acc_wr": Out(WritePortSignature(soc.acc_rows, a.acc_width, L)),
        })

    def elaborate(self, platform):
        m = Module()
        soc = self._soc
        R, C = soc.config.array.rows, soc.config.array.cols
        L = soc.lanes
        S = max(R, C)
        m.submodules.array = arr = SystolicArray.from_config(soc.config.array)

        fld = lambda name: field(self.ir, Op.GEMM, name)
        rowbits = isa.ROW_BITS + 8
        a_row, b_row, c_row = (Signal(rowbits, name=n) for n in ("a_row", "b_row", "c_row"))
        a_ps, b_ps, c_ps = (Signal(rowbits, name=n) for n in ("a_ps", "b_ps", "c_ps"))
        k, mt, nt = Signal(isa.ROW_BITS), Signal(6), Signal(6)
        accumulate = Signal()
        # the loop bounds' last indices and the bubbles after a tile, registered at start (the
        # measured critical path was mt → `i != mt - 1` → the B panel's base register)
        k_m1, mt_m1, nt_m1 = Signal(isa.ROW_BITS), Signal(6), Signal(6)
        bubbles = Signal(range(S + 1))

        # ---------------- input side: operand reads, array steps ----------------------------
        feeding = Signal()
        i, j, kk = Signal(6), Signal(6), Signal(isa.ROW_BITS)
        a_base, b_base = Signal(rowbits), Signal(rowbits)
        gap = Signal(range(S + 1))
        step_valid, step_first, step_last = Signal(), Signal(), Signal()

        with m.If(self.start):
            m.d.sync += [
                a_row.eq(fld("a_row")), b_row.eq(fld("b_row")), c_row.eq(fld("c_row")),
                a_ps.eq(fld("a_ps")), b_ps.eq(fld("b_ps")), c_ps.eq(fld("c_ps")),
                k.eq(fld("k")), mt.eq(fld("mt")), nt.eq(fld("nt")),
                accumulate.eq(fld("accumulate")),
                k_m1.eq(fld("k") - 1), mt_m1.eq(fld("mt") - 1), nt_m1.eq(fld("nt") - 1),
                bubbles.eq(Mux(fld("k") < S, S - fld("k"), 0)),
                a_base.eq(fld("a_row")), b_base.eq(fld("b_row")),
                i.eq(0), j.eq(0), kk.eq(0), gap.eq(0), feeding.eq(1),
            ]

        m.d.comb += [
            self.a_rd.addr.eq(a_base + kk),
            self.b_rd.addr.eq(b_base + kk),
        ]
        with m.If(feeding):
            with m.If(gap != 0):
                m.d.sync += gap.eq(gap - 1)
            with m.Else():
                m.d.comb += [self.a_rd.en.eq(1), self.b_rd.en.eq(1)]
                m.d.comb += [step_valid.eq(1), step_first.eq(kk == 0),
                             step_last.eq(kk == k_m1)]
                with m.If(kk != k_m1):
                    m.d.sync += kk.eq(kk + 1)
                with m.Else():
                    m.d.sync += kk.eq(0)
                    # bubbles so that the next tile's last step is S cycles after this one's
                    m.d.sync += gap.eq(bubbles)
                    with m.If(i != mt_m1):
                        m.d.sync += [i.eq(i + 1), a_base.eq(a_base + a_ps)]
                    with m.Else():
                        m.d.sync += [i.eq(0), a_base.eq(a_row)]
                        with m.If(j != nt_m1):
                            m.d.sync += [j.eq(j + 1), b_base.eq(b_base + b_ps)]
                        with m.Else():
                            m.d.sync += feeding.eq(0)

        # operand rows arrive one cycle after the read: the step's flags wait for them
        d_valid, d_first, d_last = Signal(), Signal(), Signal()
        m.d.sync += [d_valid.eq(step_valid), d_first.eq(step_first), d_last.eq(step_last)]
        m.d.comb += [arr.i_valid.eq(d_valid), arr.i_first.eq(d_first), arr.i_last.eq(d_last)]
        for r in range(R):
            m.d.comb += arr.i_a[r].eq(self.a_rd.data[r])
        for c in range(C):
            m.d.comb += arr.i_b[c].eq(self.b_rd.data[c])

        # ---------------- output side: rows → accumulator scratchpad ------------------------
        io, jo = Signal(6), Signal(6)
        out_base = Signal(rowbits)          # c_row + jo*c_ps + io*R
        col_base = Signal(rowbits)          # c_row + jo*c_ps
        dest = Signal(rowbits)              # out_base + arr.o_row, running with the rows
        pending = Signal(13)                # tiles whose rows are not all written yet
        # io == mt - 1 and pending == 1, kept as flags beside the counters (a tile's end then
        # decides from registers alone what its ~90 counter and address flip-flops load)
        io_last, pending_one = Signal(), Signal()
        with m.If(self.start):
            m.d.sync += [io.eq(0), jo.eq(0), out_base.eq(fld("c_row")), col_base.eq(fld("c_row")),
                         dest.eq(fld("c_row")), pending.eq(fld("mt") * fld("nt")),
                         io_last.eq(fld("mt") == 1),
                         pending_one.eq((fld("mt") == 1) & (fld("nt") == 1))]

        w_valid = Signal()
        w_addr = Signal(range(soc.acc_rows))
        w_row = [Signal(soc.config.array.acc_width, name=f"w_row_{c}") for c in range(C)]
        m.d.comb += [self.acc_rd.addr.eq(dest), self.acc_rd.en.eq(arr.o_valid & accumulate)]
        m.d.sync += [w_valid.eq(arr.o_valid), w_addr.eq(dest)]
        m.d.sync += [w_row[c].eq(arr.o_c[c]) for c in range(C)]
        with m.If(arr.o_valid & ~arr.o_last):
            m.d.sync += dest.eq(dest + 1)
        with m.If(arr.o_valid & arr.o_last):
            with m.If(~io_last):
                m.d.sync += [io.eq(io + 1), out_base.eq(out_base + R), dest.eq(out_base + R),
                             io_last.eq(io + 1 == mt_m1)]
            with m.Else():
                m.d.sync += [io.eq(0), jo.eq(jo + 1), col_base.eq(col_base + c_ps),
                             out_base.eq(col_base + c_ps), dest.eq(col_base + c_ps),
                             io_last.eq(mt_m1 == 0)]
            m.d.sync += [pending.eq(pending - 1), pending_one.eq(pending == 2)]
        last_write = Signal()
        m.d.sync += last_write.eq(arr.o_valid & arr.o_last & pending_one)

        m.d.comb += [self.acc_wr.addr.eq(w_addr),
                     self.acc_wr.en.eq(Mux(w_valid, (1 << L) - 1, 0))]
        # A row read in the cycle the same row is written returns the old contents (the
        # scratchpad's read ports are not transparent): forward the written row instead. Both
        # sums are formed and the forwarding flag picks one after the adders (it fans out to
        # every lane's bits: before the adders it was the unit's critical path).
        bypass = Signal()
        last_data = [Signal(soc.config.array.acc_width, name=f"last_wr_{l}") for l in range(L)]
        m.d.sync += bypass.eq(w_valid & (w_addr == dest))
        m.d.sync += [last_data[l].eq(self.acc_wr.data[l]) for l in range(L)]
        for lane in range(L):
            old = Mux(bypass, last_data[lane], self.acc_rd.data[lane])
            if lane < C:
                total = Mux(bypass, last_data[lane] + w_row[lane],
                            self.acc_rd.data[lane] + w_row[lane])
                m.d.comb += self.acc_wr.data[lane].eq(Mux(accumulate, total, w_row[lane]))
            else:
                m.d.comb += self.acc_wr.data[lane].eq(Mux(accumulate, old, 0))

        # busy from the cycle after start to the cycle of the last write
        active = Signal()
        with m.If(self.start):
            m.d.sync += active.eq(1)
        with m.Elif(w_valid & last_write):
            m.d.sync += active.eq(0)
        m.d.comb += self.busy.eq(active)
        return m
