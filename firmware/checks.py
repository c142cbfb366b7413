"""Checks of the data that enters the host API (:mod:`firmware.accelerator`).

Every method of :class:`~firmware.accelerator.Accelerator` and
:class:`~firmware.accelerator.MLP` that takes arrays passes them through these functions first,
before anything is compiled, allocated or run: a wrong shape, dtype or value is refused with a
``TypeError`` or ``ValueError`` naming the argument, what it is and what was expected, in one
short line (arrays are never printed; a bad value is named with its index).

* :func:`check_features` — samples × features, numbers (floats finite).
* :func:`check_labels` — one integer class label per sample, in ``0 .. classes − 1``.
* :func:`check_targets` — labels, or soft targets (samples × classes).
* :func:`check_int16_matrix` — a 2-D integer matrix of int16 values (``matmul``'s operands).
"""

import numpy as np
import torch

__all__ = ["check_features", "check_labels", "check_targets", "check_int16_matrix"]


def _array(x, what):
    """``x`` as a NumPy array of numbers (a tensor's values; a list's). No copy if possible."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    elif not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except ValueError as e:                        # ragged nested lists
            raise TypeError(f"{what} must be an array of numbers, not {type(x).__name__} "
                            f"({e})") from None
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or
                                   np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"{what} must be an array of numbers, not an array of {x.dtype}")
    return x


def _first(mask):
    """Index (a tuple, or an int for 1-D) of the first True of ``mask``."""
    i = np.unravel_index(int(np.argmax(mask)), mask.shape)
    return i[0] if len(i) == 1 else i


def _index(what, i):
    return f"{what}[{i}]" if isinstance(i, (int, np.integer)) else \
        f"{what}[{', '.join(str(int(j)) for j in i)}]"


def _check_finite(x, what):
    if np.issubdtype(x.dtype, np.floating) and x.size:
        bad = ~np.isfinite(x)
        if bad.any():
            i = _first(bad)
            raise ValueError(f"{what} must hold finite numbers, not {x[i]} ({_index(what, i)})")


def check_features(X, features, what="X"):
    """``X`` as a tensor of shape ``(samples, features)``: floats (finite) or integers.

    Tensors and NumPy arrays keep their dtype; lists become arrays.

    Raises
    ------
    TypeError
        If ``X`` is not an array of numbers (strings, booleans, objects).
    ValueError
        If its shape is not ``(samples, features)`` or a float is NaN or infinite.
    """
    x = _array(X, what)
    if x.ndim != 2 or x.shape[1] != features:
        raise ValueError(f"{what} must have shape (samples, {features}), not {x.shape}")
    _check_finite(x, what)
    return X if isinstance(X, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def check_labels(y, samples, classes, what="y"):
    """``y`` as an ``int64`` array of ``samples`` class labels in ``0 .. classes − 1``.

    Raises
    ------
    TypeError
        If ``y`` does not hold integers.
    ValueError
        If its shape is not ``(samples,)`` (a column ``(samples, 1)`` included: it would
        broadcast), or a label is out of range (the first one is named, with its index).
    """
    a = _array(y, what)
    if a.shape != (samples,):
        raise ValueError(f"Expected {samples} labels in {what}, of shape ({samples},), "
                         f"not an array of shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{what} must hold integer class labels, not {a.dtype}")
    if a.size:
        bad = (a < 0) | (a >= classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{what} must hold class labels in 0..{classes - 1}, not "
                             f"{int(a[i])} ({what}[{i}])")
    return a.astype(np.int64)


def check_targets(y, samples, classes, what="y"):
    """Training targets: labels (:func:`check_labels`) or soft targets ``(samples, classes)``
    (floats, finite; or prob-format integers, checked by the trainer). Returns a tensor.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_labels`, or if soft targets are not finite.
    """
    a = _array(y, what)
    if a.shape == (samples, classes):
        _check_finite(a, what)
        return y if isinstance(y, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    if a.ndim != 1:
        raise ValueError(f"{what} must be {samples} labels ({samples},) or soft targets "
                         f"({samples}, {classes}), not of shape {a.shape}")
    return torch.from_numpy(check_labels(a, samples, classes, what))


def check_int16_matrix(x, what):
    """``x`` as an ``int64`` 2-D array of int16 values, not empty.

    Raises
    ------
    TypeError
        If ``x`` is not a NumPy array or tensor of integers.
    ValueError
        If it is not 2-D, is empty, or holds a value outside the int16 range.
    """
    if not isinstance(x, np.ndarray):
        if isinstance(x, torch.Tensor):
            x = x.numpy()
        else:
            raise TypeError(f"{what} must be a NumPy array, not {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{what} must be an integer array, not an array of {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array, not of shape {x.shape}")
    if x.size and (x.min() < -(1 << 15) or x.max() >= (1 << 15)):
        raise ValueError(f"{what} must hold 16-bit signed values")
    if 0 in x.shape:
        raise ValueError(f"{what} must not be empty, not of shape {x.shape}")
    return x.astype(np.int64)
