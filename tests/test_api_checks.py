"""Bad data entering the host API is refused up front, in one short line (issue 30: items 3, 5,
4, 9, 15): shapes, dtypes and labels (firmware/checks.py), run budgets, networks and products
that do not fit the SoC."""

import numpy as np
import pytest
import torch

from firmware import Accelerator
from firmware.checks import check_features, check_labels, check_targets
from spec.params import DEFAULT_CONFIG
from spec.soc import SocConfig

SOC4 = SocConfig(config=DEFAULT_CONFIG.with_array(rows=4, cols=4), mem_words=1 << 15,
                 sp_depth=128)


@pytest.fixture(scope="module")
def net():
    acc = Accelerator(soc=SOC4)
    return acc.mlp((6, 5, 3), batch=4, seed=1, validate=True)


def _data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6)), rng.integers(0, 3, n)


# --- item 3: shapes are checked where data enters the API -------------------------------------

def test_evaluate_refuses_a_column_of_labels(net):
    """A (N, 1) column broadcast against the (N,) predictions: 0.1 for a 0.9 network."""
    X, y = _data()
    acc = net.evaluate(X, y)
    assert 0 <= acc <= 1
    with pytest.raises(ValueError, match=r"^Expected 12 labels in y, of shape \(12,\), not an "
                                         r"array of shape \(12, 1\)$"):
        net.evaluate(X, y[:, None])
    assert net.evaluate(X, torch.from_numpy(y)) == acc         # tensors and arrays alike
    assert np.isnan(net.evaluate(X[:0], y[:0]))


@pytest.mark.parametrize("method", ["fit", "evaluate", "count_correct"])
@pytest.mark.parametrize("X, y, exc, msg", [
    (np.zeros((12, 5)), np.zeros(12, int), ValueError,
     r"^X must have shape \(samples, 6\), not \(12, 5\)$"),
    (np.zeros(6), np.zeros(1, int), ValueError, r"^X must have shape \(samples, 6\), not \(6,\)$"),
    (np.full((12, 6), "a"), np.zeros(12, int), TypeError,
     r"^X must be an array of numbers, not an array of <U1$"),
    (np.zeros((12, 6), bool), np.zeros(12, int), TypeError,
     r"^X must be an array of numbers, not an array of bool$"),
    (np.zeros((12, 6)), np.zeros(11, int), ValueError,
     r"^Expected 12 labels in y, of shape \(12,\), not an array of shape \(11,\)$"),
    (np.zeros((12, 6)), np.zeros(12), TypeError,
     r"^y must hold integer class labels, not float64$"),
    (np.zeros((12, 6)), np.r_[np.zeros(7, int), 3, np.zeros(4, int)], ValueError,
     r"^y must hold class labels in 0..2, not 3 \(y\[7\]\)$"),
    (np.zeros((12, 6)), np.r_[np.zeros(2, int), -1, np.zeros(9, int)], ValueError,
     r"^y must hold class labels in 0..2, not -1 \(y\[2\]\)$"),
])
def test_bad_data_is_refused(net, method, X, y, exc, msg):
    call = {"fit": lambda: net.fit(X, y, steps=1), "evaluate": lambda: net.evaluate(X, y),
            "count_correct": lambda: net.count_correct(X, y)}[method]
    with pytest.raises(exc, match=msg):
        call()


@pytest.mark.parametrize("method", ["predict", "logits", "probs"])
def test_inference_refuses_bad_inputs(net, method):
    with pytest.raises(ValueError, match=r"^X must have shape \(samples, 6\), not \(3, 7\)$"):
        getattr(net, method)(np.zeros((3, 7)))
    X = np.zeros((3, 6))
    X[1, 4] = np.nan
    with pytest.raises(ValueError, match=r"^X must hold finite numbers, not nan \(X\[1, 4\]\)$"):
        getattr(net, method)(X)
    X[1, 4] = np.inf
    with pytest.raises(ValueError, match=r"^X must hold finite numbers, not inf \(X\[1, 4\]\)$"):
        getattr(net, method)(X)


def test_label_select_refuses_bad_inputs():
    from dataclasses import replace
    from spec.selection import SelectorConfig
    soc = replace(SOC4, selector=SelectorConfig(classes=3, k=5, p=1))
    teacher = Accelerator(soc=soc).mlp((6, 5, 3), batch=4, train=False, select=True)
    with pytest.raises(ValueError, match=r"^X must have shape \(samples, 6\), not \(5, 1, 6\)$"):
        teacher.label_select(np.zeros((5, 1, 6)))


def test_fit_soft_targets_and_their_shapes(net):
    X, y = _data()
    soft = np.eye(3)[y]
    assert check_targets(soft, 12, 3).shape == (12, 3)
    with pytest.raises(ValueError, match=r"^y must be 12 labels \(12,\) or soft targets "
                                         r"\(12, 3\), not of shape \(12, 4\)$"):
        net.fit(X, np.zeros((12, 4)), steps=1)
    with pytest.raises(ValueError, match=r"^y must be 12 labels \(12,\) or soft targets "
                                         r"\(12, 3\), not of shape \(12, 1\)$"):
        net.fit(X, y[:, None], steps=1)
    soft[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^y must hold finite numbers, not nan \(y\[3, 1\]\)$"):
        net.fit(X, soft, steps=1)


# --- item 5: a huge label is named, never allocated for, never printed ------------------------

@pytest.mark.parametrize("label", [10**6, 10**9, 2**62])
def test_huge_label_is_refused_in_one_short_line(net, label):
    X, y = _data()
    y[5] = label
    for call in (lambda: net.fit(X, y, steps=1), lambda: net.evaluate(X, y),
                 lambda: net.count_correct(X, y)):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == f"y must hold class labels in 0..2, not {label} (y[5])"


def test_checks_directly():
    assert check_features([[0.5, 1]], 2).dtype == torch.float64
    assert check_features(torch.zeros(2, 2, dtype=torch.float32), 2).dtype == torch.float32
    assert check_labels(torch.tensor([0, 2]), 2, 3).tolist() == [0, 2]
    with pytest.raises(TypeError, match=r"^X must be an array of numbers, not an array of object$"):
        check_features([[1, None]], 2)


@pytest.mark.parametrize("label, msg", [
    (10**9, r"labels must be less than 1000 \(the most classes a data set may have\), found "
            r"1000000000 at index 3$"),
    (10**6, r"labels must be less than 1000 \(the most classes a data set may have\), found "
            r"1000000 at index 3$"),
    (-5, r"labels must be non-negative, found -5 at index 3$"),
])
def test_npz_with_a_huge_label_is_refused_before_any_allocation(tmp_path, label, msg):
    """A label of 10**9 made num_classes 10**9: torch.bincount then allocated 8 GB."""
    import time
    from golden.data import load_npz
    y = np.zeros(50, dtype=np.int64)
    y[3], y[7] = label, label
    path = tmp_path / "big.npz"
    np.savez(path, X=np.zeros((50, 4)), y=y)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=msg) as e:
        load_npz(path)
    assert time.monotonic() - t0 < 1 and len(str(e.value)) < 200 + len(str(path))
    assert str(e.value).startswith(f"{path}: ")
    with pytest.raises(ValueError, match=r"labels must be less than 4, found 9 at index 3$"):
        y[3], y[7] = 9, 9
        np.savez(path, X=np.zeros((50, 4)), y=y)
        load_npz(path, num_classes=4)


def test_data_sets_refuse_too_many_classes():
    from golden.data import Dataset, MAX_CLASSES, check_labels, load_npz, stratified_indices
    with pytest.raises(ValueError, match=r"^Number of classes must be at most 1000, not 1001$"):
        Dataset(torch.zeros(1, 2), torch.zeros(1, dtype=torch.int64), MAX_CLASSES + 1)
    with pytest.raises(ValueError, match=r"^Number of classes must be at most 1000, "
                                         r"not 1000000000$"):
        load_npz("unused.npz", num_classes=10**9)
    with pytest.raises(ValueError, match=r"^labels must be less than 1000 \(the most classes a "
                                         r"data set may have\), found 1000000000 at index 1$"):
        stratified_indices(torch.tensor([0, 10**9]), 0.5, 0)
    assert check_labels(torch.tensor([0, 2, 1])) == 3
    assert check_labels(np.zeros(0, dtype=int)) == 0


# --- item 4: every run has a finite budget; a runaway ends in DeviceTimeout naming it ----------

def _forever(dev, base=64):
    from firmware.asm import Assembler
    from spec.isa import Cond
    p = Assembler(base)
    p.label("top")
    p.br(cond=Cond.EQ, rs1=0, rs2=0, target="top")
    dev.load_program(base, p)
    return base


def test_default_budget_is_finite_and_documented():
    import firmware.device as device
    from firmware import backends
    assert device.DEFAULT_MAX_CYCLES == 1 << 30
    from pathlib import Path
    assert "DEFAULT_MAX_CYCLES" in device.__all__
    assert "#: The cycle budget of a run given none" in Path(device.__file__).read_text()
    assert "DEFAULT_MAX_CYCLES" in device.Device.run.__doc__
    assert backends.DEFAULT_MAX_CYCLES is device.DEFAULT_MAX_CYCLES


def test_infinite_loop_ends_with_the_default_budget(monkeypatch):
    """A run given no budget gets DEFAULT_MAX_CYCLES (made small here so that the loop ends in
    a moment; at 2**30 it ends too, after about 80 minutes)."""
    import time
    import firmware.device as device
    from firmware.device import DeviceTimeout, GoldenDevice
    monkeypatch.setattr(device, "DEFAULT_MAX_CYCLES", 20_000)
    dev = GoldenDevice(SOC4)
    entry = _forever(dev)
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match=r"^Program at 0x40 did not halt within 20000 "
                                            r"cycles$"):
        dev.run(entry)
    with pytest.raises(DeviceTimeout, match=r"did not halt within 20000 cycles"):
        dev.execute(entry)
    assert time.monotonic() - t0 < 10


def test_infinite_loop_ends_with_a_given_budget():
    from firmware.device import DeviceTimeout, GoldenDevice
    dev = GoldenDevice(SOC4)
    entry = _forever(dev)
    with pytest.raises(DeviceTimeout, match=r"^Program at 0x40 did not halt within 3000 cycles$"):
        dev.run(entry, max_cycles=3000)
    from firmware.asm import Assembler                      # the device stays usable
    halt = Assembler(64)
    halt.halt()
    dev.load_program(64, halt)
    assert dev.run(64, max_cycles=3000).instructions == 1


def test_accelerator_passes_its_budget_to_every_run():
    from firmware.device import DeviceTimeout
    acc = Accelerator(soc=SOC4, max_cycles=50)
    a = np.ones((20, 20), dtype=int)
    with pytest.raises(DeviceTimeout, match=r"did not halt within 50 cycles"):
        acc.matmul(a, a)
    acc.max_cycles = None                                   # the device's default
    assert np.array_equal(acc.matmul(a, a), a @ a)
    with pytest.raises(ValueError, match=r"^Cycle budget must be a positive integer, not 0$"):
        Accelerator(max_cycles=0)


# --- item 15: matmul's limit is checked before compiling, naming what fits ---------------------

@pytest.mark.parametrize("size", [273, 512, 2000])
def test_matmul_too_big_is_refused_at_once(size):
    import time
    acc = Accelerator()
    a = np.ones((size, size), dtype=np.int16)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=r"^Main memory is too small: region '.*' \(\d+ words\) "
                                         rf"does not fit .*: a {size}×{size} by {size}×{size} "
                                         r"product needs \d+ words \(program, A, B and C\); the "
                                         r"largest square product that fits is 272×272$"):
        acc.matmul(a, a)
    assert time.monotonic() - t0 < 1


def test_matmul_largest_square_fits_and_the_count_is_exact():
    from firmware.compiler import _matmul_instructions, compile_matmul, matmul_max_square
    from spec.soc import DEFAULT_SOC
    assert matmul_max_square() == 272 and matmul_max_square(SOC4) == 80
    for soc in (DEFAULT_SOC, SOC4):
        s = matmul_max_square(soc)
        compile_matmul(s, s, s, soc=soc, seed=1)                  # fits
    rng = np.random.default_rng(3)
    for _ in range(30):                     # the closed-form count is the emitted program's
        m, k, n = (int(v) for v in rng.integers(1, 600, 3))
        seed = None if rng.random() < 0.5 else 7
        try:
            cm = compile_matmul(m, k, n, soc=DEFAULT_SOC, seed=seed)
        except ValueError:
            continue
        assert len(cm.program) == _matmul_instructions(m, k, n, DEFAULT_SOC, seed)


# --- item 9: a network that does not fit is refused before encoding, naming what fits ----------

@pytest.mark.parametrize("sizes, msg", [
    ((784, 256, 10), r"^Operand scratchpad is too small for this network: layer 1 \(784 inputs, "
                     r"256 outputs\)'s weights need 25120 rows in one bank \(32 panels of 8 "
                     r"outputs × 785 rows: the inputs and the bias\), a bank holds 512, 24608 "
                     r"too many; at most 15 inputs with 256 outputs fit$"),
    ((784, 32, 10), r"^Operand scratchpad is too small for this network: layer 1 \(784 inputs, "
                    r"32 outputs\)'s weights need 3140 rows .* at most 127 inputs with 32 "
                    r"outputs fit$"),
    ((100, 8, 10), r"^Operand scratchpad is too small for this network: layer 1 \(100 inputs, 8 "
                   r"outputs\)'s weights need 101 rows .* a bank holds 64, 37 too many; at most "
                   r"63 inputs with 8 outputs fit$"),
])
def test_network_that_does_not_fit_names_the_buffer_and_what_fits(sizes, msg):
    """They failed while encoding: DMA.sp_row must be in 0..8191, not 8635; GEMM.mt must be in
    0..63, not 99."""
    soc = SocConfig() if sizes[0] == 784 else SocConfig(sp_depth=64)
    with pytest.raises(ValueError, match=msg):
        Accelerator(soc=soc).mlp(sizes)


def test_network_too_wide_for_one_gemm():
    soc = SocConfig(sp_depth=4096, sp_banks=2, acc_depth=4096)
    with pytest.raises(ValueError, match=r"^The network's layer 1 \(600 inputs, 8 outputs\) is "
                                         r"too wide for one GEMM: its 600 inputs and the bias "
                                         r"make 76 tiles of 8, a GEMM takes at most 63 \(its mt "
                                         r"field\); at most 503 fit$"):
        Accelerator(soc=soc).mlp((600, 8, 10), batch=8)
    with pytest.raises(ValueError, match=r"^Batch 1024 is 128 sample panels of 8, more than a "
                                         r"GEMM takes \(63, its mt field\): at most 504 samples$"):
        Accelerator().mlp((4, 8, 2), batch=1024)
