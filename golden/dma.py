"""The golden DMA: descriptor semantics on memory images, fault checks, and the cycle model.

This is the specification ``rtl/dma.py`` is tested against (``docs/memory.md`` explains it).

Memory images
-------------
* Main memory: a 1-D ``int64`` tensor of words, values ``0 .. 2**word_width - 1``.
* Scratchpads: one ``(rows, lanes)`` ``int64`` tensor per :class:`~spec.memory.Space`, values
  signed in the space's element width (``operand_width`` for ``SP``, ``acc_width`` for ``ACC``).

Semantics
---------
A descriptor moves the ``rows × cols`` block of main memory whose element ``(i, j)`` starts at
word ``mem_addr + i * stride + j * elem_words`` (an element of ``elem_words = 2`` words is a
32-bit value, low word first). Without transpose block row ``i`` is scratchpad row
``sp_row + i`` with element ``j`` in lane ``j``; with transpose element ``(i, j)`` is in row
``sp_row + j``, lane ``i``.

* A **load** writes whole scratchpad rows: the lanes the block does not cover are written with
  zero. An element is converted to the scratchpad's element width as a two's-complement value:
  sign-extended if narrower, its low bits kept (wrapped) if wider.
* A **store** writes exactly the block's words to main memory and nothing else; a scratchpad
  element is converted to ``word_width * elem_words`` bits the same way. Words are written in the
  hardware's order (scratchpad row, then lane, then word), so where block rows overlap
  (``stride < cols * elem_words``) the last write wins.

Cycle model (deterministic memory: fixed latency ``L = soc.mem_latency``, no stalls)
------------------------------------------------------------------------------------
Main memory is a line memory (:data:`~spec.memory.LINE_WORDS` words per line, line ``a // 8``
holds words ``8a .. 8a + 7``), and the bus moves one line per request: a read returns the line, a
write writes the words its mask selects. The DMA issues one request per cycle, in order:

* **without transpose**, one request per line that block row ``i`` touches, row after row: row
  ``i``'s ``cols * elem_words`` words from ``a = mem_addr + i * stride`` take
  ``((a % 8) + cols * elem_words - 1) // 8 + 1`` lines (a load reads them, a store writes its
  words in them); rows never share a request;
* **with transpose**, one request per word, in order scratchpad row, lane, word (a load reads the
  word's line and keeps the word, a store writes the one word).

:func:`requests` counts them. A descriptor accepted in cycle ``c`` raises ``done`` in cycle
``c + cycles(desc)``, the first cycle in which the DMA accepts the next descriptor:
``CHECK_CYCLES`` for a faulting descriptor; otherwise ``CHECK_CYCLES + requests(desc) + L + 1``
(a load: its last scratchpad row is written from a register the cycle after the last response; a
store: its first request waits a cycle for its first scratchpad row, which the check's cycles
have read through the scratchpad's registered bank outputs into the DMA's row queue, and
``done`` comes the cycle after the last write's acknowledgement). The check takes five cycles:
the product ``(rows - 1) * stride`` passes the three registers of a DSP block (issue 27 item 5),
and the outcome is compared from registers and registered before the DMA decides on it (issue
27 item 1).
"""

from dataclasses import dataclass, fields

import torch

from spec.memory import DESC_FIELDS, LINE_WORDS, MAX_ELEM_WORDS, Dir, Space, Fault
from spec.params import check_int
from spec.soc import check_soc

__all__ = ["CHECK_CYCLES", "Descriptor", "check", "execute", "requests", "cycles",
           "word_addresses",
           "new_images"]


#: Cycles from a descriptor's acceptance to ``done`` if it faults; the fixed overhead otherwise.
CHECK_CYCLES = 5

_WIDTHS = dict(DESC_FIELDS)


@dataclass(frozen=True)
class Descriptor:
    """A DMA descriptor (fields as :data:`spec.memory.DESC_FIELDS`).

    Any value that fits its field is a valid descriptor; :func:`check` says whether the DMA does
    it or faults.

    Raises
    ------
    TypeError
        If a field is not an integer.
    ValueError
        If a field does not fit its width.
    """
    direction: int = Dir.LOAD
    space: int = Space.SP
    transpose: int = 0
    elem_words: int = 1
    mem_addr: int = 0
    sp_row: int = 0
    rows: int = 1
    cols: int = 1
    stride: int = 0

    def __post_init__(self):
        for name, width in DESC_FIELDS:
            value = getattr(self, name)
            check_int(value, f"Descriptor field {name}")
            if not 0 <= value < 1 << width:
                raise ValueError(f"Descriptor field {name} must be in 0..{(1 << width) - 1}, "
                                 f"not {value!r}")

    @property
    def sp_rows(self):
        """Scratchpad rows the descriptor touches: ``cols`` with transpose, else ``rows``."""
        return self.cols if self.transpose else self.rows

    @property
    def sp_lanes(self):
        """Lanes of each scratchpad row the block covers: ``rows`` with transpose, else ``cols``."""
        return self.rows if self.transpose else self.cols

    @property
    def words(self):
        """Main-memory words the descriptor moves: ``rows * cols * elem_words``."""
        return self.rows * self.cols * self.elem_words

    def as_dict(self):
        """The fields as a ``dict`` (e.g. the RTL descriptor stream's payload)."""
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


def _check_args(desc, soc):
    if not isinstance(desc, Descriptor):
        raise TypeError(f"Descriptor must be a Descriptor, not {desc!r}")
    return check_soc(soc, "DMA")


def check(desc, soc=None):
    """The descriptor's :class:`~spec.memory.Fault` (``Fault.NONE`` if the DMA does it) in the
    SoC :class:`~spec.soc.SocConfig` ``soc`` (default :data:`spec.soc.DEFAULT_SOC`).

    Checks are made in the order of the fault codes; the first failing one is returned.
    """
    soc = _check_args(desc, soc)
    if desc.rows == 0 or desc.cols == 0:
        return Fault.ZERO_SIZE
    if not 1 <= desc.elem_words <= MAX_ELEM_WORDS:
        return Fault.ELEM_WORDS
    if desc.sp_lanes > soc.lanes:
        return Fault.TOO_WIDE
    space_rows = soc.space_rows(desc.space)
    if desc.sp_row >= space_rows:
        return Fault.SP_RANGE
    if desc.sp_row + desc.sp_rows > space_rows:
        return Fault.SP_END
    if desc.mem_addr >= soc.mem_words:
        return Fault.MEM_RANGE
    end = desc.mem_addr + (desc.rows - 1) * desc.stride + desc.cols * desc.elem_words
    if end > soc.mem_words:
        return Fault.MEM_END
    return Fault.NONE


def word_addresses(desc):
    """Main-memory word addresses in the order the DMA accesses them.

    An ``int64`` tensor of shape ``(sp_rows, sp_lanes, elem_words)``: entry ``[t, l, w]`` is word
    ``w`` of the element in lane ``l`` of scratchpad row ``sp_row + t``.
    """
    t = torch.arange(desc.sp_rows, dtype=torch.int64)[:, None, None]
    lane = torch.arange(desc.sp_lanes, dtype=torch.int64)[None, :, None]
    w = torch.arange(desc.elem_words, dtype=torch.int64)[None, None, :]
    i, j = (lane, t) if desc.transpose else (t, lane)
    return desc.mem_addr + i * desc.stride + j * desc.elem_words + w


def _resize(values, width):
    """Two's-complement resize of non-negative-or-signed integers to signed ``width`` bits."""
    half = 1 << (width - 1)
    return ((values + half) & ((1 << width) - 1)) - half


def new_images(soc=None):
    """Zeroed images: ``(mem, [sp, acc])`` with the shapes :func:`execute` expects."""
    soc = check_soc(soc, "DMA")
    mem = torch.zeros(soc.mem_words, dtype=torch.int64)
    sps = [torch.zeros(soc.space_rows(s), soc.lanes, dtype=torch.int64) for s in Space]
    return mem, sps


def execute(desc, mem, sps, soc=None):
    """Perform ``desc`` on the images ``mem`` and ``sps`` in place and return its fault code.

    Parameters
    ----------
    desc : Descriptor
    mem : torch.Tensor
        Main memory, 1-D ``int64``, ``soc.mem_words`` words.
    sps : torch.Tensor or sequence of torch.Tensor
        The scratchpads indexed by :class:`~spec.memory.Space`, or only the one ``desc.space``
        names; each ``(rows, lanes)`` ``int64``.
    soc : SocConfig
        As :func:`check`.

    Returns
    -------
    Fault
        ``Fault.NONE`` if the transfer was done; otherwise nothing was changed.
    """
    soc = _check_args(desc, soc)
    if mem.shape != (soc.mem_words,) or mem.dtype != torch.int64:
        raise ValueError(f"Main memory must be an int64 tensor of shape ({soc.mem_words},)")
    sp = sps if isinstance(sps, torch.Tensor) else sps[desc.space]
    shape = (soc.space_rows(desc.space), soc.lanes)
    if tuple(sp.shape) != shape or sp.dtype != torch.int64:
        raise ValueError(f"Scratchpad {Space(desc.space).name} must be an int64 tensor of shape "
                         f"{shape}")
    fault = check(desc, soc)
    if fault:
        return fault
    ww = soc.word_width
    word_mask = (1 << ww) - 1
    ew_bits = ww * desc.elem_words
    sp_width = soc.elem_width(desc.space)
    addrs = word_addresses(desc)
    shifts = ww * torch.arange(desc.elem_words, dtype=torch.int64)
    rows = slice(desc.sp_row, desc.sp_row + desc.sp_rows)
    if desc.direction == Dir.LOAD:
        values = (mem[addrs] << shifts).sum(dim=-1)                 # (sp_rows, sp_lanes)
        values = _resize(_resize(values, ew_bits), sp_width)
        sp[rows] = 0
        sp[rows, :desc.sp_lanes] = values
    else:
        values = _resize(sp[rows, :desc.sp_lanes], ew_bits)
        words = (values[..., None] >> shifts) & word_mask          # (sp_rows, sp_lanes, ew)
        addrs, words = addrs.flatten(), words.flatten()
        # The hardware writes in this order: where addresses repeat, the last write wins.
        last = torch.flip(addrs, (0,))
        uniq, first = _first_occurrence(last)
        mem[uniq] = torch.flip(words, (0,))[first]
    return Fault.NONE


def _first_occurrence(x):
    """Unique values of 1-D ``x`` and the index of each one's first occurrence."""
    uniq, inverse = torch.unique(x, return_inverse=True)
    pos = torch.arange(x.numel(), dtype=torch.int64)
    first = torch.full((uniq.numel(),), x.numel(), dtype=torch.int64)
    first.scatter_reduce_(0, inverse, pos, reduce="amin")
    return uniq, first


def requests(desc, soc=None):
    """Bus requests the DMA makes for ``desc`` (0 if it faults in the SoC ``soc``, as
    :func:`check`): a line per line each block row touches without transpose, a word per request
    with transpose."""
    soc = _check_args(desc, soc)
    if check(desc, soc):
        return 0
    if desc.transpose:
        return desc.words
    n = desc.cols * desc.elem_words
    starts = desc.mem_addr + desc.stride * torch.arange(desc.rows, dtype=torch.int64)
    return int(((starts % LINE_WORDS + n - 1) // LINE_WORDS + 1).sum())


def cycles(desc, soc=None):
    """Cycles from the descriptor's acceptance to ``done`` under the deterministic memory model
    of ``soc`` (as :func:`check`): main-memory latency ``soc.mem_latency``."""
    soc = _check_args(desc, soc)
    if check(desc, soc):
        return CHECK_CYCLES
    return CHECK_CYCLES + requests(desc, soc) + soc.mem_latency + 1
