"""Apprentice's main-memory bus: a request stream and an in-order response stream.

The protocol (``docs/memory.md`` gives the rationale):

* Two :mod:`amaranth.lib.stream` channels, each with ``valid``/``ready``: the master drives
  **requests** ``req`` (payload ``addr``, ``we``, ``wdata``), the slave drives **responses**
  ``rsp`` (payload: the read data, ``data_width`` bits).
* A transfer happens on a channel in a cycle where both ``valid`` and ``ready`` are high. Once
  ``valid`` is high it stays high, with a stable payload, until the transfer; ``valid`` never
  waits for ``ready``. ``ready`` may rise and fall freely and may depend combinationally on the
  same channel's ``valid`` and on the other channel's ``ready``; a master must not make
  ``rsp.ready`` depend combinationally on ``req.ready``.
* **Every request gets exactly one response**, reads and writes alike; responses come back in
  request order. A read's response carries the word; a write's response is an acknowledgement
  whose data is unspecified. A write is performed (visible to every later request) by the time its
  acknowledgement is transferred.
* Any number of requests may be in flight: the slave limits them by withholding ``req.ready``.
* Addresses are word addresses. A slave ignores writes outside its map and answers reads outside
  it with unspecified data (masters check their addresses; the DMA does before any access).

The **line bus** (:class:`LineBusSignature`) is the same protocol with a line of ``line_words``
words in place of a word: a request carries a line address, ``we``, a per-word write mask
``mask`` and a line of write data (a write writes the words whose mask bit is set, only those);
a read's response carries the whole line. Main memory and the DMA speak it; a word master reaches
it through a :class:`WordLineBridge`, which selects the word of the line for it.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.params import check_int, check_positive_int

__all__ = ["request_layout", "BusSignature", "line_request_layout", "LineBusSignature",
           "BusArbiter", "WordLineBridge"]


def request_layout(addr_width, data_width):
    """The request payload: ``addr`` (word address), ``we`` (1 = write), ``wdata``."""
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "we": unsigned(1),
        "wdata": unsigned(data_width),
    })


class BusSignature(wiring.Signature):
    """Signature of the main-memory bus, from the master's side.

    Parameters
    ----------
    addr_width : int
        Width of word addresses (≥ 1).
    data_width : int
        Width of a word (≥ 1).

    Members
    -------
    req : ``Out(stream.Signature(request_layout(addr_width, data_width)))``
        Requests, master to slave.
    rsp : ``In(stream.Signature(data_width))``
        Responses in request order, slave to master: read data, or a write acknowledgement.

    Raises
    ------
    TypeError
        If a width is not an integer.
    ValueError
        If a width is not positive.
    """

    def __init__(self, addr_width, data_width):
        check_positive_int(addr_width, "Bus address width")
        check_positive_int(data_width, "Bus data width")
        self._addr_width = addr_width
        self._data_width = data_width
        super().__init__({
            "req": Out(stream.Signature(request_layout(addr_width, data_width))),
            "rsp": In(stream.Signature(unsigned(data_width))),
        })

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    def __eq__(self, other):
        other = other.flip() if isinstance(other, wiring.FlippedSignature) else other
        return (type(other) is BusSignature and self.addr_width == other.addr_width and
                self.data_width == other.data_width)

    def __hash__(self):
        return hash((BusSignature, self._addr_width, self._data_width))

    def __repr__(self):
        return f"BusSignature(addr_width={self._addr_width}, data_width={self._data_width})"


def line_request_layout(addr_width, data_width, line_words):
    """The line request payload: ``addr`` (line address), ``we`` (1 = write), ``mask`` (bit
    ``k``: write word ``k`` of the line), ``wdata`` (the line's words, word 0 first)."""
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "we": unsigned(1),
        "mask": unsigned(line_words),
        "wdata": data.ArrayLayout(unsigned(data_width), line_words),
    })


class LineBusSignature(wiring.Signature):
    """Signature of the line-wide main-memory bus, from the master's side (the protocol of
    :class:`BusSignature`, a line per transfer).

    Parameters
    ----------
    addr_width : int
        Width of line addresses (≥ 1).
    data_width : int
        Width of a word (≥ 1).
    line_words : int
        Words per line (≥ 1).

    Members
    -------
    req : ``Out(stream.Signature(line_request_layout(addr_width, data_width, line_words)))``
        Requests, master to slave.
    rsp : ``In(stream.Signature(data.ArrayLayout(unsigned(data_width), line_words)))``
        Responses in request order: the line read, or a write acknowledgement.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is not positive.
    """

    def __init__(self, addr_width, data_width, line_words):
        check_positive_int(addr_width, "Bus address width")
        check_positive_int(data_width, "Bus data width")
        check_positive_int(line_words, "Bus line words")
        self._addr_width = addr_width
        self._data_width = data_width
        self._line_words = line_words
        super().__init__({
            "req": Out(stream.Signature(line_request_layout(addr_width, data_width, line_words))),
            "rsp": In(stream.Signature(data.ArrayLayout(unsigned(data_width), line_words))),
        })

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    @property
    def line_words(self):
        return self._line_words

    def _key(self):
        return (LineBusSignature, self._addr_width, self._data_width, self._line_words)

    def __eq__(self, other):
        other = other.flip() if isinstance(other, wiring.FlippedSignature) else other
        return type(other) is LineBusSignature and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (f"LineBusSignature(addr_width={self._addr_width}, "
                f"data_width={self._data_width}, line_words={self._line_words})")


def _bus_signature(addr_width, data_width, line_words):
    if line_words:
        return LineBusSignature(addr_width, data_width, line_words)
    return BusSignature(addr_width, data_width)


class BusArbiter(wiring.Component):
    """Shares one bus slave among ``masters`` masters, round robin, responses kept in order.

    In a cycle, the request of the first master with ``req.valid`` at or after the one after the
    master granted last is taken into the arbiter's request register, if that register is free
    in the next cycle (empty, or its request taken by the slave now); the slave sees only that
    register (issue 27 item 4: the grant, the request and the master's ``ready`` reach the slave
    through no logic; the master's ``req.ready`` depends on the masters' ``valid`` and on the
    slave's ``req.ready``, a register in :class:`~rtl.mainmem.MainMemory`, through a few gates).
    So the arbiter adds one cycle: a request taken in cycle ``c`` reaches the slave from cycle
    ``c + 1``, and a master alone on the bus sees the slave's timing one cycle later, still one
    request per cycle (``spec.timing.BUS_LATENCY``; the cycle models count it). The master's
    index is queued for each request taken, so the slave's in-order responses are routed back to
    their masters; at most ``max_inflight`` requests are between the register and their
    responses (``max_inflight ≥ latency + 2`` for one request per cycle).

    Parameters
    ----------
    masters : int
        Number of master ports (≥ 1).
    addr_width, data_width : int
        The bus's widths.
    max_inflight : int
        Requests in flight at most (the depth of the master-index queue).
    line_words : int
        0: a word bus (:class:`BusSignature`); otherwise a line bus of ``line_words`` words per
        line (:class:`LineBusSignature`, ``addr_width`` of line addresses).

    Members
    -------
    bus : ``In(sig).array(masters)``
        Master ports (connect each master's bus here); ``sig`` is the bus signature above.
    slave : ``Out(sig)``
        To the slave.

    Raises
    ------
    TypeError, ValueError
        If a parameter is not a positive integer.
    """

    def __init__(self, masters, addr_width, data_width, *, max_inflight=8, line_words=0):
        check_positive_int(masters, "Bus masters")
        check_positive_int(max_inflight, "Requests in flight")
        check_int(line_words, "Bus line words")
        self._masters = masters
        self._max_inflight = max_inflight
        sig = _bus_signature(addr_width, data_width, line_words)
        super().__init__({"bus": In(sig).array(masters), "slave": Out(sig)})

    @property
    def masters(self):
        return self._masters

    @property
    def max_inflight(self):
        return self._max_inflight

    def elaborate(self, platform):
        m = Module()
        n = self._masters
        m.submodules.owners = owners = SyncFIFO(width=max(1, ceil_log2(n)), depth=self._max_inflight)
        req, rsp = self.slave.req, self.slave.rsp

        # The request register: what the slave sees. It is free next cycle if it is empty or the
        # slave takes its request now.
        held = Signal()
        held_payload = Signal.like(req.payload)
        free = ~held | req.ready
        m.d.comb += [req.valid.eq(held), req.payload.eq(held_payload)]

        last = Signal(range(n), init=n - 1)       # the master taken last
        grant = Signal(range(n))
        any_valid = Signal()
        # Round robin: scan the masters starting after `last`; the first valid one wins.
        for start in range(n):
            with m.If(last == (start - 1) % n):
                order = [(start + k) % n for k in range(n)]
                for k, i in enumerate(order):
                    with (m.Elif if k else m.If)(self.bus[i].req.valid):
                        m.d.comb += [grant.eq(i), any_valid.eq(1)]
        take = Signal()
        m.d.comb += take.eq(any_valid & free & owners.w_rdy)
        for i in range(n):
            m.d.comb += self.bus[i].req.ready.eq((grant == i) & take)
        with m.If(free):
            m.d.sync += held.eq(take)
        with m.If(take):
            m.d.sync += last.eq(grant)
            with m.Switch(grant):
                for i in range(n):
                    with m.Case(i):
                        m.d.sync += held_payload.eq(self.bus[i].req.payload)
        m.d.comb += [owners.w_data.eq(grant), owners.w_en.eq(take)]

        # Responses go to the master at the head of the queue.
        head = owners.r_data
        for i in range(n):
            m.d.comb += [self.bus[i].rsp.payload.eq(rsp.payload),
                         self.bus[i].rsp.valid.eq(rsp.valid & owners.r_rdy & (head == i))]
        with m.Switch(head):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += rsp.ready.eq(self.bus[i].rsp.ready & owners.r_rdy)
        m.d.comb += owners.r_en.eq(rsp.valid & rsp.ready)
        return m


class WordLineBridge(wiring.Component):
    """A word master on a line bus: the word's line is requested, and its word selected.

    A request for word address ``a`` becomes a request for line ``a >> log2(line_words)``: a
    write has the word replicated across the line and only word ``a % line_words`` in its mask; a
    read returns the line, whose word ``a % line_words`` is the response (that index is queued
    for each accepted request, ``max_inflight`` deep, so responses stay in order). No added
    latency: the request and the response pass combinationally.

    Parameters
    ----------
    addr_width : int
        Width of the word master's word addresses (more than ``log2(line_words)``).
    data_width : int
        Width of a word.
    line_words : int
        Words per line, a power of two.
    max_inflight : int
        Requests in flight at most (beyond it the bridge withholds ``req.ready``).

    Members
    -------
    word : ``In(BusSignature(addr_width, data_width))``
        The word master's port.
    line : ``Out(LineBusSignature(addr_width - log2(line_words), data_width, line_words))``
        To the line bus.

    Raises
    ------
    TypeError, ValueError
        If a parameter is not a positive integer, ``line_words`` not a power of two, or
        ``addr_width`` not above ``log2(line_words)``.
    """

    def __init__(self, addr_width, data_width, line_words, *, max_inflight=8):
        check_positive_int(line_words, "Bus line words")
        if line_words & (line_words - 1):
            raise ValueError(f"Bus line words must be a power of two, not {line_words!r}")
        check_positive_int(addr_width, "Bus address width")
        check_positive_int(max_inflight, "Requests in flight")
        lane_bits = line_words.bit_length() - 1
        if addr_width <= lane_bits:
            raise ValueError(f"Bus address width must be above {lane_bits} for lines of "
                             f"{line_words} words, not {addr_width!r}")
        self._lane_bits = lane_bits
        self._max_inflight = max_inflight
        super().__init__({
            "word": In(BusSignature(addr_width, data_width)),
            "line": Out(LineBusSignature(addr_width - lane_bits, data_width, line_words)),
        })

    def elaborate(self, platform):
        m = Module()
        lb = self._lane_bits
        n = self.line.signature.line_words
        m.submodules.lanes = lanes = SyncFIFO(width=max(1, lb), depth=self._max_inflight)
        wreq, lreq = self.word.req, self.line.req
        lane = wreq.payload.addr[:lb]
        m.d.comb += [
            lreq.valid.eq(wreq.valid & lanes.w_rdy),
            wreq.ready.eq(lreq.ready & lanes.w_rdy),
            lreq.payload.addr.eq(wreq.payload.addr[lb:]),
            lreq.payload.we.eq(wreq.payload.we),
            lreq.payload.mask.eq(Mux(wreq.payload.we, 1 << lane, 0)),
            lanes.w_data.eq(lane),
            lanes.w_en.eq(lreq.valid & lreq.ready),
        ]
        for k in range(n):
            m.d.comb += lreq.payload.wdata[k].eq(wreq.payload.wdata)
        wrsp, lrsp = self.word.rsp, self.line.rsp
        m.d.comb += [
            wrsp.valid.eq(lrsp.valid),
            lrsp.ready.eq(wrsp.ready),
            wrsp.payload.eq(lrsp.payload[lanes.r_data[:lb]] if lb else lrsp.payload[0]),
            lanes.r_en.eq(lrsp.valid & lrsp.ready),
        ]
        return m
