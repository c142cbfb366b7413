"""The semi-supervised pipeline (firmware/ssl.py, ``python -m firmware ssl``).

Default suite: the whole command on the golden backend with a small step budget, on digits and
on a second data set (scikit-learn's wine, min-max scaled, written to an ``.npz``); malformed
data sets rejected before anything runs; ``--check`` stopping at the first memory difference.
Slow suite: ``--check`` on rtl-sim (the default 8×8 SoC, full recipe) and the 5-seed accuracy
acceptance on the golden trainer.
"""

import json
import math

import numpy as np
import pytest

from firmware.__main__ import main
from firmware.device import GoldenDevice
from firmware.ssl import (CheckFailed, CheckedDevice, DEFAULT_RECIPE, prepare_data,
                          run_pipeline, soc_for)
from golden.data import load_digits

QUICK = "0.01"            # --steps-scale of the default suite


pytestmark = pytest.mark.usefixtures("one_thread")     # tests/conftest.py


def wine_npz(path):
    from sklearn.datasets import load_wine
    d = load_wine()
    X = (d.data - d.data.min(axis=0)) / (d.data.max(axis=0) - d.data.min(axis=0))
    np.savez(path, X=X, y=d.target)
    return path


def test_command_on_digits(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["ssl", "--backend", "golden", "--steps-scale", QUICK, "--quiet", "--json",
               str(out), "--report", str(tmp_path / "rep")])
    assert rc == 0
    res = json.loads(out.read_text())
    # at 1 % of the steps the students are far above chance already (measured: 0.49 to 0.52)
    for key in ("ssl_student_accuracy", "supervised_student_accuracy",
                "float_ssl_student_accuracy"):
        assert res[key] > 4 / res["classes"], key
    assert res["total_cycles"] == sum(p["cycles"] for p in res["phases"]) > 0
    assert res["wall_seconds"] > 0
    # golden.data.stratified_indices picks ceil(fraction · N): 30 % of the digits for the test
    # set, --labeled-fraction (10 %) of the rest labeled, the remainder the unlabeled stream;
    # 15 % of the labeled samples carved out as the validation set (issue 31)
    n = len(load_digits().y)
    test = math.ceil(0.3 * n)
    labeled = math.ceil(0.1 * (n - test))
    val = math.ceil(0.15 * labeled)
    assert (res["labeled"], res["validation"], res["unlabeled"], res["test"]) == (
        labeled - val, val, n - test - labeled, test)
    # the supervised student first, then the gate, the SSL student and the choice (issue 31)
    assert [p["phase"] for p in res["phases"]] == ["teacher", "supervised", "gate",
                                                   "label+select", "student-train", "finetune",
                                                   "choice", "float32"]
    assert res["gate"]["passed"] and res["delivered"] in ("ssl", "supervised")
    assert res["delivered_student_accuracy"] == res[f"{res['delivered']}_student_accuracy"]
    # a class-balanced selection of at most K per class, pseudo-labels mostly right
    assert max(res["class_counts"]) <= 100 and res["selected"] == sum(res["class_counts"])
    assert res["teacher_accuracy"] > 0.8 and res["pseudo_label_precision"] > 0.8
    table = capsys.readouterr().out
    assert "label+select" in table and "time @100 MHz" in table    # the ULX3S's clock
    for f in ("accuracy.png", "class_balance.png", "utilization.png", "results.json"):
        assert (tmp_path / "rep" / f).stat().st_size > 0


def test_command_on_another_dataset(tmp_path):
    path = wine_npz(tmp_path / "wine.npz")
    out = tmp_path / "r.json"
    rc = main(["ssl", "--backend", "golden", "--dataset", str(path), "--labeled-fraction",
               "0.2", "--k", "20", "--steps-scale", QUICK, "--quiet", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["classes"] == 3 and res["features"] == 13
    assert res["teacher_sizes"][0] == 13 and res["student_sizes"][-1] == 3
    assert res["selector"] == dict(classes=3, k=20, p=1)
    assert max(res["class_counts"]) <= 20
    # three classes: far above chance (measured: 0.85, the supervised student 0.69)
    assert res["ssl_student_accuracy"] > 2 / res["classes"]


@pytest.mark.parametrize("arrays, message", [
    (dict(X=np.zeros((10, 3))), r"missing array\(s\) y"),
    (dict(X=np.zeros((10,)), y=np.zeros(10, dtype=int)), r"X must be a 2-D array"),
    (dict(X=np.zeros((10, 3)), y=np.zeros(9, dtype=int)), r"y must be a 1-D array of 10"),
    (dict(X=np.full((10, 3), np.nan), y=np.zeros(10, dtype=int)), r"X contains NaN"),
    (dict(X=np.full((10, 3), 2.0), y=np.zeros(10, dtype=int)), r"X values must be in \[0, 1\]"),
    (dict(X=np.zeros((10, 3)), y=-np.ones(10, dtype=int)), r"labels must be non-negative"),
    (dict(X=np.zeros((10, 3)), y=np.arange(10) % 3 * 2), r"class\(es\) \[1, 3\] have no samples"),
    (dict(X=np.zeros((6, 3)), y=np.arange(6) % 3), r"too few samples"),
])
def test_malformed_dataset_rejected_before_running(tmp_path, capsys, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        prepare_data(path)
    assert main(["ssl", "--backend", "golden", "--dataset", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "bad.npz" in err


def test_unreadable_dataset(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match=r"cannot read \.npz file"):
        prepare_data(path)


class _Faulty(GoldenDevice):
    """A golden device that flips one word after its third run."""

    def __init__(self, soc):
        super().__init__(soc)
        self.runs = 0

    def _run(self, entry, max_cycles):
        r = super()._run(entry, max_cycles)
        self.runs += 1
        if self.runs == 3:
            self.machine.mem[12345] ^= 1
        return r


def test_check_stops_at_first_difference(data):
    soc = soc_for(10)
    recipe = DEFAULT_RECIPE.scaled(0.005)
    # the third run is the supervised student's training (issue 31: it runs before labeling)
    with pytest.raises(CheckFailed, match=r"first difference from golden in phase "
                                          r"'supervised', program supervised\.train: "
                                          r"word 0x3039"):
        run_pipeline(data, soc=soc, recipe=recipe, check=True, progress=False,
                     float_pipeline=False, device=_Faulty(soc))
    checked = CheckedDevice(GoldenDevice(soc))
    assert checked.config == soc


@pytest.mark.slow
def test_check_rtl_sim_default_config(data):
    """``--check`` on rtl-sim, default SoC and full recipe: every program of the pipeline
    leaves main memory, cycles and results equal to golden."""
    res = run_pipeline(data, backend="rtl-sim", check=True, progress=False)
    assert res["checked_runs"] > 50
    assert res["ssl_student_accuracy"] > 0.85
    assert res["ssl_student_accuracy"] - res["supervised_student_accuracy"] > 0


@pytest.mark.slow
def test_accuracy_acceptance_five_seeds():
    """Digits, 10 % labels, mean of seeds 0–4 (golden trainer, bit-identical to the device):
    the delivered student ≥ supervised + 1.5 points, within 1 point of the float32 pipeline
    (issue 31: the delivered student, chosen on the validation set; measured +1.56 and 0.00)."""
    from benchmarks.ssl import measure
    rows = measure(seeds=range(5))
    dlv = np.mean([r["delivered_student_accuracy"] for r in rows])
    sup = np.mean([r["supervised_student_accuracy"] for r in rows])
    flt = np.mean([r["float_ssl_student_accuracy"] for r in rows])
    assert dlv - sup >= 0.015, (dlv, sup)
    assert abs(dlv - flt) <= 0.01, (dlv, flt)


@pytest.mark.slow
@pytest.mark.parametrize("dataset, fraction", [
    ("wine", 0.1), ("breast-cancer", 0.1), ("tests/data/synthetic.npz", 0.05), (None, 0.02)])
def test_never_worse_five_seeds(dataset, fraction):
    """Issue 31's acceptance on the other data sets: the delivered student's mean test accuracy
    over seeds 0–4 is at least the supervised student's − 0.5 point (docs/pipeline.md)."""
    from pathlib import Path
    from benchmarks.ssl import measure
    if dataset and dataset.endswith(".npz"):
        dataset = str(Path(__file__).resolve().parent.parent / dataset)
    rows = measure(seeds=range(5), dataset=dataset, labeled_fraction=fraction)
    dlv = np.mean([r["delivered_student_accuracy"] for r in rows])
    sup = np.mean([r["supervised_student_accuracy"] for r in rows])
    assert dlv >= sup - 0.005, (dlv, sup)
