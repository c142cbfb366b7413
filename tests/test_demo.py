"""`python -m firmware demo` and `python -m benchmarks.gemm` on small configurations."""

import json

from benchmarks import gemm
from firmware.__main__ import main as firmware_main


def test_demo_small(capsys):
    # 3×5·5×5 on a 2×2 array: padded tiles (2 × 3 of them), bit- and cycle-exact.
    assert firmware_main(["demo", "--rows", "2", "--cols", "2", "-m", "3", "-k", "5",
                          "-n", "5", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact vs golden  yes" in out and "tiles                6 (2 × 3), K = 5 each" in out
    assert out.rstrip().endswith("PASS")


def test_benchmark_json(capsys):
    assert gemm.main(["--rows", "2", "--cols", "3", "--k", "4", "--tiles", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    # 3 tiles of K = 4 on 2×3 (spacing 3): last inputs 3, 7, 11; output latency cols + 5 = 8
    # (issue 27: each multiplier in its DSP block's registers); last row at 11 + 8 + 1 = 20.
    assert (r["cycles"], r["predicted_cycles"]) == (21, 21)
    assert r["utilization"] == 12 / 21 and 0 < r["utilization"] <= 1
    assert r["cycles_per_second"] > 0 and r["bit_exact"] and r["cycle_exact"]
    assert (r["rows"], r["cols"], r["k"], r["tiles"]) == (2, 3, 4, 3)


def test_benchmark_table(capsys):
    assert gemm.main(["--rows", "1", "--cols", "1", "--k", "1", "--tiles", "2"]) == 0
    out = capsys.readouterr().out
    assert "utilization" in out and "bit-exact / cycle-exact          yes / yes" in out
