"""Selection on the SoC (Amaranth's simulator) against the golden machine: teacher labeling on the
device (forward pass, SMX probabilities, SELFEED, SELOUT) bit- and cycle-exact and equal to
``golden.selection.select_offline``; main-memory ordering of SELOUT with DMA and LDW/STW; SELFEED
overlapping other units; selection state across programs; random programs with the selection
instructions; a SoC without a selector."""

import dataclasses
import random

import pytest
import torch

from spec import isa
from spec.isa import Op, Error, Unit
from spec.csr import Csr
from spec.params import Config, ArrayConfig
from spec.selection import SelectorConfig
from spec.soc import SocConfig
from spec.timing import FETCH_CYCLES, SEL_BUSY_LATENCY, word_bus_latency
from golden.machine import Machine
from golden.selection import StreamingSelector, select_offline, selfeed_cycles
from rtl.soc import Soc
from sim.soc import csr_write, csr_read
from firmware.asm import Assembler
from tests.progfuzz import valid_program, invalid_program, random_image, describe
from tests.simutil import run_sim
from tests.test_topk import collision_monitor
from firmware.teacher_program import random_teacher, selection_of

SOC = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=2048,
                sp_banks=4, sp_depth=16, acc_banks=2, acc_depth=16,
                selector=SelectorConfig(classes=3, k=2, p=2))


def run_soc(soc, image, entries=(0,), *, stall_rate=0, seed=1, max_cycles=100_000):
    """Run the programs at ``entries`` one after the other on one SoC (no reset between them).
    Returns the final memories and, per run, its CSRs and the selection unit's busy cycles."""
    dut = Soc(soc, stall_rate=stall_rate, seed=seed, mem_init=list(image))
    out = {"runs": []}

    async def tb(ctx):
        for entry in entries:
            await csr_write(ctx, dut, Csr.ENTRY, entry)
            await csr_write(ctx, dut, Csr.CTRL, 1)
            n = 0
            while not ctx.get(dut.done):
                await ctx.tick()
                n += 1
                assert n <= max_cycles, f"SoC did not halt within {max_cycles} cycles"
            csr = {c: await csr_read(ctx, dut, c) for c in Csr}
            out["runs"].append((csr, ctx.get(dut.busy_sel)))
        ms = dut.memsys
        out["mem"] = [ctx.get(dut.mainmem.word(i)) for i in range(soc.mem_words)]
        out["sp"] = [list(ctx.get(ms.sp.cell(r))) for r in range(soc.sp_rows)]
        out["acc"] = [list(ctx.get(ms.acc.cell(r))) for r in range(soc.acc_rows)]

    run_sim(dut, tb, processes=[collision_monitor(dut.sel.selector)] if dut.sel else [])
    return out


def compare(soc, image, ctx, entries=(0,), *, stall_rate=0, seed=1):
    """RTL == golden: memories and selection state after the runs; per run the error, pc,
    instruction count, counters and (deterministic memory) cycles. Returns (machine, results)."""
    m = Machine(soc)
    m.write_words(0, image)
    results = [m.run(entry=e) for e in entries]
    rt = run_soc(soc, image, entries, stall_rate=stall_rate, seed=seed)
    assert rt["mem"] == m.mem.tolist(), f"main memory differs; {ctx}"
    assert rt["sp"] == m.sp.tolist(), f"operand scratchpad differs; {ctx}"
    assert rt["acc"] == m.acc.tolist(), f"accumulator scratchpad differs; {ctx}"
    for (csr, busy_sel), r in zip(rt["runs"], results):
        assert csr[Csr.STATUS] >> 8 == r.error, f"error {csr[Csr.STATUS] >> 8} != {r!r}; {ctx}"
        assert csr[Csr.PC] == r.pc and csr[Csr.INSNS] == r.instructions, ctx
        if not stall_rate:
            cycles = csr[Csr.CYCLES_LO] | (csr[Csr.CYCLES_HI] << 32)
            assert cycles == r.cycles, f"cycles {cycles} != golden {r.cycles}; {ctx}"
    if not stall_rate:      # counters of the last run
        csr, busy_sel = rt["runs"][-1]
        c = m.counters
        assert (csr[Csr.BUSY_DMA], csr[Csr.BUSY_GEMM], csr[Csr.BUSY_VEC], busy_sel,
                csr[Csr.STALL_LO]) == (c["busy_dma"], c["busy_gemm"], c["busy_vec"],
                                       c["busy_sel"], c["stall"]), ctx
    return m, results


# --- teacher labeling on the device ------------------------------------------------------------

TEACH = SocConfig(config=Config(array=ArrayConfig(rows=4, cols=4)), mem_words=4096,
                  sp_banks=4, sp_depth=32, acc_banks=2, acc_depth=16,
                  selector=SelectorConfig(classes=4, k=3, p=2))


def check_teacher_labeling(soc, n_samples, seed, *, stall_rate=0):
    """firmware.teacher_program's teacher-labeling program (8-8-C teacher, random weights and
    inputs): RTL == golden, and the selected set in memory == select_offline of the stored
    probabilities, in C + 2·(selected) words."""
    id_base = 1000 + seed
    _, layout, img = random_teacher(soc, n_samples, 8, 8, seed, id_base=id_base)
    ctx = f"seed {seed}, {n_samples} samples"
    m, (r,) = compare(soc, img, ctx, stall_rate=stall_rate, seed=seed + 1)
    assert r.error == Error.NONE, ctx
    sel, C = soc.selector, soc.selector.classes
    mem = m.mem.tolist()
    got, want = selection_of(soc, mem, layout, n_samples, id_base)
    probs = mem[layout.probs:layout.probs + n_samples * C]
    assert max(probs) < 1 << 15 and len(set(probs)) > n_samples, ctx     # varied probabilities
    assert got == want.per_class, ctx
    # storage: C count words, then 2 words (4 bytes) per selected sample, nothing else written
    used = isa.sel_out_words(sel, want.counts)
    assert used == C + 2 * sum(want.counts) and sum(want.counts) == len(want.records)
    assert mem[layout.sel + used:layout.check] == [0xA5A5] * (layout.check - layout.sel - used)
    assert mem[layout.check] == want.counts[0], "LDW after SELOUT must see its write"
    return m, r, want


def test_teacher_labeling_on_device():
    m, r, want = check_teacher_labeling(TEACH, 16, seed=1)
    sel, C = TEACH.selector, TEACH.selector.classes
    # the balanced top-K did evict (more candidates than places), and the cycle model adds up
    assert 16 * sel.p > sum(want.counts) >= sel.k
    # SELCLR, 4 SELFEEDs of 4 samples (each as long as its entries' insertions into the
    # selection as it stood), a SELOUT of no empty class (golden.machine.Timing), whose last
    # write is acknowledged after the bus latency (main memory's and the arbiter's register)
    assert 0 not in want.counts
    _, layout, _ = random_teacher(TEACH, 16, 8, 8, 1, id_base=1001)
    probs = m.mem[layout.probs:layout.probs + 16 * C].reshape(16, C)
    probs = (probs - ((probs >> 15) << 16)).tolist()
    replay, feeds = StreamingSelector(C, sel.k, sel.p), 0
    for chunk in range(4):
        costs = [c for s in range(4 * chunk, 4 * chunk + 4)
                 for c in replay.push_costs(1001 + s, probs[s])]
        feeds += selfeed_cycles(costs, 4, C, sel.p)
    assert m.counters["busy_sel"] == (C + 1 + feeds + isa.sel_out_words(sel, want.counts) + 4
                                      + word_bus_latency(TEACH.mem_latency)
                                      + 6 * SEL_BUSY_LATENCY)      # each of the 6 instructions


@pytest.mark.slow
@pytest.mark.parametrize("stall_rate", [0, 0.3])
def test_teacher_labeling_many_samples(stall_rate):
    soc = dataclasses.replace(TEACH, selector=SelectorConfig(classes=4, k=8, p=1))
    check_teacher_labeling(soc, 64, seed=5, stall_rate=stall_rate)


# --- ordering, overlap, state across programs ---------------------------------------------------

def _image(soc, programs, rng):
    img = [rng.randrange(1 << 16) for _ in range(soc.mem_words)]
    for base, p in programs:
        w = p.words()
        img[base:base + len(w)] = w
    return img


def test_selout_ordering_with_dma_and_stores():
    soc, rng = SOC, random.Random(3)
    span = isa.sel_out_max_words(soc.selector)
    out = 1500
    p = Assembler()
    p.seti(rd=2, imm=70)
    p.selfeed(prob_row=5, samples=2, rid=2)
    p.dma(direction=1, space=0, transpose=0, elem_words=1, rm=0, mem_off=out, sp_row=20,
          rows=6, cols=2, stride=2)                        # overwritten by SELOUT
    p.stw(rt=2, rs=0, imm=out + 2)                         # overwritten by SELOUT
    p.seti(rd=3, imm=out)
    p.selout(rm=3, mem_off=0)
    p.dma(direction=0, space=0, transpose=0, elem_words=1, rm=0, mem_off=out, sp_row=40,
          rows=span // 2, cols=2, stride=2)                # reads SELOUT's words
    p.selout(rm=3, mem_off=span)
    p.stw(rt=2, rs=0, imm=out + span + 1)                  # after SELOUT's words
    p.halt()
    img = _image(soc, [(0, p)], rng)
    m, (r,) = compare(soc, img, "ordering")
    assert r.error == Error.NONE
    words = isa.sel_out_pack(m.selector.result().per_class, soc.selector)
    assert m.mem[out:out + len(words)].tolist() == words
    loaded = m.sp[40:40 + span // 2, :2].flatten().tolist()
    assert [w & 0xFFFF for w in loaded[:len(words)]] == words[:len(loaded)]
    assert m.mem[out + span + 1] == 70


def test_selfeed_overlaps_dma_and_gemm():
    soc, rng = SOC, random.Random(4)

    def program(fence):
        p = Assembler()
        p.selfeed(prob_row=0, samples=soc.lanes, rid=0)        # bank 0
        if fence:
            p.fence(mask=1 << Unit.SEL)
        p.dma(direction=0, space=0, transpose=0, elem_words=1, rm=0, mem_off=1200,
              sp_row=16, rows=4, cols=2, stride=2)             # bank 1
        p.gemm(a_row=32, b_row=48, c_row=0, k=3, mt=1, nt=1, a_ps=0, b_ps=0, c_ps=0,
               accumulate=0)                                   # banks 2, 3
        p.fence(mask=(1 << len(Unit)) - 1)
        p.halt()
        return p

    cycles = []
    for fence in (False, True):
        img = _image(soc, [(0, program(fence))], rng)
        m, (r,) = compare(soc, img, f"fence {fence}")
        cycles.append(r.cycles)
    assert cycles[0] + FETCH_CYCLES < cycles[1]


def test_selection_persists_across_programs():
    soc, rng = SOC, random.Random(5)
    sel, C = soc.selector, soc.selector.classes
    p1, p2 = Assembler(base=0), Assembler(base=256)
    load = dict(direction=0, space=0, transpose=1, elem_words=1, rm=0, rows=2, cols=C,
                stride=C)                      # two samples' probability vectors, sample-major
    p1.selclr()
    p1.dma(**load, mem_off=1200, sp_row=3)
    p1.seti(rd=1, imm=10)
    p1.selfeed(prob_row=3, samples=2, rid=1)
    p1.halt()
    p2.dma(**load, mem_off=1200 + 2 * C, sp_row=30)
    p2.seti(rd=1, imm=12)
    p2.selfeed(prob_row=30, samples=2, rid=1)
    p2.seti(rd=4, imm=1600)
    p2.selout(rm=4, mem_off=0)
    p2.halt()
    img = _image(soc, [(0, p1), (256, p2)], rng)
    pool = [0, 5, 9, 16384]                     # ties between the programs' samples
    img[1200:1200 + 4 * C] = [rng.choice(pool) for _ in range(4 * C)]
    m, results = compare(soc, img, "two programs", entries=(0, 256))
    assert [r.error for r in results] == [Error.NONE] * 2
    probs = torch.tensor(img[1200:1200 + 4 * C]).reshape(4, C)
    want = select_offline(probs, sel.k, sel.p, [10, 11, 12, 13]).per_class
    assert isa.sel_out_unpack(m.mem[1600:].tolist(), sel) == want


# --- random programs ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_random_programs_with_selection(seed):
    rng = random.Random(seed)
    if seed == 3:
        words = invalid_program(rng, SOC)
    else:
        words = valid_program(rng, SOC, n=8).words()
    stall = 0.3 if seed == 2 else 0
    compare(SOC, random_image(rng, SOC, words), f"seed {seed}\n{describe(words)}",
            stall_rate=stall, seed=seed + 1)


def run_faulting(soc, cases, seed):
    """Each ``(instruction, error)`` after a SETI r1 = 2 and a SELFEED, as programs run one after
    the other on one SoC; RTL == golden and each program stops with its error at its address."""
    programs = []
    for i, (bad, _) in enumerate(cases):
        p = Assembler(base=64 * i)
        p.seti(rd=1, imm=2)
        if soc.selector is not None:
            p.selfeed(prob_row=0, samples=1, rid=1)
        programs.append((64 * i, p.words() + isa.to_words(bad)))
    img = random_image(random.Random(seed), soc, [])
    for base, words in programs:
        img[base:base + len(words)] = words
    ctx = "\n\n".join(describe(w) for _, w in programs)
    m, results = compare(soc, img, ctx, entries=[b for b, _ in programs])
    for (base, words), (_, error), r in zip(programs, cases, results):
        assert (r.error, r.pc) == (error, base + len(words) - isa.INSN_WORDS), ctx
    return m


def test_invalid_selection_instructions():
    max_words = isa.sel_out_max_words(SOC.selector)
    run_faulting(SOC, [
        (isa.encode(Op.SELOUT, rm=0, mem_off=SOC.mem_words - max_words + 1), Error.MEM_RANGE),
        (isa.encode(Op.SELOUT, rm=1, mem_off=-3), Error.MEM_RANGE),       # wraps to 2**32 - 1
        (isa.encode(Op.SELFEED, prob_row=SOC.sp_rows - 2, samples=1, rid=0), Error.SP_RANGE),
        (isa.encode(Op.SELFEED, prob_row=0, samples=0, rid=0), Error.BAD_FIELD),
        (isa.encode(Op.SELFEED, prob_row=0, samples=SOC.lanes + 1, rid=0), Error.BAD_FIELD),
        (isa.encode(Op.SELCLR) | (1 << 8), Error.BAD_FIELD),
        (isa.encode(Op.FENCE, mask=0) | (1 << 12), Error.BAD_FIELD),    # mask is 4 bits
    ], seed=6)


def test_no_selector_makes_selection_illegal():
    soc = dataclasses.replace(SOC, selector=None)
    m = run_faulting(soc, [
        (isa.encode(Op.SELCLR), Error.ILLEGAL_OPCODE),
        (isa.encode(Op.SELCLR) | (1 << 100), Error.ILLEGAL_OPCODE),     # not BAD_FIELD
        (isa.encode(Op.SELOUT, rm=0, mem_off=0), Error.ILLEGAL_OPCODE),
        (isa.encode(Op.SELFEED, prob_row=0, samples=1, rid=0), Error.ILLEGAL_OPCODE),
    ], seed=7)
    assert m.selector is None
