"""The pipeline's data: the labeled set, the unlabeled stream and the test set
(:func:`prepare_data`), and the SoC whose selector fits them (:func:`soc_for`)."""

from dataclasses import dataclass, replace

import torch

from spec.soc import DEFAULT_SOC
from .recipe import check_seed

__all__ = ["Data", "prepare_data", "soc_for"]


@dataclass
class Data:
    """The pipeline's sets: ``labeled``, ``unlabeled`` (labels kept only for reporting),
    ``test`` (:class:`golden.data.Dataset`), and ``name``."""
    name: str
    labeled: object
    unlabeled: object
    test: object

    @property
    def num_classes(self):
        return self.test.num_classes

    @property
    def features(self):
        return self.test.features


def prepare_data(dataset=None, *, seed=0, labeled_fraction=0.1, test_fraction=0.3,
                 split_seed=0):
    """Load and split the data: digits (``dataset=None``) or an ``.npz`` file.

    The stratified test split is seeded with ``split_seed`` (fixed by default, so seeds compare
    on the same test set); the labeled part of the rest with ``seed``.

    Raises
    ------
    TypeError, ValueError
        On a malformed file (:func:`golden.data.load_npz`), a bad fraction or seed
        (:func:`~firmware.pipeline.recipe.check_seed`), or too few samples for every class to
        appear in the labeled set and the unlabeled stream.
    """
    from golden.data import load_digits, load_npz, stratified_indices
    check_seed(seed)
    check_seed(split_seed)
    for v, what in ((labeled_fraction, "Labeled fraction"), (test_fraction, "Test fraction")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"{what} must be in (0, 1), not {v!r}")
    data = load_digits() if dataset is None else load_npz(dataset)
    name = "digits" if dataset is None else str(dataset)
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
    return Data(name, labeled, unlabeled, test)


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
