# amaranth: UnusedElaboratable=no
"""Xorshift32Lanes (rtl/rng.py) against golden.fixedpoint.LaneGenerators, and the lanes'
independence (spec/rng.py)."""

import random

import numpy as np
import pytest
from amaranth.hdl import Shape, unsigned

from golden.fixedpoint import LaneGenerators, Xorshift32
from golden.mlp import rng_seed
from rtl.rng import RngSignature, Xorshift32Lanes, xorshift32_step
from spec.rng import lane_seed
from tests.simutil import run_sim


def next_draws(gen):
    """Each lane's next draw (what the hardware presents), without disturbing ``gen``."""
    return [Xorshift32.step(s) for s in gen.states]


@pytest.mark.parametrize("cls", [Xorshift32Lanes, RngSignature])
@pytest.mark.parametrize("lanes, exc, msg", [
    (0, ValueError, r"^Generator lanes must be a positive integer, not 0$"),
    (-2, ValueError, r"^Generator lanes must be a positive integer, not -2$"),
    ("4", TypeError, r"^Generator lanes must be a positive integer, not '4'$"),
    (True, TypeError, r"^Generator lanes must be a positive integer, not True$"),
    (4.0, TypeError, r"^Generator lanes must be a positive integer, not 4.0$"),
])
def test_constructor_validation(cls, lanes, exc, msg):
    with pytest.raises(exc, match=msg):
        cls(lanes)


def test_ports():
    dut = Xorshift32Lanes(5)
    assert dut.lanes == 5
    assert dut.signature.members["port"].signature.flip() == RngSignature(5)
    assert RngSignature(5) != RngSignature(4) and repr(RngSignature(5)) == "RngSignature(5)"
    assert len(dut.port.draws) == 5 and all(len(d) == 32 for d in dut.port.draws)
    assert Shape.cast(dut.port.advance.shape()) == unsigned(5)     # a bit per lane
    assert len(dut.seed) == 32


def step_lane(gen, lane):
    """Advance lane ``lane`` of golden ``gen`` by one draw."""
    gen.states[lane] = Xorshift32.step(gen.states[lane])


def run_random(lanes, cycles, seed):
    """Random seeds loaded at random times; a random advance mask every cycle; every lane's
    draw checked every cycle against golden."""
    dut = Xorshift32Lanes(lanes)
    rnd = random.Random(seed)
    # seeds that would zero a lane's state (seed == l·stride) come up on purpose
    special = [lane_seed(1, l) ^ 1 for l in range(1, lanes)]

    async def tb(ctx):
        gen = LaneGenerators(1, lanes)                  # the reset state: as after SEED 1
        for cycle in range(cycles):
            draws = [ctx.get(d) for d in dut.port.draws]
            assert draws == next_draws(gen), f"seed {seed}, cycle {cycle}"
            adv = rnd.randrange(1 << lanes)
            load = rnd.random() < 0.03
            if special and rnd.random() < 0.3:
                new_seed = rnd.choice(special)
            else:
                new_seed = rnd.randrange(1, 1 << 32)
            ctx.set(dut.port.advance, adv)
            ctx.set(dut.seed, new_seed)
            ctx.set(dut.seed_stb, load)
            await ctx.tick()
            if load:                                    # a load wins over the advance
                gen = LaneGenerators(new_seed, lanes)
            else:
                for l in range(lanes):
                    if adv >> l & 1:
                        step_lane(gen, l)

    run_sim(dut, tb)


@pytest.mark.parametrize("lanes, cycles", [(4, 2000), (1, 300), (8, 600)])
def test_random_advance(lanes, cycles):
    run_random(lanes, cycles, seed=1000 + lanes)


def test_seed_zeroing_a_lane_gives_it_state_one():
    c2 = lane_seed(1, 2) ^ 1                            # 2 · LANE_SEED_STRIDE
    dut = Xorshift32Lanes(3)

    async def tb(ctx):
        ctx.set(dut.seed, c2)
        ctx.set(dut.seed_stb, 1)
        await ctx.tick()
        assert ctx.get(dut.port.draws[2]) == Xorshift32.step(1)
        assert ctx.get(dut.port.draws[0]) == Xorshift32.step(c2)

    run_sim(dut, tb)


def test_step_network_is_golden():
    """xorshift32_step is one golden step (checked through lane 0, whose state is the seed)."""
    rnd = random.Random(5)
    states = [rnd.randrange(1, 1 << 32) for _ in range(200)] + [1, 0xFFFF_FFFF, 0x8000_0000]
    dut = Xorshift32Lanes(1)
    got = []

    async def tb(ctx):
        for st in states:
            ctx.set(dut.seed, st)
            ctx.set(dut.seed_stb, 1)
            await ctx.tick()
            ctx.set(dut.seed_stb, 0)
            ctx.set(dut.port.advance, 1)
            await ctx.tick()
            ctx.set(dut.port.advance, 0)
            got.append(ctx.get(dut.port.draws[0]))

    run_sim(dut, tb)
    assert got == [Xorshift32.step(Xorshift32.step(st)) for st in states]


# --- the lanes are not near copies of each other (spec/rng.py) ---------------------------------

LAG = 1 << 16


@pytest.mark.parametrize("seed", [rng_seed(s) for s in range(5)] + [1, 0xDEADBEEF])
def test_no_lane_is_a_near_shift_of_another(seed):
    """Every lane's stream is a shift of one cycle of 2**32 − 1 states; for the seeds the
    trainers use, no lane's starting state lies within the first 2**16 draws of another's, so no
    two lanes are within 2**16 draws of each other (either direction)."""
    gen = LaneGenerators(seed, 8)
    starts = list(gen.states)
    draws = gen.draw(LAG).numpy()
    for l in range(8):
        others = np.delete(draws, l, axis=1)
        assert not np.isin(starts[l], others), f"seed {seed:#x}: lane {l} near another lane"


def neighbour_correlations(draws, n):
    """|Pearson r| of the rounding bits (low 8 bits) of lanes l and l + 1 at lags −2..2, for every
    l, over ``n`` draws of ``draws`` ((n + 4, lanes) array)."""
    low = (draws & 0xFF).astype(np.float64)
    return [abs(np.corrcoef(low[2:2 + n, l], low[2 + lag:2 + lag + n, l + 1])[0, 1])
            for l in range(draws.shape[1] - 1) for lag in range(-2, 3)]


def test_neighbouring_lanes_uncorrelated():
    """|r| < 5/sqrt(n) over n = 2**14 draws, for each pair of neighbours and each lag."""
    n = 1 << 14
    bound = 5 / np.sqrt(n)
    assert max(neighbour_correlations(LaneGenerators(rng_seed(0), 8).draw(n + 4).numpy(), n)) \
        < bound
    # the check can fail: lanes seeded with consecutive states (lane 1 one step ahead of lane 0)
    lane0 = Xorshift32(rng_seed(0)).draw(n + 5).numpy()
    bad = np.stack([lane0[:-1], lane0[1:]], axis=1)
    assert max(neighbour_correlations(bad, n)) > 0.99
