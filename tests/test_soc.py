"""Whole programs on the SoC (Amaranth's simulator) against the golden machine: memories,
scratchpads, cycles and counters; random valid and invalid programs; stalls."""

import random

import pytest
import torch

from spec import isa
from spec.isa import Op, Error
from spec.csr import Csr, decode_status, encode_status
from spec.params import Config, ArrayConfig
from spec.soc import SocConfig
from spec.selection import SelectorConfig
from golden.machine import Machine
from sim.soc import run_program
from tests.progfuzz import (valid_program, invalid_program, runaway_program, random_image,
                            describe)

SOC = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=2048,
                sp_banks=4, sp_depth=16, acc_banks=2, acc_depth=16,
                selector=SelectorConfig(classes=3, k=2, p=2))


def golden_run(soc, image, entry=0, budget=0):
    m = Machine(soc)
    m.write_words(0, image)
    return m, m.run(entry=entry, budget=budget)


def compare(soc, image, seed, *, stall_rate=0, timing=True, words=None, budget=None):
    m, r = golden_run(soc, image, budget=budget or 0)
    rt = run_program(soc, image, stall_rate=stall_rate, seed=seed + 1, budget=budget)
    csr = rt["csr"]
    ctx = f"seed {seed}\n{describe(words) if words else ''}"
    status = decode_status(csr[Csr.STATUS])
    assert csr[Csr.STATUS] == encode_status(False, True, r.error), f"{status} != {r.error!r}; {ctx}"
    assert csr[Csr.PC] == r.pc, ctx
    assert rt["mem"] == m.mem.tolist(), f"main memory differs; {ctx}"
    assert rt["sp"] == m.sp.tolist(), f"operand scratchpad differs; {ctx}"
    assert rt["acc"] == m.acc.tolist(), f"accumulator scratchpad differs; {ctx}"
    assert csr[Csr.SAT_REQ] == m.counters["sat_req"], ctx
    assert csr[Csr.SAT_SGD] == m.counters["sat_sgd"], ctx
    assert csr[Csr.INSNS] == r.instructions, ctx
    if timing:
        cycles = csr[Csr.CYCLES_LO] | (csr[Csr.CYCLES_HI] << 32)
        assert cycles == r.cycles, f"cycles {cycles} != golden {r.cycles}; {ctx}"
        assert csr[Csr.BUSY_DMA] == m.counters["busy_dma"], ctx
        assert csr[Csr.BUSY_GEMM] == m.counters["busy_gemm"], ctx
        assert csr[Csr.BUSY_VEC] == m.counters["busy_vec"], ctx
        assert csr[Csr.STALL_LO] == m.counters["stall"], ctx
    if r.error == Error.DMA_FAULT:
        assert csr[Csr.DMA_FAULT] == r.dma_fault, ctx
    return m, r


def test_csr_identity():
    rt = run_program(SOC, isa.to_words(isa.encode(Op.HALT)), read_back=False)
    from spec.csr import CHIP_ID
    assert rt["csr"][Csr.ID] == CHIP_ID
    assert rt["csr"][Csr.MEM_WORDS] == SOC.mem_words


@pytest.mark.parametrize("seed", range(6))
def test_random_valid_programs(seed):
    rng = random.Random(seed)
    p = valid_program(rng, SOC, n=6)
    words = p.words()
    m, r = compare(SOC, random_image(rng, SOC, words), seed, words=words)
    assert r.error == Error.NONE, describe(words)


@pytest.mark.parametrize("seed", range(100, 106))
def test_random_invalid_programs(seed):
    rng = random.Random(seed)
    words = invalid_program(rng, SOC)
    m, r = compare(SOC, random_image(rng, SOC, words), seed, words=words)
    assert r.error != Error.NONE


@pytest.mark.parametrize("seed", range(200, 203))
def test_random_programs_under_stalls(seed):
    rng = random.Random(seed)
    p = valid_program(rng, SOC, n=6)
    words = p.words()
    compare(SOC, random_image(rng, SOC, words), seed, stall_rate=0.3, timing=False, words=words)


@pytest.mark.parametrize("seed", range(300, 303))
def test_watchdog_halts_a_runaway_program(seed):
    # a loop that never halts ends with WATCHDOG at the budget, == golden (cycles, pc, memory)
    rng = random.Random(seed)
    words = runaway_program(rng, SOC, n=4).words()
    budget = rng.randint(50, 400)
    m, r = compare(SOC, random_image(rng, SOC, words), seed, words=words, budget=budget)
    assert r.error == Error.WATCHDOG and budget <= r.cycles


def test_watchdog_budget_of_exactly_the_program():
    # a budget of the program's own cycle count lets it halt; one cycle less stops it
    rng = random.Random(310)
    words = valid_program(rng, SOC, n=3).words()
    image = random_image(rng, SOC, words)
    cycles = golden_run(SOC, image)[1].cycles
    assert compare(SOC, image, 310, words=words, budget=cycles)[1].error == Error.NONE
    assert compare(SOC, image, 310, words=words, budget=cycles - 1)[1].error == Error.WATCHDOG


def test_new_program_after_an_error_without_reset():
    rng = random.Random(7)
    bad = invalid_program(rng, SOC)
    good = valid_program(rng, SOC, n=4)
    good_base = 1024 - 8 * 32
    p2 = good.rebased(good_base)
    image = random_image(rng, SOC, bad)
    w2 = p2.words()
    image[good_base:good_base + len(w2)] = w2
    rt = run_program(SOC, image, entry=0, programs=[good_base])
    first, second = rt["runs"]
    assert decode_status(first[Csr.STATUS]).error != Error.NONE
    m = Machine(SOC)
    m.write_words(0, image)
    m.run(entry=0)
    r = m.run(entry=good_base)
    assert second[Csr.STATUS] == encode_status(False, True, r.error) and r.error == Error.NONE
    assert rt["mem"] == m.mem.tolist()


def _rewrite_own_code_image(first, lines=16):
    """A program that loads its own lines ``first ..`` into the operand scratchpad and stores
    them back unchanged (one DMA each; 4 rows of 2 words per line), then runs SETIs to a HALT:
    the store writes the lines of the SETIs while the sequencer fetches them."""
    dma = dict(space=0, transpose=0, elem_words=1, rm=0, mem_off=first * isa.INSN_WORDS,
               sp_row=0, rows=(lines - first) * 4, cols=2, stride=2)
    prog = [isa.encode(Op.DMA, direction=0, **dma), isa.encode(Op.DMA, direction=1, **dma)]
    prog += [isa.encode(Op.SETI, rd=1, imm=k) for k in range(lines - 3)] + [isa.encode(Op.HALT)]
    words = [w for x in prog for w in isa.to_words(x)]
    return words + [0] * (SOC.mem_words - len(words))


def test_fetch_of_a_line_being_written_is_refused():
    """Main memory is declared collision-free (rtl/mainmem.py): the simulation refuses a program
    whose DMA store writes an instruction line in the cycle the sequencer fetches it (on the
    board the fetch would read undefined words); the same store starting two lines later misses
    every fetch and runs == golden."""
    with pytest.raises(RuntimeError, match=r"^The program stores into the instruction line it "
                                           r"is fetching \(outside the cycle model"):
        run_program(SOC, _rewrite_own_code_image(2))
    compare(SOC, _rewrite_own_code_image(4), seed=0)
