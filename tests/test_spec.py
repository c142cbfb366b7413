"""The specification's own helpers: CSR fields and the timing rules."""

import itertools

import pytest

from spec.csr import (CONFIG_FIELDS, STATUS_DONE, STATUS_ERROR_SHIFT, STATUS_FIELDS,
                      STATUS_RUNNING, RunStatus, config_value, decode_status, encode_status)
from spec.isa import Error
from spec.timing import memop_cycles, output_latency, tile_spacing


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
    assert output_latency(5) == 8
    assert tile_spacing(4, 2) == tile_spacing(2, 4) == 4
    with pytest.raises(ValueError, match=r"^Memory latency must be a positive integer, not 0$"):
        memop_cycles(0)
    with pytest.raises(ValueError, match=r"^Array rows must be a positive integer, not 0$"):
        tile_spacing(0, 3)
    with pytest.raises(TypeError, match=r"^Array columns must be a positive integer, not 1\.5$"):
        output_latency(1.5)
