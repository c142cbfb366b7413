"""Distillation (``--kd``): compact soft labels, the tempered student, on every backend.

``golden.selection.soft_labels``/``soft_targets`` (top-P classes with probabilities, rows
renormalized to exactly 1.0 in the prob format); the pipeline's distilled student on the device
equals the golden trainer's bit for bit (same tempered ``SMX`` gradient); and the firmware this
issue adds — the tempered teacher and student, the guard's ``valacc`` count, selection continued
across chunks — leaves the same memory, results and cycles on golden, the compiled SoC
(rtl-sim) and Amaranth's simulator (pysim), on a small SoC.
"""

import json

import numpy as np
import pytest
import torch

from firmware import Accelerator
from firmware.__main__ import main
from firmware.backends import PysimDevice, RtlSimDevice
from firmware.device import GoldenDevice
from firmware.ssl import DEFAULT_RECIPE, run_pipeline
from golden.selection import soft_labels, soft_targets
from spec.params import ArrayConfig, Config, DEFAULT_FORMATS
from spec.selection import SelectorConfig
from spec.soc import SocConfig


pytestmark = pytest.mark.usefixtures("one_thread")     # tests/conftest.py


def test_soft_labels_and_targets():
    probs = torch.tensor([[100, 300, 300, 0], [0, 0, 0, 0], [16384, 0, 0, 0], [1, 2, 3, 4]])
    cls, q = soft_labels(probs, 2)
    assert cls.tolist() == [[1, 2], [0, 1], [0, 1], [3, 2]]       # ties: lower class first
    assert q.tolist() == [[300, 300], [0, 0], [16384, 0], [4, 3]]
    t = soft_targets(cls, q, 4, 1 << 14)
    assert t.sum(dim=1).tolist() == [1 << 14] * 4                  # exactly 1.0 each
    assert t.tolist() == [[0, 8192, 8192, 0], [16384, 0, 0, 0], [16384, 0, 0, 0],
                          [0, 0, 7021, 9363]]                      # remainder to the first
    with pytest.raises(ValueError, match="classes must be in 0..3"):
        soft_targets(torch.tensor([[4]]), torch.tensor([[1]]), 4, 16)
    with pytest.raises(ValueError, match="non-negative"):
        soft_targets(torch.tensor([[0]]), torch.tensor([[-1]]), 4, 16)
    with pytest.raises(ValueError, match="one shape"):
        soft_targets(torch.tensor([[0, 1]]), torch.tensor([[1]]), 4, 16)
    with pytest.raises(ValueError):
        soft_labels(probs, 5)


def test_kd_pipeline_device_equals_trainer(tmp_path, data):
    out = tmp_path / "r.json"
    assert main(["ssl", "--backend", "golden", "--steps-scale", "0.01", "--quiet", "--no-float",
                 "--kd", "--temperature", "2", "--kd-top", "3", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    kd = res["kd"]
    assert (kd["temperature"], kd["top"]) == (2.0, 3)
    assert kd["soft_label_bytes"] < kd["dense_target_bytes"]
    assert kd["top1_agreement"] == 1.0           # top class at T = the selected pseudo-label
    assert "kd-labels" in [p["phase"] for p in res["phases"]]
    trainer = run_pipeline(data, recipe=DEFAULT_RECIPE.scaled(0.01), progress=False,
                           float_pipeline=False, students="trainer", kd=True, temperature=2.0)
    assert trainer["ssl_student_accuracy"] == res["ssl_student_accuracy"]
    assert trainer["ssl_student_before_finetune_accuracy"] == \
        res["ssl_student_before_finetune_accuracy"]


@pytest.mark.parametrize("args, message", [(["--temperature", "2"], "--temperature is for --kd"),
                                           (["--kd", "--kd-top", "11"], "at most 10"),
                                           (["--kd", "--temperature", "0"], "emperature")])
def test_kd_arguments(args, message, capsys):
    assert main(["ssl", "--backend", "golden", "--quiet", "--steps-scale", "0.01"] + args) == 2
    assert message in capsys.readouterr().err


SOC = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=4096,
                sp_banks=4, sp_depth=32, acc_banks=2, acc_depth=16,
                selector=SelectorConfig(classes=3, k=2, p=2))


@pytest.mark.xdist_group("cxxsim")
def test_new_programs_same_on_every_backend():
    rng = np.random.default_rng(9)
    X = rng.random((12, 3))
    y = rng.integers(0, 3, 12)

    def work(acc):
        teacher = acc.mlp((3, 4, 3), batch=2, seed=3, train=False, select=True)
        first = teacher.label_select(X[:5])
        later = teacher.label_select(X[5:9], clear=False, first_id=5)      # the next chunk
        hot = acc.mlp((3, 4, 3), batch=2, seed=3, train=False, temperature=2.0)
        hot.weights = teacher.weights
        cls, q = soft_labels(torch.as_tensor(hot.probs(X)), 2)
        t = soft_targets(cls, q, 3, DEFAULT_FORMATS.prob.scale)
        student = acc.mlp((3, 4, 3), batch=2, seed=1, temperature=2.0, validate=True)
        student.fit(X, t, steps=3, lr=2**-3)
        n = student.count_correct(X[:7], y[:7])
        flat = [v for sel in (first, later) for lst in sel for e in lst for v in e]
        return [np.array(flat), t.numpy(), *student.weights, np.array([n])]

    out = {}
    rtl = RtlSimDevice(SOC, cxxflags=("-O0",))
    try:
        for name, dev in (("golden", GoldenDevice(SOC)), ("rtl-sim", rtl),
                          ("pysim", PysimDevice(SOC))):
            acc = Accelerator(dev)
            res = work(acc)
            out[name] = (res, dev.read_words(0, SOC.mem_words), dev.counters())
    finally:
        rtl.close()
    g = out["golden"]
    for name, (res, mem, counters) in out.items():
        for a, b in zip(res, g[0]):
            np.testing.assert_array_equal(a, b, err_msg=name)
        diff = np.flatnonzero(mem != g[1])
        assert not diff.size, f"{name}: memory differs from golden first at word {diff[0]}"
        assert counters == g[2], name
    # the count is the host's count of the student's predictions (the student's weights out)
    check = Accelerator("golden", SOC).mlp((3, 4, 3), batch=2, seed=1, temperature=2.0)
    check.weights = g[0][2:-1]
    assert g[0][-1][0] == int((check.predict(X[:7]) == y[:7]).sum())

