"""Run samples through a :class:`~rtl.softmax.SoftmaxUnit` in Amaranth's Python simulator.

The driver is the unit's producer and consumer, running concurrently: before each sample it waits
until the unit is idle and sets the sample's static inputs, then offers the beats (each after a
random gap when ``p_valid < 1``), while the consumer takes results with a random ``ready`` (when
``p_ready < 1``). It records every result with its ``last`` flag and the cycle numbers of each
sample's first input beat and last result. Tests and ``python -m benchmarks.softmax`` share it.
"""

import random
import time
from dataclasses import dataclass, field

from amaranth.sim import Simulator

from rtl.softmax import SoftmaxMode
from spec.softmax_tables import INV_TEMP_ONE

__all__ = ["SoftmaxSample", "SoftmaxRun", "simulate_samples"]


@dataclass(frozen=True)
class SoftmaxSample:
    """One sample and the unit's static inputs for it.

    ``targets`` defaults to zeros; ``inv_temp`` ``None`` means ``T = 1``. The fields have the
    meaning of :func:`golden.softmax.softmax_xent_grad`'s arguments.
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
        object.__setattr__(self, "logits", tuple(self.logits))
        targets = (0,) * len(self.logits) if self.targets is None else tuple(self.targets)
        if len(targets) != len(self.logits):
            raise ValueError(f"Sample has {len(self.logits)} logits but {len(targets)} targets")
        object.__setattr__(self, "targets", targets)


@dataclass
class SoftmaxRun:
    """What :func:`simulate_samples` observed.

    ``results[i]`` is sample ``i``'s list of ``(value, last)``; ``first_in[i]`` and
    ``last_out[i]`` the cycles (from 0) in which its first beat and its last result were accepted;
    ``cycles`` the simulated cycles, ``seconds`` the wall time of the simulation.
    """
    results: list = field(default_factory=list)
    first_in: list = field(default_factory=list)
    last_out: list = field(default_factory=list)
    cycles: int = 0
    seconds: float = 0.0

    @property
    def cycles_per_second(self):
        return self.cycles / self.seconds if self.seconds else 0.0


def simulate_samples(dut, samples, *, seed=0, p_valid=1.0, p_ready=1.0, max_cycles=None):
    """Simulate ``samples`` (:class:`SoftmaxSample`) through ``dut``; return a :class:`SoftmaxRun`.

    Raises :exc:`TimeoutError` if the results have not all come out after ``max_cycles``
    (default: a generous bound from the sample sizes and probabilities), and
    :exc:`AssertionError` if a result comes out after the last expected one.
    """
    rng = random.Random(seed)
    ready_rng = random.Random(seed + 1)
    n_out = sum(len(s.logits) for s in samples)
    if max_cycles is None:
        max_cycles = 100 + sum(100 + 10 * len(s.logits) for s in samples) / min(p_ready, p_valid)
    run = SoftmaxRun()

    # Each testbench counts its own ticks; both tick once per cycle from cycle 0, so the count
    # before a tick is the index of the cycle whose clock edge that tick is.
    async def producer(ctx):
        cycle = 0
        for s in samples:
            while ctx.get(dut.busy):
                await ctx.tick()
                cycle += 1
            ctx.set(dut.mode, s.mode)
            ctx.set(dut.z_frac, s.z_frac)
            ctx.set(dut.prob_frac, s.prob_frac)
            ctx.set(dut.grad_frac, s.grad_frac)
            ctx.set(dut.inv_temp, INV_TEMP_ONE if s.inv_temp is None else s.inv_temp)
            ctx.set(dut.grad_shift, s.grad_shift)
            for i, (z, t) in enumerate(zip(s.logits, s.targets)):
                while rng.random() >= p_valid:
                    ctx.set(dut.i_logit.valid, 0)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.i_logit.payload, {"logit": z, "target": t,
                                              "last": i == len(s.logits) - 1})
                ctx.set(dut.i_logit.valid, 1)
                while True:
                    _, _, accepted = await ctx.tick().sample(dut.i_logit.ready)
                    cycle += 1
                    if accepted:
                        break
                if i == 0:
                    run.first_in.append(cycle - 1)
                ctx.set(dut.i_logit.valid, 0)

    async def consumer(ctx):
        cycle, got, row = 0, 0, []
        while got < n_out:
            if cycle >= max_cycles:
                raise TimeoutError(f"softmax unit: {got} of {n_out} results after {cycle} cycles "
                                   f"(seed {seed})")
            ready = 1 if ready_rng.random() < p_ready else 0
            ctx.set(dut.o_result.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o_result.valid,
                                                           dut.o_result.payload)
            cycle += 1
            if valid and ready:
                got += 1
                row.append((payload.value, payload.last))
                if payload.last:
                    run.results.append(row)
                    run.last_out.append(cycle - 1)
                    row = []
        if row:
            run.results.append(row)     # a sample without its last flag
        run.cycles = cycle
        ctx.set(dut.o_result.ready, 1)
        for _ in range(5):
            _, _, valid = await ctx.tick().sample(dut.o_result.valid)
            assert not valid, f"softmax unit: result beyond the expected {n_out} (seed {seed})"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    start = time.perf_counter()
    sim.run()
    run.seconds = time.perf_counter() - start
    return run
