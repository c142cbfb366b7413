"""The demo: a GEMM on the simulated systolic array, checked bit for bit and cycle for cycle.

``python -m firmware demo`` multiplies a random int16 ``A[M×K]`` by ``B[K×N]`` on
:class:`rtl.array.SystolicArray` in Amaranth's Python simulator: the GEMM is cut into array tiles
(:func:`golden.array.split_gemm`), fed back to back as the spacing rule allows, and the result is
compared with :func:`golden.fixedpoint.int_gemm`; the measured cycles are compared with the golden
cycle model (:func:`golden.array.schedule`). Exit status 0 only if both match.
"""

from spec.cli import positive_int, seed_int
from spec.params import DEFAULT_CONFIG

__all__ = ["add_arguments", "run", "run_demo"]


def add_arguments(parser):
    cfg = DEFAULT_CONFIG.array
    parser.add_argument("--rows", type=positive_int, default=cfg.rows,
                        help="array rows (default %(default)s)")
    parser.add_argument("--cols", type=positive_int, default=cfg.cols,
                        help="array columns (default %(default)s)")
    parser.add_argument("-m", type=positive_int, default=32, help="rows of A (default %(default)s)")
    parser.add_argument("-k", type=positive_int, default=1024, help="columns of A, rows of B "
                                                                   "(default %(default)s)")
    parser.add_argument("-n", type=positive_int, default=32,
                        help="columns of B (default %(default)s)")
    parser.add_argument("--seed", type=seed_int, default=0,
                        help="random seed (default %(default)s)")


def run_demo(rows, cols, m, k, n, seed=0):
    """Run the GEMM on the simulated array; return a dict of what was measured and checked."""
    import torch                                # the simulator: only when the demo runs
    from golden.array import join_tiles, schedule, split_gemm
    from golden.fixedpoint import int_gemm
    from rtl.array import SystolicArray
    from sim.array import simulate_tiles
    dut = SystolicArray.from_config(DEFAULT_CONFIG.with_array(rows=rows, cols=cols).array)
    w = dut.operand_width
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-(1 << (w - 1)), 1 << (w - 1), (m, k), generator=g)
    b = torch.randint(-(1 << (w - 1)), 1 << (w - 1), (k, n), generator=g)
    tiles = split_gemm(a, b, rows, cols)
    sim = simulate_tiles(dut, tiles)
    c = join_tiles(sim.results, m, n, rows, cols) if len(sim.results) == len(tiles) else None
    model = schedule([k] * len(tiles), rows, cols)
    return {
        "dut": dut, "m": m, "k": k, "n": n, "seed": seed, "tiles": len(tiles),
        "tile_grid": (-(-m // rows), -(-n // cols)),
        "cycles": sim.cycles, "predicted_cycles": model.total_cycles,
        "utilization": model.mac_cycles / sim.cycles if sim.cycles else 0.0,
        "cycles_per_second": sim.cycles_per_second, "wall_seconds": sim.wall_seconds,
        "cycles_per_cpu_second": sim.cycles_per_cpu_second,
        "bit_exact": c is not None and torch.equal(c, int_gemm(a, b, dut.acc_width)),
    }


def run(args):
    print(f"Simulating C = A·B with A {args.m}×{args.k}, B {args.k}×{args.n} on the "
          f"{args.rows}×{args.cols} systolic array (Amaranth Python simulator)...", flush=True)
    r = run_demo(args.rows, args.cols, args.m, args.k, args.n, args.seed)
    dut = r["dut"]
    cycles_ok = r["cycles"] == r["predicted_cycles"]
    rows = [
        ("array", f"{dut.rows} × {dut.cols} PEs, {dut.operand_width}-bit operands, "
                  f"{dut.acc_width}-bit wrapping accumulators"),
        ("GEMM", f"A {r['m']}×{r['k']} · B {r['k']}×{r['n']}, random int{dut.operand_width}, "
                 f"seed {r['seed']}"),
        ("tiles", f"{r['tiles']} ({r['tile_grid'][0]} × {r['tile_grid'][1]}), K = {r['k']} each"),
        ("cycles measured", f"{r['cycles']}"),
        ("cycles predicted", f"{r['predicted_cycles']} (golden.array.schedule)"
                             f"{'' if cycles_ok else '  MISMATCH'}"),
        ("utilization", f"{r['utilization']:.1%} (MAC cycles / cycles)"),
        ("simulated speed", f"{r['cycles_per_second']:.0f} cycles/s in {r['wall_seconds']:.1f} s "
                            f"wall ({r['cycles_per_cpu_second']:.0f} cycles/s of CPU time)"),
        ("bit-exact vs golden", "yes" if r["bit_exact"] else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    ok = r["bit_exact"] and cycles_ok
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1
