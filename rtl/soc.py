"""The SoC: sequencer, systolic array (GEMM engine), vector engine, selection engine, DMA,
scratchpads, main memory, CSRs and, optionally, the UART host link.

This is the design the compiled simulator runs, the board builds synthesize and the firmware
drives. Its behaviour is specified by :class:`golden.machine.Machine`.
"""

from amaranth.hdl import Module, Signal, Cat, Mux, Const
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spec import isa
from spec.isa import Op, Error
from spec.csr import Csr, CSR_COUNT, CHIP_ID, STATUS_FIELDS, config_value
from spec.soc import check_soc
from .sequencer import Sequencer, field
from .gemm_engine import GemmEngine
from .vec_engine import VecEngine
from .sel_engine import SelEngine
from .memsys import MemorySystem
from .dma import DmaChecker

__all__ = ["Soc", "memory_system"]


def memory_system(soc, **kwargs):
    """The SoC's :class:`~rtl.memsys.MemorySystem`, with its ports (``kwargs``: main memory's
    ``stall_rate``, ``seed``, ``mem_init``; ``benchmarks/unit_fmax.py`` builds it alone).

    Exported ports, in order: operand scratchpad reads GEMM A, GEMM B, vector X, vector Y,
    selection (late ones); writes vector rows, vector one-word rows; accumulator reads GEMM, vector
    (late ones); writes GEMM, vector; bus masters LDW/STW, host link, selection engine.
    """
    has_sel = soc.selector is not None
    return MemorySystem(soc, sp_read_ports=4 + has_sel, sp_write_ports=2, acc_read_ports=2,
                        acc_write_ports=2, bus_masters=2 + has_sel, fetch_words=isa.INSN_WORDS,
                        sp_late_read_ports=4 + has_sel, acc_late_read_ports=2, **kwargs)


class _MemOp(wiring.Component):
    """LDW/STW: one 32-bit access of the sequencer as two bus transfers of a 16-bit word each
    (low word first; ``SocConfig`` holds the word width at 16)."""

    def __init__(self, bus_signature):
        super().__init__({
            "req": In(1), "we": In(1), "addr": In(32), "wdata": In(32),
            "ack": Out(1), "rdata": Out(32),
            "bus": Out(bus_signature),
        })

    def elaborate(self, platform):
        m = Module()
        sent, got = Signal(2), Signal(2)
        ww = self.bus.signature.data_width
        assert 2 * ww == len(self.wdata)
        lo = Signal(ww)
        # the high word's address, registered with the low word's transfer: no adder between
        # the sequencer's address register and main memory
        addr_hi = Signal(32)
        req, rsp = self.bus.req, self.bus.rsp
        m.d.comb += [
            req.valid.eq(self.req & (sent < 2)),
            req.payload.addr.eq(Mux(sent[0], addr_hi, self.addr)),
            req.payload.we.eq(self.we),
            req.payload.wdata.eq(Mux(sent[0], self.wdata[ww:], self.wdata[:ww])),
            rsp.ready.eq(1),
        ]
        with m.If(req.valid & req.ready):
            m.d.sync += [sent.eq(sent + 1), addr_hi.eq(self.addr + 1)]
        with m.If(rsp.valid):
            with m.If(got == 0):
                m.d.sync += [lo.eq(rsp.payload), got.eq(1)]
            with m.Else():
                m.d.comb += [self.ack.eq(1), self.rdata.eq(Cat(lo, rsp.payload))]
                m.d.sync += [sent.eq(0), got.eq(0)]
        return m


class Soc(wiring.Component):
    """The accelerator SoC.

    Parameters
    ----------
    soc : SocConfig
    stall_rate, seed : float, int
        Main memory's random stalls (simulation; 0 is the deterministic memory model).
    mem_init : iterable of int
        Initial main-memory contents.
    host_link : dict or None
        Build the UART host link with these :class:`~rtl.hostlink.HostLink` arguments (at least
        ``divisor``); ``None``: no host link (simulation drives the CSR port and memory directly).

    Members
    -------
    csr_addr : In(range(CSR_COUNT))
    csr_re, csr_we : In(1)
        CSR read/write strobes; ``csr_rdata`` holds the read value in the next cycle.
    csr_wdata : In(32)
    csr_rdata : Out(32)
    running, done : Out(1)
        The sequencer's status (also in the STATUS CSR).
    error : Out(8)
    busy_sel : Out(32)
        Cycles the selection unit was busy in the last/current program (not yet a CSR: adding
        one changes ``CSR_COUNT``'s lower bound that the host-link tests pin).
    rx : In(1), tx : Out(1)
        UART pins (with ``host_link`` only).

    Attributes
    ----------
    fetch_collision : Signal
        Not a port (nothing in the design reads it; the simulation tests watch it): 1 in a cycle
        in which the sequencer fetches a line that the bus writes in the same cycle. Main memory
        is declared collision-free (:class:`~rtl.mainmem.MainMemory`): on the board such a fetch
        reads undefined words. A program that stores into its own instructions while they are
        fetched is outside the cycle model anyway (golden fetches after the stores of the
        instructions before); :func:`sim.soc.run_program` refuses it.
    """

    def __init__(self, soc=None, *, stall_rate=0, seed=1, mem_init=(), host_link=None):
        soc = check_soc(soc, "SoC")
        self._soc = soc
        self._host_link = host_link
        has_sel = soc.selector is not None
        self.memsys = memory_system(soc, stall_rate=stall_rate, seed=seed, mem_init=mem_init)
        self.seq = Sequencer(soc)
        self.gemm = GemmEngine(soc)
        self.vec = VecEngine(soc)
        self.sel = SelEngine(soc) if has_sel else None
        self.fetch_collision = Signal()
        ports = {
            "csr_addr": In(range(CSR_COUNT)), "csr_re": In(1), "csr_we": In(1),
            "csr_wdata": In(32), "csr_rdata": Out(32),
            "running": Out(1), "done": Out(1), "error": Out(8),
            "busy_sel": Out(32),
        }
        if host_link is not None:
            ports.update({"rx": In(1, init=1), "tx": Out(1, init=1)})
        super().__init__(ports)

    @property
    def config(self):
        return self._soc

    @property
    def mainmem(self):
        """Main memory (:class:`~rtl.mainmem.MainMemory`; backdoor: ``mainmem.word(i)``)."""
        return self.memsys.mainmem

    def elaborate(self, platform):
        m = Module()
        soc = self._soc
        m.submodules.memsys = mem = self.memsys
        m.submodules.seq = seq = self.seq
        m.submodules.gemm = gemm = self.gemm
        m.submodules.vec = vec = self.vec
        # the checker's fault is registered by the sequencer in COMPARE; its product's operands
        # come from the fetched instruction in DECODE, three cycles before, its descriptor from
        # `ir` (from READ, two cycles before) and `dma_addr` (from COMPARE)
        m.submodules.dma_check = check = DmaChecker(soc, latency=3)
        m.submodules.memop = memop = _MemOp(mem.bus[0].signature.flip())

        # ---- fetch, LDW/STW ----
        m.d.comb += [mem.fetch_addr.eq(seq.f_addr), seq.f_data.eq(mem.fetch_data)]
        line = mem.mainmem.bus.req
        m.d.comb += self.fetch_collision.eq(seq.in_state["FETCH"] & line.valid & line.ready &
                                            line.payload.we & (line.payload.addr == mem.fetch_addr))
        wiring.connect(m, memop.bus, mem.bus[0])
        m.d.comb += [memop.req.eq(seq.m_req), memop.we.eq(seq.m_we), memop.addr.eq(seq.m_addr),
                     memop.wdata.eq(seq.m_wdata), seq.m_ack.eq(memop.ack),
                     seq.m_rdata.eq(memop.rdata)]

        # ---- DMA: the sequencer's instruction as a descriptor ----
        f = lambda name: field(seq.ir, Op.DMA, name)
        desc = [check.desc, mem.i_desc.payload]
        for d in desc:
            m.d.comb += [
                d.direction.eq(f("direction")), d.space.eq(f("space")),
                d.transpose.eq(f("transpose")), d.elem_words.eq(f("elem_words")),
                d.mem_addr.eq(seq.dma_addr), d.sp_row.eq(f("sp_row")), d.rows.eq(f("rows")),
                d.cols.eq(f("cols")), d.stride.eq(f("stride")),
            ]
        m.d.comb += [check.pre_rows.eq(field(seq.f_data, Op.DMA, "rows")),
                     check.pre_stride.eq(field(seq.f_data, Op.DMA, "stride"))]
        m.d.comb += [seq.dma_fault.eq(check.fault), mem.i_desc.valid.eq(seq.dma_start),
                     seq.dma_busy.eq(mem.busy)]

        # ---- engines ----
        m.d.comb += [gemm.ir.eq(seq.ir), gemm.start.eq(seq.gemm_start),
                     seq.gemm_busy.eq(gemm.busy),
                     vec.ir.eq(seq.ir), vec.start.eq(seq.vec_start), seq.vec_busy.eq(vec.busy),
                     vec.seed.eq(seq.seed), vec.seed_stb.eq(seq.seed_stb)]
        wiring.connect(m, gemm.a_rd, mem.sp_read[0])
        wiring.connect(m, gemm.b_rd, mem.sp_read[1])
        wiring.connect(m, vec.sp_x, mem.sp_read[2])
        wiring.connect(m, vec.sp_y, mem.sp_read[3])
        wiring.connect(m, vec.sp_w, mem.sp_write[0])
        wiring.connect(m, vec.sp_m, mem.sp_write[1])
        wiring.connect(m, gemm.acc_rd, mem.acc_read[0])
        wiring.connect(m, vec.acc_rd, mem.acc_read[1])
        wiring.connect(m, gemm.acc_wr, mem.acc_write[0])
        wiring.connect(m, vec.acc_wr, mem.acc_write[1])
        if self.sel is not None:
            m.submodules.sel = sel = self.sel
            m.d.comb += [sel.ir.eq(seq.ir), sel.start.eq(seq.sel_start), sel.arg.eq(seq.sel_arg),
                         seq.sel_busy.eq(sel.busy)]
            wiring.connect(m, sel.sp_rd, mem.sp_read[4])
            wiring.connect(m, sel.bus, mem.bus[2])

        # ---- CSRs ----
        csr_addr, csr_re, csr_we, csr_wdata = (Signal.like(self.csr_addr), Signal(), Signal(),
                                               Signal(32))
        if self._host_link is not None:
            from .hostlink import HostLink
            m.submodules.hostlink = link = HostLink(soc.mem_words, **self._host_link)
            m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx)]
            wiring.connect(m, link.bus, mem.bus[1])
            m.d.comb += [
                csr_addr.eq(Mux(link.csr_re | link.csr_we, link.csr_addr, self.csr_addr)),
                csr_re.eq(link.csr_re | self.csr_re), csr_we.eq(link.csr_we | self.csr_we),
                csr_wdata.eq(Mux(link.csr_we, link.csr_wdata, self.csr_wdata)),
                link.csr_rdata.eq(self.csr_rdata),
            ]
        else:
            m.d.comb += [mem.bus[1].req.valid.eq(0), mem.bus[1].rsp.ready.eq(1),
                         csr_addr.eq(self.csr_addr), csr_re.eq(self.csr_re),
                         csr_we.eq(self.csr_we), csr_wdata.eq(self.csr_wdata)]

        entry = Signal(32)
        budget = Signal(32)
        start = Signal()
        with m.If(csr_we):
            with m.Switch(csr_addr):
                with m.Case(Csr.ENTRY):
                    m.d.sync += entry.eq(csr_wdata)
                with m.Case(Csr.BUDGET):
                    m.d.sync += budget.eq(csr_wdata)
                with m.Case(Csr.CTRL):
                    m.d.comb += start.eq(csr_wdata[0] & ~seq.running)
        m.d.comb += [seq.start.eq(start), seq.entry.eq(entry), seq.budget.eq(budget),
                     vec.sat_clr.eq(start),
                     self.running.eq(seq.running), self.done.eq(seq.done),
                     self.error.eq(seq.error)]

        busy_ctr = {u: Signal(32, name=f"busy_{u}") for u in ("dma", "gemm", "vec")}
        busy_ctr["sel"] = self.busy_sel
        for u, busy in (("dma", seq.dma_busy), ("gemm", seq.gemm_busy), ("vec", seq.vec_busy),
                        ("sel", seq.sel_busy)):
            with m.If(start):
                m.d.sync += busy_ctr[u].eq(0)
            with m.Elif(busy):
                m.d.sync += busy_ctr[u].eq(busy_ctr[u] + 1)
        dma_fault = Signal(8)
        with m.If(start):
            m.d.sync += dma_fault.eq(0)
        with m.Elif(seq.running & seq.in_state["COMPARE"]):
            # the checker's fault is right in COMPARE (its product's operands were DECODE's)
            m.d.sync += dma_fault.eq(Mux(seq.ir[:isa.OPCODE_BITS] == Op.DMA, check.fault, 0))

        status = Signal(32)
        for name, (lsb, width) in STATUS_FIELDS.items():
            m.d.comb += status[lsb:lsb + width].eq(getattr(seq, name))
        a = soc.config.array
        values = {
            Csr.ID: Const(CHIP_ID, 32),
            Csr.CONFIG: Const(config_value(a.rows, a.cols, soc.lanes), 32),
            Csr.MEM_WORDS: Const(soc.mem_words, 32),
            Csr.ENTRY: entry,
            Csr.BUDGET: budget,
            Csr.STATUS: status,
            Csr.PC: seq.pc,
            Csr.DMA_FAULT: dma_fault,
            Csr.CYCLES_LO: seq.cycles[:32], Csr.CYCLES_HI: seq.cycles[32:],
            Csr.STALL_LO: seq.stall[:32], Csr.STALL_HI: seq.stall[32:],
            Csr.INSNS: seq.insns,
            Csr.BUSY_DMA: busy_ctr["dma"], Csr.BUSY_GEMM: busy_ctr["gemm"],
            Csr.BUSY_VEC: busy_ctr["vec"],
            Csr.SAT_REQ: vec.sat_req, Csr.SAT_SGD: vec.sat_sgd,
        }
        with m.If(csr_re):
            m.d.sync += self.csr_rdata.eq(0)
            with m.Switch(csr_addr):
                for idx, v in values.items():
                    with m.Case(idx):
                        m.d.sync += self.csr_rdata.eq(v)
        return m
