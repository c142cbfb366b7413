"""The offline teacher fitted to the data (:func:`fit_teacher`): its regularisation and training
length chosen by stratified k-fold cross-validation on the labeled training set, then trained on
all of it (float32 on the host, as :func:`golden.float_ref.train_teacher`)."""

import torch

__all__ = ["fit_teacher", "cv_folds"]


def cv_folds(y, k, seed):
    """Stratified folds of labels ``y``: fold of every sample (``int64`` tensor), ``0 .. k−1``;
    within each class a seeded random order dealt round-robin, the classes continuing where the
    previous one stopped (so folds differ in size by at most one)."""
    y = torch.as_tensor(y)
    gen = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(y), dtype=torch.int64)
    at = 0
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        fold[idx] = (at + torch.arange(idx.numel())) % k
        at += idx.numel()
    return fold


def _train_marks(sizes, X, y, Xv, yv, *, marks, lr, weight_decay, dropout, seed):
    """:func:`golden.float_ref.train_teacher` for ``max(marks)`` steps, returning the correct
    count on ``(Xv, yv)`` after each step count of ``marks`` (a dict)."""
    from golden.float_ref import train_teacher
    out = {}

    def score(step, net):
        if step in marks:
            with torch.no_grad():
                out[step] = int((net(Xv).argmax(dim=1) == yv).sum())
    train_teacher(sizes, X, y, steps=max(marks), lr=lr, weight_decay=weight_decay,
                  dropout=dropout, seed=seed, callback=score)
    return out


def fit_teacher(sizes, X, y, recipe, seed):
    """The offline teacher for ``(X, y)`` (the labeled training set).

    With ``recipe.teacher_folds`` ≥ 2: every ``(dropout, weight decay)`` of
    ``recipe.teacher_grid`` is trained on ``k`` − 1 folds (:func:`cv_folds`; ``k`` at most the
    samples) and scored on the fold left out after each step count of
    ``recipe.teacher_step_grid`` (early stopping); the candidate — a setting and a step count —
    with the most correct held-out samples summed over the folds wins if it beats the first
    candidate (the first setting at the first step count: digits' tuning) by more than
    ``recipe.teacher_cv_margin`` of the samples, else the first candidate stays (with a
    hundred labels a fold's accuracy moves by several points between seeds: without the
    margin the search chases that noise, measured in ``docs/pipeline.md``); ties go to the
    earlier in the grids' order. The teacher is then trained on all of ``(X, y)`` with it.
    With ``teacher_folds`` 0: the recipe's fixed ``teacher_steps``, ``teacher_dropout``,
    ``teacher_weight_decay``.

    Returns
    -------
    (FloatMLP, dict)
        The teacher (evaluation mode) and what was chosen: ``dropout``, ``weight_decay``,
        ``steps``, ``folds``, ``cv_accuracy`` (``None`` without cross-validation) and ``grid``
        (per setting: its best step count and accuracy).
    """
    from golden.float_ref import train_teacher
    r = recipe
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    k = min(r.teacher_folds, len(y))
    if k < 2:
        choice = dict(dropout=r.teacher_dropout, weight_decay=r.teacher_weight_decay,
                      steps=r.teacher_steps, folds=0, cv_accuracy=None, grid=[])
    else:
        fold = cv_folds(y, k, seed)
        marks = tuple(r.teacher_step_grid)
        grid, best, first = [], None, None
        for dropout, wd in r.teacher_grid:
            correct = dict.fromkeys(marks, 0)
            for f in range(k):
                tr, va = fold != f, fold == f
                counts = _train_marks(sizes, X[tr], y[tr], X[va], y[va], marks=marks,
                                      lr=r.teacher_lr, weight_decay=wd, dropout=dropout,
                                      seed=seed)
                for m in marks:
                    correct[m] += counts[m]
            if first is None:
                first = dict(dropout=dropout, weight_decay=wd, steps=marks[0],
                             cv_accuracy=correct[marks[0]] / len(y))
            steps = max(marks, key=lambda m: correct[m])            # the first of the ties
            row = dict(dropout=dropout, weight_decay=wd, steps=steps,
                       cv_accuracy=correct[steps] / len(y))
            grid.append(row)
            if best is None or row["cv_accuracy"] > best["cv_accuracy"]:
                best = row
        if best["cv_accuracy"] <= first["cv_accuracy"] + r.teacher_cv_margin:
            best = first
        choice = dict(best, folds=k, grid=grid)
    net = train_teacher(sizes, X, y, steps=choice["steps"], lr=r.teacher_lr,
                        weight_decay=choice["weight_decay"], dropout=choice["dropout"],
                        seed=seed)
    return net, choice
