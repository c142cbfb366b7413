# amaranth: UnusedElaboratable=no
"""Main memory (rtl/mainmem.py) and the bus protocol (rtl/bus.py), against a Python model."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from golden.fixedpoint import Xorshift32
from rtl.bus import BusSignature, LineBusSignature
from rtl.mainmem import MainMemory
from tests.simutil import run_sim, bus_read, bus_write


def test_constructor_validation():
    with pytest.raises(TypeError, match=r"^Main memory size must be a positive integer, not 'a'$"):
        MainMemory("a")
    with pytest.raises(ValueError, match=r"^Main memory size must be a positive integer, not 0$"):
        MainMemory(0)
    with pytest.raises(ValueError, match=r"^Memory latency must be a positive integer, not 0$"):
        MainMemory(16, latency=0)
    with pytest.raises(TypeError, match=r"^Stall rate must be a number, not '0.5'$"):
        MainMemory(16, stall_rate="0.5")
    with pytest.raises(ValueError, match=r"^Stall rate must be in \[0, 1\), not 1$"):
        MainMemory(16, stall_rate=1)
    with pytest.raises(ValueError, match=r"^Stall seed must be in 1\.\.2\*\*32-1, not 0$"):
        MainMemory(16, seed=0)
    with pytest.raises(TypeError, match=r"^Stall seed must be an integer, not 1\.0$"):
        MainMemory(16, seed=1.0)
    with pytest.raises(ValueError, match=r"^Bus address width must be a positive integer, not 0$"):
        BusSignature(0, 16)
    with pytest.raises(TypeError, match=r"^Bus data width must be a positive integer, not None$"):
        BusSignature(8, None)


def test_signature():
    mem = MainMemory(1000)
    assert mem.bus.signature == BusSignature(10, 16).flip()
    assert BusSignature(10, 16) == BusSignature(10, 16)
    assert BusSignature(10, 16) != BusSignature(11, 16)
    assert repr(BusSignature(10, 16)) == "BusSignature(addr_width=10, data_width=16)"
    assert MainMemory(1).bus.signature.addr_width == 1
    assert MainMemory(16, stall_rate=0.3).stall_threshold == 77


def test_latency_and_order():
    """Back-to-back requests, responses always taken: each response exactly L cycles later."""
    for latency in (1, 2, 5):
        rng = random.Random(latency)
        words = 64
        init = [rng.randrange(1 << 16) for _ in range(words)]
        dut = MainMemory(words, latency=latency, init=init)
        model = list(init)
        reqs = [(rng.randrange(words), rng.randrange(2), rng.randrange(1 << 16)) for _ in range(60)]

        async def tb(ctx):
            bus = dut.bus
            ctx.set(bus.rsp.ready, 1)
            accepted, responses, cycle = [], [], 0
            pending = list(reqs)
            while len(responses) < len(reqs):
                if pending:
                    a, we, wd = pending[0]
                    ctx.set(bus.req.payload, {"addr": a, "we": we, "wdata": wd})
                ctx.set(bus.req.valid, bool(pending))
                _, _, rv, rr, sv, sd = await ctx.tick().sample(
                    bus.req.valid, bus.req.ready, bus.rsp.valid, bus.rsp.payload)
                assert rr, "the memory never withholds ready without stalls"
                if sv:
                    responses.append((cycle, sd))
                if rv and rr:
                    accepted.append(cycle)
                    pending.pop(0)
                cycle += 1
            for (a, we, wd), c, (rc, data) in zip(reqs, accepted, responses):
                assert rc == c + latency
                if we:
                    model[a] = wd
                else:
                    assert data == model[a]
            assert [ctx.get(dut.data[i]) for i in range(words)] == model

        run_sim(dut, tb)


@pytest.mark.parametrize("latency, stall_rate, seed", [
    (1, 0, 1), (3, 0, 2), (1, 0.5, 3), (2, 0.3, 4), (4, 0.7, 5),
])
def test_random_traffic(latency, stall_rate, seed):
    """Random requests, random response back-pressure, random stalls: in-order, exact data."""
    rng = random.Random(seed)
    words = 40                      # not a power of two: writes at 40..63 must be ignored
    init = [rng.randrange(1 << 16) for _ in range(words)]
    dut = MainMemory(words, latency=latency, stall_rate=stall_rate, seed=seed, init=init)
    model = list(init)
    n = 300

    async def tb(ctx):
        bus = dut.bus
        expect = []                 # the word read (None: a write or outside), in order
        sent = got = 0
        offer = None
        shown = False
        cycle = 0
        while got < n:
            if offer is None and sent < n and rng.random() < 0.7:
                offer = (rng.randrange(64), rng.randrange(2), rng.randrange(1 << 16))
                ctx.set(bus.req.payload, {"addr": offer[0], "we": offer[1], "wdata": offer[2]})
            ctx.set(bus.req.valid, offer is not None)
            ctx.set(bus.rsp.ready, rng.random() < 0.6)
            _, _, rv, rr, sv, sr, sd = await ctx.tick().sample(
                bus.req.valid, bus.req.ready, bus.rsp.valid, bus.rsp.ready, bus.rsp.payload)
            assert not shown or sv, f"seed {seed}: response valid dropped in cycle {cycle}"
            shown = sv and not sr
            if sv and sr:
                assert expect, f"seed {seed}: response without a request in cycle {cycle}"
                want = expect.pop(0)
                if want is not None:
                    assert sd == want, f"seed {seed}: read in cycle {cycle}"
                got += 1
            if rv and rr:
                a, we, wd = offer
                if we:
                    if a < words:
                        model[a] = wd
                    expect.append(None)
                else:       # the word at the request's acceptance
                    expect.append(model[a] if a < words else None)
                offer = None
                sent += 1
            cycle += 1
            assert cycle < 50 * n, f"seed {seed}: no progress"
        assert [ctx.get(dut.data[i]) for i in range(words)] == model, f"seed {seed}"

    run_sim(dut, tb)


@pytest.mark.parametrize("stall_rate, seed", [(0.25, 1), (0.5, 0xDEADBEEF)])
def test_stall_pattern(stall_rate, seed):
    """The stall decisions are the documented xorshift32 sequence."""
    dut = MainMemory(8, stall_rate=stall_rate, seed=seed)
    t = dut.stall_threshold

    async def tb(ctx):
        s = seed
        bus = dut.bus
        ctx.set(bus.rsp.ready, 0)
        for cycle in range(200):     # idle memory: ready is withheld iff the low byte < t
            _, _, ready = await ctx.tick().sample(bus.req.ready)
            assert ready == ((s & 0xFF) >= t), f"seed {seed}, cycle {cycle}"
            s = Xorshift32.step(s)
        # One read in flight, never taken: valid appears on the first cycle the byte allows,
        # then stays.
        ctx.set(bus.req.payload, {"addr": 3, "we": 0, "wdata": 0})
        ctx.set(bus.req.valid, 1)
        while True:
            _, _, ready = await ctx.tick().sample(bus.req.ready)
            s = Xorshift32.step(s)
            if ready:
                break
        ctx.set(bus.req.valid, 0)
        seen = False
        for cycle in range(100):
            _, _, valid = await ctx.tick().sample(bus.rsp.valid)
            expect = seen or ((s >> 8) & 0xFF) >= t
            assert valid == expect, f"seed {seed}, cycle {cycle}"
            seen = expect
            s = Xorshift32.step(s)

    run_sim(dut, tb)


def test_backdoor_and_helpers():
    dut = MainMemory(32, latency=2)

    async def tb(ctx):
        ctx.set(dut.data[5], 0xBEEF)
        assert await bus_read(ctx, dut.bus, 5) == 0xBEEF
        await bus_write(ctx, dut.bus, 6, 0x1234)
        assert ctx.get(dut.data[6]) == 0x1234
        assert await bus_read(ctx, dut.bus, 6) == 0x1234

    run_sim(dut, tb)


def test_connects_to_master():
    master = BusSignature(5, 16).create()
    wiring.connect(Module(), master, MainMemory(32).bus)
    with pytest.raises(wiring.ConnectionError):
        wiring.connect(Module(), master, MainMemory(64).bus)


@pytest.mark.parametrize("latency, stall_rate, seed", [(1, 0, 1), (2, 0.3, 2), (3, 0.6, 3)])
def test_line_bus_random_traffic(latency, stall_rate, seed):
    """Lines: random line reads and masked line writes, random back-pressure and stalls, against
    a word model; writes beyond the memory's lines are ignored; the fetch port reads the same
    lines (issue 27: the bus moves a line per request)."""
    rng = random.Random(seed)
    F = 8
    words = 40                      # 5 lines; line addresses 5..7 are outside
    init = [rng.randrange(1 << 16) for _ in range(words)]
    dut = MainMemory(words, latency=latency, stall_rate=stall_rate, seed=seed, init=init,
                     line_words=F, fetch=True)
    assert dut.bus.signature == LineBusSignature(3, 16, F).flip()
    assert dut.fetch_words == F and dut.line_words == F
    model = list(init)
    n = 200

    async def tb(ctx):
        bus = dut.bus
        expect = []                 # line address (None: a write or outside) per request
        sent = got = 0
        offer = None
        shown = False
        cycle = 0
        while got < n:
            if offer is None and sent < n and rng.random() < 0.7:
                offer = (rng.randrange(8), rng.randrange(2), rng.randrange(1 << F),
                         [rng.randrange(1 << 16) for _ in range(F)])
                a, we, mask, wd = offer
                ctx.set(bus.req.payload, {"addr": a, "we": we, "mask": mask, "wdata": wd})
            ctx.set(bus.req.valid, offer is not None)
            ctx.set(bus.rsp.ready, rng.random() < 0.6)
            _, _, rv, rr, sv, sr, sd = await ctx.tick().sample(
                bus.req.valid, bus.req.ready, bus.rsp.valid, bus.rsp.ready, bus.rsp.payload)
            assert not shown or sv, f"seed {seed}: response valid dropped in cycle {cycle}"
            shown = sv and not sr
            if sv and sr:
                assert expect, f"seed {seed}: response without a request in cycle {cycle}"
                line = expect.pop(0)
                if line is not None:
                    assert list(sd) == line, f"seed {seed}: read in cycle {cycle}"
                got += 1
            if rv and rr:
                a, we, mask, wd = offer
                inside = a < words // F
                if we:
                    for k in range(F):
                        if inside and mask >> k & 1:
                            model[a * F + k] = wd[k]
                    expect.append(None)
                else:
                    expect.append(model[a * F:a * F + F] if inside else None)
                offer = None
                sent += 1
            cycle += 1
            assert cycle < 50 * n, f"seed {seed}: no progress"
        assert [ctx.get(dut.word(i)) for i in range(words)] == model, f"seed {seed}"
        for line in range(words // F):
            ctx.set(dut.fetch_addr, line)
            await ctx.tick()
            got_line = ctx.get(dut.fetch_data)
            assert got_line == sum(model[line * F + j] << (16 * j) for j in range(F))

    run_sim(dut, tb)


def test_line_words_validated():
    with pytest.raises(ValueError, match="^Line words must be a power of two, not 3$"):
        MainMemory(48, line_words=3)
    with pytest.raises(ValueError, match="multiple of the line"):
        MainMemory(12, line_words=8)
    with pytest.raises(TypeError, match="^Fetch port must be a bool, not 1$"):
        MainMemory(16, line_words=8, fetch=1)
    with pytest.raises(ValueError, match=r"^A fetch port needs lines \(line_words > 0\)$"):
        MainMemory(16, fetch=True)
    assert MainMemory(16).fetch_words == MainMemory(16, line_words=8).fetch_words == 0


@pytest.mark.parametrize("latency, lines", [(1, 0), (2, 0), (2, 8), (3, 8)])
def test_req_ready_independent_of_rsp_ready(latency, lines):
    """Issue 27 item 4: ``req.ready`` is a register, not a function of ``rsp.ready`` in the same
    cycle; a master that takes no response may still have ``latency + 1`` requests accepted, then
    ``req.ready`` falls until a response is taken; the responses come in order with the data at
    each request's acceptance."""
    words = 64
    init = list(range(1000, 1000 + words))
    dut = MainMemory(words, latency=latency, init=init, line_words=lines)
    F = lines or 1

    def payload(a, we=0, wd=0):
        if lines:
            return {"addr": a, "we": we, "mask": 1 if we else 0, "wdata": [wd] * F}
        return {"addr": a, "we": we, "wdata": wd}

    def value(a):                    # the word (or line) at address a before any write
        return init[a * F:a * F + F] if lines else init[a]

    async def tb(ctx):
        bus = dut.bus
        ctx.set(bus.rsp.ready, 0)
        accepted = []
        cycle = 0
        addrs = [3, 1, 4, 1, 5, 2, 6]
        while cycle < 3 * latency + 10:
            a = addrs[len(accepted) % len(addrs)]
            ctx.set(bus.req.payload, payload(a))
            ctx.set(bus.req.valid, 1)
            # req.ready settles to the same value whatever rsp.ready is in this cycle
            ctx.set(bus.rsp.ready, 1)
            r1 = ctx.get(bus.req.ready)
            ctx.set(bus.rsp.ready, 0)
            r0 = ctx.get(bus.req.ready)
            assert r0 == r1, f"cycle {cycle}: req.ready follows rsp.ready"
            _, _, ready = await ctx.tick().sample(bus.req.ready)
            if ready:
                accepted.append(a)
            cycle += 1
        assert len(accepted) == latency + 1, accepted
        # a write accepted after them (once a response is taken) must not change their data
        ctx.set(bus.req.payload, payload(accepted[0], we=1, wd=0xABCD))
        ctx.set(bus.rsp.ready, 1)
        got = []
        while len(got) < len(accepted):
            _, _, rv, rd, qr = await ctx.tick().sample(bus.rsp.valid, bus.rsp.payload,
                                                       bus.req.ready)
            if rv:
                got.append(list(rd) if lines else rd)
            if qr:
                ctx.set(bus.req.valid, 0)
        assert got == [value(a) for a in accepted]

    run_sim(dut, tb)
