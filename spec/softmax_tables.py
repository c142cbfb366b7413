"""Constants and table generator of the fixed-point softmax (one source of truth).

The golden model (:mod:`golden.softmax`) and the RTL (:mod:`rtl.softmax`) both import this
module; neither restates a constant that lives here. Pure Python (no Amaranth, no PyTorch).
The algorithm that uses these constants is specified in :mod:`golden.softmax` and
``docs/softmax.md``.
"""

from spec.params import check_int

__all__ = [
    "SOFTMAX_MAX_WIDTH",
    "INV_TEMP_WIDTH", "INV_TEMP_FRAC", "INV_TEMP_ONE",
    "LOG2E_FRAC", "LOG2E_Q", "K_FRAC", "K_SHIFT", "K_WIDTH",
    "EXP_INDEX_BITS", "EXP_FRAC", "RECIP_SHIFT", "RECIP_BITS", "RECIP_STEP_BITS", "RECIP_CYCLES",
    "SOFTMAX_EXP_LATENCY", "SOFTMAX_DIV_HANDOFF", "SOFTMAX_OUT_LATENCY", "GRAD_SHIFT_MAX",
    "exp2_table", "EXP_TABLE",
]

#: Largest operand width the softmax supports (the gradient's exact intermediate
#: ``t · 2**(RECIP_SHIFT - prob_frac)`` must fit a signed 64-bit integer).
SOFTMAX_MAX_WIDTH = 20

#: The inverse temperature ``1/T`` is an unsigned ``INV_TEMP_WIDTH``-bit integer with
#: ``INV_TEMP_FRAC`` fraction bits: ``1/T`` in ``[0, 4)``, resolution ``2**-12``.
INV_TEMP_WIDTH = 14
INV_TEMP_FRAC = 12
#: The inverse temperature of ``T = 1``.
INV_TEMP_ONE = 1 << INV_TEMP_FRAC

#: ``log2(e)`` with ``LOG2E_FRAC`` fraction bits: ``round(log2(e) * 2**16) = 94548``
#: (``log2(e) * 2**16 = 94548.462…``).
LOG2E_FRAC = 16
LOG2E_Q = 94548

#: The exponent scale ``k = round_ne(inv_temp * LOG2E_Q / 2**K_SHIFT)`` has ``K_FRAC`` fraction
#: bits and fits ``K_WIDTH`` bits unsigned (``k = log2(e) / T`` in real terms, ``< 5.78``).
K_FRAC = 15
K_SHIFT = INV_TEMP_FRAC + LOG2E_FRAC - K_FRAC
K_WIDTH = 18

#: Fraction bits of the base-2 exponent ``a``; the exp table has ``2**EXP_INDEX_BITS`` entries.
EXP_INDEX_BITS = 10
#: Fraction bits of the exponentials ``e_j`` (``e`` of the row's maximum is ``2**EXP_FRAC``).
EXP_FRAC = 15

#: The reciprocal of the row sum ``S`` is ``R = 2**RECIP_SHIFT // S`` (exact, floor).
RECIP_SHIFT = 41
#: Quotient bits of the reciprocal: ``S >= 2**EXP_FRAC`` so ``R <= 2**(RECIP_SHIFT - EXP_FRAC)``.
RECIP_BITS = RECIP_SHIFT - EXP_FRAC + 1

#: The divider produces ``RECIP_STEP_BITS`` quotient bits per cycle (radix 4) and so takes
#: ``RECIP_CYCLES`` cycles (its quotient register has ``RECIP_CYCLES * RECIP_STEP_BITS`` bits,
#: the top ones always zero).
RECIP_STEP_BITS = 2
RECIP_CYCLES = -(-RECIP_BITS // RECIP_STEP_BITS)

#: Pipeline depths of :class:`rtl.softmax.SoftmaxUnit` (see :func:`golden.softmax.softmax_cycles`):
#: a sample's last exponential enters its sum ``SOFTMAX_EXP_LATENCY`` cycles after its row is
#: accepted (a row register, a lane register, ``u = max - z``, ``u·k`` in a DSP block's three
#: registers (operands, pipeline, product), shift and round bit, rounding increment, table read,
#: table data register, shift, rounding increment), and a sample's output phase takes
#: ``C + SOFTMAX_OUT_LATENCY`` cycles (output always ready; read, read register, ``e·R``'s two
#: partial products in two DSP blocks' three registers, ``e·R``, difference, shift and round bit,
#: increment and saturation). The register after the row keeps the scratchpad's block RAM and bank
#: multiplexer off the lane selection; the rounding increments and the product's partial products
#: in stages of their own took the unit, out of context, from 103 to 125 MHz (issues 27/28: 8 and
#: 6 before); the DSP blocks' own registers (issue 27 item 5: every multiplier of the SoC in one
#: register configuration) added two stages to each (10 and 7 before).
SOFTMAX_EXP_LATENCY = 12
SOFTMAX_OUT_LATENCY = 9
#: Cycles between a sample's sum and its output phase beyond the divider's ``RECIP_CYCLES``: one
#: to load the divisor from the per-sample sums, one to write the reciprocal into the per-sample
#: reciprocals (the unit overlaps samples, so both are small memories indexed by sample).
SOFTMAX_DIV_HANDOFF = 2

#: Largest extra right shift of the gradient (``grad_shift``), e.g. for a batch mean.
GRAD_SHIFT_MAX = 15


def exp2_table(index_bits=EXP_INDEX_BITS, frac=EXP_FRAC):
    """The exp table: ``table[f] = round(2**frac * 2**(-f / 2**index_bits))`` for
    ``f = 0 .. 2**index_bits - 1``, rounded to nearest (no ties occur), computed in integers.

    With ``N = 2**index_bits`` and ``x = 2**(frac - f/N)``, ``round(x)`` is the largest integer
    ``v`` with ``v - 1/2 <= x``, i.e. with ``(2v - 1)**N <= 2**((frac + 1)·N - f)``; a float guess
    is corrected until that exact integer inequality holds for ``v`` and fails for ``v + 1``, so
    the table does not depend on the floating-point library. Entries lie in
    ``(2**(frac-1), 2**frac]``; ``table[0] = 2**frac``.

    Raises
    ------
    TypeError
        If an argument is not an integer.
    ValueError
        If ``index_bits`` is not in ``0 .. 12`` or ``frac`` not in ``1 .. 30``.
    """
    check_int(index_bits, "Exp table index bits")
    check_int(frac, "Exp table fraction bits")
    if not 0 <= index_bits <= 12:
        raise ValueError(f"Exp table index bits must be between 0 and 12, not {index_bits!r}")
    if not 1 <= frac <= 30:
        raise ValueError(f"Exp table fraction bits must be between 1 and 30, not {frac!r}")
    n = 1 << index_bits
    table = []
    for f in range(n):
        bound = 1 << ((frac + 1) * n - f)
        v = round(2.0 ** (frac - f / n))                # a guess; the exact test decides
        while (2 * v - 1) ** n > bound:
            v -= 1
        while (2 * v + 1) ** n <= bound:
            v += 1
        table.append(v)
    return tuple(table)


#: The table both the golden model and the RTL use.
EXP_TABLE = exp2_table()
