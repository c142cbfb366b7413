"""Run groups of samples through a :class:`~rtl.softmax.SoftmaxUnit` in Amaranth's Python
simulator.

The driver is the unit's producer and consumer, running concurrently: before each group it waits
until the unit is idle and sets the group's static inputs, then offers the group's rows the way
the vector engine reads them from the scratchpad (the ``C`` rows ``S + 1`` times, class ``j`` of
sample ``s`` in lane ``s`` of row ``j``, random values in the lanes beyond the group; each row
after a random gap when ``p_valid < 1``), while the consumer takes results with a random
``ready`` (when ``p_ready < 1``). It records every result with its sample and ``last`` flag and
the cycle numbers of each group's first row and last result. Tests and
``python -m benchmarks.softmax`` share it.
"""

import random
import time
from dataclasses import dataclass, field

from amaranth.sim import Simulator

from rtl.softmax import SoftmaxMode
from spec.softmax_tables import INV_TEMP_ONE

__all__ = ["SoftmaxGroup", "SoftmaxRun", "simulate_groups"]


@dataclass(frozen=True)
class SoftmaxGroup:
    """One group of samples (one SMX instruction) and the unit's static inputs for it.

    ``logits`` holds one sequence of ``C`` logits per sample (``S`` of them, all of the same
    length); ``targets`` the same shape, default zeros; ``inv_temp`` ``None`` means ``T = 1``.
    The other fields have the meaning of :func:`golden.softmax.softmax_xent_grad`'s arguments.
    """
    logits: tuple
    targets: tuple = None
    mode: SoftmaxMode = SoftmaxMode.PROBS
    z_frac: int = 8
    prob_frac: int = 14
    grad_frac: int = 12
    inv_temp: int = None
    grad_shift: int = 0

    def __post_init__(self):
        logits = tuple(tuple(z) for z in self.logits)
        if not logits or not logits[0] or any(len(z) != len(logits[0]) for z in logits):
            raise ValueError(f"Group logits must be one or more samples of the same positive "
                             f"number of classes, not {self.logits!r}")
        targets = (tuple((0,) * len(z) for z in logits) if self.targets is None
                   else tuple(tuple(t) for t in self.targets))
        if [len(t) for t in targets] != [len(z) for z in logits]:
            raise ValueError(f"Group has logits of shape {len(logits)}×{len(logits[0])} but "
                             f"targets of lengths {[len(t) for t in targets]}")
        object.__setattr__(self, "logits", logits)
        object.__setattr__(self, "targets", targets)

    @property
    def samples(self):
        return len(self.logits)

    @property
    def classes(self):
        return len(self.logits[0])


@dataclass
class SoftmaxRun:
    """What :func:`simulate_groups` observed.

    ``results[g]`` is group ``g``'s list of ``(sample, value, last)`` in output order;
    ``first_in[g]`` and ``last_out[g]`` the cycles (from 0) in which its first row and its last
    result were accepted; ``cycles`` the simulated cycles, ``seconds`` the wall time of the
    simulation.
    """
    results: list = field(default_factory=list)
    first_in: list = field(default_factory=list)
    last_out: list = field(default_factory=list)
    cycles: int = 0
    seconds: float = 0.0

    @property
    def cycles_per_second(self):
        return self.cycles / self.seconds if self.seconds else 0.0


def simulate_groups(dut, groups, *, seed=0, p_valid=1.0, p_ready=1.0, max_cycles=None):
    """Simulate ``groups`` (:class:`SoftmaxGroup`) through ``dut``; return a
    :class:`SoftmaxRun`. Each group sends ``C`` rows per pass, so a group of more than
    ``dut.classes_max`` classes tests the overflow path (``S·min(C, classes_max)`` results).

    Raises :exc:`TimeoutError` if the results have not all come out after ``max_cycles``
    (default: a generous bound from the group sizes and probabilities), and
    :exc:`AssertionError` if a result comes out after the last expected one.
    """
    rng = random.Random(seed)
    ready_rng = random.Random(seed + 1)
    lanes, width = dut.lanes, dut.width
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    n_out = [g.samples * min(g.classes, dut.classes_max) for g in groups]
    if max_cycles is None:
        max_cycles = 100 + sum(100 + 20 * (g.samples + 1) * g.classes
                               for g in groups) / min(p_ready, p_valid)
    run = SoftmaxRun()

    def row(values, j):
        return [values[s][j] if s < len(values) else rng.randint(lo, hi) for s in range(lanes)]

    # Each testbench counts its own ticks; both tick once per cycle from cycle 0, so the count
    # before a tick is the index of the cycle whose clock edge that tick is.
    async def producer(ctx):
        cycle = 0
        for g in groups:
            while ctx.get(dut.busy):
                await ctx.tick()
                cycle += 1
            ctx.set(dut.samples, g.samples)
            ctx.set(dut.mode, g.mode)
            ctx.set(dut.z_frac, g.z_frac)
            ctx.set(dut.prob_frac, g.prob_frac)
            ctx.set(dut.grad_frac, g.grad_frac)
            ctx.set(dut.inv_temp, INV_TEMP_ONE if g.inv_temp is None else g.inv_temp)
            ctx.set(dut.grad_shift, g.grad_shift)
            for p in range(g.samples + 1):
                for j in range(g.classes):
                    while rng.random() >= p_valid:
                        ctx.set(dut.i_row.valid, 0)
                        await ctx.tick()
                        cycle += 1
                    ctx.set(dut.i_row.payload, {"logits": row(g.logits, j),
                                                "targets": row(g.targets, j),
                                                "last": j == g.classes - 1})
                    ctx.set(dut.i_row.valid, 1)
                    while True:
                        _, _, accepted = await ctx.tick().sample(dut.i_row.ready)
                        cycle += 1
                        if accepted:
                            break
                    if p == 0 and j == 0:
                        run.first_in.append(cycle - 1)
                    ctx.set(dut.i_row.valid, 0)

    async def consumer(ctx):
        cycle = 0
        for g, n in enumerate(n_out):
            got = []
            while len(got) < n:
                if cycle >= max_cycles:
                    raise TimeoutError(f"softmax unit: group {g}: {len(got)} of {n} results "
                                       f"after {cycle} cycles (seed {seed})")
                ready = 1 if ready_rng.random() < p_ready else 0
                ctx.set(dut.o_result.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.o_result.valid,
                                                               dut.o_result.payload)
                cycle += 1
                if valid and ready:
                    got.append((payload.sample, payload.value, payload.last))
            run.results.append(got)
            run.last_out.append(cycle - 1)
        run.cycles = cycle
        ctx.set(dut.o_result.ready, 1)
        for _ in range(5):
            _, _, valid = await ctx.tick().sample(dut.o_result.valid)
            assert not valid, f"softmax unit: result beyond the expected {sum(n_out)} (seed {seed})"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    start = time.perf_counter()
    sim.run()
    run.seconds = time.perf_counter() - start
    return run
