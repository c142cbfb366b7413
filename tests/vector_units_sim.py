"""Simulation helpers for the vector units (rtl/postproc.py) and their generators (rtl/rng.py).

A test describes *operations*: static inputs plus a list of input beats. :func:`run_ops` streams
them through a unit wired to a :class:`~rtl.rng.Xorshift32Lanes` (random input gaps, random
output back-pressure), and returns what came out, per operation, with the counter and the
generators' next draws after it.
"""

import random
from dataclasses import dataclass, field

import torch
from amaranth.hdl import Elaboratable, Module, Shape
from amaranth.lib import data, wiring

from golden import fixedpoint as fx
from rtl.rng import Xorshift32Lanes
from tests.simutil import random_ready, run_sim

__all__ = ["UnitWithRng", "to_beats", "from_beats", "per_beat", "next_draws", "Packer", "Op",
           "OpResult", "run_ops"]


class UnitWithRng(Elaboratable):
    """A vector unit with its own generator (the vector engine shares one between units)."""

    def __init__(self, unit):
        self.unit = unit
        self.rng = Xorshift32Lanes(unit.lanes)

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        m.submodules.rng = self.rng
        wiring.connect(m, self.rng.port, self.unit.rng)
        return m


def to_beats(t, lanes, pad=0):
    """Split an (M, N) tensor row-major into beats: ``[(lane values, n_valid), ...]``.

    Each row becomes ``ceil(N / lanes)`` beats; the last one of a row is short when ``lanes``
    does not divide ``N`` and its padding lanes hold ``pad`` (a value, or a callable giving one).
    """
    beats = []
    for row in t.tolist():
        for c0 in range(0, len(row), lanes):
            chunk = row[c0:c0 + lanes]
            n = len(chunk)
            chunk += [pad() if callable(pad) else pad for _ in range(lanes - n)]
            beats.append((chunk, n))
    return beats


def per_beat(fn, shape, lanes, outputs):
    """Golden applied beat by beat, so that each lane's generator is drawn in beat order.

    ``fn(r, c0, c1)`` computes the elements ``[r:r+1, c0:c1]`` of one beat of an operation of
    ``shape = (M, N)`` split as :func:`to_beats` splits it, returning ``outputs`` tensors and a
    count. Returns the tensors joined into (M, N) tensors and the sum of the counts."""
    M, N = shape
    parts, count = [torch.zeros(M, N, dtype=torch.int64) for _ in range(outputs)], 0
    for r in range(M):
        for c0 in range(0, N, lanes):
            c1 = min(c0 + lanes, N)
            *tensors, n = fn(r, c0, c1)
            count += n
            for whole, t in zip(parts, tensors):
                whole[r:r + 1, c0:c1] = t
    return (*parts, count)


def next_draws(gen):
    """Each lane's next draw of golden :class:`~golden.fixedpoint.LaneGenerators` ``gen`` (what
    the hardware's generators present)."""
    return [fx.Xorshift32.step(s) for s in gen.states]


def from_beats(lanes_values, n_valids, shape):
    """Inverse of :func:`to_beats`: the valid lanes of each beat, as an (M, N) int64 tensor."""
    flat = [v for vals, n in zip(lanes_values, n_valids) for v in vals[:n]]
    return torch.tensor(flat, dtype=torch.int64).reshape(shape)


class Packer:
    """Fast conversion between payload dicts and the raw bits of a ``StructLayout`` whose fields
    are plain shapes or ``ArrayLayout`` s of plain shapes (``layout.const`` is too slow to call
    every cycle of a long simulation)."""

    def __init__(self, layout):
        self.fields = []                # (name, offset, elem width, elem signed, count or None)
        for name, f in layout:
            shape = f.shape
            if isinstance(shape, data.ArrayLayout):
                elem = Shape.cast(shape.elem_shape)
                self.fields.append((name, f.offset, elem.width, elem.signed, shape.length))
            else:
                s = Shape.cast(shape)
                self.fields.append((name, f.offset, s.width, s.signed, None))

    def pack(self, values):
        bits = 0
        for name, off, w, _, count in self.fields:
            v = values[name]
            m = (1 << w) - 1
            if count is None:
                bits |= (v & m) << off
            else:
                for k, e in enumerate(v):
                    bits |= (e & m) << (off + k * w)
        return bits

    def unpack(self, bits):
        out = {}
        for name, off, w, signed, count in self.fields:
            m, h = (1 << w) - 1, 1 << (w - 1)
            conv = (lambda e: e - (m + 1) if e & h else e) if signed else (lambda e: e)
            if count is None:
                out[name] = conv((bits >> off) & m)
            else:
                out[name] = [conv((bits >> (off + k * w)) & m) for k in range(count)]
        return out


@dataclass
class Op:
    """One operation: static inputs (``{port name: value}``) and input payloads (dicts)."""
    statics: dict
    beats: list
    clear: bool = False             # pulse sat_clr before the operation


@dataclass
class OpResult:
    outputs: list = field(default_factory=list)     # output payloads (dicts)
    sat_count: int = 0                              # the unit's `counter`, after the operation
    counts: dict = None                             # every saturation counter, after it
    rng_draws: list = None                          # each lane's next draw, after the operation
    first_in: int = None                            # cycle the first beat was accepted
    last_out: int = None                            # cycle the last beat was delivered


def run_ops(unit, ops, *, seed, rng_seed=1, p_valid=1.0, p_ready=1.0, latency_log=None,
            counter="sat_count"):
    """Run ``ops`` through ``unit`` (wired to a fresh generator seeded with ``rng_seed``).

    ``p_valid``/``p_ready``: probability that the producer offers a beat / the consumer is ready
    in a cycle (seeded by ``seed``). Statics change only between operations, after the unit has
    drained (``busy`` low). ``latency_log``: a list that receives ``(accept cycle, output cycle)``
    per beat. ``counter``: the saturation counter reported as ``sat_count`` (``counts`` has every
    ``sat_*`` output). Returns one :class:`OpResult` per operation.
    """
    top = UnitWithRng(unit)
    i_pack, o_pack = Packer(unit.in_layout), Packer(unit.out_layout)
    i_bits, o_bits = unit.i.payload.as_value(), unit.o.payload.as_value()
    results = [OpResult() for _ in ops]
    counters = [name for name, member in unit.signature.members.items()
                if name.startswith("sat_") and member.flow == wiring.Out]
    done = [0]                      # operations fully delivered
    accepted = []                   # accept cycle of every beat, in order
    gaps = random.Random(seed)
    ready_seq = random_ready(seed + 1, p_ready)

    # Cycle n lies between clock edges n and n + 1; a value sampled at edge n + 1 is cycle n's.
    async def producer(ctx):
        cycle = 0
        ctx.set(top.rng.seed, rng_seed)
        ctx.set(top.rng.seed_stb, 1)
        await ctx.tick()
        ctx.set(top.rng.seed_stb, 0)
        cycle += 1
        for k, op in enumerate(ops):
            while done[0] < k:
                await ctx.tick()
                cycle += 1
            assert not ctx.get(unit.busy), f"seed {seed}: busy after operation {k - 1}"
            for name, value in op.statics.items():
                ctx.set(getattr(unit, name), value)
            if op.clear:
                ctx.set(unit.sat_clr, 1)
                await ctx.tick()
                cycle += 1
                ctx.set(unit.sat_clr, 0)
            for beat in op.beats:
                while gaps.random() >= p_valid:
                    await ctx.tick()
                    cycle += 1
                ctx.set(i_bits, i_pack.pack(beat))
                ctx.set(unit.i.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(unit.i.ready)
                    cycle += 1
                    if ready:
                        break
                accepted.append(cycle - 1)
                if results[k].first_in is None:
                    results[k].first_in = cycle - 1
                ctx.set(unit.i.valid, 0)

    async def consumer(ctx):
        cycle = 0
        for k, op in enumerate(ops):
            res = results[k]
            while len(res.outputs) < len(op.beats):
                ctx.set(unit.o.ready, next(ready_seq))
                _, _, valid, ready, payload = await ctx.tick().sample(
                    unit.o.valid, unit.o.ready, o_bits)
                cycle += 1
                if valid and ready:
                    res.outputs.append(o_pack.unpack(payload))
                    res.last_out = cycle - 1
                    if latency_log is not None:
                        latency_log.append((accepted[len(latency_log)], cycle - 1))
            ctx.set(unit.o.ready, 0)
            res.counts = {name: ctx.get(getattr(unit, name)) for name in counters}
            res.sat_count = res.counts[counter]
            res.rng_draws = [ctx.get(d) for d in top.rng.port.draws]
            done[0] = k + 1

    run_sim(top, producer, consumer)
    return results
