"""Data sets of the project: scikit-learn's digits, stratified splits, ``.npz`` files, batch order.

Everything here is deterministic given its seed, so the float reference and the fixed-point
trainer see exactly the same samples in the same order.

* :func:`load_digits` — the 1797 8×8 digits of scikit-learn (offline), pixels / 16 in [0, 1].
* :func:`load_wine`, :func:`load_breast_cancer` — scikit-learn's wine (178 × 13, 3 classes) and
  breast-cancer (569 × 30, 2 classes) tables (bundled, offline), each feature min-max scaled
  to [0, 1]; :data:`BUNDLED` names every bundled set, :func:`load_bundled` loads one by name.
* :func:`digits_split` — the project's fixed stratified 70 / 30 train / test split
  (seed :data:`SPLIT_SEED`): 1257 train, 540 test.
* :func:`stratified_indices` / :func:`labeled_split` — a stratified fraction of a set (e.g. the
  labeled part of the train pool), the rest being the unlabeled part.
* :func:`load_npz` — a user data set (``X`` N×D floats in [0, 1] or ``uint8``, ``y`` labels),
  checked strictly.
* :func:`check_labels` — labels in ``0 .. C − 1`` with ``C`` at most :data:`MAX_CLASSES`,
  checked before anything is allocated per class.
* :func:`batch_order` — the sample indices of every SGD step.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from spec.params import check_int, check_positive_int

__all__ = [
    "Dataset", "SPLIT_SEED", "TEST_FRACTION", "MAX_CLASSES", "check_labels",
    "load_digits", "load_wine", "load_breast_cancer", "BUNDLED", "load_bundled", "digits_split", "stratified_indices", "labeled_split", "load_npz",
    "batch_order",
]

#: Seed of the project's fixed train / test split of digits.
SPLIT_SEED = 0
#: Fraction of digits held out for test.
TEST_FRACTION = 0.3
#: The most classes a data set may have: labels are ``0 .. C − 1`` with ``C`` at most this
#: (per-class counts are allocated for every class; the device's networks take at most 63).
MAX_CLASSES = 1000


def _check_num_classes(num_classes):
    check_positive_int(num_classes, "Number of classes")
    if num_classes > MAX_CLASSES:
        raise ValueError(f"Number of classes must be at most {MAX_CLASSES}, not {num_classes!r}")


def check_labels(y, num_classes=None, what="labels"):
    """Check class labels (a 1-D integer array or tensor) before anything is allocated per
    class; return the number of classes (``num_classes``, or ``max(y) + 1``).

    Labels must be in ``0 .. num_classes − 1`` and ``num_classes`` at most
    :data:`MAX_CLASSES`. The first bad label is named with its index (the array never is).

    Raises
    ------
    TypeError
        If the labels are not integers, or ``num_classes`` is not an integer.
    ValueError
        If a label is negative or too large, or ``num_classes`` is out of range.
    """
    if num_classes is not None:
        _check_num_classes(num_classes)
    a = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, not of shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{what} must be integers, not {a.dtype}")
    if not a.size:
        return 0 if num_classes is None else num_classes
    neg = a < 0
    if neg.any():
        i = int(np.argmax(neg))
        raise ValueError(f"{what} must be non-negative, found {int(a[i])} at index {i}")
    limit = MAX_CLASSES if num_classes is None else num_classes
    big = a >= limit
    if big.any():
        i = int(np.argmax(big))
        if num_classes is None:
            raise ValueError(f"{what} must be less than {MAX_CLASSES} (the most classes a data "
                             f"set may have), found {int(a[i])} at index {i}")
        raise ValueError(f"{what} must be less than {num_classes}, found {int(a[i])} at "
                         f"index {i}")
    return int(a.max()) + 1 if num_classes is None else num_classes


@dataclass(frozen=True)
class Dataset:
    """Samples and labels.

    Parameters
    ----------
    X : torch.Tensor
        ``float32`` (N, D), values in [0, 1].
    y : torch.Tensor
        ``int64`` (N,), labels in ``0 .. num_classes - 1``.
    num_classes : int
    """
    X: torch.Tensor
    y: torch.Tensor
    num_classes: int

    def __post_init__(self):
        _check_num_classes(self.num_classes)
        if self.X.dim() != 2 or self.y.dim() != 1 or self.X.shape[0] != self.y.shape[0]:
            raise ValueError(f"Samples {tuple(self.X.shape)} and labels {tuple(self.y.shape)} "
                             f"do not match")

    def __len__(self):
        return self.y.shape[0]

    @property
    def features(self):
        """Number of features per sample (D)."""
        return self.X.shape[1]

    def subset(self, indices):
        """The samples at ``indices`` (a 1-D integer tensor), in that order."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        return Dataset(self.X[indices], self.y[indices], self.num_classes)


@functools.cache
def _digits_arrays():
    from sklearn.datasets import load_digits as _load      # heavy import: only when needed
    d = _load()
    return d.data / 16.0, d.target


def load_digits():
    """scikit-learn's digits (1797 samples, 64 features, 10 classes), pixels / 16 in [0, 1]."""
    X, y = _digits_arrays()
    return Dataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.int64), 10)


@functools.cache
def _table_arrays(name):
    import sklearn.datasets as sk                           # heavy import: only when needed
    d = getattr(sk, f"load_{name}")()
    lo, hi = d.data.min(axis=0), d.data.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip((d.data - lo) / span, 0.0, 1.0), d.target


def _table(name):
    X, y = _table_arrays(name)
    return Dataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.int64),
                   int(y.max()) + 1)


def load_wine():
    """scikit-learn's wine table (178 samples, 13 features, 3 classes), every feature min-max
    scaled to [0, 1] over the whole table."""
    return _table("wine")


def load_breast_cancer():
    """scikit-learn's breast-cancer table (569 samples, 30 features, 2 classes), every feature
    min-max scaled to [0, 1] over the whole table."""
    return _table("breast_cancer")


#: The data sets bundled with scikit-learn, by name (no download).
BUNDLED = {"digits": load_digits, "wine": load_wine, "breast-cancer": load_breast_cancer}


def load_bundled(name):
    """The bundled data set ``name`` (a key of :data:`BUNDLED`).

    Raises
    ------
    ValueError
        If ``name`` is not one.
    """
    if name not in BUNDLED:
        raise ValueError(f"Unknown data set {name!r} (bundled: {', '.join(BUNDLED)}; or a path "
                         f"to an .npz file)")
    return BUNDLED[name]()


def _check_fraction(fraction, what, allow_one=False):
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"{what} must be a number, not {fraction!r}")
    if not (0 < fraction < 1 or (allow_one and fraction == 1)):
        bound = "1]" if allow_one else "1)"
        raise ValueError(f"{what} must be in (0, {bound}, not {fraction!r}")
    return fraction


def stratified_indices(y, fraction, seed, num_classes=None):
    """Pick a stratified ``fraction`` of the samples with labels ``y``.

    The number picked is ``ceil(fraction · N)`` (``fraction · N`` first rounded to 6 decimals,
    so that e.g. 0.2 · 1000 is 200). Each class ``c`` of ``n_c`` samples gets
    ``floor(fraction · n_c)``, and the remaining picks go one each to the classes with the largest
    fractional remainders (ties: lower class first). Within a class the samples are a uniformly
    random subset: the first ones of ``torch.randperm(n_c)`` (generator seeded with ``seed``,
    classes in increasing order) over the class's indices in increasing order.

    Parameters
    ----------
    y : integer tensor (N,)
    fraction : float
        In (0, 1].
    seed : int
    num_classes : int, optional
        Default: ``max(y) + 1``.

    Returns
    -------
    (picked, rest) : (torch.Tensor, torch.Tensor)
        Sorted ``int64`` index tensors; disjoint; together all of ``0 .. N-1``.
    """
    y = torch.as_tensor(y)
    num_classes = check_labels(y, num_classes)
    y = y.to(torch.int64)
    _check_fraction(fraction, "Fraction", allow_one=True)
    check_int(seed, "Seed")
    n = y.shape[0]
    counts = torch.bincount(y, minlength=num_classes).tolist()
    total = math.ceil(round(fraction * n, 6))
    exact = [fraction * c for c in counts]
    take = [math.floor(round(e, 6)) for e in exact]
    rem = sorted(range(num_classes), key=lambda c: (-(exact[c] - take[c]), c))
    for c in rem[:total - sum(take)]:
        take[c] += 1
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten()
        perm = torch.randperm(idx.shape[0], generator=gen)
        picked.append(idx[perm[:take[c]]])
    picked = torch.sort(torch.cat(picked)).values if picked else torch.zeros(0, dtype=torch.int64)
    mask = torch.ones(n, dtype=torch.bool)
    mask[picked] = False
    return picked, torch.nonzero(mask).flatten()


def digits_split(seed=SPLIT_SEED, test_fraction=TEST_FRACTION):
    """The project's stratified train / test split of digits: ``(train, test)`` :class:`Dataset`.

    With the defaults: 1257 train and 540 test samples, always the same ones.
    """
    data = load_digits()
    test_idx, train_idx = stratified_indices(data.y, test_fraction, seed, data.num_classes)
    return data.subset(train_idx), data.subset(test_idx)


def labeled_split(train, fraction, seed):
    """Split a train pool into a stratified labeled part and the unlabeled rest.

    Parameters
    ----------
    train : Dataset
    fraction : float
        Labeled fraction, in (0, 1].
    seed : int

    Returns
    -------
    (labeled, unlabeled) : (Dataset, Dataset)
        The unlabeled part keeps its labels (for measuring pseudo-label precision); algorithms
        must not read them.
    """
    if not isinstance(train, Dataset):
        raise TypeError(f"Train pool must be a Dataset, not {train!r}")
    lab, unl = stratified_indices(train.y, fraction, seed, train.num_classes)
    return train.subset(lab), train.subset(unl)


def load_npz(path, num_classes=None):
    """Load a data set from an ``.npz`` file with arrays ``X`` and ``y``.

    ``X`` is (N, D) with N, D ≥ 1: floating point in [0, 1] (no NaN), or ``uint8`` (divided by
    255). ``y`` is (N,) of integers in ``0 .. num_classes - 1`` (default ``num_classes``:
    ``max(y) + 1``), ``num_classes`` at most :data:`MAX_CLASSES` (:func:`check_labels`: the
    first bad label is named with its index).

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        If the file is not a readable ``.npz``, an array is missing, a shape or dtype is wrong,
        ``X`` has NaN or values outside [0, 1], or a label is out of range.
    """
    if num_classes is not None:
        _check_num_classes(num_classes)
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: cannot read .npz file ({e})") from e
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not an .npz archive (a single array)")
    with f:
        missing = [k for k in ("X", "y") if k not in f.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {', '.join(missing)} "
                             f"(found {', '.join(f.files) or 'none'})")
        try:
            X, y = f["X"], f["y"]
        except (OSError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: cannot read .npz file ({e})") from e
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{path}: X must be a 2-D array (samples, features) with at least one "
                         f"of each, not of shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{path}: y must be a 1-D array of {X.shape[0]} labels, not of shape "
                         f"{y.shape}")
    if X.dtype == np.uint8:
        X = X.astype(np.float64) / 255.0
    elif np.issubdtype(X.dtype, np.floating):
        if np.isnan(X).any():
            raise ValueError(f"{path}: X contains NaN")
        if X.min() < 0 or X.max() > 1:
            raise ValueError(f"{path}: X values must be in [0, 1], found "
                             f"{X.min()!r} .. {X.max()!r}")
    else:
        raise ValueError(f"{path}: X must be floating point in [0, 1] or uint8, not {X.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: y must hold integer labels, not {y.dtype}")
    try:
        num_classes = check_labels(y, num_classes)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return Dataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.int64),
                   num_classes)


def batch_order(n, batch, steps, seed):
    """Sample indices of ``steps`` SGD steps of ``batch`` samples each, from a set of ``n``.

    Epochs are independent random permutations of ``0 .. n-1`` (``torch.randperm`` with a
    generator seeded with ``seed``), concatenated and cut into consecutive batches; a batch may
    straddle two epochs, so every batch is full.

    Returns
    -------
    torch.Tensor
        ``int64`` (steps, batch).
    """
    check_positive_int(n, "Number of samples")
    check_positive_int(batch, "Batch size")
    check_int(steps, "Steps")
    if steps < 0:
        raise ValueError(f"Steps must be a non-negative integer, not {steps!r}")
    check_int(seed, "Seed")
    gen = torch.Generator().manual_seed(seed)
    need = steps * batch
    perms = [torch.randperm(n, generator=gen) for _ in range(-(-need // n))]
    flat = torch.cat(perms) if perms else torch.zeros(0, dtype=torch.int64)
    return flat[:need].reshape(steps, batch)
