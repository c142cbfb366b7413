"""The MLP and matmul compiler on the golden device: dataflow bit-exact against golden ops,
memory plans, and the description's validation."""

import numpy as np
import pytest
import torch

from firmware.compiler import MLPDescription, compile_matmul, compile_mlp
from firmware.plan import BankAllocator, MemoryLayout
from firmware import Accelerator
from golden import fixedpoint as fx
from golden import softmax as gsm
from golden.mlp import FixedMLP, init_float_params, rng_seed
from spec.params import DEFAULT_CONFIG, Formats
from spec.soc import SocConfig

SOC4 = SocConfig(config=DEFAULT_CONFIG.with_array(rows=4, cols=4), mem_words=1 << 16)

# (soc, sizes, batch): partial weight panels, partial / single sample panels, three layers
CASES = [
    (SOC4, (13, 9, 6), 8),
    (SOC4, (5, 7, 6, 3), 16),
    (SocConfig(mem_words=1 << 16), (10, 12, 4), 4),        # batch < lanes: one partial panel
    (SocConfig(mem_words=1 << 16), (64, 32, 10), 32),
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
    weight panels of `lanes` columns (the same random draws), and so do its logits."""
    seed, steps = 5, 6
    acc = Accelerator(soc=soc)
    net = acc.mlp(sizes, batch=batch, seed=seed)
    X, y = _data(sizes, 3 * batch + 1, seed)
    net.fit(X, y, schedule=[(steps - 2, 2**-1), (2, 2**-3)])
    ref = FixedMLP(sizes, rng_seed=rng_seed(seed)).load_float(init_float_params(sizes, seed))
    ref.train(X, y, [(steps - 2, 2**-1), (2, 2**-3)], batch=batch, seed=seed,
              update_lanes=soc.lanes)
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
    rect = SocConfig(config=DEFAULT_CONFIG.with_array(rows=8, cols=4))
    with pytest.raises(ValueError, match=r"The compiler supports square arrays only "
                                         r"\(rows == cols\), not 8×4"):
        compile_mlp(MLPDescription((4, 3)), rect)
    with pytest.raises(ValueError, match=r"The compiler supports square arrays only"):
        compile_matmul(2, 2, 2, soc=rect)
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
