"""Fixed-point training vs float32: test accuracy of the golden trainer on digits.

``python -m benchmarks.fixed_training [--seeds N] [--json]``

A 64-32-10 MLP trained on the full train split of digits (1257 samples; test on the 540 held out)
with plain SGD, batch 32, 3000 steps at lr 2⁻³ then 1000 at 2⁻⁵ (the schedule of the reference
study of the recipe on digits, ``docs/training.md``), three ways from the same init and batch order: float32
(:class:`golden.float_ref.FloatMLP`), and the golden fixed-point trainer
(:class:`golden.mlp.FixedMLP`, default formats) with round-to-nearest-even or stochastic rounding
on the weight update (the default SoC's draws: a generator per lane, ``update_lanes`` = its lane
count). Prints one row per seed and the mean ± sample std; ``--json`` prints one JSON
object instead (accuracies as fractions in [0, 1]).
"""

import argparse
import json
import math
import statistics
import time

import torch

from golden.data import digits_split
from golden.float_ref import FloatMLP
from golden.mlp import FixedMLP, init_float_params, rng_seed
from spec.cli import ArgumentParser, positive_int
from spec.params import DEFAULT_FORMATS
from spec.soc import DEFAULT_SOC

__all__ = ["SCHEDULE", "run_seed", "main"]

SIZES = (64, 32, 10)
BATCH = 32
SCHEDULE = ((3000, 2**-3), (1000, 2**-5))
MODES = ("float", "nearest-even", "stochastic")


def run_seed(seed, train, test, schedule=SCHEDULE, sizes=SIZES, batch=BATCH):
    """Train the three variants from seed ``seed``; return their test accuracies, wall and CPU
    times (``{mode: accuracy, mode + "_s": wall seconds, mode + "_cpu": CPU seconds}``)."""
    p0 = init_float_params(sizes, seed)
    out = {}
    t0, c0 = time.perf_counter(), time.process_time()
    fm = FloatMLP(sizes, p0).train_sgd(train.X, train.y, schedule, batch=batch, seed=seed)
    out["float"] = fm.accuracy(test.X, test.y)
    out["float_s"], out["float_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    for rounding in ("nearest-even", "stochastic"):
        t0, c0 = time.perf_counter(), time.process_time()
        m = FixedMLP(sizes, rng_seed=rng_seed(seed)).load_float(p0)
        m.train(train.X, train.y, schedule, batch=batch, seed=seed, rounding=rounding,
                update_lanes=DEFAULT_SOC.lanes)
        out[rounding] = m.accuracy(test.X, test.y)
        out[rounding + "_s"] = time.perf_counter() - t0
        out[rounding + "_cpu"] = time.process_time() - c0
        out[rounding + "_sat"] = m.counters["sat_req"] + m.counters["sat_sgd"]
    return out


def _lr(lr):
    k = math.log2(lr)
    return f"2^{int(k)}" if k == int(k) else f"{lr:g}"


def _mean_std(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv=None):
    ap = ArgumentParser(prog="python -m benchmarks.fixed_training", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=positive_int, default=5,
                    help="number of seeds (0 .. N-1); default 5")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train, test = digits_split()
    rows = []
    for seed in range(args.seeds):
        rows.append(run_seed(seed, train, test))
        if not args.json:
            r = rows[-1]
            if seed == 0:
                print(f"{'seed':>4}  {'float32':>8}  {'fixed RNE':>9}  {'fixed SR':>9}  "
                      f"{'float s':>7}  {'RNE s':>6}  {'SR s':>6}")
            print(f"{seed:>4}  {100 * r['float']:8.2f}  {100 * r['nearest-even']:9.2f}  "
                  f"{100 * r['stochastic']:9.2f}  {r['float_s']:7.1f}  {r['nearest-even_s']:6.1f}  "
                  f"{r['stochastic_s']:6.1f}", flush=True)
    stats = {m: _mean_std([r[m] for r in rows]) for m in MODES}
    secs = {m: statistics.fmean(r[m + "_s"] for r in rows) for m in MODES}
    cpu = {m: statistics.fmean(r[m + "_cpu"] for r in rows) for m in MODES}
    delta = {m: _mean_std([r[m] - r["float"] for r in rows]) for m in MODES[1:]}
    if args.json:
        print(json.dumps({
            "float_accuracy": stats["float"][0],
            "fixed_accuracy_nearest": stats["nearest-even"][0],
            "fixed_accuracy_stochastic": stats["stochastic"][0],
            "float_accuracy_std": stats["float"][1],
            "fixed_accuracy_nearest_std": stats["nearest-even"][1],
            "fixed_accuracy_stochastic_std": stats["stochastic"][1],
            "delta_nearest": delta["nearest-even"][0],
            "delta_stochastic": delta["stochastic"][0],
            "seconds_per_run": {"float": secs["float"], "fixed_nearest": secs["nearest-even"],
                                "fixed_stochastic": secs["stochastic"]},
            "cpu_seconds_per_run": {"float": cpu["float"], "fixed_nearest": cpu["nearest-even"],
                                    "fixed_stochastic": cpu["stochastic"]},
            "saturations": {m: sum(r[m + "_sat"] for r in rows) for m in MODES[1:]},
            "seeds": args.seeds, "sizes": list(SIZES), "batch": BATCH,
            "schedule": [list(p) for p in SCHEDULE],
            "formats": {k: getattr(DEFAULT_FORMATS, k)
                        for k in ("width", "act_frac", "weight_frac", "grad_frac", "prob_frac")},
            "per_seed": [{m: r[m] for m in MODES} for r in rows],
        }))
        return
    f = DEFAULT_FORMATS
    print()
    print(f"digits, {'-'.join(map(str, SIZES))} MLP, SGD batch {BATCH}, "
          f"{' then '.join(f'{s} steps at lr {_lr(lr)}' for s, lr in SCHEDULE)}; "
          f"formats act {f.act} weight {f.weight} grad {f.grad} prob {f.prob}; "
          f"{args.seeds} seed(s), test accuracy % (mean ± std)")
    print("| variant | test accuracy % | Δ vs float (points) | wall s / run | CPU s / run |")
    print("|---|---|---|---|---|")
    names = {"float": "float32", "nearest-even": "fixed, RNE update",
             "stochastic": "fixed, stochastic-rounding update"}
    for m in MODES:
        d = "—" if m == "float" else f"{100 * delta[m][0]:+.2f} ± {100 * delta[m][1]:.2f}"
        print(f"| {names[m]} | {100 * stats[m][0]:.2f} ± {100 * stats[m][1]:.2f} | {d} | "
              f"{secs[m]:.1f} | {cpu[m]:.1f} |")


if __name__ == "__main__":
    main()
