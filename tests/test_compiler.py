"""The MLP and matmul compiler on the golden device: dataflow bit-exact against golden ops,
memory plans, and the description's validation."""

import hashlib

import numpy as np
import pytest
import torch

from firmware.compiler import PROGRAM_KINDS, MLPDescription, compile_matmul, compile_mlp
from firmware.compiler import _MatmulPlan, mlp_lanes
from firmware.plan import BankAllocator, MemoryLayout
from firmware import Accelerator
from golden import fixedpoint as fx
from golden import softmax as gsm
from golden.mlp import FixedMLP, init_float_params, rng_seed
from spec import isa
from spec.params import DEFAULT_CONFIG, Formats
from spec.soc import SocConfig

SOC4 = SocConfig(config=DEFAULT_CONFIG.with_array(rows=4, cols=4), mem_words=1 << 16)


def _small_array(rows, cols, **kwargs):
    """A SoC with an array of ``rows × cols`` and scratchpads deep enough for the 64-32-10
    network in panels of ``min(rows, cols)``."""
    kwargs = dict(dict(mem_words=1 << 16, sp_depth=2048, acc_depth=2048), **kwargs)
    return SocConfig(config=DEFAULT_CONFIG.with_array(rows=rows, cols=cols), **kwargs)


SOC24, SOC42, SOC22 = _small_array(2, 4), _small_array(4, 2), _small_array(2, 2)

# (soc, sizes, batch): partial weight panels, partial / single sample panels, three layers
CASES = [
    (SOC4, (13, 9, 6), 8),
    (SOC4, (5, 7, 6, 3), 16),
    (SocConfig(mem_words=1 << 16), (10, 12, 4), 4),        # batch < lanes: one partial panel
    (SocConfig(mem_words=1 << 16), (64, 32, 10), 32),
    # arrays with rows ≠ cols: panels of min(rows, cols) (docs/firmware.md)
    (SOC24, (64, 32, 10), 32),
    (SOC42, (64, 32, 10), 32),
    (SOC24, (5, 7, 6, 3), 16),
    (SOC42, (13, 9, 6), 8),
    (_small_array(1, 1), (13, 9, 6), 8),
]


def _data(sizes, n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, sizes[0], generator=g)
    y = torch.randint(0, sizes[-1], (n,), generator=g)
    return X, y


def _direct_step(Ws, x, t, desc):
    """One training step written directly with golden ops (nearest-even everywhere):
    the specification of docs/training.md on whole matrices."""
    f, st, L = desc.formats, desc.step, desc.layers
    aug = lambda a: torch.cat([a, torch.full((a.shape[0], 1), st.ones)], dim=1)
    acts, masks = [x], []
    for l, W in enumerate(Ws, 1):
        a, m, _ = fx.requantize_act(fx.int_gemm(aug(acts[-1]), W, 32), st.fwd_shift, f.width,
                                    relu=l < L)
        acts.append(a)
        masks.append(m)
    g = gsm.softmax_xent_grad(acts[-1], t, z_frac=f.act_frac, prob_frac=f.prob_frac,
                              grad_frac=f.grad_frac, width=f.width)
    d = fx.relu_backward(g, masks[-1])
    new = list(Ws)
    for l in range(L, 0, -1):
        W = Ws[l - 1]
        gw = fx.int_gemm(aug(acts[l - 1]).T, d, 32)
        e = fx.int_gemm(d, W[:-1].T, 32)
        new[l - 1] = fx.sgd_update(W, gw, f.width, st.lr_shift, st.lr_mul,
                                   rounding="nearest-even")[0]
        if l > 1:
            d = fx.relu_backward(fx.requantize_act(e, st.bwd_shift, f.width)[0], masks[l - 2])
    return new


@pytest.mark.parametrize("soc,sizes,batch", CASES)
def test_one_step_matches_direct_reference(soc, sizes, batch):
    seed = 3
    acc = Accelerator(soc=soc)
    net = acc.mlp(sizes, batch=batch, rounding="nearest-even", seed=seed)
    X, y = _data(sizes, batch, seed)
    # bigger learning rate: every weight moves, so a wrong gradient shows
    net.fit(X, y, steps=1, lr=4.0)
    desc = net.desc.with_lr(4.0)
    ref = FixedMLP(sizes)
    xq, t = ref.quantize_inputs(X), ref.targets(y)
    from golden.data import batch_order
    idx = batch_order(batch, batch, 1, seed)[0]
    W0 = [p for p in FixedMLP(sizes).load_float(init_float_params(sizes, seed)).params]
    expect = _direct_step(W0, xq[idx], t[idx], desc)
    for l, (w, e, w0) in enumerate(zip(net.weights, expect, W0), 1):
        assert (w != w0.numpy()).any(), f"layer {l} did not change (seed {seed})"
        assert np.array_equal(w, e.numpy()), f"layer {l} differs (seed {seed})"


@pytest.mark.parametrize("soc,sizes,batch", CASES)
def test_training_matches_golden_trainer(soc, sizes, batch):
    """Several steps with stochastic rounding: the device run equals FixedMLP.train with
    weight panels of the compiled program's `lanes` columns (the SoC's lanes on a square
    array, min(rows, cols) on others: the same random draws), and so do its logits."""
    seed, steps = 5, 6
    acc = Accelerator(soc=soc)
    net = acc.mlp(sizes, batch=batch, seed=seed)
    X, y = _data(sizes, 3 * batch + 1, seed)
    net.fit(X, y, schedule=[(steps - 2, 2**-1), (2, 2**-3)])
    ref = FixedMLP(sizes, rng_seed=rng_seed(seed)).load_float(init_float_params(sizes, seed))
    ref.train(X, y, [(steps - 2, 2**-1), (2, 2**-3)], batch=batch, seed=seed,
              update_lanes=net.compiled.lanes)
    for l, (w, r) in enumerate(zip(net.weights, ref.params), 1):
        assert np.array_equal(w, r.numpy()), f"layer {l} differs (seed {seed})"
    assert np.array_equal(net.logits(X), ref.logits(X).numpy())
    z = ref.logits(X)
    p = gsm.softmax_probs(z, z_frac=ref.formats.act_frac, prob_frac=ref.formats.prob_frac)
    assert np.array_equal(net.probs(X), p.numpy())
    assert np.array_equal(net.predict(X), ref.predict(X).numpy())


def test_training_in_chunks_and_temperature():
    """A run longer than the data region holds is split into several device runs; soft
    targets and a temperature follow the golden trainer too."""
    soc = SocConfig(config=DEFAULT_CONFIG.with_array(rows=4, cols=4), mem_words=1536)
    sizes, batch, seed = (6, 5, 3), 4, 2
    acc = Accelerator(soc=soc)
    net = acc.mlp(sizes, batch=batch, seed=seed, temperature=2.0)
    steps = 2 * net.compiled.train_capacity + 1
    assert steps > 10
    X, _ = _data(sizes, 20, seed)
    soft = torch.softmax(torch.randn(20, 3, generator=torch.Generator().manual_seed(1)), dim=1)
    net.fit(X, soft, steps=steps, lr=2**-2)
    ref = FixedMLP(sizes, rng_seed=rng_seed(seed)).load_float(init_float_params(sizes, seed))
    ref.train(X, soft, [(steps, 2**-2)], batch=batch, seed=seed, temperature=2.0,
              update_lanes=soc.lanes)
    for w, r in zip(net.weights, ref.params):
        assert np.array_equal(w, r.numpy())
    assert net.steps == steps


def test_memory_plan_regions_do_not_overlap():
    cm = compile_mlp(MLPDescription((64, 32, 10)))
    regions = sorted(cm.regions.values(), key=lambda r: r.addr)
    for a, b in zip(regions, regions[1:]):
        assert a.end <= b.addr
    assert regions[-1].end <= cm.soc.mem_words
    # one step of slack: the last step prefetches the next inputs
    assert cm.step_words == 4 * (65 + 10) * 8
    assert cm.train_capacity == cm.regions["data"].words // cm.step_words - 1
    for kind, p in cm.programs.items():
        assert cm.regions[kind].addr == p.base and cm.regions[kind].words == 8 * len(p)


def test_scratchpad_plan_keeps_operands_apart():
    """Operands one instruction reads together are in different banks (else the device would
    halt with BANK_CONFLICT), and every buffer lies in one bank."""
    cm = compile_mlp(MLPDescription((64, 32, 10)))
    depth = cm.soc.sp_depth
    sp = cm.sp_plan["train"]
    bank = {n: r // depth for n, r in sp.items()}
    for a, b in (("W1", "F0"), ("W2", "F1"), ("Sin1", "Sd1"), ("Sin2", "Sd2"), ("WT2", "D2"),
                 ("Z", "T"), ("G2", "M2"), ("Gs1", "Ms1"), ("Sin2", "Ms1"), ("I", "F0"),
                 ("I", "D2"), ("I", "W2")):
        assert bank[a] != bank[b], (a, b)


def test_bank_allocator():
    al = BankAllocator(2, 10)
    al.add("a", 6)
    al.add("b", 6)
    al.add("w", 5, persistent=True)
    al.apart("a", "w")
    rows = al.allocate({"a": (0, 1), "b": (2, 3), "w": (0, 3)})
    # a and b are never live together: they share rows in the bank without w
    assert rows["a"] == rows["b"] and rows["a"] // 10 != rows["w"] // 10
    al = BankAllocator(2, 10)
    al.add("a", 6)
    al.add("b", 6)
    al.add("c", 6)
    with pytest.raises(ValueError, match=r"Operand scratchpad is too small for this network: "
                                         r"buffer 'c' \(6 rows\) does not fit"):
        al.allocate({"a": (0, 2), "b": (1, 2), "c": (2, 2)})
    lay = MemoryLayout(100)
    lay.add("x", 60)
    with pytest.raises(ValueError, match=r"Main memory is too small: region 'y' \(50 words\)"):
        lay.add("y", 50)


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(sizes=(4,)), ValueError, r"Layer sizes must list at least an input and an output"),
    (dict(sizes=(4, 0)), ValueError, r"Layer size must be a positive integer, not 0"),
    (dict(sizes="ab"), TypeError, r"Layer sizes must be a sequence of integers"),
    (dict(sizes=(4, 64)), ValueError, r"Classes must be at most 63 \(the SMX classes field\), "
                                      r"not 64"),
    (dict(sizes=(4, 3), batch=12), ValueError, r"Batch size must be a power of two, not 12"),
    (dict(sizes=(4, 3), batch=0), ValueError, r"Batch size must be a positive integer, not 0"),
    (dict(sizes=(4, 3), rounding="up"), ValueError, r"Rounding must be one of 'nearest-even', "
                                                    r"'stochastic', not 'up'"),
    (dict(sizes=(4, 3), lr=0.1), ValueError, r"Learning rate must be m·2\*\*-k"),
    (dict(sizes=(4, 3), lr="x"), TypeError, r"Learning rate must be a real number, not 'x'"),
    (dict(sizes=(4, 3), lr=2.0**-40), ValueError, r"needs an SGD shift of .*, more than 32"),
    (dict(sizes=(4, 3), formats=Formats(act_frac=15)), ValueError,
     r"Activation fraction bits must be at most width − 2 \(14\)"),
    (dict(sizes=(4, 3), formats=8), TypeError, r"Formats must be a Formats, not 8"),
    (dict(sizes=(4, 3), temperature=0), ValueError, r"Temperature must be positive, not 0"),
])
def test_bad_descriptions(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        MLPDescription(**kwargs)


def test_bad_targets_for_compile():
    with pytest.raises(TypeError, match=r"Description must be an MLPDescription, not \(4, 3\)"):
        compile_mlp((4, 3))
    with pytest.raises(TypeError, match=r"SoC configuration must be a SocConfig, not 8"):
        compile_mlp(MLPDescription((4, 3)), 8)
    with pytest.raises(TypeError, match=r"SoC configuration must be a SocConfig, not 8"):
        compile_matmul(2, 2, 2, soc=8)
    # 2×4 takes panels of 2: the default banks are too small for the 64-32-10 network
    wide = SocConfig(config=DEFAULT_CONFIG.with_array(rows=2, cols=4))
    with pytest.raises(ValueError, match=r"layer 1 \(64 inputs, 32 outputs\)'s weights need 1040 "
                                         r"rows in one bank \(16 panels of 2 outputs × 65 rows"):
        compile_mlp(MLPDescription((64, 32, 10)), wide)
    one_bank = SocConfig(sp_banks=1)
    with pytest.raises(ValueError, match=r"The compiler needs at least 2 scratchpad banks, "
                                         r"not 1"):
        compile_mlp(MLPDescription((4, 3)), one_bank)
    small = SocConfig(sp_banks=2, sp_depth=64)
    with pytest.raises(ValueError, match=r"Operand scratchpad is too small for this network"):
        compile_mlp(MLPDescription((64, 32, 10)), small)
    with pytest.raises(ValueError, match=r"Main memory is too small"):
        compile_mlp(MLPDescription((64, 32, 10)), SocConfig(mem_words=4096))


@pytest.mark.parametrize("args,exc,msg", [
    ((0, 2, 2), ValueError, r"Rows of A must be a positive integer, not 0"),
    ((2, 0, 2), ValueError, r"Inner dimension must be a positive integer, not 0"),
    ((2, 2, 1.0), TypeError, r"Columns of B must be a positive integer, not 1.0"),
    ((2, 2, 2, 33), ValueError, r"Shift must be between 0 and 32, not 33"),
    ((2, 2, 2, 0, "floor"), ValueError, r"Rounding must be one of"),
])
def test_bad_matmul(args, exc, msg):
    with pytest.raises(exc, match=msg):
        compile_matmul(*args)


def _program_hash(words):
    return hashlib.sha256(repr([int(w) for w in words]).encode()).hexdigest()[:16]


# Programs on square arrays as compiled before arrays with rows ≠ cols were supported: that
# support must not change them (a change of the ISA's encoding or of the recipe's constants
# changes these too: recompute them then, and say so).
SQUARE_PROGRAMS = {
    (8, (64, 32, 10), 32): "fb223faaa88bf662",
    (2, (64, 32, 10), 32): "a461abc7640f57cc",
    (4, (13, 9, 6), 8): "f36998223a09d8b6",
    (1, (13, 9, 6), 8): "578013e972b738ea",
    (8, (40, 70, 30)): "5c23990c6199ae6e",
    (8, (33, 200, 17)): "676d3e5b04dfecfd",
    (2, (40, 70, 30)): "cbff7b423a65460f",
    (2, (33, 200, 17)): "598e20bb5d65e2d7",
    (4, (33, 200, 17)): "3e572dc9689467b1",
}


def _square(n):
    if n <= 2:
        return _small_array(n, n)
    return SocConfig(config=DEFAULT_CONFIG.with_array(rows=n, cols=n), mem_words=1 << 16)


@pytest.mark.parametrize("key", SQUARE_PROGRAMS)
def test_square_programs_unchanged(key):
    soc = _square(key[0])
    if len(key) == 3:
        n, sizes, batch = key
        kinds = PROGRAM_KINDS if sizes[-1] == 10 else ("train", "logits", "probs")
        cm = compile_mlp(MLPDescription(sizes, batch=batch), soc, kinds=kinds)
        words = [w for k in sorted(cm.programs) for w in cm.programs[k].assemble()]
    else:
        mkn = key[1]
        stochastic = mkn[1] > 100
        cm = compile_matmul(*mkn, shift=3, rounding="stochastic" if stochastic else "nearest-even",
                            soc=soc, seed=7 if stochastic else None)
        words = cm.program.assemble()
    assert _program_hash(words) == SQUARE_PROGRAMS[key]


def _gemms(program):
    return sum(isa.decode(w)[0] is isa.Op.GEMM for w in program.assemble())


def test_rect_programs():
    """The training program on R × C with R < C is the R × R array's (panels of R lanes, the
    array's other columns compute lanes nobody reads); with R > C it is the C × C array's with
    each GEMM split into its row tiles and the accumulator panels R − C rows apart. The matmul
    uses the whole array: A panels of R rows, B and C panels of C columns."""
    desc = MLPDescription((64, 32, 10), batch=32)
    sq, wide, tall = (compile_mlp(desc, soc, kinds=PROGRAM_KINDS)
                      for soc in (SOC22, SOC24, SOC42))
    assert sq.lanes == wide.lanes == tall.lanes == 2
    assert mlp_lanes(SOC24) == mlp_lanes(SOC42) == 2 and mlp_lanes(SOC4) == 4
    for kind, p in sq.programs.items():
        assert p.assemble() == wide.programs[kind].assemble(), kind
    assert _gemms(tall.programs["train"]) > _gemms(sq.programs["train"])
    for soc, (R, C) in ((SOC24, (2, 4)), (SOC42, (4, 2))):
        cm = compile_matmul(13, 7, 9, soc=soc)
        assert (cm.rows, cm.cols) == (R, C)
        a = np.arange(13 * 7).reshape(13, 7)
        b = np.arange(7 * 9).reshape(7, 9)
        # A: row panel i transposed at i·R·k; B: column panel j at j·C·k
        assert list(cm.pack_a(a)[:2 * R]) == [a[r, kk] for kk in range(2) for r in range(R)]
        assert list(cm.pack_b(b)[C * 7:C * 7 + 2]) == [b[0, C], b[0, C + 1]]
        c = np.arange(13 * 9).reshape(13, 9)
        words = np.concatenate([c[:, c0:c0 + C].ravel() for c0 in range(0, 9, C)])
        assert np.array_equal(cm.unpack_c(words), c)


def _wrap32(v):
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def _ref_matmul(a, b, shift, soc, rounding="nearest-even", seed=None):
    """``sat16(round(A·B / 2**shift))`` of the wrapped 32-bit sums; stochastic rounding draws
    in the program's order: row blocks, then column groups, then column panels of ``C``
    columns, each a REQ over the block's rows (lane c of a panel: generator c)."""
    acc = torch.from_numpy(_wrap32(a.astype(np.int64) @ b.astype(np.int64)))
    if rounding == "nearest-even":
        return fx.requantize(acc, shift, 16)[0].numpy()
    plan = _MatmulPlan.make(*a.shape, b.shape[1], soc)
    gens = fx.LaneGenerators(seed, soc.lanes)
    R, C, out = plan.rows, plan.cols, torch.zeros_like(acc)
    for rb in range(plan.row_blocks):
        r0, r1 = rb * plan.mb * R, min((rb + 1) * plan.mb * R, plan.m)
        for j in range(plan.nt):              # groups in order, panels in order within each
            c0, c1 = j * C, min((j + 1) * C, plan.n)
            out[r0:r1, c0:c1] = fx.requantize(acc[r0:r1, c0:c1], shift, 16, "stochastic",
                                              gens)[0]
    return out.numpy()


@pytest.mark.parametrize("shape", [(2, 4), (4, 2), (1, 1)])
@pytest.mark.parametrize("mkn,depth", [((13, 7, 9), 2048), ((9, 200, 11), 64),
                                       ((70, 20, 45), 64)])
def test_rect_matmul(shape, mkn, depth):
    """The public matmul on arrays with rows ≠ cols equals the reference: numpy with
    nearest-even; with stochastic rounding, the reference drawing in the program's order (a
    different panel width assigns the draws differently from a square array's, so the two
    differ). Depth 64 splits K into chunks (GEMMs that accumulate) or the output into row
    blocks and column groups."""
    g = np.random.default_rng(sum(mkn) + depth)
    m, k, n = mkn
    a = g.integers(-300, 300, (m, k))
    b = g.integers(-300, 300, (k, n))
    soc = _small_array(*shape, sp_depth=depth)
    plan = _MatmulPlan.make(m, k, n, soc)
    assert (plan.chunks > 1 or plan.row_blocks > 1) == (depth == 64)
    acc = Accelerator(soc=soc)
    assert np.array_equal(acc.matmul(a, b, shift=4), _ref_matmul(a, b, 4, soc))
    got = acc.matmul(a, b, shift=4, rounding="stochastic", seed=9)
    assert np.array_equal(got, _ref_matmul(a, b, 4, soc, "stochastic", 9))


@pytest.mark.slow
@pytest.mark.xdist_group("cxxsim")
@pytest.mark.parametrize("shape", [(2, 4), (4, 2)])
def test_rect_rtl_sim_equals_golden(shape):
    """A small network trained and run, and a matmul with stochastic rounding, on the compiled
    RTL of a 2×4 and a 4×2 SoC: results, cycles and all of main memory equal golden's (a
    minute to build each SoC, a second to run)."""
    from firmware.backends import RtlSimDevice
    from firmware.device import GoldenDevice
    from spec.selection import SelectorConfig
    soc = SocConfig(config=DEFAULT_CONFIG.with_array(rows=shape[0], cols=shape[1]),
                    mem_words=4096, sp_banks=4, sp_depth=64, acc_banks=2, acc_depth=64,
                    selector=SelectorConfig(classes=3, k=2, p=2))
    X, y = _data((5, 7, 3), 12, 3)
    g = np.random.default_rng(1)
    a, b = g.integers(-500, 500, (7, 9)), g.integers(-500, 500, (9, 5))
    out = {}
    rtl = RtlSimDevice(soc, cxxflags=("-O0",))
    try:
        for name, dev in (("golden", GoldenDevice(soc)), ("rtl-sim", rtl)):
            acc = Accelerator(dev)
            net = acc.mlp((5, 7, 3), batch=4, seed=3)
            net.fit(X, y, steps=3)
            cycles = acc.last_cycles
            z = net.logits(X)
            c = acc.matmul(a, b, shift=3, rounding="stochastic", seed=4)
            out[name] = (net.weights, z, c, cycles, acc.last_cycles,
                         dev.read_words(0, soc.mem_words))
    finally:
        rtl.close()
    gold, got = out["golden"], out["rtl-sim"]
    for w, r in zip(got[0], gold[0]):
        assert np.array_equal(w, r)
    for x, r in zip(got[1:], gold[1:]):
        assert np.array_equal(x, r)


def test_rect_inference_programs():
    """Probabilities, teacher labeling with the selector and the on-device count of correct
    predictions give the same results on 2×4 and 4×2 as on 2×2 (after the same training)."""
    sizes, batch = (64, 32, 10), 32
    X, y = _data(sizes, 3 * batch + 5, 7)
    out = {}
    for soc in (SOC22, SOC24, SOC42):
        net = Accelerator(soc=soc).mlp(sizes, batch=batch, seed=7, select=True, validate=True)
        net.fit(X, y, steps=2, lr=2**-1)
        out[soc.config.array.rows, soc.config.array.cols] = (
            net.probs(X), net.label_select(X), net.count_correct(X, y))
    ref = out[2, 2]
    assert ref[2] > 0 and sum(map(len, ref[1])) > 0
    for shape in ((2, 4), (4, 2)):
        probs, sel, correct = out[shape]
        assert np.array_equal(probs, ref[0]), shape
        assert sel == ref[1] and correct == ref[2], shape
