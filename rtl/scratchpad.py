"""Banked scratchpads: rows of ``lanes`` elements, one row per cycle per port."""

import functools
import operator

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
    write port with per-lane enables, so each bank does one row read and one row write per cycle.
    The scratchpad has ``read_ports`` read ports and ``write_ports`` write ports, each reaching
    every bank at the unified row address ``bank * depth + row``; ports that use different banks
    work in the same cycle (e.g. the GEMM engine reads an A row and a B row from two banks while
    the DMA writes a third). The ports are those of :mod:`rtl.spport`: a read returns the row in
    the next cycle and the row stays on ``data`` while ``en`` is low (as long as no other port
    reads that bank); a write takes per-lane enables. The first ``late_read_ports`` read ports
    return the row a cycle later, two cycles after the read (the DMA's: each bank's output is
    registered for them, so the block RAM's output reaches only a register, then the bank
    multiplexer on a select registered twice); their row also stays while no port reads that
    bank. Addresses ``>= banks * depth`` write nothing and read unspecified data.

    Writes are registered (``write_latency=1``, the default): at the scratchpad's input each write
    port's bank is decoded (per bank: whether the port writes there, and its lanes) and registered
    with its row and data, so a unit's route to the scratchpad ends, past the decode's LUT or two,
    at a flip-flop that can sit beside the block RAMs, and only each bank's AND-OR over the ports
    lies between those registers and the block RAM. A write presented in cycle ``c`` reaches its
    bank in cycle ``c + 1``: a read in cycle ``c`` (or before) returns the old row, a read in cycle
    ``c + 2`` (or later) the new one, and a read in cycle ``c + 1`` collides with it in the bank
    (below). With ``write_latency=0`` a write reaches its bank in the cycle it is presented.

    Each bank has at most one read port and one write port in use per cycle: the sequencer never
    lets two units share a bank, so the scratchpad does not arbitrate. A bank's read address and
    enable are the OR of the read ports' terms, each gated by that port's ``en`` and its address
    falling in the bank; its write address, data and lane enables likewise over the write ports
    (from their registers: a flat AND-OR, a few LUT levels, no priority chain). Two read ports
    or two write ports on one bank in one cycle are **undefined**: the rows read and the row
    written are unspecified. In simulation (elaborated without a platform) such a conflict shows:
    every read port that read the bank gets the row at the OR of their row addresses with every
    element inverted, and none of the writes happens, so a test in which two units share a bank
    differs from golden.

    A read of a row that its bank writes in the same cycle (a write presented ``write_latency``
    cycles before) returns **undefined** elements in the lanes written (the banks are marked
    :data:`rtl.memattrs.COLLISION_FREE`, so Yosys maps each to block RAM without a
    read-before-write bypass): no unit uses such a read (``docs/memory.md``). In simulation those
    elements are the old ones inverted, so a test that uses one differs from golden. Both
    inversions stay while the bank holds the row.

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
    write_latency : int
        Cycles from a write's presentation to its bank's write: 1 (the default: registered at
        the input) or 0.

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
        If a parameter is not positive or ``depth`` is not a power of two,
        ``late_read_ports`` is outside ``0 .. read_ports``, or ``write_latency`` is not 0 or 1.
    """

    def __init__(self, *, lanes, elem_width, banks, depth, read_ports=1, write_ports=1,
                 late_read_ports=0, write_latency=1):
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
        check_int(write_latency, "Scratchpad write latency")
        if write_latency not in (0, 1):
            raise ValueError(f"Scratchpad write latency must be 0 or 1, not {write_latency!r}")
        self._late = late_read_ports
        self._write_latency = write_latency
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
    def write_latency(self):
        return self._write_latency

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
        w = self._elem_width

        rd, wr = [], []
        for b in banks:
            m.submodules[f"bank_{b}"] = mem = Memory(data=self._data[b],
                                                     attrs={COLLISION_FREE: 1})
            rd.append(mem.read_port())
            wr.append(mem.write_port(granularity=1))        # one write enable per lane

        # Each port's use of each bank: a read port's enable, a write port's lane enables, gated
        # by its bank bits. A bank's controls are the OR of its users' terms (one user per bank
        # and cycle, the sequencer's guarantee: no priority between them).
        reads = []                                         # (row, [uses bank b]) per read port
        for p, port in enumerate(self.read):
            uses = [Signal(name=f"read_{p}_uses_{b}") for b in banks]
            m.d.comb += [u.eq(port.en & (port.addr[row_bits:] == b)) for b, u in enumerate(uses)]
            reads.append((port.addr[:row_bits], uses))
        writes = [self._write_stage(m, p, port, row_bits)       # (row, data, uses, lanes)
                  for p, port in enumerate(self.write)]
        readers = []                                       # per bank: its read ports' uses
        for b in banks:
            ren = [uses[b] for _, uses in reads]
            wen = [uses[b] for _, _, uses, _ in writes]
            m.d.comb += [
                rd[b].en.eq(_or(ren)),
                rd[b].addr.eq(_and_or((u, row) for u, (row, _) in zip(ren, reads))),
                wr[b].addr.eq(_and_or((u, row) for u, (row, *_) in zip(wen, writes))),
                wr[b].data.eq(_and_or((Cat(x.replicate(w) for x in lanes[b]), data)
                                      for _, data, _, lanes in writes)),
            ]
            wen_lanes = _or(lanes[b] for *_, lanes in writes)
            if platform is None:                           # simulation: a clashing write is lost
                wen_lanes = Mux(_two_or_more(wen), 0, wen_lanes)
            m.d.comb += wr[b].en.eq(wen_lanes)
            readers.append(ren)

        out = [r.data for r in rd]                         # each bank's row as read
        if platform is None:
            # simulation: a lane read in the cycle it is written comes out inverted (undefined
            # on the FPGA), every lane when two ports read the bank at once; it stays so while
            # the bank holds its row
            for b in banks:
                hit = Signal(self._lanes, name=f"bank_{b}_collided")
                same = rd[b].addr == wr[b].addr
                with m.If(rd[b].en):
                    m.d.sync += hit.eq(Mux(_two_or_more(readers[b]), (1 << self._lanes) - 1,
                                            Mux(same, wr[b].en, 0)))
                lanes = [Value.cast(rd[b].data[k]) for k in range(self._lanes)]
                out[b] = Cat(Mux(hit[k], ~x, x) for k, x in enumerate(lanes))

        # Each read port remembers the bank it read last and shows that bank's output.
        late = []                                          # each bank's row, a cycle later
        if self._late:
            for b in banks:
                q = Signal.like(rd[b].data, name=f"bank_{b}_late")
                m.d.sync += q.eq(out[b])
                late.append(q)
        for p, port in enumerate(self.read):
            sel = Signal(range(self._banks), name=f"read_{p}_bank")
            with m.If(port.en):
                m.d.sync += sel.eq(port.addr[row_bits:])
            if p < self._late:
                sel2 = Signal.like(sel, name=f"read_{p}_bank_late")
                m.d.sync += sel2.eq(sel)
                m.d.comb += port.data.eq(Array(late)[sel2])
            else:
                m.d.comb += port.data.eq(Array(out)[sel])
        return m

    def _write_stage(self, m, p, port, row_bits):
        """Write port ``p``'s input stage: its bank decoded (per bank ``b``: ``uses[b]``, the
        port writes a lane of bank ``b``; ``lanes[b]``, the lanes it writes there), and that,
        its row within the bank and its data registered when ``write_latency`` is 1 (one stage,
        loaded every cycle), so that only the banks' AND-OR lies between these registers and the
        block RAMs. Returns ``(row, data, uses, lanes)``."""
        banks = range(self._banks)
        bank = port.addr[row_bits:]
        row = Signal(row_bits, name=f"write_{p}_row")
        data = Signal(len(Value.cast(port.data)), name=f"write_{p}_data")
        uses = [Signal(name=f"write_{p}_uses_{b}") for b in banks]
        lanes = [Signal(self._lanes, name=f"write_{p}_lanes_{b}") for b in banks]
        stage = m.d.sync if self._write_latency else m.d.comb
        stage += [row.eq(port.addr[:row_bits]), data.eq(port.data)]
        stage += [u.eq(port.en.any() & (bank == b)) for b, u in enumerate(uses)]
        stage += [x.eq(Mux(bank == b, port.en, 0)) for b, x in enumerate(lanes)]
        return row, data, uses, lanes


def _or(values):
    """The OR of the values."""
    return functools.reduce(operator.or_, (Value.cast(v) for v in values))


def _and_or(terms):
    """The OR of ``value & enable`` over ``(enable, value)`` pairs (``enable`` one bit, replicated
    to the value's width, or a mask as wide as the value): a flat multiplexer for values of which
    at most one is enabled."""
    gated = []
    for en, value in terms:
        value, en = Value.cast(value), Value.cast(en)
        gated.append(value & (en.replicate(len(value)) if len(en) == 1 else en))
    return _or(gated)


def _two_or_more(bits):
    """Whether two or more of the one-bit values are set (simulation's conflict check)."""
    seen = two = Value.cast(0)
    for x in bits:
        two, seen = two | (seen & x), seen | x
    return two
