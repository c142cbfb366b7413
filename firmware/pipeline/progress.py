"""The pipeline's phases as the user sees them: a progress bar and a row of figures each
(:class:`Phases`), with the device cycles and busy cycles measured into the current row."""

import sys
import time

__all__ = ["Phases"]


class Phases:
    """Per-phase figures (:attr:`rows`), progress bars and device counters.

    Parameters
    ----------
    counting : firmware.pipeline.devices.CountingDevice
        Whose cycles :meth:`measure` adds to the current phase.
    progress : bool
        Show the bars (on stderr).
    checked : firmware.pipeline.devices.CheckedDevice, optional
        Told the phase's name (for its messages).
    """

    def __init__(self, counting, progress, checked=None):
        self.counting, self.progress, self.checked = counting, progress, checked
        self.rows = []

    def start(self, name, total, unit):
        """A new phase of ``total`` ``unit``\\ s; returns its row."""
        from tqdm import tqdm
        if self.checked is not None:
            self.checked.phase = name
        self.bar = tqdm(total=total, desc=f"{name:<14}", unit=unit, file=sys.stderr,
                        disable=not self.progress, leave=True, dynamic_ncols=True)
        self.row = dict(phase=name, samples=0, cycles=0, busy=dict(dma=0, gemm=0, vec=0, sel=0),
                        wall_seconds=time.perf_counter())
        return self.row

    def finish(self, **figures):
        """End the phase with ``figures`` in its row; returns the row."""
        self.bar.close()
        self.row["wall_seconds"] = time.perf_counter() - self.row["wall_seconds"]
        self.row.update(figures)
        self.rows.append(self.row)
        return self.row

    def measure(self, fn):
        """``fn()``, its device cycles and busy cycles added to the current phase."""
        counting = self.counting
        c0, b0 = counting.cycles, dict(counting.busy)
        out = fn()
        self.row["cycles"] += counting.cycles - c0
        for u in counting.busy:
            self.row["busy"][u] += counting.busy[u] - b0[u]
        return out

    def evaluate(self, net, X, y):
        """``net``'s accuracy on ``(X, y)``, measured into the current phase."""
        return self.measure(lambda: net.evaluate(X, y))
