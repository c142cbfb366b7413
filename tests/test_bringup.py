"""``python -m firmware.bringup``: every step against the simulated SoC through its UART pins,
and the board path's failures (no bitstream, no programmer) reported with what to check."""

import json

import numpy as np
import pytest

from firmware import bringup
from firmware.bringup import Bringup, main, memory_patterns, program_command, find_bitstream
from platforms import get_board

pytestmark = pytest.mark.xdist_group("cxxsim")

STEPS = ["bitstream", "program", "link", "csr", "memory", "array", "train"]


def _json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_sim_small_passes_every_step(capsys):
    assert main(["--sim", "--small", "--train", "--json"]) == 0
    report = _json(capsys)
    assert report["passed"] and report["target"] == "sim"
    assert [s["name"] for s in report["steps"]] == STEPS
    assert all(s["status"] == "PASS" for s in report["steps"]), report
    memory = next(s for s in report["steps"] if s["name"] == "memory")
    assert "2048 words x 3 patterns (address, complement, random)" in memory["detail"]


def test_sim_small_readable_output(capsys):
    assert main(["--sim", "--small", "--patterns", "1"]) == 0
    out = capsys.readouterr().out
    assert "2048 words x 1 pattern (address)" in out
    for step in STEPS[:-1]:
        assert f"[PASS] {step}" in out
    assert "ALL STEPS PASSED" in out


@pytest.mark.slow
def test_sim_default_configuration_passes_every_step(capsys):
    """The default SoC (8x8, 2**18 words): the memory step's one pattern moves 1 MB over the
    simulated UART, about 44 M cycles (the compiled model's build and that run take long)."""
    assert main(["--sim", "--patterns", "1", "--json"]) == 0
    report = _json(capsys)
    assert all(s["status"] == "PASS" for s in report["steps"]), report


def test_memory_patterns():
    n = 3 << 16
    pats = dict(memory_patterns(n))
    addr = pats["address"]
    assert addr.dtype == np.uint16 and addr.size == n
    # words 64 Ki apart differ: an aliased high address line shows
    assert (addr[:1 << 16] != addr[1 << 16:2 << 16]).all()
    assert (addr[1 << 16:2 << 16] != addr[2 << 16:]).all()
    assert ((addr ^ pats["complement"]) == 0xFFFF).all()
    assert not np.array_equal(pats["random"], dict(memory_patterns(n, seed=2))["random"])


class _StuckBitLink:
    """A link to a memory whose data bit 5 is stuck at 1 (above word 100)."""

    def __init__(self, n):
        self.mem = np.zeros(n, dtype=np.int64)

    def write_words(self, addr, words):
        self.mem[addr:addr + len(words)] = words

    def read_words(self, addr, n):
        out = self.mem[addr:addr + n].copy()
        out[100:] |= 1 << 5
        return out.tolist()

    def now(self):
        return 1.0


def test_memory_step_names_the_bad_words_and_bits():
    soc = bringup.SMALL_SOC
    b = Bringup(soc, sim=True, say=None)
    b.link = _StuckBitLink(soc.mem_words)
    message = (r"^960 of 2048 words wrong with the address pattern \(0x80: wrote 0x0080 read "
               r"0x00a0, .*; differing bits 0x0020\)$")
    with pytest.raises(bringup.StepFailed, match=message) as e:
        b.step_memory()
    assert "data line" in e.value.hint
    with pytest.raises(ValueError, match=r"^Memory patterns must be 1..3, not 0$"):
        Bringup(soc, sim=True, patterns=0)


def test_missing_bitstream_says_how_to_build(tmp_path, capsys):
    board = get_board("ulx3s-85f")
    b = Bringup(board.soc, board=board, port="loop://", bitstream=tmp_path / "none.bit")
    results = b.run()
    assert [r.status for r in results] == ["FAIL"] + ["SKIP"] * 5
    assert "no bitstream at" in results[0].detail
    assert "python -m rtl.build --board ulx3s-85f --top soc" in results[0].hint
    out = capsys.readouterr().out
    assert "[FAIL] bitstream" in out and "check: build it" in out
    assert not b.passed


def test_default_bitstream_paths():
    assert str(find_bitstream(get_board("ulx3s-85f"))) == "build/ulx3s-85f-soc/top.bit"
    assert str(find_bitstream(get_board("icebreaker"))) == "build/icebreaker-soc/top.bin"


def test_programmer_override(tmp_path, monkeypatch):
    ulx3s, ice = get_board("ulx3s-85f"), get_board("icebreaker")
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.delenv("ICEPROG", raising=False)
    assert program_command(ulx3s, "t.bit") == ["openFPGALoader", "-b", "ulx3s", "-m", "t.bit"]
    assert program_command(ice, "t.bin") == ["iceprog", "t.bin"]
    monkeypatch.setenv("ICEPROG", "/opt/iceprog")
    assert program_command(ice, "t.bin") == ["/opt/iceprog", "t.bin"]

    bit = tmp_path / "top.bit"
    bit.write_bytes(b"\0" * 16)
    monkeypatch.setenv("OPENFPGALOADER", str(tmp_path / "no-such-loader"))
    b = Bringup(ulx3s.soc, board=ulx3s, port="loop://", bitstream=bit, say=None)
    results = b.run()
    assert [r.status for r in results[:3]] == ["PASS", "FAIL", "SKIP"]
    assert "not found" in results[1].detail and "OPENFPGALOADER" in results[1].hint

    log = tmp_path / "args"
    fake = tmp_path / "fake-loader"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {log}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("OPENFPGALOADER", str(fake))
    monkeypatch.setattr(bringup.time, "sleep", lambda s: None)
    b = Bringup(ulx3s.soc, board=ulx3s, port="loop://", bitstream=bit, say=None)
    b.steps = lambda: Bringup.steps(b)[:2]             # bitstream and program only
    results = b.run()
    assert [r.status for r in results] == ["PASS", "PASS"]
    assert log.read_text().split() == ["-b", "ulx3s", "-m", str(bit)]


def test_no_answer_on_the_port_fails_the_link_step(tmp_path):
    """pyserial's loop:// echoes the requests: no response, so the link step fails with what to
    check; the steps after it are skipped."""
    board = get_board("icebreaker")
    bit = tmp_path / "top.bin"
    bit.write_bytes(b"\0")
    b = Bringup(board.soc, board=board, port="loop://", bitstream=bit, program=False, say=None,
                link_timeout=0.05)
    results = b.run()
    assert [r.status for r in results] == ["PASS", "PASS", "FAIL", "SKIP", "SKIP", "SKIP"]
    assert "HostLinkTimeout" in results[2].detail and "baud rate" in results[2].hint


def test_cli_errors(capsys):
    with pytest.raises(SystemExit):
        main(["--port", "/dev/null"])                   # --port needs --board
    with pytest.raises(SystemExit):
        main(["--board", "icebreaker"])                 # neither --port nor --sim
    with pytest.raises(SystemExit):
        main(["--port", "/dev/null", "--board", "icebreaker", "--small"])


def test_no_program_needs_no_bitstream(tmp_path, monkeypatch):
    """``--no-program``: the board is already configured, so no bitstream is looked for (there is
    none under ``build/`` here: the step used to fail on it and skip every other step)."""
    monkeypatch.chdir(tmp_path)
    board = get_board("icebreaker")
    b = Bringup(board.soc, board=board, port="loop://", program=False, say=None,
                link_timeout=0.05)
    b.steps = lambda: Bringup.steps(b)[:2]             # bitstream and program only
    results = b.run()
    assert [(r.name, r.status) for r in results] == [("bitstream", "PASS"), ("program", "PASS")]
    assert results[0].detail == "not needed (--no-program: the board is already configured)"
    assert not (tmp_path / "build").exists()


def test_bad_baud_and_divisor_are_refused_before_any_step():
    board = get_board("icebreaker")
    with pytest.raises(ValueError, match=r"^Baud rate must be a positive integer, not 0$"):
        Bringup(board.soc, board=board, port="loop://", baud=0)
    with pytest.raises(ValueError, match=r"^UART divisor must be at least 4, not 0$"):
        Bringup(bringup.SMALL_SOC, sim=True, divisor=0)


@pytest.mark.parametrize("argv, message", [
    (["--sim", "--divisor", "0"], "argument --divisor: must be an integer of at least 4, not '0'"),
    (["--port", "loop://", "--board", "icebreaker", "--baud", "0"],
     "argument --baud: must be a positive integer, not '0'"),
    (["--port", "loop://", "--board", "icebreaker", "--no-program", "--bitstream", "{bit}"],
     "--bitstream has no effect with --no-program (no bitstream is loaded)"),
    (["--sim", "--bitstream", "{bit}"], "--bitstream is for a board (--port), not --sim"),
    (["--port", "loop://", "--board", "icebreaker", "--simulator", "cxxrtl"],
     "--simulator is for --sim"),
])
def test_cli_refuses_in_one_line(argv, message, tmp_path, capsys):
    bit = tmp_path / "top.bin"
    bit.write_bytes(b"\0")
    with pytest.raises(SystemExit) as e:
        main([a.format(bit=bit) for a in argv])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: {message}\n")
