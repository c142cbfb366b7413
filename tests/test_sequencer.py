"""The sequencer alone (no units): scalar programs, branches, LDW/STW and errors, cycle-exact
against the golden machine. Whole-SoC programs are tested in tests/test_soc.py."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from spec import isa
from spec.isa import Op, Cond, Error
from spec.soc import SocConfig
from spec.timing import memop_cycles, word_bus_latency
from golden.machine import Machine
from rtl.sequencer import Sequencer
from firmware.asm import Assembler
from tests.simutil import run_sim

SOC = SocConfig(mem_words=1024)


class _Harness(wiring.Component):
    """Sequencer + a read-only instruction memory of 128-bit lines (test harness)."""

    def __init__(self, lines):
        self.seq = Sequencer(SOC)
        self._lines = lines
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = self.seq
        m.submodules.imem = imem = Memory(shape=isa.INSN_BITS, depth=SOC.mem_words // 8,
                                          init=self._lines)
        rd = imem.read_port()
        m.d.comb += [rd.addr.eq(self.seq.f_addr), self.seq.f_data.eq(rd.data)]
        return m


def run_rtl(words, data, entry=0, max_cycles=5000):
    """Run on the RTL; `data` is a dict word-address → value for LDW/STW."""
    mem = list(words) + [0] * (SOC.mem_words - len(words))
    for a, v in data.items():
        mem[a] = v
    lines = [isa.from_words(mem[i:i + 8]) for i in range(0, SOC.mem_words, 8)]
    dut = _Harness(lines)
    seq = dut.seq
    out = {}

    async def tb(ctx):
        ctx.set(seq.entry, entry)
        ctx.set(seq.start, 1)
        await ctx.tick()
        ctx.set(seq.start, 0)
        mem_wait = 0
        for _ in range(max_cycles):
            if ctx.get(seq.done):
                break
            if ctx.get(seq.m_req):
                mem_wait += 1
                # an LDW/STW's two bus transfers as in the SoC: main memory behind the arbiter
                # and the word masters' skid buffer
                if mem_wait == memop_cycles(word_bus_latency(SOC.mem_latency)):
                    a = ctx.get(seq.m_addr)
                    if ctx.get(seq.m_we):
                        v = ctx.get(seq.m_wdata)
                        mem[a], mem[a + 1] = v & 0xFFFF, v >> 16
                    else:
                        ctx.set(seq.m_rdata, mem[a] | (mem[a + 1] << 16))
                    ctx.set(seq.m_ack, 1)
                    mem_wait = 0
            await ctx.tick()
            ctx.set(seq.m_ack, 0)
        else:
            raise AssertionError("sequencer did not finish")
        out.update(error=ctx.get(seq.error), pc=ctx.get(seq.pc), cycles=ctx.get(seq.cycles),
                   insns=ctx.get(seq.insns), stall=ctx.get(seq.stall),
                   regs=[ctx.get(getattr(seq, "ir")) and 0] and None)

    run_sim(dut, tb)
    out["mem"] = mem
    return out


def run_golden(words, data, entry=0):
    m = Machine(SOC)
    m.write_words(0, words)
    for a, v in data.items():
        m.mem[a] = v
    r = m.run(entry=entry)
    return m, r


def check_same(words, data=None, entry=0, seed=None):
    data = data or {}
    gm, gr = run_golden(words, data, entry)
    rt = run_rtl(words, data, entry)
    ctx = f" (seed {seed})" if seed is not None else ""
    assert rt["error"] == gr.error, f"error{ctx}"
    assert rt["pc"] == gr.pc, f"pc{ctx}"
    assert rt["cycles"] == gr.cycles, f"cycles{ctx}: rtl {rt['cycles']} golden {gr.cycles}"
    assert rt["insns"] == gr.instructions, f"insns{ctx}"
    assert rt["stall"] == gm.counters["stall"], f"stall{ctx}"
    assert rt["mem"] == gm.mem.tolist(), f"memory{ctx}"
    return gm, gr


def test_loop_with_stores():
    p = Assembler()
    p.seti(rd=1, imm=4)
    p.seti(rd=2, imm=600)
    p.label("loop")
    p.stw(rt=1, rs=2, imm=0)
    p.addi(rd=2, rs=2, imm=2)
    p.addi(rd=1, rs=1, imm=-1)
    p.br(cond=Cond.NE, rs1=1, rs2=0, target="loop")
    p.ldw(rd=3, rs=0, imm=602)
    p.stw(rt=3, rs=0, imm=700)
    p.halt()
    gm, gr = check_same(p.words())
    assert gr.error == Error.NONE and gm.mem[700] == 3


def random_scalar_program(rng, n=12):
    """A random straight-line/looping scalar program over r1..r7 that terminates."""
    p = Assembler()
    p.seti(rd=7, imm=rng.randrange(1, 4))          # loop counter
    p.label("top")
    for _ in range(n):
        kind = rng.choice(["seti", "addi", "add", "sub", "stw", "ldw", "br", "fence", "seed"])
        rd = rng.randrange(0, 7)
        if kind == "seti":
            p.seti(rd=rd, imm=rng.randrange(1 << 32))
        elif kind == "addi":
            p.addi(rd=rd, rs=rng.randrange(7), imm=rng.randrange(-(1 << 31), 1 << 31))
        elif kind in ("add", "sub"):
            p.emit(Op[kind.upper()], rd=rd, rs1=rng.randrange(7), rs2=rng.randrange(7))
        elif kind == "stw":
            p.stw(rt=rng.randrange(8), rs=0, imm=rng.randrange(800, 1000, 2))
        elif kind == "ldw":
            p.ldw(rd=rd, rs=0, imm=rng.randrange(800, 1000, 2))
        elif kind == "br":
            lbl = f"skip{len(p)}"
            p.br(cond=rng.randrange(7), rs1=rng.randrange(7), rs2=rng.randrange(7), target=lbl)
            p.addi(rd=rd, rs=rd, imm=1)
            p.label(lbl)
        elif kind == "fence":
            p.fence(mask=rng.randrange(8))
        else:
            p.seed(seed=rng.randrange(1, 1 << 32))
    p.addi(rd=7, rs=7, imm=-1)
    p.br(cond=Cond.NE, rs1=7, rs2=0, target="top")
    p.halt()
    return p.words()


@pytest.mark.parametrize("seed", range(6))
def test_random_scalar_programs(seed):
    rng = random.Random(seed)
    data = {a: rng.randrange(1 << 16) for a in range(800, 1000)}
    check_same(random_scalar_program(rng), data, seed=seed)


@pytest.mark.parametrize("bad", [
    [0] * 8,                                                      # opcode 0
    isa.to_words(0x7F),                                           # unknown opcode
    isa.to_words(isa.encode(Op.HALT) | (1 << 127)),               # unused bit
    isa.to_words(isa.encode(Op.SEED, seed=0)),                    # bad field
    isa.to_words(isa.encode(Op.BR, cond=7, rs1=0, rs2=0, target=0)),
    isa.to_words(isa.encode(Op.BR, cond=0, rs1=0, rs2=0, target=5)),
    isa.to_words(isa.encode(Op.LDW, rd=1, rs=0, imm=1023)),      # memory range
    isa.to_words(isa.encode(Op.BR, cond=0, rs1=0, rs2=0, target=1024)),   # fetch range
    isa.to_words(isa.encode(Op.GEMM, a_row=0, b_row=0, c_row=0, k=0, mt=1, nt=1, a_ps=0,
                            b_ps=0, c_ps=0, accumulate=0)),
    isa.to_words(isa.encode(Op.REQ, src=0, dst=2047, rows=2, lanes=8, shift=0, relu=0,
                            rounding=0, mask_en=0, mask_row=0)),
])
def test_invalid_instruction_halts_like_golden(bad):
    p = Assembler()
    p.seti(rd=1, imm=3)
    words = p.words() + list(bad)
    gm, gr = check_same(words)
    assert gr.error != Error.NONE


_D = SOC.sp_depth


@pytest.mark.parametrize("g_row,mask_row,dst,rows,error", [
    (0, _D, 1, 16, Error.ROW_OVERLAP),                  # dst − g_row = 1, 10, 11, rows − 1
    (0, _D, 10, 16, Error.ROW_OVERLAP),
    (0, _D, 11, 16, Error.ROW_OVERLAP),
    (0, _D, 15, 16, Error.ROW_OVERLAP),
    (5, _D + 3, _D + 4, 2, Error.ROW_OVERLAP),          # ahead of the mask rows, 2 rows
    (0, _D + 5, _D + 5 + 11, 16, Error.ROW_OVERLAP),
    (_D - 16, _D, _D - 5, 16, Error.ROW_OVERLAP),       # into the next bank
    (3 * _D - 16, 4 * _D - 17, 4 * _D - 16, 16, Error.ROW_OVERLAP),   # to the last row
    (4 * _D - 31, _D, 4 * _D - 16, 16, Error.ROW_OVERLAP),
    (0, 2, 1, 4, Error.BANK_CONFLICT),                  # conflict first, as golden
    (4 * _D - 30, _D, 4 * _D - 15, 16, Error.SP_RANGE),  # range first
    (0, _D, 0, 16, Error.NONE), (0, _D, _D, 16, Error.NONE),          # in place
    (5, _D, 4, 16, Error.NONE), (0, _D + 1, _D, 16, Error.NONE),      # backward
    (0, _D, 16, 16, Error.NONE), (_D - 1, 2 * _D, _D, 1, Error.NONE),  # next to a source
])
def test_relub_writing_ahead_halts_like_golden(g_row, mask_row, dst, rows, error):
    """RELUB's ``Error.ROW_OVERLAP`` (``src < dst < src + rows`` for either source), its
    priority after the range and bank checks, and the legal overlaps: the error, pc and cycles
    of golden (the sequencer alone, without units: no unit is busy before the RELUB)."""
    p = Assembler()
    p.seti(rd=1, imm=3)
    p.relub(g_row=g_row, mask_row=mask_row, dst=dst, rows=rows, lanes=SOC.lanes)
    words = p.words()
    if error != Error.NONE:
        gm, gr = check_same(words)
        assert (gr.error, gr.pc) == (error, 8)
    else:       # legal: it issues (to no unit here: no cycles to compare), then opcode 0
        gm, gr = run_golden(words, {})
        rt = run_rtl(words, {})
        assert (gr.error, gr.pc, gr.instructions) == (Error.ILLEGAL_OPCODE, 16, 2)
        assert (rt["error"], rt["pc"], rt["insns"]) == (gr.error, gr.pc, gr.instructions)
