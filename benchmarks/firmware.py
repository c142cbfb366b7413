"""Firmware on the golden backend: training-step cycles and host speed, matmul cycles.

``python -m benchmarks.firmware [--steps N] [--json]``

* **training**: the 64-32-10 MLP (batch 32, default formats, stochastic rounding) compiled for the
  default SoC (8×8 array) trains ``N`` steps on the digits train split on
  :class:`firmware.device.GoldenDevice` (after a first run of up to one data region's worth of
  steps, for the per-run unit counters); reported: device cycles and instructions per step (from
  the run results), each unit's busy cycles per step (counters), main-memory words the program
  moves per step, the program's size, and the golden model's speed on this host (steps per
  second, wall and CPU). Then the test accuracy.
* **inference**: cycles per sample of the logits program (540 test images, blocks of 32).
* **matmul**: :meth:`firmware.Accelerator.matmul` cycles for a few shapes, with the array's MAC
  utilization (``M·K·N / (R·C·cycles)``) and each unit's busy cycles (DMA, GEMM, vector: the
  run's counters; the rest of a unit's cycles it is idle).
"""

import json
import time

import numpy as np

from firmware import Accelerator
from golden.data import digits_split
from spec.cli import ArgumentParser, positive_int

__all__ = ["measure_training", "measure_matmul", "main"]

SIZES = (64, 32, 10)


def measure_training(steps=200, seed=0):
    train, test = digits_split()
    acc = Accelerator()
    net = acc.mlp(SIZES, seed=seed)
    cm = net.compiled
    # unit counters are per run: one run of at most train_capacity steps
    one_run = min(steps, cm.train_capacity)
    net.fit(train.X, train.y, steps=one_run)
    c = acc.device.counters()
    busy = {k: c[k] / one_run for k in ("busy_dma", "busy_gemm", "busy_vec")}
    t0, c0 = time.perf_counter(), time.process_time()
    net.fit(train.X, train.y, steps=steps)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = dict(
        sizes=list(SIZES), batch=cm.desc.batch, lanes=cm.lanes, steps=steps,
        cycles_per_step=acc.last_cycles / steps,
        instructions_per_step=acc.last_instructions / steps,
        dma_words_per_step=cm.step_words,
        program_instructions=len(cm.programs["train"]),
        steps_per_s=steps / wall, cpu_s_per_step=cpu / steps,
        accuracy=net.evaluate(test.X, test.y),
        infer_cycles_per_sample=acc.last_cycles / len(test),
    )
    out.update({k + "_per_step": v for k, v in busy.items()})
    return out


def measure_matmul(shapes=((8, 8, 8), (32, 64, 32), (64, 64, 64), (128, 128, 128)), seed=0):
    acc = Accelerator()
    R = acc.soc.config.array.rows
    rng = np.random.default_rng(seed)
    rows = []
    for m, k, n in shapes:
        a = rng.integers(-2**15, 2**15, (m, k))
        b = rng.integers(-2**15, 2**15, (k, n))
        t0 = time.perf_counter()
        acc.matmul(a, b, shift=16)
        c = acc.device.counters()
        rows.append(dict(m=m, k=k, n=n, cycles=acc.last_cycles,
                         instructions=acc.last_instructions,
                         utilization=m * k * n / (R * R * acc.last_cycles),
                         busy_dma=c["busy_dma"], busy_gemm=c["busy_gemm"],
                         busy_vec=c["busy_vec"], host_s=time.perf_counter() - t0))
    return rows


def _table(t, mm):
    lines = [
        f"Training step, {'-'.join(map(str, t['sizes']))} MLP, batch {t['batch']}, "
        f"{t['lanes']}×{t['lanes']} array, golden backend, {t['steps']} steps",
        f"  device cycles / step        {t['cycles_per_step']:10.1f}",
        f"  instructions / step         {t['instructions_per_step']:10.1f}",
        f"  busy DMA / GEMM / VEC       {t['busy_dma_per_step']:.0f} / "
        f"{t['busy_gemm_per_step']:.0f} / {t['busy_vec_per_step']:.0f} cycles per step",
        f"  main-memory words / step    {t['dma_words_per_step']:10d}  (the batch; nothing else)",
        f"  training program            {t['program_instructions']:10d} instructions",
        f"  golden speed                {t['steps_per_s']:10.1f} steps/s "
        f"({1000 * t['cpu_s_per_step']:.1f} ms CPU per step)",
        f"  test accuracy after         {100 * t['accuracy']:9.1f} %",
        f"  inference                   {t['infer_cycles_per_sample']:10.1f} cycles per sample",
        "",
        "matmul (shift 16, nearest-even)",
        "      M     K     N    cycles  instructions  MAC utilization   busy DMA / GEMM / VEC"
        "  host s",
    ]
    for r in mm:
        busy = f"{r['busy_dma']} / {r['busy_gemm']} / {r['busy_vec']}"
        lines.append(f"  {r['m']:5d} {r['k']:5d} {r['n']:5d} {r['cycles']:9d} "
                     f"{r['instructions']:13d} {100 * r['utilization']:15.1f} % "
                     f"{busy:>23s} {r['host_s']:7.2f}")
    return "\n".join(lines)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.firmware",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=positive_int, default=200,
                        help="training steps (default 200)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    t = measure_training(args.steps)
    mm = measure_matmul()
    print(json.dumps(dict(training=t, matmul=mm)) if args.json else _table(t, mm))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
