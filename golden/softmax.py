"""Bit-exact fixed-point softmax (with temperature) and cross-entropy gradient.

The specification :class:`rtl.softmax.SoftmaxUnit` is tested against; ``docs/softmax.md``
explains the design and the error bounds. Constants and the exp table come from
:mod:`spec.softmax_tables` (written ``NAME`` below). All arithmetic is on integers.

Algorithm, per row ``z_0 .. z_{C-1}`` (``width``-bit signed logits with ``z_frac`` fraction bits)::

    k   = round_ne(inv_temp * LOG2E_Q, K_SHIFT)          # log2(e)/T, K_FRAC fraction bits
    m   = max_j z_j
    u_j = m - z_j                                        # >= 0, exact
    a_j = round_ne(u_j * k, z_frac + K_FRAC - EXP_INDEX_BITS)
                                                         # (m - z_j)/T * log2(e) with
                                                         # EXP_INDEX_BITS fraction bits
    n_j = min(a_j >> EXP_INDEX_BITS, EXP_FRAC + 2)       # integer part (clamped: e_j is 0 anyway)
    f_j = a_j & (2**EXP_INDEX_BITS - 1)                  # fraction: table index
    e_j = (EXP_TABLE[f_j] + (2**n_j >> 1)) >> n_j        # 2**-a_j, EXP_FRAC fraction bits,
                                                         # shift rounded half up
    S   = sum_j e_j                                      # exact; 2**EXP_FRAC <= S <= C·2**EXP_FRAC
    R   = 2**RECIP_SHIFT // S                            # exact floor (restoring division)
    probs:  p_j = sat(round_ne(e_j * R, RECIP_SHIFT - prob_frac))
    grad:   g_j = sat(round_ne(e_j * R - t_j * 2**(RECIP_SHIFT - prob_frac),
                               RECIP_SHIFT + grad_shift - grad_frac))

``round_ne(x, s)`` is ``x / 2**s`` rounded to the nearest integer, ties to even (exact for any
``s >= 0``); ``sat`` clamps to the ``width``-bit signed range. ``EXP_TABLE[f]`` is
``round(2**EXP_FRAC * 2**(-f/2**EXP_INDEX_BITS))`` (:func:`spec.softmax_tables.exp2_table`).

Temperature. ``inv_temp`` is ``1/T`` as an unsigned ``INV_TEMP_WIDTH``-bit integer with
``INV_TEMP_FRAC`` fraction bits (``None``: ``T = 1``, i.e. ``INV_TEMP_ONE``; ``0``: ``T = ∞``,
uniform probabilities); :func:`temperature_to_inv_temp` converts a float ``T``. The gradient is
``softmax(z/T) - target`` with **no** temperature factor: it is the gradient of the tempered
cross-entropy with respect to the tempered logits ``z/T``, equivalently ``T ·`` its gradient with
respect to ``z``. Hinton's T²-scaled distillation loss has gradient ``T · (p - target)`` with
respect to ``z``; the remaining constant factor ``T`` belongs in the learning rate. Leaving it out
keeps the gradient in ``[-1, 1]`` whatever ``T`` is, so the gradient format never overflows and
its resolution does not depend on the temperature.

Accuracy (``docs/softmax.md``): ``|sum_j p_j - 2**prob_frac| <= C // 2`` LSB (one more if
saturation at ``prob_frac = width - 1`` clips a 1.0) for ``C <= 2**(25 - prob_frac)``, and,
for ``T <= 20`` (``inv_temp >= 205``) with ``z_frac = 8``, ``prob_frac = 14``, ``p_j`` is within
3 LSB of the float softmax of the same quantized logits at ``1/T = inv_temp / 2**12``.
"""

import torch

from spec.params import OPERAND_WIDTH, check_int
from spec.softmax_tables import (
    EXP_FRAC, EXP_INDEX_BITS, EXP_TABLE, GRAD_SHIFT_MAX, INV_TEMP_FRAC, INV_TEMP_ONE,
    INV_TEMP_WIDTH, K_FRAC, K_SHIFT, LOG2E_Q, RECIP_CYCLES, RECIP_SHIFT, SOFTMAX_DIV_HANDOFF,
    SOFTMAX_EXP_LATENCY, SOFTMAX_MAX_WIDTH, SOFTMAX_OUT_LATENCY,
)

__all__ = [
    "temperature_to_inv_temp", "exp_scale",
    "softmax_exp", "softmax_recip", "softmax_probs", "softmax_xent_grad",
    "softmax_cycles",
]


def _round_ne(x, s):
    """``x / 2**s`` rounded to nearest, ties to even; ``s >= 0``; exact on int64 tensors."""
    if s == 0:
        return x.clone()
    q = x >> s                                    # floor
    rem = x - (q << s)
    half = 1 << (s - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + up.to(torch.int64)


def _check_width(width):
    check_int(width, "Width")
    if not 2 <= width <= SOFTMAX_MAX_WIDTH:
        raise ValueError(f"Width must be between 2 and {SOFTMAX_MAX_WIDTH}, not {width!r}")


def _check_frac(frac, width, what):
    check_int(frac, what)
    if not 0 <= frac < width:
        raise ValueError(f"{what} must be between 0 and {width - 1}, not {frac!r}")


def _check_inv_temp(inv_temp):
    if inv_temp is None:
        return INV_TEMP_ONE
    check_int(inv_temp, "Inverse temperature")
    if not 0 <= inv_temp < (1 << INV_TEMP_WIDTH):
        raise ValueError(f"Inverse temperature must be between 0 and "
                         f"{(1 << INV_TEMP_WIDTH) - 1}, not {inv_temp!r}")
    return inv_temp


def _check_grad_shift(grad_shift):
    check_int(grad_shift, "Gradient shift")
    if not 0 <= grad_shift <= GRAD_SHIFT_MAX:
        raise ValueError(f"Gradient shift must be between 0 and {GRAD_SHIFT_MAX}, "
                         f"not {grad_shift!r}")


def _as_matrix(x, width, what):
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{what} must be an integer tensor, not a tensor of {x.dtype}")
    x = x.to(torch.int64)
    if x.dim() != 2:
        raise ValueError(f"{what} must be a 2-D tensor (samples, classes), not of shape "
                         f"{tuple(x.shape)}")
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if x.numel() and (int(x.min()) < lo or int(x.max()) > hi):
        raise ValueError(f"{what} must be {width}-bit signed integers (in {lo}..{hi})")
    return x


def temperature_to_inv_temp(temperature):
    """Convert a temperature ``T > 0`` to the ``inv_temp`` integer: ``round(2**INV_TEMP_FRAC / T)``,
    half to even, computed exactly (from the float's exact rational value).

    Raises
    ------
    TypeError
        If ``temperature`` is not a real number.
    ValueError
        If ``T <= 0`` (or NaN), or ``1/T`` rounds to 0 or does not fit ``INV_TEMP_WIDTH`` bits
        (``T`` greater than ``2**(INV_TEMP_FRAC+1)`` or below about 0.25).
    """
    from fractions import Fraction
    from numbers import Real
    if not isinstance(temperature, Real) or isinstance(temperature, bool):
        raise TypeError(f"Temperature must be a real number, not {temperature!r}")
    if not temperature > 0:     # also NaN
        raise ValueError(f"Temperature must be positive, not {temperature!r}")
    if temperature == float("inf"):
        raise ValueError(f"Temperature must be finite, not {temperature!r}")
    inv = round(Fraction(1 << INV_TEMP_FRAC) / Fraction(temperature))
    if not 1 <= inv < (1 << INV_TEMP_WIDTH):
        raise ValueError(f"Temperature must give an inverse temperature between 1 and "
                         f"{(1 << INV_TEMP_WIDTH) - 1} (units of 2**-{INV_TEMP_FRAC}), "
                         f"not {temperature!r}")
    return inv


def exp_scale(inv_temp=None):
    """The exponent scale ``k = round_ne(inv_temp * LOG2E_Q / 2**K_SHIFT)`` (``log2(e)/T`` with
    ``K_FRAC`` fraction bits) that the unit computes once per operation."""
    inv_temp = _check_inv_temp(inv_temp)
    return int(_round_ne(torch.tensor(inv_temp * LOG2E_Q), K_SHIFT))


def softmax_exp(z, *, z_frac, width=OPERAND_WIDTH, inv_temp=None):
    """The exponentials ``e_j`` (``EXP_FRAC`` fraction bits) and the row sums ``S``.

    Returns
    -------
    (e, s) : (torch.Tensor, torch.Tensor)
        ``int64`` of shapes (M, C) and (M,); see the module docstring for the exact formulas.
    """
    _check_width(width)
    _check_frac(z_frac, width, "Logit fraction bits")
    k = exp_scale(inv_temp)
    z = _as_matrix(z, width, "Logits")
    if z.shape[1] == 0:
        raise ValueError("Softmax needs at least one class, not 0")
    u = z.max(dim=1, keepdim=True).values - z
    a = _round_ne(u * k, z_frac + K_FRAC - EXP_INDEX_BITS)
    n = (a >> EXP_INDEX_BITS).clamp(max=EXP_FRAC + 2)
    f = a & ((1 << EXP_INDEX_BITS) - 1)
    e = (torch.tensor(EXP_TABLE, dtype=torch.int64)[f] + ((1 << n) >> 1)) >> n
    return e, e.sum(dim=1)


def softmax_recip(s):
    """The reciprocal ``R = 2**RECIP_SHIFT // S`` (exact floor), ``RECIP_BITS`` bits unsigned."""
    s = torch.as_tensor(s).to(torch.int64)
    if s.numel() and int(s.min()) < (1 << EXP_FRAC):
        raise ValueError(f"Row sums must be at least 2**{EXP_FRAC}")
    return torch.div(torch.full_like(s, 1 << RECIP_SHIFT), s, rounding_mode="floor")


def _saturate(x, width):
    return x.clamp(-(1 << (width - 1)), (1 << (width - 1)) - 1)


def softmax_probs(z, *, z_frac, prob_frac, width=OPERAND_WIDTH, inv_temp=None):
    """Fixed-point softmax of each row of ``z``: ``softmax(z / T)`` in the prob format.

    Parameters
    ----------
    z : integer tensor (M, C)
        Logits, ``width``-bit signed, ``z_frac`` fraction bits; ``C >= 1``, ``M >= 0``.
    z_frac, prob_frac : int
        Fraction bits of the logits and of the probabilities, each in ``0 .. width-1``.
    width : int
        Operand width, ``2 .. SOFTMAX_MAX_WIDTH``.
    inv_temp : int or None
        ``1/T`` as an unsigned integer with ``INV_TEMP_FRAC`` fraction bits; ``None`` is ``T = 1``.

    Returns
    -------
    torch.Tensor
        ``int64`` (M, C): ``sat(round_ne(e_j * R / 2**(RECIP_SHIFT - prob_frac)))``.

    Raises
    ------
    TypeError, ValueError
        On a bad argument (see the messages).
    """
    _check_width(width)
    _check_frac(prob_frac, width, "Probability fraction bits")
    e, s = softmax_exp(z, z_frac=z_frac, width=width, inv_temp=inv_temp)
    r = softmax_recip(s)
    return _saturate(_round_ne(e * r[:, None], RECIP_SHIFT - prob_frac), width)


def softmax_xent_grad(z, target, *, z_frac, prob_frac, grad_frac, width=OPERAND_WIDTH,
                      inv_temp=None, grad_shift=0):
    """Gradient of the (tempered) softmax cross-entropy: ``softmax(z/T) - target``.

    Computed from the exact product ``e_j * R`` (one rounding only)::

        g_j = sat(round_ne(e_j * R - target_j * 2**(RECIP_SHIFT - prob_frac),
                           RECIP_SHIFT + grad_shift - grad_frac))

    that is ``(p_j - target_j) * 2**(grad_frac - grad_shift)`` rounded half to even and saturated
    to ``width`` bits, with ``p_j`` the unrounded probability. No temperature factor (see the
    module docstring).

    Parameters
    ----------
    z : integer tensor (M, C)
        Logits, as :func:`softmax_probs`.
    target : integer tensor (M, C)
        Targets in the prob format (``prob_frac`` fraction bits, ``width``-bit signed): one-hot
        rows hold ``2**prob_frac`` at the class (requires ``prob_frac < width - 1``), soft rows sum
        to about ``2**prob_frac``.
    z_frac, prob_frac, grad_frac : int
        Fraction bits, each in ``0 .. width-1``.
    width : int
    inv_temp : int or None
    grad_shift : int
        Extra right shift, ``0 .. GRAD_SHIFT_MAX`` (e.g. ``log2`` of the batch for a mean).

    Returns
    -------
    torch.Tensor
        ``int64`` (M, C), ``grad_frac`` fraction bits, ``width``-bit signed.
    """
    _check_width(width)
    _check_frac(prob_frac, width, "Probability fraction bits")
    _check_frac(grad_frac, width, "Gradient fraction bits")
    _check_grad_shift(grad_shift)
    e, s = softmax_exp(z, z_frac=z_frac, width=width, inv_temp=inv_temp)
    t = _as_matrix(target, width, "Targets")
    if t.shape != e.shape:
        raise ValueError(f"Targets shape {tuple(t.shape)} does not match logits "
                         f"{tuple(e.shape)}")
    r = softmax_recip(s)
    d = e * r[:, None] - (t << (RECIP_SHIFT - prob_frac))
    return _saturate(_round_ne(d, RECIP_SHIFT + grad_shift - grad_frac), width)


def softmax_cycles(classes, samples=1):
    """Cycles :class:`rtl.softmax.SoftmaxUnit` spends on a group of ``samples`` samples of
    ``classes`` elements each (one SMX instruction).

    With the rows always valid and the output always ready, a group's last result is accepted
    ``softmax_cycles(C, S) - 1`` cycles after its first row, and the next group's first row one
    cycle later. The unit reads the group's ``C`` rows ``S + 1`` times: pass ``p`` finds sample
    ``p``'s maximum while it computes sample ``p - 1``'s exponentials and their sum. The divider
    then takes the sums one after the other, and the output phase the reciprocals, so that
    samples overlap; sample ``s``'s output phase starts ``s · max(C, RECIP_CYCLES)`` cycles after
    the first one's::

        softmax_cycles(C, S) = C                                 # pass 0: sample 0's maximum
                             + C + SOFTMAX_EXP_LATENCY           # pass 1: sample 0's sum
                             + SOFTMAX_DIV_HANDOFF + RECIP_CYCLES    # its reciprocal
                             + (S - 1) · max(C, RECIP_CYCLES)    # the other samples, overlapped
                             + C + SOFTMAX_OUT_LATENCY           # the last sample's results
                             = 3·C + 37 + (S - 1) · max(C, 14)

    (constants from :mod:`spec.softmax_tables`). The count does not depend on the mode, formats,
    temperature or data.

    Raises
    ------
    TypeError
        If ``classes`` or ``samples`` is not an integer.
    ValueError
        If ``classes < 1`` or ``samples < 1``.
    """
    check_int(classes, "Classes")
    if classes < 1:
        raise ValueError(f"Classes must be a positive integer, not {classes!r}")
    check_int(samples, "Samples")
    if samples < 1:
        raise ValueError(f"Samples must be a positive integer, not {samples!r}")
    return (3 * classes + SOFTMAX_EXP_LATENCY + SOFTMAX_DIV_HANDOFF + RECIP_CYCLES
            + SOFTMAX_OUT_LATENCY + (samples - 1) * max(classes, RECIP_CYCLES))
