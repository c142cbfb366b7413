# amaranth: UnusedElaboratable=no
"""BusArbiter (rtl/bus.py): several masters on one main memory, against a Python memory model."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from rtl.bus import BusArbiter, BusSignature, LineBusSignature, WordLineBridge
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
    to its master in order with the data of the memory when the slave takes the request (each
    master's accepted requests wait in its buffer, one at most, then in the arbiter's register,
    and reach the slave in the order the arbiter takes them; the model follows the slave side,
    matching each request the slave takes to the head of its master's queue). With ``lines``,
    word masters share a line memory through bridges (issue 27: the bus moves lines)."""
    rng = random.Random(seed)
    words = 48
    init = [rng.randrange(1 << 16) for _ in range(words)]
    dut = _Top(masters, words, latency, stall_rate, seed, max_inflight, init, lines)
    model = list(init)
    n = 120
    arb = dut.arb

    def at_slave(a, we, wd):
        """A master's word request as the slave sees it (through its bridge with ``lines``)."""
        if not lines:
            return (a, we, wd)
        return (a // lines, we, (1 << a % lines) if we else 0, (wd,) * lines)

    def slave_view(p):
        if not lines:
            return (p.addr, p.we, p.wdata)
        return (p.addr, p.we, p.mask, tuple(p.wdata[k] for k in range(lines)))

    async def tb(ctx):
        offers = [None] * masters
        queued = [[] for _ in range(masters)]     # accepted, not yet taken by the slave
        expect = [[] for _ in range(masters)]
        sent, got = [0] * masters, [0] * masters
        held = None
        cycle = 0
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
                *(s for bus in dut.bus for s in (bus.req.valid, bus.req.ready, bus.rsp.valid,
                                                  bus.rsp.ready, bus.rsp.payload)))
            sv, sr, sp = sampled[2:5]
            if held is not None:
                assert sv and sp == held, f"seed {seed}: slave request changed before transfer"
            held = sp if sv and not sr else None
            for i in range(masters):
                valid, rr, rv, rrdy, rd = sampled[5 + 5 * i:10 + 5 * i]
                if rv and rrdy:
                    assert expect[i], f"seed {seed}: master {i} got a response it did not ask"
                    want = expect[i].pop(0)
                    if want is not None:
                        assert rd == want, f"seed {seed}, cycle {cycle}: master {i} read"
                    got[i] += 1
                # a master whose buffer is empty is ready: its accepted requests are at most the
                # one in the arbiter's register
                if rr:
                    assert len(queued[i]) <= 1, f"seed {seed}, cycle {cycle}: master {i}"
                if valid and rr:
                    queued[i].append(offers[i])
                    offers[i] = None
                    sent[i] += 1
            if sv and sr:
                # the request the slave takes: the head of exactly one master's queue
                view = slave_view(sp)
                owners = [i for i in range(masters)
                          if queued[i] and at_slave(*queued[i][0]) == view]
                assert len(owners) == 1, f"seed {seed}, cycle {cycle}: slave took {view}"
                a, we, wd = queued[owners[0]].pop(0)
                if we:
                    model[a] = wd
                    expect[owners[0]].append(None)
                else:
                    expect[owners[0]].append(model[a])
            # each master's requests wait in its buffer (one at most) and the arbiter's register
            # (one, of one master)
            assert all(len(q) <= 2 for q in queued), f"seed {seed}, cycle {cycle}"
            assert sum(len(q) for q in queued) <= masters + 1, f"seed {seed}, cycle {cycle}"
            cycle += 1
            assert cycle < 100 * n, f"seed {seed}: no progress"
        assert not any(queued)
        assert [ctx.get(dut.mem.word(i)) for i in range(words)] == model

    run_sim(dut, tb)


@pytest.mark.parametrize("lines", [0, 8])
def test_ready_independent_of_other_masters(lines):
    """Issue 27 item 4: a master's ``req.ready`` does not fall when another master's request is
    taken, nor depend on the other masters' ``valid`` at all: it is its input buffer's emptiness.
    Two masters offering in the same cycle on a quiet bus are both accepted; the one not taken
    waits in its buffer (its ``ready`` low the next cycle only) and is taken next."""
    dut = _Top(3, 32, 2, 0, 1, 4, (), lines)

    async def tb(ctx):
        for bus in dut.bus:
            ctx.set(bus.rsp.ready, 1)
        for i in (0, 1):
            ctx.set(dut.bus[i].req.payload, {"addr": 8 * i + 1, "we": 0, "wdata": 0})
        await ctx.tick()
        # within a cycle, no master's ready moves with the others' valid
        for i in range(3):
            ctx.set(dut.bus[i].req.valid, 1)
            for others in range(4):
                for k, j in enumerate(j for j in range(3) if j != i):
                    ctx.set(dut.bus[j].req.valid, others >> k & 1)
                assert ctx.get(dut.bus[i].req.ready), f"master {i}, others' valid {others:02b}"
            ctx.set(dut.bus[i].req.valid, 0)
        for bus in dut.bus:
            ctx.set(bus.req.valid, 0)
        ctx.set(dut.bus[0].req.valid, 1)
        ctx.set(dut.bus[1].req.valid, 1)
        readies = []
        for _ in range(3):
            _, _, r0, r1 = await ctx.tick().sample(dut.bus[0].req.ready, dut.bus[1].req.ready)
            readies.append((r0, r1))
            if r0:
                ctx.set(dut.bus[0].req.valid, 0)
            if r1:
                ctx.set(dut.bus[1].req.valid, 0)
        # both taken in the first cycle; master 1 waited in its buffer for a cycle
        assert readies == [(1, 1), (1, 0), (1, 1)]

    run_sim(dut, tb)


@pytest.mark.parametrize("lines", [0, 8])
def test_round_robin_and_latency(lines):
    """All masters always requesting: the slave takes their requests in rotation; a lone master
    sees the memory's latency plus the arbiter's register (``spec.timing.BUS_LATENCY``), one
    request per cycle (through a bridge too)."""
    dut = _Top(3, 32, 2, 0, 1, 4, (), lines)

    async def tb(ctx):
        for i, bus in enumerate(dut.bus):
            ctx.set(bus.rsp.ready, 1)
            ctx.set(bus.req.valid, 1)
            ctx.set(bus.req.payload, {"addr": 8 * i + 1, "we": 0, "wdata": 0})
        order = []
        for _ in range(12):
            _, _, sv, sr, addr = await ctx.tick().sample(
                dut.arb.slave.req.valid, dut.arb.slave.req.ready, dut.arb.slave.req.payload.addr)
            if sv and sr:
                order.append(addr if lines else addr // 8)
        assert order[:9] == [0, 1, 2] * 3
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
