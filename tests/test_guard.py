"""The divergence guard (firmware/guard.py) and the device's validation count (``valacc``).

``MLP.count_correct`` (forward, argmax and compare on the device) equals the host's count of
``predict`` — ties, padding and several blocks included; a finetune at a learning rate far too
large collapses the student, and the guard rolls it back to a validation accuracy at least the
checkpoint's; without the fault it does not fire. The guard counts on the validation set, which
no phase trains on (issue 31).
"""

from dataclasses import replace

import numpy as np
import pytest

from firmware import Accelerator
from firmware.__main__ import main
from firmware.guard import DivergenceGuard
from firmware.ssl import DEFAULT_RECIPE, run_pipeline


pytestmark = pytest.mark.usefixtures("one_thread")     # tests/conftest.py


@pytest.mark.parametrize("n", [1, 45, 100])
def test_count_correct_on_device_equals_predict(data, n):
    acc = Accelerator("golden")
    net = acc.mlp((64, 32, 10), seed=n, validate=True)
    X, y = data.unlabeled.X[:n], data.unlabeled.y[:n]
    for steps in (0, 20):
        if steps:
            net.fit(data.labeled.X, data.labeled.y, steps=steps, lr=2**-3)
        want = int((net.predict(X) == y.numpy()).sum())
        assert net.count_correct(X, y) == want
    # all logits equal: the first class wins, as in predict
    net.weights = [np.zeros_like(w) for w in net.weights]
    assert net.count_correct(X, y) == int((y.numpy() == 0).sum())


def test_count_correct_refused_without_program(data):
    net = Accelerator("golden").mlp((64, 32, 10))
    with pytest.raises(ValueError, match="without the valacc program"):
        net.count_correct(data.labeled.X[:4], data.labeled.y[:4])
    net = Accelerator("golden").mlp((64, 32, 10), validate=True)
    with pytest.raises(ValueError, match="Expected 4 labels"):
        net.count_correct(data.labeled.X[:4], data.labeled.y[:3])
    with pytest.raises(ValueError, match="do not fit one valacc run"):
        net.count_correct(data.labeled.X[:0], data.labeled.y[:0])


@pytest.mark.parametrize("margin, exc, message", [
    ("0.1", TypeError, "Guard margin must be a real number"),
    (True, TypeError, "Guard margin must be a real number"),
    (1.0, ValueError, r"Guard margin must be in \[0, 1\), not 1.0"),
    (-0.1, ValueError, r"Guard margin must be in \[0, 1\)"),
])
def test_guard_arguments(data, margin, exc, message):
    with pytest.raises(exc, match=message):
        DivergenceGuard(data.labeled.X, data.labeled.y, margin)
    with pytest.raises(ValueError, match="empty"):
        DivergenceGuard(data.labeled.X[:0], data.labeled.y[:0])


def test_damaging_phase_is_rolled_back(data):
    """A finetune at learning rate 4 destroys the student; the guard restores it."""
    recipe = replace(DEFAULT_RECIPE.scaled(0.02), finetune_schedule=((20, 2.0**2),))
    res = run_pipeline(data, recipe=recipe, progress=False, float_pipeline=False,
                       guard_margin=0.05)
    train, fine = res["guard"]["events"]
    assert (train["phase"], fine["phase"]) == ("student-train", "finetune")
    assert not train["rolled_back"]
    assert fine["rolled_back"] and fine["after"] < fine["before"] - 0.05
    assert fine["final"] >= fine["before"]            # measured on the device after the restore
    assert res["guard"]["rollbacks"] == 1
    rows = {r["phase"]: r for r in res["phases"]}
    assert "rolled back" in rows["finetune"]["note"]
    # the restored student is the one the finetune started from
    assert res["ssl_student_accuracy"] == rows["student-train"]["accuracy"]
    # the same fault without the guard: the collapse stays
    bad = run_pipeline(data, recipe=recipe, progress=False, float_pipeline=False)
    assert bad["ssl_student_accuracy"] < res["ssl_student_accuracy"] - 0.2


def test_guard_does_not_fire_on_default_recipe(data, tmp_path):
    """The default recipe (scaled down) on the device: no rollback, the same students as
    without the guard."""
    import json
    out = tmp_path / "r.json"
    assert main(["ssl", "--backend", "golden", "--steps-scale", "0.02", "--quiet", "--no-float",
                 "--guard", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    # the guard's slice: the whole validation set carved out of L (19 of digits' 126 labels,
    # fewer than the default 64; issue 31)
    assert res["guard"]["rollbacks"] == 0 and res["guard"]["validation_samples"] == 19
    plain = run_pipeline(data, recipe=DEFAULT_RECIPE.scaled(0.02), progress=False,
                         float_pipeline=False)
    assert res["ssl_student_accuracy"] == plain["ssl_student_accuracy"]


@pytest.mark.slow
def test_guard_never_fires_full_recipe_five_seeds():
    from benchmarks.ssl import measure
    rows = measure(range(5), guard_margin=0.05)
    assert [r["guard"]["rollbacks"] for r in rows] == [0] * 5
