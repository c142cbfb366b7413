"""golden/fixedpoint.py against plain-Python integer references (no torch in the references)."""

import math
import random
from fractions import Fraction

import pytest
import torch

from golden.fixedpoint import (LaneGenerators, Xorshift32, dequantize, int_gemm, quantize, relu,
                               relu_backward, relu_mask, requantize, requantize_act, round_shift,
                               saturate, sgd_update, wrap)
from spec.params import QFormat

MASK32 = 0xFFFF_FFFF


# --- plain-Python references -------------------------------------------------------------------

def ref_step(x):
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


def ref_draws(seed, n):
    out, x = [], seed
    for _ in range(n):
        x = ref_step(x)
        out.append(x)
    return out


def ref_round_even(x, shift):
    """x / 2**shift rounded half to even (Python's round() on an exact Fraction does that)."""
    return round(Fraction(x, 1 << shift))


def ref_round_stochastic(x, shift, draw):
    return (x + (draw & ((1 << shift) - 1))) >> shift     # >> on int is floor division


def ref_wrap(x, width):
    return (x + (1 << (width - 1))) % (1 << width) - (1 << (width - 1))


def ref_saturate(x, width):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return min(max(x, lo), hi), not lo <= x <= hi


def t(values):
    return torch.tensor(values, dtype=torch.int64)


def edge_values():
    """Most negative/positive 32- and 16-bit values, their neighbours, small values."""
    vals = {0, 1, -1, 2, -2, 3, -3, 5, -5}
    for w in (16, 17, 32):
        vals |= {-(1 << (w - 1)), -(1 << (w - 1)) + 1, (1 << (w - 1)) - 1, 1 << (w - 1)}
    return sorted(vals)


# --- Xorshift32 --------------------------------------------------------------------------------

def test_xorshift_known_values():
    # Marsaglia's xorshift32 (13, 17, 5) from state 1, stepped by hand.
    assert Xorshift32(1).draw(3).tolist() == [270369, 67634689, 2647435461]
    assert ref_draws(1, 3) == [270369, 67634689, 2647435461]


@pytest.mark.parametrize("seed", [1, 2, 0xDEADBEEF, MASK32])
@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 100, 4095, 4096, 4097, 9000])
def test_xorshift_draw_equals_steps(seed, n):
    rng = Xorshift32(seed)
    want = ref_draws(seed, n)
    assert rng.draw(n).tolist() == want, f"seed={seed} n={n}"
    assert rng.state == (want[-1] if n else seed)


@pytest.mark.parametrize("seed", [7, 12345])
def test_xorshift_mixed_sizes_form_one_stream(seed):
    """Consecutive draws of different sizes (across the 4096-draw blocks) continue one stream."""
    sizes = random.Random(seed).choices([1, 5, 64, 65, 300, 4096, 5000], k=12)
    rng = Xorshift32(seed)
    got = torch.cat([rng.draw(n) for n in sizes]).tolist()
    assert got == ref_draws(seed, sum(sizes)), f"seed={seed} sizes={sizes}"
    assert all(0 < d <= MASK32 for d in got)


def test_xorshift_validation():
    for seed in (0, 1 << 32, -1):
        with pytest.raises(ValueError, match=rf"^Xorshift32 seed must be in 1..2\*\*32-1, not {seed}$"):
            Xorshift32(seed)
    with pytest.raises(TypeError, match=r"^Xorshift32 seed must be an integer, not '1'$"):
        Xorshift32("1")
    with pytest.raises(ValueError, match=r"^Number of draws must be non-negative, not -1$"):
        Xorshift32().draw(-1)
    with pytest.raises(TypeError, match=r"^Number of draws must be an integer, not 2.0$"):
        Xorshift32().draw(2.0)


# --- LaneGenerators ---------------------------------------------------------------------------

def ref_lane_seed(seed, lane):
    """spec/rng.py's derivation, written out: seed ^ lane·0x6A09E667 (mod 2**32), 1 if zero."""
    return (seed ^ ((lane * 0x6A09E667) & MASK32)) or 1


def test_lane_generators_seeds():
    assert LaneGenerators(1, 3).states == [1, 0x6A09E666, 0xD413CCCF]
    assert LaneGenerators(0xDEADBEEF, 8).states == [ref_lane_seed(0xDEADBEEF, l) for l in range(8)]
    # the seed that would make lane 2's state zero gives it state 1
    assert LaneGenerators(0xD413CCCE, 3).states == [0xD413CCCE, 0xBE1A2AA9, 1]


@pytest.mark.parametrize("rows", [0, 1, 64, 65, 785, 5000])
def test_lane_generators_draw_per_lane(rows):
    gen = LaneGenerators(0xC0FFEE, 5)
    got = gen.draw(rows, 3)
    assert got.shape == (rows, 3)
    for l in range(3):
        want = ref_draws(ref_lane_seed(0xC0FFEE, l), rows)
        assert got[:, l].tolist() == want, f"lane {l}"
        assert gen.states[l] == (want[-1] if rows else ref_lane_seed(0xC0FFEE, l))
    # lanes without an element do not step
    assert gen.states[3:] == [ref_lane_seed(0xC0FFEE, l) for l in (3, 4)]


def test_round_shift_lane_generators_assignment():
    """The element in row r and lane l takes draw r of generator l; rows of fewer lanes leave
    the other generators where they are."""
    rnd = random.Random(3)
    xs = [[rnd.randint(-(1 << 34), 1 << 34) for _ in range(3)] for _ in range(4)]
    gen = LaneGenerators(77, 4)
    got = round_shift(t(xs), 9, "stochastic", gen)
    draws = [ref_draws(ref_lane_seed(77, l), 4) for l in range(3)]
    want = [[ref_round_stochastic(x, 9, draws[l][r]) for l, x in enumerate(row)]
            for r, row in enumerate(xs)]
    assert got.tolist() == want
    assert gen.states == [draws[0][-1], draws[1][-1], draws[2][-1], ref_lane_seed(77, 3)]
    with pytest.raises(ValueError, match=r"^5 lanes of elements but 4 generators$"):
        round_shift(torch.zeros(2, 5, dtype=torch.int64), 1, "stochastic", gen)
    assert round_shift(torch.zeros(0, 3, dtype=torch.int64), 1, "stochastic", gen).shape == (0, 3)


def test_lane_generators_validation():
    with pytest.raises(ValueError, match=r"^Xorshift32 seed must be in 1..2\*\*32-1, not 0$"):
        LaneGenerators(0, 4)
    with pytest.raises(ValueError, match=r"^Generator lanes must be a positive integer, not 0$"):
        LaneGenerators(1, 0)
    with pytest.raises(ValueError, match=r"^Lanes drawn must be in 0..4, not 5$"):
        LaneGenerators(1, 4).draw(1, 5)
    with pytest.raises(ValueError, match=r"^Number of draws must be non-negative, not -1$"):
        LaneGenerators(1, 4).draw(-1)


# --- wrap, saturate ----------------------------------------------------------------------------

def test_wrap_and_saturate():
    xs = edge_values() + [1 << 40, -(1 << 40) - 3]
    for width in (2, 16, 32, 62):
        assert wrap(t(xs), width).tolist() == [ref_wrap(x, width) for x in xs], width
        y, n = saturate(t(xs), width)
        ref = [ref_saturate(x, width) for x in xs]
        assert y.tolist() == [v for v, _ in ref] and n == sum(s for _, s in ref), width


@pytest.mark.parametrize("fn", [wrap, lambda x, w: saturate(x, w)])
def test_width_validation(fn):
    with pytest.raises(ValueError, match=r"^Width must be a positive integer, not 0$"):
        fn(t([1]), 0)
    with pytest.raises(ValueError, match=r"^Width must be between 2 and 62 bits, not 1$"):
        fn(t([1]), 1)
    with pytest.raises(ValueError, match=r"^Width must be between 2 and 62 bits, not 63$"):
        fn(t([1]), 63)
    with pytest.raises(TypeError, match=r"^Width must be a positive integer, not 16.0$"):
        fn(t([1]), 16.0)
    with pytest.raises(TypeError, match=r"^Value must be an integer tensor, not a tensor of torch.float32$"):
        fn(torch.tensor([1.0]), 16)


# --- round_shift / requantize, nearest-even ----------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_requantize_nearest_even_random(seed):
    rng = random.Random(seed)
    for _ in range(20):
        shift, width = rng.randint(0, 32), rng.choice([2, 8, 16, 24])
        xs = [rng.randint(-(1 << 40), 1 << 40) for _ in range(50)] \
            + [rng.randint(-(1 << 20), 1 << 20) for _ in range(50)]
        y, n = requantize(t(xs), shift, width)
        ref = [ref_saturate(ref_round_even(x, shift), width) for x in xs]
        assert y.tolist() == [v for v, _ in ref], f"seed={seed} shift={shift} width={width}"
        assert n == sum(s for _, s in ref), f"seed={seed} shift={shift} width={width}"


@pytest.mark.parametrize("shift", [0, 1, 2, 8, 15, 16, 31, 32])
def test_round_shift_edges_and_ties(shift):
    xs = edge_values()
    if shift:
        # Exact ties (m + 1/2) for even and odd m, positive and negative, and their neighbours.
        half = 1 << (shift - 1)
        for m in (-4, -3, -2, -1, 0, 1, 2, 3, 1 << 20, -(1 << 20) - 1):
            tie = m * (1 << shift) + half
            xs += [tie - 1, tie, tie + 1]
    got = round_shift(t(xs), shift).tolist()
    assert got == [ref_round_even(x, shift) for x in xs]
    if shift == 0:
        assert got == xs
    if shift == 32:     # ±2**31 are ±0.5: both round to 0; 3·2**31 = 1.5 rounds to 2
        assert round_shift(t([1 << 31, -(1 << 31), 3 << 31, -(3 << 31)]), 32).tolist() == [0, 0, 2, -2]


def test_requantize_saturation_edges():
    # The most negative 32-bit value, shifted by 15, is -65536: below int16, saturates.
    y, n = requantize(t([-(1 << 31), (1 << 31) - 1, -(1 << 30), 1 << 30]), 15, 16)
    assert y.tolist() == [-32768, 32767, -32768, 32767] and n == 3
    # Rounding up into overflow: 32767.5 rounds to 32768 (even), which saturates.
    y, n = requantize(t([65535, 65533]), 1, 16)     # 32766.5 rounds to 32766 (even)
    assert y.tolist() == [32767, 32766] and n == 1
    # -32768.5 rounds to -32768 (even): no saturation.
    y, n = requantize(t([-65537]), 1, 16)
    assert y.tolist() == [-32768] and n == 0


def test_round_shift_validation():
    with pytest.raises(ValueError, match=r"^Shift must be between 0 and 32, not 33$"):
        round_shift(t([1]), 33)
    with pytest.raises(ValueError, match=r"^Shift must be between 0 and 32, not -1$"):
        round_shift(t([1]), -1)
    with pytest.raises(TypeError, match=r"^Shift must be an integer, not 1.5$"):
        round_shift(t([1]), 1.5)
    with pytest.raises(ValueError, match=r"^Rounding must be one of 'nearest-even', 'stochastic', not 'up'$"):
        round_shift(t([1]), 1, "up")
    with pytest.raises(TypeError, match=r"^Stochastic rounding needs an Xorshift32 or LaneGenerators, "
                       r"not None$"):
        round_shift(t([1]), 1, "stochastic")
    with pytest.raises(TypeError, match=r"^Value must be an integer tensor, not a tensor of torch.bool$"):
        round_shift(torch.tensor([True]), 1)


# --- stochastic rounding -----------------------------------------------------------------------

@pytest.mark.parametrize("seed", [5, 99])
@pytest.mark.parametrize("shift", [0, 1, 7, 16, 31, 32])
def test_stochastic_takes_one_draw_per_element_row_major(seed, shift):
    rng = random.Random(seed * 100 + shift)
    xs = [[rng.randint(-(1 << 34), 1 << 34) for _ in range(7)] for _ in range(5)]
    gen = Xorshift32(seed)
    got = round_shift(t(xs), shift, "stochastic", gen)
    draws = ref_draws(seed, 35)
    want = [[ref_round_stochastic(x, shift, draws[7 * i + j]) for j, x in enumerate(row)]
            for i, row in enumerate(xs)]
    assert got.tolist() == want, f"seed={seed} shift={shift}"
    assert gen.state == draws[-1], "the generator advances by one draw per element"
    if shift == 0:
        assert got.tolist() == xs


def test_stochastic_reproducible_from_seed():
    x = torch.arange(-5000, 5000, 7)
    a = round_shift(x, 5, "stochastic", Xorshift32(42))
    b = round_shift(x, 5, "stochastic", Xorshift32(42))
    c = round_shift(x, 5, "stochastic", Xorshift32(43))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("x, shift", [(1, 2), (3, 2), (-1, 2), (5, 4), (-37, 6), (1000001, 12),
                                      (1 << 20, 3), (1, 31), (-(1 << 30), 32)])
def test_stochastic_unbiased(x, shift):
    """Mean of N roundings of x is x / 2**shift within 5 standard errors.

    floor((x + r) / 2**s) is floor(x / 2**s) plus a Bernoulli(f) with f the fractional part, so
    the mean's standard error is sqrt(f (1 - f) / N) ≤ 0.5 / sqrt(N); 5 standard errors leave a
    false-failure chance below 1e-6 (and the draws are deterministic anyway: seeded).
    """
    n = 100_000
    got = round_shift(torch.full((n,), x, dtype=torch.int64), shift, "stochastic", Xorshift32(9))
    exact = x / 2**shift
    f = exact - math.floor(exact)
    assert set(got.unique().tolist()) <= {math.floor(exact), math.ceil(exact)}
    tol = 5 * math.sqrt(f * (1 - f) / n) + 2**-31
    assert tol < 0.01                       # a real test: ±5 standard errors is tight
    assert abs(got.double().mean().item() - exact) <= tol, (x, shift)


# --- int_gemm ----------------------------------------------------------------------------------

def ref_gemm(a, b, width, c=None):
    m, k, n = len(a), len(b), len(b[0]) if b else 0
    return [[ref_wrap(sum(a[i][p] * b[p][j] for p in range(k)) + (c[i][j] if c else 0), width)
             for j in range(n)] for i in range(m)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_int_gemm_random(seed):
    rng = random.Random(seed)
    m, k, n = rng.randint(1, 6), rng.randint(1, 40), rng.randint(1, 6)
    bits = rng.choice([16, 16, 32])
    width = rng.choice([32, 40, 62]) if bits == 32 else rng.choice([20, 32])
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    a = [[rng.randint(lo, hi) for _ in range(k)] for _ in range(m)]
    b = [[rng.randint(lo, hi) for _ in range(n)] for _ in range(k)]
    c = [[rng.randint(-(1 << (width - 1)), (1 << (width - 1)) - 1) for _ in range(n)]
         for _ in range(m)]
    what = f"seed={seed} {m}x{k}x{n} {bits}-bit operands, acc {width}"
    assert int_gemm(t(a), t(b), width).tolist() == ref_gemm(a, b, width), what
    assert int_gemm(t(a), t(b), width, c=t(c)).tolist() == ref_gemm(a, b, width, c), what


def test_int_gemm_wraps():
    lo, hi = -(1 << 15), (1 << 15) - 1
    for a, b, k in [(lo, lo, 1), (lo, lo, 2), (lo, lo, 4), (hi, hi, 3), (lo, hi, 5), (lo, lo, 300)]:
        got = int_gemm(torch.full((2, k), a), torch.full((k, 3), b), 32)
        want = ref_wrap(k * a * b, 32)
        assert got.tolist() == [[want] * 3] * 2, (a, b, k)
    assert int_gemm(torch.full((1, 2), lo), torch.full((2, 1), lo), 32).item() == -(1 << 31)
    assert int_gemm(torch.full((1, 4), lo), torch.full((4, 1), lo), 32).item() == 0
    # The most negative 32-bit operands take the one-product-per-chunk path and stay exact.
    big = -(1 << 31)
    assert int_gemm(torch.full((1, 9), big), torch.full((9, 1), big), 62).item() \
        == ref_wrap(9 * big * big, 62)


def test_int_gemm_empty_and_validation():
    assert int_gemm(torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0, 3, dtype=torch.int64),
                    32).tolist() == [[0] * 3] * 2
    assert int_gemm(torch.zeros(0, 4, dtype=torch.int64), torch.zeros(4, 3, dtype=torch.int64),
                    32).shape == (0, 3)
    with pytest.raises(ValueError, match=r"^GEMM shapes do not match: A \(2, 3\), B \(4, 2\)$"):
        int_gemm(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(4, 2, dtype=torch.int64), 32)
    with pytest.raises(ValueError, match=r"^Accumulator shape \(1, 1\) does not match \(2, 2\)$"):
        int_gemm(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(3, 2, dtype=torch.int64), 32,
                 c=torch.zeros(1, 1, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"^A must be an integer tensor, not a tensor of torch.float32$"):
        int_gemm(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.int64), 32)
    for width, msg in [(-1, r"^Width must be a positive integer, not -1$"),
                       (1, r"^Width must be between 2 and 62 bits, not 1$"),
                       (63, r"^Width must be between 2 and 62 bits, not 63$")]:
        with pytest.raises(ValueError, match=msg):
            int_gemm(torch.ones(2, 2, dtype=torch.int64), torch.ones(2, 2, dtype=torch.int64), width)


# --- requantize_act ----------------------------------------------------------------------------

def ref_requantize_act(acc, shift, width, bias, bias_shift, relu_on):
    ys, masks, n_sat = [], [], 0
    for row in acc:
        yr, mr = [], []
        for j, x in enumerate(row):
            if bias is not None:
                x += bias[j] << bias_shift
            y, sat = ref_saturate(ref_round_even(x, shift), width)
            n_sat += sat
            m = not sat and (y > 0 or not relu_on)
            yr.append(max(y, 0) if relu_on else y)
            mr.append(int(m))
        ys.append(yr)
        masks.append(mr)
    return ys, masks, n_sat


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_requantize_act_random(seed):
    rng = random.Random(seed)
    m, n = rng.randint(1, 5), rng.randint(1, 6)
    shift, bias_shift = rng.randint(0, 16), rng.randint(0, 12)
    relu_on = bool(seed % 2)
    acc = [[rng.randint(-(1 << 31), (1 << 31) - 1) >> rng.randint(0, 16) for _ in range(n)]
           for _ in range(m)]
    bias = [rng.randint(-(1 << 15), (1 << 15) - 1) for _ in range(n)] if seed % 3 else None
    y, mask, n_sat = requantize_act(t(acc), shift, 16, bias=None if bias is None else t(bias),
                                    bias_shift=bias_shift, relu=relu_on)
    want = ref_requantize_act(acc, shift, 16, bias, bias_shift, relu_on)
    assert (y.tolist(), mask.tolist(), n_sat) == want, f"seed={seed}"


def test_requantize_act_saturated_elements_are_masked():
    acc = t([[1 << 30, -(1 << 30), 300, -300, 0, 128, -128]])
    y, mask, n = requantize_act(acc, 8, 16, relu=True)
    assert y.tolist() == [[32767, 0, 1, 0, 0, 0, 0]]      # 300/256 → 1; 128/256 = 0.5 → 0 (even)
    assert mask.tolist() == [[0, 0, 1, 0, 0, 0, 0]] and n == 2
    y, mask, n = requantize_act(acc, 8, 16, relu=False)
    assert y.tolist() == [[32767, -32768, 1, -1, 0, 0, 0]]
    assert mask.tolist() == [[0, 0, 1, 1, 1, 1, 1]] and n == 2
    # Bias shifted into range and broadcast over rows.
    y, mask, n = requantize_act(t([[0, 0], [256, -256]]), 8, 16, bias=t([3, -1]), bias_shift=8)
    assert y.tolist() == [[3, -1], [4, -2]] and n == 0


def test_requantize_act_stochastic_matches_requantize():
    acc = torch.arange(-300, 300, 6).reshape(4, -1) * 37
    bias = torch.arange(acc.shape[1]) - 5
    y, _, _ = requantize_act(acc, 6, 16, bias=bias, bias_shift=2, rounding="stochastic",
                             rng=Xorshift32(3))
    want, _ = requantize(acc + (bias << 2), 6, 16, "stochastic", Xorshift32(3))
    assert torch.equal(y, want)


def test_requantize_act_validation():
    with pytest.raises(ValueError, match=r"^Bias shape \(3,\) does not match accumulator \(2, 2\)$"):
        requantize_act(torch.zeros(2, 2, dtype=torch.int64), 0, 16, bias=t([1, 2, 3]))
    with pytest.raises(ValueError, match=r"^Bias shift must be between 0 and 32, not 33$"):
        requantize_act(torch.zeros(2, 2, dtype=torch.int64), 0, 16, bias=t([1, 2]), bias_shift=33)
    with pytest.raises(TypeError, match=r"^Accumulator must be an integer tensor, not a tensor of torch.float32$"):
        requantize_act(torch.zeros(2, 2), 0, 16)


# --- relu --------------------------------------------------------------------------------------

def test_relu_family():
    x = t([-32768, -1, 0, 1, 32767])
    assert relu(x).tolist() == [0, 0, 0, 1, 32767]
    assert relu_mask(x).tolist() == [0, 0, 0, 1, 1]
    assert relu_backward(t([5, 6, 7, 8, 9]), relu_mask(x)).tolist() == [0, 0, 0, 8, 9]
    with pytest.raises(ValueError, match=r"^Gradient shape \(2,\) does not match mask \(3,\)$"):
        relu_backward(t([1, 2]), t([1, 1, 1]))


# --- sgd_update --------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("rounding", ["nearest-even", "stochastic"])
def test_sgd_update_random(seed, rounding):
    rng = random.Random(seed)
    n = 40
    w = [rng.randint(-32768, 32767) for _ in range(n)] + [-32768, 32767]
    g = [rng.randint(-(1 << 31), (1 << 31) - 1) for _ in range(n)] + [1 << 30, -(1 << 30)]
    lr_shift, lr_mul, wd_mul = rng.randint(8, 24), rng.randint(0, 65535), rng.choice([0, 3, 65535])
    got, n_sat = sgd_update(t(w), t(g), 16, lr_shift, lr_mul, wd_mul, rounding,
                            Xorshift32(seed) if rounding == "stochastic" else None)
    draws = ref_draws(seed, len(w))
    want = []
    for i, (wi, gi) in enumerate(zip(w, g)):
        v = gi * lr_mul + wi * wd_mul
        step = ref_round_even(v, lr_shift) if rounding == "nearest-even" \
            else ref_round_stochastic(v, lr_shift, draws[i])
        want.append(ref_saturate(wi - step, 16))
    what = f"seed={seed} {rounding} lr={lr_mul}/2**{lr_shift} wd={wd_mul}"
    assert got.tolist() == [v for v, _ in want], what
    assert n_sat == sum(s for _, s in want), what


def test_sgd_update_saturates():
    w, n = sgd_update(t([-32768, 32767, 0]), t([1 << 20, -(1 << 20), 1 << 20]), 16, 4,
                      rounding="nearest-even")
    assert w.tolist() == [-32768, 32767, -32768] and n == 3      # w ∓ 65536 saturates


def test_sgd_update_validation():
    with pytest.raises(ValueError, match=r"^Learning-rate multiplier must be in 0..65535, not 65536$"):
        sgd_update(t([1]), t([1]), 16, 4, lr_mul=65536, rounding="nearest-even")
    with pytest.raises(ValueError, match=r"^Weight-decay multiplier must be in 0..255, not -1$"):
        sgd_update(t([1]), t([1]), 8, 4, wd_mul=-1, rounding="nearest-even")
    with pytest.raises(TypeError, match=r"^Learning-rate multiplier must be an integer, not 1.0$"):
        sgd_update(t([1]), t([1]), 16, 4, lr_mul=1.0, rounding="nearest-even")
    with pytest.raises(ValueError, match=r"^Weights shape \(2,\) does not match gradient \(3,\)$"):
        sgd_update(t([1, 2]), t([1, 2, 3]), 16, 4, rounding="nearest-even")
    with pytest.raises(TypeError, match=r"^Stochastic rounding needs an Xorshift32 or LaneGenerators, "
                       r"not None$"):
        sgd_update(t([1]), t([1]), 16, 4)


# --- quantize / dequantize ---------------------------------------------------------------------

def test_quantize():
    fmt = QFormat(16, 8)
    x = [0.0, 1.0, -1.0, 0.5 / 256, 1.5 / 256, 2.5 / 256, -0.5 / 256, 127.99, 128.0, -128.0,
         -200.0, 1e9]
    q, n = quantize(torch.tensor(x, dtype=torch.float64), fmt)
    assert q.tolist() == [0, 256, -256, 0, 2, 2, 0, 32765, 32767, -32768, -32768, 32767]
    assert n == 3
    assert dequantize(t([256, -384, 1]), fmt).tolist() == [1.0, -1.5, 1 / 256]
    a, _ = quantize(torch.linspace(-3, 3, 101), fmt, "stochastic", Xorshift32(5))
    b, _ = quantize(torch.linspace(-3, 3, 101), fmt, "stochastic", Xorshift32(5))
    assert torch.equal(a, b)
    exact = torch.linspace(-3, 3, 101, dtype=torch.float64) * 256
    assert ((a - exact.floor()).abs() <= 1).all() and (a >= exact.floor()).all()
    with pytest.raises(ValueError, match=r"^Cannot quantize NaN$"):
        quantize([float("nan")], fmt)
    with pytest.raises(TypeError, match=r"^Format must be a QFormat, not 8$"):
        quantize([1.0], 8)
    with pytest.raises(TypeError, match=r"^Format must be a QFormat, not 8$"):
        dequantize(t([1]), 8)
