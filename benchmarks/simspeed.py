"""Simulation speed: the compiled model (CXXRTL + g++) of the bare systolic array vs pysim.

``python -m benchmarks.simspeed [--rows R --cols C --k K --tiles T --cycles N] [--pysim-tiles P]
[--seed S] [--json]`` builds (or takes from the cache) the compiled model of an ``R×C``
:class:`rtl.array.SystolicArray` and measures

* the C++ run loop free-running ``N`` cycles with every PE busy (``CxxSim.step``);
* a GEMM: ``T`` random tiles of depth ``K`` back to back through :func:`rtl.cxxsim.array.run_tiles`
  (per-cycle inputs and outputs, all in C++), checked bit-exact against
  :func:`golden.array.gemm_tile` and cycle-exact against :func:`golden.array.schedule`;
* Amaranth's Python simulator on ``P`` of the same tiles (``--pysim-tiles 0`` skips it).

Speeds are cycles per second of wall time and of process CPU time (the steadier figure on a
shared machine). With ``--json`` it prints one JSON object. Exit status 1 if the GEMM is not
bit- and cycle-exact. (When the SoC exists this benchmark grows a whole-program row.)
"""

import argparse
import json
import sys
import time

import numpy as np
import torch

from golden.array import gemm_tile, schedule
from rtl.array import SystolicArray
from rtl.array_sim import simulate_tiles
from rtl.cxxsim.array import array_model, run_tiles
from spec.params import DEFAULT_CONFIG

__all__ = ["measure", "main"]


def _tiles(rows, cols, k, count, width, seed):
    g = torch.Generator().manual_seed(seed)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    return [(torch.randint(lo, hi, (rows, k), generator=g),
             torch.randint(lo, hi, (k, cols), generator=g)) for _ in range(count)]


def measure(rows=8, cols=8, k=256, tiles=64, cycles=1_000_000, pysim_tiles=1, seed=0):
    """Run the benchmark; return its figures as a JSON-ready dict."""
    array = SystolicArray.from_config(DEFAULT_CONFIG.with_array(rows=rows, cols=cols).array)
    w = array.operand_width
    sim = array_model(array)
    info = sim.build_info
    result = {
        "benchmark": "simspeed",
        "design": "systolic-array",
        "rows": rows, "cols": cols, "operand_width": w, "acc_width": array.acc_width,
        "k": k, "tiles": tiles, "seed": seed,
        "cxx_lines": info.cxx_lines,
        "build_cached": info.cached,
        "build_seconds": info.build_seconds,
        "compile_seconds": info.compile_seconds,
    }
    with sim:
        # Free-running: valid every cycle, random operands, a tile every `k` cycles.
        rng = np.random.default_rng(seed)
        sim.reset()
        for port in (*array.i_a, *array.i_b):
            sim.set(port, int(rng.integers(-(1 << (w - 1)), 1 << (w - 1))))
        sim.set(array.i_valid, 1)
        sim.set(array.i_first, 1)
        sim.set(array.i_last, 1)
        sim.step(1000)                                   # warm up
        t0, c0 = time.perf_counter(), time.process_time()
        sim.step(cycles)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        result.update(free_cycles=cycles, free_wall_seconds=wall, free_cpu_seconds=cpu,
                      free_cycles_per_second=cycles / wall,
                      free_cycles_per_cpu_second=cycles / cpu if cpu else float("inf"))

        data = _tiles(rows, cols, k, tiles, w, seed)
        run = run_tiles(sim, array, data)
    model = schedule([k] * tiles, rows, cols)
    bit_exact = len(run.outputs) == rows * tiles and all(
        torch.equal(got, gemm_tile(a, b, array.acc_width)) for (a, b), got in zip(data, run.results))
    result.update(gemm_sim_cycles=run.sim_cycles, gemm_cycles=run.cycles,
                  gemm_predicted_cycles=model.total_cycles,
                  gemm_wall_seconds=run.wall_seconds, gemm_cpu_seconds=run.cpu_seconds,
                  gemm_cycles_per_second=run.cycles_per_second,
                  gemm_cycles_per_cpu_second=run.cycles_per_cpu_second,
                  bit_exact=bit_exact, cycle_exact=run.cycles == model.total_cycles)

    if pysim_tiles:
        py = simulate_tiles(array, data[:pysim_tiles])
        result.update(pysim_sim_cycles=py.sim_cycles,
                      pysim_cycles_per_second=py.cycles_per_second,
                      pysim_cycles_per_cpu_second=py.cycles_per_cpu_second,
                      speedup_free_cpu=result["free_cycles_per_cpu_second"]
                      / py.cycles_per_cpu_second,
                      speedup_gemm_cpu=run.cycles_per_cpu_second / py.cycles_per_cpu_second)
    return result


def _table(r):
    build = ("from the cache" if r["build_cached"] else f"compiled in {r['compile_seconds']:.1f} s")
    rows = [
        ("array", f"{r['rows']} × {r['cols']}, {r['operand_width']}-bit operands, "
                  f"{r['acc_width']}-bit accumulators"),
        ("compiled model", f"{r['cxx_lines']} lines of C++, {build}; "
                           f"design to loaded model {r['build_seconds']:.1f} s"),
        ("C++ run loop (free-running)",
         f"{r['free_cycles_per_second']:,.0f} cycles/s wall, "
         f"{r['free_cycles_per_cpu_second']:,.0f} cycles/s of CPU ({r['free_cycles']:,} cycles)"),
        (f"GEMM {r['tiles']} × K={r['k']} (per-cycle I/O)",
         f"{r['gemm_cycles_per_second']:,.0f} cycles/s wall, "
         f"{r['gemm_cycles_per_cpu_second']:,.0f} cycles/s of CPU ({r['gemm_sim_cycles']:,} cycles)"),
        ("GEMM cycles (first input → last row)",
         f"{r['gemm_cycles']} (golden {r['gemm_predicted_cycles']})"),
        ("bit-exact / cycle-exact", f"{'yes' if r['bit_exact'] else 'NO'} / "
                                    f"{'yes' if r['cycle_exact'] else 'NO'}"),
    ]
    if "pysim_cycles_per_second" in r:
        rows += [
            ("Amaranth pysim (same tiles)",
             f"{r['pysim_cycles_per_second']:,.0f} cycles/s wall, "
             f"{r['pysim_cycles_per_cpu_second']:,.0f} cycles/s of CPU "
             f"({r['pysim_sim_cycles']:,} cycles)"),
            ("speed-up over pysim (CPU)", f"{r['speedup_free_cpu']:,.0f}× free-running, "
                                          f"{r['speedup_gemm_cpu']:,.0f}× GEMM"),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simspeed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--k", type=int, default=256, help="depth of each GEMM tile")
    parser.add_argument("--tiles", type=int, default=64, help="GEMM tiles in the compiled model")
    parser.add_argument("--cycles", type=int, default=1_000_000,
                        help="free-running cycles of the C++ run loop")
    parser.add_argument("--pysim-tiles", type=int, default=1,
                        help="tiles to run in Amaranth's simulator for comparison (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    for what, v in (("--rows", args.rows), ("--cols", args.cols), ("--k", args.k),
                    ("--tiles", args.tiles), ("--cycles", args.cycles)):
        if v < 1:
            parser.error(f"{what} must be a positive integer, not {v}")
    if args.pysim_tiles < 0 or args.pysim_tiles > args.tiles:
        parser.error(f"--pysim-tiles must be between 0 and --tiles, not {args.pysim_tiles}")
    r = measure(args.rows, args.cols, args.k, args.tiles, args.cycles, args.pysim_tiles,
                args.seed)
    print(json.dumps(r) if args.json else _table(r))
    return 0 if r["bit_exact"] and r["cycle_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
