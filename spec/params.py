"""The one source of truth for Apprentice's parameters.

Everything that has a width, a size or a fixed-point format is defined here, once. The RTL
(`rtl/`), the golden model (`golden/`) and the firmware (`firmware/`) import these objects;
none of them restates a number that lives here.

This module is pure Python (no Amaranth, no PyTorch) so that every layer may import it.
"""

from dataclasses import dataclass, field, replace

__all__ = [
    "OPERAND_WIDTH", "ACC_WIDTH",
    "QFormat", "Formats", "ArrayConfig", "Config",
    "DEFAULT_FORMATS", "DEFAULT_CONFIG",
    "check_positive_int", "check_int",
]


#: Default width of an operand (weights, activations, gradients) in bits.
OPERAND_WIDTH = 16
#: Default width of the array's accumulators in bits.
ACC_WIDTH = 32


def check_int(value, what):
    """Raise :exc:`TypeError` unless ``value`` is an integer (``bool`` is not)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    return value


def check_positive_int(value, what):
    """Raise :exc:`TypeError`/:exc:`ValueError` unless ``value`` is an integer ≥ 1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


@dataclass(frozen=True)
class QFormat:
    """A signed two's-complement fixed-point format Q(``width`` − ``frac``).``frac``.

    A stored integer ``q`` represents the real number ``q / 2**frac``; ``q`` lies in
    ``[-2**(width-1), 2**(width-1) - 1]``.

    Parameters
    ----------
    width : int
        Total width in bits, sign included; ≥ 2.
    frac : int
        Fraction bits; ``0 <= frac < width``.

    Raises
    ------
    TypeError
        If ``width`` or ``frac`` is not an integer.
    ValueError
        If ``width < 2``, ``frac < 0`` or ``frac >= width``.
    """
    width: int
    frac: int

    def __post_init__(self):
        check_int(self.width, "Fixed-point width")
        check_int(self.frac, "Fixed-point fraction bits")
        if self.width < 2:
            raise ValueError(f"Fixed-point width must be at least 2, not {self.width!r}")
        if self.frac < 0:
            raise ValueError(f"Fixed-point fraction bits must be non-negative, not {self.frac!r}")
        if self.frac >= self.width:
            raise ValueError(f"Fixed-point fraction bits must be less than the width "
                             f"({self.width}), not {self.frac!r}")

    @property
    def min(self):
        """The most negative stored integer, ``-2**(width-1)``."""
        return -(1 << (self.width - 1))

    @property
    def max(self):
        """The most positive stored integer, ``2**(width-1) - 1``."""
        return (1 << (self.width - 1)) - 1

    @property
    def scale(self):
        """``2**frac``: the stored integer of the real number 1.0."""
        return 1 << self.frac

    @property
    def resolution(self):
        """The real value of one LSB, ``2**-frac``."""
        return 1.0 / (1 << self.frac)

    def __str__(self):
        return f"Q{self.width - self.frac}.{self.frac}"


@dataclass(frozen=True)
class Formats:
    """Per-tensor fixed-point formats of training.

    All formats share the operand width; only their fraction bits differ. The defaults follow a
    reference study of the recipe on digits in emulated fixed point (16-bit words with 12 fraction
    bits lost 0.2 points against float, 0.0 with stochastic rounding on the weight update; 14
    overflowed the 32-bit accumulator): activations Q8.8, weights and gradients Q4.12.

    Parameters
    ----------
    width : int
        Operand width in bits (every tensor below is stored in it).
    act_frac, weight_frac, grad_frac, prob_frac : int
        Fraction bits of activations (inputs included), weights and biases, gradients, and
        softmax probabilities.
    """
    width: int = OPERAND_WIDTH
    act_frac: int = 8
    weight_frac: int = 12
    grad_frac: int = 12
    prob_frac: int = 14

    def __post_init__(self):
        check_positive_int(self.width, "Operand width")
        for name in ("act_frac", "weight_frac", "grad_frac", "prob_frac"):
            QFormat(self.width, getattr(self, name))   # validates each

    @property
    def act(self):
        return QFormat(self.width, self.act_frac)

    @property
    def weight(self):
        return QFormat(self.width, self.weight_frac)

    @property
    def grad(self):
        return QFormat(self.width, self.grad_frac)

    @property
    def prob(self):
        return QFormat(self.width, self.prob_frac)


DEFAULT_FORMATS = Formats()


@dataclass(frozen=True)
class ArrayConfig:
    """Shape and widths of the systolic array.

    Parameters
    ----------
    rows, cols : int
        Processing elements: ``rows`` × ``cols``; a tile computes ``C[rows×cols] = A[rows×K]·B[K×cols]``.
    operand_width : int
        Width of the signed operands, in bits (≥ 2).
    acc_width : int
        Width of the signed accumulators, in bits; at least ``2 * operand_width`` so that one
        product always fits. Accumulation wraps modulo ``2**acc_width``.
    """
    rows: int = 8
    cols: int = 8
    operand_width: int = OPERAND_WIDTH
    acc_width: int = ACC_WIDTH

    def __post_init__(self):
        check_positive_int(self.rows, "Array rows")
        check_positive_int(self.cols, "Array columns")
        check_positive_int(self.operand_width, "Operand width")
        check_positive_int(self.acc_width, "Accumulator width")
        if self.operand_width < 2:
            raise ValueError(f"Operand width must be at least 2, not {self.operand_width!r}")
        if self.acc_width < 2 * self.operand_width:
            raise ValueError(f"Accumulator width must be at least twice the operand width "
                             f"({2 * self.operand_width}), not {self.acc_width!r}")


@dataclass(frozen=True)
class Config:
    """The whole accelerator's configuration.

    Later subsystems (memory, sequencer, selector) add their fields here, each validated in
    ``__post_init__``.

    Parameters
    ----------
    array : ArrayConfig
        The systolic array.
    formats : Formats
        Fixed-point formats of training; ``formats.width`` must equal the operand width.
    """
    array: ArrayConfig = field(default_factory=ArrayConfig)
    formats: Formats = field(default_factory=Formats)

    def __post_init__(self):
        if not isinstance(self.array, ArrayConfig):
            raise TypeError(f"Array configuration must be an ArrayConfig, not {self.array!r}")
        if not isinstance(self.formats, Formats):
            raise TypeError(f"Formats must be a Formats, not {self.formats!r}")
        if self.formats.width != self.array.operand_width:
            raise ValueError(f"Formats width ({self.formats.width}) must equal the operand width "
                             f"({self.array.operand_width})")

    def with_array(self, **kwargs):
        """A copy with some :class:`ArrayConfig` fields replaced."""
        return replace(self, array=replace(self.array, **kwargs))


DEFAULT_CONFIG = Config()
