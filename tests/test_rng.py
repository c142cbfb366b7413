# amaranth: UnusedElaboratable=no
"""Xorshift32Lanes (rtl/rng.py) against golden.fixedpoint.Xorshift32."""

import random

import pytest
from amaranth.hdl import Shape, unsigned

from golden.fixedpoint import Xorshift32
from rtl.rng import RngSignature, Xorshift32Lanes, xorshift32_matrix
from tests.simutil import run_sim


def golden_peek(state, n):
    """The next ``n`` draws after ``state``, without disturbing anything."""
    return [int(d) for d in Xorshift32(state).draw(n)]


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
    assert Shape.cast(dut.port.advance.shape()) == unsigned(3)     # 0..5
    assert dut.state.init == 1 and len(dut.seed) == 32


@pytest.mark.parametrize("steps", [1, 2, 3, 8, 33])
def test_matrix_is_golden(steps):
    rnd = random.Random(steps)
    rows = xorshift32_matrix(steps)
    for _ in range(200):
        s = rnd.randrange(1, 1 << 32)
        got = sum((bin(row & s).count("1") & 1) << j for j, row in enumerate(rows))
        assert got == golden_peek(s, steps)[-1], f"state {s:#x}"


def run_random(lanes, cycles, seed):
    """Random seeds loaded at random times; a random advance every cycle; checked every cycle."""
    dut = Xorshift32Lanes(lanes)
    rnd = random.Random(seed)

    async def tb(ctx):
        state = 1                       # reset state
        for cycle in range(cycles):
            draws = [ctx.get(d) for d in dut.port.draws]
            assert draws == golden_peek(state, lanes), f"seed {seed}, cycle {cycle}"
            assert ctx.get(dut.state) == state, f"seed {seed}, cycle {cycle}"
            n = rnd.randint(0, lanes)
            load = rnd.random() < 0.02
            new_seed = rnd.randrange(1, 1 << 32)
            ctx.set(dut.port.advance, n)
            ctx.set(dut.seed, new_seed)
            ctx.set(dut.seed_stb, load)
            await ctx.tick()
            # A load wins over the advance of the same cycle.
            state = new_seed if load else ([state] + golden_peek(state, lanes))[n]

    run_sim(dut, tb)


@pytest.mark.parametrize("lanes, cycles", [(4, 2000), (1, 300), (7, 300)])
def test_random_advance(lanes, cycles):
    run_random(lanes, cycles, seed=1000 + lanes)


def test_stream_equals_golden_sequence():
    """Taking draws in any chunking yields golden's one sequence (seed 0xDEADBEEF)."""
    lanes, seed = 8, 0xDEADBEEF
    dut = Xorshift32Lanes(lanes)
    rnd = random.Random(7)
    want = [int(d) for d in Xorshift32(seed).draw(1000)]

    async def tb(ctx):
        ctx.set(dut.seed, seed)
        ctx.set(dut.seed_stb, 1)
        await ctx.tick()
        ctx.set(dut.seed_stb, 0)
        got = []
        while len(got) < len(want):
            n = rnd.randint(0, lanes)
            got += [ctx.get(d) for d in dut.port.draws[:n]]
            ctx.set(dut.port.advance, n)
            await ctx.tick()
        assert got[:len(want)] == want

    run_sim(dut, tb)
