"""``--standalone`` (firmware/standalone.py): the recipe as one program image, run once.

The image's selection, students' weights, validation counts, the gate's and the choice's
decisions and the guard's equal the host-driven run of the same recipe bit for bit — on the
default SoC (golden; the full recipe in the slow suite, also on rtl-sim there) and on a small
SoC on golden, the compiled SoC (rtl-sim) and Amaranth's simulator (pysim) — with the gate
passing (SSL delivered, or the supervised student when the SSL one collapses) and refusing (a
weak teacher: no selection, the supervised student delivered); the host makes no access between
the image's start and its halt.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from firmware import Accelerator
from firmware.__main__ import main
from firmware.device import GoldenDevice
from firmware.ssl import DEFAULT_RECIPE, Recipe, soc_for
from firmware.standalone import (AccessCounter, StandaloneImage, run_host_driven,
                                 run_standalone, slot_examples)
from golden.mlp import FixedMLP, init_float_params
from spec.params import ArrayConfig, Config
from spec.selection import SelectorConfig
from spec.soc import SocConfig

T_SIZES, S_SIZES = (64, 56, 10), (64, 32, 10)


pytestmark = pytest.mark.usefixtures("one_thread")     # tests/conftest.py


@pytest.fixture(scope="module")
def teacher(data):
    net = FixedMLP(T_SIZES).load_float(init_float_params(T_SIZES, 5))
    net.train(data.labeled.X, data.labeled.y, [(300, 2**-3)], batch=32)
    return [w.numpy() for w in net.params]


def both(device, soc, teacher, data, recipe, guard=None, t_sizes=T_SIZES, s_sizes=S_SIZES,
         seed=0):
    U, L, V = data.unlabeled, data.labeled, data.validation
    h = run_host_driven(Accelerator("golden", soc), teacher, t_sizes, s_sizes, seed, U.X, L.X,
                        L.y, recipe, validation=(V.X, V.y), guard=guard)
    s = run_standalone(device, teacher, t_sizes, s_sizes, seed, U.X, L.X, L.y, recipe,
                       validation=(V.X, V.y), guard=guard)
    for key in ("per_class", "rolled_back", "teacher_correct", "supervised_correct",
                "ssl_correct", "gate_passed", "delivered"):
        assert s[key] == h[key], key
    for key in ("weights", "supervised_weights", "ssl_weights"):
        assert (s[key] is None) == (h[key] is None), key
        for a, b in zip(s[key] or (), h[key] or ()):
            np.testing.assert_array_equal(a, b)
    # the delivered weights are the chosen student's
    chosen = s["ssl_weights"] if s["delivered"] == "ssl" else s["supervised_weights"]
    for a, b in zip(s["weights"], chosen):
        np.testing.assert_array_equal(a, b)
    # one run; every write before it, every read after it
    log = s["counter"].log
    runs = [i for i, e in enumerate(log) if e[0] == "run"]
    assert len(runs) == 1 and s["counter"].between_runs() == 0
    assert all(e[0] == "write" for e in log[:runs[0]])
    assert all(e[0] == "read" for e in log[runs[0] + 1:])
    return s, h


@pytest.mark.parametrize("guard", [None, (0.05, 19)])
def test_standalone_equals_host_driven(data, teacher, guard):
    soc = soc_for(10)
    s, h = both(GoldenDevice(soc), soc, teacher, data, DEFAULT_RECIPE.scaled(0.01), guard)
    assert s["rolled_back"] == [] and s["cycles"] > 0
    assert sum(len(c) for c in s["per_class"]) > 900
    # the teacher (300 SGD steps on L) beats the supervised student of 40 steps: the gate lets
    # its labels through, the SSL student ties it on validation and is delivered (measured:
    # teacher 29, supervised 16, SSL 16 of 32)
    assert s["gate_passed"] and s["teacher_correct"] > s["supervised_correct"]
    assert s["delivered"] == "ssl" and s["ssl_correct"] >= s["supervised_correct"]


def test_standalone_gate_refuses_weak_teacher(data):
    """A teacher that was never trained (its initial weights: about chance) loses to the
    supervised student on validation: the image selects nothing, trains no SSL student and
    delivers the supervised one; the host-driven run decides the same."""
    soc = soc_for(10)
    weak = [w.numpy() for w in FixedMLP(T_SIZES).load_float(init_float_params(T_SIZES, 5))
            .params]
    s, h = both(GoldenDevice(soc), soc, weak, data, DEFAULT_RECIPE.scaled(0.01))
    assert not s["gate_passed"] and s["teacher_correct"] <= s["supervised_correct"]
    assert s["per_class"] is None and s["ssl_weights"] is None and s["ssl_correct"] is None
    assert s["delivered"] == "supervised" and h["ssl"] is None


def test_standalone_guard_rolls_back(data, teacher):
    soc = soc_for(10)
    recipe = replace(DEFAULT_RECIPE.scaled(0.02), finetune_schedule=((20, 2.0**2),))
    s, h = both(GoldenDevice(soc), soc, teacher, data, recipe, (0.05, 19))
    assert s["rolled_back"] == ["finetune"]
    train, fine = h["guard_events"]
    assert not train["rolled_back"] and fine["after"] < fine["before"] - 0.05
    assert fine["final"] >= fine["before"]      # the restored weights, which the image's equal


def test_standalone_collapsed_ssl_student_not_delivered(data, teacher):
    """The same damaging finetune without the guard: the SSL student collapses, the choice on
    the device delivers the supervised student instead (as the host-driven run)."""
    soc = soc_for(10)
    recipe = replace(DEFAULT_RECIPE.scaled(0.02), finetune_schedule=((20, 2.0**2),))
    s, h = both(GoldenDevice(soc), soc, teacher, data, recipe)
    assert s["gate_passed"] and s["ssl_correct"] < s["supervised_correct"]
    assert s["delivered"] == "supervised"


def test_slot_examples():
    X = torch.arange(10.0).reshape(5, 2)
    LX = torch.full((2, 2), -1.0)
    per_class = (((3, 9), (1, 8)), ((4, 7),), ())
    Xs, ys = slot_examples(per_class, 2, X, LX, torch.tensor([2, 0]))
    assert ys.tolist() == [0, 0, 1, 1, 2, 0, 2, 0]   # K = 2 slots per class, then L
    assert Xs[:4, 0].tolist() == [6.0, 2.0, 8.0, 8.0]  # class 1 kept one: r mod 1
    assert Xs[4:, 0].tolist() == [-1.0] * 4             # class 2 kept none: labeled samples


def test_command(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["ssl", "--backend", "golden", "--steps-scale", "0.01", "--quiet", "--no-float",
                 "--standalone", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["standalone"]
    assert res["equals_host_driven"] and res["runs"] == 1
    assert res["host_accesses_between_start_and_halt"] == 0
    assert "standalone" in capsys.readouterr().out
    assert main(["ssl", "--backend", "golden", "--quiet", "--standalone", "--kd"]) == 2
    assert "not with --kd" in capsys.readouterr().err


def test_image_errors(data, teacher):
    from firmware.compiler import MLPDescription
    soc = soc_for(10)
    V = data.validation
    with pytest.raises(TypeError, match="Teacher must be an MLPDescription"):
        StandaloneImage(soc, T_SIZES, teacher, None, None, 0, None, None, None, (), (),
                        validation=(V.X, V.y), supervised_schedule=())
    td, sd = MLPDescription(T_SIZES), MLPDescription(S_SIZES, batch=16)
    with pytest.raises(ValueError, match="share the batch"):
        StandaloneImage(soc, td, teacher, sd, None, 0, data.unlabeled.X, data.labeled.X,
                        data.labeled.y, ((1, 2**-3),), ((1, 2**-3),), validation=(V.X, V.y),
                        supervised_schedule=((1, 2**-3),))
    sd = MLPDescription(S_SIZES)
    with pytest.raises(ValueError, match="needs a validation set"):
        StandaloneImage(soc, td, teacher, sd, None, 0, data.unlabeled.X, data.labeled.X,
                        data.labeled.y, ((1, 2**-3),), ((1, 2**-3),),
                        validation=(V.X[:0], V.y[:0]), supervised_schedule=((1, 2**-3),))


def test_supervised_fits():
    from firmware.standalone import supervised_fits
    assert supervised_fits(((1200, 0.5), (300, 0.25)), 500) == [
        ((500, 0.5),), ((500, 0.5),), ((200, 0.5),), ((300, 0.25),)]
    assert supervised_fits((), 500) == []


SMALL = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=8192,
                  sp_banks=4, sp_depth=32, acc_banks=2, acc_depth=16,
                  selector=SelectorConfig(classes=3, k=2, p=2))


@pytest.mark.xdist_group("cxxsim")
def test_small_soc_every_backend():
    """The image on the compiled SoC and in Amaranth's simulator: the same memory, cycles and
    results as golden, and equal to the host-driven run (a 3-4-3 teacher and a 3-3-3
    student, 9 unlabeled, 4 labeled and 4 validation samples, a guard)."""
    from firmware.backends import PysimDevice, RtlSimDevice
    from firmware.ssl import Data
    from golden.data import Dataset
    rng = np.random.default_rng(3)
    X = torch.as_tensor(rng.random((17, 3)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 3, 17))
    small = Data("small", Dataset(X[9:13], y[9:13], 3), Dataset(X[:9], y[:9], 3),
                 Dataset(X[:4], y[:4], 3), Dataset(X[13:], y[13:], 3))
    recipe = Recipe(batch=2, student_schedule=((3, 2**-2),), finetune_schedule=((2, 2**-3),),
                    supervised_schedule=((3, 2**-2), (2, 2**-3)))
    tw = [w.numpy() for w in FixedMLP((3, 4, 3)).load_float(init_float_params((3, 4, 3), 2))
          .params]
    sizes = dict(t_sizes=(3, 4, 3), s_sizes=(3, 3, 3))
    g, _ = both(GoldenDevice(SMALL), SMALL, tw, small, recipe, (0.25, 4), **sizes)
    gmem = g["counter"].read_words(0, SMALL.mem_words)
    rtl = RtlSimDevice(SMALL, cxxflags=("-O0",))
    try:
        for dev in (rtl, PysimDevice(SMALL)):
            r, _ = both(dev, SMALL, tw, small, recipe, (0.25, 4), **sizes)
            assert r["cycles"] == g["cycles"] and r["instructions"] == g["instructions"]
            np.testing.assert_array_equal(r["counter"].read_words(0, SMALL.mem_words), gmem)
    finally:
        rtl.close()


@pytest.mark.slow
def test_full_recipe_golden(data, teacher):
    soc = soc_for(10)
    s, _ = both(GoldenDevice(soc), soc, teacher, data, DEFAULT_RECIPE, (0.05, 19))
    assert s["rolled_back"] == []


@pytest.mark.slow
@pytest.mark.xdist_group("cxxsim")
@pytest.mark.parametrize("scale", [0.01, 1.0], ids=["recipe_1pct", "full_recipe"])
def test_rtl_sim_default_soc(data, teacher, scale):
    """The recipe with the guard as one image on the default SoC's Verilator model (the rtl-sim
    default): == the host-driven run on golden, weights, selection and cycles. The full recipe
    takes ≈ 5 minutes; 1 % of it is the quick check."""
    from firmware.backends import RtlSimDevice
    soc = soc_for(10)
    recipe = DEFAULT_RECIPE.scaled(scale) if scale != 1.0 else DEFAULT_RECIPE
    dev = RtlSimDevice(soc)
    try:
        V = data.validation
        s, _ = both(dev, soc, teacher, data, recipe, (0.05, 19))
        g = run_standalone(GoldenDevice(soc), teacher, T_SIZES, S_SIZES, 0, data.unlabeled.X,
                           data.labeled.X, data.labeled.y, recipe, validation=(V.X, V.y),
                           guard=(0.05, 19))
        assert s["cycles"] == g["cycles"]
        if scale == 1.0:
            assert s["rolled_back"] == []      # as on golden (test_full_recipe_golden)
    finally:
        dev.close()
