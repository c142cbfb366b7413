"""The pipeline's data: the labeled set (its training part and the validation set carved out of
it), the unlabeled stream and the test set (:func:`prepare_data`), and the SoC whose selector fits
them (:func:`soc_for`)."""

import os
from dataclasses import dataclass, replace

import torch

from spec.soc import DEFAULT_SOC
from .recipe import check_seed

__all__ = ["Data", "prepare_data", "soc_for", "VALIDATION_FRACTION"]

#: Default fraction of the labeled samples carved out as the validation set.
VALIDATION_FRACTION = 0.15


@dataclass
class Data:
    """The pipeline's sets (:class:`golden.data.Dataset`) and ``name``.

    Attributes
    ----------
    labeled : Dataset
        The labeled samples that train (the teacher, the students' phases): L without the
        validation set.
    validation : Dataset
        The validation set, carved out of L up front: nothing that trains ever sees it; the
        gate, the delivered student's choice and the guard count on it.
    unlabeled : Dataset
        The stream U (its labels only score the pseudo-labels).
    test : Dataset
    """
    name: str
    labeled: object
    unlabeled: object
    test: object
    validation: object = None

    @property
    def num_classes(self):
        return self.test.num_classes

    @property
    def features(self):
        return self.test.features


def prepare_data(dataset=None, *, seed=0, labeled_fraction=0.1, test_fraction=0.3,
                 split_seed=0, validation_fraction=VALIDATION_FRACTION):
    """Load and split the data: digits (``dataset=None``), a bundled set by name
    (:data:`golden.data.BUNDLED`: ``"digits"``, ``"wine"``, ``"breast-cancer"``) or an ``.npz``
    file.

    The stratified test split is seeded with ``split_seed`` (fixed by default, so seeds compare
    on the same test set); the labeled part L of the rest with ``seed``; then a stratified
    ``validation_fraction`` of L (seeded with ``seed``; ``ceil(fraction · |L|)`` samples) is
    carved out as the validation set, never the last labeled sample of a class (every class
    keeps at least one to train on).

    Raises
    ------
    TypeError, ValueError
        On a malformed file (:func:`golden.data.load_npz`), a bad fraction or seed
        (:func:`~firmware.pipeline.recipe.check_seed`), or too few samples for every class to
        appear in the labeled set and the unlabeled stream.
    """
    from golden.data import BUNDLED, load_bundled, load_npz, stratified_indices
    check_seed(seed)
    check_seed(split_seed)
    for v, what in ((labeled_fraction, "Labeled fraction"), (test_fraction, "Test fraction"),
                    (validation_fraction, "Validation fraction")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"{what} must be in (0, 1), not {v!r}")
    name = "digits" if dataset is None else str(dataset)
    if name in BUNDLED or not (name.endswith(".npz") or os.path.exists(name)):
        data = load_bundled(name)            # a bundled set, or the error naming them
    else:
        data = load_npz(dataset)
    counts = torch.bincount(data.y, minlength=data.num_classes)
    empty = [c for c in range(data.num_classes) if counts[c] == 0]
    if empty:
        raise ValueError(f"{name}: class(es) {empty} have no samples (labels must be 0..C-1 "
                         f"with every class present)")
    test_idx, pool_idx = stratified_indices(data.y, test_fraction, split_seed, data.num_classes)
    pool, test = data.subset(pool_idx), data.subset(test_idx)
    lab_idx, unl_idx = stratified_indices(pool.y, labeled_fraction, seed, data.num_classes)
    labeled, unlabeled = pool.subset(lab_idx), pool.subset(unl_idx)
    for part, what in ((labeled, "labeled set"), (unlabeled, "unlabeled stream"),
                       (test, "test set")):
        missing = sorted(set(range(data.num_classes)) - set(part.y.tolist()))
        if missing:
            raise ValueError(f"{name}: too few samples: the {what} has no sample of class(es) "
                             f"{missing} (raise --labeled-fraction or use more data)")
    val_idx, train_idx = _carve(labeled.y, validation_fraction, seed, data.num_classes)
    if val_idx.numel() == 0:
        raise ValueError(f"{name}: the {len(labeled)} labeled samples are too few to carve a "
                         f"validation set out of them and keep a sample of each of the "
                         f"{data.num_classes} classes to train on (raise --labeled-fraction)")
    return Data(name, labeled.subset(train_idx), unlabeled, test, labeled.subset(val_idx))


def _carve(y, fraction, seed, num_classes):
    """``(validation, training)`` indices of L: a stratified ``fraction``
    (:func:`golden.data.stratified_indices`), each class that would lose every sample to the
    validation set keeping its first one."""
    from golden.data import stratified_indices
    val, _ = stratified_indices(y, fraction, seed, num_classes)
    keep = torch.zeros(len(y), dtype=torch.bool)
    keep[val] = True
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten()
        if bool(keep[idx].all()):
            keep[idx[0]] = False
    return torch.nonzero(keep).flatten(), torch.nonzero(~keep).flatten()


def soc_for(num_classes, k=None, p=None, soc=DEFAULT_SOC):
    """``soc`` with a selector for ``num_classes`` classes (K, P default: the SoC's, the
    default P capped at the classes; K capped at what the unlabeled stream can offer is the
    caller's business).

    Raises
    ------
    TypeError, ValueError
        If K or P is out of range (:class:`spec.selection.SelectorConfig`: P at most the
        classes) or the selector does not fit the SoC (:class:`spec.soc.SocConfig`).
    """
    from spec.selection import SelectorConfig
    sel = soc.selector
    k = sel.k if k is None else k
    p = min(sel.p, num_classes) if p is None else p
    if (sel.classes, sel.k, sel.p) == (num_classes, k, p):
        return soc
    return replace(soc, selector=SelectorConfig(classes=num_classes, k=k, p=p,
                                                id_width=sel.id_width))
