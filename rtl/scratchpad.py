"""Banked scratchpads: rows of ``lanes`` elements, one row per cycle per port."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value
from amaranth.hdl import MemoryData
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from amaranth.utils import exact_log2

from spec.params import check_int, check_positive_int
from .memattrs import COLLISION_FREE
from .spport import ReadPortSignature, WritePortSignature, row_layout

__all__ = ["Scratchpad"]


class Scratchpad(wiring.Component):
    """A banked scratchpad of ``banks`` × ``depth`` rows of ``lanes`` signed elements.

    Each bank is one memory of ``depth`` rows (one block RAM or more) with one read port and one
    write port with per-lane enables, so each bank does one row read and one row write per cycle. The scratchpad has ``read_ports`` read ports and
    ``write_ports`` write ports, each reaching every bank at the unified row address
    ``bank * depth + row``; ports that use different banks work in the same cycle (e.g. the GEMM
    engine reads an A row and a B row from two banks while the DMA writes a third). The ports are
    those of :mod:`rtl.spport`: a read returns the row in the next cycle and the row stays on
    ``data`` while ``en`` is low (as long as no other port reads that bank); a write takes
    per-lane enables. A read of a row that is written in the same cycle returns **undefined**
    elements in the lanes written (the banks are marked :data:`rtl.memattrs.COLLISION_FREE`, so
    Yosys maps each to block RAM without a read-before-write bypass): no unit uses such a read
    (``docs/memory.md``). In simulation (elaborated without a platform) those elements are the
    old ones inverted, so a test that uses one differs from golden. The first
    ``late_read_ports`` read ports return the row a cycle later, two cycles after the read (the
    DMA's: each bank's output is registered for them, so the block RAM's output reaches only a
    register, then the bank multiplexer on a select registered twice); their row also stays
    while no port reads that bank. Two ports that
    use the same bank in the same cycle conflict: the lowest-numbered port is served, the other
    port's write is dropped or its read returns the served port's row. Callers avoid conflicts
    (the sequencer never lets two units share a bank). Addresses ``>= banks * depth`` write
    nothing and read unspecified data.

    Testbenches reach the contents through :meth:`cell`.

    Parameters
    ----------
    lanes : int
        Elements per row.
    elem_width : int
        Width of a signed element in bits (16 for the operand scratchpad, 32 for the accumulator
        scratchpad).
    banks : int
        Number of banks.
    depth : int
        Rows per bank, a power of two.
    read_ports, write_ports : int
        Number of ports of each kind (≥ 1).
    late_read_ports : int
        How many of the read ports (the first ones) return their row two cycles after the read
        (0 to ``read_ports``; default 0).

    Members
    -------
    read : ``In(ReadPortSignature(rows, elem_width, lanes)).array(read_ports)``
        Read ports.
    write : ``In(WritePortSignature(rows, elem_width, lanes)).array(write_ports)``
        Write ports.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is not positive or ``depth`` is not a power of two, or
        ``late_read_ports`` is outside ``0 .. read_ports``.
    """

    def __init__(self, *, lanes, elem_width, banks, depth, read_ports=1, write_ports=1,
                 late_read_ports=0):
        check_positive_int(lanes, "Scratchpad lanes")
        check_positive_int(elem_width, "Scratchpad element width")
        check_positive_int(banks, "Scratchpad banks")
        check_positive_int(depth, "Scratchpad depth")
        if depth & (depth - 1):
            raise ValueError(f"Scratchpad depth must be a power of two, not {depth!r}")
        check_positive_int(read_ports, "Scratchpad read ports")
        check_positive_int(write_ports, "Scratchpad write ports")
        check_int(late_read_ports, "Scratchpad late read ports")
        if not 0 <= late_read_ports <= read_ports:
            raise ValueError(f"Scratchpad late read ports must be 0 to {read_ports}, not "
                             f"{late_read_ports!r}")
        self._late = late_read_ports
        self._lanes = lanes
        self._elem_width = elem_width
        self._banks = banks
        self._depth = depth
        self._data = [MemoryData(shape=row_layout(elem_width, lanes), depth=depth, init=[])
                      for _ in range(banks)]
        rows = banks * depth
        super().__init__({
            "read": In(ReadPortSignature(rows, elem_width, lanes)).array(read_ports),
            "write": In(WritePortSignature(rows, elem_width, lanes)).array(write_ports),
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def elem_width(self):
        return self._elem_width

    @property
    def banks(self):
        return self._banks

    @property
    def depth(self):
        return self._depth

    @property
    def late_read_ports(self):
        return self._late

    @property
    def rows(self):
        """``banks * depth``."""
        return self._banks * self._depth

    def cell(self, row):
        """The storage of unified row ``row`` for testbenches: ``ctx.get(sp.cell(r))`` is the row
        (a ``lanes``-element array), ``ctx.set(sp.cell(r), values)`` overwrites it."""
        bank, r = divmod(row, self._depth)
        if not 0 <= bank < self._banks:
            raise IndexError(f"Scratchpad row {row!r} is outside 0..{self.rows - 1}")
        return self._data[bank][r]

    def elaborate(self, platform):
        m = Module()
        row_bits = exact_log2(self._depth)
        banks = range(self._banks)

        def split(addr):
            return addr[row_bits:], addr[:row_bits]

        rd, wr = [], []
        for b in banks:
            m.submodules[f"bank_{b}"] = mem = Memory(data=self._data[b],
                                                     attrs={COLLISION_FREE: 1})
            rd.append(mem.read_port())
            wr.append(mem.write_port(granularity=1))        # one write enable per lane
        out = [r.data for r in rd]                         # each bank's row as read
        if platform is None:
            # simulation: a lane read in the cycle it is written comes out inverted (undefined
            # on the FPGA), and stays so while the port holds its row
            for b in banks:
                hit = Signal(self._lanes, name=f"bank_{b}_collided")
                same = rd[b].en & (rd[b].addr == wr[b].addr)
                with m.If(rd[b].en):
                    m.d.sync += hit.eq(Mux(same, wr[b].en, 0))
                lanes = [Value.cast(rd[b].data[k]) for k in range(self._lanes)]
                out[b] = Cat(Mux(hit[k], ~x, x) for k, x in enumerate(lanes))

        # Reads: each bank serves the lowest-numbered port that reads it; each port remembers the
        # bank it read last and shows that bank's output.
        for b in banks:
            addr = Signal(max(1, row_bits), name=f"bank_{b}_raddr")
            en = Signal(name=f"bank_{b}_ren")
            for p, port in enumerate(self.read):
                bank, row = split(port.addr)
                with (m.Elif if p else m.If)(port.en & (bank == b)):
                    m.d.comb += [addr.eq(row), en.eq(1)]
            m.d.comb += [rd[b].addr.eq(addr), rd[b].en.eq(en)]
        late = []                                          # each bank's row, a cycle later
        if self._late:
            for b in banks:
                q = Signal.like(rd[b].data, name=f"bank_{b}_late")
                m.d.sync += q.eq(out[b])
                late.append(q)
        for p, port in enumerate(self.read):
            bank, _ = split(port.addr)
            sel = Signal(range(self._banks), name=f"read_{p}_bank")
            with m.If(port.en):
                m.d.sync += sel.eq(bank)
            if p < self._late:
                sel2 = Signal.like(sel, name=f"read_{p}_bank_late")
                m.d.sync += sel2.eq(sel)
                m.d.comb += port.data.eq(Array(late)[sel2])
            else:
                m.d.comb += port.data.eq(Array(out)[sel])

        # Writes: each bank takes the lowest-numbered port that writes it.
        for b in banks:
            for p, port in enumerate(self.write):
                bank, row = split(port.addr)
                with (m.Elif if p else m.If)(port.en.any() & (bank == b)):
                    m.d.comb += [wr[b].addr.eq(row), wr[b].data.eq(port.data),
                                 wr[b].en.eq(port.en)]
        return m
