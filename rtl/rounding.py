"""Rounding right shift shared by the vector units (requantizer, SGD update).

Both rounding modes of :func:`golden.fixedpoint.round_shift` are "add, then floor-shift":

* stochastic: ``floor((x + (d & (2**s - 1))) / 2**s)``, ``d`` the element's draw;
* nearest-even: ``floor((x + 2**(s-1) - 1 + x[s]) / 2**s)`` for ``s >= 1`` (``x[s]`` is bit ``s``
  of ``x``, the parity of ``floor(x / 2**s)``), ``x`` for ``s = 0``. With ``x = q·2**s + rem``:
  ``rem > 2**(s-1)`` carries into ``q``, ``rem < 2**(s-1)`` does not, and a tie carries exactly
  when ``q`` is odd — round half to even.

The units keep only a narrow result: :func:`round_shift_narrow` selects the ``out_width`` bits
``s .. s+out_width-1`` of the sum (a barrel shifter only ``out_width`` bits wide) and tells
whether the full quotient fits, from the sum's bits above them (with a static mask); a full-width
shifter would cost about twice the logic.
"""

from amaranth.hdl import Cat, Const, Mux, Signal, Value

from .rng import RNG_WIDTH

__all__ = ["MAX_SHIFT", "SHIFT_BITS", "shift_masks", "rounding_addend", "upper_mask", "sum_width",
           "round_shift_narrow"]

#: Largest shift (and bias shift) the units support: the golden functions' bound.
MAX_SHIFT = RNG_WIDTH
#: Width of a shift input (0..MAX_SHIFT).
SHIFT_BITS = MAX_SHIFT.bit_length()


def shift_masks(m, shift, name):
    """``(2**shift - 1, 2**(shift-1) - 1)`` as 32-bit thermometer codes (0 for ``shift = 0``).

    ``shift`` is a static operation input: the masks are made once (comb signals named
    ``{name}_low``/``{name}_half_m1``) and shared by every lane.
    """
    low = Signal(MAX_SHIFT, name=f"{name}_low")
    half_m1 = Signal(MAX_SHIFT, name=f"{name}_half_m1")
    m.d.comb += [low.eq(Cat(*[shift > i for i in range(MAX_SHIFT)])),
                 half_m1.eq(Cat(*[shift > i + 1 for i in range(MAX_SHIFT)]))]
    return low, half_m1


def rounding_addend(x, shift, stochastic, draw, low, half_m1):
    """What to add to ``x`` before the floor shift by ``shift`` (see the module docstring).

    ``low`` and ``half_m1`` come from :func:`shift_masks`; ``draw`` is the element's draw (only
    used when ``stochastic``). The result is unsigned, below ``2**MAX_SHIFT``.
    """
    x = Value.cast(x)
    tie_up = (shift != 0) & x.bit_select(shift, 1)
    return Mux(stochastic, draw & low, half_m1 + tie_up)


def upper_mask(m, shift, out_width, length, name):
    """Static mask of bit positions ``i >= shift + out_width - 1`` among ``length`` bits (a comb
    signal named ``name``, made once and shared by every lane)."""
    mask = Signal(length, name=name)
    m.d.comb += mask.eq(Cat(*[(shift + (out_width - 1) <= i) if i >= out_width - 1 else 0
                              for i in range(length)]))
    return mask


def sum_width(x_shape):
    """Width of ``x + addend`` for ``x`` of shape ``x_shape`` (the ``length`` of
    :func:`upper_mask`); addends are at most ``MAX_SHIFT + 1`` bits wide."""
    return len(Const(0, x_shape) + Const(0, MAX_SHIFT + 1))


def round_shift_narrow(x, shift, addend, out_width, mask):
    """The quotient ``q = floor((x + addend) / 2**shift)`` as ``out_width`` signed bits.

    Returns ``(low, over, under)``: ``low`` is ``q`` wrapped to ``out_width`` bits, ``over`` /
    ``under`` tell that ``q`` is above / below the ``out_width``-bit signed range (then ``low`` is
    meaningless). ``q`` fits exactly when the sum's bits from ``shift + out_width - 1`` up all
    equal its sign; ``mask`` is :func:`upper_mask` of the sum's width.
    """
    s = Value.cast(x) + addend
    assert len(mask) == len(s)
    sign = s[-1]
    low = (s >> shift)[:out_width].as_signed()
    fits = ~((s ^ sign.replicate(len(s))) & mask).any()
    return low, ~fits & ~sign, ~fits & sign
