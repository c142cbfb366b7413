# amaranth: UnusedElaboratable=no
"""BusArbiter (rtl/bus.py): several masters on one main memory, against a Python memory model."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from rtl.bus import BusArbiter, BusSignature, LineBusSignature, WordLineBridge, thermometer_next
from rtl.mainmem import MainMemory
from spec.timing import BUS_LATENCY
from tests.simutil import run_sim


class _Top(wiring.Component):
    """``masters`` word masters on one main memory through a :class:`BusArbiter`; with ``lines``
    the memory stores lines of ``lines`` words on a line bus, and each master reaches the line
    arbiter through a :class:`WordLineBridge`."""

    def __init__(self, masters, words, latency, stall_rate, seed, max_inflight, init, lines=0):
        addr_width = max(1, (words - 1).bit_length())
        self.mem = MainMemory(words, latency=latency, stall_rate=stall_rate, seed=seed, init=init,
                              line_words=lines)
        slave = self.mem.bus.signature
        self.arb = BusArbiter(masters, slave.addr_width, 16, max_inflight=max_inflight,
                              line_words=lines)
        self.bridges = [WordLineBridge(addr_width, 16, lines, max_inflight=max_inflight)
                        for _ in range(masters)] if lines else []
        super().__init__({"bus": wiring.In(BusSignature(addr_width, 16)).array(masters)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.arb, m.submodules.mem = self.arb, self.mem
        wiring.connect(m, self.arb.slave, self.mem.bus)
        for i, (port, inner) in enumerate(zip(self.bus, self.arb.bus)):
            if self.bridges:
                m.submodules[f"bridge_{i}"] = bridge = self.bridges[i]
                wiring.connect(m, wiring.flipped(port), bridge.word)
                wiring.connect(m, bridge.line, inner)
            else:
                wiring.connect(m, wiring.flipped(port), inner)
        return m


def test_validation():
    with pytest.raises(ValueError, match=r"^Bus masters must be a positive integer, not 0$"):
        BusArbiter(0, 8, 16)
    with pytest.raises(TypeError, match=r"^Requests in flight must be a positive integer, "
                                        r"not 'x'$"):
        BusArbiter(2, 8, 16, max_inflight="x")
    with pytest.raises(TypeError, match=r"^Bus line words must be an integer, not 'x'$"):
        BusArbiter(2, 8, 16, line_words="x")
    assert BusArbiter(2, 5, 16, line_words=8).slave.signature == LineBusSignature(5, 16, 8)
    with pytest.raises(ValueError, match=r"^Bus line words must be a power of two, not 6$"):
        WordLineBridge(8, 16, 6)
    with pytest.raises(ValueError, match=r"^Bus address width must be above 3 for lines of 8 "
                                         r"words, not 3$"):
        WordLineBridge(3, 16, 8)
    bridge = WordLineBridge(8, 16, 8)
    assert bridge.word.signature == BusSignature(8, 16).flip()
    assert bridge.line.signature == LineBusSignature(5, 16, 8)


@pytest.mark.parametrize("masters, latency, stall_rate, max_inflight, seed, lines", [
    (3, 1, 0, 2, 1, 0), (2, 3, 0.3, 4, 2, 0), (4, 2, 0.5, 8, 3, 0), (1, 2, 0, 1, 4, 0),
    (3, 1, 0, 2, 5, 8), (2, 3, 0.3, 4, 6, 8), (4, 2, 0.5, 8, 7, 8), (1, 2, 0, 1, 8, 8),
])
def test_random_masters(masters, latency, stall_rate, max_inflight, seed, lines):
    """Each master: random reads and writes, random response back-pressure. Every response goes
    to its master in order with the data of the memory at the request's acceptance (the
    arbiter's register passes the requests on in the order it takes them). With
    ``lines``, word masters share a line memory through bridges (issue 27: the bus moves lines)."""
    rng = random.Random(seed)
    words = 48
    init = [rng.randrange(1 << 16) for _ in range(words)]
    dut = _Top(masters, words, latency, stall_rate, seed, max_inflight, init, lines)
    model = list(init)
    n = 120
    arb = dut.arb

    async def tb(ctx):
        offers = [None] * masters
        expect = [[] for _ in range(masters)]
        sent, got = [0] * masters, [0] * masters
        held = None
        cycle = taken = passed = 0
        while sum(got) < n * masters:
            for i, bus in enumerate(dut.bus):
                if offers[i] is None and sent[i] < n and rng.random() < 0.6:
                    offers[i] = (rng.randrange(words), rng.randrange(2), rng.randrange(1 << 16))
                    a, we, wd = offers[i]
                    ctx.set(bus.req.payload, {"addr": a, "we": we, "wdata": wd})
                ctx.set(bus.req.valid, offers[i] is not None)
                ctx.set(bus.rsp.ready, rng.random() < 0.7)
            sampled = await ctx.tick().sample(
                arb.slave.req.valid, arb.slave.req.ready, arb.slave.req.payload,
                *(s for bus in dut.bus for s in (bus.req.ready, bus.rsp.valid, bus.rsp.ready,
                                                  bus.rsp.payload)))
            sv, sr, sp = sampled[2:5]
            if held is not None:
                assert sv and sp == held, f"seed {seed}: slave request changed before transfer"
            held = sp if sv and not sr else None
            accepted = 0
            for i in range(masters):
                rr, rv, rrdy, rd = sampled[5 + 4 * i:9 + 4 * i]
                if rv and rrdy:
                    assert expect[i], f"seed {seed}: master {i} got a response it did not ask"
                    want = expect[i].pop(0)
                    if want is not None:
                        assert rd == want, f"seed {seed}, cycle {cycle}: master {i} read"
                    got[i] += 1
                if rr:
                    assert offers[i] is not None
                    accepted += 1
                    a, we, wd = offers[i]
                    if we:
                        model[a] = wd
                        expect[i].append(None)
                    else:
                        expect[i].append(model[a])
                    offers[i] = None
                    sent[i] += 1
            # the arbiter's request register: a master's request reaches the slave after it,
            # in order, one at a time
            assert accepted <= 1
            taken += accepted
            passed += sv and sr
            assert 0 <= taken - passed <= 1, f"seed {seed}, cycle {cycle}"
            cycle += 1
            assert cycle < 100 * n, f"seed {seed}: no progress"
        assert [ctx.get(dut.mem.word(i)) for i in range(words)] == model

    run_sim(dut, tb)


@pytest.mark.parametrize("lines", [0, 8])
def test_round_robin_and_latency(lines):
    """All masters always requesting: grants rotate; a lone master sees the memory's latency plus
    the arbiter's register (``spec.timing.BUS_LATENCY``), one request per cycle (through a bridge
    too)."""
    dut = _Top(3, 16, 2, 0, 1, 4, (), lines)

    async def tb(ctx):
        for bus in dut.bus:
            ctx.set(bus.rsp.ready, 1)
            ctx.set(bus.req.valid, 1)
            ctx.set(bus.req.payload, {"addr": 1, "we": 0, "wdata": 0})
        order = []
        for _ in range(9):
            s = await ctx.tick().sample(*(bus.req.ready for bus in dut.bus))
            order.append(s[2:].index(1))
        assert order == [0, 1, 2] * 3
        for bus in dut.bus:
            ctx.set(bus.req.valid, 0)
        await ctx.tick().repeat(8)          # every request answered
        ctx.set(dut.bus[0].req.valid, 1)    # master 0 alone, from a quiet bus
        history = []
        for _ in range(12):
            _, _, ready, rv = await ctx.tick().sample(dut.bus[0].req.ready, dut.bus[0].rsp.valid)
            history.append((ready, rv))
        assert all(r for r, _ in history)             # one request per cycle
        # each answered 2 + BUS_LATENCY cycles after it was taken, not sooner
        assert not any(v for _, v in history[:2 + BUS_LATENCY])
        assert all(v for _, v in history[2 + BUS_LATENCY:])

    run_sim(dut, tb)


@pytest.mark.parametrize("width, seed", [(1, 1), (3, 2), (8, 3)])
def test_thermometer_next(width, seed):
    """The occupancy counts of the arbiter's and bridge's queues and of main memory (issue 27:
    no adder between a late `ready` and a count): random steps up and down within 0..width,
    the code is always `count` ones from bit 0."""
    rng = random.Random(seed)
    m = Module()
    t, up, down = Signal(width), Signal(), Signal()
    m.d.sync += t.eq(thermometer_next(t, up, down))

    async def tb(ctx):
        count = 0
        for _ in range(200):
            u = rng.random() < 0.5 and count < width
            d = rng.random() < 0.5 and count > 0
            ctx.set(up, u)
            ctx.set(down, d)
            await ctx.tick()
            count += u - d
            assert ctx.get(t) == (1 << count) - 1, f"seed {seed}: {count} counted"

    run_sim(m, tb)


@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_order_queue_against_a_deque(depth, seed):
    """The register queue behind the arbiter's and the bridge's response routing
    (``_OrderQueue``) against a Python deque: random writes and reads, full and empty included;
    ``r_rdy`` / ``w_rdy`` say not empty / not full, the head is the oldest value, a value written
    is readable from the next cycle, and entries past the last hold zero."""
    from collections import deque
    from rtl.bus import _OrderQueue
    rng = random.Random(seed)
    dut = _OrderQueue(4, depth)

    async def tb(ctx):
        model = deque()
        for step in range(400):
            assert ctx.get(dut.r_rdy) == bool(model), step
            assert ctx.get(dut.w_rdy) == (len(model) < depth), step
            assert ctx.get(dut.r_data) == (model[0] if model else 0), step
            w, r, value = rng.random() < 0.6, rng.random() < 0.5, rng.randrange(1, 16)
            ctx.set(dut.w_en, w)
            ctx.set(dut.w_data, value)
            ctx.set(dut.r_en, r)
            popped = r and bool(model)
            pushed = w and len(model) < depth
            await ctx.tick()
            if popped:
                model.popleft()
            if pushed:
                model.append(value)

    run_sim(dut, tb)
