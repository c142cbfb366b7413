"""Shared helpers for Amaranth simulation testbenches (async API of Amaranth 0.5).

One place for stream drivers, bus helpers and random back-pressure, so tests do not each grow
their own copies. Add to this module rather than copying a helper into a test file.
"""

import random

from amaranth.sim import Simulator

__all__ = ["run_sim", "stream_put", "stream_get", "random_ready", "bus_read", "bus_write",
           "corrupt_frame"]


def run_sim(dut, *testbenches, background=(), processes=(), clock=1e-6, vcd=None, deadline=None):
    """Simulate ``dut`` with async testbenches and processes.

    ``testbenches`` run to their end; ``background`` testbenches run beside them and stop when
    they have (``add_testbench(..., background=True)``). ``clock``: the period of the ``sync``
    domain's clock in seconds (1 MHz by default), ``None`` for a combinational design (no clock).
    ``vcd``: a path to write a waveform to. ``deadline``: stop after this many seconds of
    simulated time (a hang fails the run instead of looping for ever).
    """
    sim = Simulator(dut)
    if clock is not None:
        sim.add_clock(clock)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    for p in processes:
        sim.add_process(p)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run_until(deadline) if deadline else sim.run()
    else:
        sim.run_until(deadline) if deadline else sim.run()


async def stream_put(ctx, stream, payload, *, max_wait=None):
    """Offer ``payload`` on ``stream`` (a stream interface the testbench drives) until accepted."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    waited = 0
    while True:
        _, _, ready = await ctx.tick().sample(stream.ready)
        if ready:
            break
        waited += 1
        if max_wait is not None and waited > max_wait:
            raise TimeoutError(f"stream not ready after {max_wait} cycles")
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, max_wait=None):
    """Accept one payload from ``stream`` (a stream interface the DUT drives) and return it."""
    ctx.set(stream.ready, 1)
    waited = 0
    while True:
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid:
            break
        waited += 1
        if max_wait is not None and waited > max_wait:
            raise TimeoutError(f"stream not valid after {max_wait} cycles")
    ctx.set(stream.ready, 0)
    return payload


def random_ready(seed, p_ready=0.5):
    """An infinite iterator of 0/1 ``ready`` values, 1 with probability ``p_ready``, seeded."""
    rng = random.Random(seed)
    while True:
        yield 1 if rng.random() < p_ready else 0


async def bus_transfer(ctx, bus, addr, *, we=0, wdata=0, max_wait=1000):
    """One request on a main-memory bus (``rtl.bus.BusSignature``, master side driven by the
    testbench), then wait for its response; returns the response data."""
    ctx.set(bus.req.payload, {"addr": addr, "we": we, "wdata": wdata})
    await stream_put(ctx, bus.req, ctx.get(bus.req.payload), max_wait=max_wait)
    return await stream_get(ctx, bus.rsp, max_wait=max_wait)


async def bus_read(ctx, bus, addr, *, max_wait=1000):
    """Read the word at ``addr`` over a main-memory bus (one request, one response)."""
    return await bus_transfer(ctx, bus, addr, max_wait=max_wait)


async def bus_write(ctx, bus, addr, wdata, *, max_wait=1000):
    """Write ``wdata`` at ``addr`` over a main-memory bus and wait for the acknowledgement."""
    await bus_transfer(ctx, bus, addr, we=1, wdata=wdata, max_wait=max_wait)


def corrupt_frame(rng, frame):
    """A damaged copy of the host-link ``frame`` (``rng``: a :class:`random.Random`): 1–3 flipped
    bits, a cut, an inserted or a deleted byte (never the first byte), or garbage (1–16 random
    bytes, sync bytes included)."""
    kind = rng.randrange(5)
    frame = bytearray(frame)
    if kind == 0:
        for _ in range(rng.randint(1, 3)):
            frame[rng.randrange(1, len(frame))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del frame[rng.randrange(1, len(frame)):]
    elif kind == 2:
        frame.insert(rng.randrange(1, len(frame)), rng.randrange(256))
    elif kind == 3:
        del frame[rng.randrange(1, len(frame))]
    else:
        frame = bytearray(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(frame)
