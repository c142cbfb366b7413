"""Configuration of the whole SoC: the array, the formats and the sizes of its memories.

Pure Python; imported by the RTL, the golden model and the firmware.
"""

from dataclasses import dataclass, field

from .params import Config, DEFAULT_CONFIG, check_positive_int
from .selection import SelectorConfig, DEFAULT_SELECTOR

__all__ = ["SocConfig", "DEFAULT_SOC"]


def _pow2(v, what):
    check_positive_int(v, what)
    if v & (v - 1):
        raise ValueError(f"{what} must be a power of two, not {v!r}")
    return v


@dataclass(frozen=True)
class SocConfig:
    """Sizes of the SoC's memories around the array.

    Parameters
    ----------
    config : Config
        Array shape, widths and fixed-point formats.
    mem_words : int
        Main memory, 16-bit words (a multiple of 8: instructions are 8 words).
    sp_banks, sp_depth : int
        Operand scratchpad: banks × rows per bank (powers of two).
    acc_banks, acc_depth : int
        Accumulator scratchpad: banks × rows per bank (powers of two).
    selector : SelectorConfig or None
        The balanced top-K selector of the SELCLR/SELFEED/SELOUT instructions (``docs/isa.md``):
        classes, K, P and the sample id width; its scores are operand-width probabilities, its
        ids at most 32 bits, its per-class counts fit a main-memory word. ``None``: no selector
        (the selection instructions are illegal). Default: the recipe's C = 10, K = 100, P = 1.
    mem_latency : int
        Main memory's latency in cycles (≥ 1): a bus request accepted in cycle ``c`` has its
        response in cycle ``c + mem_latency`` (:class:`spec.memory.MemoryConfig`). Default 2: the
        block RAM's read register, then a register of the read line, so that the block RAM's
        slow clock-to-output (5.8 ns on the ECP5) reaches only that register (``docs/build.md``).
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
        check_positive_int(self.mem_words, "Main memory words")
        if self.mem_words % 8:
            raise ValueError(f"Main memory words must be a multiple of 8, not {self.mem_words!r}")
        _pow2(self.sp_banks, "Scratchpad banks")
        _pow2(self.sp_depth, "Scratchpad depth")
        _pow2(self.acc_banks, "Accumulator scratchpad banks")
        _pow2(self.acc_depth, "Accumulator scratchpad depth")
        check_positive_int(self.mem_latency, "Memory latency")
        sel, width = self.selector, self.config.array.operand_width
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
    def sp_rows(self):
        return self.sp_banks * self.sp_depth

    @property
    def acc_rows(self):
        return self.acc_banks * self.acc_depth


DEFAULT_SOC = SocConfig()
