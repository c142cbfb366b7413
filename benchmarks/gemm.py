"""GEMM throughput of the systolic array in Amaranth's Python simulator.

``python -m benchmarks.gemm [--rows R --cols C --k K --tiles T] [--seed S] [--json]`` feeds ``T``
random tiles of depth ``K`` back to back to an ``R×C`` :class:`rtl.array.SystolicArray`, checks
every tile against :func:`golden.array.gemm_tile` and the cycle count against
:func:`golden.array.schedule`, and reports the cycles, the utilization (MAC cycles / cycles from
the first input to the last output row) and the simulator's speed. With ``--json`` it prints one
JSON object instead of the table. Exit status 1 if results or cycles differ from golden.
"""

import json
import sys

import torch

from golden.array import gemm_tile, schedule
from rtl.array import SystolicArray
from sim.array import simulate_tiles
from spec.cli import ArgumentParser, positive_int, seed_int
from spec.params import DEFAULT_CONFIG

__all__ = ["measure", "main"]


def measure(rows=8, cols=8, k=256, tiles=4, seed=0):
    """Run the benchmark; return its figures as a JSON-ready dict."""
    dut = SystolicArray.from_config(DEFAULT_CONFIG.with_array(rows=rows, cols=cols).array)
    w = dut.operand_width
    g = torch.Generator().manual_seed(seed)
    data = [(torch.randint(-(1 << (w - 1)), 1 << (w - 1), (rows, k), generator=g),
             torch.randint(-(1 << (w - 1)), 1 << (w - 1), (k, cols), generator=g))
            for _ in range(tiles)]
    run = simulate_tiles(dut, data)
    model = schedule([k] * tiles, rows, cols)
    bit_exact = len(run.outputs) == rows * tiles and all(
        torch.equal(got, gemm_tile(a, b, dut.acc_width)) for (a, b), got in zip(data, run.results))
    return {
        "benchmark": "gemm",
        "simulator": "amaranth-pysim",
        "rows": rows, "cols": cols,
        "operand_width": dut.operand_width, "acc_width": dut.acc_width,
        "k": k, "tiles": tiles, "seed": seed,
        "cycles": run.cycles,
        "predicted_cycles": model.total_cycles,
        "mac_cycles": model.mac_cycles,
        "utilization": model.mac_cycles / run.cycles if run.cycles else 0.0,
        "predicted_utilization": model.utilization,
        "sim_cycles": run.sim_cycles,
        "wall_seconds": run.wall_seconds,
        "cycles_per_second": run.cycles_per_second,
        "cpu_seconds": run.cpu_seconds,
        "cycles_per_cpu_second": run.cycles_per_cpu_second,
        "bit_exact": bit_exact,
        "cycle_exact": run.cycles == model.total_cycles,
    }


def _table(r):
    rows = [
        ("array", f"{r['rows']} × {r['cols']}, {r['operand_width']}-bit operands, "
                  f"{r['acc_width']}-bit accumulators"),
        ("tiles × K", f"{r['tiles']} × {r['k']} (back to back)"),
        ("cycles (first input → last row)", f"{r['cycles']}"),
        ("cycles predicted (golden)", f"{r['predicted_cycles']}"),
        ("utilization", f"{r['utilization']:.2%}"),
        ("simulated cycles", f"{r['sim_cycles']} in {r['wall_seconds']:.2f} s"),
        ("pysim speed", f"{r['cycles_per_second']:.0f} cycles/s wall, "
                        f"{r['cycles_per_cpu_second']:.0f} cycles/s of CPU"),
        ("bit-exact / cycle-exact", f"{'yes' if r['bit_exact'] else 'NO'} / "
                                    f"{'yes' if r['cycle_exact'] else 'NO'}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.gemm", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=positive_int, default=8)
    parser.add_argument("--cols", type=positive_int, default=8)
    parser.add_argument("--k", type=positive_int, default=256, help="depth of each tile")
    parser.add_argument("--tiles", type=positive_int, default=4)
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    r = measure(args.rows, args.cols, args.k, args.tiles, args.seed)
    print(json.dumps(r) if args.json else _table(r))
    return 0 if r["bit_exact"] and r["cycle_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
