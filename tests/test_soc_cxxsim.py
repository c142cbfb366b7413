"""The SoC in the compiled simulator (sim/compiled/soc.py) against the golden machine and pysim.

Every test on the ``model``/``stalled`` fixtures runs on both engines of the compiled simulator,
CXXRTL and Verilator (``SocSim(simulator=...)``); the three-way tests run all four
(CXXRTL == Verilator == Amaranth's simulator == golden).

Random valid and invalid programs (tests/progfuzz.py) on the compiled model of a small SoC must
leave main memory, both scratchpads, the error code, the pc, the cycle count and every counter
exactly as the golden machine does; under random memory stalls results stay bit-exact; a few
programs run three ways (compiled == Amaranth's simulator == golden, cycle for cycle, stalls
included). Each model is built once per configuration and reused: the tests put it back into
its power-on state between programs (snapshot/restore), or run programs back to back as the
firmware does.

The default suite's models are compiled with ``-O0`` (≈ 30 s of CPU each on a cold cache, cached
afterwards; the C++ is the same, only the compiler's effort differs); the slow suite runs 1000+
programs on the default ``-O2`` build. A missing C++ compiler fails these tests with
:class:`CxxSimBuildError`, never skips them.
"""

import random
import sys

import numpy as np
import pytest

from spec import isa
from spec.csr import Csr, CHIP_ID, CSR_COUNT, config_value, decode_status, encode_status
from spec.isa import Op, Error, Cond
from spec.memory import Fault
from spec.params import Config, ArrayConfig
from spec.soc import SocConfig
from spec.selection import SelectorConfig
from spec.timing import FETCH_CYCLES
from golden.machine import Machine
from firmware.asm import Assembler
from sim.compiled import SIMULATORS, CxxSimBuildError
from sim.compiled.soc import SocSim, run_program, _pack, _unpack
from tests.progfuzz import (valid_program, invalid_program, invalid_case, instruction_program,
                            runaway_program,
                            random_image, with_program, shrink, describe, _without)

pytestmark = pytest.mark.xdist_group("cxxsim")   # one worker builds (or loads) each model once

SOC = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=2048,
                sp_banks=4, sp_depth=16, acc_banks=2, acc_depth=16,
                selector=SelectorConfig(classes=3, k=2, p=2))
#: The slow suite's second configuration: non-square array, more lanes, more classes.
SOC_3x4 = SocConfig(config=Config(array=ArrayConfig(rows=3, cols=4)), mem_words=4096,
                    sp_banks=4, sp_depth=32, acc_banks=2, acc_depth=32,
                    selector=SelectorConfig(classes=4, k=3, p=1))
FAST = ("-O0",)          # compile flags of the default suite's CXXRTL models
STALL_RATE = 0.3


def _flags(simulator):
    # Verilator's model is always built by its makefile (-O2); the flags are the harness's
    return FAST if simulator == "cxxrtl" else None


@pytest.fixture(scope="module", params=SIMULATORS)
def model(request):
    with SocSim(SOC, cxxflags=_flags(request.param), simulator=request.param,
                progress=False) as sim:
        yield sim


@pytest.fixture(scope="module", params=SIMULATORS)
def stalled(request):
    with SocSim(SOC, stall_rate=STALL_RATE, cxxflags=_flags(request.param),
                simulator=request.param, progress=False) as sim:
        yield sim


def golden(soc, image, entry=0, machine=None):
    m = machine if machine is not None else Machine(soc)
    if image is not None:
        m.write_words(0, image)
    return m, m.run(entry=entry)


def check(sim, m, r, res, ctx, *, timing=True):
    """``res`` (a SocResult on ``sim``) and the memories of ``sim`` == golden ``m``/``r``."""
    assert res.error == r.error, f"error {res.error!r} != golden {r.error!r}; {ctx}"
    assert res.pc == r.pc, f"pc {res.pc} != golden {r.pc}; {ctx}"
    assert res.instructions == r.instructions, ctx
    if r.error == Error.DMA_FAULT:
        assert res.dma_fault == r.dma_fault, ctx
    soc = sim.config
    assert np.array_equal(sim.read_words(0, soc.mem_words), m.mem.numpy()), \
        f"main memory differs; {ctx}"
    assert np.array_equal(sim.read_sp(), m.sp.numpy()), f"operand scratchpad differs; {ctx}"
    assert np.array_equal(sim.read_acc(), m.acc.numpy()), f"accumulator scratchpad differs; {ctx}"
    names = ("sat_req", "sat_sgd")
    if timing:
        assert res.cycles == r.cycles, f"cycles {res.cycles} != golden {r.cycles}; {ctx}"
        names += ("cycles", "stall", "busy_dma", "busy_gemm", "busy_vec", "busy_sel")
    for k in names:
        assert res.counters[k] == m.counters[k], \
            f"{k} {res.counters[k]} != golden {m.counters[k]}; {ctx}"


GOLDEN_BUDGET = 20_000      # instructions: a shrunk candidate may loop for ever
CYCLE_BUDGET = 200_000      # cycles, likewise on the compiled model


def mismatch(sim, soc, words, image, *, seed=None, timing=True):
    """Run ``image`` (program ``words`` at 0) on golden and on ``sim`` (after a power-on, with
    stall seed ``seed``); ``None`` if they agree, else what differs. A program golden does not
    halt within its budget is not a mismatch (a shrunk candidate that loops)."""
    m = Machine(soc)
    m.write_words(0, image)
    try:
        r = m.run(0, max_instructions=GOLDEN_BUDGET)
    except RuntimeError:
        return None
    sim.power_on(seed)
    sim.write_words(0, image)
    try:
        res = sim.run(0, max_cycles=CYCLE_BUDGET)
    except TimeoutError as e:
        return f"golden halted after {r.cycles} cycles but the compiled SoC did not: {e}"
    try:
        check(sim, m, r, res, "", timing=timing)
        if not timing:
            assert res.cycles >= r.cycles, f"stalls made the program faster ({res.cycles} " \
                                           f"< {r.cycles} cycles)"
    except AssertionError as e:
        return str(e).rstrip("; ")
    return None


def check_program(sim, soc, words, image, seed, *, stall_seed=None, timing=True):
    """Compiled == golden on this program, or fail with the seed, the difference, the program
    and a minimal program that still fails (:func:`tests.progfuzz.shrink`)."""
    what = mismatch(sim, soc, words, image, seed=stall_seed, timing=timing)
    if what is None:
        return

    def fails(candidate):
        return mismatch(sim, soc, candidate, with_program(image, words, candidate),
                        seed=stall_seed, timing=timing) is not None

    small = shrink(words, fails)
    n = len(small) // isa.INSN_WORDS
    pytest.fail(f"seed {seed}: {what}\nprogram:\n{describe(words)}\nminimal failing program "
                f"({n} instruction{'s' * (n != 1)}, same data):\n{describe(small)}",
                pytrace=False)


def run_one(sim, soc, words, image, seed, *, timing=True):
    m, r = golden(soc, image)
    sim.power_on()
    sim.write_words(0, image)
    res = sim.run(0, max_cycles=1_000_000)
    check(sim, m, r, res, f"seed {seed}\n{describe(words)}", timing=timing)
    return res, r


# --- random programs vs golden ----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(120))
def test_random_valid_programs(model, seed):
    rng = random.Random(seed)
    words = valid_program(rng, SOC, n=rng.randint(4, 10)).words()
    image = random_image(rng, SOC, words)
    assert golden(SOC, image)[1].error == Error.NONE, \
        f"seed {seed}: the generator made an invalid program"
    check_program(model, SOC, words, image, seed)


@pytest.mark.parametrize("seed", range(1000, 1040))
def test_random_invalid_programs(model, seed):
    rng = random.Random(seed)
    words, error, pc = invalid_case(rng, SOC)
    image = random_image(rng, SOC, words)
    m, r = golden(SOC, image)
    assert (r.error, r.pc) == (error, pc), \
        f"seed {seed}: golden halted with {r.error!r} at {r.pc}, not the documented " \
        f"{error!r} at {pc}\n{describe(words)}"
    check_program(model, SOC, words, image, seed)
    # main memory outside what the valid prefix wrote is unchanged: the same program with HALT
    # in place of the illegal instruction leaves it as the compiled SoC did, and halts on the
    # same cycle (a branch out of memory: one branch more)
    halt = isa.to_words(isa.encode(Op.HALT))
    prefix = words[:-isa.INSN_WORDS] + halt
    pm, pr = golden(SOC, with_program(image, words, prefix))
    mem = model.read_words(0, SOC.mem_words)
    inside = np.zeros(SOC.mem_words, dtype=bool)
    inside[len(words) - isa.INSN_WORDS:len(words)] = True
    assert pr.error == Error.NONE, f"seed {seed}: the valid prefix fails\n{describe(prefix)}"
    assert np.array_equal(mem[~inside], pm.mem.numpy()[~inside]), \
        f"seed {seed}: memory differs from the valid prefix's\n{describe(words)}"
    res = model.csr_read_all()
    cycles = res[Csr.CYCLES_LO] | res[Csr.CYCLES_HI] << 32
    bound = pr.cycles + (2 * (FETCH_CYCLES + 1) if error == Error.FETCH_RANGE else 0)
    assert cycles <= bound, f"seed {seed}: {cycles} cycles, more than the prefix's {pr.cycles}"


def check_budget(sim, soc, words, image, budget, ctx):
    """Golden == compiled on ``image`` run with the watchdog's ``budget`` (cycle-exact)."""
    m = Machine(soc)
    m.write_words(0, image)
    r = m.run(0, budget=budget)
    sim.power_on()
    sim.write_words(0, image)
    res = sim.run(0, max_cycles=1_000_000, budget=budget)
    check(sim, m, r, res, f"{ctx}, budget {budget}\n{describe(words)}")
    return r


@pytest.mark.parametrize("seed", range(3000, 3030))
def test_watchdog_random_budgets(model, seed):
    # valid programs stopped at a random cycle, and loops that never halt: the error, pc,
    # memories, cycles and counters == golden; a budget ≥ the program's cycles changes nothing
    rng = random.Random(seed)
    if seed % 3:
        words = valid_program(rng, SOC, n=rng.randint(4, 10)).words()
        image = random_image(rng, SOC, words)
        cycles = golden(SOC, image)[1].cycles
        budget = rng.choice([rng.randint(1, cycles), cycles, cycles - 1, cycles + 1])
        r = check_budget(model, SOC, words, image, budget, f"seed {seed}")
        assert r.error == (Error.NONE if budget >= cycles else Error.WATCHDOG), f"seed {seed}"
    else:
        words = runaway_program(rng, SOC, n=rng.randint(2, 8)).words()
        image = random_image(rng, SOC, words)
        budget = rng.randint(1, 5000)
        r = check_budget(model, SOC, words, image, budget, f"seed {seed}")
        assert r.error == Error.WATCHDOG and r.cycles >= budget, f"seed {seed}"


@pytest.mark.parametrize("seed", range(2000, 2030))
def test_random_programs_under_stalls(stalled, seed):
    rng = random.Random(seed)
    words = valid_program(rng, SOC, n=rng.randint(4, 10)).words()
    stall_seed = rng.randrange(1, 1 << 32)
    image = random_image(rng, SOC, words)
    check_program(stalled, SOC, words, image, seed, stall_seed=stall_seed, timing=False)


@pytest.mark.parametrize("op", [op for op in Op if op is not Op.ILLEGAL], ids=lambda op: op.name)
def test_every_instruction(model, op):
    # each instruction, several times with random fields: memories, cycles, counters == golden
    for seed in range(4):
        rng = random.Random(f"{op.name} {seed}")
        words = instruction_program(rng, SOC, op).words()
        image = random_image(rng, SOC, words)
        assert golden(SOC, image)[1].error == Error.NONE, describe(words)
        check_program(model, SOC, words, image, f"{op.name} {seed}")


def test_failure_names_seed_and_minimal_program(model, monkeypatch):
    # a contrived mismatch ("a GEMM ran"): the failure shows the seed and the program shrunk to
    # one GEMM (which then runs into the zeros after it: opcode 0)
    rng = random.Random(11)
    while True:
        p = valid_program(rng, SOC, n=8)
        if sum(op is Op.GEMM for op, _ in p.instructions) >= 2:
            break
    words = p.words()
    image = random_image(rng, SOC, words)

    def check_gemm(sim, m, r, res, ctx, *, timing=True):
        assert not res.counters["busy_gemm"], "a GEMM ran"
    monkeypatch.setattr(sys.modules[__name__], "check", check_gemm)
    with pytest.raises(pytest.fail.Exception) as info:
        check_program(model, SOC, words, image, 1234)
    text = str(info.value)
    assert text.startswith("seed 1234: a GEMM ran"), text
    program, minimal = text.split("\nprogram:\n")[1].split("\nminimal failing program ")
    assert program == describe(words)
    head, body = minimal.split(":\n", 1)
    assert head == "(1 instruction, same data)" and body.split()[1] == "GEMM", text


def test_shrink():
    rng = random.Random(5)
    words = valid_program(rng, SOC, n=8).words()
    ops = [isa.decode(isa.from_words(words[i:i + 8]))[0] for i in range(0, len(words), 8)]
    assert Op.BR in ops and Op.SETI in ops
    # the loop stays (branch retargeted) while the failure needs it; loop counts drop to 1
    def loops(w):
        m = Machine(SOC)
        m.write_words(0, with_program(random_image(random.Random(1), SOC, words), words, w))
        try:
            r = m.run(0, max_instructions=1000)
        except RuntimeError:
            return False
        return r.error == Error.NONE and any(
            isa.decode(isa.from_words(w[i:i + 8]))[0] is Op.BR for i in range(0, len(w), 8))
    small = shrink(words, loops)
    assert loops(small) and len(small) < len(words)
    insns = [isa.from_words(small[i:i + 8]) for i in range(0, len(small), 8)]
    for i in range(len(insns)):             # 1-minimal: no single deletion still fails
        assert not loops([w for x in _without(insns, i, 0) for w in isa.to_words(x)])
    assert shrink(words, lambda w: False) == words
    with pytest.raises(ValueError, match=r"whole number of 8-word instructions, not 3 words"):
        shrink([1, 2, 3], loops)


def test_stalls_stall(stalled):
    # the stalled model really stalls, and its seed changes the timing
    rng = random.Random(5)
    words = valid_program(rng, SOC, n=8).words()
    image = random_image(rng, SOC, words)
    _, r = golden(SOC, image)
    cycles = set()
    for seed in (1, 2, 3):
        stalled.power_on(seed=seed)
        stalled.write_words(0, image)
        cycles.add(stalled.run(0).cycles)
    assert min(cycles) > r.cycles and len(cycles) > 1, (cycles, r.cycles)


def test_programs_back_to_back(model):
    # the firmware's use: many programs, no power-on in between; scratchpads, registers, the
    # rounding generator and the selection carry over, as in one golden machine
    rng = random.Random(77)
    m = Machine(SOC)
    image = random_image(rng, SOC, [])
    m.write_words(0, image)
    model.power_on()
    model.write_words(0, image)
    for i in range(30):
        words = invalid_program(rng, SOC) if i % 5 == 4 else \
            valid_program(rng, SOC, n=rng.randint(2, 8)).words()
        m.write_words(0, words)
        model.write_words(0, words)
        r = m.run(0)
        res = model.run(0)
        check(model, m, r, res, f"program {i} of seed 77\n{describe(words)}")


# --- three ways: compiled == pysim == golden -------------------------------------------------

@pytest.mark.parametrize("seed, kind", [(0, "valid"), (1, "valid"), (3, "invalid"),
                                        (4, "stalls")])
def test_three_ways(seed, kind):
    from sim.soc import run_program as pysim_run_program
    rng = random.Random(seed)
    words = invalid_program(rng, SOC) if kind == "invalid" else \
        valid_program(rng, SOC, n=5).words()
    image = random_image(rng, SOC, words)
    stall_rate = STALL_RATE if kind == "stalls" else 0
    kw = dict(stall_rate=stall_rate, seed=seed + 11)
    ctx = f"seed {seed}\n{describe(words)}"
    cx = run_program(SOC, image, cxxflags=FAST, simulator="cxxrtl", **kw)
    vl = run_program(SOC, image, simulator="verilator", **kw)
    py = pysim_run_program(SOC, image, **kw)
    for key in ("csr", "runs", "mem", "sp", "acc"):
        assert cx[key] == py[key], f"compiled {key} != pysim; {ctx}"
        assert vl[key] == cx[key], f"Verilator {key} != CXXRTL; {ctx}"
    m, r = golden(SOC, image)
    assert cx["csr"][Csr.STATUS] == encode_status(False, True, r.error), ctx
    assert cx["mem"] == m.mem.tolist() and cx["sp"] == m.sp.tolist(), ctx
    if not stall_rate:
        assert cx["csr"][Csr.CYCLES_LO] == r.cycles, ctx


def test_run_program_several_entries():
    # as sim.soc.run_program(programs=...): a faulting program, then a good one, no reset
    rng = random.Random(7)
    bad = invalid_program(rng, SOC)
    good = valid_program(rng, SOC, n=4)
    base = 1024 - 8 * 32
    p2 = good.rebased(base)
    image = random_image(rng, SOC, bad)
    image[base:base + len(p2.words())] = p2.words()
    out = run_program(SOC, image, entry=0, programs=[base], cxxflags=FAST, simulator="cxxrtl")
    first, second = out["runs"]
    m = Machine(SOC)
    m.write_words(0, image)
    r1 = m.run(0)
    r2 = m.run(base)
    assert first[Csr.STATUS] == encode_status(False, True, r1.error) and r1.error != Error.NONE
    assert second[Csr.STATUS] == encode_status(False, True, r2.error) and r2.error == Error.NONE
    assert second[Csr.CYCLES_LO] == r2.cycles and out["csr"] is second
    assert out["mem"] == m.mem.tolist() and out["acc"] == m.acc.tolist()


# --- the driver's API ------------------------------------------------------------------------

def test_csrs(model):
    model.power_on()
    assert model.csr_read(Csr.ID) == CHIP_ID
    assert model.csr_read(Csr.MEM_WORDS) == SOC.mem_words
    a = SOC.config.array
    assert model.csr_read(Csr.CONFIG) == config_value(a.rows, a.cols, SOC.lanes)
    model.csr_write(Csr.ENTRY, 0x1238)
    assert model.csr_read(Csr.ENTRY) == 0x1238
    model.csr_write(Csr.ID, 5)                       # read-only: ignored
    assert model.csr_read(Csr.ID) == CHIP_ID
    assert model.csr_read(CSR_COUNT - 1) == 0
    csr = model.csr_read_all()
    assert list(csr) == list(Csr) and csr[Csr.ENTRY] == 0x1238 and csr[Csr.STATUS] == 0
    with pytest.raises(ValueError, match=r"CSR index must be in 0\.\.31, not 32"):
        model.csr_read(CSR_COUNT)
    with pytest.raises(TypeError, match=r"CSR index must be an integer, not 'x'"):
        model.csr_read("x")
    with pytest.raises(ValueError, match=r"CSR value must be a 32-bit unsigned integer, not -1"):
        model.csr_write(Csr.ENTRY, -1)


def test_result(model):
    p = Assembler(base=0)
    p.fill(space=0, dst=0, rows=3, value=-7)
    p.seti(rd=1, imm=3)
    p.halt()
    model.power_on()
    model.write_words(0, p.words())
    m, r = golden(SOC, p.words())
    res = model.run(0)
    assert res.error == Error.NONE and res.entry == 0 and res.pc == 16
    assert res.dma_fault == Fault.NONE
    assert res.counters["cycles"] == res.cycles == r.cycles and res.instructions == 3
    assert decode_status(res.csr[Csr.STATUS]).done
    assert res.counters["busy_vec"] == m.counters["busy_vec"] > 0
    assert res.sim_cycles == 2 + r.cycles + len(Csr)      # CTRL/ENTRY, the run, CSR reads
    assert "NONE" in repr(res)
    assert (model.read_sp()[:3] == -7).all() and not model.read_sp()[3:].any()


def test_memory_backdoor(model):
    model.power_on()
    assert not model.read_words(0, SOC.mem_words).any()
    rng = np.random.default_rng(3)
    words = rng.integers(0, 1 << 16, 21)
    model.write_words(5, words)                     # across line boundaries, unaligned
    assert np.array_equal(model.read_words(5, 21), words)
    assert not model.read_words(0, 5).any() and not model.read_words(26, 100).any()
    model.write_words(SOC.mem_words - 1, [-1])      # two's complement, last word
    assert model.read_words(SOC.mem_words - 1, 1).tolist() == [0xFFFF]
    assert model.read_words(7, 0).size == 0
    model.write_words(9, [])
    with pytest.raises(ValueError, match=r"Write of 2 words at 2047 is outside main memory "
                                         r"\(2048 words\)"):
        model.write_words(SOC.mem_words - 1, [1, 2])
    with pytest.raises(ValueError, match=r"Read of 1 words at -1 is outside main memory"):
        model.read_words(-1, 1)
    with pytest.raises(TypeError, match=r"Words must be integers"):
        model.write_words(0, [1.5])
    with pytest.raises(TypeError, match=r"Read address must be an integer, not 1\.0"):
        model.read_words(1.0, 1)
    model.power_on()
    assert not model.read_words(0, SOC.mem_words).any()


def test_scratchpad_backdoor(model):
    model.power_on()
    L, rows = SOC.lanes, SOC.sp_depth
    v = np.array([[-(1 << 15), (1 << 15) - 1]] * (rows + 2))
    model.write_sp(rows - 1, v)                     # across a bank boundary
    sp = model.read_sp()
    assert sp.shape == (SOC.sp_rows, L) and (sp[rows - 1:2 * rows + 1] == v).all()
    assert not sp[:rows - 1].any() and not sp[2 * rows + 1:].any()
    model.write_acc(SOC.acc_rows - 1, [-(1 << 31), 5])
    assert model.read_acc()[-1].tolist() == [-(1 << 31), 5]
    with pytest.raises(ValueError, match=r"Scratchpad values must be signed 16-bit integers"):
        model.write_sp(0, [[1 << 15, 0]])
    with pytest.raises(ValueError, match=r"Scratchpad rows must have 2 lanes, not shape "
                                         r"\(1, 3\)"):
        model.write_sp(0, [[1, 2, 3]])
    with pytest.raises(ValueError, match=r"Accumulator scratchpad rows 32\.\.32 are outside "
                                         r"0\.\.31"):
        model.write_acc(SOC.acc_rows, [1, 2])
    # a program sees backdoor writes: REQ of the poked accumulators
    p = Assembler(base=0)
    p.emit(Op.REQ, src=0, dst=0, rows=1, lanes=2, shift=4, relu=0, rounding=0, mask_en=0,
           mask_row=16)
    p.halt()
    model.write_acc(0, [[1000, -1000]])
    model.write_words(0, p.words())
    assert model.run(0).error == Error.NONE
    assert model.read_sp()[0].tolist() == [62, -62]


def test_timeout_and_reset(model):
    p = Assembler(base=0)
    p.label("spin")
    p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target="spin")
    model.power_on()
    model.write_words(0, p.words())
    with pytest.raises(TimeoutError, match=r"SoC did not halt within 500 cycles \(program at "
                                           r"0x0; pc now 0x0: BR cond=0"):
        model.run(0, max_cycles=500)
    assert model.running
    with pytest.raises(RuntimeError, match=r"The SoC is still running a program \(pc 0x0\)"):
        model.run(0)
    model.reset()
    assert not model.running
    h = Assembler(base=0)
    h.halt()
    model.write_words(0, h.words())
    assert model.run(0).error == Error.NONE


def test_vcd_window(model, tmp_path):
    rng = random.Random(3)
    words = valid_program(rng, SOC, n=4).words()
    model.power_on()
    model.write_words(0, random_image(rng, SOC, words))
    path = tmp_path / "soc.vcd"
    start = model.sim.cycle
    res = model.run(0, vcd=path, vcd_window=(10, 30))
    text = path.read_text()
    times = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
    # the window: from the 10th to the 30th cycle after the program's start (2 CSR writes)
    assert times[0] == (start + 2 + 10) * 10 and times[-1] == (start + 2 + 30) * 10
    assert "running" in text and res.error == Error.NONE


def test_validation():
    with pytest.raises(TypeError, match=r"SoC configuration must be a SocConfig, not 3"):
        SocSim(3)
    with pytest.raises(ValueError, match=r"Stall seed must be in 1\.\.2\*\*32-1, not 0"):
        SocSim(SOC, seed=0)
    with pytest.raises(ValueError, match=r"Stall rate must be in \[0, 1\), not 1"):
        SocSim(SOC, stall_rate=1)


def test_power_on_seed_validation(model):
    with pytest.raises(ValueError, match=r"Stall seed must be in 1\.\.2\*\*32-1, not 4294967296"):
        model.power_on(seed=1 << 32)


def test_missing_compiler_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "no-such-cxx-compiler")
    with pytest.raises(CxxSimBuildError, match=r"C\+\+ compiler 'no-such-cxx-compiler' not "
                                               r"found .*Python simulator"):
        SocSim(SOC, cache_dir=tmp_path, progress=False, simulator="cxxrtl")


@pytest.mark.parametrize("width", [2, 12, 16, 20, 32])
def test_pack_unpack(width):
    # element packing of memory rows, the fast (8/16/32-bit) and the general paths
    rng = np.random.default_rng(width)
    for count in (1, 3, 8):
        words = (count * width + 31) // 32
        v = rng.integers(-(1 << (width - 1)), 1 << (width - 1), (5, count))
        raw = _pack(v, width, words)
        assert raw.shape == (5, words) and raw.dtype == np.uint32
        assert np.array_equal(_unpack(raw, width, count, True), v)
        assert np.array_equal(_unpack(raw, width, count, False), v & ((1 << width) - 1))
        ref = [sum((int(x) & ((1 << width) - 1)) << (width * i) for i, x in enumerate(row))
               for row in v]
        got = [sum(int(w) << (32 * i) for i, w in enumerate(row)) for row in raw]
        assert got == ref


# --- slow: many programs on the default (-O2) build ------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("soc", [SOC, SOC_3x4], ids=["2x2", "3x4"])
def test_many_random_programs(soc):
    with SocSim(soc, progress=False, simulator="cxxrtl") as sim:
        for seed in range(1000):
            rng = random.Random(seed)
            if seed % 5 == 4:
                words = invalid_program(rng, soc)
            else:
                words = valid_program(rng, soc, n=rng.randint(4, 16)).words()
            run_one(sim, soc, words, random_image(rng, soc, words), seed)


@pytest.mark.slow
@pytest.mark.parametrize("soc", [SOC, "default"], ids=["2x2", "default"])
def test_many_random_programs_verilator(soc):
    # the Verilator model: 1000 programs on a small SoC and on the default SoC (8×8)
    if soc == "default":
        from spec.soc import DEFAULT_SOC as soc
    with SocSim(soc, simulator="verilator", progress=False) as sim:
        for seed in range(1000):
            rng = random.Random(seed)
            if seed % 5 == 4:
                words = invalid_program(rng, soc)
            else:
                words = valid_program(rng, soc, n=rng.randint(4, 16)).words()
            run_one(sim, soc, words, random_image(rng, soc, words), seed)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_many_random_programs_under_stalls(simulator):
    with SocSim(SOC, stall_rate=0.2, progress=False, simulator=simulator) as sim:
        for seed in range(300):
            rng = random.Random(seed)
            sim_seed = rng.randrange(1, 1 << 32)
            words = valid_program(rng, SOC, n=rng.randint(4, 16)).words()
            image = random_image(rng, SOC, words)
            m, r = golden(SOC, image)
            sim.power_on(seed=sim_seed)
            sim.write_words(0, image)
            res = sim.run(0)
            check(sim, m, r, res, f"seed {seed}\n{describe(words)}", timing=False)


# --- one training step of the 64-32-10 MLP on the default SoC --------------------------------

class _Recording:
    """Wraps a device's ``_run`` to keep every run's result."""

    def __init__(self, device):
        self.runs = []
        run = device._run

        def recorded(entry, max_cycles):
            r = run(entry, max_cycles)
            self.runs.append((entry, r))
            return r
        device._run = recorded


def training_step_same_as_golden(rtl_device, steps=1):
    """``steps`` firmware training steps (64-32-10, batch 32, stochastic rounding) on
    ``rtl_device`` and on golden: every run's result (error, pc, cycles, instructions), the
    counters, the weights and the whole main memory must be equal."""
    from firmware import Accelerator
    from firmware.device import GoldenDevice
    from golden.data import digits_split
    train, _ = digits_split()
    soc = rtl_device.config
    gold = GoldenDevice(soc)
    out = {}
    for name, dev in (("rtl", rtl_device), ("golden", gold)):
        rec = _Recording(dev)
        net = Accelerator(dev).mlp((64, 32, 10), seed=3)
        net.fit(train.X, train.y, steps=steps)
        out[name] = (rec.runs, dev.counters(), net.weights, dev.read_words(0, soc.mem_words),
                     net.last_step_cycles)
    (runs, counters, weights, mem, cycles), g = out["rtl"], out["golden"]
    assert runs == g[0], f"runs differ: {runs} != golden {g[0]}"
    assert len(runs) == 2, runs                     # the seed program, then the steps
    assert counters == g[1], f"counters {counters} != golden {g[1]}"
    assert len(weights) == 2 and all(np.array_equal(w, gw) for w, gw in zip(weights, g[2]))
    diff = np.flatnonzero(mem != g[3])
    assert not diff.size, f"main memory differs from golden first at word {diff[0]}"
    assert counters["busy_gemm"] and counters["busy_vec"] and counters["busy_dma"]
    return runs[-1][1].cycles


#: The smallest SoC the firmware compiles the 64-32-10 network for (4×4 array): the default
#: suite's training step (a model of its own, ``-O0``).
SOC_MLP = SocConfig(config=Config(array=ArrayConfig(rows=4, cols=4)), mem_words=1 << 14,
                    sp_banks=4, sp_depth=1024, acc_banks=2, acc_depth=512,
                    selector=SelectorConfig(classes=3, k=2, p=2))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_training_step_4x4(simulator):
    from firmware.backends import RtlSimDevice
    with RtlSimDevice(SOC_MLP, cxxflags=_flags(simulator), simulator=simulator) as dev:
        cycles = training_step_same_as_golden(dev)
    assert cycles > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_training_steps_default_soc(simulator):
    # the default SoC (8×8, 16-bit, 256 Ki words), its default (-O2) build
    from firmware.backends import RtlSimDevice
    from spec.soc import DEFAULT_SOC
    with RtlSimDevice(DEFAULT_SOC, simulator=simulator) as dev:
        training_step_same_as_golden(dev, steps=3)
