"""The SoC's control and status registers (CSRs), as the host sees them.

Each CSR is 32 bits wide and addressed by its index. Writes to read-only CSRs are ignored; an
index outside the map is an error of the host link. Pure Python.
"""

from enum import IntEnum
from typing import NamedTuple

__all__ = ["Csr", "CSR_COUNT", "CHIP_ID", "STATUS_FIELDS", "STATUS_RUNNING", "STATUS_DONE",
           "STATUS_ERROR_SHIFT", "RunStatus", "encode_status", "decode_status",
           "CONFIG_FIELDS", "config_value"]

#: The value of :attr:`Csr.ID`: ASCII "APRN".
CHIP_ID = 0x4150_524E

#: The fields of :attr:`Csr.STATUS`: ``name: (lsb, width)``; the other bits read 0. ``running``
#: and ``done`` are the sequencer's; ``error`` is the :class:`spec.isa.Error` of the last program.
STATUS_FIELDS = {"running": (0, 1), "done": (1, 1), "error": (8, 8)}

#: Masks and shift of :attr:`Csr.STATUS`'s fields, from :data:`STATUS_FIELDS`.
STATUS_RUNNING = 1 << STATUS_FIELDS["running"][0]
STATUS_DONE = 1 << STATUS_FIELDS["done"][0]
STATUS_ERROR_SHIFT = STATUS_FIELDS["error"][0]


class RunStatus(NamedTuple):
    """The fields of a :attr:`Csr.STATUS` value."""
    running: bool
    done: bool
    error: int      #: a :class:`spec.isa.Error` value (an ``int``: any 8-bit value decodes)


def _encode(fields, values, what):
    value = 0
    for name, (lsb, width) in fields.items():
        v = values[name]
        if not isinstance(v, int) or not 0 <= v < 1 << width:
            raise ValueError(f"{what} field {name} must be an integer in 0..{(1 << width) - 1}, "
                             f"not {v!r}")
        value |= int(v) << lsb
    return value


def _decode(fields, value):
    return {name: value >> lsb & ((1 << width) - 1) for name, (lsb, width) in fields.items()}


def encode_status(running, done, error):
    """The value of :attr:`Csr.STATUS` for the sequencer's ``running``, ``done`` (booleans) and
    ``error`` code.

    Raises
    ------
    ValueError
        If a field does not fit its width.
    """
    return _encode(STATUS_FIELDS, dict(running=running, done=done, error=error), "STATUS")


def decode_status(value):
    """The :class:`RunStatus` fields of a :attr:`Csr.STATUS` value."""
    f = _decode(STATUS_FIELDS, value)
    return RunStatus(bool(f["running"]), bool(f["done"]), f["error"])


class Csr(IntEnum):
    """CSR indices. ``RW`` CSRs are written by the host; the others are read-only."""
    ID = 0             # CHIP_ID
    CONFIG = 1         # array rows, cols, lanes (CONFIG_FIELDS)
    MEM_WORDS = 2      # main memory size in words
    CTRL = 3           # RW: write bit 0 = 1 to start the program at ENTRY (ignored while running)
    ENTRY = 4          # RW: word address of the program's first instruction
    STATUS = 5         # running, done, error (STATUS_FIELDS)
    PC = 6             # the sequencer's program counter (the faulting instruction after an error)
    DMA_FAULT = 7      # the DMA fault code of a DMA_FAULT error
    CYCLES_LO = 8      # cycles of the last/current program, low 32 bits
    CYCLES_HI = 9
    STALL_LO = 10      # cycles instructions waited for units or banks
    STALL_HI = 11
    INSNS = 12         # instructions issued
    BUSY_DMA = 13      # cycles each unit was busy
    BUSY_GEMM = 14
    BUSY_VEC = 15
    SAT_REQ = 16       # saturated elements in REQ
    SAT_SGD = 17       # saturated weights in SGD
    BUDGET = 18        # RW: the watchdog's cycle budget of the next program (0 = none)


CSR_COUNT = 32         # the CSR address space; indices ≥ len(Csr) read 0


#: The fields of :attr:`Csr.CONFIG`: ``name: (lsb, width)``.
CONFIG_FIELDS = {"rows": (0, 8), "cols": (8, 8), "lanes": (16, 8)}


def config_value(rows, cols, lanes):
    """The value of :attr:`Csr.CONFIG` for an array of ``rows`` × ``cols`` and ``lanes``
    scratchpad lanes (:data:`CONFIG_FIELDS`: bits [7:0] rows, [15:8] cols, [23:16] lanes).

    Raises
    ------
    ValueError
        If a field does not fit its width.
    """
    return _encode(CONFIG_FIELDS, dict(rows=rows, cols=cols, lanes=lanes), "CONFIG")
