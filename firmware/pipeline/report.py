"""The pipeline's report: the final table (:func:`format_table`), the plots and
``results.json`` (:func:`write_report`); cycles projected to time at the board's clock
(:func:`board_clock_mhz`)."""

import json

import numpy as np

__all__ = ["BOARD", "board_clock_mhz", "format_table", "write_report"]

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
    gain = 100 * (res["ssl_student_accuracy"] - res["supervised_student_accuracy"])
    vs_float = (100 * (res["ssl_student_accuracy"] - res["float_ssl_student_accuracy"])
                if "float_ssl_student_accuracy" in res else None)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    lines += [
        "",
        f"teacher {res['teacher_accuracy']:.1%}   SSL student {res['ssl_student_accuracy']:.1%}   "
        f"supervised student {res['supervised_student_accuracy']:.1%}"
        + (f"   float32 SSL student {res['float_ssl_student_accuracy']:.1%}"
           if "float_ssl_student_accuracy" in res else ""),
        f"SSL gain over supervised: {gain:+.1f} points"
        + (f"; vs float32: {vs_float:+.1f} points" if vs_float is not None else ""),
        f"{res['dataset']}: {res['labeled']} labeled, {res['unlabeled']} unlabeled, "
        f"{res['test']} test; {res['array']} array on {res['backend']}; "
        f"wall {res['wall_seconds']:.1f} s"
        + (f"; --check: {res['checked_runs']} programs equal to golden" if res["check"] else ""),
    ]
    return "\n".join(lines)


def write_report(res, directory):
    """Plots (matplotlib, Agg): accuracy per phase and per epoch, the selected set's class
    balance, the array's utilization per phase. Returns the files written."""
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(directory, exist_ok=True)
    files = []

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
    files.append(os.path.join(directory, "accuracy.png"))
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(range(res["classes"]), res["class_counts"])
    ax.axhline(res["selector"]["k"], color="k", ls="--", lw=1, label=f"K = {res['selector']['k']}")
    ax.set_xlabel("class")
    ax.set_ylabel("selected samples")
    ax.set_title(f"Selected set: {res['selected']} samples, precision "
                 f"{res['pseudo_label_precision']:.1%}")
    ax.legend()
    fig.tight_layout()
    files.append(os.path.join(directory, "class_balance.png"))
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

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
    files.append(os.path.join(directory, "utilization.png"))
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    files.append(os.path.join(directory, "results.json"))
    return files
