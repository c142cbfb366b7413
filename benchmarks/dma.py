"""DMA throughput: sustained main-memory words per cycle on long transfers (Amaranth pysim).

``python -m benchmarks.dma [--lanes N --rows R --latency L --stall-rate P --seed S] [--json]``
builds :class:`rtl.memsys.MemorySystem` (main memory, scratchpads, DMA), then moves a dense
``R × N`` block of 16-bit elements from main memory into the operand scratchpad (load) and back
to another place in main memory (store), and the same block of 32-bit elements (2 words each)
into and out of the accumulator scratchpad; then the same four transfers strided (rows
:data:`STRIDE_GAP` words apart, the first at word 5, so rows start anywhere in a main-memory
line): first with the deterministic memory model (fixed latency ``L``, no stalls), then with
random stalls at rate ``P``. Every run's main memory and scratchpads are compared with
:mod:`golden.dma`, and the fixed-latency cycle counts with :func:`golden.dma.cycles`.
``words_per_cycle`` is the fixed-latency figure over the four dense transfers (words moved /
cycles from each descriptor's acceptance to its ``done``), ``words_per_cycle_strided`` over the
four strided ones, ``words_per_cycle_by_kind`` per kind and direction. With ``--json`` the
benchmark prints one JSON object. Exit status 1 if a result or a cycle count differs from golden."""

import json
import random
import sys
import time

import torch
from amaranth.sim import Simulator

from golden import dma as gd
from rtl.memsys import MemorySystem
from spec.cli import ArgumentParser, int_range, non_negative_float, positive_int, seed_int
from spec.memory import Dir, Space
from spec.params import ArrayConfig, Config
from spec.soc import SocConfig

__all__ = ["STRIDE_GAP", "measure", "main"]

#: Words between the end of a block row and the start of the next in the strided transfers.
STRIDE_GAP = 3


def _transfers(rows, lanes, soc):
    """Load then store of a block, 1-word elements (SP) and 2-word elements (ACC): dense (rows
    back to back from word 0), then strided (``STRIDE_GAP`` words between rows, from word 5: rows
    that start anywhere in a line)."""
    out = []
    for gap, src in ((0, 0), (STRIDE_GAP, 5)):
        for space, ew in ((Space.SP, 1), (Space.ACC, 2)):
            stride = lanes * ew + gap
            extent = (rows - 1) * stride + lanes * ew
            common = dict(space=space, elem_words=ew, sp_row=0, rows=rows, cols=lanes,
                          stride=stride)
            out.append(gd.Descriptor(direction=Dir.LOAD, mem_addr=src, **common))
            out.append(gd.Descriptor(direction=Dir.STORE, mem_addr=soc.mem_words - extent,
                                     **common))
    return out


def _run(soc, descs, mem_image, stall_rate, seed):
    """Simulate ``descs`` back to back; return (cycles per descriptor, final mem, final sps)."""
    dut = MemorySystem(soc, stall_rate=stall_rate, seed=seed, mem_init=mem_image.tolist())
    result = {}

    async def tb(ctx):
        spans = []
        for desc in descs:
            ctx.set(dut.i_desc.payload, desc.as_dict())
            ctx.set(dut.i_desc.valid, 1)
            await ctx.tick()                  # idle: accepted in this cycle
            ctx.set(dut.i_desc.valid, 0)
            n = 1
            while not (await ctx.tick().sample(dut.done))[2]:
                n += 1
            spans.append(n)
        result["spans"] = spans
        result["mem"] = torch.tensor([ctx.get(dut.mainmem.word(i))
                                      for i in range(soc.mem_words)], dtype=torch.int64)
        result["sps"] = [torch.tensor([list(ctx.get(pad.cell(r))) for r in range(pad.rows)],
                                      dtype=torch.int64) for pad in (dut.sp, dut.acc)]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    cpu, wall = time.process_time(), time.perf_counter()
    sim.run()
    return (result["spans"], result["mem"], result["sps"],
            time.process_time() - cpu, time.perf_counter() - wall)


def measure(lanes=8, rows=256, latency=4, stall_rate=0.25, seed=1):
    """Run the benchmark; return its figures as a JSON-ready dict."""
    config = Config(array=ArrayConfig(rows=lanes, cols=lanes))
    need = 2 * rows * (2 * lanes + STRIDE_GAP) + 8
    soc = SocConfig(config=config, mem_words=max(1 << 12, 1 << (need - 1).bit_length()),
                    sp_banks=4,
                    sp_depth=max(16, 1 << (rows - 1).bit_length()), acc_banks=1,
                    acc_depth=max(16, 1 << (rows - 1).bit_length()), mem_latency=latency)
    descs = _transfers(rows, lanes, soc)
    rng = random.Random(seed)
    mem = torch.tensor([rng.randrange(1 << soc.word_width) for _ in range(soc.mem_words)],
                       dtype=torch.int64)
    g_mem, g_sps = mem.clone(), list(gd.new_images(soc)[1])
    for d in descs:
        gd.execute(d, g_mem, g_sps, soc)
    runs = []
    for rate in (0, stall_rate) if stall_rate else (0,):
        spans, r_mem, r_sps, cpu, wall = _run(soc, descs, mem, rate, seed)
        bit_exact = torch.equal(r_mem, g_mem) and all(map(torch.equal, r_sps, g_sps))
        for d, n in zip(descs, spans):
            runs.append({
                "direction": Dir(d.direction).name.lower(), "space": Space(d.space).name,
                "elem_words": d.elem_words, "stride": d.stride,
                "dense": d.stride == d.cols * d.elem_words,
                "stall_rate": rate, "words": d.words, "cycles": n,
                "predicted_cycles": gd.cycles(d, soc) if not rate else None,
                "words_per_cycle": d.words / n,
            })
        runs[-1].update(bit_exact=bit_exact, cpu_seconds=cpu, wall_seconds=wall)
    fixed = [r for r in runs if not r["stall_rate"] and r["dense"]]
    strided = [r for r in runs if not r["stall_rate"] and not r["dense"]]
    stalled = [r for r in runs if r["stall_rate"]]

    def rate_of(rs):
        return sum(r["words"] for r in rs) / sum(r["cycles"] for r in rs)
    sim_cycles = sum(r["cycles"] for r in runs)
    cpu = sum(r.get("cpu_seconds", 0) for r in runs)
    return {
        "benchmark": "dma",
        "simulator": "amaranth-pysim",
        "lanes": lanes, "block_rows": rows, "latency": latency, "stall_rate": stall_rate,
        "seed": seed,
        "words_per_cycle": rate_of(fixed),
        "words_per_cycle_strided": rate_of(strided),
        "words_per_cycle_by_kind": {
            f"{kind} {direction}": rate_of([r for r in rs if r["direction"] == direction])
            for kind, rs in (("dense", fixed), ("strided", strided))
            for direction in ("load", "store")},
        "words_per_cycle_stalled": rate_of(stalled) if stalled else None,
        "transfers": runs,
        "sim_cycles": sim_cycles,
        "cycles_per_cpu_second": sim_cycles / cpu if cpu else 0.0,
        "bit_exact": all(r.get("bit_exact", True) for r in runs),
        "cycle_exact": all(r["cycles"] == r["predicted_cycles"] for r in fixed + strided),
    }


def _table(r):
    head = ("transfer", "stride", "stall rate", "words", "cycles", "golden", "words/cycle")
    lines = []
    for t in r["transfers"]:
        lines.append((f"{t['direction']} {t['space']} ({t['elem_words']}-word elements)",
                      str(t["stride"]) + ("" if t["dense"] else " (gap)"),
                      f"{t['stall_rate']:g}", str(t["words"]), str(t["cycles"]),
                      "-" if t["predicted_cycles"] is None else str(t["predicted_cycles"]),
                      f"{t['words_per_cycle']:.3f}"))
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    fmt = lambda row: "  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                                for i, (x, w) in enumerate(zip(row, widths)))
    out = [f"DMA, {r['lanes']} lanes, {r['block_rows']}-row dense blocks, "
           f"main-memory latency {r['latency']}", "", fmt(head), fmt(["-" * w for w in widths])]
    out += [fmt(row) for row in lines]
    out += ["",
            f"sustained words/cycle, fixed latency, dense: {r['words_per_cycle']:.3f}, "
            f"strided ({STRIDE_GAP}-word gaps): {r['words_per_cycle_strided']:.3f}",
            "  " + ", ".join(f"{k} {v:.3f}" for k, v in r["words_per_cycle_by_kind"].items())]
    if r["words_per_cycle_stalled"] is not None:
        out.append(f"sustained words/cycle, stall rate {r['stall_rate']:g}: "
                   f"{r['words_per_cycle_stalled']:.3f}")
    out += [f"bit-exact / cycle-exact vs golden: {'yes' if r['bit_exact'] else 'NO'} / "
            f"{'yes' if r['cycle_exact'] else 'NO'}",
            f"pysim: {r['sim_cycles']} cycles, {r['cycles_per_cpu_second']:.0f} cycles/s of CPU"]
    return "\n".join(out)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.dma", description=__doc__.split("\n")[0])
    parser.add_argument("--lanes", type=positive_int, default=8,
                        help="scratchpad lanes (array 8×8)")
    parser.add_argument("--rows", type=int_range(1, 8191), default=256,
                        help="rows of each block (1..8191)")
    parser.add_argument("--latency", type=positive_int, default=4,
                        help="main-memory latency (cycles)")
    parser.add_argument("--stall-rate", type=non_negative_float, default=0.25,
                        help="random stall probability of the second run, below 1 (0: no "
                             "second run)")
    parser.add_argument("--seed", type=seed_int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.stall_rate < 1:
        parser.error(f"argument --stall-rate: must be below 1, not {args.stall_rate}")
    r = measure(args.lanes, args.rows, args.latency, args.stall_rate, args.seed)
    print(json.dumps(r) if args.json else _table(r))
    return 0 if r["bit_exact"] and r["cycle_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
