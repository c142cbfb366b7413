"""The pipeline never makes the student worse (issue 31): the validation set carved out of L, the
teacher fitted by cross-validation, the gate before labeling and the delivered student chosen on
validation (firmware/pipeline).

A teacher trained on shuffled labels is refused by the gate (no selection, no SSL student, the
supervised student delivered, said in the table and the JSON); the default teacher's labels pass
and the SSL student is delivered; nothing that trains ever sees a validation sample; bad options
are refused naming the value.
"""

import json

import numpy as np
import pytest
import torch

from firmware.__main__ import main
from firmware.pipeline import DEFAULT_RECIPE, Options, format_table, prepare_data, run_pipeline
from firmware.pipeline.teacher import cv_folds, fit_teacher
from golden.data import load_bundled


pytestmark = pytest.mark.usefixtures("one_thread")     # tests/conftest.py


def indexed_npz(path, n=300, classes=3):
    """A data set whose first feature is the sample's index / n: every sample is recognisable
    by its row."""
    rng = np.random.default_rng(1)
    X = rng.random((n, 4))
    X[:, 0] = np.arange(n) / n
    np.savez(path, X=X, y=np.arange(n) % classes)
    return path


def test_carve_out_stratified_disjoint(tmp_path):
    path = indexed_npz(tmp_path / "idx.npz")
    d = prepare_data(path, seed=3, labeled_fraction=0.2)
    ids = {name: set(np.round(getattr(d, name).X[:, 0].numpy() * 300).astype(int).tolist())
           for name in ("labeled", "validation", "unlabeled", "test")}
    assert sum(len(v) for v in ids.values()) == 300
    assert set().union(*ids.values()) == set(range(300))
    # ceil(0.3 · 300) = 90 test, ceil(0.2 · 210) = 42 labeled, ceil(0.15 · 42) = 7 of them
    # the validation set, every class in it (stratified)
    assert (len(d.test), len(d.labeled), len(d.validation)) == (90, 35, 7)
    assert set(d.validation.y.tolist()) == {0, 1, 2}
    # seeded: the same seed carves the same samples, another seed others
    again = prepare_data(path, seed=3, labeled_fraction=0.2)
    assert torch.equal(again.validation.X, d.validation.X)
    other = prepare_data(path, seed=4, labeled_fraction=0.2)
    assert not torch.equal(other.validation.X, d.validation.X)


def test_nothing_that_trains_sees_the_validation_set(tmp_path, monkeypatch):
    """Every input handed to a training routine (the teacher's cross-validation and fit, the
    students' SGD) is recorded: no validation sample among them."""
    from firmware.pipeline.trainer import TrainerNet
    from golden import float_ref
    seen = []

    def spy(fn):
        def wrapped(*args, **kwargs):
            seen.append(torch.as_tensor(args[1]))           # X of every routine spied
            return fn(*args, **kwargs)
        return wrapped
    monkeypatch.setattr(float_ref, "train_teacher", spy(float_ref.train_teacher))
    monkeypatch.setattr(TrainerNet, "fit", spy(TrainerNet.fit))
    monkeypatch.setattr(float_ref.FloatMLP, "train_sgd", spy(float_ref.FloatMLP.train_sgd))
    path = indexed_npz(tmp_path / "idx.npz")
    d = prepare_data(path, labeled_fraction=0.2)
    recipe = DEFAULT_RECIPE.scaled(0.005)
    res = run_pipeline(d, recipe=recipe, students="trainer", progress=False, k=20, gate=False)
    assert res["ssl_student_accuracy"] is not None          # every phase trained
    val = set(np.round(d.validation.X[:, 0].numpy() * 300).astype(int).tolist())
    # the teacher's 5 folds × 4 settings and its fit (all through float_ref.train_teacher), the
    # supervised and SSL students' 3 phases, the float32 student's 2
    assert len(seen) == 5 * 4 + 1 + 3 + 2
    for X in seen:
        rows = set(np.round(X[:, 0].numpy() * 300).astype(int).tolist())
        assert not rows & val


def _shuffled_teacher(monkeypatch):
    """Train the offline teacher on L with its labels shuffled (a deliberately weak one)."""
    from firmware.pipeline import phases

    def weak(st):
        L = st.data.labeled
        y = L.y[torch.randperm(len(L.y), generator=torch.Generator().manual_seed(0))]
        sizes = (st.data.features, *st.recipe.teacher_hidden, st.data.num_classes)
        net, st.teacher_fit = fit_teacher(sizes, L.X, y, st.recipe, st.options.seed)
        return net
    monkeypatch.setattr(phases, "_train_float_teacher", weak)


def test_weak_teacher_refused_supervised_delivered(data, monkeypatch, tmp_path, capsys):
    _shuffled_teacher(monkeypatch)
    out = tmp_path / "r.json"
    assert main(["ssl", "--backend", "golden", "--steps-scale", "0.05", "--quiet",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    g = res["gate"]
    assert not g["passed"] and g["teacher_correct"] <= g["supervised_correct"]
    assert g["decision"].startswith("refused")
    # no pseudo-labels: no selection, no SSL student; the supervised student delivered
    assert [p["phase"] for p in res["phases"]] == ["teacher", "supervised", "gate", "choice",
                                                   "float32"]
    assert res["ssl_student_accuracy"] is None and res["selected"] is None
    assert res["delivered"] == "supervised"
    assert res["delivered_student_accuracy"] == res["supervised_student_accuracy"]
    assert res["teacher_accuracy"] < 0.3 < res["supervised_student_accuracy"]
    table = capsys.readouterr().out
    assert "refused: the teacher does not beat the supervised student" in table
    assert "DELIVERED: the supervised student" in table


def test_strong_teacher_ssl_delivered(data):
    """The default teacher on digits beats a supervised student of 1 % of its schedule; the
    SSL student (its labels, the same 1 %) beats it on validation and is delivered (measured:
    teacher 17, supervised 8, SSL 12 of 19; test 68.9 % against 48.1 % — golden trainer,
    seed 1)."""
    d = prepare_data(seed=1)
    res = run_pipeline(d, recipe=DEFAULT_RECIPE.scaled(0.01), students="trainer",
                       progress=False, seed=1, float_pipeline=False)
    g, ch = res["gate"], res["choice"]
    assert g["passed"] and g["teacher_correct"] > g["supervised_correct"]
    assert ch["ssl_correct"] > ch["supervised_correct"] and res["delivered"] == "ssl"
    assert res["delivered_student_accuracy"] == res["ssl_student_accuracy"]
    assert res["ssl_student_accuracy"] > res["supervised_student_accuracy"]
    assert "DELIVERED: the ssl student" in format_table(res)


def test_gate_off_trains_the_ssl_student_and_reports(monkeypatch):
    """``gate=False``: the refused teacher's labels are used anyway (for measuring the gate);
    the decision is still reported."""
    _shuffled_teacher(monkeypatch)
    d = prepare_data()
    res = run_pipeline(d, recipe=DEFAULT_RECIPE.scaled(0.01), students="trainer",
                       progress=False, float_pipeline=False, gate=False)
    assert not res["gate"]["passed"] and not res["gate"]["enforced"]
    assert res["gate"]["decision"].startswith("would refuse")
    assert res["ssl_student_accuracy"] is not None and res["selected"] > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(validation_fraction=1.0), r"^Validation fraction must be in \(0, 1\), not 1\.0$"),
    (dict(validation_fraction=0), r"^Validation fraction must be in \(0, 1\), not 0$"),
    (dict(validation_fraction=True), r"^Validation fraction must be in \(0, 1\), not True$"),
    (dict(dataset="nonesuch"), r"^Unknown data set 'nonesuch' \(bundled: digits, wine, "
                               r"breast-cancer; or a path to an \.npz file\)$"),
])
def test_bad_split_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_data(**kwargs)


def test_too_few_labels_to_carve(tmp_path):
    """One labeled sample per class: nothing can be carved without a class losing its only
    training sample."""
    path = tmp_path / "tiny.npz"
    np.savez(path, X=np.random.default_rng(0).random((60, 2)), y=np.arange(60) % 3)
    with pytest.raises(ValueError, match=r"the 3 labeled samples are too few to carve a "
                                         r"validation set out of them and keep a sample of each "
                                         r"of the 3 classes to train on"):
        prepare_data(path, labeled_fraction=0.05)
    # 5 labeled samples (2, 2 and 1 per class), 90 % asked: the classes with two give one each
    # to the validation set and keep one, the class with one keeps it
    d = prepare_data(path, labeled_fraction=0.1, validation_fraction=0.9)
    assert sorted(d.labeled.y.tolist()) == [0, 1, 2]
    assert sorted(d.validation.y.tolist()) == [0, 1]


def test_gate_option_type(data):
    with pytest.raises(TypeError, match=r"^Gate must be a bool, not 1$"):
        Options(gate=1).check_for(data)


def test_bundled_tables():
    for name, shape, classes in (("wine", (178, 13), 3), ("breast-cancer", (569, 30), 2)):
        d = load_bundled(name)
        assert tuple(d.X.shape) == shape and d.num_classes == classes
        assert float(d.X.min()) == 0.0 and float(d.X.max()) == 1.0
        p = prepare_data(name, labeled_fraction=0.1)
        assert p.name == name and len(p.validation) > 0


def test_cv_folds_stratified():
    y = torch.tensor([0] * 10 + [1] * 7 + [2] * 3)
    f = cv_folds(y, 5, 0)
    assert torch.bincount(f).tolist() == [4, 4, 4, 4, 4]
    for c in range(3):                     # each class dealt round-robin over the folds
        counts = torch.bincount(f[y == c], minlength=5)
        assert int(counts.max() - counts.min()) <= 1
    assert torch.equal(f, cv_folds(y, 5, 0)) and not torch.equal(f, cv_folds(y, 5, 1))


def test_fit_teacher_fixed_recipe_and_cv(data):
    """Without folds the fixed recipe (the same network as ``train_teacher``'s); with them a
    candidate of the grids, its cross-validated accuracy in [0, 1]."""
    from dataclasses import replace
    from golden.float_ref import train_teacher
    L = data.labeled
    sizes = (64, 56, 10)
    fixed = replace(DEFAULT_RECIPE, teacher_folds=0, teacher_steps=20)
    net, ch = fit_teacher(sizes, L.X, L.y, fixed, 0)
    ref = train_teacher(sizes, L.X, L.y, steps=20, lr=1e-3, weight_decay=1e-4, dropout=0.3)
    assert all(torch.equal(a, b) for a, b in zip(net.params(), ref.params()))
    assert ch["folds"] == 0 and ch["cv_accuracy"] is None
    quick = replace(DEFAULT_RECIPE, teacher_grid=((0.3, 1e-4), (0.0, 1e-4)),
                    teacher_step_grid=(20, 10), teacher_folds=3)
    net, ch = fit_teacher(sizes, L.X, L.y, quick, 0)
    assert ch["folds"] == 3 and len(ch["grid"]) == 2
    assert (ch["dropout"], ch["weight_decay"]) in quick.teacher_grid
    assert ch["steps"] in (20, 10) and 0 <= ch["cv_accuracy"] <= 1
