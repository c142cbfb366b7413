"""Rounding right shift shared by the vector units (requantizer, SGD update).

Both rounding modes of :func:`golden.fixedpoint.round_shift` are "add, then floor-shift":

* stochastic: ``floor((x + (d & (2**s - 1))) / 2**s)``, ``d`` the element's draw;
* nearest-even: ``floor((x + 2**(s-1) - 1 + x[s]) / 2**s)`` for ``s >= 1`` (``x[s]`` is bit ``s``
  of ``x``, the parity of ``floor(x / 2**s)``), ``x`` for ``s = 0``. With ``x = q·2**s + rem``:
  ``rem > 2**(s-1)`` carries into ``q``, ``rem < 2**(s-1)`` does not, and a tie carries exactly
  when ``q`` is odd — round half to even.
"""

from amaranth.hdl import Cat, Mux, Value

from .rng import RNG_WIDTH

__all__ = ["MAX_SHIFT", "SHIFT_BITS", "shift_masks", "rounding_addend", "round_shift"]

#: Largest shift (and bias shift) the units support: the golden functions' bound.
MAX_SHIFT = RNG_WIDTH
#: Width of a shift input (0..MAX_SHIFT).
SHIFT_BITS = MAX_SHIFT.bit_length()


def shift_masks(shift):
    """``(2**shift - 1, 2**(shift-1) - 1)`` as 32-bit thermometer codes (0 for ``shift = 0``).

    ``shift`` is a static operation input, so these are shared by every lane.
    """
    low = Cat(*[shift > i for i in range(MAX_SHIFT)])
    half_m1 = Cat(*[shift > i + 1 for i in range(MAX_SHIFT)])
    return low, half_m1


def rounding_addend(x, shift, stochastic, draw, low, half_m1):
    """What to add to ``x`` before the floor shift by ``shift`` (see the module docstring).

    ``low`` and ``half_m1`` come from :func:`shift_masks`; ``draw`` is the element's draw (only
    used when ``stochastic``). The result is unsigned, below ``2**MAX_SHIFT``.
    """
    x = Value.cast(x)
    tie_up = (shift != 0) & x.bit_select(shift, 1)
    return Mux(stochastic, draw & low, half_m1 + tie_up)


def round_shift(x, shift, addend):
    """``floor((x + addend) / 2**shift)``: an arithmetic right shift, exact (no bits dropped)."""
    x = Value.cast(x)
    return (x + addend) >> shift
