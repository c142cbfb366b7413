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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.params import check_int, check_positive_int

__all__ = ["request_layout", "BusSignature", "line_request_layout", "LineBusSignature",
           "BusArbiter", "WordLineBridge", "thermometer_next"]


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


def thermometer_next(t, up, down):
    """The next value of an occupancy count kept as a thermometer code ``t`` (bit ``k``: more
    than ``k``), counting ``up`` and ``down`` by one: each bit is a choice of three registers, so
    a late ``up`` or ``down`` reaches the count through one multiplexer and no carry chain."""
    n = len(t)
    more = Cat(Const(1, 1), t[:n - 1])
    less = Cat(t[1:], Const(0, 1))
    return Mux(up & ~down, more, Mux(down & ~up, less, t))


class _OrderQueue(wiring.Component):
    """A first-in first-out queue of small values (masters' indices, lanes) in registers, for the
    response routing of :class:`BusArbiter` and :class:`WordLineBridge`.

    The entries shift toward the head on a read, so the head ``r_data`` is a register; each
    entry's occupancy is a register too (a thermometer code), and ``r_rdy`` (not empty) and
    ``w_rdy`` (room) are the first's and the last's. A write is taken when ``w_en`` and
    ``w_rdy``, a read when ``r_en`` and ``r_rdy``, both in one cycle when both are taken (a full
    queue takes no write and an empty one no read, even beside the other); a value written is
    readable from the next cycle. Entries past the last one hold zero
    (a queue of one-hot values has an all-zero head when it is empty).
    """

    def __init__(self, width, depth):
        self._depth = depth
        super().__init__({
            "w_en": In(1), "w_data": In(width), "w_rdy": Out(1),
            "r_en": In(1), "r_data": Out(width), "r_rdy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self._depth
        entries = [Signal(len(self.w_data), name=f"entry_{k}") for k in range(d)]
        used = Signal(d)                          # thermometer: entry k holds a value
        m.d.comb += [self.r_rdy.eq(used[0]), self.w_rdy.eq(~used[d - 1]),
                     self.r_data.eq(entries[0])]
        pop = self.r_en & self.r_rdy
        push = self.w_en & self.w_rdy
        for k in range(d):
            first_free = ~used[k] & used[k - 1] if k else ~used[k]
            last_used = used[k] & ~used[k + 1] if k + 1 < d else used[k]
            # a value written goes behind the entries kept: where the last one is after a
            # read's shift, else in the first free entry
            with m.If(push & Mux(pop, last_used, first_free)):
                m.d.sync += entries[k].eq(self.w_data)
            with m.Elif(pop):
                m.d.sync += entries[k].eq(entries[k + 1] if k + 1 < d else 0)
        m.d.sync += used.eq(thermometer_next(used, push, pop))
        return m


class BusArbiter(wiring.Component):
    """Shares one bus slave among ``masters`` masters, round robin, responses kept in order.

    In a cycle, the request of the first master with ``req.valid`` at or after the one after the
    master granted last is taken into the arbiter's request register, if that register is free
    in the next cycle (empty, or its request taken by the slave now) and the master-index queue
    has room; the slave sees only that register (issue 27 item 4: a master's ``req.ready``
    depends on the masters' ``valid`` and on registers only: the slave's ``req.ready``, a
    register in :class:`~rtl.mainmem.MainMemory`, the round robin's state and the queue's
    registered room). The register is a *registered grant*: a one-hot ``pending`` names the
    master whose request it is, and the request waits in that master's slot, a register that
    follows its master's payload whenever it holds no request for the slave. So the grant
    reaches a few flags and no payload register (no enable and no multiplexer of the 150-bit
    line waits for it), and the slave sees the pending slot through an AND-OR selected by
    registers.
    So the arbiter adds one cycle: a request taken in cycle ``c`` reaches the slave from cycle
    ``c + 1``, and a master alone on the bus sees the slave's timing one cycle later, still one
    request per cycle (``spec.timing.BUS_LATENCY``; the cycle models count it). The master's
    index is queued for each request taken, so the slave's in-order responses are routed back to
    their masters; at most ``max_inflight`` requests are between the register and their
    responses (``max_inflight ≥ latency + 2`` for one request per cycle). The queue's head is a
    register (a master's one-hot bit), so the slave's ``rsp.ready`` is one master's
    ``rsp.ready`` through an AND-OR selected by registers.

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
        # the index of each taken request's master, one-hot (the head is zero when empty)
        m.submodules.owners = owners = _OrderQueue(n, self._max_inflight)
        req, rsp = self.slave.req, self.slave.rsp

        # The request register: what the slave sees, held until the slave takes it; it is free
        # next cycle if it is empty or the slave takes its request now. It is kept as a
        # registered grant: `pending`, one-hot, names the master whose request it is, and that
        # request is in the master's slot. A slot follows its master's payload whenever it
        # holds no request waiting for the slave (an enable of registers only: no grant in it),
        # and the slave sees the pending slot through an AND-OR selected by registers.
        held = Signal()
        pending = Signal(n)
        free = ~held | req.ready
        slots = [Signal.like(req.payload, name=f"slot_{i}") for i in range(n)]
        shown = Const(0, len(Value.cast(req.payload)))
        for i in range(n):
            with m.If(~pending[i] | req.ready):
                m.d.sync += slots[i].eq(self.bus[i].req.payload)
            shown = shown | Mux(pending[i], Value.cast(slots[i]), 0)
        m.d.comb += [req.valid.eq(held), req.payload.eq(shown)]

        last = Signal(range(n), init=n - 1)       # the master taken last
        grant = Signal(n)                         # one-hot: the first valid master after `last`
        # Round robin: scan the masters starting after `last`; the first valid one wins.
        for start in range(n):
            with m.If(last == (start - 1) % n):
                order = [(start + k) % n for k in range(n)]
                for k, i in enumerate(order):
                    with (m.Elif if k else m.If)(self.bus[i].req.valid):
                        m.d.comb += grant.eq(1 << i)
        room = free & owners.w_rdy                # a request can be taken
        take = room & grant.any()
        for i in range(n):
            m.d.comb += self.bus[i].req.ready.eq(grant[i] & room)
        with m.If(free):
            m.d.sync += [held.eq(take), pending.eq(Mux(take, grant, 0))]
        with m.If(take):
            for i in range(n):
                with m.If(grant[i]):
                    m.d.sync += last.eq(i)
        m.d.comb += [owners.w_data.eq(grant), owners.w_en.eq(take)]

        # Responses go to the master at the head of the queue.
        head = owners.r_data
        for i in range(n):
            m.d.comb += [self.bus[i].rsp.payload.eq(rsp.payload),
                         self.bus[i].rsp.valid.eq(rsp.valid & head[i])]
        m.d.comb += [rsp.ready.eq(Cat(head[i] & self.bus[i].rsp.ready for i in range(n)).any()),
                     owners.r_en.eq(rsp.valid & rsp.ready)]
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
        m.submodules.lanes = lanes = _OrderQueue(max(1, lb), self._max_inflight)
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
