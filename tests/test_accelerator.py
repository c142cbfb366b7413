"""The Accelerator API and the device interface on the golden backend."""

import numpy as np
import pytest
import torch

from firmware import Accelerator
from firmware.asm import Assembler
from firmware.device import DeviceError, DeviceTimeout, GoldenDevice
from golden.fixedpoint import LaneGenerators, requantize, requantize_act
from spec.isa import Cond, Error
from spec.memory import Fault
from spec.params import DEFAULT_CONFIG
from spec.soc import SocConfig

SOC4 = SocConfig(config=DEFAULT_CONFIG.with_array(rows=4, cols=4), mem_words=1 << 15,
                 sp_depth=128)


def _wrapped(a, b):
    """a @ b, exact, wrapped to 32 bits (the accumulator's width)."""
    s = a.astype(object) @ b.astype(object)                     # exact
    return np.array([[((int(v) + (1 << 31)) % (1 << 32)) - (1 << 31) for v in row] for row in s],
                    dtype=np.int64).reshape(s.shape)


def _reference(a, b, shift):
    """round-half-even(a @ b / 2**shift) of the 32-bit wrapped sums, saturated to int16."""
    return requantize(torch.from_numpy(_wrapped(a, b)), shift, 16)[0].numpy()


@pytest.fixture(scope="module")
def acc():
    return Accelerator()


@pytest.mark.parametrize("seed", range(6))
def test_matmul_random_shapes(acc, seed):
    rng = np.random.default_rng(seed)
    m, k, n = (int(v) for v in rng.integers(1, 40, 3))
    shift = int(rng.integers(0, 20))
    a = rng.integers(-2**15, 2**15, (m, k))
    b = rng.integers(-2**15, 2**15, (k, n))
    c = acc.matmul(a, b, shift=shift)
    assert c.dtype == np.int16 and c.shape == (m, n)
    assert np.array_equal(c, _reference(a, b, shift)), f"seed {seed}: {m}×{k}×{n} >> {shift}"
    assert acc.last_cycles > 0


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (9, 1, 5), (1, 300, 1), (4, 600, 3), (70, 3, 9)])
def test_matmul_edge_shapes(m, k, n):
    """1×1, K = 1, K beyond one DMA descriptor and one scratchpad chunk, many row panels;
    on a 4×4 array with small scratchpad banks (several output blocks and K chunks)."""
    acc = Accelerator(soc=SOC4)
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.integers(-2**15, 2**15, (m, k))
    b = rng.integers(-2**15, 2**15, (k, n))
    for shift in (0, 15):
        assert np.array_equal(acc.matmul(a, b, shift=shift), _reference(a, b, shift))


def test_matmul_saturation_and_most_negative(acc):
    a = np.full((3, 5), -2**15)
    b = np.full((5, 2), -2**15)
    b[:, 1] = 2**15 - 1
    # 5 · 2**30 wraps in the 32-bit accumulator: documented behaviour, not saturation
    for shift in (0, 1, 16, 30, 32):
        assert np.array_equal(acc.matmul(a, b, shift=shift), _reference(a, b, shift))
    c = acc.matmul(np.array([[-2**15]]), np.array([[-2**15]]), shift=0)
    assert c[0, 0] == 2**15 - 1                         # 2**30 saturates high
    c = acc.matmul(np.array([[-2**15]]), np.array([[2**15 - 1]]), shift=0)
    assert c[0, 0] == -2**15                            # saturates low


def test_matmul_ties_round_to_even(acc):
    a = np.array([[1, 3, 5, 7, -1, -3, -5, -7]]).T      # (8, 1)
    b = np.array([[1]])
    c = acc.matmul(a, b, shift=1)                       # x / 2: ties everywhere
    assert c.ravel().tolist() == [0, 2, 2, 4, 0, -2, -2, -4]
    c = acc.matmul(a * 2, b, shift=2)                   # 2, 6, 10, 14 / 4
    assert c.ravel().tolist() == [0, 2, 2, 4, 0, -2, -2, -4]


def test_matmul_stochastic_rounding(acc):
    rng = np.random.default_rng(7)
    a = rng.integers(-1000, 1000, (16, 12))
    b = rng.integers(-1000, 1000, (12, 10))
    exact = (a @ b) / 2**10
    c1 = acc.matmul(a, b, shift=10, rounding="stochastic", seed=3)
    c2 = acc.matmul(a, b, shift=10, rounding="stochastic", seed=3)
    c3 = acc.matmul(a, b, shift=10, rounding="stochastic", seed=4)
    assert np.array_equal(c1, c2)
    assert not np.array_equal(c1, c3)
    assert np.all((c1 == np.floor(exact)) | (c1 == np.ceil(exact)))


def _stochastic_reference(a, b, shift, seed, soc):
    """The stochastic product with the draws the matmul has always taken: after ``SEED seed``,
    one requantization per row block and column panel, row blocks top to bottom and, in each,
    panels left to right, each lane's generator drawing for its column's elements, rows in
    order. A row block is the first tiled program's: ``mb`` row tiles, as many as fit a bank
    with chunks of ``kc = min(K, 255, depth // 2)`` rows of ``K`` and an output tile each."""
    L, depth = soc.lanes, soc.sp_depth
    (m, k), n = a.shape, b.shape[1]
    kc = min(k, 255, depth // 2)
    mb = max(1, min(-(-m // L), 63, depth // (kc + L)))
    s = torch.from_numpy(_wrapped(a, b))
    gen = LaneGenerators(seed, L)
    c = np.zeros((m, n), dtype=np.int16)
    for r0 in range(0, m, mb * L):
        for c0 in range(0, n, L):
            y = requantize_act(s[r0:r0 + mb * L, c0:c0 + L], shift, 16, rounding="stochastic",
                               rng=gen)[0]
            c[r0:r0 + mb * L, c0:c0 + L] = y.numpy()
    return c


@pytest.mark.parametrize("soc,m,k,n", [
    (None, 130, 70, 75),       # 3 row blocks of 6 tiles, 2 column groups, ragged edges
    (None, 21, 600, 30),       # K in 2 chunks, a column panel per GEMM
    (None, 128, 128, 128),     # the benchmark's product: 6 row blocks, 4 groups
    (SOC4, 30, 300, 22),       # 4×4 array, 128-row banks: chunks, groups, one-tile blocks
    (SOC4, 45, 40, 19),
])
def test_matmul_stochastic_draw_order(soc, m, k, n):
    """Stochastic rounding takes the same draws in the same order as it always has, whatever
    the tiling (row blocks, column groups, chunks of K, the accumulator slots): bit for bit
    the reference built from golden's lane generators; nearest-even equals NumPy's."""
    soc = soc or SocConfig()
    acc = Accelerator(soc=soc)
    rng = np.random.default_rng(m + k + n)
    a = rng.integers(-2**15, 2**15, (m, k))
    b = rng.integers(-2**15, 2**15, (k, n))
    for shift, seed in ((14, 3), (0, 0xDEADBEEF), (29, 77)):
        c = acc.matmul(a, b, shift=shift, rounding="stochastic", seed=seed)
        assert np.array_equal(c, _stochastic_reference(a, b, shift, seed, soc)), (shift, seed)
    assert np.array_equal(acc.matmul(a, b, shift=17), _reference(a, b, 17))


@pytest.mark.parametrize("seed", range(8))
def test_matmul_random_tiled_shapes(seed):
    """Random shapes up to several row blocks, column groups and chunks of K, on the default
    SoC and on the 4×4 one, against NumPy (nearest-even) and the draw-order reference."""
    rng = np.random.default_rng(1000 + seed)
    soc = SOC4 if seed % 2 else SocConfig()
    hi = (40, 200) if seed % 2 else (150, 700)
    m, n = (int(v) for v in rng.integers(1, hi[0], 2))
    k = int(rng.integers(1, hi[1]))
    acc = Accelerator(soc=soc)
    a = rng.integers(-2**15, 2**15, (m, k))
    b = rng.integers(-2**15, 2**15, (k, n))
    shift = int(rng.integers(0, 33))
    assert np.array_equal(acc.matmul(a, b, shift=shift), _reference(a, b, shift)), (m, k, n)
    c = acc.matmul(a, b, shift=shift, rounding="stochastic", seed=seed + 1)
    assert np.array_equal(c, _stochastic_reference(a, b, shift, seed + 1, soc)), (m, k, n)


def test_matmul_panel_layout_round_trip():
    """The host's packing: A's row panels transposed, B's and C's column panels, the last
    panel narrower; as many words as elements."""
    from firmware.compiler import compile_matmul
    cm = compile_matmul(11, 3, 10, soc=SOC4)
    a = np.arange(33).reshape(11, 3)
    b = np.arange(30).reshape(3, 10)
    assert cm.pack_a(a).tolist() == (a[:4].T.ravel().tolist() + a[4:8].T.ravel().tolist()
                                     + a[8:].T.ravel().tolist())
    assert cm.pack_b(b).tolist() == (b[:, :4].ravel().tolist() + b[:, 4:8].ravel().tolist()
                                     + b[:, 8:].ravel().tolist())
    c = np.arange(110).reshape(11, 10)
    words = np.concatenate([c[:, :4].ravel(), c[:, 4:8].ravel(), c[:, 8:].ravel()])
    assert cm.c_words == 110 and np.array_equal(cm.unpack_c(words), c)


@pytest.mark.slow
def test_rtl_sim_matmul_tiled_equals_golden():
    """The tiled program on the compiled RTL (default SoC): row blocks, column groups, both
    accumulator slots, chunks of K and ragged edges, stochastic rounding; results and cycles
    equal golden's."""
    rtl, gold = Accelerator("rtl-sim"), Accelerator("golden")
    rng = np.random.default_rng(5)
    for (m, k, n), rounding in (((20, 300, 19), "stochastic"), ((13, 520, 10), "nearest-even"),
                                ((50, 40, 70), "stochastic")):
        a = rng.integers(-2**15, 2**15, (m, k))
        b = rng.integers(-2**15, 2**15, (k, n))
        c = rtl.matmul(a, b, shift=18, rounding=rounding, seed=9)
        assert np.array_equal(c, gold.matmul(a, b, shift=18, rounding=rounding, seed=9))
        assert rtl.last_cycles == gold.last_cycles
        if rounding == "nearest-even":
            assert np.array_equal(c, _reference(a, b, 18))


@pytest.mark.parametrize("a,b,kw,exc,msg", [
    (np.ones((2, 2)), np.ones((2, 2), dtype=int), {}, TypeError,
     r"A must be an integer array, not an array of float64"),
    ([[1]], np.ones((1, 1), dtype=int), {}, TypeError, r"A must be a NumPy array, not list"),
    (np.ones(3, dtype=int), np.ones((3, 1), dtype=int), {}, ValueError,
     r"A must be a 2-D array, not of shape \(3,\)"),
    (np.ones((2, 3), dtype=int), np.ones((2, 3), dtype=int), {}, ValueError,
     r"Inner dimensions do not match"),
    (np.ones((2, 2), dtype=int), np.full((2, 2), 2**15), {}, ValueError,
     r"B must hold 16-bit signed values"),
    (np.ones((0, 2), dtype=int), np.ones((2, 2), dtype=int), {}, ValueError,
     r"A must not be empty, not of shape \(0, 2\)"),
    (np.ones((2, 2), dtype=int), np.ones((2, 2), dtype=int), dict(shift=-1), ValueError,
     r"Shift must be between 0 and 32, not -1"),
    (np.ones((2, 2), dtype=int), np.ones((2, 2), dtype=int), dict(seed=0), ValueError,
     r"Seed must be in 1..2\*\*32-1, not 0"),
])
def test_matmul_bad_arguments(acc, a, b, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        acc.matmul(a, b, **kw)


def test_matmul_too_big_for_memory():
    acc = Accelerator(soc=SocConfig(mem_words=4096))
    a = np.zeros((40, 40), dtype=np.int16)
    with pytest.raises(ValueError, match=r"Main memory is too small: region 'C' \(1600 words\)"):
        acc.matmul(a, a)


def test_backends():
    with pytest.raises(ValueError, match=r"Unknown backend 'rtlsim' \(available: 'golden', "
                                         r"'pysim', 'rtl-sim', 'board'\)"):
        Accelerator("rtlsim")
    with pytest.raises(TypeError, match=r"The golden backend takes no options, not \['x'\]"):
        Accelerator("golden", x=1)
    with pytest.raises(TypeError, match=r"The board backend needs port="):
        Accelerator("board")
    with pytest.raises(TypeError, match=r"Backend must be a backend name or a Device, not 3"):
        Accelerator(3)
    with pytest.raises(TypeError, match=r"SoC configuration must be a SocConfig, not 'x'"):
        Accelerator(soc="x")
    dev = GoldenDevice(SOC4)
    assert Accelerator(dev).device is dev
    with pytest.raises(TypeError, match=r"Options \['port'\] are for backends made by name"):
        Accelerator(dev, port="x")
    with pytest.raises(ValueError, match=r"SoC configuration does not match the device's"):
        Accelerator(dev, soc=SocConfig())


def test_matmul_then_mlp_share_the_device():
    """Main memory changes hands: the network reloads its programs and weights."""
    acc = Accelerator(soc=SOC4)
    net = acc.mlp((6, 5, 3), batch=4)
    X = torch.rand(9, 6, generator=torch.Generator().manual_seed(0))
    z0 = net.logits(X)
    acc.matmul(np.ones((30, 30), dtype=int), np.ones((30, 30), dtype=int))
    assert np.array_equal(net.logits(X), z0)


# --- the device interface --------------------------------------------------------------------

def test_device_memory_access():
    dev = GoldenDevice(SOC4)
    dev.write_words(10, [1, -1, 0x12345])
    assert dev.read_words(10, 3).tolist() == [1, 0xFFFF, 0x2345]
    assert dev.read_int16(10, 2).tolist() == [1, -1]
    assert dev.read_words(0, 0).size == 0
    with pytest.raises(ValueError, match=r"Write of 2 words at 32767 is outside main memory"):
        dev.write_words(SOC4.mem_words - 1, [1, 2])
    with pytest.raises(ValueError, match=r"Read of 1 words at -1 is outside main memory"):
        dev.read_words(-1, 1)
    with pytest.raises(TypeError, match=r"Words must be integers, not float64"):
        dev.write_words(0, [1.5])
    with pytest.raises(TypeError, match=r"SoC configuration must be a SocConfig"):
        GoldenDevice("x")
    assert dev.config is SOC4


def test_device_run_and_counters():
    dev = GoldenDevice(SOC4)
    p = Assembler(64)
    p.seti(rd=1, imm=3)
    p.label("loop")
    p.addi(rd=1, rs=1, imm=-1)
    p.br(cond=Cond.NE, rs1=1, rs2=0, target="loop")
    p.halt()
    dev.load_program(64, p)
    r = dev.run(64)
    assert r.error == Error.NONE and r.instructions == 8 and r.pc == p.here - 8
    assert dev.counters()["cycles"] == r.cycles
    with pytest.raises(DeviceTimeout, match=r"did not halt within 5 cycles"):
        dev.run(64, max_cycles=5)


def test_device_errors_name_error_pc_and_instruction():
    dev = GoldenDevice(SOC4)
    p = Assembler(0)
    p.seti(rd=1, imm=1)
    p.gemm(a_row=0, b_row=1, c_row=0, k=1, mt=1, nt=1, a_ps=0, b_ps=0, c_ps=0, accumulate=0)
    dev.load_program(0, p)
    with pytest.raises(DeviceError, match=r"Device halted with error BANK_CONFLICT at pc 0x8: "
                                          r"GEMM a_row=0 b_row=1 ") as e:
        dev.run(0)
    assert e.value.result.error == Error.BANK_CONFLICT and e.value.result.pc == 8
    p = Assembler(0)
    p.dma(direction=0, space=0, transpose=0, elem_words=1, rm=0, mem_off=SOC4.mem_words,
          sp_row=0, rows=1, cols=1, stride=0)
    dev.load_program(0, p)
    with pytest.raises(DeviceError, match=r"DMA_FAULT \(MEM_RANGE\) at pc 0x0: DMA "):
        dev.run(0)
    dev.write_words(0, [0] * 8)
    with pytest.raises(DeviceError, match=r"ILLEGAL_OPCODE at pc 0x0: <Illegal opcode 0x00>"):
        dev.run(0)
    assert Fault.MEM_RANGE == 6


# --- training on digits ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from golden.data import digits_split
    return digits_split()


def test_train_digits_on_device(digits):
    """64-32-10, batch 32, 300 SGD steps at 2**-3 with stochastic rounding, on the default
    8×8 SoC: 93.7 % test accuracy (seed 0; the golden trainer's figure, bit for bit)."""
    from golden.mlp import FixedMLP, init_float_params, rng_seed
    train, test = digits
    sizes, seed = (64, 32, 10), 0
    acc = Accelerator()
    net = acc.mlp(sizes, seed=seed)
    before = net.evaluate(test.X, test.y)
    net.fit(train.X, train.y, steps=300, lr=2**-3)
    assert net.steps == 300 and 5_000 < net.last_step_cycles < 50_000
    accuracy = net.evaluate(test.X, test.y)
    # the golden trainer with the device's weight panels: the same weights, the same figure
    ref = FixedMLP(sizes, rng_seed=rng_seed(seed)).load_float(init_float_params(sizes, seed))
    ref.train(train.X, train.y, [(300, 2**-3)], batch=32, seed=seed, update_lanes=acc.soc.lanes)
    for l, (w, r) in enumerate(zip(net.weights, ref.params), 1):
        assert np.array_equal(w, r.numpy()), f"layer {l} differs"
    assert accuracy == ref.accuracy(test.X, test.y)
    assert before < 0.3 and accuracy >= 0.92, accuracy


@pytest.mark.slow
def test_full_schedule_matches_golden_trainer(digits):
    """The schedule of docs/training.md (3000 steps at 2**-3, 1000 at 2**-5) on the full train
    split: the accuracy of golden/mlp.py's trainer with the device's weight panels, equal (the
    same draws)."""
    from golden.mlp import FixedMLP, init_float_params, rng_seed
    train, test = digits
    sizes, schedule, seed = (64, 32, 10), [(3000, 2**-3), (1000, 2**-5)], 0
    acc = Accelerator()
    net = acc.mlp(sizes, seed=seed).fit(train.X, train.y, schedule=schedule)
    ref = FixedMLP(sizes, rng_seed=rng_seed(seed)).load_float(init_float_params(sizes, seed))
    ref.train(train.X, train.y, schedule, batch=32, seed=seed, update_lanes=acc.soc.lanes)
    ours, theirs = net.evaluate(test.X, test.y), ref.accuracy(test.X, test.y)
    assert ours == theirs, (ours, theirs)
    assert ours >= 0.95


def test_label_select_equals_offline_selection_of_device_probs():
    """Teacher labeling on the device (SELCLR, SELFEED per panel, SELOUT) == select_offline of
    the device's probabilities, with a partly filled last block and several runs."""
    from dataclasses import replace
    from golden.selection import select_offline
    from spec.selection import SelectorConfig
    soc = replace(SOC4, mem_words=1 << 12, selector=SelectorConfig(classes=3, k=5, p=2))
    acc = Accelerator(soc=soc)
    net = acc.mlp((5, 6, 3), batch=8, seed=2, train=False, select=True)
    assert "train" not in net.compiled.kinds and net.compiled.eval_capacity < 60
    rng = np.random.default_rng(0)
    X = rng.random((1 + 8 * net.compiled.eval_capacity + 13, 5))
    per_class = net.label_select(X)
    assert acc.last_cycles > 0
    want = select_offline(torch.from_numpy(net.probs(X)), 5, 2)
    assert per_class == want.per_class
    with pytest.raises(ValueError, match=r"built without a training program"):
        net.fit(X, np.zeros(len(X), dtype=int), steps=1)
    plain = acc.mlp((5, 6, 3), batch=8)
    with pytest.raises(ValueError, match=r"built without teacher-labeling programs"):
        plain.label_select(X)
    with pytest.raises(ValueError, match=r"The SoC's selector has 3 classes, the network 4"):
        acc.mlp((5, 6, 4), select=True)
