"""``python -m firmware ssl``: the command line of the semi-supervised pipeline
(:mod:`firmware.pipeline`: the recipe, its phases, ``docs/pipeline.md``).

Every option maps to a field of :class:`firmware.pipeline.Options`; the table goes to stdout,
progress and errors to stderr; exit status 0, 1 if ``--check`` found a difference or an output
could not be written, 2 on a bad option or data set. Every argument, the data set, every
network the run compiles and the output paths are checked before the run starts
(:func:`check_arguments`, :meth:`firmware.pipeline.Options.check_for`; ``docs/pipeline.md``,
"Errors"); the outputs are written atomically, each whether or not another failed. The
pipeline's public names are re-exported here for the scripts and tests that drive it from
Python; the pipeline (and PyTorch) is imported once the arguments are checked, so that a bad
argument is answered at once.
"""

import argparse
import importlib.util
import os
import sys

from spec.cli import positive_int, seed_int
from spec.soc import DEFAULT_SOC

#: The pipeline's names re-exported here (imported on first use).
_PIPELINE = ("Recipe", "DEFAULT_RECIPE", "Data", "prepare_data", "soc_for", "run_pipeline",
             "CheckedDevice", "CheckFailed", "board_clock_mhz")

__all__ = ["add_arguments", "check_arguments", "run", "write_outputs", *_PIPELINE]


def __getattr__(name):
    if name in _PIPELINE:
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def steps_scale(text):
    """``--steps-scale``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not 0 < value <= 1:                                          # also NaN
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text!r}")
    return value


def add_arguments(parser):
    parser.add_argument("--backend", default="rtl-sim",
                        choices=("golden", "pysim", "rtl-sim", "board"),
                        help="where the device phases run (default %(default)s)")
    parser.add_argument("--port", help="serial port of the board backend")
    parser.add_argument("--cxxflags", metavar="FLAGS",
                        help="C++ flags of the rtl-sim model, given with '=' since they start "
                             "with '-': --cxxflags=-O0, --cxxflags='-O1 -g' (default: the "
                             "compiled simulator's, -O2)")
    parser.add_argument("--dataset", metavar="NAME|PATH.npz",
                        help="digits (default), wine or breast-cancer (scikit-learn's bundled "
                             "sets), or an .npz with X (N×D floats in [0, 1] or uint8) and y "
                             "(N labels 0..C-1)")
    parser.add_argument("--labeled-fraction", type=float, default=0.1,
                        help="labeled fraction of the train pool (default %(default)s)")
    parser.add_argument("--validation-fraction", type=float, default=None,
                        help="fraction of the labeled samples carved out as the validation set "
                             "of the gate, the choice and the guard (default 0.15)")
    parser.add_argument("--no-gate", action="store_true",
                        help="train the SSL student even if the teacher does not beat the "
                             "supervised student on validation (the decision is still reported)")
    parser.add_argument("--seed", type=seed_int, default=0,
                        help="seed, 0..2**32-1 (default %(default)s)")
    parser.add_argument("--teacher-on-device", action="store_true",
                        help="train the teacher on the accelerator (default: offline in float)")
    parser.add_argument("--k", type=positive_int,
                        help="selected samples per class (default: the SoC's, "
                             f"{DEFAULT_SOC.selector.k}; at most what main memory holds)")
    parser.add_argument("--p", type=positive_int,
                        help="classes each sample competes for, at most the classes (default: "
                             f"the SoC's, {DEFAULT_SOC.selector.p})")
    parser.add_argument("--steps-scale", type=steps_scale, default=1.0,
                        help="scale every step count, in (0, 1] (a quick run; default "
                             "%(default)s)")
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
    parser.add_argument("--kd-top", type=positive_int,
                        help="--kd: classes kept per soft label (default 3)")
    parser.add_argument("--guard", type=float, metavar="MARGIN", nargs="?", const=0.05,
                        help="divergence guard: roll a phase back if the validation accuracy "
                             "drops by more than MARGIN (default 0.05 when given)")
    parser.add_argument("--guard-samples", type=positive_int, metavar="N",
                        help="--guard's validation slice: the first N labeled samples "
                             "(default 64, or all of them if fewer)")
    parser.add_argument("--standalone", action="store_true",
                        help="label, select, train and finetune as one program image run once "
                             "(then the same recipe host-driven, compared bit for bit)")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument("--report", metavar="DIR", help="write plots and results.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


#: Options that act only with another: ``(option, attribute, enabled(args), enabling option)``.
_NEEDS = (("--temperature", "temperature", lambda a: a.kd, "--kd"),
          ("--kd-top", "kd_top", lambda a: a.kd, "--kd"),
          ("--guard-samples", "guard_samples", lambda a: a.guard is not None, "--guard"),
          ("--port", "port", lambda a: a.backend == "board", "--backend board"),
          ("--cxxflags", "cxxflags", lambda a: a.backend == "rtl-sim", "--backend rtl-sim"))


def check_arguments(args):
    """The command line's own checks, before the data is loaded (argparse has checked each
    value's type and range): no option without the one it acts with (:data:`_NEEDS`), the
    board's port, output paths the run can write. The data set and every option against it
    are checked next (:func:`~firmware.pipeline.prepare_data`,
    :meth:`~firmware.pipeline.Options.check_for`).

    Raises
    ------
    ValueError
        Naming the option.
    """
    for flag, name, enabled, needs in _NEEDS:
        if getattr(args, name) not in (None, "") and not enabled(args):
            raise ValueError(f"{flag} is for {needs}")
    if args.backend == "board" and not args.port:
        raise ValueError("--backend board needs --port")
    if args.json is not None:
        _check_output(args.json, "--json", directory=False)
    if args.report is not None:
        _check_output(args.report, "--report", directory=True)
        if importlib.util.find_spec("matplotlib") is None:
            raise ValueError("--report needs matplotlib (pip install matplotlib)")


def _check_output(path, flag, directory):
    """Refuse an output path the run could not write: a directory (a file for ``--report``),
    something else than a regular file, a parent directory that does not exist or is not
    writable."""
    if os.path.exists(path):
        if directory and not os.path.isdir(path):
            raise ValueError(f"{flag} {path}: not a directory")
        if not directory and os.path.isdir(path):
            raise ValueError(f"{flag} {path}: is a directory")
        if not directory and not os.path.isfile(path):
            raise ValueError(f"{flag} {path}: not a regular file")
    where = path if directory and os.path.isdir(path) else os.path.dirname(path) or "."
    if not os.path.isdir(where):
        raise ValueError(f"{flag} {path}: directory {where} does not exist")
    if not os.access(where, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: directory {where} is not writable")


def write_outputs(res, json_path=None, report_dir=None):
    """Write ``--json`` and ``--report`` (each atomically, each whether or not the other
    failed); a line on stderr per file written or failed. Returns the exit status: 0, or 1 if
    something could not be written."""
    from .pipeline import ReportError, write_json, write_report
    failed = []
    if json_path is not None:
        try:
            write_json(res, json_path)
        except OSError as e:
            failed.append((json_path, e))
    if report_dir is not None:
        try:
            written = write_report(res, report_dir)
        except ReportError as e:
            written = e.written
            failed += e.failed
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    for path, e in failed:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        print(f"error: cannot write {path}: {reason}", file=sys.stderr)
    return 1 if failed else 0


def run(args):
    try:
        check_arguments(args)
        from .pipeline import DEFAULT_RECIPE, Options, prepare_data, soc_for
        split = ({} if args.validation_fraction is None
                 else dict(validation_fraction=args.validation_fraction))
        data = prepare_data(args.dataset, seed=args.seed, labeled_fraction=args.labeled_fraction,
                            **split)
        soc = soc_for(data.num_classes, args.k, args.p)
        recipe = (DEFAULT_RECIPE if args.steps_scale == 1
                  else DEFAULT_RECIPE.scaled(args.steps_scale))
        backend_options = {}
        if args.backend == "board":
            backend_options["port"] = args.port
        if args.backend == "rtl-sim" and args.cxxflags:
            backend_options["cxxflags"] = tuple(args.cxxflags.split())
        options = Options(
            backend=args.backend, soc=soc, recipe=recipe, seed=args.seed,
            teacher_on_device=args.teacher_on_device, check=args.check,
            progress=not args.quiet, float_pipeline=not args.no_float,
            stream_chunks=args.stream_chunks, kd=args.kd, temperature=args.temperature,
            kd_top=args.kd_top, guard_margin=args.guard, guard_samples=args.guard_samples,
            standalone=args.standalone, gate=not args.no_gate,
            backend_options=backend_options).check_for(data)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    device = None
    if args.backend == "board":
        # open the board's port before announcing the run: a port that cannot be opened is the
        # one line the command prints
        from dataclasses import replace
        from .accelerator import BACKENDS
        from .transport import SerialPortError
        try:
            device = BACKENDS["board"](options.soc, **backend_options)
        except SerialPortError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        options = replace(options, device=device)
    print(f"Semi-supervised pipeline on {args.backend}: {data.name}, {len(data.labeled)} "
          f"labeled + {len(data.validation)} validation / {len(data.unlabeled)} unlabeled / "
          f"{len(data.test)} test, "
          f"{data.num_classes} classes, seed {args.seed}", file=sys.stderr, flush=True)
    from .pipeline import CheckFailed, format_table, run_pipeline
    try:
        res = run_pipeline(data, options)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if device is not None:
            device.close()
    print(format_table(res))
    return write_outputs(res, args.json, args.report)
