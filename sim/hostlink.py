"""The host link in Amaranth's Python simulator, as a byte transport for the host client.

:class:`LinkHarness` is a small device: a :class:`~rtl.hostlink.HostLinkBridge` (byte streams) or
a :class:`~rtl.hostlink.HostLink` (UART pins), a :class:`~rtl.mainmem.MainMemory` and a plain
register file of CSRs. :class:`PysimLink` simulates it and is a transport for
:class:`firmware.transport.HostLink` (``write``/``read``/``now``): it feeds the bytes written to it
into the device — as stream transfers, or as an 8N1 waveform on the ``rx`` pin — and collects
the bytes the device sends. Time is simulated time. Tests and ``python -m benchmarks.hostlink``
use it.
"""

import random
from collections import deque

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from spec.csr import CSR_COUNT
from spec.hostlink import MAX_BURST
from rtl.hostlink import HostLinkBridge, HostLink, DEFAULT_TIMEOUT
from rtl.mainmem import MainMemory

__all__ = ["uart_levels", "UartDecoder", "LinkHarness", "PysimLink"]


class LinkHarness(wiring.Component):
    """A test device: host link + main memory + a register file of ``csr_count`` 32-bit CSRs.

    Every CSR is a plain read/write register (the SoC's CSR block has its own semantics).

    Parameters
    ----------
    mem_words : int
        Main memory size in words.
    divisor : int or None
        None: the bridge alone, driven through its byte streams. An int: :class:`HostLink` with
        this UART divisor, driven through its pins.
    max_burst, timeout, csr_count
        The bridge's parameters (``timeout`` None: the link's default).
    latency, stall_rate, seed, init
        :class:`~rtl.mainmem.MainMemory`'s parameters.

    Attributes
    ----------
    link : HostLinkBridge or HostLink
    memory : MainMemory
    csrs : list of Signal
    """

    def __init__(self, mem_words, *, divisor=None, max_burst=MAX_BURST, timeout=None,
                 csr_count=CSR_COUNT, latency=1, stall_rate=0, seed=1, init=()):
        if divisor is None:
            self.link = HostLinkBridge(mem_words, max_burst=max_burst, csr_count=csr_count,
                                       timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
        else:
            self.link = HostLink(mem_words, divisor=divisor, max_burst=max_burst,
                                 timeout=timeout, csr_count=csr_count)
        self.divisor = divisor
        self.memory = MainMemory(mem_words, latency=latency, stall_rate=stall_rate, seed=seed,
                                 init=init)
        self.csrs = [Signal(32, name=f"csr_{i}") for i in range(csr_count)]
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.submodules.memory = self.memory
        wiring.connect(m, link.bus, self.memory.bus)
        rdata = Signal(32)
        m.d.comb += link.csr_rdata.eq(rdata)
        with m.Switch(link.csr_addr):
            for i, reg in enumerate(self.csrs):
                with m.Case(i):
                    with m.If(link.csr_we):
                        m.d.sync += reg.eq(link.csr_wdata)
                    with m.If(link.csr_re):
                        m.d.sync += rdata.eq(reg)
        return m


def uart_levels(byte, bit_cycles, *, stop=1):
    """The 8N1 waveform of ``byte``, one line level per cycle; bits last ``bit_cycles`` (a float:
    bit ``b`` ends at cycle ``round((b + 1) * bit_cycles)``). ``stop=0`` makes a framing error."""
    frame = [0] + [(byte >> b) & 1 for b in range(8)] + [stop]
    levels = []
    for b, level in enumerate(frame):
        levels += [level] * (round((b + 1) * bit_cycles) - round(b * bit_cycles))
    return levels


class UartDecoder:
    """Decode an 8N1 line sampled once per cycle: :meth:`step` returns each byte at its stop bit.

    Samples mid-bit, ``divisor // 2`` cycles after the start bit's first low cycle and every
    ``divisor`` cycles after; a byte with a low stop bit is counted in :attr:`framing_errors`.
    """

    def __init__(self, divisor):
        self.divisor = divisor
        self.framing_errors = 0
        self._wait = None           # cycles to the next sample; None: idle
        self._bits = []

    def step(self, level):
        """Take the line's level in one cycle; return a byte completed in it, or None."""
        if self._wait is None:
            if not level:
                self._wait, self._bits = self.divisor // 2, []
            return None
        self._wait -= 1
        if self._wait:
            return None
        self._wait = self.divisor
        self._bits.append(level)
        if len(self._bits) == 1 and level:      # a glitch, not a start bit
            self._wait = None
        elif len(self._bits) == 10:
            self._wait = None
            if level:
                return sum(b << i for i, b in enumerate(self._bits[1:9]))
            self.framing_errors += 1
        return None


class _Gap:
    __slots__ = ("cycles",)

    def __init__(self, cycles):
        self.cycles = cycles


class PysimLink:
    """Simulate a :class:`LinkHarness` and use it as a byte transport.

    Bytes written are sent in order; :meth:`gap` inserts an exact idle time between two bytes.
    On the byte-stream level a byte is offered right after the previous one is taken (or after
    a random gap of 1 to ``max_gap`` cycles with probability ``1 - p_valid``), and response bytes
    are taken when ``o_byte.ready`` is high, 1 with probability ``p_ready``. On the pin level the
    bytes are sent as 8N1 frames whose bits last ``divisor * (1 + baud_error)`` cycles (with the
    same random idle gaps before a byte), and ``tx`` is decoded at the nominal rate.

    Parameters
    ----------
    harness : LinkHarness
    clk_period : float
        Seconds per clock cycle; :meth:`read` timeouts and :meth:`now` are in simulated seconds.
    p_valid, max_gap, p_ready, seed
        Random gaps and back-pressure (seeded).
    baud_error : float
        Relative error of the sending rate on the pin level (e.g. ``0.03``: 3 % slow).
    record_csr : bool
        Record every CSR write as ``(cycle, index, value)`` in :attr:`csr_writes`.
    """

    def __init__(self, harness, *, clk_period=1e-6, p_valid=1.0, max_gap=0, p_ready=1.0,
                 seed=0, baud_error=0.0, record_csr=False):
        self.harness = harness
        self.clk_period = clk_period
        self._rng = random.Random(seed)
        self._p_valid, self._max_gap, self._p_ready = p_valid, max_gap, p_ready
        self._baud_error = baud_error
        self._record_csr = record_csr
        self._in = deque()          # bytes and _Gap markers to send
        self._out = bytearray()     # bytes received
        self._calls = deque()       # (fn, result list) to run in the testbench
        self.cycle = 0              # cycles simulated
        self.last_byte_cycle = 0    # the cycle count when the last byte was received
        self.csr_writes = []
        self.sim = Simulator(harness)
        self.sim.add_clock(clk_period)
        pump = self._pump_bytes if harness.divisor is None else self._pump_pins
        self.sim.add_testbench(pump, background=True)

    # -- the transport -----------------------------------------------------------------------

    def write(self, data):
        self._in.extend(bytes(data))

    def gap(self, cycles):
        """Keep the input idle for exactly ``cycles`` cycles after the bytes written so far."""
        self._in.append(_Gap(cycles))

    def read(self, n, timeout):
        """Up to ``n`` received bytes, simulating at most ``timeout`` seconds for them."""
        limit = self.cycle + max(1, round(timeout / self.clk_period))
        self._run(lambda: len(self._out) >= n, limit)
        data, self._out[:] = bytes(self._out[:n]), self._out[n:]
        return data

    def now(self):
        """Simulated time in seconds."""
        return self.cycle * self.clk_period

    def close(self):
        pass

    # -- simulation control ------------------------------------------------------------------

    @property
    def pending(self):
        """Bytes (and gaps) not yet sent."""
        return len(self._in)

    def received(self):
        """Take every byte received so far."""
        data, self._out[:] = bytes(self._out), b""
        return data

    def run(self, cycles):
        """Simulate ``cycles`` more cycles."""
        self._run(lambda: False, self.cycle + cycles)

    def drain(self, max_cycles):
        """Simulate until everything written was sent; False if ``max_cycles`` did not suffice."""
        self._run(lambda: not self._in and not self._busy, self.cycle + max_cycles)
        return not self._in and not self._busy

    def call(self, fn):
        """Run ``fn(ctx)`` in the testbench (between two cycles) and return its result."""
        result = []
        self._calls.append((fn, result))
        self._run(lambda: bool(result), self.cycle + 2)
        return result[0]

    def memory(self):
        """The main-memory image (list of words)."""
        mem = self.harness.memory
        return self.call(lambda ctx: [ctx.get(mem.data[i]) for i in range(mem.words)])

    def csrs(self):
        """The CSR register file (list of int)."""
        return self.call(lambda ctx: [ctx.get(r) for r in self.harness.csrs])

    def _run(self, done, limit):
        while not done() and self.cycle < limit:
            step = min(8, limit - self.cycle)
            self.sim.run_until((self.cycle + step) * self.clk_period)

    # -- the testbenches ---------------------------------------------------------------------

    def _service(self, ctx):
        while self._calls:
            fn, result = self._calls.popleft()
            result.append(fn(ctx))

    def _next_item(self):
        """The next byte to send, a number of idle cycles, or None."""
        if not self._in:
            return None
        item = self._in.popleft()
        if isinstance(item, _Gap):
            return item
        if self._max_gap and self._rng.random() >= self._p_valid:
            self._in.appendleft(item)
            return _Gap(self._rng.randint(1, self._max_gap))
        return item

    def _ready(self):
        return 1 if self._p_ready >= 1 or self._rng.random() < self._p_ready else 0

    def _sample_csr(self, ctx, link):
        if ctx.get(link.csr_we):
            self.csr_writes.append((self.cycle, ctx.get(link.csr_addr), ctx.get(link.csr_wdata)))

    async def _pump_bytes(self, ctx):
        link = self.harness.link
        i, o = link.i_byte, link.o_byte
        cur, gap = None, 0
        valid = ready = 0           # what the pins are set to (a set costs a settle)
        self._busy = False
        while True:
            self._service(ctx)
            if cur is None:
                if gap:
                    gap -= 1
                else:
                    item = self._next_item()
                    if isinstance(item, _Gap):
                        gap = item.cycles - 1
                    elif item is not None:
                        cur = item
                        ctx.set(i.payload, cur)
                if valid != (cur is not None):
                    valid ^= 1
                    ctx.set(i.valid, valid)
            self._busy = cur is not None or gap > 0
            if ready != self._ready():
                ready ^= 1
                ctx.set(o.ready, ready)
            if self._record_csr:
                self._sample_csr(ctx, link)
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(i.ready, o.valid,
                                                                        o.payload)
            self.cycle += 1
            if cur is not None and i_ready:
                cur = None
            if ready and o_valid:
                self._out.append(o_payload)
                self.last_byte_cycle = self.cycle

    async def _pump_pins(self, ctx):
        link = self.harness.link
        bit = self.harness.divisor * (1 + self._baud_error)
        levels = deque()            # the rx waveform still to drive, one level per cycle
        decoder = UartDecoder(self.harness.divisor)
        rx_level = 1
        self._busy = False
        while True:
            self._service(ctx)
            if not levels:
                item = self._next_item()
                if isinstance(item, _Gap):
                    levels.extend([1] * item.cycles)
                elif item is not None:
                    levels.extend(uart_levels(item, bit))
            level = levels.popleft() if levels else 1
            self._busy = bool(levels)
            if level != rx_level:
                rx_level = level
                ctx.set(link.rx, level)
            if self._record_csr:
                self._sample_csr(ctx, link)
            _, _, tx = await ctx.tick().sample(link.tx)
            self.cycle += 1
            byte = decoder.step(tx)
            if byte is not None:
                self._out.append(byte)
                self.last_byte_cycle = self.cycle
