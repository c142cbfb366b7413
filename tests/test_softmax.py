# amaranth: UnusedElaboratable=no
"""Fixed-point softmax / cross-entropy gradient: golden specification and RTL unit."""

import math
import random
from dataclasses import replace

import pytest
import torch

from golden.softmax import (
    exp_scale, softmax_cycles, softmax_exp, softmax_probs, softmax_recip, softmax_xent_grad,
    temperature_to_inv_temp,
)
from rtl.softmax import SoftmaxMode, SoftmaxUnit
from sim.softmax import SoftmaxGroup, simulate_groups
from spec.softmax_tables import (
    EXP_FRAC, EXP_INDEX_BITS, EXP_TABLE, GRAD_SHIFT_MAX, INV_TEMP_FRAC, INV_TEMP_ONE,
    INV_TEMP_WIDTH, K_WIDTH, LOG2E_FRAC, LOG2E_Q, RECIP_BITS, RECIP_CYCLES, RECIP_SHIFT,
    SOFTMAX_MAX_WIDTH,
    exp2_table,
)
from tests.simutil import run_sim

Z_FRAC, P_FRAC, G_FRAC = 8, 14, 12


def _rand_logits(gen, m, c, scale, width=16):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return torch.randint(-scale, scale + 1, (m, c), generator=gen).clamp(lo, hi)


def _one_hot(labels, c, prob_frac=P_FRAC):
    t = torch.zeros(len(labels), c, dtype=torch.int64)
    t[torch.arange(len(labels)), torch.as_tensor(labels)] = 1 << prob_frac
    return t


# --- tables and constants -------------------------------------------------------------------

def test_exp_table_matches_float():
    assert len(EXP_TABLE) == 1 << EXP_INDEX_BITS
    assert EXP_TABLE[0] == 1 << EXP_FRAC
    for f, v in enumerate(EXP_TABLE):
        x = 2.0 ** (EXP_FRAC - f / (1 << EXP_INDEX_BITS))
        assert abs(v - x) < 0.5, f
        assert (1 << (EXP_FRAC - 1)) < v <= (1 << EXP_FRAC)
    assert exp2_table(0, 1) == (2,)
    assert exp2_table(2, 4) == tuple(round(2.0 ** (4 - f / 4)) for f in range(4))


def test_exp_table_bad_arguments():
    with pytest.raises(ValueError,
                       match=r"^Exp table index bits must be between 0 and 12, not 13$"):
        exp2_table(13)
    with pytest.raises(ValueError,
                       match=r"^Exp table fraction bits must be between 1 and 30, not 0$"):
        exp2_table(4, 0)
    with pytest.raises(TypeError, match=r"^Exp table index bits must be an integer, not 1.5$"):
        exp2_table(1.5)


def test_constants():
    assert LOG2E_Q == round(math.log2(math.e) * 2 ** LOG2E_FRAC)
    assert INV_TEMP_ONE == 1 << INV_TEMP_FRAC
    assert exp_scale((1 << INV_TEMP_WIDTH) - 1) < 1 << K_WIDTH
    assert exp_scale() == round(math.log2(math.e) * 2 ** 15)
    assert exp_scale(0) == 0
    assert RECIP_BITS == RECIP_SHIFT - EXP_FRAC + 1


# --- temperature ------------------------------------------------------------------------------

def test_temperature_to_inv_temp():
    assert temperature_to_inv_temp(1) == INV_TEMP_ONE
    assert temperature_to_inv_temp(1.0) == INV_TEMP_ONE
    assert temperature_to_inv_temp(4) == INV_TEMP_ONE // 4
    assert temperature_to_inv_temp(20) == 205          # 204.8
    assert temperature_to_inv_temp(0.5) == 2 * INV_TEMP_ONE
    assert temperature_to_inv_temp(2 ** 13 * 0.999) == 1


@pytest.mark.parametrize("t", [0, 0.0, -1, -0.5, float("nan")])
def test_temperature_must_be_positive(t):
    with pytest.raises(ValueError, match=r"^Temperature must be positive, not "):
        temperature_to_inv_temp(t)


def test_temperature_out_of_range():
    with pytest.raises(ValueError, match=r"^Temperature must give an inverse temperature between "
                                         r"1 and 16383 \(units of 2\*\*-12\), not 0\.2$"):
        temperature_to_inv_temp(0.2)
    with pytest.raises(ValueError, match=r"^Temperature must give an inverse temperature"):
        temperature_to_inv_temp(9000)
    with pytest.raises(ValueError, match=r"^Temperature must be finite, not inf$"):
        temperature_to_inv_temp(float("inf"))
    with pytest.raises(TypeError, match=r"^Temperature must be a real number, not '1'$"):
        temperature_to_inv_temp("1")


# --- golden against float ---------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [None, 0.5, 2, 4, 20])
@pytest.mark.parametrize("c", [2, 3, 10, 64])
def test_golden_close_to_float(c, temperature):
    """|p - float softmax| <= 3 LSB of the prob format (T <= 20, default formats)."""
    gen = torch.Generator().manual_seed(c)
    inv_temp = None if temperature is None else temperature_to_inv_temp(temperature)
    inv_t = (inv_temp or INV_TEMP_ONE) / INV_TEMP_ONE
    for scale in (16, 256, 2048, 32768):
        z = _rand_logits(gen, 2000, c, scale)
        p = softmax_probs(z, z_frac=Z_FRAC, prob_frac=P_FRAC, inv_temp=inv_temp)
        ref = torch.softmax(z.double() / 2 ** Z_FRAC * inv_t, dim=1) * 2 ** P_FRAC
        err = float((p - ref).abs().max())
        assert err <= 3.0, (c, temperature, scale, err)
        assert int(p.min()) >= 0


@pytest.mark.parametrize("prob_frac", [0, 5, 14, 15])
@pytest.mark.parametrize("c", [1, 2, 7, 10, 100])
def test_sums_to_one(c, prob_frac):
    """|sum p - 2**prob_frac| <= C // 2 (+1 when saturating at prob_frac = width - 1)."""
    gen = torch.Generator().manual_seed(100 * c + prob_frac)
    bound = c // 2 + (prob_frac == 15)
    for scale in (1, 64, 4096, 32768):
        z = _rand_logits(gen, 1000, c, scale)
        for inv_temp in (None, 1, 1000, (1 << INV_TEMP_WIDTH) - 1):
            p = softmax_probs(z, z_frac=Z_FRAC, prob_frac=prob_frac, inv_temp=inv_temp)
            dev = int((p.sum(dim=1) - (1 << prob_frac)).abs().max())
            assert dev <= bound, (c, prob_frac, scale, inv_temp, dev)


def test_golden_exact_cases():
    # All-equal logits: exactly uniform up to rounding.
    z = torch.full((3, 4), -7)
    assert softmax_probs(z, z_frac=Z_FRAC, prob_frac=P_FRAC).tolist() == [[4096] * 4] * 3
    # One class: probability one (saturated when 1.0 does not fit).
    z = torch.tensor([[-32768], [32767]])
    assert softmax_probs(z, z_frac=Z_FRAC, prob_frac=14).tolist() == [[16384], [16384]]
    assert softmax_probs(z, z_frac=Z_FRAC, prob_frac=15).tolist() == [[32767], [32767]]
    # Extremes: the smallest logit's exponential underflows to 0.
    z = torch.tensor([[-32768, 32767]])
    assert softmax_probs(z, z_frac=Z_FRAC, prob_frac=P_FRAC).tolist() == [[0, 16384]]
    # inv_temp = 0 (T = infinity): uniform whatever the logits.
    z = torch.tensor([[-32768, 32767, 0, 5]])
    assert softmax_probs(z, z_frac=Z_FRAC, prob_frac=P_FRAC, inv_temp=0).tolist() == [[4096] * 4]
    # The row's maximum has e = 2**EXP_FRAC; S and R follow.
    e, s = softmax_exp(torch.tensor([[0, -256]]), z_frac=Z_FRAC)
    assert e[0, 0] == 1 << EXP_FRAC
    a = round(256 * exp_scale() / 2 ** (Z_FRAC + 15 - EXP_INDEX_BITS))     # 1477, no tie
    assert e[0, 1] == (EXP_TABLE[a % (1 << EXP_INDEX_BITS)] + 1) >> (a >> EXP_INDEX_BITS)
    assert abs(int(e[0, 1]) - 2 ** EXP_FRAC / math.e) < 4
    assert softmax_recip(s).tolist() == [(1 << RECIP_SHIFT) // int(s[0])]
    # Empty batch.
    empty = torch.zeros(0, 3, dtype=torch.int64)
    assert softmax_probs(empty, z_frac=8, prob_frac=14).shape == (0, 3)


def test_grad_is_probs_minus_target():
    gen = torch.Generator().manual_seed(7)
    for c in (1, 2, 10):
        z = _rand_logits(gen, 500, c, 1024)
        t = _one_hot(torch.randint(0, c, (500,), generator=gen), c)
        p = softmax_probs(z, z_frac=Z_FRAC, prob_frac=P_FRAC).double()
        for gs in (0, 3):
            g = softmax_xent_grad(z, t, z_frac=Z_FRAC, prob_frac=P_FRAC, grad_frac=G_FRAC,
                                  grad_shift=gs)
            ref = (p - t.double()) * 2.0 ** (G_FRAC - P_FRAC - gs)
            # one rounding of the unrounded p: within 1/2 LSB + the prob rounding scaled
            assert float((g - ref).abs().max()) <= 0.5 + 0.5 * 2.0 ** (G_FRAC - P_FRAC - gs) + 1e-9
    # Gradient rows of a one-hot target sum to about zero; a correct confident row is ~0.
    z = torch.tensor([[32767, -32768, 0]])
    t = _one_hot([0], 3)
    assert softmax_xent_grad(z, t, z_frac=8, prob_frac=14, grad_frac=12).tolist() == [[0, 0, 0]]


def test_grad_saturates():
    # prob_frac = 13: target 1.0 = 8192; grad_frac = 15: (p - t) = -1 -> -32768 fits, but with a
    # negative soft target the difference exceeds +1 and saturates at 32767.
    z = torch.tensor([[0, -32768]])
    t = torch.tensor([[-8192, 8192]])
    g = softmax_xent_grad(z, t, z_frac=8, prob_frac=13, grad_frac=15)
    assert g.tolist() == [[32767, -32768]]
    # The most negative and most positive targets in the prob format; 0.5 - 32767 is a tie.
    z = torch.tensor([[5, 5]])
    t = torch.tensor([[-32768, 32767]])
    g = softmax_xent_grad(z, t, z_frac=8, prob_frac=0, grad_frac=0)
    assert g.tolist() == [[32767, -32766]]


# --- argument checking ------------------------------------------------------------------------

def test_golden_bad_arguments():
    z = torch.zeros(2, 3, dtype=torch.int64)
    t = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(ValueError,
                       match=rf"^Width must be between 2 and {SOFTMAX_MAX_WIDTH}, not 0$"):
        softmax_probs(z, z_frac=0, prob_frac=0, width=0)
    with pytest.raises(ValueError, match=r"^Width must be between 2 and \d+, not -4$"):
        softmax_probs(z, z_frac=0, prob_frac=0, width=-4)
    with pytest.raises(TypeError, match=r"^Width must be an integer, not 16.0$"):
        softmax_probs(z, z_frac=0, prob_frac=0, width=16.0)
    with pytest.raises(ValueError, match=r"^Logit fraction bits must be between 0 and 15, not 16$"):
        softmax_probs(z, z_frac=16, prob_frac=14)
    with pytest.raises(ValueError, match=r"^Probability fraction bits must be between 0 and 15, "
                                         r"not 16$"):
        softmax_probs(z, z_frac=8, prob_frac=16)
    with pytest.raises(ValueError, match=r"^Probability fraction bits must be between 0 and 7, "
                                         r"not -1$"):
        softmax_probs(z, z_frac=0, prob_frac=-1, width=8)
    with pytest.raises(ValueError,
                       match=r"^Gradient fraction bits must be between 0 and 15, not 16$"):
        softmax_xent_grad(z, t, z_frac=8, prob_frac=14, grad_frac=16)
    with pytest.raises(ValueError, match=r"^Gradient shift must be between 0 and 15, not 16$"):
        softmax_xent_grad(z, t, z_frac=8, prob_frac=14, grad_frac=12, grad_shift=16)
    with pytest.raises(ValueError, match=r"^Inverse temperature must be between 0 and 16383, "
                                         r"not 16384$"):
        softmax_probs(z, z_frac=8, prob_frac=14, inv_temp=16384)
    with pytest.raises(ValueError,
                       match=r"^Inverse temperature must be between 0 and 16383, not -1$"):
        softmax_probs(z, z_frac=8, prob_frac=14, inv_temp=-1)
    with pytest.raises(ValueError, match=r"^Softmax needs at least one class, not 0$"):
        softmax_probs(torch.zeros(2, 0, dtype=torch.int64), z_frac=8, prob_frac=14)
    with pytest.raises(ValueError, match=r"^Logits must be 8-bit signed integers"):
        softmax_probs(torch.tensor([[128]]), z_frac=0, prob_frac=0, width=8)
    with pytest.raises(ValueError, match=r"^Logits must be a 2-D tensor"):
        softmax_probs(torch.zeros(3, dtype=torch.int64), z_frac=8, prob_frac=14)
    with pytest.raises(TypeError, match=r"^Logits must be an integer tensor"):
        softmax_probs(torch.zeros(1, 3), z_frac=8, prob_frac=14)
    with pytest.raises(ValueError,
                       match=r"^Targets shape \(2, 2\) does not match logits \(2, 3\)$"):
        softmax_xent_grad(z, t[:, :2], z_frac=8, prob_frac=14, grad_frac=12)


def test_cycles_formula_arguments():
    assert softmax_cycles(2) - softmax_cycles(1) == 3
    assert softmax_cycles(4, 1) == softmax_cycles(4)
    with pytest.raises(ValueError, match=r"^Classes must be a positive integer, not 0$"):
        softmax_cycles(0)
    with pytest.raises(TypeError, match=r"^Classes must be an integer, not 1.0$"):
        softmax_cycles(1.0)
    with pytest.raises(ValueError, match=r"^Samples must be a positive integer, not 0$"):
        softmax_cycles(3, 0)
    with pytest.raises(TypeError, match=r"^Samples must be an integer, not 2.0$"):
        softmax_cycles(3, 2.0)


def test_cycles_formula_values():
    """The group formula (issues 27/28): samples overlap, one every max(C, RECIP_CYCLES) cycles
    after the first; pinned for the 10-class training step's group of 8 (37 and 165 since the
    products moved into the DSP blocks' own registers, issue 27 item 5: 33 and 161 before)."""
    assert RECIP_CYCLES == 14
    for c in (1, 10, 14, 15, 16):
        for s in range(1, 9):
            assert softmax_cycles(c, s) == 3 * c + 37 + (s - 1) * max(c, 14), (c, s)
    assert softmax_cycles(10, 8) == 165             # 8 · (3·10 + 28) = 464 one after the other


# --- RTL ----------------------------------------------------------------------------------------

def _golden_group(g, width):
    """Golden output of one :class:`SoftmaxGroup`: ``(sample, value, last)`` in output order."""
    z = torch.tensor(g.logits, dtype=torch.int64)
    if g.mode == SoftmaxMode.PROBS:
        y = softmax_probs(z, z_frac=g.z_frac, prob_frac=g.prob_frac, width=width,
                          inv_temp=g.inv_temp)
    else:
        y = softmax_xent_grad(z, torch.tensor(g.targets, dtype=torch.int64), z_frac=g.z_frac,
                              prob_frac=g.prob_frac, grad_frac=g.grad_frac, width=width,
                              inv_temp=g.inv_temp, grad_shift=g.grad_shift)
    c = g.classes
    return [(s, y[s][j].item(), int(j == c - 1)) for s in range(g.samples) for j in range(c)]


def _check(run, groups, width, seed):
    assert len(run.results) == len(groups), \
        f"seed {seed}: {len(run.results)} of {len(groups)} groups"
    for i, (got, g) in enumerate(zip(run.results, groups)):
        want = _golden_group(g, width)
        assert got == want, f"seed {seed}, group {i} ({g}): RTL {got} != golden {want}"


def _random_logits(rng, c, width):
    """A random sample's logits: all equal, extremes, or a random spread about a random centre."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    kind = rng.randrange(8)
    if kind == 0:                               # all equal
        return [rng.randint(lo, hi)] * c
    if kind == 1:                               # extremes
        return [rng.choice((lo, hi, lo + 1, hi - 1, 0)) for _ in range(c)]
    spread = 1 << rng.randrange(1, width + 1)
    centre = rng.randint(lo, hi)
    return [min(hi, max(lo, centre + rng.randint(-spread, spread))) for _ in range(c)]


def _random_targets(rng, c, prob_frac, width):
    """One-hot, anything (saturation included), or soft targets about one in total."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    kind = rng.randrange(4)
    if kind == 0 and prob_frac < width - 1:
        t = [0] * c
        t[rng.randrange(c)] = 1 << prob_frac
        return t
    if kind == 1:
        return [rng.choice((lo, hi, rng.randint(lo, hi))) for _ in range(c)]
    return [rng.randint(0, min(hi, (1 << prob_frac) // c)) for _ in range(c)]


def _random_group(rng, samples, c, width=16):
    """A random group: random logits and targets per sample, random formats per group."""
    prob_frac = rng.choice((width - 2, width - 2, width - 1, rng.randrange(width)))
    return SoftmaxGroup(
        [_random_logits(rng, c, width) for _ in range(samples)],
        [_random_targets(rng, c, prob_frac, width) for _ in range(samples)],
        mode=rng.choice((SoftmaxMode.PROBS, SoftmaxMode.GRAD)),
        z_frac=rng.randrange(width), prob_frac=prob_frac,
        grad_frac=rng.choice((width - 4 if width > 4 else 0, rng.randrange(width))),
        inv_temp=rng.choice((None, None, 0, rng.randrange(1 << INV_TEMP_WIDTH),
                             (1 << INV_TEMP_WIDTH) - 1, INV_TEMP_ONE // 4)),
        grad_shift=rng.randrange(GRAD_SHIFT_MAX + 1))


@pytest.mark.parametrize("seed", [1, 2])
def test_rtl_matches_golden_random(seed):
    """≥ 1000 random samples (over 500 per seed) of 1..4 classes in groups of 1..8 samples,
    parameters changing per group, random input gaps and random output back-pressure."""
    rng = random.Random(seed)
    dut = SoftmaxUnit(4, 8)
    groups = [_random_group(rng, rng.randint(1, 8), rng.randint(1, 4)) for _ in range(120)]
    assert sum(g.samples for g in groups) >= 500
    run = simulate_groups(dut, groups, seed=seed, p_valid=0.8, p_ready=0.6)
    _check(run, groups, 16, seed)


def test_rtl_cycles_match_formula():
    """Under always-valid input and always-ready output, a group's last result comes
    softmax_cycles(C, S) - 1 cycles after its first row and the next group starts one cycle
    later; mode and data do not matter. Class counts below, at and above RECIP_CYCLES (the
    divider or the passes set the pace), groups of 1 to all lanes."""
    rng = random.Random(3)
    dut = SoftmaxUnit(16, 8)
    shapes = [(1, 1), (8, 10), (3, 2), (8, 16), (1, 10), (2, 14), (5, 15), (8, 1), (4, 13),
              (7, 6), (8, 14)]
    groups = [replace(_random_group(rng, s, c), z_frac=8, prob_frac=14, grad_frac=12,
                      inv_temp=None, grad_shift=0) for s, c in shapes]
    run = simulate_groups(dut, groups, seed=3)
    _check(run, groups, 16, 3)
    assert run.first_in[0] == 0
    for i, (s, c) in enumerate(shapes):
        assert run.last_out[i] - run.first_in[i] == softmax_cycles(c, s) - 1, (i, s, c)
        if i + 1 < len(shapes):
            assert run.first_in[i + 1] - run.first_in[i] == softmax_cycles(c, s), (i, s, c)


def _edge_groups(c, lanes, width=16):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    one = 1 << (width - 2)                                  # 1.0 with prob_frac = width - 2
    zs = [[0] * c, [lo] * c, [hi] * c, [lo] + [hi] * (c - 1), [hi] + [lo] * (c - 1),
          [lo + i for i in range(c)], [hi - i for i in range(c)],
          [(-1) ** i * hi for i in range(c)]]
    probs = SoftmaxMode.PROBS
    grad = SoftmaxMode.GRAD
    base = dict(z_frac=8 if width > 8 else width - 1, prob_frac=width - 2, grad_frac=width - 4)
    cases = [
        (None, dict(mode=probs, **base)),
        (None, dict(mode=probs, **dict(base, prob_frac=width - 1))),       # 1.0 saturates
        ([one] + [0] * (c - 1), dict(mode=grad, **base)),
        ([lo] * c, dict(mode=grad, **base)),                               # saturates +
        ([hi] * c, dict(mode=grad, **dict(base, grad_frac=width - 1))),
        (([lo, hi] * c)[:c], dict(mode=grad, grad_shift=GRAD_SHIFT_MAX,
                                  **dict(base, prob_frac=0, grad_frac=width - 1))),
        (None, dict(mode=probs, inv_temp=0, **base)),                      # T = infinity
        (None, dict(mode=probs, inv_temp=(1 << INV_TEMP_WIDTH) - 1, **dict(base, z_frac=0))),
    ]
    out = []
    for t, kw in cases:
        for i in range(0, len(zs), lanes):
            part = zs[i:i + lanes]
            out.append(SoftmaxGroup(part, None if t is None else [t] * len(part), **kw))
    return out


@pytest.mark.parametrize("classes_max, lanes, width", [(4, 8, 16), (1, 8, 16), (3, 3, 8),
                                                       (2, 1, 2), (16, 2, 16), (3, 2, 20)])
def test_rtl_edge_cases(classes_max, lanes, width):
    """Extreme logits and targets, saturation both ways, one class, one lane, T = infinity, the
    smallest width and the largest (``u·k`` then split over two multipliers); random output
    back-pressure; plus random groups at this instance's size."""
    rng = random.Random(classes_max * 100 + width)
    dut = SoftmaxUnit(classes_max, lanes, width=width)
    groups = []
    if width > 4:
        for c in sorted({1, classes_max}):
            groups += _edge_groups(c, lanes, width)
    groups += [_random_group(rng, rng.randint(1, lanes), rng.randint(1, classes_max), width)
               for _ in range(25)]
    run = simulate_groups(dut, groups, seed=classes_max, p_valid=0.7, p_ready=0.5)
    _check(run, groups, width, classes_max)


def test_rtl_overflow_drops_extra_rows():
    """A group whose passes are longer than classes_max keeps each pass's first classes_max rows,
    sets the sticky overflow flag (cleared by overflow_clr), and the next group is unaffected."""
    dut = SoftmaxUnit(2, 2)
    long = SoftmaxGroup([[100, -50, 3000, 7], [5, 900, -20, 1]])
    short = SoftmaxGroup([[0, 256], [7, 7]])
    results, flags = [], []

    async def tb(ctx):
        ctx.set(dut.samples, 2)
        ctx.set(dut.z_frac, 8)
        ctx.set(dut.prob_frac, 14)
        ctx.set(dut.inv_temp, INV_TEMP_ONE)
        ctx.set(dut.o_result.ready, 1)
        for g in (long, short):
            for _ in range(g.samples + 1):
                for j in range(g.classes):
                    ctx.set(dut.i_row.payload, {"logits": [z[j] for z in g.logits],
                                                "targets": [0, 0], "last": j == g.classes - 1})
                    ctx.set(dut.i_row.valid, 1)
                    while True:
                        _, _, ready = await ctx.tick().sample(dut.i_row.ready)
                        if ready:
                            break
            ctx.set(dut.i_row.valid, 0)
            got = []
            while len(got) < 4:
                _, _, valid, payload = await ctx.tick().sample(dut.o_result.valid,
                                                               dut.o_result.payload)
                if valid:
                    got.append((payload.sample, payload.value, payload.last))
            results.append(got)
            flags.append(ctx.get(dut.overflow))
            ctx.set(dut.overflow_clr, 1)
            await ctx.tick()
            ctx.set(dut.overflow_clr, 0)
            flags.append(ctx.get(dut.overflow))

    run_sim(dut, tb)
    assert results[0] == _golden_group(SoftmaxGroup([z[:2] for z in long.logits]), 16)
    assert results[1] == _golden_group(short, 16)
    assert flags == [1, 0, 0, 0]


def test_simulate_groups_timeout():
    """The driver fails instead of hanging when results do not come (here: too few cycles)."""
    with pytest.raises(TimeoutError,
                       match=r"^softmax unit: group 0: 0 of 2 results after 10 cycles"):
        simulate_groups(SoftmaxUnit(2, 1), [SoftmaxGroup([[1, 2]])], max_cycles=10)
    with pytest.raises(ValueError, match=r"^Group has logits of shape 1×2 but targets of "
                                         r"lengths \[1\]$"):
        SoftmaxGroup([[1, 2]], [[0]])
    with pytest.raises(ValueError, match=r"^Group logits must be one or more samples"):
        SoftmaxGroup([[1, 2], [3]])


def test_rtl_ports():
    dut = SoftmaxUnit(10, 8, width=12)
    assert dut.classes_max == 10 and dut.lanes == 8 and dut.width == 12
    assert dut.i_row.payload.shape().size == 2 * 8 * 12 + 1
    assert dut.o_result.payload.shape().size == 12 + 3 + 1
    assert len(dut.samples) == 4
    assert len(dut.inv_temp) == INV_TEMP_WIDTH
    assert len(dut.grad_shift) == GRAD_SHIFT_MAX.bit_length()


def test_rtl_bad_parameters():
    with pytest.raises(ValueError, match=r"^Maximum number of classes must be a positive integer, "
                                         r"not 0$"):
        SoftmaxUnit(0, 8)
    with pytest.raises(ValueError, match=r"^Maximum number of classes must be a positive integer, "
                                         r"not -3$"):
        SoftmaxUnit(-3, 8)
    with pytest.raises(TypeError, match=r"^Maximum number of classes must be a positive integer, "
                                        r"not 2.0$"):
        SoftmaxUnit(2.0, 8)
    with pytest.raises(ValueError, match=rf"^Width must be between 2 and {SOFTMAX_MAX_WIDTH}, "
                                         r"not 0$"):
        SoftmaxUnit(4, 8, width=0)
    with pytest.raises(ValueError, match=r"^Width must be between 2 and \d+, not -16$"):
        SoftmaxUnit(4, 8, width=-16)
    with pytest.raises(ValueError, match=r"^Width must be between 2 and \d+, not 1$"):
        SoftmaxUnit(4, 8, width=1)
    with pytest.raises(ValueError, match=rf"^Width must be between 2 and {SOFTMAX_MAX_WIDTH}, "
                                         rf"not {SOFTMAX_MAX_WIDTH + 1}$"):
        SoftmaxUnit(4, 8, width=SOFTMAX_MAX_WIDTH + 1)
    with pytest.raises(TypeError, match=r"^Width must be an integer, not '16'$"):
        SoftmaxUnit(4, 8, width="16")
    with pytest.raises(ValueError, match=r"^Lanes must be a positive integer, not 0$"):
        SoftmaxUnit(4, 0)
    with pytest.raises(TypeError, match=r"^Lanes must be a positive integer, not 8.0$"):
        SoftmaxUnit(4, 8.0)
