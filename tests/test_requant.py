# amaranth: UnusedElaboratable=no
"""The post-processing datapath (rtl/postproc.py) configured for REQ and RELUB against golden
requantize_act / relu_backward, bit for bit (tests/test_sgd.py: the same datapath for SGD)."""

import random

import pytest
import torch
from amaranth.hdl import Shape, signed, unsigned

import golden.fixedpoint as fx
from rtl.postproc import PostOp, PostProcessor
from rtl.rng import RngSignature
from spec.timing import REQ_LATENCY
from tests.vector_units_sim import Op, from_beats, next_draws, per_beat, run_ops, to_beats

LANES = 4
W, AW = 16, 32
ROUNDING = {0: "nearest-even", 1: "stochastic"}


# --- building operations and checking them against golden ------------------------------------

class Case:
    """One operation: tensors, static inputs, and golden's expected results."""

    def __init__(self, statics, acc=None, grad=None, mask=None, clear=False):
        self.statics = dict(shift=0, relu_en=0, rounding=0, backward=0)
        self.statics.update(statics)
        self.acc, self.grad, self.mask, self.clear = acc, grad, mask, clear

    @property
    def shape(self):
        return tuple((self.grad if self.statics["backward"] else self.acc).shape)

    def op(self, junk):
        """The beats and the datapath's statics; padding lanes, the fields the mode ignores and
        SGD's multipliers hold junk."""
        M, N = self.shape
        rnd = lambda lo, hi: (lambda: junk.randrange(lo, hi))
        a_lo, w_lo = -(1 << (AW - 1)), -(1 << (W - 1))
        fill = lambda t, lo: t if t is not None else torch.tensor(
            [[junk.randrange(lo, -lo) for _ in range(N)] for _ in range(M)], dtype=torch.int64)
        acc = fill(self.acc, a_lo)
        grad = fill(self.grad, w_lo)
        mask = self.mask if self.mask is not None else fill(None, -1).abs()
        cols = [to_beats(acc, LANES, rnd(a_lo, -a_lo)), to_beats(grad, LANES, rnd(w_lo, -w_lo)),
                to_beats(mask, LANES, rnd(0, 2))]
        beats = []
        for k, ((a, n), (g, _), (mk, _)) in enumerate(zip(*cols)):
            beats.append(dict(a=a, w=g, mask=mk, n_valid=n, last=int(k == len(cols[0]) - 1)))
        s = self.statics
        statics = dict(op=PostOp.RELUB if s["backward"] else PostOp.REQ, shift=s["shift"],
                       relu_en=s["relu_en"], rounding=s["rounding"],
                       lr_mul=junk.randrange(1 << W), wd_mul=junk.randrange(1 << W))
        return Op(statics, beats, clear=self.clear)

    def golden(self, rng):
        """``(y, mask, n_sat)`` of golden, advancing ``rng`` as golden does."""
        s = self.statics
        if s["backward"]:
            y = fx.relu_backward(self.grad, self.mask)
            return y, (self.mask != 0).to(torch.int64), 0
        return per_beat(lambda r, c0, c1: fx.requantize_act(
            self.acc[r:r + 1, c0:c1], s["shift"], W, relu=bool(s["relu_en"]),
            rounding=ROUNDING[s["rounding"]], rng=rng), self.shape, LANES, 2)


def run_cases(cases, *, seed, rng_seed=1, p_valid=1.0, p_ready=1.0, latency_log=None):
    """Stream ``cases`` through one PostProcessor; check every output against golden."""
    junk = random.Random(seed)
    dut = PostProcessor(LANES, acc_width=AW, width=W)
    results = run_ops(dut, [c.op(junk) for c in cases], seed=seed, rng_seed=rng_seed,
                      p_valid=p_valid, p_ready=p_ready, latency_log=latency_log,
                      counter="sat_req")
    rng, n_sat = fx.LaneGenerators(rng_seed, LANES), 0
    for k, (case, res) in enumerate(zip(cases, results)):
        what = f"seed {seed}, operation {k} ({case.statics}, shape {case.shape})"
        y, mask, sat = case.golden(rng)
        n_sat = sat if case.clear else n_sat + sat
        outs = res.outputs
        n = [o["n_valid"] for o in outs]
        assert n == [b["n_valid"] for b in case.op(random.Random(0)).beats], what
        assert [o["last"] for o in outs] == [int(j == len(outs) - 1) for j in range(len(outs))]
        got_y = from_beats([o["y"] for o in outs], n, case.shape)
        got_m = from_beats([o["mask"] for o in outs], n, case.shape)
        assert torch.equal(got_y, y), f"{what}: y\n{got_y}\n!=\n{y}"
        assert torch.equal(got_m, mask), f"{what}: mask\n{got_m}\n!=\n{mask}"
        for o in outs:                                  # padding lanes come out as 0
            assert o["y"][o["n_valid"]:] == [0] * (LANES - o["n_valid"]), what
            assert o["mask"][o["n_valid"]:] == [0] * (LANES - o["n_valid"]), what
        assert res.sat_count == n_sat, f"{what}: sat_req {res.sat_count} != {n_sat}"
        assert res.counts["sat_sgd"] == 0, what
        assert res.rng_draws == next_draws(rng), f"{what}: generator state"
    return results


def random_acc(g, shape, shift, kind):
    """Accumulators that exercise the range at this shift: full range, in range, or near ties."""
    lo, hi = -(1 << (AW - 1)), 1 << (AW - 1)
    if kind == "full":
        return torch.randint(lo, hi, shape, generator=g)
    if kind == "fits":          # mostly representable after the shift, some saturating
        span = min(hi, 1 << min(W + shift, AW - 1))
        return torch.randint(-span, span, shape, generator=g)
    # near ties: odd multiples of 2**(shift-1), ± 1 sometimes
    q = torch.randint(-(1 << 14), 1 << 14, shape, generator=g)
    t = (2 * q + 1) << max(shift - 1, 0)
    t = t + torch.randint(-1, 2, shape, generator=g) * (torch.rand(shape, generator=g) < 0.3)
    return t.clamp(lo, hi - 1)


def random_case(g, rnd):
    M, N = rnd.randint(1, 9), rnd.randint(1, 2 * LANES + 1)
    if rnd.random() < 0.2:
        return Case(dict(backward=1),
                    grad=torch.randint(-(1 << (W - 1)), 1 << (W - 1), (M, N), generator=g),
                    mask=torch.randint(0, 2, (M, N), generator=g), clear=rnd.random() < 0.2)
    shift = rnd.choice([0, 1, 2, 8, 12, 16, 20, 31, 32, rnd.randint(0, 32)])
    s = dict(shift=shift, relu_en=rnd.randint(0, 1), rounding=rnd.randint(0, 1))
    acc = random_acc(g, (M, N), shift, rnd.choice(["full", "fits", "ties"]))
    return Case(s, acc=acc, clear=rnd.random() < 0.2)


# --- constructor and ports --------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, exc, msg", [
    ((0,), {}, ValueError, r"^Vector unit lanes must be a positive integer, not 0$"),
    (("4",), {}, TypeError, r"^Vector unit lanes must be a positive integer, not '4'$"),
    ((True,), {}, TypeError, r"^Vector unit lanes must be a positive integer, not True$"),
    ((4,), dict(width=1), ValueError, r"^Operand width must be at least 2, not 1$"),
    ((4,), dict(width="16"), TypeError, r"^Operand width must be an integer, not '16'$"),
    ((4,), dict(acc_width=31), ValueError,
     r"^Accumulator width must be at least twice the operand width \(32\), not 31$"),
    ((4,), dict(width=8, acc_width=15), ValueError,
     r"^Accumulator width must be at least twice the operand width \(16\), not 15$"),
    ((4,), dict(acc_width=32.0), TypeError, r"^Accumulator width must be an integer, not 32.0$"),
    ((4,), dict(multipliers=1), TypeError, r"^Multipliers must be a bool, not 1$"),
    ((4,), dict(early_statics=1), TypeError, r"^Early statics must be a bool, not 1$"),
])
def test_constructor_validation(args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        PostProcessor(*args, **kwargs)


def test_ports():
    dut = PostProcessor(5, acc_width=24, width=12)
    assert (dut.lanes, dut.acc_width, dut.width, dut.multipliers) == (5, 24, 12, True)
    assert PostProcessor.LATENCY == REQ_LATENCY
    p = dut.in_layout
    assert p["a"].shape.elem_shape == signed(24) and p["a"].shape.length == 5
    assert p["w"].shape.elem_shape == signed(12)
    assert p["mask"].shape.length == 5 and Shape.cast(p["n_valid"].shape) == unsigned(3)
    q = dut.out_layout
    assert q["y"].shape.elem_shape == signed(12) and q["y"].shape.length == 5
    assert set(dict(q.members)) == {"y", "mask", "n_valid", "last"}
    assert dut.signature.members["rng"].signature == RngSignature(5)
    assert len(dut.shift) == 6 and len(dut.sat_req) == len(dut.sat_sgd) == 32
    assert len(dut.lr_mul) == len(dut.wd_mul) == 12
    small = PostProcessor(5, multipliers=False)
    assert small.multipliers is False
    assert "lr_mul" not in small.signature.members and "wd_mul" not in small.signature.members


# --- random operations ------------------------------------------------------------------------

def test_random_operations():
    """≥ 1000 beats of random operations (both modes, every static setting), with random input
    gaps and random output back-pressure, in one simulation."""
    seed = 1
    g, rnd = torch.Generator().manual_seed(seed), random.Random(seed)
    cases = [random_case(g, rnd) for _ in range(140)]
    results = run_cases(cases, seed=seed, rng_seed=0x1234567, p_valid=0.8, p_ready=0.7)
    assert sum(len(r.outputs) for r in results) >= 1000
    assert any(c.statics["rounding"] and not c.statics["backward"] for c in cases)


def test_random_operations_extremes():
    seed = 9
    g, rnd = torch.Generator().manual_seed(seed), random.Random(seed)
    cases = [random_case(g, rnd) for _ in range(30)]
    amin, amax = -(1 << 31), (1 << 31) - 1
    cases += [Case(dict(shift=s, rounding=r, relu_en=1), acc=torch.tensor([[amin, amax, -1, 1, 0]]))
              for s in (0, 32) for r in (0, 1)]
    run_cases(cases, seed=seed, rng_seed=77, p_valid=0.7, p_ready=0.7)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 8))
def test_random_operations_more_seeds(seed):
    g, rnd = torch.Generator().manual_seed(seed), random.Random(seed)
    run_cases([random_case(g, rnd) for _ in range(120)], seed=seed, rng_seed=seed,
              p_valid=rnd.choice([0.3, 0.8, 1.0]), p_ready=rnd.choice([0.3, 0.7, 1.0]))


# --- edge cases -------------------------------------------------------------------------------

def test_edge_cases():
    amin, amax, wmin, wmax = -(1 << 31), (1 << 31) - 1, -(1 << 15), (1 << 15) - 1
    t = lambda rows: torch.tensor(rows, dtype=torch.int64)
    extremes = t([[amin, amax, 0, -1, 1], [amax, amin, 1 << 15, -(1 << 15) - 1, (1 << 15) - 1]])
    ties = lambda s: t([[v for q in range(-4, 4) if amin <= (v := (2 * q + 1) << (s - 1)) <= amax]])
    cases = []
    for relu in (0, 1):
        for rounding in (0, 1):
            # Saturation both ways at shift 0; nothing saturates at shift 32.
            cases.append(Case(dict(shift=0, relu_en=relu, rounding=rounding), acc=extremes))
            cases.append(Case(dict(shift=32, relu_en=relu, rounding=rounding), acc=extremes))
    # Round half to even at several shifts, both signs, relu off and on.
    for s in (1, 2, 5, 16, 31):
        cases.append(Case(dict(shift=s), acc=ties(s)))
        cases.append(Case(dict(shift=s, relu_en=1), acc=ties(s)))
    # The tie at shift 32: acc = -2**31 is -0.5 (rounds to 0), both rounding modes, relu.
    for rounding in (0, 1):
        cases.append(Case(dict(shift=32, rounding=rounding), acc=t([[amin, amin + 1, amax]])))
        cases.append(Case(dict(shift=32, rounding=rounding, relu_en=1), acc=t([[amin, amax]])))
    # The largest shift on small values; shift 0 with ReLU on the extremes.
    cases.append(Case(dict(shift=31), acc=t([[amin, amax, 1 << 30, -(1 << 30), 0]])))
    cases.append(Case(dict(shift=0, relu_en=1), acc=extremes))
    # Stochastic rounding at shift 0 still takes one draw per element.
    cases.append(Case(dict(shift=0, rounding=1), acc=t([[1, -2, 3]] * 3)))
    # One element; zero rows (no beats: nothing moves).
    cases.append(Case(dict(shift=3, rounding=1), acc=t([[amin]])))
    cases.append(Case(dict(shift=3, rounding=1), acc=torch.zeros(0, 3, dtype=torch.int64)))
    # Backward: most negative gradient, mask on and off, short rows.
    cases.append(Case(dict(backward=1), grad=t([[wmin, wmax, -1, 7, wmin]] * 2),
                      mask=t([[1, 1, 0, 1, 0], [0, 0, 1, 0, 1]])))
    # The saturation counter: cleared, then counting again.
    cases.append(Case(dict(shift=0), acc=extremes, clear=True))
    results = run_cases(cases, seed=11, rng_seed=0xDEADBEEF, p_valid=0.7, p_ready=0.6)
    assert results[0].sat_count == 6          # the extremes saturate in 6 of 10 elements
    assert results[-1].sat_count == 6


def test_stochastic_known_seed():
    """Golden's own draws, spelled out: with seed 1 and shift 32, y = (x + d) >> 32, the element
    in row r and lane l taking draw r of lane l's generator, which starts at 1 ^ l·0x6A09E667."""
    d = [[int(v) for v in fx.Xorshift32((1 ^ (l * 0x6A09E667)) & 0xFFFF_FFFF).draw(2)]
         for l in range(3)]
    acc = torch.tensor([[0, 0, 0], [(1 << 31) - 1, -(1 << 31), 0]], dtype=torch.int64)
    want = [[(a + d[l][r]) >> 32 for l, a in enumerate(row)] for r, row in enumerate(acc.tolist())]
    res = run_cases([Case(dict(shift=32, rounding=1), acc=acc)], seed=3, rng_seed=1)
    got = from_beats([o["y"] for o in res[0].outputs], [o["n_valid"] for o in res[0].outputs],
                     (2, 3))
    assert got.tolist() == want
    # lanes 0..2 stepped twice, lane 3 (no element) not at all
    assert res[0].rng_draws[:3] == [fx.Xorshift32.step(d[l][-1]) for l in range(3)]
    assert res[0].rng_draws[3] == fx.Xorshift32.step((1 ^ (3 * 0x6A09E667)) & 0xFFFF_FFFF)


# --- timing -----------------------------------------------------------------------------------

def test_latency_and_throughput():
    """Each beat comes out LATENCY cycles after it is taken; one beat per cycle when ready."""
    g = torch.Generator().manual_seed(5)
    acc = torch.randint(-(1 << 31), 1 << 31, (40, LANES), generator=g)
    log = []
    res = run_cases([Case(dict(shift=12, rounding=1), acc=acc)], seed=5, latency_log=log)
    assert all(out - took == PostProcessor.LATENCY for took, out in log), log
    assert res[0].last_out - res[0].first_in == 40 - 1 + PostProcessor.LATENCY


def test_backpressure_latency_bound():
    """Under back-pressure a beat never leaves earlier than LATENCY cycles after it was taken."""
    g = torch.Generator().manual_seed(6)
    log = []
    run_cases([Case(dict(shift=8), acc=torch.randint(-(1 << 20), 1 << 20, (30, 3), generator=g))],
              seed=6, p_valid=0.5, p_ready=0.3, latency_log=log)
    assert len(log) == 30 and all(out - took >= PostProcessor.LATENCY for took, out in log)


def test_sat_counter_sticks_and_clears():
    """The counter stops at 2**32 - 1; a beat leaving in a clear cycle is counted from zero."""
    from tests.vector_units_sim import Packer, UnitWithRng
    from tests.simutil import run_sim
    dut = PostProcessor(LANES)
    top = UnitWithRng(dut)
    pack = Packer(dut.in_layout)
    amax = (1 << 31) - 1
    beat = lambda n: pack.pack(dict(a=[amax] * LANES, w=[0] * LANES,
                                    mask=[0] * LANES, n_valid=n, last=1))

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.op, PostOp.REQ)
        ctx.set(dut.sat_req, (1 << 32) - 3)
        ctx.set(dut.i.payload.as_value(), beat(LANES))
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.payload.as_value(), beat(2))          # 2 saturating lanes
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(PostProcessor.LATENCY - 2)
        assert ctx.get(dut.o.valid) and ctx.get(dut.sat_req) == (1 << 32) - 3
        await ctx.tick()                                     # first beat leaves: +4, sticks
        assert ctx.get(dut.sat_req) == (1 << 32) - 1
        ctx.set(dut.sat_clr, 1)                              # second beat leaves while clearing
        await ctx.tick()
        ctx.set(dut.sat_clr, 0)
        assert ctx.get(dut.sat_req) == 2 and not ctx.get(dut.busy)
        assert ctx.get(dut.sat_sgd) == 0                     # REQ counts only in sat_req
        ctx.set(dut.sat_clr, 1)
        await ctx.tick()
        assert ctx.get(dut.sat_req) == 0

    run_sim(top, tb)
