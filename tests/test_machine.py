"""The golden instruction-level model: scalar instructions, branches, errors and timing rules."""

import pytest
import torch

from spec import isa
from spec.isa import Op, Cond, Error
from golden.machine import Machine
from spec.soc import SocConfig
from spec.timing import FETCH_CYCLES
from firmware.asm import Assembler

SOC = SocConfig(mem_words=4096)


def run(asm, soc=SOC, **kw):
    m = Machine(soc)
    m.load_program(asm.base, asm.assemble())
    return m, m.run(entry=asm.base, **kw)


def test_counting_loop_and_cycles():
    p = Assembler()
    p.seti(rd=1, imm=5)
    p.seti(rd=2, imm=0)
    p.label("loop")
    p.addi(rd=2, rs=2, imm=3)
    p.addi(rd=1, rs=1, imm=-1)
    p.br(cond=Cond.NE, rs1=1, rs2=0, target="loop")
    p.halt()
    m, r = run(p)
    assert r.error == Error.NONE
    assert m.regs[2] == 15 and m.regs[1] == 0
    n = 2 + 5 * 3 + 1
    assert r.instructions == n
    # scalar instructions never wait: each takes FETCH cycles plus the issue cycle
    assert r.cycles == n * (FETCH_CYCLES + 1)


def test_r0_reads_zero():
    p = Assembler()
    p.seti(rd=0, imm=7)
    p.addi(rd=1, rs=0, imm=-1)
    p.halt()
    m, r = run(p)
    assert m.regs[0] == 0 and m.regs[1] == 0xFFFF_FFFF


@pytest.mark.parametrize("cond,a,b,taken", [
    (Cond.EQ, 3, 3, True), (Cond.EQ, 3, 4, False), (Cond.NE, 3, 4, True),
    (Cond.LT, -1, 0, True), (Cond.LTU, -1, 0, False), (Cond.GE, 0, -1, True),
    (Cond.GEU, 0, -1, False), (Cond.ALWAYS, 0, 1, True),
])
def test_branch_conditions(cond, a, b, taken):
    p = Assembler()
    p.seti(rd=1, imm=a & 0xFFFF_FFFF)
    p.seti(rd=2, imm=b & 0xFFFF_FFFF)
    p.br(cond=cond, rs1=1, rs2=2, target="t")
    p.seti(rd=3, imm=1)
    p.label("t")
    p.halt()
    m, r = run(p)
    assert (m.regs[3] == 0) == taken


def test_ldw_stw_round_trip():
    p = Assembler()
    p.seti(rd=1, imm=0xDEADBEEF)
    p.seti(rd=2, imm=1000)
    p.stw(rt=1, rs=2, imm=6)
    p.ldw(rd=3, rs=2, imm=6)
    p.halt()
    m, r = run(p)
    assert m.regs[3] == 0xDEADBEEF
    assert m.mem[1006].item() == 0xBEEF and m.mem[1007].item() == 0xDEAD


def test_illegal_opcode_halts_with_error_and_leaves_memory():
    p = Assembler()
    p.seti(rd=1, imm=1)
    m = Machine(SOC)
    m.load_program(0, p.assemble())        # followed by zeroed memory: opcode 0
    before = m.mem.clone()
    r = m.run()
    assert r.error == Error.ILLEGAL_OPCODE and r.pc == 8
    assert (m.mem == before).all()


def test_unused_bits_are_illegal():
    m = Machine(SOC)
    m.load_program(0, [isa.encode(Op.HALT) | (1 << 100)])
    assert m.run().error == Error.BAD_FIELD


def test_fetch_outside_memory():
    p = Assembler()
    p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target=4096)
    m, r = run(p)
    assert r.error == Error.FETCH_RANGE


def test_ldw_outside_memory():
    p = Assembler()
    p.ldw(rd=1, rs=0, imm=4095)
    m, r = run(p)
    assert r.error == Error.MEM_RANGE and r.pc == 0


def test_restart_after_error_without_reset():
    m = Machine(SOC)
    m.load_program(0, [isa.encode(Op.SETI, rd=1, imm=1)])
    assert m.run().error == Error.ILLEGAL_OPCODE
    m.load_program(64, [isa.encode(Op.SETI, rd=1, imm=9), isa.encode(Op.HALT)])
    r = m.run(entry=64)
    assert r.error == Error.NONE and m.regs[1] == 9


def test_assembler_errors():
    with pytest.raises(ValueError, match="SETI.imm must be in 0..4294967295, not -1"):
        Assembler().seti(rd=1, imm=-1)
    with pytest.raises(ValueError, match="HALT has no field"):
        Assembler().halt(rd=1)
    p = Assembler()
    p.br(cond=0, rs1=0, rs2=0, target="nowhere")
    with pytest.raises(ValueError, match="Undefined label 'nowhere'"):
        p.assemble()
    with pytest.raises(ValueError, match="Program base must be a non-negative multiple of 8"):
        Assembler(base=3)


def test_rebased_program_runs_the_same():
    """A program moved by ``Assembler.rebased`` keeps its instructions and its labels move with
    it: run at its new base it computes the same registers in the same cycles."""
    p = Assembler(base=0)
    p.seti(rd=1, imm=4)
    p.label("loop")
    p.addi(rd=2, rs=2, imm=7)
    p.addi(rd=1, rs=1, imm=-1)
    p.br(cond=Cond.NE, rs1=1, rs2=0, target="loop")
    p.halt()
    q = p.rebased(256)
    assert q.base == 256 and dict(q.labels) == {"loop": 256 + isa.INSN_WORDS}
    assert q.instructions == p.instructions and len(q) == len(p)
    m1, r1 = run(p)
    m2 = Machine(SocConfig(mem_words=1024))
    m2.write_words(256, q.words())
    r2 = m2.run(256)
    assert (r2.error, r2.cycles, m2.regs[2]) == (r1.error, r1.cycles, m1.regs[2]) == \
        (Error.NONE, r1.cycles, 28)
    with pytest.raises(ValueError, match="Program base must be a non-negative multiple of 8"):
        p.rebased(4)


# --- RELUB's destination may not start inside a source after its first row ------------------

D = SOC.sp_depth          # rows of a bank: g_row in bank 0, mask_row in bank 1 unless stated
N = 16                    # rows of the operations below


def relub_program(g_row, mask_row, dst, rows=N, relub=True):
    """A FILL of the scratchpad, a FENCE, a SETI, then the RELUB (at pc 24; a HALT in its place
    if not ``relub``), HALT."""
    p = Assembler()
    p.fill(space=0, dst=0, rows=SOC.sp_rows, value=3)
    p.fence(mask=0b1111)
    p.seti(rd=1, imm=7)
    if relub:
        p.relub(g_row=g_row, mask_row=mask_row, dst=dst, rows=rows, lanes=SOC.lanes)
    p.halt()
    return p


@pytest.mark.parametrize("g_row,mask_row,dst,rows", [
    (0, D, 1, N), (0, D, 10, N), (0, D, 11, N), (0, D, N - 1, N),   # k = 1, 10, 11, rows − 1
    (40, D, 41, 2),                                                  # the smallest: 2 rows, k = 1
    (D - N, D, D - N + 11, N),           # the destination runs into the mask's bank
    (0, D + 5, D + 6, N), (0, D + 5, D + 5 + N - 1, N),             # ahead inside the mask rows
    (3 * D - N, 4 * D - N - 1, 4 * D - N, N),   # ending on the scratchpad's last row: k = 1,
    (4 * D - 2 * N + 1, D, 4 * D - N, N),       # k = rows − 1
])
def test_relub_destination_ahead_inside_a_source_is_refused(g_row, mask_row, dst, rows):
    """``src < dst < src + rows`` for ``g_row`` or ``mask_row``: ``Error.ROW_OVERLAP`` at the
    RELUB's pc; nothing after the instructions before it changes (registers, scratchpads,
    memory)."""
    p = relub_program(g_row, mask_row, dst, rows)
    assert any(isa.writes_ahead(s, dst, rows) for s in (g_row, mask_row))
    m = Machine(SOC)
    m.load_program(0, p.assemble())
    before = m.mem.clone()
    r = m.run()
    assert (r.error, r.pc, r.instructions) == (Error.ROW_OVERLAP, 24, 3)
    assert (m.mem == before).all() and (m.sp == 3).all() and m.regs[1] == 7
    # it halts in the cycle a HALT in its place would
    assert run(relub_program(g_row, mask_row, dst, rows, relub=False))[1].cycles == r.cycles


@pytest.mark.parametrize("g_row,mask_row,dst", [
    (0, D, 0), (0, D, D),                            # in place, over either source
    (5, D, 4), (N - 1, D, 0), (0, D + 1, D),        # backward: one row, rows − 1
    (0, D, N), (N, D, 0), (0, D, 2 * D - N),         # next to a source, or apart
    (0, D, D + N), (0, D + 4, D),                    # after the mask rows; backward into them
])
def test_relub_in_place_and_backward_overlaps_are_legal(g_row, mask_row, dst):
    """Every destination row read (as either source) no later than it is written: legal, and
    every source row is read before any row is written (golden's order)."""
    assert not any(isa.writes_ahead(s, dst, N) for s in (g_row, mask_row))
    m = Machine(SOC)
    gen = torch.Generator().manual_seed(g_row + mask_row + dst)
    g = torch.randint(-100, 100, (SOC.sp_rows, SOC.lanes), generator=gen)
    p = Assembler()
    p.relub(g_row=g_row, mask_row=mask_row, dst=dst, rows=N, lanes=SOC.lanes)
    p.halt()
    m.load_program(0, p.assemble())
    m.sp[:] = g
    r = m.run()
    assert r.error == Error.NONE
    expect = g.clone()
    expect[dst:dst + N] = torch.where(g[mask_row:mask_row + N] != 0, g[g_row:g_row + N], 0)
    assert torch.equal(m.sp, expect)


def test_writes_ahead():
    assert [isa.writes_ahead(10, d, 4) for d in range(8, 16)] == \
        [False, False, False, True, True, True, False, False]
    assert not isa.writes_ahead(10, 11, 1)
