"""Configuration of the whole SoC: the array, the formats, the sizes of its memories and main
memory's latency.

Every block that touches main memory or the instruction set takes one :class:`SocConfig` (see
:mod:`spec`). Pure Python; imported by the RTL, the golden model and the firmware.
"""

from dataclasses import dataclass, field

from .isa import INSN_WORDS, WORD_BITS
from .memory import DESC_FIELDS, Space
from .params import Config, DEFAULT_CONFIG, check_int, check_positive_int
from .selection import SelectorConfig, DEFAULT_SELECTOR

__all__ = ["SocConfig", "DEFAULT_SOC", "check_soc"]


_DESC_WIDTHS = dict(DESC_FIELDS)


def _pow2(v, what):
    check_positive_int(v, what)
    if v & (v - 1):
        raise ValueError(f"{what} must be a power of two, not {v!r}")
    return v


@dataclass(frozen=True)
class SocConfig:
    """The SoC: the array and the memories around it.

    Main memory holds ``mem_words`` words of ``word_width`` (the operand width) bits at word
    addresses ``[0, mem_words)``. A scratchpad row holds ``lanes = max(array rows, array cols)``
    elements; a scratchpad has ``banks`` banks of ``depth`` rows and unified row addresses
    ``bank * depth + row``.

    Parameters
    ----------
    config : Config
        Array shape, widths and fixed-point formats. The operand width must be
        :data:`spec.isa.WORD_BITS` (main memory's words hold operands and instructions).
    mem_words : int
        Main memory, in words: a multiple of 8 (instructions are 8 words), at most ``2**32``
        (the DMA descriptor's address width).
    sp_banks, sp_depth : int
        Operand scratchpad: banks × rows per bank (a power of two).
    acc_banks, acc_depth : int
        Accumulator scratchpad: banks × rows per bank (a power of two). Neither scratchpad may
        have more rows than the DMA descriptor's ``sp_row`` field addresses (``2**13``).
    selector : SelectorConfig or None
        The balanced top-K selector of the SELCLR/SELFEED/SELOUT instructions (``docs/isa.md``):
        classes, K, P and the sample id width; its scores are operand-width probabilities, its
        ids at most 32 bits, its per-class counts fit a main-memory word. ``None``: no selector
        (the selection instructions are illegal). Default: the recipe's C = 10, K = 100, P = 1.
    mem_latency : int
        Main memory's latency in cycles (≥ 1) in the deterministic memory model: a bus request
        accepted in cycle ``c`` has its response in cycle ``c + mem_latency``; cycle models use
        this value. Default 2: the block RAM's read register, then a register of the read line,
        so that the block RAM's slow clock-to-output (5.8 ns on the ECP5) reaches only that
        register (``docs/build.md``).

    Raises
    ------
    TypeError
        If a parameter has the wrong type.
    ValueError
        If the operand width is not :data:`spec.isa.WORD_BITS`, a size is not positive, a depth
        is not a power of two, a scratchpad has more rows than the descriptor's ``sp_row`` field
        addresses, ``mem_words`` is not a multiple of 8 or is above ``2**32``, or the selector
        does not fit the SoC.
    """
    config: Config = field(default_factory=lambda: DEFAULT_CONFIG)
    mem_words: int = 1 << 18
    sp_banks: int = 4
    sp_depth: int = 512
    acc_banks: int = 2
    acc_depth: int = 512
    selector: SelectorConfig = DEFAULT_SELECTOR
    mem_latency: int = 2

    def __post_init__(self):
        if not isinstance(self.config, Config):
            raise TypeError(f"SoC config must hold a Config, not {self.config!r}")
        width = self.config.array.operand_width
        if width != WORD_BITS:
            raise ValueError(f"The SoC supports only {WORD_BITS}-bit operands (its main-memory "
                             f"word), not {width!r}")
        check_positive_int(self.mem_words, "Main memory words")
        addr_bits = _DESC_WIDTHS["mem_addr"]
        if self.mem_words > 1 << addr_bits:
            raise ValueError(f"Main memory words must be at most 2**{addr_bits}, "
                             f"not {self.mem_words!r}")
        if self.mem_words % INSN_WORDS:
            raise ValueError(f"Main memory words must be a multiple of {INSN_WORDS}, "
                             f"not {self.mem_words!r}")
        row_bits = _DESC_WIDTHS["sp_row"]
        for what, banks, depth in (("Scratchpad", self.sp_banks, self.sp_depth),
                                   ("Accumulator scratchpad", self.acc_banks, self.acc_depth)):
            check_positive_int(banks, f"{what} banks")
            _pow2(depth, f"{what} depth")
            if banks * depth > 1 << row_bits:
                raise ValueError(f"{what} rows (banks × depth) must be at most 2**{row_bits}, "
                                 f"not {banks * depth!r}")
        check_positive_int(self.mem_latency, "Memory latency")
        sel = self.selector
        if sel is not None:
            if not isinstance(sel, SelectorConfig):
                raise TypeError(f"SoC selector must be a SelectorConfig or None, not {sel!r}")
            if sel.score_width != width:
                raise ValueError(f"Selector score width must be the operand width ({width}), "
                                 f"not {sel.score_width!r}")
            if sel.id_width > 32:
                raise ValueError(f"Selector id width must be at most 32, not {sel.id_width!r}")
            if sel.count_width > width:
                raise ValueError(f"Selector K must be less than 2**{width}, not {sel.k!r}")

    @property
    def lanes(self):
        """Elements per scratchpad row: ``max(array rows, array cols)``."""
        return max(self.config.array.rows, self.config.array.cols)

    @property
    def word_width(self):
        """Width in bits of a main-memory word: the operand width."""
        return self.config.array.operand_width

    @property
    def sp_rows(self):
        """Rows of the operand scratchpad, ``sp_banks * sp_depth``."""
        return self.sp_banks * self.sp_depth

    @property
    def acc_rows(self):
        """Rows of the accumulator scratchpad, ``acc_banks * acc_depth``."""
        return self.acc_banks * self.acc_depth

    def space_rows(self, space):
        """Rows of scratchpad ``space`` (a :class:`~spec.memory.Space`)."""
        check_int(space, "Scratchpad space")
        return {Space.SP: self.sp_rows, Space.ACC: self.acc_rows}[Space(space)]

    def elem_width(self, space):
        """Width in bits of an element of scratchpad ``space``: the operand width for
        ``Space.SP``, the accumulator width for ``Space.ACC``."""
        check_int(space, "Scratchpad space")
        a = self.config.array
        return {Space.SP: a.operand_width, Space.ACC: a.acc_width}[Space(space)]


DEFAULT_SOC = SocConfig()


def check_soc(soc, what):
    """The configuration a block named ``what`` was given: ``soc``, or :data:`DEFAULT_SOC` for
    ``None``.

    Raises
    ------
    TypeError
        If ``soc`` is neither ``None`` nor a :class:`SocConfig`:
        ``"{what} configuration must be a SocConfig, not ..."``.
    """
    if soc is None:
        return DEFAULT_SOC
    if not isinstance(soc, SocConfig):
        raise TypeError(f"{what} configuration must be a SocConfig, not {soc!r}")
    return soc
