"""The SoC's control and status registers (CSRs), as the host sees them.

Each CSR is 32 bits wide and addressed by its index. Writes to read-only CSRs are ignored; an
index outside the map is an error of the host link. Pure Python.
"""

from enum import IntEnum

__all__ = ["Csr", "CSR_COUNT", "CHIP_ID", "STATUS_RUNNING", "STATUS_DONE", "STATUS_ERROR_SHIFT",
           "config_value"]

#: The value of :attr:`Csr.ID`: ASCII "APRN".
CHIP_ID = 0x4150_524E

#: Bits of :attr:`Csr.STATUS`.
STATUS_RUNNING = 1 << 0
STATUS_DONE = 1 << 1
STATUS_ERROR_SHIFT = 8          # bits [8, 16): spec.isa.Error of the last program


class Csr(IntEnum):
    """CSR indices. ``RW`` CSRs are written by the host; the others are read-only."""
    ID = 0             # CHIP_ID
    CONFIG = 1         # [7:0] array rows, [15:8] array cols, [23:16] lanes
    MEM_WORDS = 2      # main memory size in words
    CTRL = 3           # RW: write bit 0 = 1 to start the program at ENTRY (ignored while running)
    ENTRY = 4          # RW: word address of the program's first instruction
    STATUS = 5         # running, done, error (see STATUS_*)
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


CSR_COUNT = 32         # the CSR address space; indices ≥ len(Csr) read 0


def config_value(rows, cols, lanes):
    """The value of :attr:`Csr.CONFIG` for an array of ``rows`` × ``cols`` and ``lanes``
    scratchpad lanes: bits [7:0] rows, [15:8] cols, [23:16] lanes."""
    return rows | cols << 8 | lanes << 16
