# amaranth: UnusedElaboratable=no
"""The word-level building blocks of rtl/rounding.py, exhaustively over their inputs: the masks
made by shifting constants and the narrow barrel shifter (the units' tests cover them only at
the units' own widths)."""

import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned

from rtl.rounding import _one_hot, _ones_from, shift_right_bits
from tests.simutil import run_sim


def _comb_values(build, inputs, cases):
    """Evaluate comb outputs ``build(m, *inputs)`` for each tuple of input values in ``cases``."""
    m = Module()
    outs = build(m, *inputs)
    results = []

    async def tb(ctx):
        for case in cases:
            for sig, v in zip(inputs, case):
                ctx.set(sig, v)
            results.append(tuple(ctx.get(o) for o in outs))

    run_sim(m, tb, clock=None)
    return results


@pytest.mark.parametrize("width", [1, 2, 5, 19, 32, 33, 40, 64, 65])
@pytest.mark.parametrize("amount_bits", [1, 3, 6, 7])
def test_ones_from_and_one_hot(width, amount_bits):
    amount = Signal(amount_bits)

    def build(m, a):
        ones, hot = Signal(width), Signal(width)
        m.d.comb += [ones.eq(_ones_from(a, width)), hot.eq(_one_hot(a, width))]
        return ones, hot

    values = list(range(1 << amount_bits))
    got = _comb_values(build, [amount], [(v,) for v in values])
    for v, (ones, hot) in zip(values, got):
        assert ones == sum(1 << i for i in range(width) if i >= v), (width, v)
        assert hot == ((1 << v) if v < width else 0), (width, v)


@pytest.mark.parametrize("shape, out_width", [
    (signed(34), 16), (signed(50), 18), (unsigned(20), 8), (signed(5), 7), (unsigned(3), 1),
])
def test_shift_right_bits(shape, out_width):
    value, amount = Signal(shape), Signal(6)

    def build(m, v, a):
        out = Signal(out_width)
        m.d.comb += out.eq(shift_right_bits(m, v, a, out_width, "shr"))
        return (out,)

    rng = random.Random(shape.width * 100 + out_width)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
    cases = [(v, a) for v in {lo, hi, 0, -1 if shape.signed else 1,
                              *(rng.randint(lo, hi) for _ in range(12))}
             for a in range(64)]
    got = _comb_values(build, [value, amount], cases)
    for (v, a), (out,) in zip(cases, got):
        assert out == (v >> a) & ((1 << out_width) - 1), (v, a)
