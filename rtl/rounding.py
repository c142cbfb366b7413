"""Rounding right shift shared by the vector units (requantizer, SGD update).

Both rounding modes of :func:`golden.fixedpoint.round_shift` are "add, then floor-shift", with
an addend that does not depend on ``x`` (so it is ready, registered, before the sum):

* stochastic: ``floor((x + (d & (2**s - 1))) / 2**s)``, ``d`` the element's draw;
* nearest-even, ``s >= 1``: ``q = floor((x + 2**(s-1)) / 2**s)`` rounds half up. On a tie
  (``x mod 2**s == 2**(s-1)``, i.e. the sum ``x + 2**(s-1)`` is a multiple of ``2**s``) ``q`` is
  one above the floor, and the even one of the two candidates is ``q`` with its lowest bit
  cleared, whichever of them is odd. So nearest-even is ``q & ~1`` on a tie, ``q`` otherwise
  (:func:`tie`, :func:`clear_lsb`); clearing that bit never moves a quotient into or out of the
  output range, so the range flags of ``q`` stand. ``s = 0``: ``x`` (addend 0, no tie).

The units register the sum, then keep only a narrow quotient: :func:`narrow_quotient` selects
bits ``s .. s+out_width-1`` of the sum with a barrel shifter only ``out_width`` bits wide
(:func:`shift_right_bits`; in place of Yosys's full-width shift it saved 40 % of an SGD lane's
LUTs on ECP5) and tells whether the full quotient fits from the sum's bits above them (a static
mask). The masks depend only on the shift, a static operation input: :func:`rounding_masks`
makes them once per unit.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Mux, Signal, Value

from .rng import RNG_WIDTH

__all__ = ["MAX_SHIFT", "SHIFT_BITS", "RoundingMasks", "rounding_masks", "rounding_addend",
           "tie", "clear_lsb", "narrow_quotient", "shift_right_bits"]

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
    upper: Signal           #: sum bits ``i >= s + out_width - 1`` (registered, see below)
    low_q: Signal           #: ``low``, registered
    nonzero_q: Signal       #: ``s != 0``, registered
    out_width: int
    sum_width: int          #: width of ``x + addend``: the sum register's shape is signed(this)


def rounding_masks(m, shift, x_shape, out_width, name):
    """Make the :class:`RoundingMasks` of ``shift`` for sums ``x + addend``, ``x`` of shape
    ``x_shape``, narrowed to ``out_width`` bits; signals named ``{name}_*``.

    ``low`` and ``half`` (for the addend, made as a beat is accepted) are combinational; the masks
    used on the sum (``upper``, ``low_q``, ``nonzero_q``) are registered copies, which follow the
    shift one cycle late: right for stages after the first, since the static inputs hold from
    the cycle a beat is accepted until the unit is idle. (The registers also take the comparators
    off the sum's paths; and Yosys 0.70's ABC9 crashed on some unit sizes with them
    combinational.)"""
    sum_width = len(Const(0, x_shape) + Const(0, MAX_SHIFT))
    low = Signal(MAX_SHIFT, name=f"{name}_low")
    half = Signal(MAX_SHIFT, name=f"{name}_half")
    upper = Signal(sum_width, name=f"{name}_upper")
    low_q = Signal(MAX_SHIFT, name=f"{name}_low_q")
    shift_nz = Signal(name=f"{name}_nonzero_q")
    # Each mask as a shift of a constant: bit i of `low` is `shift > i`, of `half` is
    # `shift == i + 1`, of `upper` is `shift + out_width - 1 <= i` (the same per-bit functions of
    # the shift as comparators would be, in a few word operations for a compiled simulation).
    shift = Value.cast(shift)
    m.d.comb += [
        low.eq(~_ones_from(shift, MAX_SHIFT)),
        half.eq(_one_hot(shift, MAX_SHIFT + 1)[1:]),
    ]
    m.d.sync += [
        upper.eq(Cat(Const(0, out_width - 1),
                     _ones_from(shift, sum_width - (out_width - 1)))),
        low_q.eq(low),
        shift_nz.eq(shift != 0),
    ]
    return RoundingMasks(shift, low, half, upper, low_q, shift_nz, out_width, sum_width)


def rounding_addend(stochastic, draw, masks):
    """What to add before the floor shift (see the module docstring): 32 bits, independent of
    ``x``. ``draw`` is the element's draw (used only when ``stochastic``)."""
    return Mux(stochastic, draw & masks.low, masks.half)


def tie(total, stochastic, masks):
    """Nearest-even mode, ``s >= 1``, and the sum ``total = x + 2**(s-1)`` is a multiple of
    ``2**s`` (``x`` lay exactly half-way)."""
    total = Value.cast(total)
    return ~stochastic & masks.nonzero_q & ~(total[:MAX_SHIFT] & masks.low_q).any()


def clear_lsb(q, tie_):
    """``q`` with bit 0 cleared when ``tie_``: the nearest-even correction of a tie."""
    q = Value.cast(q)
    out = Cat(q[0] & ~tie_, q[1:])
    return out.as_signed() if q.shape().signed else out


def _ones_from(amount, width):
    """``width`` bits, bit ``i`` set where ``i >= amount`` (``amount`` unsigned): a constant
    shifted left, by no more bits than matter, in pieces of 32 bits, so that every shift fits
    a 64-bit word."""
    if width > 32:
        rest = (amount - 32)[:len(amount)]
        high = Mux(amount <= 32, Const((1 << (width - 32)) - 1, width - 32),
                   _ones_from(rest, width - 32))
        return Cat(_ones_from(amount, 32), high)
    n = max((width - 1).bit_length(), 1)
    mask = (Const((1 << width) - 1, width) << amount[:n])[:width]
    return Mux(amount[n:].any(), 0, mask) if len(amount) > n else mask


def _one_hot(amount, width):
    """``width`` bits, bit ``i`` set where ``i == amount`` (``amount`` unsigned)."""
    n = max((width - 1).bit_length(), 1)
    bits = (Const(1, 1) << amount[:n])[:width]
    return Mux(amount[n:].any(), 0, bits) if len(amount) > n else bits


def narrow_quotient(m, total, masks, name):
    """The quotient ``q = floor(total / 2**s)`` of a (registered, signed) sum as
    ``masks.out_width`` signed bits.

    Returns ``(low, over, under)``: ``low`` is ``q`` wrapped to ``out_width`` bits, ``over`` /
    ``under`` tell that ``q`` is above / below the ``out_width``-bit signed range (then ``low`` is
    meaningless). ``q`` fits exactly when the sum's bits from ``s + out_width - 1`` up all equal
    its sign. Comb signals are named ``{name}_*``.
    """
    total = Value.cast(total)
    assert len(total) == masks.sum_width and total.shape().signed
    sign = total[-1]
    low = shift_right_bits(m, total, masks.shift, masks.out_width, f"{name}_shr").as_signed()
    fits = ~((total ^ sign.replicate(len(total))) & masks.upper).any()
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
        # The previous stage, sign-filled to the `need + step` bits this stage reads; one
        # word-wide multiplexer of two slices (per bit the same multiplexers as bit by bit, but
        # a compiled simulation evaluates a few word operations instead of `need` single bits).
        ext = Cat(bits, fill.replicate(max(need + step - len(bits), 0)))
        stage = Signal(need, name=f"{name}_{k}")
        m.d.comb += stage.eq(Mux(amount[k], ext[step:step + need], ext[:need]))
        bits = stage
    return bits[:out_width]
