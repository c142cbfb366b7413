"""Simulation speed: the compiled model of the whole SoC (Verilator by default, ``--simulator``)
and of the bare systolic array (CXXRTL), against Amaranth's Python simulator (pysim).

``python -m benchmarks.simspeed [--only soc|array] [--steps N] [--pysim-cycles P] [--json]``

**SoC** (default :data:`spec.soc.DEFAULT_SOC`: 8×8 array, 16-bit operands, 256 Ki-word main
memory). The firmware's compiled training program (``firmware.compiler``: the 64-32-10 MLP,
batch 32, stochastic rounding — loops of DMA loads, GEMMs, REQ, RELUB, SMX, SGD) trains ``N``
steps on the digits on :class:`sim.compiled.soc.SocSim` through the firmware's device interface,
and the same on the golden model (:class:`firmware.device.GoldenDevice`): every run's cycles
and instructions and the final main memory must be equal. Reported: simulated clock cycles per
second of the compiled model (wall and process CPU time, over the device's program runs only),
the build (first compile or cache). Then the training program's first ``P`` cycles on pysim
(the same image, after the same seed program), compared with the compiled model at the same
cycle (pc, cycle and instruction counters, busy counters), for pysim's speed.

**Array** (``--rows R --cols C --k K --tiles T --cycles N --pysim-tiles P``): the compiled model of
an ``R×C`` :class:`rtl.array.SystolicArray` free-running ``N`` cycles (``CxxSim.step``) and on a
GEMM of ``T`` random tiles of depth ``K`` (per-cycle I/O in C++, :func:`sim.compiled.array.run_tiles`),
checked bit-exact against :func:`golden.array.gemm_tile` and cycle-exact against
:func:`golden.array.schedule`; pysim on ``P`` of the tiles.

Speeds are cycles per second of wall time and of process CPU time (the steadier figure on a
shared machine). With ``--json`` it prints one JSON object (the SoC's figures at the top level:
``rtl_sim_cycles_per_second``, ``pysim_cycles_per_second``, ``speedup``, ``build_seconds``...;
the array's under ``"array"``). Exit status 1 if anything is not bit- and cycle-exact.
"""

import json
import sys
import time

import numpy as np
import torch

from golden.array import gemm_tile, schedule
from rtl.array import SystolicArray
from sim.array import simulate_tiles
from sim.compiled import DEFAULT_SIMULATOR
from spec.cli import ArgumentParser, non_negative_int, positive_int, seed_int
from sim.compiled.array import array_model, run_tiles
from firmware import Accelerator
from firmware.backends import RtlSimDevice
from firmware.device import GoldenDevice
from spec.params import DEFAULT_CONFIG
from spec.soc import DEFAULT_SOC

__all__ = ["measure", "measure_soc", "main"]


def _tiles(rows, cols, k, count, width, seed):
    g = torch.Generator().manual_seed(seed)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    return [(torch.randint(lo, hi, (rows, k), generator=g),
             torch.randint(lo, hi, (k, cols), generator=g)) for _ in range(count)]


def measure(rows=8, cols=8, k=256, tiles=64, cycles=1_000_000, pysim_tiles=1, seed=0):
    """Run the benchmark; return its figures as a JSON-ready dict."""
    array = SystolicArray.from_config(DEFAULT_CONFIG.with_array(rows=rows, cols=cols).array)
    w = array.operand_width
    sim = array_model(array, simulator="cxxrtl")
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


# --- the whole SoC ----------------------------------------------------------------------------

SIZES = (64, 32, 10)


class _TimedDevice(RtlSimDevice):
    """:class:`firmware.backends.RtlSimDevice` that times each run and keeps the memory image
    before the first run of ``capture`` (an entry address)."""

    def __init__(self, soc, **socsim_kwargs):
        super().__init__(soc, **socsim_kwargs)
        self.capture, self.image = None, None
        self.runs = []                  # (entry, SocResult, wall seconds, CPU seconds)

    def _run(self, entry, max_cycles):
        if entry == self.capture and self.image is None:
            self.image = self.sim.read_words(0, self.config.mem_words)
        t0, c0 = time.perf_counter(), time.process_time()
        r = super()._run(entry, max_cycles)
        self.runs.append((entry, self.last_result, time.perf_counter() - t0,
                          time.process_time() - c0))
        return r


class _RecordingGolden(GoldenDevice):
    """The golden device, keeping every run's result."""

    def __init__(self, soc):
        super().__init__(soc)
        self.runs = []

    def _run(self, entry, max_cycles):
        r = super()._run(entry, max_cycles)
        self.runs.append((entry, r))
        return r


_WATCH = ("seq.pc", "seq.cycles", "seq.insns")


def _pysim_window(soc, image, seed_entry, entry, cycles):
    """Run the seed program, then ``cycles`` cycles of the program at ``entry``, on Amaranth's
    simulator; return the watched values and the window's wall and CPU time."""
    from amaranth.sim import Simulator
    from rtl.soc import Soc
    from sim.soc import csr_write
    from spec.csr import Csr
    dut = Soc(soc, mem_init=[int(w) for w in image])
    out = {}

    def watched(ctx):
        s = dut.seq
        return [ctx.get(v) for v in (s.pc, s.cycles, s.insns)]

    async def tb(ctx):
        await csr_write(ctx, dut, Csr.ENTRY, seed_entry)
        await csr_write(ctx, dut, Csr.CTRL, 1)
        while not ctx.get(dut.done):
            await ctx.tick()
        await csr_write(ctx, dut, Csr.ENTRY, entry)
        await csr_write(ctx, dut, Csr.CTRL, 1)
        t0, c0 = time.perf_counter(), time.process_time()
        await ctx.tick().repeat(cycles)
        out["wall"], out["cpu"] = time.perf_counter() - t0, time.process_time() - c0
        out["values"] = watched(ctx)

    t0 = time.perf_counter()
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    out["setup_wall"] = time.perf_counter() - t0 - out["wall"]
    return out


def measure_soc(steps=20, pysim_cycles=1000, soc=None, seed=0, progress=True, cxxflags=None,
                cxxrtl_options=None, simulator=DEFAULT_SIMULATOR):
    """Train ``steps`` steps on the compiled SoC and on golden; return the figures as a
    JSON-ready dict. ``cxxflags``, ``cxxrtl_options``: the model's build options
    (:class:`sim.compiled.soc.SocSim`'s defaults if ``None``); ``simulator``: its engine."""
    from golden.data import digits_split
    if soc is None:
        soc = DEFAULT_SOC
    train, _ = digits_split()
    a = soc.config.array
    t0 = time.perf_counter()
    dev = _TimedDevice(soc, progress=progress, cxxflags=cxxflags, cxxrtl_options=cxxrtl_options,
                       simulator=simulator)
    socsim = dev.sim
    info = socsim.build_info
    result = {
        "benchmark": "simspeed", "design": "soc", "simulator": info.simulator,
        "rows": a.rows, "cols": a.cols, "operand_width": a.operand_width,
        "mem_words": soc.mem_words, "program": f"MLP {'-'.join(map(str, SIZES))} training",
        "steps": steps, "cxxflags": list(info.cxxflags),
        "cxxrtl_options": list(info.cxxrtl_options),
        "cxx_lines": info.cxx_lines, "build_cached": info.cached,
        "build_seconds": info.build_seconds, "compile_seconds": info.compile_seconds,
        "load_seconds": time.perf_counter() - t0,
    }
    with dev:
        acc = Accelerator(dev)
        net = acc.mlp(SIZES, seed=seed)
        cm = net.compiled
        dev.capture = cm.programs["train"].base
        net.fit(train.X, train.y, steps=steps)
        rtl_mem = socsim.read_words(0, soc.mem_words)

        gold = _RecordingGolden(soc)
        gnet = Accelerator(gold).mlp(SIZES, seed=seed)
        g0 = time.process_time()
        gnet.fit(train.X, train.y, steps=steps)
        golden_cpu = time.process_time() - g0
        gold_mem = gold.read_words(0, soc.mem_words)

        same_runs = [(e, r.cycles, r.instructions, r.error) for e, r, _, _ in dev.runs] == \
            [(e, r.cycles, r.instructions, r.error) for e, r in gold.runs]
        train_runs = [(r, w, c) for e, r, w, c in dev.runs if e == dev.capture]
        sim_cycles = sum(r.sim_cycles for r, _, _ in train_runs)
        wall = sum(w for _, w, _ in train_runs)
        cpu = sum(c for _, _, c in train_runs)
        result.update(
            train_runs=len(train_runs),
            cycles_per_step=sum(r.cycles for r, _, _ in train_runs) / steps,
            rtl_sim_cycles=sim_cycles, rtl_sim_wall_seconds=wall, rtl_sim_cpu_seconds=cpu,
            rtl_sim_cycles_per_second=sim_cycles / wall,
            rtl_sim_cycles_per_cpu_second=sim_cycles / cpu if cpu else float("inf"),
            golden_cpu_seconds=golden_cpu,
            bit_exact=bool(np.array_equal(rtl_mem, gold_mem)), cycle_exact=same_runs)

        if pysim_cycles:
            seed_entry = cm.regions["seed"].addr
            py = _pysim_window(soc, dev.image, seed_entry, dev.capture, pysim_cycles)
            socsim.power_on()
            socsim.write_words(0, dev.image)
            socsim.run(seed_entry)
            socsim.start(dev.capture)
            socsim.sim.step(pysim_cycles)
            compiled = [socsim.sim.get(n) for n in _WATCH]
            result.update(
                pysim_cycles=pysim_cycles, pysim_setup_seconds=py["setup_wall"],
                pysim_cycles_per_second=pysim_cycles / py["wall"],
                pysim_cycles_per_cpu_second=pysim_cycles / py["cpu"],
                pysim_agrees=compiled == py["values"],
                speedup=result["rtl_sim_cycles_per_second"] / (pysim_cycles / py["wall"]),
                speedup_cpu=result["rtl_sim_cycles_per_cpu_second"]
                / (pysim_cycles / py["cpu"]))
    return result


def _soc_table(r):
    build = ("from the cache" if r["build_cached"] else f"compiled in {r['compile_seconds']:.0f} s")
    rows = [
        ("SoC", f"{r['rows']} × {r['cols']} array, {r['operand_width']}-bit operands, "
                f"{r['mem_words']:,}-word main memory"),
        ("compiled model", f"{r['simulator']}: {r['cxx_lines']:,} lines of "
                           f"{'Verilog' if r['simulator'] == 'verilator' else 'C++'}, {build}; "
                           f"design to loaded model {r['load_seconds']:.1f} s"),
        ("program", f"{r['program']}, {r['steps']} steps in {r['train_runs']} run(s), "
                    f"{r['cycles_per_step']:,.0f} cycles per step"),
        ("compiled SoC", f"{r['rtl_sim_cycles_per_second']:,.0f} cycles/s wall, "
                         f"{r['rtl_sim_cycles_per_cpu_second']:,.0f} cycles/s of CPU "
                         f"({r['rtl_sim_cycles']:,} cycles)"),
        ("golden model, same training", f"{r['golden_cpu_seconds']:.1f} s of CPU"),
        ("== golden (memory / cycles)", f"{'yes' if r['bit_exact'] else 'NO'} / "
                                        f"{'yes' if r['cycle_exact'] else 'NO'}"),
    ]
    if "pysim_cycles_per_second" in r:
        rows += [
            ("Amaranth pysim, same program",
             f"{r['pysim_cycles_per_second']:,.0f} cycles/s wall, "
             f"{r['pysim_cycles_per_cpu_second']:,.0f} cycles/s of CPU (first "
             f"{r['pysim_cycles']:,} cycles; set-up {r['pysim_setup_seconds']:.0f} s)"),
            ("pysim == compiled at that cycle", "yes" if r["pysim_agrees"] else "NO"),
            ("speed-up over pysim", f"{r['speedup']:,.0f}× wall, {r['speedup_cpu']:,.0f}× CPU"),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


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
    parser = ArgumentParser(prog="python -m benchmarks.simspeed",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("soc", "array"), help="measure one design only")
    parser.add_argument("--steps", type=positive_int, default=20,
                        help="SoC: training steps on the compiled model and golden")
    parser.add_argument("--pysim-cycles", type=non_negative_int, default=1000,
                        help="SoC: cycles of the training program on pysim (0: skip)")
    parser.add_argument("--cxxflags", help="SoC: C++ optimisation flags of the model, e.g. "
                        "--cxxflags=-O3 (default: the simulator's)")
    parser.add_argument("--simulator", choices=("verilator", "cxxrtl"), default=DEFAULT_SIMULATOR,
                        help=f"SoC: the compiled model's engine (default {DEFAULT_SIMULATOR})")
    parser.add_argument("--cxxrtl-options", help="SoC: Yosys write_cxxrtl options, e.g. "
                        "--cxxrtl-options='-O6 -g4' (default: the simulator's)")
    parser.add_argument("--rows", type=positive_int, default=8)
    parser.add_argument("--cols", type=positive_int, default=8)
    parser.add_argument("--k", type=positive_int, default=256,
                        help="array: depth of each GEMM tile")
    parser.add_argument("--tiles", type=positive_int, default=64,
                        help="array: GEMM tiles in the compiled model")
    parser.add_argument("--cycles", type=positive_int, default=1_000_000,
                        help="array: free-running cycles of the C++ run loop")
    parser.add_argument("--pysim-tiles", type=non_negative_int, default=1,
                        help="array: tiles to run in Amaranth's simulator (0: skip; at most "
                             "--tiles)")
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.pysim_tiles > args.tiles:
        parser.error(f"argument --pysim-tiles: must be at most --tiles ({args.tiles}), "
                     f"not {args.pysim_tiles}")
    if args.only == "array":
        given = [flag for flag, value in (("--cxxflags", args.cxxflags),
                                          ("--cxxrtl-options", args.cxxrtl_options)) if value]
        if given:
            parser.error(f"{given[0]} is for the SoC's model (not with --only array)")
    if args.cxxrtl_options and args.simulator != "cxxrtl":
        parser.error("--cxxrtl-options is for --simulator cxxrtl")
    out, ok, tables = {}, True, []
    if args.only != "array":
        r = measure_soc(args.steps, args.pysim_cycles, seed=args.seed, progress=not args.json,
                        cxxflags=args.cxxflags.split() if args.cxxflags else None,
                        cxxrtl_options=args.cxxrtl_options.split() if args.cxxrtl_options
                        else None, simulator=args.simulator)
        out.update(r)
        ok &= r["bit_exact"] and r["cycle_exact"] and r.get("pysim_agrees", True)
        tables.append(_soc_table(r))
    if args.only != "soc":
        r = measure(args.rows, args.cols, args.k, args.tiles, args.cycles, args.pysim_tiles,
                    args.seed)
        out["array"] = r
        ok &= r["bit_exact"] and r["cycle_exact"]
        tables.append(_table(r))
    print(json.dumps(out) if args.json else "\n\n".join(tables))
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
