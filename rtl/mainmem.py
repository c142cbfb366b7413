"""Main memory: block RAM behind the bus, with a fixed latency and optional random stalls."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.hdl import MemoryData
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.isa import WORD_BITS
from spec.params import check_int, check_positive_int
from .bus import BusSignature, LineBusSignature, thermometer_next
from .memattrs import COLLISION_FREE

__all__ = ["MainMemory", "STALL_RATE_STEPS"]


#: Stall rates are quantised to multiples of ``1 / STALL_RATE_STEPS``.
STALL_RATE_STEPS = 256

_MASK32 = 0xFFFF_FFFF


class MainMemory(wiring.Component):
    """Main memory: ``words`` words in block RAM, served over a word bus
    (:class:`~rtl.bus.BusSignature`) or, with ``line_words``, a line bus
    (:class:`~rtl.bus.LineBusSignature`: the array holds lines of ``line_words`` words, a read
    returns a line, a write writes the words of one line its mask selects).

    One request is accepted per cycle. The memory is also the simulation model of a slower
    memory: a request accepted in cycle ``c`` has its response valid in cycle ``c + latency`` at
    the earliest; with ``stall_rate = 0`` it is valid exactly then if the master takes responses
    as they come (the *deterministic memory model* of the cycle models). With ``stall_rate > 0``
    the memory also withholds, pseudo-randomly and independently, ``req.ready`` and the next
    response's ``valid`` (a response already shown stays valid until it is taken). The stall
    decisions come from an xorshift32 generator (:class:`golden.fixedpoint.Xorshift32`'s step)
    whose state ``s`` starts at ``seed`` and steps every cycle: in a cycle with state ``s``,
    ``req.ready`` is withheld if ``s & 0xFF < t`` and the response is withheld if
    ``(s >> 8) & 0xFF < t``, where ``t = round(stall_rate * 256)``.

    Requests are performed in order when accepted (a write updates the array then; a read
    samples it then), so a read sees every earlier write. The response pipeline always moves; a
    response the master does not take when it leaves the pipeline waits in a queue of
    ``latency + 1`` entries, and the queue's head is the response shown. (With ``latency ≥ 2``
    the queue is the pipeline's last stage: a ring of registers that each response enters, the
    response shown is the entry its head pointer selects, and ``rsp.valid`` is a register when
    there are no stalls.) ``req.ready`` is a
    register (issue 27 item 4: it does not depend on ``rsp.ready`` in the same cycle): high while
    fewer than ``latency + 1`` requests are unanswered after the cycle's transfers, so a master
    that takes every response as it comes is never held back (and ``req.ready`` is also withheld
    by the stall generator). Writes to addresses outside the memory are ignored; reads there
    return unspecified data.

    Block RAM used once (issue 27 item 2). The array is marked
    :data:`rtl.memattrs.COLLISION_FREE`: no read's word is specified when a write to its line
    happens in the same cycle. The bus port reads the line it addresses in every cycle, and the
    response of a write (the only request that reads and writes in one cycle) carries a line no
    master uses; the fetch port's line is undefined if the bus writes it in the cycle it is
    fetched (``Soc.fetch_collision``, which the simulation refuses). So Yosys merges the bus's
    read and write into one read/write port of each DP16KD and gives the fetch port the block
    RAM's other port, instead of emulating read-before-write with a second copy of the memory
    (64 DP16KD for the ULX3S's 64 Ki words with the fetch port, as without it; 128 unmarked:
    ``tests/test_memattrs.py -k main_memory``).

    Testbenches read and write the image through :meth:`word` (``ctx.get(mem.word(i))``,
    ``ctx.set(mem.word(i), v)``).

    Parameters
    ----------
    words : int
        Size in words (``≥ 1``); addresses are ``ceil_log2(words)`` bits (at least 1).
    data_width : int
        Width of a word in bits.
    latency : int
        Cycles from a request's acceptance to its response (``≥ 1``).
    stall_rate : float
        Probability of each stall, ``0 <= stall_rate < 1``; 0 builds no stall logic.
    seed : int
        Initial state of the stall generator, ``1 <= seed < 2**32``.
    init : iterable of int
        Initial contents (words from address 0), default all zero.
    line_words : int
        0: a word memory on a word bus; otherwise words per line, a power of two dividing
        ``words`` (line addresses are ``ceil_log2(words // line_words)`` bits, at least 1).
    fetch : bool
        With lines: add a read port of whole lines for the sequencer's instruction fetch.

    Members
    -------
    bus : ``In(BusSignature(addr_width, data_width))`` or ``In(LineBusSignature(...))``
        The memory's bus port (the memory is the slave).
    fetch_addr : ``In(line address width)``, with ``fetch``
        Line to fetch; its words are on ``fetch_data`` the next cycle.
    fetch_data : ``Out(data_width * line_words)``, with ``fetch``

    Raises
    ------
    TypeError
        If a parameter has the wrong type.
    ValueError
        If a parameter is out of range.
    """

    def __init__(self, words, *, data_width=WORD_BITS, latency=1, stall_rate=0, seed=1, init=(),
                 line_words=0, fetch=False):
        check_positive_int(words, "Main memory size")
        check_int(line_words, "Line words")
        if line_words:
            if line_words < 1 or line_words & (line_words - 1):
                raise ValueError(f"Line words must be a power of two, not {line_words!r}")
            if words % line_words:
                raise ValueError(f"Main memory size must be a multiple of the line "
                                 f"({line_words} words), not {words!r}")
        if not isinstance(fetch, bool):
            raise TypeError(f"Fetch port must be a bool, not {fetch!r}")
        if fetch and not line_words:
            raise ValueError("A fetch port needs lines (line_words > 0)")
        check_positive_int(data_width, "Main memory word width")
        check_positive_int(latency, "Memory latency")
        if not isinstance(stall_rate, (int, float)) or isinstance(stall_rate, bool):
            raise TypeError(f"Stall rate must be a number, not {stall_rate!r}")
        if not 0 <= stall_rate < 1:
            raise ValueError(f"Stall rate must be in [0, 1), not {stall_rate!r}")
        check_int(seed, "Stall seed")
        if not 0 < seed <= _MASK32:
            raise ValueError(f"Stall seed must be in 1..2**32-1, not {seed!r}")
        self._words = words
        self._latency = latency
        self._stall_rate = stall_rate
        self._stall_threshold = min(STALL_RATE_STEPS - 1, round(stall_rate * STALL_RATE_STEPS))
        self._seed = seed
        self._line_words = line_words
        self._fetch = fetch
        if line_words:
            lines = words // line_words
            init = list(init)
            init += [0] * (-len(init) % line_words)
            rows = [init[i:i + line_words] for i in range(0, len(init), line_words)]
            self._data = MemoryData(shape=data.ArrayLayout(unsigned(data_width), line_words),
                                    depth=lines, init=rows)
            ports = {"bus": In(LineBusSignature(max(1, ceil_log2(lines)), data_width,
                                                line_words))}
            if fetch:
                ports["fetch_addr"] = In(max(1, ceil_log2(lines)))
                ports["fetch_data"] = Out(data_width * line_words)
        else:
            self._data = MemoryData(shape=unsigned(data_width), depth=words, init=init)
            ports = {"bus": In(BusSignature(max(1, ceil_log2(words)), data_width))}
        super().__init__(ports)

    @property
    def words(self):
        return self._words

    @property
    def latency(self):
        return self._latency

    @property
    def stall_rate(self):
        return self._stall_rate

    @property
    def stall_threshold(self):
        """``round(stall_rate * 256)`` (capped at 255): the stall comparison's threshold."""
        return self._stall_threshold

    @property
    def seed(self):
        return self._seed

    @property
    def data(self):
        """The memory array (:class:`~amaranth.hdl.MemoryData`), for testbench backdoor access.

        With lines its rows are lines of ``line_words`` words: use :meth:`word`.
        """
        return self._data

    @property
    def line_words(self):
        """Words per line (0: a word memory on a word bus)."""
        return self._line_words

    @property
    def fetch_words(self):
        """Words per fetch line (0: no fetch port)."""
        return self._line_words if self._fetch else 0

    def word(self, i):
        """The storage cell of word ``i``, for ``ctx.get``/``ctx.set``, with or without lines."""
        if self._line_words:
            return self._data[i // self._line_words][i % self._line_words]
        return self._data[i]

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = storage = Memory(data=self._data, attrs={COLLISION_FREE: 1})
        req, rsp = self.bus.req, self.bus.rsp
        L = self._latency
        F = self._line_words
        rd = storage.read_port()
        if F:
            wr = storage.write_port(granularity=1)
            if self._fetch:
                fetch_rd = storage.read_port()
                m.d.comb += [fetch_rd.addr.eq(self.fetch_addr),
                             self.fetch_data.eq(fetch_rd.data)]
        else:
            wr = storage.write_port()

        # Stall decisions.
        req_stall = Signal()
        rsp_stall = Signal()
        if self._stall_threshold:
            state = Signal(32, init=self._seed)
            x1 = Signal(32)
            x2 = Signal(32)
            m.d.comb += [
                x1.eq(state ^ (state << 13)[:32]),
                x2.eq(x1 ^ (x1 >> 17)),
            ]
            m.d.sync += state.eq(x2 ^ (x2 << 5)[:32])
            m.d.comb += [
                req_stall.eq(state[0:8] < self._stall_threshold),
                rsp_stall.eq(state[8:16] < self._stall_threshold),
            ]

        # The response pipeline: stage 1 is the block RAM's read register, then registers up
        # to stage L - 1 (of the whole line, with lines), then the queue, a ring of D entries:
        # a response enters it from the stage before (the block RAM's output reaches only
        # registers) and is shown from its head `rptr`, so the shown response is an entry
        # selected by a register. With L = 1 the block RAM's register is the last stage: a
        # response leaving it is shown directly if the queue is empty, and enters the queue
        # unless it is taken then. The pipeline moves every cycle; entry `wptr` takes every
        # response leaving it (an enable of registers only), and `wptr` moves on past it unless
        # it was taken as it left. (An entry is free whenever a response enters: at most D are
        # unanswered, that one among them.)
        D = L + 1                 # requests unanswered at most (in the pipeline or the queue)
        bypass = L == 1
        stages = L if bypass else L - 1
        valid = [Signal(name=f"stage_{k}_valid") for k in range(1, stages + 1)]
        first = rd.data.as_value() if F else rd.data
        word = [first] + [Signal(len(first), name=f"stage_{k}_data")
                          for k in range(2, stages + 1)]
        queue = [Signal(len(first), name=f"queue_{k}") for k in range(D)]
        wptr = Signal(range(D))
        rptr = Signal(range(D))
        queued = Signal(D)                         # thermometer: more than k in the queue
        nonempty = queued[0]
        unanswered = Signal(D)                     # thermometer: more than k unanswered
        may_accept = ~unanswered[D - 1]            # fewer than D unanswered
        shown = Signal()          # the response was valid last cycle and was not taken
        accept = Signal()
        take = Signal()
        inside = req.payload.addr < (self._words // F if F else self._words)
        head = Signal(len(first))
        with m.Switch(rptr):
            for k in range(D):
                with m.Case(k):
                    m.d.comb += head.eq(queue[k])
        if bypass:
            m.d.comb += [rsp.valid.eq((nonempty | valid[-1]) & (~rsp_stall | shown)),
                         rsp.payload.eq(Mux(nonempty, head, word[-1]))]
        else:
            m.d.comb += [rsp.valid.eq(nonempty & (~rsp_stall | shown)),
                         rsp.payload.eq(head)]
        m.d.comb += [
            take.eq(rsp.valid & rsp.ready),
            req.ready.eq(may_accept & ~req_stall),
            accept.eq(req.valid & req.ready),
            rd.addr.eq(req.payload.addr),
            rd.en.eq(1),
            wr.addr.eq(req.payload.addr),
            wr.data.eq(req.payload.wdata),
        ]
        write = accept & req.payload.we & inside
        if F:
            m.d.comb += wr.en.eq(Mux(write, req.payload.mask, 0))
        else:
            m.d.comb += wr.en.eq(write)
        m.d.sync += shown.eq(rsp.valid & ~rsp.ready)
        # the counts are thermometer codes: `take` (the master's `rsp.ready`) reaches them
        # through one multiplexer, no adder
        m.d.sync += unanswered.eq(thermometer_next(unanswered, accept, take))
        m.d.sync += valid[0].eq(accept)
        for k in range(1, stages):
            m.d.sync += [valid[k].eq(valid[k - 1]), word[k].eq(word[k - 1])]
        if bypass:
            pop = take & nonempty
            push = valid[-1] & ~(take & ~nonempty)
        else:
            pop = take
            push = valid[-1]
        for k in range(D):
            with m.If(valid[-1] & (wptr == k)):
                m.d.sync += queue[k].eq(word[-1])
        with m.If(push):
            m.d.sync += wptr.eq(Mux(wptr == D - 1, 0, wptr + 1))
        with m.If(pop):
            m.d.sync += rptr.eq(Mux(rptr == D - 1, 0, rptr + 1))
        m.d.sync += queued.eq(thermometer_next(queued, push, pop))
        return m
