"""The semi-supervised pipeline's accuracy over seeds: on-device SSL student vs supervised-only
student vs the float32 pipeline (digits, 10 % labels unless told otherwise).

``python -m benchmarks.ssl [--seeds 5] [--backend trainer|golden|rtl-sim] [--labeled-fraction F]
[--dataset PATH.npz] [--stream-chunks N] [--kd [--temperature T] [--kd-top P]] [--guard [M]]
[--json]`` runs :func:`firmware.pipeline.run_pipeline` once per seed (0 ..
seeds−1) and prints a table of the per-seed figures with their mean ± sample std and the paired
gains. The default backend ``trainer`` runs the teacher's labeling and selection on the golden
device and trains the students with the golden trainer (:class:`golden.mlp.FixedMLP` with the
device's draw order), which is bit-identical to training on the device and several times faster
on the host; ``golden`` and ``rtl-sim`` run every phase on that device (and report cycles).

``--stream-chunks N`` adds a row per chunk (the student's accuracy after chunk ``i``; the last
is the SSL student), ``--kd`` runs the distilled student in place of the hard-label one,
``--guard`` the divergence guard (its rollbacks per seed are reported), ``--standalone`` the
one-image run (the image always runs on the golden device; its slot-order recipe, see
:mod:`firmware.standalone`).
"""

import json
import sys
import time

import numpy as np
import torch

from spec.cli import ArgumentParser, existing_file, positive_float, positive_int

__all__ = ["measure", "summary", "main"]

_KEYS = ("teacher_accuracy", "pseudo_label_precision", "ssl_student_before_finetune_accuracy",
         "ssl_student_accuracy", "supervised_student_accuracy", "float_ssl_student_accuracy")


def measure(seeds=range(5), backend="trainer", labeled_fraction=0.1, dataset=None,
            progress=False, **options):
    """One pipeline run per seed; returns the list of result dicts (``run_pipeline``'s);
    ``options`` go to :func:`firmware.pipeline.run_pipeline` (``stream_chunks``, ``kd``, ...)."""
    from firmware.pipeline import prepare_data, run_pipeline, soc_for
    torch.set_num_threads(1)
    rows = []
    for seed in seeds:
        data = prepare_data(dataset, seed=seed, labeled_fraction=labeled_fraction)
        soc = soc_for(data.num_classes)
        if backend == "trainer":
            res = run_pipeline(data, backend="golden", soc=soc, seed=seed, progress=progress,
                               students="trainer", **options)
        else:
            res = run_pipeline(data, backend=backend, soc=soc, seed=seed, progress=progress,
                               **options)
        rows.append(res)
        if progress:
            print(f"seed {seed}: " + ", ".join(f"{k} {res[k]:.4f}" for k in _KEYS
                                               if res[k] is not None),
                  file=sys.stderr, flush=True)
    return rows


def _ms(values):
    v = 100 * np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def summary(rows):
    """Means ± std (points) of every figure and of the paired gains."""
    out = {k: _ms([r[k] for r in rows]) for k in _KEYS if rows[0][k] is not None}
    out["gain_over_supervised"] = _ms([r["ssl_student_accuracy"] - r["supervised_student_accuracy"]
                                       for r in rows])
    out["ssl_minus_float"] = _ms([r["ssl_student_accuracy"] - r["float_ssl_student_accuracy"]
                                  for r in rows])
    return out


def _table(rows, s, backend, wall):
    names = dict(teacher_accuracy="teacher (on device)",
                 pseudo_label_precision="pseudo-label precision",
                 ssl_student_before_finetune_accuracy="SSL student before finetune",
                 ssl_student_accuracy="SSL student (fixed point, device)",
                 supervised_student_accuracy="supervised-only student (device)",
                 float_ssl_student_accuracy="float32 pipeline's SSL student",
                 gain_over_supervised="SSL − supervised (paired)",
                 ssl_minus_float="SSL − float32 (paired)")
    seeds = [r["seed"] for r in rows]
    lines = [f"Semi-supervised pipeline, {rows[0]['dataset']}, {rows[0]['labeled']} labeled, "
             f"{rows[0]['unlabeled']} unlabeled, {rows[0]['test']} test; seeds {seeds}; "
             f"students on {backend}; teacher {'-'.join(map(str, rows[0]['teacher_sizes']))}, "
             f"student {'-'.join(map(str, rows[0]['student_sizes']))}, "
             f"K={rows[0]['selector']['k']} P={rows[0]['selector']['p']}", "",
             "| figure (test %) | " + " | ".join(f"seed {x}" for x in seeds) + " | mean ± std |",
             "|---|" + "---|" * (len(seeds) + 1)]
    for k, (m, sd) in s.items():
        if k in _KEYS:
            per = [f"{100 * r[k]:.2f}" for r in rows]
        elif k == "gain_over_supervised":
            per = [f"{100 * (r['ssl_student_accuracy'] - r['supervised_student_accuracy']):+.2f}"
                   for r in rows]
        else:
            per = [f"{100 * (r['ssl_student_accuracy'] - r['float_ssl_student_accuracy']):+.2f}"
                   for r in rows]
        lines.append(f"| {names[k]} | " + " | ".join(per) + f" | {m:.2f} ± {sd:.2f} |")
    for i in range(len(rows[0].get("stream", ()))):
        per = [100 * r["stream"][i]["accuracy"] for r in rows]
        sd = float(np.std(per, ddof=1)) if len(per) > 1 else 0.0
        seen = rows[0]["stream"][i]["seen"]
        lines.append(f"| after chunk {i + 1} ({seen} of the stream seen) | "
                     + " | ".join(f"{v:.2f}" for v in per) + f" | {np.mean(per):.2f} ± {sd:.2f} |")
    if "guard" in rows[0]:
        lines.append("| guard rollbacks | " + " | ".join(str(r["guard"]["rollbacks"])
                                                         for r in rows)
                     + f" | {sum(r['guard']['rollbacks'] for r in rows)} in all |")
    if "standalone" in rows[0]:
        lines.append("| standalone device cycles | " + " | ".join(
            f"{r['standalone']['cycles']:,}" for r in rows) + " | |")
    if "kd" in rows[0]:
        k = rows[0]["kd"]
        lines.append(f"(SSL student: distilled, T = {k['temperature']:g}, top-{k['top']} soft "
                     f"labels)")
    g, f = s["gain_over_supervised"][0], s["ssl_minus_float"][0]
    lines += ["", f"acceptance: SSL − supervised {g:+.2f} points (≥ +1.5: "
                  f"{'yes' if g >= 1.5 else 'NO'}), |SSL − float32| {abs(f):.2f} points "
                  f"(≤ 1: {'yes' if abs(f) <= 1 else 'NO'}); {wall:.0f} s wall"]
    return "\n".join(lines)


def _check(ap, a, options):
    """Refuse, before the first run, what the runs would refuse: the data set and the labeled
    fraction (the first seed's split), the options against the data's sizes, the temperature,
    the guard's margin."""
    from firmware.guard import DivergenceGuard
    from firmware.pipeline import Options, prepare_data
    from golden.softmax import temperature_to_inv_temp
    for flag, value in (("--temperature", a.temperature), ("--kd-top", a.kd_top)):
        if value is not None and not a.kd:
            ap.error(f"{flag} is for --kd")
    try:
        data = prepare_data(a.dataset, seed=0, labeled_fraction=a.labeled_fraction)
        Options.from_keywords(**options).check_for(data)
        if a.kd:
            temperature_to_inv_temp(options["temperature"])
        if a.guard is not None:
            DivergenceGuard(data.labeled.X, data.labeled.y, a.guard)
    except (TypeError, ValueError) as e:
        ap.error(str(e))


def main(argv=None):
    ap = ArgumentParser(prog="python -m benchmarks.ssl", description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=positive_int, default=5)
    ap.add_argument("--backend", default="trainer", choices=("trainer", "golden", "rtl-sim"))
    ap.add_argument("--labeled-fraction", type=float, default=0.1)
    ap.add_argument("--dataset", type=existing_file, metavar="PATH.npz")
    ap.add_argument("--stream-chunks", type=positive_int, metavar="N")
    ap.add_argument("--kd", action="store_true")
    ap.add_argument("--temperature", type=positive_float, help="with --kd (default 1)")
    ap.add_argument("--kd-top", type=positive_int, help="with --kd (default 3)")
    ap.add_argument("--guard", type=float, nargs="?", const=0.05, metavar="MARGIN")
    ap.add_argument("--standalone", action="store_true",
                    help="the SSL student from the one-image run (golden device)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--progress", action="store_true", help="per-seed lines on stderr")
    a = ap.parse_args(argv)
    options = dict(stream_chunks=a.stream_chunks, kd=a.kd, guard_margin=a.guard)
    if a.standalone:
        options.update(standalone=True, compare_host_driven=False)
    if a.kd:
        options.update(temperature=1.0 if a.temperature is None else a.temperature,
                       kd_top=3 if a.kd_top is None else a.kd_top)
    _check(ap, a, options)
    t0 = time.perf_counter()
    rows = measure(range(a.seeds), a.backend, a.labeled_fraction, a.dataset, a.progress,
                   **options)
    wall = time.perf_counter() - t0
    s = summary(rows)
    if a.json:
        extra = ("stream", "kd", "guard", "standalone")
        print(json.dumps(dict(backend=a.backend, summary=s, wall_seconds=wall,
                              options={k: v for k, v in options.items() if v},
                              runs=[{k: r[k] for k in ("seed", "total_cycles", "selected",
                                                       "class_counts") + _KEYS + extra
                                     if k in r}
                                    for r in rows])))
    else:
        print(_table(rows, s, a.backend, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
