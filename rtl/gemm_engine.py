"""The GEMM engine: runs a ``GEMM`` instruction on the systolic array.

It reads the operand rows from the scratchpad, feeds the array tile by tile (keeping to the
array's spacing rule) and writes each finished row to the accumulator scratchpad, adding the old
row when the instruction accumulates.
"""

from amaranth.hdl import Cat, Module, Signal, Mux
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
    operand rows in ``t+1`` and presents the array's first input in ``t+3`` (the operand ports are
    the scratchpad's late ones: a row arrives two cycles after its read, from registers only);
    tiles follow in the order ``for j < nt: for i < mt`` as :func:`golden.array.schedule` feeds
    them. Each output row goes through a short write pipeline: the cycle the array presents it,
    the engine reads the old row (a late port too); two cycles later the old row, or a newer row
    still in the pipeline or in the scratchpad's write register (forwarded), is added; the sum is
    written the cycle after, from registers. ``busy`` is high from ``t+1`` to the cycle of the
    last write, both included: ``schedule(...).total_cycles +``
    :data:`spec.timing.GEMM_OVERHEAD` cycles (the scratchpad performs that write a cycle later).

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
        Late ports: the row comes two cycles after the read (:class:`~rtl.scratchpad.Scratchpad`'s
        ``late_read_ports``).
    acc_rd : Out(ReadPortSignature)
        Accumulator scratchpad read (old rows, when accumulating); a late port.
    acc_wr : Out(WritePortSignature)
        Accumulator scratchpad write, driven from registers.
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
        # The ports' enable (`step`: a step this cycle, i.e. feeding and no bubble left) and
        # addresses (`a_addr`, `b_addr`: a_base + kk, b_base + kk) are registers, computed a
        # cycle ahead: the scratchpad's bank decode and address AND-OR start from flip-flops.
        feeding = Signal()
        i, j, kk = Signal(6), Signal(6), Signal(isa.ROW_BITS)
        a_base, b_base = Signal(rowbits), Signal(rowbits)
        a_addr, b_addr = Signal(rowbits), Signal(rowbits)
        gap = Signal(range(S + 1))
        step = Signal()
        no_bubbles = Signal()               # bubbles == 0
        step_first, step_last = Signal(), Signal()

        with m.If(self.start):
            m.d.sync += [
                a_row.eq(fld("a_row")), b_row.eq(fld("b_row")), c_row.eq(fld("c_row")),
                a_ps.eq(fld("a_ps")), b_ps.eq(fld("b_ps")), c_ps.eq(fld("c_ps")),
                k.eq(fld("k")), mt.eq(fld("mt")), nt.eq(fld("nt")),
                accumulate.eq(fld("accumulate")),
                k_m1.eq(fld("k") - 1), mt_m1.eq(fld("mt") - 1), nt_m1.eq(fld("nt") - 1),
                bubbles.eq(Mux(fld("k") < S, S - fld("k"), 0)), no_bubbles.eq(fld("k") >= S),
                a_base.eq(fld("a_row")), b_base.eq(fld("b_row")),
                a_addr.eq(fld("a_row")), b_addr.eq(fld("b_row")),
                i.eq(0), j.eq(0), kk.eq(0), gap.eq(0), feeding.eq(1), step.eq(1),
            ]

        m.d.comb += [
            self.a_rd.addr.eq(a_addr), self.b_rd.addr.eq(b_addr),
            self.a_rd.en.eq(step), self.b_rd.en.eq(step),
        ]
        with m.If(feeding):
            with m.If(~step):                           # a bubble: gap != 0
                m.d.sync += [gap.eq(gap - 1), step.eq(gap == 1)]
            with m.Else():
                m.d.comb += [step_first.eq(kk == 0), step_last.eq(kk == k_m1)]
                with m.If(kk != k_m1):
                    m.d.sync += [kk.eq(kk + 1), a_addr.eq(a_addr + 1), b_addr.eq(b_addr + 1)]
                with m.Else():
                    m.d.sync += kk.eq(0)
                    # bubbles so that the next tile's last step is S cycles after this one's
                    m.d.sync += [gap.eq(bubbles), step.eq(no_bubbles)]
                    with m.If(i != mt_m1):
                        m.d.sync += [i.eq(i + 1), a_base.eq(a_base + a_ps),
                                     a_addr.eq(a_base + a_ps), b_addr.eq(b_base)]
                    with m.Else():
                        m.d.sync += [i.eq(0), a_base.eq(a_row), a_addr.eq(a_row)]
                        with m.If(j != nt_m1):
                            m.d.sync += [j.eq(j + 1), b_base.eq(b_base + b_ps),
                                         b_addr.eq(b_base + b_ps)]
                        with m.Else():
                            m.d.sync += [feeding.eq(0), step.eq(0)]

        # operand rows arrive two cycles after the read: the step's flags wait for them
        d_valid, d_first, d_last = Signal(), Signal(), Signal()
        d2_valid, d2_first, d2_last = Signal(), Signal(), Signal()
        m.d.sync += [d_valid.eq(step), d_first.eq(step_first), d_last.eq(step_last),
                     d2_valid.eq(d_valid), d2_first.eq(d_first), d2_last.eq(d_last)]
        m.d.comb += [arr.i_valid.eq(d2_valid), arr.i_first.eq(d2_first), arr.i_last.eq(d2_last)]
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

        # The write pipeline. Stage 0 (the cycle the array presents a row): read the old row.
        # Stage 1: the row and its address in registers. Stage 2: the old row arrives (late
        # port); the newest of it and the rows still in the pipeline is added. Stage 3: the write,
        # from registers. The scratchpad registers its writes (rtl.scratchpad, `write_latency`
        # 1): a write presented at stage 3 reaches the bank a cycle later. So a row read at stage
        # 0 misses the writes of the four rows before it (the write of the row four ahead reaches
        # the bank at the read's clock edge: the block RAM need not say what such a read
        # returns), and the newest of those four with the same address replaces the old row. The
        # three further ones are chosen a stage early: at stage 0 `far` compares the address with
        # the rows two, three and four ahead (at stages 2 and 3, and in the scratchpad's write
        # register), and at stage 1 the chosen row's sum (by then in `s3_data`, `h1_data` or
        # `h2_data`) is registered in `far_data`; stage 2 picks it or the old row (one registered
        # flag), adds, and only then the row one ahead (`near`, compared at stage 1) replaces the
        # sum by its own sum plus the row: the flags reach the 256 bits of the selection from
        # registers, and the nearest forward after the adders (a routed GEMM engine alone:
        # 108.2 MHz with a four-way selection in front of them).
        A = soc.config.array.acc_width
        s1_valid, s2_valid, s3_valid, h1_valid = Signal(), Signal(), Signal(), Signal()
        s1_addr, s2_addr, s3_addr = (Signal(range(soc.acc_rows), name=f"s{i}_addr")
                                     for i in (1, 2, 3))
        h1_addr = Signal(range(soc.acc_rows))                           # written a cycle ago
        s1_row = [Signal(A, name=f"s1_row_{c}") for c in range(C)]
        s2_row = [Signal(A, name=f"s2_row_{c}") for c in range(C)]
        s3_data = [Signal(A, name=f"s3_data_{l}") for l in range(L)]    # the row being written
        h1_data = [Signal(A, name=f"h1_data_{l}") for l in range(L)]    # written a cycle ago
        h2_data = [Signal(A, name=f"h2_data_{l}") for l in range(L)]    # two cycles ago
        far_data = [Signal(A, name=f"far_data_{l}") for l in range(L)]
        far2, far3, far4 = Signal(), Signal(), Signal()  # at stage 1: the row 2 (3, 4) ahead has it
        far_hit, near = Signal(), Signal()  # at stage 2: use far_data; the row 1 ahead has it
        m.d.comb += [self.acc_rd.addr.eq(dest), self.acc_rd.en.eq(arr.o_valid & accumulate)]
        m.d.sync += [s1_valid.eq(arr.o_valid), s1_addr.eq(dest),
                     s2_valid.eq(s1_valid), s2_addr.eq(s1_addr),
                     s3_valid.eq(s2_valid), s3_addr.eq(s2_addr),
                     h1_valid.eq(s3_valid), h1_addr.eq(s3_addr)]
        m.d.sync += [s1_row[c].eq(arr.o_c[c]) for c in range(C)]
        m.d.sync += [s2_row[c].eq(s1_row[c]) for c in range(C)]
        m.d.sync += [h1_data[l].eq(s3_data[l]) for l in range(L)]
        m.d.sync += [h2_data[l].eq(h1_data[l]) for l in range(L)]
        # stage 0: the rows 2 and 3 ahead are at stages 2 and 3, the row 4 ahead in the
        # scratchpad's write register
        m.d.sync += [far2.eq(s2_valid & (s2_addr == dest)), far3.eq(s3_valid & (s3_addr == dest)),
                     far4.eq(h1_valid & (h1_addr == dest))]
        # stage 1: their sums are in s3_data, h1_data and h2_data; the row 1 ahead is at stage 2
        m.d.sync += [far_hit.eq(far2 | far3 | far4), near.eq(s2_valid & (s2_addr == s1_addr))]
        m.d.sync += [far_data[l].eq(Mux(far2, s3_data[l], Mux(far3, h1_data[l], h2_data[l])))
                     for l in range(L)]
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
        # the last row's write is at stage 3: its flag travels with it
        last_out = Signal(3)
        m.d.sync += last_out.eq(Cat(arr.o_valid & arr.o_last & pending_one, last_out[:3]))
        last_write = last_out[2]

        for lane in range(L):
            old = Mux(far_hit, far_data[lane], self.acc_rd.data[lane])
            if lane < C:
                total = Mux(near, s3_data[lane] + s2_row[lane], old + s2_row[lane])
                new = Mux(accumulate, total, s2_row[lane])
            else:
                new = Mux(accumulate, Mux(near, s3_data[lane], old), 0)
            m.d.sync += s3_data[lane].eq(new[:A])
        m.d.comb += [self.acc_wr.addr.eq(s3_addr),
                     self.acc_wr.en.eq(Mux(s3_valid, (1 << L) - 1, 0))]
        m.d.comb += [self.acc_wr.data[l].eq(s3_data[l]) for l in range(L)]

        # busy from the cycle after start to the cycle of the last write
        active = Signal()
        with m.If(self.start):
            m.d.sync += active.eq(1)
        with m.Elif(s3_valid & last_write):
            m.d.sync += active.eq(0)
        m.d.comb += self.busy.eq(active)
        return m
