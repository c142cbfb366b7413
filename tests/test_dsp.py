# amaranth: UnusedElaboratable=no
"""Registered multipliers (rtl/dsp.py): the behavioural twin's products and cycles, and the ECP5
instances the post-processing datapath builds (the DSP blocks' own registers, issue 27 item 5)."""

import random
import re

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from rtl.dsp import MAX_OPERAND_WIDTH, PRODUCT_LATENCY, registered_product
from rtl.postproc import PostProcessor
from rtl.softmax import SoftmaxUnit


class _Ecp5:
    """The one thing registered_product asks of a platform."""
    family = "ecp5"


@pytest.mark.parametrize("shapes", [(signed(18), unsigned(17)), (unsigned(17), unsigned(17)),
                                    (signed(15), signed(16))])
def test_twin_products_and_latency(shapes):
    m = Module()
    a, b, en = Signal(shapes[0]), Signal(shapes[1]), Signal()
    p = registered_product(m, "t", a, b, en=en)
    assert p.shape() == (a * b).shape()
    rng = random.Random(7)
    log = []

    def lim(s):
        return ((-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed
                else (0, (1 << s.width) - 1))

    async def bench(ctx):
        fed = []            # operands presented at each enabled edge
        for _ in range(300):
            va, vb, ve = rng.randint(*lim(shapes[0])), rng.randint(*lim(shapes[1])), rng.random() < 0.7
            ctx.set(a, va)
            ctx.set(b, vb)
            ctx.set(en, ve)
            await ctx.tick()
            if ve:
                fed.append(va * vb)
                if len(fed) > PRODUCT_LATENCY - 1:
                    log.append((ctx.get(p), fed[-PRODUCT_LATENCY]))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(log) > 150
    assert all(got == want for got, want in log)


def test_operand_width_checked():
    m = Module()
    with pytest.raises(ValueError, match="Multiplier operand a must be at most 18 bits wide, not 19"):
        registered_product(m, "x", Signal(19), Signal(4), en=1)
    with pytest.raises(ValueError, match="Multiplier operand b must be at most 18 bits wide, not 20"):
        registered_product(m, "x", Signal(4), Signal(signed(20)), en=1)
    assert MAX_OPERAND_WIDTH == 18


def _mult18x18d_cells(text):
    return re.findall(r"cell \\MULT18X18D .*?\n(.*?)\n\s*end\n", text, flags=re.S)


def _check_one_configuration(cells):
    for body in cells:
        params = dict(re.findall(r'parameter \\(\w+) "?([\w]+)"?', body))
        for reg in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT"):
            assert params[f"REG_{reg}_CLK"] == "CLK0"
            assert params[f"REG_{reg}_CE"] == "CE0"
            assert params[f"REG_{reg}_RST"] == "RST0"
        assert params["GSR"] == "DISABLED"


@pytest.mark.parametrize("width, blocks", [(16, 4), (20, 5)])
def test_ecp5_softmax_uses_dsp_registers(width, blocks):
    """The softmax unit's products on the ECP5 (issue 27 item 5): k = inv_temp·LOG2E_Q, u·k (two
    blocks above 18-bit operands) and e·R's two partial products, each a MULT18X18D with all
    its registers in the one configuration, and no multiplier left in the fabric."""
    text = rtlil.convert(SoftmaxUnit(10, 8, width=width), name="top", platform=_Ecp5())
    cells = _mult18x18d_cells(text)
    assert len(cells) == blocks
    _check_one_configuration(cells)
    # the only $mul cells left are the bit offsets of indexed arrays: a lane index times the
    # element width, a constant of at most 5 bits
    for body in re.findall(r"cell \$mul .*?\n(.*?)\n\s*end\n", text, flags=re.S):
        factor = re.search(r"connect \\B (\d+)'[01]+\n", body + "\n")
        assert factor is not None and int(factor.group(1)) <= 5, body
    assert "MULT18X18D" not in rtlil.convert(SoftmaxUnit(10, 8, width=width), name="top")


def test_ecp5_datapath_uses_dsp_registers():
    """On the ECP5 every product of the datapath is a MULT18X18D whose operand, pipeline and
    output registers are all on CLK0/CE0/RST0 (one configuration); elsewhere none is built."""
    lanes = 3
    text = rtlil.convert(PostProcessor(lanes), name="top", platform=_Ecp5())
    cells = _mult18x18d_cells(text)
    assert len(cells) == 3 * lanes
    _check_one_configuration(cells)
    ce = {re.search(r"connect \\CE0 (\S+)", body).group(1) for body in cells}
    assert len(ce) == 1                         # the pipeline's one enable
    assert "MULT18X18D" not in rtlil.convert(PostProcessor(lanes), name="top")
