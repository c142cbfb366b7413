"""The divergence guard: never end a phase worse than it started.

Before a training phase the guard takes a checkpoint of the student (its weights) and its
validation accuracy; after the phase it measures the accuracy again and, if it dropped by more
than ``margin``, restores the checkpoint's weights. The validation accuracy is counted **on the
device** by the network's ``valacc`` program (:meth:`firmware.accelerator.MLP.count_correct`:
forward, argmax and compare with the labels in one run; the host reads one word). A student
trained by the host's golden trainer (``run_pipeline(students="trainer")``) is scored by the
golden trainer's own prediction, the same rule bit for bit.

The pipeline gives it the first samples of the validation set, which
:func:`firmware.pipeline.prepare_data` carves out of the labeled set up front: no phase trains on
it, so the guard measures held-out accuracy. :func:`count_correct` is the same count for any
student (the gate and the delivered student's choice use it too). ``docs/pipeline.md`` has the
measured figures.
"""

from dataclasses import dataclass
from numbers import Real

import numpy as np

__all__ = ["Checkpoint", "DivergenceGuard", "count_correct"]


def count_correct(net, X, y):
    """Correctly classified samples of ``(X, y)``: counted on the device by the ``valacc``
    program for a device network (:meth:`firmware.accelerator.MLP.count_correct`), by the
    golden trainer's prediction (the same rule bit for bit) for a host-trained student."""
    if hasattr(net, "count_correct"):
        return int(net.count_correct(X, y))
    return int((net.net.predict(X).numpy() == np.asarray(y, dtype=np.int64)).sum())


@dataclass(frozen=True)
class Checkpoint:
    """A student's weights (``int64`` arrays) and its validation count before a phase."""
    phase: str
    weights: tuple
    correct: int


class DivergenceGuard:
    """Checkpoints before each phase, validation after, rollback on a drop.

    Parameters
    ----------
    X, y : tensor or array
        The validation slice (inputs and labels).
    margin : float
        The largest accepted drop of validation accuracy, a fraction in ``[0, 1)``; a phase
        that loses more is rolled back.

    Members
    -------
    events : list of dict
        One per checked phase: ``phase``, ``before``, ``after`` (accuracies), ``rolled_back``,
        ``final`` (the accuracy the phase ends with: after a rollback, measured again on the
        restored weights).

    Raises
    ------
    TypeError
        If ``margin`` is not a real number.
    ValueError
        If ``margin`` is outside ``[0, 1)`` or the slice is empty.
    """

    def __init__(self, X, y, margin=0.05):
        if isinstance(margin, bool) or not isinstance(margin, Real):
            raise TypeError(f"Guard margin must be a real number, not {margin!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"Guard margin must be in [0, 1), not {margin!r}")
        self.X, self.y = X, np.asarray(y, dtype=np.int64)
        if self.y.size == 0:
            raise ValueError("The guard's validation slice is empty")
        self.margin = float(margin)
        self.events = []

    @property
    def size(self):
        return int(self.y.size)

    def correct(self, net):
        """Correctly classified validation samples of ``net`` (on the device for a device
        network)."""
        return count_correct(net, self.X, self.y)

    def checkpoint(self, net, phase):
        """The checkpoint of ``net`` before ``phase``."""
        return Checkpoint(phase, tuple(_weights(net)), self.correct(net))

    def check(self, net, ckpt):
        """After the phase: roll ``net`` back to ``ckpt`` if its validation accuracy dropped by
        more than the margin. Returns the event (also appended to :attr:`events`)."""
        after = self.correct(net)
        n = self.size
        rolled = (ckpt.correct - after) / n > self.margin
        final = after
        if rolled:
            _set_weights(net, ckpt.weights)
            final = self.correct(net)                # measured again, on the restored weights
        ev = dict(phase=ckpt.phase, before=ckpt.correct / n, after=after / n,
                  rolled_back=bool(rolled), final=final / n)
        self.events.append(ev)
        return ev


def _weights(net):
    if hasattr(net, "count_correct"):
        return net.weights
    return [p.numpy().copy() for p in net.net.params]


def _set_weights(net, weights):
    if hasattr(net, "count_correct"):
        net.weights = list(weights)                  # written to the device if it owns it
    else:
        import torch
        net.net.params = [torch.as_tensor(w).clone() for w in weights]
