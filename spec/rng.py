"""The stochastic-rounding generators: one xorshift32 per lane, all seeded from the one SEED value.

Every lane ``l`` of the vector engine has its own xorshift32 generator (Marsaglia's shifts 13,
17, 5; :class:`golden.fixedpoint.Xorshift32`). ``SEED s`` loads lane ``l`` with
:func:`lane_seed` ``(s, l) = s ^ (l · LANE_SEED_STRIDE mod 2**32)``, or 1 if that is zero (zero
is the generator's fixed point). Lane 0 therefore starts at ``s`` itself; the reset state is
``lane_seed(1, l)``.

Why this derivation
-------------------
* Cheap: XOR with a constant folds into the state register's load multiplexer; only the zero
  case costs a 32-bit constant compare per lane.
* Never zero: the zero case is replaced by 1.
* Not a shifted copy of a neighbour at a small lag: xorshift32 has one cycle through all
  ``2**32 − 1`` non-zero states, so every lane's stream is *some* shift of every other's; the
  lag between lanes ``l`` and ``l'`` is the discrete logarithm of ``lane_seed(s, l')`` relative
  to ``lane_seed(s, l)`` along that cycle. The seeds differ in about half their bits
  (``LANE_SEED_STRIDE`` is odd and dense, so the multiples differ from each other in many
  bits), and nothing in the derivation relates that XOR difference to the step map, so the lag is
  a pseudo-random number in ``[1, 2**32 − 1)``; neighbours seeded as consecutive states (lag 1,
  the cheapest alternative) would give element ``(r, l + 1)`` the draw of element ``(r + 1, l)``.
  ``tests/test_rng.py`` checks, for the seeds the trainers use, that no lane's first ``2**16``
  draws contain another lane's starting state (lag ≥ ``2**16`` both ways) and that neighbouring
  lanes' rounding bits are uncorrelated at lags −2..2.
"""

from .params import check_int

__all__ = ["RNG_WIDTH", "LANE_SEED_STRIDE", "lane_seed"]

#: Width of a generator's state and of each draw.
RNG_WIDTH = 32

#: Lane ``l``'s seed is the SEED value XOR ``l`` times this constant (mod ``2**32``): the first 32
#: bits of the fractional part of √2, odd, so its multiples are distinct for every lane count.
LANE_SEED_STRIDE = 0x6A09E667

_MASK = (1 << RNG_WIDTH) - 1


def lane_seed(seed, lane):
    """Lane ``lane``'s initial state for the SEED value ``seed`` (``1 .. 2**32 − 1``): ``seed ^
    (lane · LANE_SEED_STRIDE mod 2**32)``, or 1 if that is zero."""
    check_int(seed, "Seed")
    check_int(lane, "Lane")
    if not 0 < seed <= _MASK:
        raise ValueError(f"Seed must be in 1..2**32-1, not {seed!r}")
    if lane < 0:
        raise ValueError(f"Lane must be a non-negative integer, not {lane!r}")
    return (seed ^ ((lane * LANE_SEED_STRIDE) & _MASK)) or 1
