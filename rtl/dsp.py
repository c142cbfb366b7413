"""Multipliers registered the DSP block's way: operands, pipeline and product registers.

Issue 27 item 5: every multiplier of the SoC has the same register configuration, so that the
DSP blocks are used as DSP blocks — the operands, an internal pipeline register and the product
are held in the block's own registers, on one clock, one clock enable and one (unused) reset.
Between two fabric registers an ECP5 ``MULT18X18D`` is a 4.45 ns path plus the routing to and
from the DSP column (the vector engine's critical path before this module: 9.8 ns); with its
registers inside, the paths to and from it are one route each and nextpnr times the block as
registered on both sides.

:func:`registered_product` builds one such multiplier. On an ECP5 (a platform whose ``family``
is ``"ecp5"``) it is a ``MULT18X18D`` instance; elsewhere — Amaranth's simulator, the compiled
simulation, other FPGAs — a behavioural twin with the same three registers, so both give the
same products in the same cycles (Amaranth's simulator cannot run an ``Instance``; the twin is
what the tests check, and the instance is the twin's registers placed in the block).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Signal, Value, signed

__all__ = ["PRODUCT_LATENCY", "MAX_OPERAND_WIDTH", "registered_product"]

#: Clock edges from operands at a registered multiplier's inputs to its product at the output:
#: the operand registers, the pipeline register, the product register.
PRODUCT_LATENCY = 3

#: Widest operand of one ``MULT18X18D``.
MAX_OPERAND_WIDTH = 18


def registered_product(m, name, a, b, *, en, platform=None):
    """``a · b``, :data:`PRODUCT_LATENCY` clock edges after ``a`` and ``b`` are presented.

    The three registers (operands, pipeline, product) load at the edges where ``en`` is high
    (a stall-as-one pipeline's enable) and are not reset: whatever they hold before the first
    operands is never used, since a pipeline's ``valid`` travels in the fabric beside them.

    Parameters
    ----------
    m : Module
        The module to add the multiplier (and its registers) to.
    name : str
        Prefix of the signals and of the instance.
    a, b : Value
        The operands, signed or unsigned, up to 18 bits each (:data:`MAX_OPERAND_WIDTH`).
    en : Value
        The registers' clock enable.
    platform
        The platform being elaborated for: an ECP5 gets a ``MULT18X18D``.

    Returns
    -------
    Signal
        The product, of the shape of ``a * b`` (a ``sync`` register).

    Raises
    ------
    ValueError
        If an operand is wider than 18 bits.
    """
    a, b = Value.cast(a), Value.cast(b)
    for v, what in ((a, "a"), (b, "b")):
        if len(v) > MAX_OPERAND_WIDTH:
            raise ValueError(f"Multiplier operand {what} must be at most {MAX_OPERAND_WIDTH} bits "
                             f"wide, not {len(v)}")
    product = Signal((a * b).shape(), name=f"{name}_p", reset_less=True)
    if getattr(platform, "family", None) == "ecp5":
        _mult18x18d(m, name, a, b, en, product)
        return product
    a_q = Signal(a.shape(), name=f"{name}_a", reset_less=True)
    b_q = Signal(b.shape(), name=f"{name}_b", reset_less=True)
    pipe = Signal(product.shape(), name=f"{name}_pipe", reset_less=True)
    with m.If(en):
        m.d.sync += [a_q.eq(a), b_q.eq(b), pipe.eq(a_q * b_q), product.eq(pipe)]
    return product


def _mult18x18d(m, name, a, b, en, product):
    """``product`` ← ``a · b`` in a ``MULT18X18D`` with its input (A, B), pipeline and output
    registers, all on ``CLK0`` / ``CE0`` / ``RST0`` (the reset tied off, no global set/reset)."""
    ports = {"i_CLK0": ClockSignal("sync"), "i_CE0": en, "i_RST0": Const(0, 1),
             "i_SOURCEA": Const(0, 1), "i_SOURCEB": Const(0, 1), "p_GSR": "DISABLED"}
    for reg in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT"):
        ports[f"p_REG_{reg}_CLK"] = "CLK0"
        ports[f"p_REG_{reg}_CE"] = "CE0"
        ports[f"p_REG_{reg}_RST"] = "RST0"
    for port, v in (("A", a), ("B", b)):
        # An operand is signed for the block when it is signed here, and zero-extended when not
        # (an unsigned operand of 18 bits uses the block's unsigned mode).
        wide = Signal(signed(MAX_OPERAND_WIDTH) if v.shape().signed or len(v) < MAX_OPERAND_WIDTH
                      else MAX_OPERAND_WIDTH, name=f"{name}_{port.lower()}")
        m.d.comb += wide.eq(v)
        ports[f"i_SIGNED{port}"] = Const(int(wide.shape().signed), 1)
        for i in range(MAX_OPERAND_WIDTH):
            ports[f"i_{port}{i}"] = wide[i]
            if port == "A":
                ports[f"i_C{i}"] = Const(0, 1)
    full = Signal(2 * MAX_OPERAND_WIDTH, name=f"{name}_full")
    for i in range(2 * MAX_OPERAND_WIDTH):
        ports[f"o_P{i}"] = full[i]
    m.d.comb += product.eq(full)
    m.submodules[name] = Instance("MULT18X18D", **ports)
