"""The selection engine (SELCLR/SELFEED/SELOUT) alone, against the golden machine: main memory
bit-exact and every instruction's busy cycles == ``golden.machine.Timing`` (deterministic memory),
bit-exact under random bus stalls; the selection equals ``golden.selection.select_offline``;
configuration checks."""

import dataclasses
import random

import pytest
import torch
from amaranth.hdl import Module
from amaranth.lib import wiring

from spec import isa
from spec.isa import Op
from spec.params import Config, ArrayConfig
from spec.selection import SelectorConfig
from spec.soc import SocConfig
from spec.timing import SEL_BUSY_LATENCY, word_bus_latency
from golden.machine import Machine, selout_last_write
from golden.selection import select_offline
from rtl.bus import BusArbiter
from rtl.mainmem import MainMemory
from rtl.scratchpad import Scratchpad
from rtl.sel_engine import SelEngine
from rtl.skid import SkidBuffer
from tests.simutil import run_sim
from tests.test_topk import collision_monitor

BASE = SocConfig(config=Config(array=ArrayConfig(rows=4, cols=4)), mem_words=512,
                 sp_banks=2, sp_depth=16, acc_banks=1, acc_depth=16,
                 selector=SelectorConfig(classes=3, k=2, p=2))


def soc_with(**sel):
    return dataclasses.replace(BASE, selector=SelectorConfig(**sel))


class _Harness(wiring.Component):
    """The engine with an operand scratchpad and main memory (optionally stalling), reached as
    in the SoC through a skid buffer and a bus arbiter (the buffer's cycle and the arbiter's
    request register are in the cycle model: ``spec.timing.word_bus_latency``)."""

    def __init__(self, soc, stall_rate=0, seed=1):
        self.eng = SelEngine(soc)
        # the engine's read port is a late one, as in the SoC (rtl.soc.memory_system)
        self.sp = Scratchpad(lanes=soc.lanes, elem_width=soc.config.array.operand_width,
                             banks=soc.sp_banks, depth=soc.sp_depth, late_read_ports=1)
        self.mem = MainMemory(soc.mem_words, latency=soc.mem_latency, stall_rate=stall_rate,
                              seed=seed)
        bus = self.mem.bus.signature
        self.arb = BusArbiter(1, bus.addr_width, bus.data_width,
                              max_inflight=max(8, soc.mem_latency + 2))
        self.skid = SkidBuffer(self.eng.bus.req.payload.shape())
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.eng, m.submodules.sp, m.submodules.mem = self.eng, self.sp, self.mem
        m.submodules.arb, m.submodules.skid = self.arb, self.skid
        wiring.connect(m, self.eng.sp_rd, self.sp.read[0])
        wiring.connect(m, self.eng.bus.req, self.skid.i)
        wiring.connect(m, self.skid.o, self.arb.bus[0].req)
        wiring.connect(m, self.arb.bus[0].rsp, self.eng.bus.rsp)
        wiring.connect(m, self.arb.slave, self.mem.bus)
        m.d.comb += self.sp.write[0].en.eq(0)
        return m


def run_engine(soc, sp, steps, *, stall_rate=0, seed=1):
    """Run ``steps`` = [(op, fields, arg)] back to back, each started in the cycle the previous
    one's ``busy`` falls. Returns (busy cycles of each step, main memory, entries held)."""
    dut = _Harness(soc, stall_rate, seed)
    eng = dut.eng
    out = {"busy": []}

    async def tb(ctx):
        for r, row in enumerate(sp):
            ctx.set(dut.sp.cell(r), row)
        for op, fields, arg in steps:
            ctx.set(eng.ir, isa.encode(op, **fields))
            ctx.set(eng.arg, arg)
            ctx.set(eng.start, 1)
            await ctx.tick()
            ctx.set(eng.start, 0)
            n = 0
            while ctx.get(eng.busy):
                n += 1
                assert n < 20_000, "engine hangs"
                await ctx.tick()
            out["busy"].append(n)
        out["mem"] = [ctx.get(dut.mem.data[i]) for i in range(soc.mem_words)]
        out["total"] = ctx.get(eng.total)

    run_sim(dut, tb, processes=[collision_monitor(eng.selector)])
    return out["busy"], out["mem"], out["total"]


def run_golden(soc, sp, steps):
    """The same steps on the golden machine (``arg`` in r1: SELFEED rid = 1, SELOUT rm = 1)."""
    m = Machine(soc)
    m.sp[:len(sp)] = torch.tensor(sp)
    durations = []
    for op, fields, arg in steps:
        m.regs[1] = arg
        m._check(op, fields)                   # raises on an illegal step
        m._execute(op, fields)
        durations.append(m.timing.duration(m, op, fields))
    return durations, m.mem.tolist(), m.selector.held


def random_case(rng, soc, n_steps=8, unique_ids=True):
    """Random scratchpad (scores from a small pool with the signed extremes: many ties) and a
    random step list ending with SELOUT. With ``unique_ids`` also returns what select_offline
    needs for the final SELOUT: (probability rows, their ids, the SELOUT address)."""
    sel, L = soc.selector, soc.lanes
    pool = rng.sample([-32768, -1, 0, 1, 2, 3, 100, 16384, 32767], rng.randint(2, 6))
    sp = [[rng.choice(pool) for _ in range(L)] for _ in range(soc.sp_rows)]
    span = isa.sel_out_max_words(sel)
    steps, fed, next_id = [], [], rng.randrange(1 << sel.id_width)
    if unique_ids:
        next_id = rng.randrange((1 << sel.id_width) - 64)
    for i in range(n_steps):
        kind = "SELOUT" if i == n_steps - 1 else rng.choice(
            ["SELFEED", "SELFEED", "SELFEED", "SELOUT", "SELCLR"])
        if kind == "SELCLR":
            steps.append((Op.SELCLR, {}, 0))
            fed = []
        elif kind == "SELFEED":
            row, n = rng.randrange(soc.sp_rows - sel.classes + 1), rng.randint(1, L)
            base = next_id if unique_ids else rng.randrange(1 << 32)
            steps.append((Op.SELFEED, dict(prob_row=row, samples=n, rid=1), base))
            for s in range(n):
                fed.append(((base + s) % (1 << sel.id_width),
                            [sp[row + j][s] for j in range(sel.classes)]))
            next_id += n
        else:
            addr = rng.randrange(soc.mem_words - span + 1)
            steps.append((Op.SELOUT, dict(rm=1, mem_off=0), addr))
    return sp, steps, fed, addr


def check_case(soc, seed, *, stall_rate=0, unique_ids=True):
    rng = random.Random(seed)
    sp, steps, fed, addr = random_case(rng, soc, unique_ids=unique_ids)
    busy, mem, total = run_engine(soc, sp, steps, stall_rate=stall_rate, seed=seed + 1)
    durations, gmem, held = run_golden(soc, sp, steps)
    ctx = f"seed {seed}, {soc.selector}, steps {[(op.name, f, a) for op, f, a in steps]}"
    assert mem == gmem, f"main memory differs; {ctx}"
    assert total == held, ctx
    if not stall_rate:
        assert busy == durations, f"busy cycles {busy} != golden {durations}; {ctx}"
    if unique_ids:
        sel = soc.selector
        want = select_offline(torch.tensor([row for _, row in fed]).reshape(-1, sel.classes),
                              sel.k, sel.p, [sid for sid, _ in fed]).per_class
        assert isa.sel_out_unpack(mem[addr:], sel) == want, ctx


CONFIGS = [
    dict(classes=3, k=2, p=2),
    dict(classes=1, k=1, p=1),
    dict(classes=4, k=3, p=1, id_width=20),     # two-word ids
    dict(classes=5, k=4, p=5),                  # P = C
]


@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
@pytest.mark.parametrize("seed", range(3))
def test_random_steps_cycle_exact(cfg, seed):
    check_case(soc_with(**CONFIGS[cfg]), 10 * cfg + seed)


@pytest.mark.parametrize("cfg", [0, 2])
def test_random_ids_and_stalls(cfg):
    soc = soc_with(**CONFIGS[cfg])
    check_case(soc, 100 + cfg, unique_ids=False)           # wrapping, repeated ids
    check_case(soc, 200 + cfg, stall_rate=0.4)


def test_empty_and_persistent_selection():
    soc = BASE
    sel = soc.selector
    sp = [[7, 5, -32768, 32767]] * soc.sp_rows
    span = isa.sel_out_max_words(sel)
    steps = [
        (Op.SELOUT, dict(rm=1, mem_off=0), 0),             # after reset: empty
        (Op.SELFEED, dict(prob_row=0, samples=4, rid=1), 40),
        (Op.SELOUT, dict(rm=1, mem_off=0), span),
        (Op.SELFEED, dict(prob_row=3, samples=1, rid=1), 39),   # continues the selection
        (Op.SELOUT, dict(rm=1, mem_off=0), 2 * span),
        (Op.SELCLR, {}, 0),
        (Op.SELOUT, dict(rm=1, mem_off=0), 3 * span),
    ]
    busy, mem, total = run_engine(soc, sp, steps)
    durations, gmem, held = run_golden(soc, sp, steps)
    assert mem == gmem and busy == durations and total == held == 0
    # every class empty: the read-out skips each class (a cycle each, from issue + 2), then the
    # engine writes the C count words, the last acknowledged after a word master's bus latency
    # (the memory's, the arbiter's request register and the skid buffer's)
    assert mem[:sel.classes] == [0] * sel.classes
    assert busy[0] == 2 * sel.classes + 1 + word_bus_latency(soc.mem_latency) + SEL_BUSY_LATENCY
    assert busy[-1] == busy[0]
    assert busy[5] == sel.classes + 1 + SEL_BUSY_LATENCY       # SELCLR
    # SELFEED of N = 4 samples: the first entry can leave the queue at (C - 1)·N + 7; the
    # inserter then takes 2 cycles for each of the 6 entries that start a class, are appended or
    # rejected, and 5 for each of the last sample's 2 (a shift within one word)
    assert busy[1] == (sel.classes - 1) * 4 + 7 + 6 * 2 + 2 * 5 + SEL_BUSY_LATENCY
    # every class of a sample has the same score: its top-2 classes are 0 and 1 (lower class
    # first); each keeps its K = 2 best; then id 39 ties id 40 and wins by the lower id
    best = ((43, 32767), (40, 7))
    assert isa.sel_out_unpack(mem[span:], sel) == (best, best, ())
    best = ((43, 32767), (39, 7))
    assert isa.sel_out_unpack(mem[2 * span:], sel) == (best, best, ())


def test_selout_last_write():
    """SELOUT's cycle model by hand: with no empty class the writer never waits after its first
    word, which comes 3 cycles later than the engine could write (the block-RAM read, its output
    register and the output FIFO), so the last of the ``W`` words is written at issue + W + 4;
    an empty class is written only once a later class's record (or the read-out's end) shows it
    was skipped."""
    assert selout_last_write((3, 3, 3, 3), 2) == isa.sel_out_words(BASE.selector, [3] * 4) + 4
    assert selout_last_write((100,) * 10, 2) == 10 + 2000 + 4
    assert selout_last_write((5, 5), 3) == 2 + 30 + 4
    assert selout_last_write((0, 0, 0), 2) == 2 + 3 + 2   # a skip per class, then 3 words
    assert selout_last_write((0, 1), 2) == 9
    # class 0 empty: the read-out skips it at issue + 2, reads class 1's record at + 3; the FIFO
    # shows it at + 6 (class 0's word), then class 1's 3 words at + 7, 8, 9


def test_storage_per_selected_sample():
    # class-implicit records: (id, score) = 2 words = 4 bytes with 16-bit ids, plus a count word
    # per class; 3 words with 20-bit ids
    assert isa.sel_record_words(BASE.selector) * 2 == 4
    assert isa.sel_record_words(SelectorConfig(id_width=20)) == 3
    assert isa.sel_out_words(BASE.selector, [2, 0, 1]) == 3 + 2 * 3
    assert isa.sel_out_max_words(SelectorConfig()) == 10 * (1 + 100 * 2)
    per = ((5, -1), (3, 32767)), (), ((65535, -32768),)
    words = isa.sel_out_pack(per, BASE.selector)
    assert words == [2, 5, 0xFFFF, 3, 0x7FFF, 0, 1, 0xFFFF, 0x8000]
    assert isa.sel_out_unpack(words, BASE.selector) == per


def test_configuration_errors():
    with pytest.raises(TypeError, match=r"^Selection engine configuration must be a SocConfig, "
                                        r"not 3$"):
        SelEngine(3)
    with pytest.raises(ValueError, match=r"^Selection engine needs a SoC configuration with a "
                                         r"selector, not selector=None$"):
        SelEngine(dataclasses.replace(BASE, selector=None))
    with pytest.raises(TypeError, match=r"^SoC selector must be a SelectorConfig or None, "
                                        r"not 'k'$"):
        dataclasses.replace(BASE, selector="k")
    with pytest.raises(ValueError, match=r"^Selector score width must be the operand width "
                                         r"\(16\), not 12$"):
        soc_with(classes=3, k=2, p=1, score_width=12)
    with pytest.raises(ValueError, match=r"^Selector id width must be at most 32, not 33$"):
        soc_with(classes=3, k=2, p=1, id_width=33)
    with pytest.raises(ValueError, match=r"^Selector K must be less than 2\*\*16, not 65536$"):
        soc_with(classes=3, k=65536, p=1)
    with pytest.raises(ValueError, match=r"^Class count 3 exceeds K \(2\)$"):
        isa.sel_out_unpack([3, 0, 0, 0, 0, 0, 0, 0, 0], BASE.selector)
