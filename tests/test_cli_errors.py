"""Every command line answers a bad argument with one line ``error: …`` on stderr and exit status
2, before any expensive work (issue 30).

Each case runs the real command (``python -m …``) in a subprocess, in an empty temporary
directory, and checks: exit status 2, nothing on stdout, stderr exactly one line that starts with
``error:`` and says what was wrong (no usage block, no traceback, no warnings), and that the
command did no expensive work: under 5 s of CPU time (the process's own user and system time;
wall time on a loaded machine also counts other processes, so it only bounds a hang here).
"""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: CPU seconds a refusal may take (importing the command's modules: PyTorch, Amaranth).
CPU_LIMIT = 5.0
#: Wall seconds after which a refusal counts as a hang.
WALL_LIMIT = 60.0

#: ``(python -m arguments, text the error line contains)``; ``{tmp}`` is the temporary directory.
CASES = [
    # python -m firmware and its commands
    (["firmware"], "the following arguments are required: COMMAND"),
    (["firmware", "nosuch"], "argument COMMAND: invalid choice: 'nosuch'"),
    (["firmware", "demo", "--rows", "0"], "argument --rows: must be a positive integer, not '0'"),
    (["firmware", "demo", "-k", "many"], "argument -k: must be an integer, not 'many'"),
    (["firmware", "ssl", "--backend", "fpga"], "argument --backend: invalid choice: 'fpga'"),
    (["firmware", "ssl", "--bogus"], "unrecognized arguments: --bogus"),
    # python -m firmware.bringup (issue 30, item 12)
    (["firmware.bringup", "--sim", "--divisor", "0"],
     "argument --divisor: must be an integer of at least 4, not '0'"),
    (["firmware.bringup", "--port", "{tmp}/tty", "--board", "icebreaker", "--baud", "0"],
     "argument --baud: must be a positive integer, not '0'"),
    (["firmware.bringup", "--sim", "--baud", "9600"], "--baud is for a board (--port), not --sim"),
    (["firmware.bringup", "--sim", "--no-program"], "--no-program is for a board (--port), not "
                                                   "--sim"),
    (["firmware.bringup", "--port", "{tmp}/tty", "--board", "icebreaker", "--divisor", "8"],
     "--divisor is for --sim"),
    (["firmware.bringup", "--port", "{tmp}/tty", "--board", "icebreaker", "--no-program",
      "--build"], "--build has no effect with --no-program"),
    (["firmware.bringup", "--port", "{tmp}/tty", "--board", "icebreaker", "--bitstream",
      "{tmp}/top.bin"], "argument --bitstream: file '{tmp}/top.bin' does not exist"),
    (["firmware.bringup", "--port", "{tmp}/tty"], "--port needs --board"),
    (["firmware.bringup", "--board", "icebreaker"], "one of the arguments --port --sim is required"),
    (["firmware.bringup", "--sim", "--small", "--board", "icebreaker"],
     "--small and --board each choose the simulated SoC"),
    # python -m rtl.build
    (["rtl.build", "--board", "nosuch"], "argument --board: invalid choice: 'nosuch'"),
    (["rtl.build", "--board", "icebreaker", "--rows", "0"],
     "argument --rows: must be a positive integer, not '0'"),
    # python -m benchmarks.NAME (issue 30, item 11)
    (["benchmarks.build", "--fmax", "0"], "argument --fmax: must be a positive number, not '0'"),
    (["benchmarks.dma", "--rows", "9000"], "argument --rows: must be an integer in 1..8191"),
    (["benchmarks.dma", "--stall-rate", "1"], "argument --stall-rate: must be below 1, not 1.0"),
    (["benchmarks.firmware", "--steps", "0"],
     "argument --steps: must be a positive integer, not '0'"),
    (["benchmarks.fixed_training", "--seeds", "0"],
     "argument --seeds: must be a positive integer, not '0'"),
    (["benchmarks.gemm", "--k", "0"], "argument --k: must be a positive integer, not '0'"),
    (["benchmarks.hostlink", "--divisor", "2"],
     "argument --divisor: must be an integer of at least 4, not '2'"),
    (["benchmarks.hostlink", "--bursts", "1,40000"],
     "argument --bursts: each burst must be at most 32767, not 40000"),
    (["benchmarks.selection", "--samples", "100000"],
     "Teacher does not fit main memory (--samples 100000"),
    (["benchmarks.simspeed", "--pysim-tiles", "100"],
     "argument --pysim-tiles: must be at most --tiles (64), not 100"),
    (["benchmarks.simspeed", "--simulator", "verilator", "--cxxrtl-options=-O6"],
     "--cxxrtl-options is for --simulator cxxrtl"),
    (["benchmarks.softmax", "--classes", "1,x"],
     "argument --classes: must be comma-separated integers, not '1,x'"),
    (["benchmarks.ssl", "--seeds", "0"], "argument --seeds: must be a positive integer, not '0'"),
    (["benchmarks.ssl", "--temperature", "2"], "--temperature is for --kd"),
    (["benchmarks.ssl", "--dataset", "{tmp}/data.npz"],
     "argument --dataset: file '{tmp}/data.npz' does not exist"),
    (["benchmarks.ssl", "--labeled-fraction", "2"], "Labeled fraction must be in (0, 1), not 2.0"),
    (["benchmarks.ssl", "--kd", "--kd-top", "11"],
     "Distillation top classes must be at most 10, not 11"),
    (["benchmarks.congestion", "--build", ".", "--iterations", "0"],
     "argument --iterations: must be a positive integer, not '0'"),
    (["benchmarks.congestion"], "the following arguments are required: --build"),
    (["benchmarks.topk", "--k", "0"], "argument --k: must be a positive integer, not '0'"),
    (["benchmarks.topk", "--p", "11"], "Selector P must not exceed the number of classes (10)"),
    (["benchmarks.topk", "--samples", "70000"], "argument --samples: at most 65536"),
    (["benchmarks.unit_fmax", "--units", "seq,alu"],
     "argument --units: unknown unit 'alu'; choose from seq, "),
    (["benchmarks.unit_fmax", "--board", "icebreaker"],
     "argument --board: invalid choice: 'icebreaker'"),
    (["benchmarks.vector_units", "--lanes", "0"],
     "argument --lanes: must be a positive integer, not '0'"),
]


def _id(case):
    argv, _ = case
    return " ".join(argv).replace("{tmp}/", "")


def run_command(argv, cwd):
    """Run ``python -m argv…`` in ``cwd``; returns (status, stdout, stderr, CPU s, wall s)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=WALL_LIMIT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.returncode, proc.stdout, proc.stderr, cpu, wall


def check_refusal(argv, message, tmp_path):
    """The command refuses ``argv`` as the module docstring says, with ``message`` in its line."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status, out, err, cpu, wall = run_command(argv, tmp_path)
    lines = err.splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), \
        f"exit status {status}, stderr:\n{err}"
    assert message.replace("{tmp}", str(tmp_path)) in lines[0]
    assert out == ""
    assert cpu < CPU_LIMIT, f"{cpu:.1f} s of CPU time ({wall:.1f} s wall) before refusing"


@pytest.mark.parametrize("argv, message", CASES, ids=[_id(c) for c in CASES])
def test_bad_argument_is_one_error_line(argv, message, tmp_path):
    check_refusal(argv, message, tmp_path)


def test_every_command_line_has_a_case():
    # a new benchmark (or command) needs a bad-argument case here
    commands = {"firmware", "firmware.bringup", "rtl.build"}
    commands |= {f"benchmarks.{p.stem}" for p in (ROOT / "benchmarks").glob("*.py")
                 if p.stem != "__init__"}
    from firmware.__main__ import COMMANDS
    subcommands = {f"firmware {name}" for name in COMMANDS}
    covered = {argv[0] for argv, _ in CASES}
    covered |= {" ".join(argv[:2]) for argv, _ in CASES if argv[0] == "firmware" and len(argv) > 1}
    assert not (commands | subcommands) - covered


def test_board_port_that_cannot_be_opened(tmp_path):
    """``python -m firmware ssl --backend board --port`` a port that does not exist (issue 30,
    item 8): exit status 2 and one ``error:`` line naming the port, no traceback, before any
    training: the port is opened before the run is announced, so the error is the only line."""
    port = tmp_path / "ttyUSB9"
    status, out, err, cpu, wall = run_command(["firmware", "ssl", "--backend", "board", "--port",
                                               str(port), "--quiet"], tmp_path)
    assert status == 2 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: Cannot open serial port {str(port)!r}: No such file or directory"]
    assert err.splitlines() == errors
    assert cpu < CPU_LIMIT, f"{cpu:.1f} s of CPU time ({wall:.1f} s wall) before refusing"
