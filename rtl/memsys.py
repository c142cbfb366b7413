"""The memory system: main memory, the two scratchpads and the DMA, wired together."""

from dataclasses import replace

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.memory import FAULT_BITS, LINE_WORDS, Space
from spec.params import check_int
from spec.soc import check_soc
from spec.timing import bus_latency
from .dma import DmaController, descriptor_layout
from .bus import BusArbiter, BusSignature, WordLineBridge
from .mainmem import MainMemory
from .scratchpad import Scratchpad
from .skid import ReadyBuffer, SkidBuffer
from .spport import ReadPortSignature, WritePortSignature

__all__ = ["MemorySystem"]


class MemorySystem(wiring.Component):
    """Main memory, operand and accumulator scratchpads, and the DMA between them.

    The DMA owns read/write port 0 of each scratchpad (its read port a late one: the row two
    cycles after the read, see :class:`~rtl.scratchpad.Scratchpad`); the scratchpads' other
    ports are exported
    for the units that compute (GEMM engine, vector unit). Main memory stores lines of
    :data:`spec.memory.LINE_WORDS` words on a line bus (:class:`~rtl.bus.LineBusSignature`).
    The DMA is its only master, or, with ``bus_masters > 0``, master 0 of a line-bus
    :class:`~rtl.bus.BusArbiter` whose other ports are exported as word buses (sequencer
    loads/stores, host link, selection engine), each through a :class:`~rtl.bus.WordLineBridge`;
    alone on the bus, the DMA then sees main memory's latency plus the arbiter's register
    (:func:`spec.timing.bus_latency`). The DMA's requests reach the arbiter through a
    :class:`~rtl.skid.ReadyBuffer` (its ``req.ready`` a register, the same cycles), each word
    master's through a :class:`~rtl.skid.SkidBuffer` (``valid``, payload and ``ready`` all
    registers, one cycle more: :func:`spec.timing.word_bus_latency`) and then a
    :class:`~rtl.skid.ReadyBuffer` (no cycle: the skid buffer's enables see a register, not the
    grant), so the grant depends on registers only and ends at the buffers.

    Parameters
    ----------
    soc : SocConfig
        Lanes, widths and memory sizes; main memory has latency ``soc.mem_latency``. Default
        :data:`spec.soc.DEFAULT_SOC`.
    stall_rate, seed : float, int
        Main memory's random stalls (see :class:`~rtl.mainmem.MainMemory`).
    mem_init : iterable of int
        Initial main-memory contents.
    sp_read_ports, sp_write_ports, acc_read_ports, acc_write_ports : int
        Exported scratchpad ports besides the DMA's (≥ 0).
    sp_late_read_ports, acc_late_read_ports : int
        How many of the exported read ports (the first ones) are late ones, like the DMA's
        (0 to the exported read ports; default 0).
    bus_masters : int
        Exported main-memory bus master ports besides the DMA's (≥ 0).
    fetch_words : int
        Words per line of main memory's instruction-fetch port: 0 (none) or
        :data:`~spec.memory.LINE_WORDS` (see :class:`~rtl.mainmem.MainMemory`), exported as
        ``fetch_addr``/``fetch_data``.

    Members
    -------
    i_desc : ``In(stream.Signature(descriptor_layout()))``
        DMA descriptors.
    busy, done, fault : ``Out(1)``, ``Out(1)``, ``Out(FAULT_BITS)``
        DMA status (see :class:`~rtl.dma.DmaController`).
    sp_read, sp_write, acc_read, acc_write : ``In(...).array(n)``
        The exported scratchpad ports (scratchpad ports ``1 .. n``).
    bus : ``In(BusSignature(ceil_log2(mem_words), word_width)).array(bus_masters)``
        The exported word-bus master ports (through bridges, arbiter ports ``1 .. bus_masters``).

    Attributes
    ----------
    mainmem : MainMemory
    sp, acc : Scratchpad
    dma : DmaController
    arbiter : BusArbiter or None
    bridges : list of WordLineBridge
    """

    def __init__(self, soc=None, *, stall_rate=0, seed=1,
                 mem_init=(), sp_read_ports=0, sp_write_ports=0, acc_read_ports=0,
                 acc_write_ports=0, bus_masters=0, fetch_words=0, sp_late_read_ports=0,
                 acc_late_read_ports=0):
        counts = dict(sp_read=sp_read_ports, sp_write=sp_write_ports,
                      acc_read=acc_read_ports, acc_write=acc_write_ports, bus_master=bus_masters)
        for name, n in counts.items():
            what = f"Exported {name.replace('_', ' ')} ports"
            check_int(n, what)
            if n < 0:
                raise ValueError(f"{what} must be a non-negative integer, not {n!r}")
        late = dict(sp=sp_late_read_ports, acc=acc_late_read_ports)
        for name, n in late.items():
            what = f"Exported {name} late read ports"
            check_int(n, what)
            if not 0 <= n <= counts[f"{name}_read"]:
                raise ValueError(f"{what} must be 0 to {counts[f'{name}_read']}, not {n!r}")
        soc = check_soc(soc, "Memory system")
        check_int(fetch_words, "Fetch line words")
        if fetch_words not in (0, LINE_WORDS):
            raise ValueError(f"Fetch line words must be 0 or {LINE_WORDS}, not {fetch_words!r}")
        # behind the arbiter the DMA sees main memory's latency plus the arbiter's register: its
        # response queue is sized for that
        self.dma = DmaController(replace(soc, mem_latency=bus_latency(soc.mem_latency))
                                 if bus_masters else soc)
        self.mainmem = MainMemory(soc.mem_words, data_width=soc.word_width,
                                  latency=soc.mem_latency, stall_rate=stall_rate, seed=seed,
                                  init=mem_init, line_words=LINE_WORDS, fetch=bool(fetch_words))
        pads, ports = {}, {}
        for space, name, banks, depth in ((Space.SP, "sp", soc.sp_banks, soc.sp_depth),
                                          (Space.ACC, "acc", soc.acc_banks, soc.acc_depth)):
            width = soc.elem_width(space)
            pads[name] = Scratchpad(lanes=soc.lanes, elem_width=width, banks=banks, depth=depth,
                                    read_ports=1 + counts[f"{name}_read"],
                                    write_ports=1 + counts[f"{name}_write"],
                                    late_read_ports=1 + late[name])
            geometry = (banks * depth, width, soc.lanes)
            ports[f"{name}_read"] = In(ReadPortSignature(*geometry)).array(
                counts[f"{name}_read"])
            ports[f"{name}_write"] = In(WritePortSignature(*geometry)).array(
                counts[f"{name}_write"])
        self.sp, self.acc = pads["sp"], pads["acc"]
        line_sig = self.mainmem.bus.signature.flip()
        inflight = max(8, soc.mem_latency + 2)
        word_width = max(1, ceil_log2(soc.mem_words))
        self.arbiter = None
        self.bridges = [WordLineBridge(word_width, soc.word_width, LINE_WORDS,
                                       max_inflight=inflight) for _ in range(bus_masters)]
        if bus_masters:
            self.arbiter = BusArbiter(1 + bus_masters, line_sig.addr_width, line_sig.data_width,
                                      max_inflight=inflight, line_words=LINE_WORDS)
        ports["bus"] = In(BusSignature(word_width, soc.word_width)).array(bus_masters)
        if fetch_words:
            ports["fetch_addr"] = In(len(self.mainmem.fetch_addr))
            ports["fetch_data"] = Out(len(self.mainmem.fetch_data))
        super().__init__({
            "i_desc": In(stream.Signature(descriptor_layout())),
            "busy": Out(1),
            "done": Out(1),
            "fault": Out(FAULT_BITS),
            **ports,
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = dma = self.dma
        m.submodules.mainmem = self.mainmem
        if self.mainmem.fetch_words:
            m.d.comb += [self.mainmem.fetch_addr.eq(self.fetch_addr),
                         self.fetch_data.eq(self.mainmem.fetch_data)]
        m.submodules.sp = self.sp
        m.submodules.acc = self.acc
        wiring.connect(m, wiring.flipped(self.i_desc), dma.i_desc)
        m.d.comb += [self.busy.eq(dma.busy), self.done.eq(dma.done), self.fault.eq(dma.fault)]
        if self.arbiter is None:
            wiring.connect(m, dma.bus, self.mainmem.bus)
        else:
            m.submodules.arbiter = arb = self.arbiter
            # the DMA's requests reach the arbiter through a ReadyBuffer: the grant, which
            # depends on every master's request, ends at the buffer's register instead of
            # spreading through the DMA's issue logic (same requests in the same cycles)
            m.submodules.dma_req = buf = ReadyBuffer(dma.bus.req.payload.shape())
            wiring.connect(m, dma.bus.req, buf.i)
            wiring.connect(m, buf.o, arb.bus[0].req)
            wiring.connect(m, arb.bus[0].rsp, dma.bus.rsp)
            wiring.connect(m, arb.slave, self.mainmem.bus)
            # the word masters' requests through a SkidBuffer each: their `valid` and payload
            # (deep in a unit's logic: the selection engine's comes from its selector's state)
            # and their `ready` are registers, so the grant depends only on registers
            # (spec.timing.WORD_MASTER_LATENCY: one cycle more for these masters)
            for i, (port, bridge) in enumerate(zip(self.bus, self.bridges)):
                m.submodules[f"bridge_{i}"] = bridge
                m.submodules[f"bus_req_{i}"] = wbuf = SkidBuffer(port.req.payload.shape())
                # then a ReadyBuffer: the skid buffer's enables see a register, not the grant
                # (same requests in the same cycles at the bridge)
                m.submodules[f"bus_rdy_{i}"] = rbuf = ReadyBuffer(port.req.payload.shape())
                wiring.connect(m, wiring.flipped(port.req), wbuf.i)
                wiring.connect(m, wbuf.o, rbuf.i)
                wiring.connect(m, rbuf.o, bridge.word.req)
                wiring.connect(m, wiring.flipped(port.rsp), bridge.word.rsp)
                wiring.connect(m, bridge.line, arb.bus[i + 1])
        for name, pad in (("sp", self.sp), ("acc", self.acc)):
            wiring.connect(m, getattr(dma, f"{name}_read"), pad.read[0])
            wiring.connect(m, getattr(dma, f"{name}_write"), pad.write[0])
            for kind in ("read", "write"):
                for i, port in enumerate(getattr(self, f"{name}_{kind}")):
                    wiring.connect(m, wiring.flipped(port), getattr(pad, kind)[i + 1])
        return m
