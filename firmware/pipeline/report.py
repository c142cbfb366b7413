"""The pipeline's report: the final table (:func:`format_table`), the plots and
``results.json`` (:func:`write_report`), every file written atomically (:func:`write_atomic`,
:func:`write_json`); cycles projected to time at the board's clock (:func:`board_clock_mhz`)."""

import json
import os
import tempfile

import numpy as np

__all__ = ["BOARD", "board_clock_mhz", "format_table", "write_atomic", "write_json",
           "ReportError", "write_report"]

#: The board whose clock projects cycles to time.
BOARD = "ulx3s-85f"


def board_clock_mhz(board=BOARD):
    """The board's target clock (``platforms.boards``), MHz."""
    from platforms.boards import get_board
    return float(get_board(board).freq_mhz)


def format_table(res):
    """The final table (phase, samples, cycles, projected time, accuracy, precision, balance)."""
    clock = res["clock_mhz"]
    head = ("phase", "samples", "cycles", f"time @{clock:g} MHz", "accuracy",
            "pseudo-label prec.", "class balance")
    rows = []
    for r in res["phases"]:
        counts = r.get("class_counts")
        balance = (f"{min(counts)}..{max(counts)} per class" if counts else "")
        prec = f"{r['precision']:.1%}" if "precision" in r else ""
        accs = f"{r['accuracy']:.1%}" if "accuracy" in r else ""
        t = r["cycles"] / (clock * 1e6)
        rows.append((r["phase"], str(r["samples"]), f"{r['cycles']:,}",
                     f"{t * 1e3:.1f} ms" if r["cycles"] else "host", accs, prec, balance))
    rows.append(("total (device)", "", f"{res['total_cycles']:,}",
                 f"{res['projected_seconds'] * 1e3:.1f} ms", "", "", ""))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    lines += [
        "",
        *summary_lines(res),
        f"{res['dataset']}: {res['labeled']} labeled + {res['validation']} validation, "
        f"{res['unlabeled']} unlabeled, "
        f"{res['test']} test; {res['array']} array on {res['backend']}; "
        f"wall {res['wall_seconds']:.1f} s"
        + (f"; --check: {res['checked_runs']} programs equal to golden" if res["check"] else ""),
    ]
    return "\n".join(lines)


def _pct(v):
    return "—" if v is None else f"{v:.1%}"


def summary_lines(res):
    """The lines under the table: the students, the gate, the delivered student and why."""
    g, ch, f = res["gate"], res["choice"], res.get("teacher_fit") or {}
    ssl, sup = res["ssl_student_accuracy"], res["supervised_student_accuracy"]
    cv = (f"   (teacher {f['folds']}-fold CV on L: {f['cv_accuracy']:.1%})"
          if f.get("folds") else "")
    lines = [f"test accuracy: teacher {_pct(res['teacher_accuracy'])}   SSL student {_pct(ssl)}"
             f"   supervised student {_pct(sup)}"
             + (f"   float32 SSL student {_pct(res['float_ssl_student_accuracy'])}"
                if "float_ssl_student_accuracy" in res else "") + cv,
             f"gate ({g['validation_samples']} validation samples, on the device): teacher "
             f"{g['teacher_correct']}, supervised {g['supervised_correct']} correct: "
             f"{g['decision']}",
             f"DELIVERED: the {ch['delivered']} student, test "
             f"{_pct(res['delivered_student_accuracy'])} ({ch['reason']})"]
    gain = 100 * (res["delivered_student_accuracy"] - sup)
    line = f"delivered gain over supervised: {gain:+.1f} points"
    if ssl is not None and "float_ssl_student_accuracy" in res:
        line += f"; SSL vs float32: {100 * (ssl - res['float_ssl_student_accuracy']):+.1f} points"
    return lines + [line]


def write_atomic(path, write, binary=False):
    """Write ``path`` atomically: ``write(file)`` fills a temporary file in the same directory,
    which then replaces ``path`` (:func:`os.replace`): ``path`` is either the whole new file or,
    if anything fails, left as it was. The new file gets the old one's permissions (a new one:
    the umask's).

    Raises
    ------
    OSError
        If the file cannot be written (the temporary file is removed).
    """
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                               prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(res, path):
    """``res`` as JSON at ``path``, atomically (:func:`write_atomic`)."""
    text = json.dumps(res, indent=1)
    write_atomic(path, lambda f: f.write(text))


class ReportError(OSError):
    """Some of the report's files could not be written: :attr:`failed` (``[(path, error)]``),
    :attr:`written` (the paths that were)."""

    def __init__(self, failed, written):
        self.failed, self.written = failed, written
        super().__init__("; ".join(f"cannot write {p}: {_reason(e)}" for p, e in failed))


def _reason(e):
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def write_report(res, directory):
    """Plots (matplotlib, Agg): accuracy per phase and per epoch, the selected set's class
    balance, the array's utilization per phase; and ``results.json``. Every file is written
    atomically (:func:`write_atomic`), and one that fails does not stop the others.

    Returns
    -------
    list of str
        The files written.

    Raises
    ------
    ReportError
        After writing what it could, if some file could not be written (or ``directory``
        made).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise ReportError([(directory, e)], []) from None
    files, failed = [], []

    def save(fig, name):
        path = os.path.join(directory, name)
        try:
            write_atomic(path, lambda f: fig.savefig(f, dpi=100, format="png"), binary=True)
            files.append(path)
        except OSError as e:
            failed.append((path, e))
        plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, pts in res["curves"].items():
        if pts:
            x, y = zip(*pts)
            a1.plot(x, [100 * v for v in y], marker=".", label=f"{name} student")
    n_s = next((r.get("steps", 0) for r in res["phases"]
                if r["phase"].startswith("student-train")), 0)
    a1.axvline(n_s, color="grey", ls=":", lw=1)
    if "float_ssl_student_accuracy" in res:
        a1.axhline(100 * res["float_ssl_student_accuracy"], color="k", ls="--", lw=1,
                   label="float32 SSL student")
    a1.axhline(100 * res["teacher_accuracy"], color="r", ls="--", lw=1, label="teacher")
    a1.set_xlabel("SGD steps")
    a1.set_ylabel("test accuracy (%)")
    a1.set_title("Accuracy per epoch (on the device)")
    a1.legend(fontsize=8)
    phases = [r for r in res["phases"] if "accuracy" in r]
    a2.bar([r["phase"] for r in phases], [100 * r["accuracy"] for r in phases])
    a2.set_ylim(max(0, min(100 * r["accuracy"] for r in phases) - 10), 100)
    a2.set_ylabel("test accuracy (%)")
    a2.set_title("Accuracy per phase")
    a2.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    save(fig, "accuracy.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(range(res["classes"]), res["class_counts"] or [0] * res["classes"])
    ax.axhline(res["selector"]["k"], color="k", ls="--", lw=1, label=f"K = {res['selector']['k']}")
    ax.set_xlabel("class")
    ax.set_ylabel("selected samples")
    ax.set_title(f"Selected set: {res['selected']} samples, precision "
                 f"{_pct(res['pseudo_label_precision'])}" if res["selected"] is not None else
                 "No selection: the gate refused the teacher's labels")
    ax.legend()
    fig.tight_layout()
    save(fig, "class_balance.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    dev = [r for r in res["phases"] if r["cycles"]]
    units = ("dma", "gemm", "vec", "sel")
    x = np.arange(len(dev))
    for i, u in enumerate(units):
        ax.bar(x + (i - 1.5) * 0.2, [100 * r["busy"][u] / r["cycles"] for r in dev], 0.2,
               label=u.upper())
    ax.set_xticks(x, [r["phase"] for r in dev], rotation=20)
    ax.set_ylabel("busy (% of the phase's cycles)")
    ax.set_title("Array (GEMM) and unit utilization per phase")
    ax.legend()
    fig.tight_layout()
    save(fig, "utilization.png")
    path = os.path.join(directory, "results.json")
    try:
        write_json(res, path)
        files.append(path)
    except OSError as e:
        failed.append((path, e))
    if failed:
        raise ReportError(failed, files)
    return files
