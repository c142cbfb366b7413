# amaranth: UnusedElaboratable=no
"""The post-processing datapath (rtl/postproc.py) configured for SGD against golden sgd_update,
bit for bit (tests/test_requant.py: the same datapath for REQ and RELUB)."""

import random

import pytest
import torch

import golden.fixedpoint as fx
from rtl.postproc import PostOp, PostProcessor
from tests.simutil import run_sim
from tests.vector_units_sim import (Op, Packer, UnitWithRng, from_beats, next_draws, per_beat,
                                    run_ops, to_beats)

LANES = 4
W, GW = 16, 32
WMIN, WMAX = -(1 << (W - 1)), (1 << (W - 1)) - 1
GMIN, GMAX = -(1 << (GW - 1)), (1 << (GW - 1)) - 1
ROUNDING = {0: "nearest-even", 1: "stochastic"}


class Case:
    """One operation: weights, gradients, static inputs; golden gives the expected result."""

    def __init__(self, statics, w, g, clear=False):
        self.statics = dict(lr_shift=0, lr_mul=1, wd_mul=0, rounding=1)
        self.statics.update(statics)
        self.w, self.g, self.clear = w, g, clear

    def op(self, junk, multipliers=True):
        """The beats and the datapath's statics; padding lanes, the RELUB mask and the ReLU
        switch hold junk."""
        pw = to_beats(self.w, LANES, lambda: junk.randint(WMIN, WMAX))
        pg = to_beats(self.g, LANES, lambda: junk.randint(GMIN, GMAX))
        beats = [dict(a=g, w=w, mask=[junk.randint(0, 1) for _ in range(LANES)], n_valid=n,
                      last=int(k == len(pw) - 1))
                 for k, ((w, n), (g, _)) in enumerate(zip(pw, pg))]
        s = self.statics
        statics = dict(op=PostOp.SGD, shift=s["lr_shift"], rounding=s["rounding"],
                       relu_en=junk.randint(0, 1), lr_mul=s["lr_mul"], wd_mul=s["wd_mul"])
        if not multipliers:
            assert (statics.pop("lr_mul"), statics.pop("wd_mul")) == (1, 0)
        return Op(statics, beats, clear=self.clear)

    def golden(self, rng):
        s = self.statics
        return per_beat(lambda r, c0, c1: fx.sgd_update(
            self.w[r:r + 1, c0:c1], self.g[r:r + 1, c0:c1], W, s["lr_shift"], s["lr_mul"],
            s["wd_mul"], ROUNDING[s["rounding"]], rng), tuple(self.w.shape), LANES, 1)


def run_cases(cases, *, seed, rng_seed=1, p_valid=1.0, p_ready=1.0, multipliers=True,
              latency_log=None):
    """Stream ``cases`` through one PostProcessor; check every output against golden."""
    junk = random.Random(seed)
    dut = PostProcessor(LANES, acc_width=GW, width=W, multipliers=multipliers)
    ops = [c.op(junk, multipliers) for c in cases]
    results = run_ops(dut, ops, seed=seed, rng_seed=rng_seed, p_valid=p_valid, p_ready=p_ready,
                      latency_log=latency_log, counter="sat_sgd")
    rng, n_sat = fx.LaneGenerators(rng_seed, LANES), 0
    for k, (case, op, res) in enumerate(zip(cases, ops, results)):
        what = f"seed {seed}, operation {k} ({case.statics}, shape {tuple(case.w.shape)})"
        want, sat = case.golden(rng)
        n_sat = sat if case.clear else n_sat + sat
        outs = res.outputs
        n = [o["n_valid"] for o in outs]
        assert n == [b["n_valid"] for b in op.beats], what
        assert [o["last"] for o in outs] == [b["last"] for b in op.beats], what
        got = from_beats([o["y"] for o in outs], n, tuple(case.w.shape))
        assert torch.equal(got, want), f"{what}\n{got}\n!=\n{want}"
        for o, b in zip(outs, op.beats):                # padding lanes pass w through
            assert o["y"][o["n_valid"]:] == b["w"][b["n_valid"]:], what
        assert res.sat_count == n_sat, f"{what}: sat_sgd {res.sat_count} != {n_sat}"
        assert res.counts["sat_req"] == 0, what
        assert res.rng_draws == next_draws(rng), f"{what}: generator state"
    return results


def random_case(gen, rnd, multipliers=True):
    M, N = rnd.randint(1, 8), rnd.randint(1, 2 * LANES + 1)
    w = torch.randint(WMIN, WMAX + 1, (M, N), generator=gen)
    kind = rnd.choice(["full", "small", "ties"])
    if kind == "full":
        g = torch.randint(GMIN, GMAX + 1, (M, N), generator=gen)
    elif kind == "small":
        g = torch.randint(-(1 << 20), 1 << 20, (M, N), generator=gen)
    else:
        g = (2 * torch.randint(-(1 << 12), 1 << 12, (M, N), generator=gen) + 1) << 9
    s = dict(lr_shift=rnd.choice([0, 1, 4, 10, 16, 24, 31, 32, rnd.randint(0, 32)]),
             rounding=rnd.randint(0, 1))
    if multipliers:
        s["lr_mul"] = rnd.choice([0, 1, 3, 1 << 15, (1 << 16) - 1, rnd.randrange(1 << 16)])
        s["wd_mul"] = rnd.choice([0, 0, 1, 5, (1 << 16) - 1, rnd.randrange(1 << 16)])
    return Case(s, w, g, clear=rnd.random() < 0.2)


# --- constructor and ports --------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, exc, msg", [
    ((None,), {}, TypeError, r"^Vector unit lanes must be a positive integer, not None$"),
    ((4,), dict(width=16.0), TypeError, r"^Operand width must be an integer, not 16.0$"),
    ((4,), dict(acc_width="32"), TypeError, r"^Accumulator width must be an integer, not '32'$"),
])
def test_constructor_validation(args, kwargs, exc, msg):
    """More than tests/test_requant.py checks (the same constructor)."""
    with pytest.raises(exc, match=msg):
        PostProcessor(*args, **kwargs)


# --- random operations ------------------------------------------------------------------------

def test_random_operations():
    """≥ 1000 beats of random updates (every static setting), random input gaps and output
    back-pressure, in one simulation."""
    seed = 21
    gen, rnd = torch.Generator().manual_seed(seed), random.Random(seed)
    cases = [random_case(gen, rnd) for _ in range(160)]
    results = run_cases(cases, seed=seed, rng_seed=0xC0FFEE, p_valid=0.8, p_ready=0.7)
    assert sum(len(r.outputs) for r in results) >= 1000
    assert sum(r.sat_count for r in results) > 0


def test_random_operations_without_multipliers():
    seed = 22
    gen, rnd = torch.Generator().manual_seed(seed), random.Random(seed)
    cases = [random_case(gen, rnd, multipliers=False) for _ in range(40)]
    cases.append(Case(dict(lr_shift=0, rounding=0), torch.tensor([[WMIN, WMAX, 0]]),
                      torch.tensor([[1, -1, GMIN]])))         # saturation both ways
    run_cases(cases, seed=seed, rng_seed=99, p_valid=0.7, p_ready=0.7, multipliers=False)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(30, 36))
def test_random_operations_more_seeds(seed):
    gen, rnd = torch.Generator().manual_seed(seed), random.Random(seed)
    mult = seed % 2 == 0
    run_cases([random_case(gen, rnd, mult) for _ in range(150)], seed=seed, rng_seed=seed,
              p_valid=rnd.choice([0.3, 0.8, 1.0]), p_ready=rnd.choice([0.3, 0.7, 1.0]),
              multipliers=mult)


# --- edge cases -------------------------------------------------------------------------------

def test_edge_cases():
    t = lambda rows: torch.tensor(rows, dtype=torch.int64)
    w_ext = t([[WMIN, WMAX, WMIN, WMAX, 0], [0, -1, 1, WMIN, WMAX]])
    g_ext = t([[GMAX, GMIN, GMIN, GMAX, GMIN], [GMAX, GMIN, 0, 0, 0]])
    cases = []
    for rounding in (0, 1):
        for lr_shift in (0, 16, 32):
            # Largest multipliers on the extreme operands: saturation both ways at small shifts.
            cases.append(Case(dict(lr_shift=lr_shift, lr_mul=(1 << 16) - 1,
                                   wd_mul=(1 << 16) - 1, rounding=rounding), w_ext, g_ext))
            cases.append(Case(dict(lr_shift=lr_shift, lr_mul=0, wd_mul=0, rounding=rounding),
                              w_ext, g_ext))
    # Round half to even: p = ±(2q+1)·2**(s-1), at s = 1, 9 and 32 (g·lr_mul reaches 2**47).
    for s, lr_mul in ((1, 1), (9, 1), (32, 1 << 15)):
        g = t([[(2 * q + 1) << (s - 1 - (15 if lr_mul > 1 else 0)) for q in range(-3, 3)]])
        cases.append(Case(dict(lr_shift=s, lr_mul=lr_mul, rounding=0),
                          torch.zeros_like(g), g))
    cases.append(Case(dict(lr_shift=32, lr_mul=1, rounding=0), t([[0, 0, 0]]),
                      t([[GMIN, GMAX, -(1 << 30)]])))
    # Weight decay alone, most negative weights.
    cases.append(Case(dict(lr_shift=3, lr_mul=0, wd_mul=7, rounding=0), w_ext, g_ext))
    # Stochastic at shift 0 takes one draw per weight; one element; zero rows.
    cases.append(Case(dict(lr_shift=0, rounding=1), t([[5, -5, 0]] * 3), t([[1, 2, 3]] * 3)))
    cases.append(Case(dict(lr_shift=7, rounding=1), t([[WMIN]]), t([[GMIN]])))
    cases.append(Case(dict(lr_shift=7, rounding=1), torch.zeros(0, 2, dtype=torch.int64),
                      torch.zeros(0, 2, dtype=torch.int64)))
    cases.append(Case(dict(lr_shift=0, lr_mul=(1 << 16) - 1, rounding=0), w_ext, g_ext,
                      clear=True))
    results = run_cases(cases, seed=23, rng_seed=0xDEADBEEF, p_valid=0.7, p_ready=0.6)
    assert results[0].sat_count > 0 and results[-1].sat_count > 0


def test_stochastic_known_seed():
    """Golden's draws spelled out: lr_shift 32, lr_mul 1: w − ((g + d) >> 32), lane l taking the
    first draw of its generator, which starts at 1 ^ l·0x6A09E667."""
    d = [fx.Xorshift32.step((1 ^ (l * 0x6A09E667)) & 0xFFFF_FFFF) for l in range(4)]
    w = torch.tensor([[3, -3, 0, 7]])
    g = torch.tensor([[GMAX, GMIN, 0, (1 << 31) - 5]])
    want = [wi - ((gi + di) >> 32) for wi, gi, di in zip(w[0].tolist(), g[0].tolist(), d)]
    res = run_cases([Case(dict(lr_shift=32), w, g)], seed=24, rng_seed=1)
    assert res[0].outputs[0]["y"] == want
    assert res[0].rng_draws == [fx.Xorshift32.step(v) for v in d]


# --- timing and counter -----------------------------------------------------------------------

@pytest.mark.parametrize("multipliers", [True, False])
def test_latency_and_throughput(multipliers):
    gen = torch.Generator().manual_seed(25)
    w = torch.randint(WMIN, WMAX + 1, (30, LANES), generator=gen)
    g = torch.randint(GMIN, GMAX + 1, (30, LANES), generator=gen)
    log = []
    res = run_cases([Case(dict(lr_shift=20), w, g)], seed=25, multipliers=multipliers,
                    latency_log=log)
    assert all(out - took == PostProcessor.LATENCY for took, out in log), log
    assert res[0].last_out - res[0].first_in == 30 - 1 + PostProcessor.LATENCY


def test_sat_counter_sticks_and_clears():
    """The counter stops at 2**32 - 1; a beat leaving in a clear cycle is counted from zero."""
    dut = PostProcessor(LANES)
    top = UnitWithRng(dut)
    pack = Packer(dut.in_layout)
    beat = lambda n: pack.pack(dict(a=[GMAX] * LANES, w=[WMIN] * LANES, mask=[0] * LANES,
                                    n_valid=n, last=1))

    async def tb(ctx):
        ctx.set(dut.op, PostOp.SGD)
        ctx.set(dut.lr_mul, 1)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.sat_sgd, (1 << 32) - 3)
        ctx.set(dut.i.payload.as_value(), beat(LANES))
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.payload.as_value(), beat(2))
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(PostProcessor.LATENCY - 2)
        assert ctx.get(dut.o.valid) and ctx.get(dut.sat_sgd) == (1 << 32) - 3
        await ctx.tick()
        assert ctx.get(dut.sat_sgd) == (1 << 32) - 1
        ctx.set(dut.sat_clr, 1)
        await ctx.tick()
        ctx.set(dut.sat_clr, 0)
        assert ctx.get(dut.sat_sgd) == 2 and not ctx.get(dut.busy)
        assert ctx.get(dut.sat_req) == 0                     # SGD counts only in sat_sgd

    run_sim(top, tb)
