"""Bit-exact fixed-point arithmetic of the accelerator: the specification the RTL is tested against.

Every function works on integer :class:`torch.Tensor` values (``torch.int64``; inputs of other
integer dtypes are widened first) and states exactly how it rounds and what it does on overflow.
Results are ``torch.int64`` tensors holding the stored integers.

Conventions
-----------
* A *W-bit signed* value lies in ``[-2**(W-1), 2**(W-1) - 1]``.
* *Wrapping* to W bits is two's-complement arithmetic modulo ``2**W`` (what an adder does when
  its carry out is dropped). *Saturation* clamps to the range and counts the clamped elements.
* Rounding modes are the strings in :data:`ROUNDING_MODES`:
  ``"nearest-even"`` (round half to even) and ``"stochastic"`` (add a uniform random integer in
  ``[0, 2**shift)`` drawn from :class:`Xorshift32`, then floor). The accelerator's vector
  engine has one generator per lane (:class:`LaneGenerators`): the element in lane ``l`` takes
  generator ``l``'s next draw.
"""

import numpy as np
import torch

from spec.params import QFormat, check_int, check_positive_int
from spec.rng import lane_seed

__all__ = [
    "ROUNDING_MODES", "Xorshift32", "LaneGenerators",
    "wrap", "saturate", "quantize", "dequantize",
    "round_shift", "requantize", "requantize_act", "int_gemm",
    "relu", "relu_mask", "relu_backward", "sgd_update",
]

#: The rounding modes every rounding operation accepts.
ROUNDING_MODES = ("nearest-even", "stochastic")

_MASK32 = 0xFFFF_FFFF


def _as_int64(x, what="Value"):
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{what} must be an integer tensor, not a tensor of {x.dtype}")
    return x.to(torch.int64)


def _check_width(width):
    check_positive_int(width, "Width")
    if width < 2 or width > 62:
        raise ValueError(f"Width must be between 2 and 62 bits, not {width!r}")
    return width


def _check_rounding(rounding):
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"Rounding must be one of {', '.join(map(repr, ROUNDING_MODES))}, "
                         f"not {rounding!r}")
    return rounding


class Xorshift32:
    """The accelerator's random number generator: Marsaglia's xorshift32 (shifts 13, 17, 5).

    The state is a non-zero 32-bit integer. One *step* is::

        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF

    and a *draw* is the state after one step. The generator is linear over GF(2) (a
    linear-feedback shift register in the wide sense), so hardware that must produce L draws per
    cycle computes them from one state with XOR networks; the sequence is the same whatever L is.
    Consumers define which element takes which draw (stochastic rounding: element ``i`` of a
    stream in order takes draw ``i``; every element takes one draw, even at ``shift = 0``).

    Parameters
    ----------
    seed : int
        Initial state, ``1 <= seed < 2**32``.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer.
    ValueError
        If ``seed`` is zero or does not fit in 32 bits (zero is the generator's fixed point).
    """

    def __init__(self, seed=1):
        check_int(seed, "Xorshift32 seed")
        if not 0 < seed <= _MASK32:
            raise ValueError(f"Xorshift32 seed must be in 1..2**32-1, not {seed!r}")
        self.state = seed

    @staticmethod
    def step(x):
        """One step of the generator on a Python integer state."""
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        return x

    # Columns of the step matrix M^j for j = 1..B, cached per block size: _jump[B][b][j-1] is the
    # state after j steps from the state (1 << b). Linear, so any state's j-th successor is the
    # XOR of the rows of its set bits.
    _jump = {}

    @classmethod
    def _jump_table(cls, block):
        table = cls._jump.get(block)
        if table is None:
            x = np.left_shift(np.uint64(1), np.arange(32, dtype=np.uint64))   # 32 states at once
            table = np.empty((32, block), dtype=np.int64)
            for j in range(block):
                x ^= (x << np.uint64(13)) & np.uint64(_MASK32)
                x ^= x >> np.uint64(17)
                x ^= (x << np.uint64(5)) & np.uint64(_MASK32)
                table[:, j] = x
            cls._jump[block] = table
        return table

    def draw(self, n):
        """The next ``n`` draws, as an ``int64`` tensor of values in ``[1, 2**32)``."""
        check_int(n, "Number of draws")
        if n < 0:
            raise ValueError(f"Number of draws must be non-negative, not {n!r}")
        out, self.state = self.draws_from(self.state, n)
        return out

    @classmethod
    def draws_from(cls, state, n):
        """The ``n`` draws after ``state`` and the state after them: ``(int64 tensor, int)``."""
        if n == 0:
            return torch.zeros(0, dtype=torch.int64), state
        if n <= 64:
            out = []
            x = state
            for _ in range(n):
                x = cls.step(x)
                out.append(x)
            return torch.tensor(out, dtype=torch.int64), x
        block = 4096 if n >= 4096 else 1 << (n - 1).bit_length()
        table = cls._jump_table(block)
        chunks, left = [], n
        while left > 0:
            acc = torch.from_numpy(np.bitwise_xor.reduce(
                table[[b for b in range(32) if (state >> b) & 1]], axis=0))
            take = min(left, block)
            chunks.append(acc[:take])
            state = int(acc[take - 1])
            left -= take
        return torch.cat(chunks), state


class LaneGenerators:
    """The vector engine's stochastic-rounding generators: one :class:`Xorshift32` per lane.

    Lane ``l`` starts at :func:`spec.rng.lane_seed` ``(seed, l)`` (``seed ^ l·0x6A09E667``, 1 if
    that is zero; ``spec/rng.py`` argues why lanes so seeded are not near copies of each other).
    Consumers of a ``(rows, n)`` block of elements, ``n <= lanes``, give the element in row ``r``
    and lane ``l`` the next draw of generator ``l``, rows in order; the generators of lanes
    ``>= n`` do not step. So each lane's generator is consumed by exactly the elements that
    pass through that lane, in program order.

    Parameters
    ----------
    seed : int
        The SEED value, ``1 <= seed < 2**32``.
    lanes : int
        Number of generators.

    Attributes
    ----------
    states : list of int
        The generators' states (the last draw each has given, or its seed).

    Raises
    ------
    TypeError
        If ``seed`` or ``lanes`` is not an integer.
    ValueError
        If ``seed`` is zero or does not fit in 32 bits, or ``lanes`` is not positive.
    """

    def __init__(self, seed=1, lanes=1):
        check_int(seed, "Xorshift32 seed")
        if not 0 < seed <= _MASK32:
            raise ValueError(f"Xorshift32 seed must be in 1..2**32-1, not {seed!r}")
        check_positive_int(lanes, "Generator lanes")
        self.states = [lane_seed(seed, l) for l in range(lanes)]

    @property
    def lanes(self):
        return len(self.states)

    def draw(self, rows, n=None):
        """The next ``rows`` draws of generators ``0 .. n-1`` (default: all), as an ``int64``
        tensor of shape ``(rows, n)``: column ``l`` is generator ``l``'s."""
        check_int(rows, "Number of draws")
        if rows < 0:
            raise ValueError(f"Number of draws must be non-negative, not {rows!r}")
        n = self.lanes if n is None else n
        check_int(n, "Lanes drawn")
        if not 0 <= n <= self.lanes:
            raise ValueError(f"Lanes drawn must be in 0..{self.lanes}, not {n!r}")
        cols = []
        for l in range(n):
            col, self.states[l] = Xorshift32.draws_from(self.states[l], rows)
            cols.append(col)
        if not cols:
            return torch.zeros(rows, 0, dtype=torch.int64)
        return torch.stack(cols, dim=1)


def _draws(rng, x):
    """One draw per element of ``x`` (shape of ``x``): row-major from an :class:`Xorshift32`,
    or per lane (last dimension) from :class:`LaneGenerators`."""
    if isinstance(rng, Xorshift32):
        return rng.draw(x.numel()).reshape(x.shape)
    if isinstance(rng, LaneGenerators):
        if x.numel() == 0:
            return torch.zeros_like(x)
        rows = x.reshape(-1, x.shape[-1] if x.dim() else 1)
        if rows.shape[1] > rng.lanes:
            raise ValueError(f"{rows.shape[1]} lanes of elements but {rng.lanes} generators")
        return rng.draw(rows.shape[0], rows.shape[1]).reshape(x.shape)
    raise TypeError(f"Stochastic rounding needs an Xorshift32 or LaneGenerators, not {rng!r}")


def wrap(x, width):
    """Wrap integers to ``width``-bit two's complement (modulo ``2**width``, no saturation)."""
    x = _as_int64(x)
    _check_width(width)
    m = 1 << width
    h = 1 << (width - 1)
    return torch.remainder(x + h, m) - h


def saturate(x, width):
    """Clamp integers to the ``width``-bit signed range.

    Returns
    -------
    (y, n_sat) : (torch.Tensor, int)
        ``y = clamp(x, -2**(width-1), 2**(width-1) - 1)`` and the number of elements of ``x``
        outside that range.
    """
    x = _as_int64(x)
    _check_width(width)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    n_sat = int(((x < lo) | (x > hi)).sum())
    return x.clamp(lo, hi), n_sat


def round_shift(x, shift, rounding="nearest-even", rng=None):
    """Arithmetic right shift by ``shift`` bits with rounding; no saturation.

    * ``"nearest-even"``: ``x / 2**shift`` rounded to the nearest integer, ties to the even one.
    * ``"stochastic"``: ``floor((x + r) / 2**shift)`` with ``r = d & (2**shift - 1)``, where
      ``d`` is the element's draw, one per element (also when ``shift == 0``): from an
      :class:`Xorshift32`, the next draws in row-major order; from :class:`LaneGenerators`, the
      element in lane ``l`` (last index) takes generator ``l``'s next draw, rows in order.
      ``E[result] = x / 2**shift`` up to the generator's 2**-32 bias.

    ``shift = 0`` returns ``x`` unchanged (stochastic mode still consumes the draws).

    Parameters
    ----------
    x : integer tensor
    shift : int
        ``0 <= shift <= 32``.
    rounding : str
        One of :data:`ROUNDING_MODES`.
    rng : Xorshift32 or LaneGenerators
        Required for ``"stochastic"``; advanced by one draw per element.
    """
    x = _as_int64(x)
    check_int(shift, "Shift")
    if not 0 <= shift <= 32:
        raise ValueError(f"Shift must be between 0 and 32, not {shift!r}")
    _check_rounding(rounding)
    if rounding == "stochastic":
        r = _draws(rng, x) & ((1 << shift) - 1)
        return torch.div(x + r, 1 << shift, rounding_mode="floor")
    if shift == 0:
        return x.clone()
    q = torch.div(x, 1 << shift, rounding_mode="floor")
    rem = x - q * (1 << shift)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & (q.remainder(2) == 1))
    return q + up.to(torch.int64)


def requantize(x, shift, width, rounding="nearest-even", rng=None):
    """Convert wide integers to ``width``-bit operands: :func:`round_shift`, then :func:`saturate`.

    Returns
    -------
    (y, n_sat) : (torch.Tensor, int)
    """
    return saturate(round_shift(x, shift, rounding, rng), width)


def requantize_act(acc, shift, width, bias=None, bias_shift=0, relu=False,
                   rounding="nearest-even", rng=None):
    """The requantizer/activation unit: bias, shift with rounding, saturation, optional ReLU.

    For an accumulator tile ``acc`` of shape (M, N) and an optional bias vector of shape (N,)::

        x    = acc + (bias << bias_shift)            # exact, bias broadcast over rows
        y, n = requantize(x, shift, width, rounding, rng)
        sat  = elements of round_shift(x) outside the width-bit range
        mask = ~sat & (y > 0)   if relu  else  ~sat
        y    = max(y, 0)        if relu  else  y

    The mask is the derivative of the unit (saturation has zero derivative, so gradients through a
    saturated element are masked too: without it, a reference study's Q4.12 student collapsed to
    12 % on digits). Stochastic rounding takes one draw per element (:func:`round_shift`).

    Parameters
    ----------
    acc : integer tensor (M, N)
    shift : int
    width : int
    bias : integer tensor (N,), optional
    bias_shift : int
        ``0 <= bias_shift <= 32``.
    relu : bool
    rounding : str
    rng : Xorshift32 or LaneGenerators

    Returns
    -------
    (y, mask, n_sat) : (torch.Tensor, torch.Tensor, int)
        ``y`` and ``mask`` (0/1) are ``int64`` of shape (M, N); ``n_sat`` counts saturated elements.
    """
    x = _as_int64(acc, "Accumulator")
    check_int(bias_shift, "Bias shift")
    if not 0 <= bias_shift <= 32:
        raise ValueError(f"Bias shift must be between 0 and 32, not {bias_shift!r}")
    if bias is not None:
        bias = _as_int64(bias, "Bias")
        if bias.dim() != 1 or x.dim() != 2 or bias.shape[0] != x.shape[1]:
            raise ValueError(f"Bias shape {tuple(bias.shape)} does not match accumulator "
                             f"{tuple(x.shape)}")
        x = x + (bias << bias_shift)
    r = round_shift(x, shift, rounding, rng)
    _check_width(width)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    sat = (r < lo) | (r > hi)
    y = r.clamp(lo, hi)
    mask = ~sat
    if relu:
        mask &= y > 0
        y = y.clamp(min=0)
    return y, mask.to(torch.int64), int(sat.sum())


def quantize(x, fmt, rounding="nearest-even", rng=None):
    """Quantize real numbers to the format ``fmt``.

    ``x * 2**fmt.frac`` is rounded to an integer (half to even; or, ``"stochastic"``, floor after
    adding a uniform draw in ``[0, 1)`` with 32-bit resolution, i.e. ``floor(v + d / 2**32)``), then
    saturated to the format's range.

    Returns
    -------
    (q, n_sat) : (torch.Tensor, int)
    """
    if not isinstance(fmt, QFormat):
        raise TypeError(f"Format must be a QFormat, not {fmt!r}")
    _check_rounding(rounding)
    v = torch.as_tensor(x, dtype=torch.float64) * fmt.scale
    if torch.isnan(v).any():
        raise ValueError("Cannot quantize NaN")
    if rounding == "stochastic":
        if not isinstance(rng, Xorshift32):
            raise TypeError(f"Stochastic rounding needs an Xorshift32 generator, not {rng!r}")
        d = rng.draw(v.numel()).reshape(v.shape).to(torch.float64) / 2.0**32
        q = torch.floor(v + d)
    else:
        q = torch.round(v)          # torch.round rounds half to even
    q = q.clamp(-2.0**62, 2.0**62).to(torch.int64)
    return saturate(q, fmt.width)


def dequantize(q, fmt):
    """The real values (``float64``) of stored integers in format ``fmt``."""
    if not isinstance(fmt, QFormat):
        raise TypeError(f"Format must be a QFormat, not {fmt!r}")
    return _as_int64(q).to(torch.float64) / fmt.scale


def int_gemm(a, b, acc_width, c=None):
    """Integer GEMM with a wrapping accumulator: ``wrap(c + a @ b, acc_width)``.

    Products and sums are exact, then the result is wrapped to ``acc_width`` bits: this equals
    accumulating term by term in a two's-complement ``acc_width``-bit register in any order
    (modular addition is associative), which is what the systolic array does. No saturation.

    Parameters
    ----------
    a : integer tensor, shape (M, K)
    b : integer tensor, shape (K, N)
    acc_width : int
    c : integer tensor, shape (M, N), optional
        Accumulate onto it (``None``: start from zero).
    """
    a, b = _as_int64(a, "A"), _as_int64(b, "B")
    _check_width(acc_width)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"GEMM shapes do not match: A {tuple(a.shape)}, B {tuple(b.shape)}")
    # int64 matmul is exact while |sum| < 2**63: operands < 2**31 each and K < 2**(63-62) is not
    # guaranteed, so reduce products modulo 2**acc_width per K-chunk to stay exact.
    m = 1 << acc_width
    out = torch.zeros(a.shape[0], b.shape[1], dtype=torch.int64)
    if c is not None:
        c = _as_int64(c, "C")
        if tuple(c.shape) != (a.shape[0], b.shape[1]):
            raise ValueError(f"Accumulator shape {tuple(c.shape)} does not match "
                             f"{(a.shape[0], b.shape[1])}")
        out = c.clone()
    if a.numel() and b.numel():
        amax = max(int(a.abs().max()), 1)
        bmax = max(int(b.abs().max()), 1)
        if a.shape[1] * amax * bmax < (1 << 53):
            # Same result, faster: every partial sum is an integer below 2**53 in magnitude, so a
            # float64 (BLAS) product is exact in any summation order (int64 matmul is unblocked).
            return wrap(out + (a.double() @ b.double()).to(torch.int64), acc_width)
        chunk = max(1, (1 << 62) // (amax * bmax))
        for k0 in range(0, a.shape[1], chunk):
            out = torch.remainder(out + a[:, k0:k0 + chunk] @ b[k0:k0 + chunk], m)
    return wrap(out, acc_width)


def relu(x):
    """``max(x, 0)`` elementwise."""
    return _as_int64(x).clamp(min=0)


def relu_mask(x):
    """ReLU's derivative mask: ``1`` where ``x > 0``, else ``0`` (``int64``)."""
    return (_as_int64(x) > 0).to(torch.int64)


def relu_backward(g, mask):
    """Gradient through ReLU: ``g`` where ``mask`` is 1, else 0. Exact; no rounding."""
    g, mask = _as_int64(g, "Gradient"), _as_int64(mask, "Mask")
    if g.shape != mask.shape:
        raise ValueError(f"Gradient shape {tuple(g.shape)} does not match mask {tuple(mask.shape)}")
    return torch.where(mask != 0, g, torch.zeros_like(g))


def sgd_update(w, g, width, lr_shift, lr_mul=1, wd_mul=0, rounding="stochastic", rng=None):
    """One SGD step on stored weights: ``w ← saturate(w − round_shift(lr_mul·g + wd_mul·w, lr_shift))``.

    ``g`` is the raw gradient (typically a wrapped accumulator of ``dW = Xᵀ·dY``), ``lr_mul`` and
    ``lr_shift`` together give the learning rate in stored units (``lr_mul / 2**lr_shift``, batch
    mean and format alignment folded in), and ``wd_mul / 2**lr_shift`` is the decoupled weight
    decay. The products and the sum are exact; rounding is :func:`round_shift` (stochastic: one
    draw per weight, as there); the subtraction is exact and then saturated to ``width``.

    Parameters
    ----------
    w : integer tensor
        Weights, ``width``-bit signed.
    g : integer tensor, same shape
        Gradient (any width up to 32 bits).
    width : int
        Weight width.
    lr_shift : int
        ``0 <= lr_shift <= 32``.
    lr_mul, wd_mul : int
        Unsigned multipliers, ``0 <= · < 2**width``.
    rounding : str
    rng : Xorshift32 or LaneGenerators

    Returns
    -------
    (w_new, n_sat) : (torch.Tensor, int)
    """
    w, g = _as_int64(w, "Weights"), _as_int64(g, "Gradient")
    if w.shape != g.shape:
        raise ValueError(f"Weights shape {tuple(w.shape)} does not match gradient {tuple(g.shape)}")
    _check_width(width)
    for v, what in ((lr_mul, "Learning-rate multiplier"), (wd_mul, "Weight-decay multiplier")):
        check_int(v, what)
        if not 0 <= v < (1 << width):
            raise ValueError(f"{what} must be in 0..{(1 << width) - 1}, not {v!r}")
    step = round_shift(g * lr_mul + w * wd_mul, lr_shift, rounding, rng)
    return saturate(w - step, width)
