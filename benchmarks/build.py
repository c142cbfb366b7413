"""Throughput on the boards: peak, and projected from simulated cycles at the achieved fmax.

``python -m benchmarks.build [--report FILE ...] [--board NAME --fmax MHZ] [--steps N] [--json]``

Reads build reports (``python -m rtl.build ... --json FILE``; by default every
``build/*/report.json``, which each build also writes), or takes a board's SoC configuration and
a clock given by hand (``--board ulx3s-85f --fmax 26.72``: e.g. nextpnr's post-placement
estimate of a build that did not finish), and for each prints:

* **peak**: ``2·R·C·f`` operations per second (one multiply and one add per PE per cycle) at the
  achieved fmax (the slowest clock's) and at the target clock;
* **training**: the 64-32-10 MLP (batch 32) compiled for the board's SoC configuration trains
  ``N`` steps on the digits train split on the golden machine (:class:`firmware.device.
  GoldenDevice`, whose cycle count is the RTL's under the deterministic memory model); cycles
  per step, steps per second at fmax, and the *useful* throughput: the multiply-accumulates the
  step needs (forward ``Σ B·(n_in+1)·n_out``, weight gradients the same, input gradients of the
  layers after the first ``Σ B·n_out·n_in``) × 2 per step time, with the array's utilization;
* **matmul**: :meth:`firmware.Accelerator.matmul` of 128×128×128 on the same configuration,
  cycles and GOPS at fmax.

A configuration the compiler cannot target (it needs a square array) gets the reason instead of
the projection. Exit status 1 if there is no report; 2 with one line ``error: …`` for a bad
argument or a report that is not a build report (checked before any projection runs).
"""

import glob
import json
import math
import sys
from pathlib import Path

import numpy as np

from spec.cli import ArgumentParser, existing_file, positive_float, positive_int

__all__ = ["useful_macs", "project", "load_report", "main"]

SIZES = (64, 32, 10)
MATMUL = (128, 128, 128)


def useful_macs(sizes, batch):
    """Multiply-accumulates of one training step of an MLP with ``sizes``, batch ``batch``.

    Forward ``Σ B·(n_in+1)·n_out`` (the bias as a ones column), weight gradients the same, input
    gradients of every layer after the first ``Σ B·n_out·n_in``.
    """
    layers = list(zip(sizes[:-1], sizes[1:]))
    forward = sum(batch * (n_in + 1) * n_out for n_in, n_out in layers)
    backward = sum(batch * n_out * n_in for n_in, n_out in layers[1:])
    return 2 * forward + backward


def project(report, steps=50, seed=0):
    """Peak and projected throughput of one build report (a dict); returns a dict."""
    from firmware import Accelerator
    from golden.data import digits_split
    from platforms import get_board

    board = get_board(report["board"]).with_array(report["rows"], report["cols"])
    R, C = board.array.rows, board.array.cols
    fmax = min(c["fmax_mhz"] for c in report["clocks"].values())
    out = {
        "board": board.name, "top": report["top"], "rows": R, "cols": C,
        "fmax_mhz": fmax, "target_mhz": report["target_mhz"],
        "timing_pass": report["timing_pass"],
        "peak_gops": 2 * R * C * fmax / 1e3,
        "peak_gops_at_target": 2 * R * C * report["target_mhz"] / 1e3,
    }
    try:
        acc = Accelerator(soc=board.soc)
        net = acc.mlp(SIZES, seed=seed)
    except ValueError as e:
        out["projection_error"] = str(e)
        return out
    train, _ = digits_split()
    cm = net.compiled
    steps = min(steps, cm.train_capacity)
    net.fit(train.X, train.y, steps=steps)
    cycles = acc.last_cycles / steps
    macs = useful_macs(SIZES, cm.desc.batch)
    step_s = cycles / (fmax * 1e6)
    rng = np.random.default_rng(seed)
    m, k, n = MATMUL
    acc.matmul(rng.integers(-2**15, 2**15, (m, k)), rng.integers(-2**15, 2**15, (k, n)),
               shift=16)
    mm_cycles = acc.last_cycles
    out.update({
        "training": {
            "sizes": list(SIZES), "batch": cm.desc.batch, "steps": steps,
            "cycles_per_step": cycles, "steps_per_s": 1 / step_s,
            "samples_per_s": cm.desc.batch / step_s,
            "useful_macs_per_step": macs, "useful_gops": 2 * macs / step_s / 1e9,
            "array_utilization": macs / (R * C * cycles),
        },
        "matmul": {
            "m": m, "k": k, "n": n, "cycles": mm_cycles,
            "gops": 2 * m * k * n * fmax * 1e6 / mm_cycles / 1e9,
            "array_utilization": m * k * n / (R * C * mm_cycles),
        },
    })
    return out


def _table(rows):
    lines = []
    for r in rows:
        verdict = "met" if r["timing_pass"] else "NOT met"
        lines.append(f"== {r['board']}, {r['top']} top, {r['rows']}×{r['cols']} array: fmax "
                     f"{r['fmax_mhz']:.2f} MHz (target {r['target_mhz']:.2f} MHz, {verdict}) ==")
        lines.append(f"  peak                       {r['peak_gops']:8.2f} GOPS at fmax "
                     f"({r['peak_gops_at_target']:.2f} at the target), 2·R·C·f")
        if "projection_error" in r:
            lines.append(f"  no projection: {r['projection_error']}")
            continue
        t, mm = r["training"], r["matmul"]
        sizes = "-".join(map(str, t["sizes"]))
        lines.append(f"  training step {sizes}, batch {t['batch']} (golden cycle model, "
                     f"{t['steps']} steps)")
        lines.append(f"    cycles / step            {t['cycles_per_step']:10.1f}")
        lines.append(f"    steps / s at fmax        {t['steps_per_s']:10.0f}  "
                     f"({t['samples_per_s']:.0f} samples/s)")
        lines.append(f"    useful throughput        {t['useful_gops']:10.3f} GOPS  "
                     f"({t['useful_macs_per_step']} MACs/step, array utilization "
                     f"{100 * t['array_utilization']:.1f} %)")
        lines.append(f"  matmul {mm['m']}×{mm['k']}×{mm['n']}           {mm['cycles']:10d} cycles, "
                     f"{mm['gops']:.2f} GOPS at fmax (utilization "
                     f"{100 * mm['array_utilization']:.1f} %)")
    return "\n".join(lines)


def load_report(path):
    """The build report in file ``path`` (``python -m rtl.build``'s JSON), checked.

    Raises
    ------
    ValueError
        If the file cannot be read, is not JSON, or lacks what :func:`project` reads (board,
        top, rows, cols, target clock, timing verdict, each clock's fmax), naming the file.
    """
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Build report {str(path)!r} cannot be read: {e}") from None
    problem = _report_problem(report)
    if problem:
        raise ValueError(f"Build report {str(path)!r} is not a build report of python -m "
                         f"rtl.build: {problem}")
    return report


def _report_problem(report):
    from platforms import BOARDS, get_board
    if not isinstance(report, dict):
        return "not a JSON object"
    for key, kind in (("board", str), ("top", str), ("rows", int), ("cols", int),
                      ("target_mhz", (int, float)), ("timing_pass", bool), ("clocks", dict)):
        if not isinstance(report.get(key), kind) or \
                (kind is int and isinstance(report[key], bool)):
            return f"{key!r} is missing or not a {getattr(kind, '__name__', 'number')}"
    if report["board"] not in BOARDS:
        return f"unknown board {report['board']!r}"
    try:
        get_board(report["board"]).with_array(report["rows"], report["cols"])
    except (TypeError, ValueError) as e:
        return str(e)
    if not report["clocks"]:
        return "no clocks"
    for net, clock in report["clocks"].items():
        fmax = clock.get("fmax_mhz") if isinstance(clock, dict) else None
        if isinstance(fmax, bool) or not isinstance(fmax, (int, float)) or \
                not (math.isfinite(fmax) and fmax > 0):
            return f"clock {net!r} has no positive fmax_mhz"
    return None


def main(argv=None):
    from platforms import BOARDS, get_board
    parser = ArgumentParser(prog="python -m benchmarks.build",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--report", action="append", metavar="FILE", type=existing_file,
                        help="a build report (JSON of python -m rtl.build); default: "
                             "build/*/report.json")
    parser.add_argument("--board", choices=sorted(BOARDS),
                        help="project for this board's SoC configuration ...")
    parser.add_argument("--fmax", type=positive_float, metavar="MHZ", help="... at this clock")
    parser.add_argument("--steps", type=positive_int, default=50,
                        help="training steps on the golden machine (default 50)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if (args.board is None) != (args.fmax is None):
        parser.error("--board and --fmax go together")
    if args.board is not None and args.report:
        parser.error("--report and --board/--fmax do not go together")
    if args.board is not None:
        board = get_board(args.board)
        reports = [{"board": board.name, "top": "soc (given fmax)", "rows": board.array.rows,
                    "cols": board.array.cols, "target_mhz": board.freq_mhz,
                    "clocks": {"given": {"fmax_mhz": args.fmax}},
                    "timing_pass": args.fmax >= board.freq_mhz}]
    else:
        files = args.report or sorted(glob.glob("build/*/report.json"))
        if not files:
            print("No build report: run `python -m rtl.build --board ulx3s-85f` (or pass "
                  "--report FILE, or --board and --fmax) first.", file=sys.stderr)
            return 1
        try:
            reports = [load_report(f) for f in files]
        except ValueError as e:
            parser.error(str(e))
    rows = [project(r, steps=args.steps) for r in reports]
    print(json.dumps({"builds": rows}) if args.json else _table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
