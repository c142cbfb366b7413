"""Rounding right shift shared by the vector units (requantizer, SGD update).

Both rounding modes of :func:`golden.fixedpoint.round_shift` are "add, then floor-shift":

* stochastic: ``floor((x + (d & (2**s - 1))) / 2**s)``, ``d`` the element's draw;
* nearest-even: ``floor((x + 2**(s-1) - 1 + x[s]) / 2**s)`` for ``s >= 1`` (``x[s]`` is bit ``s``
  of ``x``, the parity of ``floor(x / 2**s)``), ``x`` for ``s = 0``. With ``x = q·2**s + rem``:
  ``rem > 2**(s-1)`` carries into ``q``, ``rem < 2**(s-1)`` does not, and a tie carries exactly
  when ``q`` is odd — round half to even. The addend is ``2**(s-1)`` or ``2**(s-1) - 1``: a
  choice between two static masks, no adder.

The units keep only a narrow quotient: :func:`round_shift_narrow` selects bits
``s .. s+out_width-1`` of the sum with a barrel shifter only ``out_width`` bits wide
(:func:`shift_right_bits`; in place of Yosys's full-width shift it saved 40 % of an SGD lane's
LUTs on ECP5) and tells whether the full quotient fits from the sum's bits above them (a static
mask). The masks depend only on the shift, a static operation input: :func:`rounding_masks`
makes them once per unit.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed

from .rng import RNG_WIDTH

__all__ = ["MAX_SHIFT", "SHIFT_BITS", "RoundingMasks", "rounding_masks", "rounding_addend",
           "round_shift_narrow", "shift_right_bits"]

#: Largest shift (and bias shift) the units support: the golden functions' bound.
MAX_SHIFT = RNG_WIDTH
#: Width of a shift input (0..MAX_SHIFT).
SHIFT_BITS = MAX_SHIFT.bit_length()


@dataclass(frozen=True)
class RoundingMasks:
    """Static masks for one shift amount ``s`` (comb signals shared by every lane)."""
    shift: Value            #: ``s``
    low: Signal             #: ``2**s - 1`` (32 bits)
    half: Signal            #: ``2**(s-1)`` (0 for ``s = 0``)
    half_m1: Signal         #: ``2**(s-1) - 1`` (0 for ``s = 0``)
    upper: Signal           #: sum bits ``i >= s + out_width - 1``
    out_width: int
    sum_width: int


def rounding_masks(m, shift, x_shape, out_width, name):
    """Make the :class:`RoundingMasks` of ``shift`` for sums ``x + addend``, ``x`` of shape
    ``x_shape``, narrowed to ``out_width`` bits; comb signals named ``{name}_*``."""
    sum_width = len(Const(0, x_shape) + Const(0, MAX_SHIFT))
    low = Signal(MAX_SHIFT, name=f"{name}_low")
    half = Signal(MAX_SHIFT, name=f"{name}_half")
    half_m1 = Signal(MAX_SHIFT, name=f"{name}_half_m1")
    upper = Signal(sum_width, name=f"{name}_upper")
    m.d.comb += [
        low.eq(Cat(*[shift > i for i in range(MAX_SHIFT)])),
        half_m1.eq(Cat(*[shift > i + 1 for i in range(MAX_SHIFT)])),
        half.eq(low ^ half_m1),
        upper.eq(Cat(*[(shift + (out_width - 1) <= i) if i >= out_width - 1 else 0
                       for i in range(sum_width)])),
    ]
    return RoundingMasks(shift, low, half, half_m1, upper, out_width, sum_width)


def rounding_addend(x, stochastic, draw, masks):
    """What to add to ``x`` before the floor shift (see the module docstring): 32 bits.

    ``draw`` is the element's draw (used only when ``stochastic``).
    """
    tie_up = Value.cast(x).bit_select(masks.shift, 1)        # ignored at s = 0: half is 0
    return Mux(stochastic, draw & masks.low, Mux(tie_up, masks.half, masks.half_m1))


def round_shift_narrow(m, x, addend, masks, name):
    """The quotient ``q = floor((x + addend) / 2**s)`` as ``masks.out_width`` signed bits.

    Returns ``(low, over, under)``: ``low`` is ``q`` wrapped to ``out_width`` bits, ``over`` /
    ``under`` tell that ``q`` is above / below the ``out_width``-bit signed range (then ``low`` is
    meaningless). ``q`` fits exactly when the sum's bits from ``s + out_width - 1`` up all equal
    its sign. Comb signals are named ``{name}_*``.
    """
    s = Signal(signed(masks.sum_width), name=f"{name}_sum")
    m.d.comb += s.eq(Value.cast(x) + addend)
    sign = s[-1]
    low = shift_right_bits(m, s, masks.shift, masks.out_width, f"{name}_shr").as_signed()
    fits = ~((s ^ sign.replicate(len(s))) & masks.upper).any()
    return low, ~fits & ~sign, ~fits & sign


def shift_right_bits(m, value, amount, out_width, name):
    """Bits ``amount .. amount+out_width-1`` of ``value`` (sign-filled past its top when it is
    signed): an arithmetic right shift that builds only the multiplexers those bits need. Each
    stage is a comb signal ``{name}_{k}``."""
    value = Value.cast(value)
    fill = value[-1] if value.shape().signed else Const(0, 1)
    bits = value
    for k in reversed(range(len(amount))):
        step = 1 << k
        need = out_width + step - 1           # bits the smaller stages still read
        at = lambda i: bits[i] if i < len(bits) else fill
        stage = Signal(need, name=f"{name}_{k}")
        m.d.comb += stage.eq(Cat(*[Mux(amount[k], at(i + step), at(i)) for i in range(need)]))
        bits = stage
    return bits[:out_width]
