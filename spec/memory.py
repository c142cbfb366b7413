"""The DMA's encodings, defined once: descriptor fields, directions, scratchpad spaces, fault
codes.

The RTL (``rtl/dma.py``), the golden DMA model (``golden/dma.py``), the instruction set and the
firmware import these objects; none of them restates a field width or a fault code. The memory
sizes and main memory's latency are :class:`spec.soc.SocConfig`'s. ``docs/memory.md`` explains
the semantics.

This module is pure Python (no Amaranth, no PyTorch) so that every layer may import it.
"""

from enum import IntEnum

__all__ = ["MAX_ELEM_WORDS", "LINE_WORDS", "DESC_FIELDS", "FAULT_BITS", "Dir", "Space", "Fault"]


#: Largest DMA element, in main-memory words (2: 32-bit values, low word first).
MAX_ELEM_WORDS = 2


#: Words in a main-memory line: main memory stores lines, the bus moves one line per request
#: (``rtl/bus.py``), and a non-transposed DMA row costs one request per line it touches
#: (:func:`golden.dma.requests`). Equal to an instruction's words (``spec.isa.INSN_WORDS``: the
#: sequencer fetches an instruction as one line), and main memory's size is a multiple of it.
LINE_WORDS = 8


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
