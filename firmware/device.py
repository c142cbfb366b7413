"""The firmware's view of an accelerator: main memory and a run button.

Every backend — the golden instruction-level model, the SoC in Amaranth's simulator, the
compiled simulator, a board over the host link — is a :class:`Device`: the firmware writes
programs and data into main memory, runs a program from an entry address, and reads results
back. Nothing else crosses the interface (the scratchpads, registers and units are the program's
business), so the firmware above it runs unchanged on every backend.

* :class:`Device` — the abstract interface (``write_words``, ``read_words``, ``run``,
  ``counters``, ``config``).
* :class:`DeviceWrapper` — a device that passes everything through to another: the base of
  devices that watch, count or check what the firmware does.
* :class:`RunResult` — what a run ended with.
* :class:`DeviceError` — a run halted with an error code; names the error, pc and instruction.
* :class:`DeviceTimeout` — a run did not halt within its cycle budget
  (:data:`DEFAULT_MAX_CYCLES` when none is given).
* :class:`GoldenDevice` — the golden model (:class:`golden.machine.Machine`).
"""

import abc
from dataclasses import dataclass

import numpy as np

from spec import isa
from spec.isa import Error
from spec.memory import Fault
from spec.soc import SocConfig, DEFAULT_SOC

__all__ = ["Device", "DeviceWrapper", "RunResult", "DeviceError", "DeviceTimeout",
           "GoldenDevice", "describe_instruction", "DEFAULT_MAX_CYCLES", "WATCHDOG_DRAIN",
           "check_watchdog"]

#: The cycle budget of a run given none (:meth:`Device.run`), on the golden model and the
#: simulators: 2**30 cycles (10.7 s of a 100 MHz SoC), 22 times the largest program the
#: firmware runs (the standalone image, ``firmware/standalone.py``: 48.4 M cycles on the
#: default SoC, ``docs/results.md``). A program that loops forever ends in
#: :class:`DeviceTimeout` naming the budget: after about 80 minutes of a tight loop on the
#: golden model (≈ 220 k cycles/s) or 35 on the compiled simulator; give a smaller budget
#: (``max_cycles``, ``Accelerator(max_cycles=...)``) where a runaway is likely. A board bounds
#: a run by link time instead (``firmware/board.py``).
DEFAULT_MAX_CYCLES = 1 << 30

#: Cycles a simulator runs past a run's budget before it gives up on the SoC: the SoC's own
#: watchdog (``Csr.BUDGET``, set to the budget) stops issuing at the budget and halts once the
#: running units are idle, well within this; past it the simulated SoC is broken.
WATCHDOG_DRAIN = 1 << 22


def check_watchdog(entry, budget, result):
    """``result`` (a :class:`RunResult`), or :class:`DeviceTimeout` if the SoC's watchdog
    stopped the program at ``budget`` cycles (``Error.WATCHDOG``)."""
    if result.error == Error.WATCHDOG:
        raise DeviceTimeout(f"Program at {entry:#x} did not halt within {budget} cycles")
    return result


@dataclass(frozen=True)
class RunResult:
    """What a run ended with.

    Attributes
    ----------
    error : spec.isa.Error
        ``Error.NONE`` after ``HALT``.
    pc : int
        Word address of the last instruction (``HALT``, or the faulting one).
    cycles : int
        Cycles from start to done (the sequencer's cycle counter).
    instructions : int
        Instructions issued.
    dma_fault : spec.memory.Fault
        The DMA's fault code when ``error`` is ``Error.DMA_FAULT``, else ``Fault.NONE``.
    """
    error: Error
    pc: int
    cycles: int
    instructions: int
    dma_fault: Fault = Fault.NONE


def describe_instruction(words):
    """A readable form of the instruction stored in 8 words: ``"GEMM a_row=0 b_row=512 ..."``,
    or what makes it illegal."""
    try:
        op, fields = isa.decode(isa.from_words([int(w) for w in words]))
    except ValueError as e:
        return f"<{e.args[0]}>"
    return " ".join([op.name] + [f"{k}={v}" for k, v in fields.items()])


class DeviceError(RuntimeError):
    """A program halted with an error code.

    Attributes
    ----------
    result : RunResult
    instruction : str
        The faulting instruction, decoded (:func:`describe_instruction`).
    """

    def __init__(self, result, instruction):
        self.result = result
        self.instruction = instruction
        what = result.error.name
        if result.error == Error.DMA_FAULT:
            what += f" ({Fault(result.dma_fault).name})"
        super().__init__(f"Device halted with error {what} at pc {result.pc:#x}: {instruction}")


class DeviceTimeout(TimeoutError):
    """A program did not halt within the cycle budget given to :meth:`Device.run`."""


class Device(abc.ABC):
    """An accelerator as the firmware sees it: 16-bit main memory, programs, counters.

    Word values are 16-bit: writes take any integers and keep their low 16 bits (so negative
    int16 values are stored in two's complement); reads return ``uint16`` arrays.
    """

    @property
    @abc.abstractmethod
    def config(self):
        """The :class:`spec.soc.SocConfig` of the device."""

    @abc.abstractmethod
    def _write(self, addr, words):
        """Store ``words`` (a 1-D ``uint16`` array) at word address ``addr`` (checked)."""

    @abc.abstractmethod
    def _read(self, addr, n):
        """``n`` words at ``addr`` (checked) as a 1-D ``uint16`` array."""

    @abc.abstractmethod
    def _run(self, entry, max_cycles):
        """Run from ``entry``; return a :class:`RunResult` (``max_cycles``: ``None`` or a bound
        after which the backend may stop and report a timeout by raising
        :class:`DeviceTimeout`)."""

    @abc.abstractmethod
    def counters(self):
        """The device's counters as a ``dict`` (``cycles``, ``busy_dma``, ``busy_gemm``,
        ``busy_vec``, ``stall``, ``sat_req``, ``sat_sgd``)."""

    def _check_range(self, addr, n, what):
        if not isinstance(addr, (int, np.integer)) or isinstance(addr, bool):
            raise TypeError(f"{what} address must be an integer, not {addr!r}")
        if addr < 0 or addr + n > self.config.mem_words:
            raise ValueError(f"{what} of {n} words at {addr} is outside main memory "
                             f"({self.config.mem_words} words)")

    def write_words(self, addr, words):
        """Store ``words`` (integers; the low 16 bits of each) at word address ``addr``.

        Raises
        ------
        TypeError
            If ``words`` are not integers.
        ValueError
            If the block is outside main memory.
        """
        w = np.asarray(words)
        if w.size and not np.issubdtype(w.dtype, np.integer):
            raise TypeError(f"Words must be integers, not {w.dtype}")
        w = w.astype(np.int64).ravel() & 0xFFFF
        self._check_range(addr, w.size, "Write")
        if w.size:
            self._write(int(addr), w.astype(np.uint16))

    def read_words(self, addr, n):
        """``n`` words from word address ``addr``, as a ``uint16`` array."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"Word count must be a non-negative integer, not {n!r}")
        self._check_range(addr, n, "Read")
        return self._read(int(addr), int(n)) if n else np.zeros(0, dtype=np.uint16)

    def write_int16(self, addr, values):
        """Store signed 16-bit values (any integer array, flattened row-major)."""
        v = np.asarray(values).astype(np.int64).ravel()
        if v.size and (v.min() < -(1 << 15) or v.max() >= (1 << 15)):
            raise ValueError("Values must be 16-bit signed integers")
        self.write_words(addr, v)

    def read_int16(self, addr, n):
        """``n`` words at ``addr`` as signed 16-bit values (``int64`` array)."""
        return self.read_words(addr, n).astype(np.int16).astype(np.int64)

    def load_program(self, addr, program):
        """Store a program (an :class:`firmware.asm.Assembler`, a list of 128-bit instruction
        words, or 16-bit words) at ``addr``."""
        if hasattr(program, "words"):
            words = program.words()
        else:
            program = list(program)
            if program and max(program) >= (1 << 16):
                words = [w for insn in program for w in isa.to_words(insn)]
            else:
                words = program
        self.write_words(addr, words)

    def execute(self, entry=0, max_cycles=None):
        """Run the program at word address ``entry`` until it halts; return its
        :class:`RunResult` as it ended, error code and all (:meth:`run` raises on one).
        ``max_cycles``: the run's cycle budget (``None``: the backend's default,
        :data:`DEFAULT_MAX_CYCLES` on the golden model and the simulators).

        Raises
        ------
        DeviceTimeout
            If the backend stopped the program at its budget.
        """
        if max_cycles is not None and (not isinstance(max_cycles, int) or
                                       isinstance(max_cycles, bool) or max_cycles < 1):
            raise ValueError(f"Cycle budget must be a positive integer, not {max_cycles!r}")
        return self._run(entry, max_cycles)

    def run(self, entry=0, max_cycles=None):
        """Run the program at word address ``entry`` until it halts.

        Returns
        -------
        RunResult

        Raises
        ------
        DeviceError
            If the program halted with an error code (the message names the error, the pc and
            the faulting instruction).
        DeviceTimeout
            If the program did not halt within ``max_cycles`` (``None``: the backend's
            default budget, :data:`DEFAULT_MAX_CYCLES` on the golden model and the
            simulators); the message names the budget.
        """
        result = self.execute(entry, max_cycles)
        if result.error != Error.NONE:
            insn = "<outside main memory>"
            if 0 <= result.pc and result.pc + isa.INSN_WORDS <= self.config.mem_words:
                insn = describe_instruction(self._read(result.pc, isa.INSN_WORDS))
            raise DeviceError(result, insn)
        if max_cycles is not None and result.cycles > max_cycles:
            raise DeviceTimeout(f"Program at {entry:#x} did not halt within {max_cycles} cycles "
                                f"({result.cycles})")
        return result


class DeviceWrapper(Device):
    """A device that passes every access through to ``device`` (its public methods: the
    wrapped device checks them again): subclasses override the accesses they watch and call
    ``super()`` for the access itself.

    Members
    -------
    device : Device
        The wrapped device.

    Raises
    ------
    TypeError
        If ``device`` is not a :class:`Device`.
    """

    def __init__(self, device):
        if not isinstance(device, Device):
            raise TypeError(f"Device must be a Device, not {device!r}")
        self.device = device

    @property
    def config(self):
        return self.device.config

    def _write(self, addr, words):
        self.device.write_words(addr, words)

    def _read(self, addr, n):
        return self.device.read_words(addr, n)

    def _run(self, entry, max_cycles):
        return self.device.execute(entry, max_cycles)

    def counters(self):
        return self.device.counters()


class GoldenDevice(Device):
    """The golden instruction-level model (:class:`golden.machine.Machine`) as a device.

    Parameters
    ----------
    soc : SocConfig, optional
        Default :data:`spec.soc.DEFAULT_SOC`.

    Members
    -------
    machine : golden.machine.Machine
        The model (for tests that look inside; firmware must not).
    """

    def __init__(self, soc=None):
        from golden.machine import Machine       # torch: imported only when used
        if soc is None:
            soc = DEFAULT_SOC
        if not isinstance(soc, SocConfig):
            raise TypeError(f"SoC configuration must be a SocConfig, not {soc!r}")
        self._soc = soc
        self.machine = Machine(soc)

    @property
    def config(self):
        return self._soc

    def _write(self, addr, words):
        import torch
        self.machine.mem[addr:addr + words.size] = torch.from_numpy(words.astype(np.int64))

    def _read(self, addr, n):
        return self.machine.mem[addr:addr + n].numpy().astype(np.uint16)

    def _run(self, entry, max_cycles):
        import torch
        budget = DEFAULT_MAX_CYCLES if max_cycles is None else max_cycles
        # The model works on tiny tensors: PyTorch's thread pool only adds overhead (up to ms
        # per reduction on a busy machine), so it runs single-threaded.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            # a run issues at most one instruction per cycle: the cycle budget bounds both
            r = self.machine.run(entry, max_instructions=budget, max_cycles=budget,
                                 budget=budget)
        except RuntimeError as e:     # the budget ran out
            raise DeviceTimeout(f"Program at {entry:#x} did not halt within {budget} "
                                f"cycles") from e
        finally:
            torch.set_num_threads(threads)
        return check_watchdog(entry, budget, RunResult(Error(r.error), r.pc, r.cycles,
                                                       r.instructions, Fault(r.dma_fault)))

    def counters(self):
        return dict(self.machine.counters)
