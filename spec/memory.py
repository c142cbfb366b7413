"""The memory system's parameters, defined once: memory sizes, DMA descriptor fields, fault codes.

The RTL (``rtl/mainmem.py``, ``rtl/scratchpad.py``, ``rtl/dma.py``), the golden DMA model
(``golden/dma.py``), the instruction set and the firmware import these objects; none of them
restates a size, a field width or a fault code. ``docs/memory.md`` explains the semantics.

This module is pure Python (no Amaranth, no PyTorch) so that every layer may import it.
"""

from dataclasses import dataclass
from enum import IntEnum

from .params import Config, check_int, check_positive_int

__all__ = [
    "MAX_ELEM_WORDS", "DESC_FIELDS", "FAULT_BITS",
    "Dir", "Space", "Fault", "MemoryConfig", "DEFAULT_MEMORY",
    "resolve", "lanes", "elem_width", "word_width",
]


#: Largest DMA element, in main-memory words (2: 32-bit values, low word first).
MAX_ELEM_WORDS = 2


#: The DMA descriptor's fields, in order: ``(name, width in bits)``; all unsigned.
#:
#: ``direction`` (:class:`Dir`), ``space`` (:class:`Space`), ``transpose`` (0/1), ``elem_words``
#: (main-memory words per element: 1 or 2, other values fault), ``mem_addr`` (word address of
#: element (0, 0) in main memory), ``sp_row`` (first scratchpad row, unified address
#: ``bank * depth + row``), ``rows`` and ``cols`` (the block's shape in main memory), ``stride``
#: (words between the starts of consecutive block rows in main memory; any value, 0 included).
DESC_FIELDS = (
    ("direction", 1),
    ("space", 1),
    ("transpose", 1),
    ("elem_words", 2),
    ("mem_addr", 32),
    ("sp_row", 13),
    ("rows", 13),
    ("cols", 8),
    ("stride", 24),
)


class Dir(IntEnum):
    """Direction of a DMA transfer."""
    LOAD = 0    #: main memory → scratchpad
    STORE = 1   #: scratchpad → main memory


class Space(IntEnum):
    """The scratchpad a descriptor addresses."""
    SP = 0      #: operand scratchpad, ``operand_width``-bit elements
    ACC = 1     #: accumulator scratchpad, ``acc_width``-bit elements


class Fault(IntEnum):
    """DMA fault codes, in the order the checks are made (the first failing check is reported).

    A descriptor that faults performs no access at all: no bus request, no scratchpad write.
    """
    NONE = 0            #: the transfer was done
    ZERO_SIZE = 1       #: ``rows == 0`` or ``cols == 0``
    ELEM_WORDS = 2      #: ``elem_words`` is not 1 or 2
    TOO_WIDE = 3        #: a scratchpad row cannot hold the block: ``cols > lanes``
                        #: (``rows > lanes`` with transpose)
    SP_RANGE = 4        #: ``sp_row`` is outside the scratchpad
    SP_END = 5          #: the transfer crosses the end of the scratchpad
    MEM_RANGE = 6       #: ``mem_addr`` is outside main memory
    MEM_END = 7         #: the transfer crosses the end of main memory


#: Width of the DMA's fault code output.
FAULT_BITS = 4


def _check_power_of_two(value, what):
    check_positive_int(value, what)
    if value & (value - 1):
        raise ValueError(f"{what} must be a power of two, not {value!r}")
    return value


@dataclass(frozen=True)
class MemoryConfig:
    """Sizes of the memories and the deterministic memory model.

    Main memory holds ``mem_words`` words of ``operand_width`` bits at word addresses
    ``[0, mem_words)``. A scratchpad row holds ``lanes = max(array rows, array cols)`` elements;
    a scratchpad has ``banks`` banks of ``depth`` rows and unified row addresses
    ``bank * depth + row``.

    Parameters
    ----------
    mem_words : int
        Main-memory size in words; at most ``2**32`` (the descriptor's address width).
    sp_banks, sp_depth : int
        Operand scratchpad: banks, and rows per bank (a power of two).
    acc_banks, acc_depth : int
        Accumulator scratchpad: banks, and rows per bank (a power of two).
    mem_latency : int
        Fixed latency of main memory in cycles (≥ 1) in the deterministic memory model: a request
        accepted in cycle ``c`` has its response valid in cycle ``c + mem_latency``. Block RAM
        main memory has latency 1; cycle models use this value.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a size is not positive, a depth is not a power of two, a scratchpad has more rows than
        the descriptor's ``sp_row`` field addresses, or ``mem_words > 2**32``.
    """
    mem_words: int = 1 << 18
    sp_banks: int = 4
    sp_depth: int = 512
    acc_banks: int = 2
    acc_depth: int = 512
    mem_latency: int = 1

    def __post_init__(self):
        check_positive_int(self.mem_words, "Main memory size")
        addr_bits = dict(DESC_FIELDS)["mem_addr"]
        if self.mem_words > 1 << addr_bits:
            raise ValueError(f"Main memory size must be at most 2**{addr_bits}, "
                             f"not {self.mem_words!r}")
        row_bits = dict(DESC_FIELDS)["sp_row"]
        for what, banks, depth in (("Scratchpad", self.sp_banks, self.sp_depth),
                                   ("Accumulator scratchpad", self.acc_banks, self.acc_depth)):
            check_positive_int(banks, f"{what} banks")
            _check_power_of_two(depth, f"{what} depth")
            if banks * depth > 1 << row_bits:
                raise ValueError(f"{what} rows (banks × depth) must be at most 2**{row_bits}, "
                                 f"not {banks * depth!r}")
        check_positive_int(self.mem_latency, "Memory latency")

    @property
    def sp_rows(self):
        """Rows of the operand scratchpad, ``sp_banks * sp_depth``."""
        return self.sp_banks * self.sp_depth

    @property
    def acc_rows(self):
        """Rows of the accumulator scratchpad, ``acc_banks * acc_depth``."""
        return self.acc_banks * self.acc_depth

    @classmethod
    def from_soc(cls, soc, mem_latency=None):
        """The memory sizes of a :class:`spec.soc.SocConfig`, with latency ``mem_latency``
        (default: the SoC's)."""
        if mem_latency is None:
            mem_latency = soc.mem_latency
        return cls(mem_words=soc.mem_words, sp_banks=soc.sp_banks, sp_depth=soc.sp_depth,
                   acc_banks=soc.acc_banks, acc_depth=soc.acc_depth, mem_latency=mem_latency)

    def space_rows(self, space):
        """Rows of scratchpad ``space`` (a :class:`Space`)."""
        check_int(space, "Scratchpad space")
        return {Space.SP: self.sp_rows, Space.ACC: self.acc_rows}[Space(space)]


DEFAULT_MEMORY = MemoryConfig()


def resolve(config, memory=None):
    """``(Config, MemoryConfig)`` from either a :class:`Config` and a :class:`MemoryConfig`
    (default :data:`DEFAULT_MEMORY`), or a :class:`spec.soc.SocConfig` (its sizes and latency,
    unless ``memory`` is given).

    Raises
    ------
    TypeError
        If ``config`` is neither a :class:`Config` nor a ``SocConfig``, or ``memory`` is not a
        :class:`MemoryConfig`.
    """
    from .soc import SocConfig
    if isinstance(config, SocConfig):
        if memory is None:
            memory = MemoryConfig.from_soc(config)
        config = config.config
    if not isinstance(config, Config):
        raise TypeError(f"Configuration must be a Config or a SocConfig, not {config!r}")
    if memory is None:
        memory = DEFAULT_MEMORY
    if not isinstance(memory, MemoryConfig):
        raise TypeError(f"Memory configuration must be a MemoryConfig, not {memory!r}")
    return config, memory


def lanes(config):
    """Elements in a scratchpad row: ``max(array rows, array cols)`` of a :class:`Config`."""
    return max(config.array.rows, config.array.cols)


def elem_width(config, space):
    """Width in bits of an element of scratchpad ``space`` under :class:`Config` ``config``."""
    check_int(space, "Scratchpad space")
    a = config.array
    return {Space.SP: a.operand_width, Space.ACC: a.acc_width}[Space(space)]


def word_width(config):
    """Width in bits of a main-memory word: the operand width."""
    return config.array.operand_width
