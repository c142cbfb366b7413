"""``python -m firmware ssl``: the command line of the semi-supervised pipeline
(:mod:`firmware.pipeline`: the recipe, its phases, ``docs/pipeline.md``).

Every option maps to a field of :class:`firmware.pipeline.Options`; the table goes to stdout,
progress and errors to stderr; exit status 0, 1 if ``--check`` found a difference, 2 on a bad
option or data set. The pipeline's public names are re-exported here for the scripts and tests
that drive it from Python.
"""

import json
import sys

from spec.soc import DEFAULT_SOC
from .pipeline import (CheckFailed, CheckedDevice, DEFAULT_RECIPE, Data, Options, Recipe,
                       board_clock_mhz, format_table, prepare_data, run_pipeline, soc_for,
                       write_report)

__all__ = ["add_arguments", "run", "Recipe", "DEFAULT_RECIPE", "Data", "prepare_data",
           "soc_for", "run_pipeline", "CheckedDevice", "CheckFailed", "board_clock_mhz"]


def add_arguments(parser):
    parser.add_argument("--backend", default="rtl-sim",
                        choices=("golden", "pysim", "rtl-sim", "board"),
                        help="where the device phases run (default %(default)s)")
    parser.add_argument("--port", help="serial port of the board backend")
    parser.add_argument("--cxxflags", help="C++ flags of the rtl-sim model, e.g. \"-O0\" "
                                           "(default: the compiled simulator's, -O2)")
    parser.add_argument("--dataset", metavar="PATH.npz",
                        help="an .npz with X (N×D floats in [0, 1] or uint8) and y (N labels "
                             "0..C-1); default scikit-learn's digits")
    parser.add_argument("--labeled-fraction", type=float, default=0.1,
                        help="labeled fraction of the train pool (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    parser.add_argument("--teacher-on-device", action="store_true",
                        help="train the teacher on the accelerator (default: offline in float)")
    parser.add_argument("--k", type=int, help="selected samples per class (default: the SoC's, "
                                               f"{DEFAULT_SOC.selector.k})")
    parser.add_argument("--p", type=int, help="classes each sample competes for (default: the "
                                               f"SoC's, {DEFAULT_SOC.selector.p})")
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="scale every step count (a quick run; default %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="co-run the golden model; stop at the first memory difference")
    parser.add_argument("--no-float", action="store_true", help="skip the float32 pipeline")
    parser.add_argument("--stream-chunks", type=int, metavar="N",
                        help="online selection: the unlabeled stream arrives in N chunks, the "
                             "selector keeps its state, a student after every chunk")
    parser.add_argument("--kd", action="store_true",
                        help="distillation: the student trains on the teacher's soft labels")
    parser.add_argument("--temperature", type=float,
                        help="--kd's softmax temperature (default 1: the best of 1, 2, 4 "
                             "measured, docs/pipeline.md)")
    parser.add_argument("--kd-top", type=int,
                        help="--kd: classes kept per soft label (default 3)")
    parser.add_argument("--guard", type=float, metavar="MARGIN", nargs="?", const=0.05,
                        help="divergence guard: roll a phase back if the validation accuracy "
                             "drops by more than MARGIN (default 0.05 when given)")
    parser.add_argument("--guard-samples", type=int, default=64,
                        help="the guard's validation slice: the first N labeled samples "
                             "(default %(default)s)")
    parser.add_argument("--standalone", action="store_true",
                        help="label, select, train and finetune as one program image run once "
                             "(then the same recipe host-driven, compared bit for bit)")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument("--report", metavar="DIR", help="write plots and results.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args):
    if not 0 < args.steps_scale <= 1:
        raise SystemExit(f"--steps-scale must be in (0, 1], not {args.steps_scale}")
    for flag, value in (("--temperature", args.temperature), ("--kd-top", args.kd_top)):
        if value is not None and not args.kd:
            print(f"error: {flag} is for --kd", file=sys.stderr)
            return 2
    try:
        data = prepare_data(args.dataset, seed=args.seed, labeled_fraction=args.labeled_fraction)
        soc = soc_for(data.num_classes, args.k, args.p)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    recipe = DEFAULT_RECIPE if args.steps_scale == 1 else DEFAULT_RECIPE.scaled(args.steps_scale)
    backend_options = {}
    if args.backend == "board":
        backend_options["port"] = args.port
    elif args.port:
        print("error: --port is for --backend board", file=sys.stderr)
        return 2
    if args.backend == "rtl-sim":
        if args.cxxflags:
            backend_options["cxxflags"] = tuple(args.cxxflags.split())
    elif args.cxxflags:
        print("error: --cxxflags is for --backend rtl-sim", file=sys.stderr)
        return 2
    print(f"Semi-supervised pipeline on {args.backend}: {data.name}, {len(data.labeled)} "
          f"labeled / {len(data.unlabeled)} unlabeled / {len(data.test)} test, "
          f"{data.num_classes} classes, seed {args.seed}", file=sys.stderr, flush=True)
    options = Options(
        backend=args.backend, soc=soc, recipe=recipe, seed=args.seed,
        teacher_on_device=args.teacher_on_device, check=args.check, progress=not args.quiet,
        float_pipeline=not args.no_float, stream_chunks=args.stream_chunks, kd=args.kd,
        temperature=1.0 if args.temperature is None else args.temperature,
        kd_top=3 if args.kd_top is None else args.kd_top, guard_margin=args.guard,
        guard_samples=args.guard_samples, standalone=args.standalone,
        backend_options=backend_options)
    try:
        res = run_pipeline(data, options)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    if args.report:
        for path in write_report(res, args.report):
            print(f"wrote {path}", file=sys.stderr)
    return 0
