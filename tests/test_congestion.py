"""benchmarks/congestion.py: the reading of nextpnr's router2 heatmaps onto the units.

The place-and-route run itself takes tens of minutes on the 8×8 SoC (``docs/build.md``); these
tests check the parts that turn its outputs into the report, on small designs written here."""

import subprocess
import sys

import pytest

from benchmarks.congestion import CongestionError, analyze, nextpnr_args, unit_of


BUILD_TOP = """#!/bin/sh
set -e
: ${NEXTPNR_ECP5:=nextpnr-ecp5}
"$YOSYS" -q -l top.rpt top.ys
"$NEXTPNR_ECP5" --quiet --report top.report.json --timing-allow-fail --seed 7 --log top.tim \
--85k --package CABGA381 --speed 6 --json top.json --lpf top.lpf --textcfg top.config
"$ECPPACK" --compress --input top.config --bit top.bit --svf top.svf
"""


def test_nextpnr_args(tmp_path):
    """The build's nextpnr arguments without its outputs and its seed."""
    script = tmp_path / "build_top.sh"
    script.write_text(BUILD_TOP.replace("\\\n", ""))
    assert nextpnr_args(script) == ["--quiet", "--timing-allow-fail", "--85k", "--package",
                                    "CABGA381", "--speed", "6", "--json", "top.json", "--lpf",
                                    "top.lpf"]
    script.write_text("#!/bin/sh\nyosys top.ys\n")
    with pytest.raises(CongestionError, match="has no nextpnr-ecp5 command"):
        nextpnr_args(script)


@pytest.mark.parametrize("name, unit", [
    ("soc.memsys.dma.d[1]", "memsys.dma"),
    ("soc.memsys.acc.read_0_bank_late", "memsys.acc"),
    ("soc.seq.st_first_9_3_LUT4_B_C", "seq"),
    ("soc.gemm.array.o_c__0_TRELLIS_FF_Q_12_DI", "gemm.array"),
    ("crg.pll", "crg"),
    ("$nextpnr_CCU2C_436$CCU2_COMB0", "(unnamed)"),
    ("$PACKER_GND_NET", "(unnamed)"),
])
def test_unit_of(name, unit):
    assert unit_of(name) == unit


def _design():
    """A placed design: a fan-out net ``soc.a.x.ctl`` (bit 2) from X0/Y0 to 40 cells on a
    column X5, Y0..39, and a two-sink net ``soc.b.y`` (bit 3) at X9/Y9."""
    cells = {"soc.a.x.src": {"type": "TRELLIS_FF", "attributes": {"NEXTPNR_BEL": "X0/Y0/SLICEA"},
                             "port_directions": {"Q": "output"}, "connections": {"Q": [2]}}}
    for i in range(40):
        cells[f"soc.a.x.sink_{i}"] = {
            "type": "TRELLIS_COMB", "attributes": {"NEXTPNR_BEL": f"X5/Y{i}/SLICEB"},
            "port_directions": {"A": "input", "F": "output"},
            "connections": {"A": [2], "F": [10 + i]}}
    for i in range(2):
        cells[f"soc.b.y.sink_{i}"] = {
            "type": "TRELLIS_COMB", "attributes": {"NEXTPNR_BEL": "X9/Y9/SLICEC"},
            "port_directions": {"A": "input"}, "connections": {"A": [3]}}
    cells["$unplaced"] = {"type": "TRELLIS_COMB", "attributes": {}, "connections": {}}
    nets = {"soc.a.x.ctl": {"bits": [2]}, "soc.b.y": {"bits": [3]}}
    return {"modules": {"top": {"cells": cells, "netnames": nets}}}


def test_analyze():
    """The hot tiles hold the cells there; the nets come with their sinks and spread, and the
    high fan-out share counts the 40-sink net only."""
    grid = [[0] * 40 for _ in range(10)]
    grid[5][3] = 50            # X5/Y3: a sink of soc.a.x
    grid[9][9] = 30            # X9/Y9: both sinks of soc.b.y
    grid[1][1] = 1
    r = analyze(_design(), grid, {"soc.a.x.ctl": 90, "soc.b.y": 10}, hot_share=0.7)
    assert r["tile_congestion"] == 81
    assert r["hot_tiles"] == 2                         # 50, then 30 reaches 70 % of 81
    assert {u["unit"]: u["cells"] for u in r["hot_units"]} == {"a.x": 1, "b.y": 2}
    assert r["hot_units"][0] == {"unit": "b.y", "cells": 2, "of_unit": 2}
    assert r["nets"][0] == {"net": "soc.a.x.ctl", "unit": "a.x", "congestion": 90, "sinks": 40,
                            "spread_tiles": 39}
    assert r["nets"][1]["sinks"] == 2 and r["nets"][1]["spread_tiles"] == 0
    assert r["high_fanout_share"] == 0.9
    assert r["net_congestion"] == 100
    assert r["units_by_net_congestion"][0] == {"unit": "a.x", "congestion": 90}


def test_analyze_empty():
    """No congestion at all: no hot tiles, no share."""
    r = analyze(_design(), [[0] * 40 for _ in range(10)], {})
    assert r["hot_tiles"] == 0 and r["hot_x"] is None and r["high_fanout_share"] == 0.0


def test_cli_refuses_a_directory_without_a_build(tmp_path):
    """One line, exit status 2, before any work."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.congestion", "--build",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path} has no top.json: give a directory that 'python -m rtl.build' made"]
    assert done.stdout == ""
