"""The specification's own checks and helpers: CSR fields, timing rules, the SoC configuration."""

import itertools

import pytest

from spec.csr import (CONFIG_FIELDS, STATUS_DONE, STATUS_ERROR_SHIFT, STATUS_FIELDS,
                      STATUS_RUNNING, RunStatus, config_value, decode_status, encode_status)
from spec.isa import INSN_BITS, INSN_WORDS, WORD_BITS, Error
from spec.memory import Space
from spec.params import ArrayConfig, Config, Formats
from spec.soc import DEFAULT_SOC, SocConfig, check_soc
from spec.timing import (BUS_LATENCY, bus_latency, memop_cycles, output_latency,
                         tile_spacing)


# --- CSR fields -------------------------------------------------------------------------------------

@pytest.mark.parametrize("running, done, error",
                         itertools.product((False, True), (False, True), [0, 1, 7, 0xFF]))
def test_status_round_trip(running, done, error):
    value = encode_status(running, done, error)
    assert decode_status(value) == RunStatus(running, done, error)
    assert value == running * STATUS_RUNNING | done * STATUS_DONE | error << STATUS_ERROR_SHIFT


def test_status_layout():
    """Fields in bits 0, 1 and [8, 16); the other bits are ignored when decoding."""
    assert encode_status(True, False, Error.DMA_FAULT) == 0x0301
    assert encode_status(False, True, Error.NONE) == 0x0002
    assert decode_status(0xFFFF_00FC) == RunStatus(False, False, 0)
    assert decode_status(0x1234_5678) == RunStatus(False, False, 0x56)
    bits = [set(range(lsb, lsb + width)) for lsb, width in STATUS_FIELDS.values()]
    assert not set.intersection(*bits) and max(map(max, bits)) < 32


@pytest.mark.parametrize("args, message", [
    ((False, False, 256), r"^STATUS field error must be an integer in 0\.\.255, not 256$"),
    ((2, False, 0), r"^STATUS field running must be an integer in 0\.\.1, not 2$"),
    ((False, False, -1), r"^STATUS field error must be an integer in 0\.\.255, not -1$"),
])
def test_status_errors(args, message):
    with pytest.raises(ValueError, match=message):
        encode_status(*args)


def test_config_value():
    assert config_value(2, 4, 4) == 2 | 4 << 8 | 4 << 16
    assert [lsb for lsb, _ in CONFIG_FIELDS.values()] == [0, 8, 16]
    with pytest.raises(ValueError, match=r"^CONFIG field rows must be an integer in 0\.\.255, "
                                         r"not 256$"):
        config_value(256, 1, 256)


# --- timing -----------------------------------------------------------------------------------------

def test_timing_rules():
    assert [memop_cycles(n) for n in (1, 2, 5)] == [3, 4, 7]
    assert BUS_LATENCY == 1 and [bus_latency(n) for n in (1, 2, 5)] == [2, 3, 6]
    with pytest.raises(TypeError, match=r"^Memory latency must be a positive integer, not 'x'$"):
        bus_latency("x")
    assert output_latency(5) == 10
    assert tile_spacing(4, 2) == tile_spacing(2, 4) == 4
    with pytest.raises(ValueError, match=r"^Memory latency must be a positive integer, not 0$"):
        memop_cycles(0)
    with pytest.raises(ValueError, match=r"^Array rows must be a positive integer, not 0$"):
        tile_spacing(0, 3)
    with pytest.raises(TypeError, match=r"^Array columns must be a positive integer, not 1\.5$"):
        output_latency(1.5)


# --- SocConfig ------------------------------------------------------------------------------------

def test_soc_config_word_width():
    """Main-memory words hold the operands and instructions: only 16-bit operands."""
    assert DEFAULT_SOC.word_width == WORD_BITS == 16
    assert INSN_WORDS * WORD_BITS == INSN_BITS
    narrow = Config(array=ArrayConfig(rows=2, cols=2, operand_width=12, acc_width=32),
                    formats=Formats(width=12, act_frac=6, weight_frac=8, grad_frac=8,
                                    prob_frac=10))
    with pytest.raises(ValueError, match=r"^The SoC supports only 16-bit operands \(its "
                                         r"main-memory word\), not 12$"):
        SocConfig(config=narrow, selector=None)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(config="x"), TypeError, r"^SoC config must hold a Config, not 'x'$"),
    (dict(mem_words=0), ValueError, r"^Main memory words must be a positive integer, not 0$"),
    (dict(mem_words=1004), ValueError, r"^Main memory words must be a multiple of 8, not 1004$"),
    (dict(mem_words=(1 << 32) + 8), ValueError,
     r"^Main memory words must be at most 2\*\*32, not 4294967304$"),
    (dict(sp_banks=0), ValueError, r"^Scratchpad banks must be a positive integer, not 0$"),
    (dict(acc_depth=48), ValueError,
     r"^Accumulator scratchpad depth must be a power of two, not 48$"),
    (dict(sp_banks=32), ValueError,
     r"^Scratchpad rows \(banks × depth\) must be at most 2\*\*13, not 16384$"),
    (dict(mem_latency=True), TypeError, r"^Memory latency must be a positive integer, not True$"),
])
def test_soc_config_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        SocConfig(**kwargs)


def test_soc_config_spaces():
    soc = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=3, acc_width=40)),
                    sp_banks=3, sp_depth=64, acc_banks=2, acc_depth=32)
    assert (soc.lanes, soc.sp_rows, soc.acc_rows) == (3, 192, 64)
    assert [soc.space_rows(s) for s in Space] == [192, 64]
    assert [soc.elem_width(s) for s in Space] == [16, 40]
    with pytest.raises(TypeError, match=r"^Scratchpad space must be an integer, not 'SP'$"):
        soc.space_rows("SP")


def test_check_soc():
    assert check_soc(None, "Unit") is DEFAULT_SOC
    soc = SocConfig(mem_words=4096)
    assert check_soc(soc, "Unit") is soc
    with pytest.raises(TypeError, match=r"^Unit configuration must be a SocConfig, not 3$"):
        check_soc(3, "Unit")
