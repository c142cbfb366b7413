"""SkidBuffer and ReadyBuffer in simulation: order and count under random back-pressure, full
throughput, and which combinational paths cross them (the formal proofs are in
tests/test_formal.py)."""

import random

import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data

from rtl.skid import ReadyBuffer, SkidBuffer
from tests.simutil import random_ready, run_sim, stream_put

#: Beats per random run.
BEATS = 2000


def _transfer(dut, beats, *, seed, p_valid, p_ready, readies=None):
    """Send ``beats`` through ``dut`` with a random producer (a gap before a beat with
    probability 1 - ``p_valid``) and a random consumer (``o.ready`` with probability
    ``p_ready``, or the consumer's ``ready`` in each cycle from ``readies``); returns the beats
    received and the cycle of each."""
    rng = random.Random(seed)
    received, cycles = [], []

    async def producer(ctx):
        for beat in beats:
            while rng.random() >= p_valid:
                await ctx.tick()
            await stream_put(ctx, dut.i, beat, max_wait=1000)

    async def consumer(ctx):
        cycle = 0
        for ready in readies if readies is not None else random_ready(seed + 1, p_ready):
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if valid and ready:
                received.append(payload)
                cycles.append(cycle)
            if len(received) == len(beats) or cycle > 100 * len(beats) + 100:
                return

    run_sim(dut, producer, consumer)
    return received, cycles


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("p_valid,p_ready", [(0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (1.0, 0.5)])
def test_random_handshakes_keep_every_beat_in_order(seed, p_valid, p_ready):
    rng = random.Random(seed)
    beats = [rng.randrange(1 << 16) for _ in range(BEATS)]
    received, _ = _transfer(SkidBuffer(unsigned(16)), beats, seed=seed, p_valid=p_valid,
                            p_ready=p_ready)
    assert received == beats, f"seed {seed}: {len(received)} beats received of {len(beats)}"


def test_full_throughput_when_the_consumer_is_always_ready():
    beats = list(range(200))
    received, cycles = _transfer(SkidBuffer(8), beats, seed=0, p_valid=1.0, p_ready=1.0)
    assert received == beats
    # One beat per cycle, latency one: the first beat out in the cycle after it went in.
    assert cycles == list(range(2, 2 + len(beats)))


def test_struct_payload():
    layout = data.StructLayout({"value": unsigned(7), "last": unsigned(1)})
    beats = [{"value": v % 128, "last": int(v % 5 == 0)} for v in range(300)]
    received, _ = _transfer(SkidBuffer(layout), beats, seed=4, p_valid=0.7, p_ready=0.6)
    assert [{"value": r.value, "last": r.last} for r in received] == beats


class ReadyFollowsConsumer(SkidBuffer):
    """A broken variant for the check below: ``i.ready`` also follows ``o.ready``."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(self.skid_empty | self.o.ready)
        return m


def _combinational_paths(dut, seed, cycles=400):
    """Which of ``i.ready``, ``o.valid``, ``o.payload`` changed within a cycle when the other
    side's inputs (``i.valid``, ``i.payload``, ``o.ready``) did, over random cycles."""
    rng = random.Random(seed)
    changed = set()
    outputs = {"i.ready": dut.i.ready, "o.valid": dut.o.valid, "o.payload": dut.o.payload}

    def drive(ctx, inputs):
        ctx.set(dut.i.valid, inputs[0])
        ctx.set(dut.i.payload, inputs[1])
        ctx.set(dut.o.ready, inputs[2])
        return {name: ctx.get(sig) for name, sig in outputs.items()}

    async def bench(ctx):
        for _ in range(cycles):
            chosen = (rng.randrange(2), rng.randrange(256), rng.randrange(2))
            for _ in range(3):
                other = (rng.randrange(2), rng.randrange(256), rng.randrange(2))
                first, second = drive(ctx, other), drive(ctx, chosen)
                changed.update(name for name in outputs if first[name] != second[name])
            await ctx.tick()

    run_sim(dut, bench)
    return changed


def test_no_combinational_path_between_the_sides():
    assert _combinational_paths(SkidBuffer(8), seed=5) == set()
    # The check sees a path when there is one.
    assert _combinational_paths(ReadyFollowsConsumer(8), seed=5) == {"i.ready"}


@pytest.mark.parametrize("cls,what", [(SkidBuffer, "Skid buffer"), (ReadyBuffer, "Ready buffer")])
@pytest.mark.parametrize("shape,exc,message", [
    ("x", TypeError, "payload shape must be a shape-castable object, not 'x'"),
    (True, TypeError, "payload shape must be a shape-castable object, not True"),
    (None, TypeError, "payload shape must be a shape-castable object, not None"),
    (-1, ValueError, "payload width must be a non-negative integer, not -1"),
])
def test_payload_shape_is_checked(cls, what, shape, exc, message):
    with pytest.raises(exc) as info:
        cls(shape)
    assert str(info.value) == f"{what} {message}"


@pytest.mark.parametrize("cls", [SkidBuffer, ReadyBuffer])
def test_payload_shape_is_kept(cls):
    layout = data.StructLayout({"a": 3})
    assert cls(layout).payload_shape is layout
    assert cls(range(10)).payload_shape == range(10)


# --- ReadyBuffer ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("p_valid,p_ready", [(0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (1.0, 0.5)])
def test_ready_buffer_keeps_every_beat_in_order(seed, p_valid, p_ready):
    rng = random.Random(seed)
    beats = [rng.randrange(1 << 16) for _ in range(BEATS)]
    received, _ = _transfer(ReadyBuffer(unsigned(16)), beats, seed=seed, p_valid=p_valid,
                            p_ready=p_ready)
    assert received == beats, f"seed {seed}: {len(received)} beats received of {len(beats)}"


def test_ready_buffer_adds_no_latency():
    beats = list(range(200))
    received, cycles = _transfer(ReadyBuffer(8), beats, seed=0, p_valid=1.0, p_ready=1.0)
    assert received == beats
    # One beat per cycle, each out in the cycle it went in.
    assert cycles == list(range(1, 1 + len(beats)))


@pytest.mark.parametrize("seed", [1, 2])
def test_ready_buffer_transfers_in_the_cycles_a_direct_connection_would(seed):
    # A producer that always has a beat: directly connected, a beat would go in every cycle
    # in which the consumer is ready. Through the buffer it is the same cycles.
    rng = random.Random(seed)
    readies = [rng.random() < 0.4 for _ in range(2000)]
    beats = list(range(300))
    received, cycles = _transfer(ReadyBuffer(16), beats, seed=seed, p_valid=1.0, p_ready=None,
                                 readies=readies)
    assert received == beats
    assert cycles == [c + 1 for c, ready in enumerate(readies) if ready][:len(beats)]


def test_ready_buffer_struct_payload():
    layout = data.StructLayout({"value": unsigned(7), "last": unsigned(1)})
    beats = [{"value": v % 128, "last": int(v % 5 == 0)} for v in range(300)]
    received, _ = _transfer(ReadyBuffer(layout), beats, seed=4, p_valid=0.7, p_ready=0.6)
    assert [{"value": r.value, "last": r.last} for r in received] == beats


class ReadyBufferReadyFollowsConsumer(ReadyBuffer):
    """A broken variant for the check below: ``i.ready`` also follows ``o.ready``."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(self.empty | self.o.ready)
        return m


def test_ready_buffer_registers_the_ready_path_only():
    # valid and payload pass through; the consumer's ready reaches the producer through none
    assert _combinational_paths(ReadyBuffer(8), seed=6) == {"o.valid", "o.payload"}
    assert _combinational_paths(ReadyBufferReadyFollowsConsumer(8), seed=6) == {
        "i.ready", "o.valid", "o.payload"}
