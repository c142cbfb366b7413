"""Devices the pipeline runs through: :class:`CheckedDevice` (``--check``: every program also
on the golden model, main memory compared after each) and :class:`CountingDevice` (the cycles
and the units' busy cycles of every run)."""

import numpy as np

from ..device import DeviceWrapper, RunResult

__all__ = ["CheckFailed", "CheckedDevice", "CountingDevice"]


class CheckFailed(RuntimeError):
    """The device and the golden model differ after a program (``phase``, ``program``,
    ``address`` or ``None`` if the run results differ, ``what``)."""

    def __init__(self, phase, program, address, what):
        self.phase, self.program, self.address, self.what = phase, program, address, what
        where = f"word {address:#x}: " if address is not None else ""
        super().__init__(f"--check: first difference from golden in phase {phase!r}, program "
                         f"{program}: {where}{what}")


class CheckedDevice(DeviceWrapper):
    """A device run in lock step with the golden model (``--check``).

    Writes go to both; after every run the results (error, pc, cycles, instructions) and the
    whole main memory must be equal, else :class:`CheckFailed` names the phase
    (:attr:`phase`, set by the pipeline), the program (its name in :attr:`programs`, by entry
    address, else the address) and the first differing word.
    """

    def __init__(self, device, golden=None):
        from ..device import GoldenDevice
        super().__init__(device)
        self.golden = golden if golden is not None else GoldenDevice(device.config)
        self.phase = "setup"
        self.programs = {}
        self.checked_runs = 0

    def _write(self, addr, words):
        super()._write(addr, words)
        self.golden.write_words(addr, words)

    def _run(self, entry, max_cycles):
        name = self.programs.get(entry, f"at {entry:#x}")
        try:
            r = super()._run(entry, max_cycles)
        finally:
            g = self.golden.execute(entry, max_cycles)
        for f in ("error", "pc", "cycles", "instructions", "dma_fault"):
            if getattr(r, f) != getattr(g, f):
                raise CheckFailed(self.phase, name, None,
                                  f"{f} {getattr(r, f)!r}, golden {getattr(g, f)!r}")
        n = self.config.mem_words
        a, b = self.device.read_words(0, n), self.golden.read_words(0, n)
        diff = np.flatnonzero(a != b)
        if diff.size:
            i = int(diff[0])
            raise CheckFailed(self.phase, name, i, f"{int(a[i]):#06x}, golden {int(b[i]):#06x} "
                                                   f"({diff.size} words differ)")
        self.checked_runs += 1
        return RunResult(r.error, r.pc, r.cycles, r.instructions, r.dma_fault)

    def name_programs(self, net, prefix):
        """Name ``net``'s programs ``prefix.kind`` in :class:`CheckFailed` messages."""
        self.programs = {p.base: f"{prefix}.{kind}" for kind, p in
                         net.compiled.programs.items()}
        self.programs[net.compiled.regions["seed"].addr] = f"{prefix}.seed"


class CountingDevice(DeviceWrapper):
    """Passes through to a device and sums the cycles and the units' busy cycles of every
    run (:attr:`cycles`, :attr:`busy`)."""

    def __init__(self, device):
        super().__init__(device)
        self.busy = dict(dma=0, gemm=0, vec=0, sel=0)
        self.cycles = 0

    def _run(self, entry, max_cycles):
        r = super()._run(entry, max_cycles)
        c = self.device.counters()
        for u in self.busy:
            self.busy[u] += int(c.get(f"busy_{u}", 0))
        self.cycles += r.cycles
        return r
