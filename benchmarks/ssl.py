"""The semi-supervised pipeline's accuracy over seeds: on-device SSL student vs supervised-only
student vs the delivered one vs the float32 pipeline (digits, 10 % labels unless told otherwise).

``python -m benchmarks.ssl [--seeds 5] [--backend trainer|golden|rtl-sim] [--labeled-fraction F]
[--validation-fraction F] [--dataset NAME|PATH.npz] [--no-gate] [--refit] [--stream-chunks N]
[--kd [--temperature T] [--kd-top P]] [--guard [M]] [--json]`` runs
:func:`firmware.pipeline.run_pipeline` once per seed (0 .. seeds−1) and prints a table of the
per-seed figures with their mean ± sample std and the paired gains, the gate's decision and the
delivered student per seed. ``--dataset`` takes a bundled name (``digits``, ``wine``,
``breast-cancer``) or an ``.npz``; ``--write-synthetic PATH`` writes the generated data set of
``docs/pipeline.md`` (:func:`synthetic`) and exits. The default backend ``trainer`` runs the teacher's labeling and selection on the golden
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
         "ssl_student_accuracy", "supervised_student_accuracy", "delivered_student_accuracy",
         "float_ssl_student_accuracy")


def synthetic(path, seed=0):
    """Write the generated data set of ``docs/pipeline.md``: scikit-learn's
    ``make_classification`` (2000 samples, 20 features of which 6 informative and 4 redundant,
    5 classes of 2 clusters each, class separation 0.8, 5 % of the labels flipped,
    ``random_state=seed``), each feature min-max scaled to [0, 1] and stored as ``uint8``, as
    an ``.npz`` at ``path`` (``X``, ``y``)."""
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=2000, n_features=20, n_informative=6, n_redundant=4,
                               n_classes=5, n_clusters_per_class=2, class_sep=0.8, flip_y=0.05,
                               random_state=seed)
    X = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))
    np.savez_compressed(path, X=np.round(X * 255).astype(np.uint8), y=y.astype(np.int64))


def measure(seeds=range(5), backend="trainer", labeled_fraction=0.1, dataset=None,
            progress=False, validation_fraction=None, **options):
    """One pipeline run per seed; returns the list of result dicts (``run_pipeline``'s);
    ``options`` go to :func:`firmware.pipeline.run_pipeline` (``stream_chunks``, ``kd``, ...)."""
    from firmware.pipeline import prepare_data, run_pipeline, soc_for
    torch.set_num_threads(1)
    rows = []
    split = {} if validation_fraction is None else dict(validation_fraction=validation_fraction)
    for seed in seeds:
        data = prepare_data(dataset, seed=seed, labeled_fraction=labeled_fraction, **split)
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
    """Mean ± sample std (points) of the values that are not ``None`` (``None`` if none is)."""
    v = 100 * np.asarray([x for x in values if x is not None], dtype=float)
    if not v.size:
        return None
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _diff(a, b):
    return None if a is None or b is None else a - b


#: The paired differences of the table: name → (minuend, subtrahend).
_PAIRS = dict(gain_over_supervised=("ssl_student_accuracy", "supervised_student_accuracy"),
              delivered_gain=("delivered_student_accuracy", "supervised_student_accuracy"),
              ssl_minus_float=("ssl_student_accuracy", "float_ssl_student_accuracy"),
              delivered_minus_float=("delivered_student_accuracy", "float_ssl_student_accuracy"))


def summary(rows):
    """Means ± std (points) of every figure and of the paired differences (over the seeds where
    both exist: a refused gate leaves no SSL student); the gate's passes and the deliveries."""
    out = {k: _ms([r.get(k) for r in rows]) for k in _KEYS}
    out.update({k: _ms([_diff(r.get(a), r.get(b)) for r in rows])
                for k, (a, b) in _PAIRS.items()})
    out = {k: v for k, v in out.items() if v is not None}
    out["gate_passed"] = sum(r["gate"]["passed"] for r in rows)
    out["delivered_ssl"] = sum(r["delivered"] == "ssl" for r in rows)
    return out


def _table(rows, s, backend, wall):
    names = dict(teacher_accuracy="teacher (on device)",
                 pseudo_label_precision="pseudo-label precision",
                 ssl_student_before_finetune_accuracy="SSL student before finetune",
                 ssl_student_accuracy="SSL student (fixed point, device)",
                 supervised_student_accuracy="supervised-only student (device)",
                 delivered_student_accuracy="**delivered student**",
                 float_ssl_student_accuracy="float32 pipeline's SSL student",
                 gain_over_supervised="SSL − supervised (paired)",
                 delivered_gain="delivered − supervised (paired)",
                 ssl_minus_float="SSL − float32 (paired)",
                 delivered_minus_float="delivered − float32 (paired)")
    r0 = rows[0]
    seeds = [r["seed"] for r in rows]
    lines = [f"Semi-supervised pipeline, {r0['dataset']}, {r0['labeled']} labeled + "
             f"{r0['validation']} validation, {r0['unlabeled']} unlabeled, {r0['test']} test; "
             f"seeds {seeds}; students on {backend}; teacher "
             f"{'-'.join(map(str, r0['teacher_sizes']))}, student "
             f"{'-'.join(map(str, r0['student_sizes']))}, K={r0['selector']['k']} "
             f"P={r0['selector']['p']}", "",
             "| figure (test %) | " + " | ".join(f"seed {x}" for x in seeds) + " | mean ± std |",
             "|---|" + "---|" * (len(seeds) + 1)]

    def fmt(v, sign=""):
        return "—" if v is None else f"{100 * v:{sign}.2f}"
    for k, ms in s.items():
        if k not in names:
            continue
        if k in _KEYS:
            per = [fmt(r.get(k)) for r in rows]
        else:
            a, b = _PAIRS[k]
            per = [fmt(_diff(r.get(a), r.get(b)), "+") for r in rows]
        lines.append(f"| {names[k]} | " + " | ".join(per) + f" | {ms[0]:.2f} ± {ms[1]:.2f} |")
    cv = [r["teacher_fit"] for r in rows if r.get("teacher_fit") and r["teacher_fit"]["folds"]]
    if cv:
        lines.append("| teacher: CV accuracy on L (dropout, weight decay, steps) | " + " | ".join(
            f"{100 * f['cv_accuracy']:.1f} ({f['dropout']:g}, {f['weight_decay']:g}, "
            f"{f['steps']})" for f in cv) + " | |")
    lines.append("| gate: teacher / supervised correct of validation | " + " | ".join(
        f"{r['gate']['teacher_correct']}/{r['gate']['supervised_correct']} of "
        f"{r['gate']['validation_samples']}: {'pass' if r['gate']['passed'] else 'refuse'}"
        for r in rows) + f" | {s['gate_passed']} of {len(rows)} pass |")
    lines.append("| choice: SSL / supervised correct → delivered | " + " | ".join(
        f"{'—' if r['choice']['ssl_correct'] is None else r['choice']['ssl_correct']}/"
        f"{r['choice']['supervised_correct']} → {r['delivered']}" for r in rows)
        + f" | SSL delivered {s['delivered_ssl']} of {len(rows)} |")
    for i in range(len(r0.get("stream", ()))):
        per = [100 * r["stream"][i]["accuracy"] for r in rows]
        sd = float(np.std(per, ddof=1)) if len(per) > 1 else 0.0
        seen = r0["stream"][i]["seen"]
        lines.append(f"| after chunk {i + 1} ({seen} of the stream seen) | "
                     + " | ".join(f"{v:.2f}" for v in per) + f" | {np.mean(per):.2f} ± {sd:.2f} |")
    if "guard" in r0:
        lines.append("| guard rollbacks | " + " | ".join(str(r["guard"]["rollbacks"])
                                                         for r in rows)
                     + f" | {sum(r['guard']['rollbacks'] for r in rows)} in all |")
    if "standalone" in r0:
        lines.append("| standalone device cycles | " + " | ".join(
            f"{r['standalone']['cycles']:,}" for r in rows) + " | |")
    if "kd" in r0:
        k = r0["kd"]
        lines.append(f"(SSL student: distilled, T = {k['temperature']:g}, top-{k['top']} soft "
                     f"labels)")
    g = s["delivered_gain"][0]
    f = s.get("delivered_minus_float", (float("nan"),))[0]
    lines += ["", f"delivered − supervised {g:+.2f} points (digits' target ≥ +1.5: "
                  f"{'yes' if g >= 1.5 else 'no'}; other sets' ≥ −0.5: "
                  f"{'yes' if g >= -0.5 else 'NO'}), delivered − float32 {f:+.2f} points "
                  f"(≤ 1 in size: {'yes' if abs(f) <= 1 else 'no'}); {wall:.0f} s wall"]
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
        split = ({} if a.validation_fraction is None
                 else dict(validation_fraction=a.validation_fraction))
        data = prepare_data(a.dataset, seed=0, labeled_fraction=a.labeled_fraction, **split)
        Options.from_keywords(**options).check_for(data)
        if a.kd:
            temperature_to_inv_temp(options["temperature"])
        if a.guard is not None:
            DivergenceGuard(data.validation.X, data.validation.y, a.guard)
    except (TypeError, ValueError) as e:
        ap.error(str(e))


def _dataset(text):
    """``--dataset``: a bundled name or an existing file."""
    from golden.data import BUNDLED
    return text if text in BUNDLED else existing_file(text)


def main(argv=None):
    ap = ArgumentParser(prog="python -m benchmarks.ssl", description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=positive_int, default=5)
    ap.add_argument("--backend", default="trainer", choices=("trainer", "golden", "rtl-sim"))
    ap.add_argument("--labeled-fraction", type=float, default=0.1)
    ap.add_argument("--validation-fraction", type=float,
                    help="of the labeled set, carved out as validation (default 0.15)")
    ap.add_argument("--dataset", type=_dataset, metavar="NAME|PATH.npz",
                    help="digits (default), wine, breast-cancer, or an .npz")
    ap.add_argument("--no-gate", action="store_true",
                    help="train the SSL student whatever the gate says (measuring the gate)")
    ap.add_argument("--refit", action="store_true",
                    help="after the choice, finetune both students on all of L (validation "
                         "included)")
    ap.add_argument("--write-synthetic", metavar="PATH.npz",
                    help="write the generated data set (docs/pipeline.md) and exit")
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
    if a.write_synthetic is not None:
        synthetic(a.write_synthetic)
        return 0
    options = dict(stream_chunks=a.stream_chunks, kd=a.kd, guard_margin=a.guard)
    if a.no_gate:
        options["gate"] = False
    if a.refit:
        options["refit"] = True
    if a.standalone:
        options.update(standalone=True, compare_host_driven=False)
    if a.kd:
        options.update(temperature=1.0 if a.temperature is None else a.temperature,
                       kd_top=3 if a.kd_top is None else a.kd_top)
    _check(ap, a, options)
    t0 = time.perf_counter()
    rows = measure(range(a.seeds), a.backend, a.labeled_fraction, a.dataset, a.progress,
                   a.validation_fraction, **options)
    wall = time.perf_counter() - t0
    s = summary(rows)
    if a.json:
        extra = ("stream", "kd", "guard", "standalone")
        print(json.dumps(dict(backend=a.backend, summary=s, wall_seconds=wall,
                              options={k: v for k, v in options.items() if v},
                              runs=[{k: r[k] for k in ("seed", "total_cycles", "selected",
                                                       "class_counts", "delivered", "gate",
                                                       "choice", "teacher_fit", "refit") + _KEYS + extra
                                     if k in r}
                                    for r in rows])))
    else:
        print(_table(rows, s, a.backend, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
