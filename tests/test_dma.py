# amaranth: UnusedElaboratable=no
"""DMA controller: RTL (rtl/dma.py in rtl/memsys.py) against the golden model (golden/dma.py).

Every RTL run compares, bit for bit, the final main memory and both scratchpads with the golden
model, each descriptor's fault code, the number of bus requests and scratchpad row writes each
descriptor makes (a faulting one: none), and, with the deterministic memory model, each
descriptor's cycles with :func:`golden.dma.cycles`.
"""

import random
from dataclasses import replace

import pytest
import torch

from golden import dma as gd
from golden.dma import Descriptor
from rtl.dma import DmaChecker, DmaController
from rtl.memsys import MemorySystem
from spec.memory import DESC_FIELDS, LINE_WORDS, Dir, Fault, Space
from spec.params import ArrayConfig, Config
from spec.soc import DEFAULT_SOC, SocConfig
from spec.timing import bus_latency
from tests.simutil import run_sim


SOC = SocConfig(config=Config(array=ArrayConfig(rows=4, cols=4)), mem_words=1000, sp_banks=2,
                sp_depth=16, acc_banks=1, acc_depth=8, mem_latency=1)
# Non-square array (5 lanes, not a power of two), 40-bit accumulators, 3 banks, power-of-two
# memory (addresses wrap in the bus width: only the checks keep a transfer from wrapping to 0).
SOC_ODD = SocConfig(config=Config(array=ArrayConfig(rows=3, cols=5, acc_width=40)), mem_words=512,
                    sp_banks=3, sp_depth=8, acc_banks=2, acc_depth=4, mem_latency=1)


# --- random images and descriptors --------------------------------------------------------------

def _signed_values(rng, width, n):
    edges = [-(1 << (width - 1)), (1 << (width - 1)) - 1, -1, 0, 1]
    return [rng.choice(edges) if rng.random() < 0.2 else
            rng.randrange(-(1 << (width - 1)), 1 << (width - 1)) for _ in range(n)]


def random_images(rng, soc):
    """Random ``(mem, [sp, acc])`` images, edge values included."""
    ww = soc.word_width
    mem = torch.tensor([v & ((1 << ww) - 1) for v in _signed_values(rng, ww, soc.mem_words)],
                       dtype=torch.int64)
    lanes = soc.lanes
    sps = [torch.tensor(_signed_values(rng, soc.elem_width(s), soc.space_rows(s) * lanes),
                        dtype=torch.int64).reshape(-1, lanes) for s in Space]
    return mem, sps


def random_descriptor(rng, soc, p_fault=0.0):
    """A random descriptor: valid, or (with probability ``p_fault``) faulting in a random way."""
    lanes = soc.lanes
    space = rng.choice(list(Space))
    space_rows = soc.space_rows(space)
    transpose = rng.randrange(2)
    ew = rng.choice((1, 2))
    # scratchpad rows a descriptor can touch: rows (13 bits), or cols (8 bits) with transpose
    max_rows = min(space_rows, (1 << dict(DESC_FIELDS)["cols" if transpose else "rows"]) - 1)
    kind = rng.random()
    if kind < 0.1:                        # a whole scratchpad (as much as the field allows)
        n_rows, sp_row = max_rows, 0
    else:
        n_rows = rng.choice((1, 1, 2, rng.randint(1, min(max_rows, 12))))
        sp_row = rng.randint(0, space_rows - n_rows)
    n_lanes = rng.choice((1, lanes, rng.randint(1, lanes)))
    rows, cols = (n_lanes, n_rows) if transpose else (n_rows, n_lanes)
    dense = cols * ew
    stride = rng.choice((0, dense, dense, dense + rng.randint(1, 5), rng.randint(0, 3 * dense)))
    extent = (rows - 1) * stride + cols * ew
    while extent > soc.mem_words:             # a full scratchpad of wide strides: shrink
        stride //= 2
        extent = (rows - 1) * stride + cols * ew
    mem_addr = rng.choice((0, soc.mem_words - extent, rng.randint(0, soc.mem_words - extent)))
    fields = dict(direction=rng.choice(list(Dir)), space=space, transpose=transpose, elem_words=ew,
                  mem_addr=mem_addr, sp_row=sp_row, rows=rows, cols=cols, stride=stride)
    if rng.random() < p_fault:
        fault = rng.choice(list(Fault)[1:])
        if fault is Fault.ZERO_SIZE:
            fields[rng.choice(("rows", "cols"))] = 0
        elif fault is Fault.ELEM_WORDS:
            fields["elem_words"] = rng.choice((0, 3))
        elif fault is Fault.TOO_WIDE:
            fields["rows" if transpose else "cols"] = rng.randint(lanes + 1, 3 * lanes)
        elif fault is Fault.SP_RANGE:
            fields["sp_row"] = rng.randint(space_rows, (1 << 13) - 1)
        elif fault is Fault.SP_END:
            fields["sp_row"] = rng.randint(space_rows - n_rows + 1, space_rows - 1) \
                if n_rows > 1 else space_rows
        elif fault is Fault.MEM_RANGE:
            fields["mem_addr"] = rng.randint(soc.mem_words, (1 << 32) - 1)
        else:
            fields["mem_addr"] = soc.mem_words - extent + rng.randint(1, extent)
    return Descriptor(**fields)


# --- the RTL harness ----------------------------------------------------------------------------

def run_rtl(descs, soc, mem, sps, *, stall_rate=0, seed=1, gaps=None,
            max_cycles=None, arbiter=False, reader=None):
    """Run ``descs`` through the RTL memory system starting from images ``mem``, ``sps``.

    ``gaps``: a ``random.Random`` that inserts random idle cycles between descriptors (else they
    are offered back to back). ``arbiter``: the DMA reaches main memory through a
    :class:`~rtl.bus.BusArbiter` with a second master port; ``reader``: a ``random.Random`` that
    makes that port issue random reads meanwhile (checked against ``mem`` where no descriptor
    stores). Returns ``(records, mem, sps)``: per descriptor a dict with ``accept`` and ``done``
    cycles, ``fault``, ``requests`` (DMA bus requests accepted) and ``row_writes`` (scratchpad row
    writes) between its acceptance and its ``done``.
    """
    dut = MemorySystem(soc, stall_rate=stall_rate, seed=seed, mem_init=mem.tolist(),
                       bus_masters=1 if arbiter or reader else 0)
    stored = set()
    for d in descs:
        if d.direction == Dir.STORE and not gd.check(d, soc):
            stored.update(gd.word_addresses(d).flatten().tolist())
    stable = [a for a in range(soc.mem_words) if a not in stored]
    finished = []
    out = {}

    async def read_traffic(ctx):
        bus = dut.bus[0]
        expect = []
        ctx.set(bus.rsp.ready, 1)
        while not finished:
            offer = reader.random() < 0.5
            if offer:
                addr = reader.choice(stable)
                ctx.set(bus.req.payload, {"addr": addr, "we": 0, "wdata": 0})
            ctx.set(bus.req.valid, offer)
            while True:
                _, _, ready, rv, rd = await ctx.tick().sample(bus.req.ready, bus.rsp.valid,
                                                               bus.rsp.payload)
                if rv:
                    a = expect.pop(0)
                    assert rd == int(mem[a]), f"seed {seed}: second master read {a}"
                    out["reads"] = out.get("reads", 0) + 1
                if not offer or ready:
                    break
            if offer:
                expect.append(addr)
    dma = dut.dma
    pads = (dut.sp, dut.acc)
    if max_cycles is None:
        max_cycles = sum(d.words + 4 for d in descs) * (8 if stall_rate else 1) \
            + len(descs) * (soc.mem_latency + 20) + 100
    records = []

    async def tb(ctx):
        for pad, image in zip(pads, sps):
            for r, values in enumerate(image.tolist()):
                ctx.set(pad.cell(r), values)
        cycle = 0
        todo = list(descs)
        current = None
        offering = False
        while len(records) < len(descs):
            if not offering and todo and (gaps is None or gaps.random() < 0.3):
                ctx.set(dut.i_desc.payload, todo.pop(0).as_dict())
                ctx.set(dut.i_desc.valid, 1)
                offering = True
            _, _, valid, ready, done, fault, req_v, req_r, sp_en, acc_en = await ctx.tick().sample(
                dut.i_desc.valid, dut.i_desc.ready, dut.done, dut.fault,
                dma.bus.req.valid, dma.bus.req.ready, dma.sp_write.en, dma.acc_write.en)
            if done:
                assert current is not None, f"done without a descriptor in cycle {cycle}"
                current.update(done=cycle, fault=Fault(fault))
                records.append(current)
                current = None
            if current is not None:
                current["requests"] += req_v & req_r
                current["row_writes"] += (sp_en != 0) + (acc_en != 0)
            else:
                assert not (req_v or sp_en or acc_en), f"access while idle in cycle {cycle}"
            if valid and ready:
                current = dict(accept=cycle, requests=0, row_writes=0)
                ctx.set(dut.i_desc.valid, 0)
                offering = False
            cycle += 1
            assert cycle < max_cycles, f"no progress after {cycle} cycles"
        finished.append(True)
        out["mem"] = torch.tensor([ctx.get(dut.mainmem.word(i)) for i in range(soc.mem_words)],
                                  dtype=torch.int64)
        out["sps"] = [torch.tensor([list(ctx.get(pad.cell(r))) for r in range(pad.rows)],
                                   dtype=torch.int64) for pad in pads]

    if reader is None:
        run_sim(dut, tb)
    else:
        run_sim(dut, tb, background=[read_traffic])
        assert out.get("reads", 0) > len(descs), "the second master hardly read"
    return records, out["mem"], out["sps"]


def check_against_golden(descs, soc, seed, *, stall_rate=0, gaps=False, arbiter=False,
                         reader=False):
    """Run ``descs`` on RTL and golden from the same random images; compare everything.

    Cycles are compared unless there are stalls or a second master reads (``reader``).
    """
    rng = random.Random(seed)
    mem, sps = random_images(rng, soc)
    g_mem, g_sps = mem.clone(), [s.clone() for s in sps]
    records, r_mem, r_sps = run_rtl(descs, soc, mem, sps, stall_rate=stall_rate,
                                    seed=seed, gaps=random.Random(seed) if gaps else None,
                                    arbiter=arbiter,
                                    reader=random.Random(seed + 1) if reader else None)
    for n, (desc, rec) in enumerate(zip(descs, records)):
        where = f"seed {seed}, descriptor {n}: {desc}"
        fault = gd.execute(desc, g_mem, g_sps, soc)
        assert rec["fault"] == fault, where
        assert rec["requests"] == gd.requests(desc, soc), where
        assert rec["row_writes"] == (0 if fault or desc.direction == Dir.STORE else desc.sp_rows), where
        if not stall_rate and not reader:
            # behind the arbiter, the DMA sees the bus latency (spec.timing.bus_latency)
            timed = replace(soc, mem_latency=bus_latency(soc.mem_latency)) if arbiter else soc
            assert rec["done"] - rec["accept"] == gd.cycles(desc, timed), where
    assert torch.equal(r_mem, g_mem), f"seed {seed}: main memory differs at " \
        f"{torch.nonzero(r_mem != g_mem).flatten()[:8].tolist()}"
    for space in Space:
        assert torch.equal(r_sps[space], g_sps[space]), \
            f"seed {seed}: {space.name} scratchpad differs in rows " \
            f"{torch.nonzero((r_sps[space] != g_sps[space]).any(1)).flatten()[:8].tolist()}"
    return records


def random_batch(seed, n, soc, p_fault=0.1):
    rng = random.Random(seed)
    return [random_descriptor(rng, soc, p_fault) for _ in range(n)]


# --- golden model ---------------------------------------------------------------------------------

def test_golden_load_store_examples():
    mem, (sp, acc) = gd.new_images(SOC)
    mem[10:22] = torch.arange(1, 13)
    mem[12] = 0x8000                               # most negative 16-bit value
    # 3×2 block of 1-word elements, stride 4: rows at 10, 14, 18.
    d = Descriptor(direction=Dir.LOAD, mem_addr=10, sp_row=5, rows=3, cols=2, stride=4)
    sp[5:8] = 7
    assert gd.execute(d, mem, [sp, acc], SOC) is Fault.NONE
    assert sp[5:8].tolist() == [[1, 2, 0, 0], [5, 6, 0, 0], [9, 10, 0, 0]]
    # Transposed: element (i, j) to row j, lane i.
    d = Descriptor(direction=Dir.LOAD, transpose=1, mem_addr=10, sp_row=0, rows=3, cols=2, stride=4)
    gd.execute(d, mem, [sp, acc], SOC)
    assert sp[0:2].tolist() == [[1, 5, 9, 0], [2, 6, 10, 0]]
    # 2-word elements into the accumulator scratchpad; 1-word elements sign-extend.
    d = Descriptor(direction=Dir.LOAD, space=Space.ACC, elem_words=2, mem_addr=11, rows=1, cols=1)
    gd.execute(d, mem, [sp, acc], SOC)
    assert acc[0].tolist() == [0x8000 * 65536 + 2 - (1 << 32), 0, 0, 0]
    d = Descriptor(direction=Dir.LOAD, space=Space.ACC, mem_addr=12, rows=1, cols=1)
    gd.execute(d, mem, [sp, acc], SOC)
    assert acc[0].tolist() == [-32768, 0, 0, 0]
    # 2-word elements into 16-bit lanes keep the low word.
    d = Descriptor(direction=Dir.LOAD, elem_words=2, mem_addr=13, rows=1, cols=1, sp_row=9)
    gd.execute(d, mem, [sp, acc], SOC)
    assert sp[9].tolist() == [4, 0, 0, 0]
    # Store of a 16-bit row as 2-word elements sign-extends; nothing else is written.
    sp[3] = torch.tensor([-2, 3, 4, 5])
    before = mem.clone()
    d = Descriptor(direction=Dir.STORE, elem_words=2, mem_addr=100, sp_row=3, rows=1, cols=2)
    gd.execute(d, mem, [sp, acc], SOC)
    assert mem[100:104].tolist() == [0xFFFE, 0xFFFF, 3, 0]
    changed = torch.nonzero(mem != before).flatten().tolist()
    assert set(changed) <= {100, 101, 102, 103}


def test_golden_store_overlap_last_write_wins():
    mem, (sp, acc) = gd.new_images(SOC)
    sp[0:3, 0] = torch.tensor([11, 22, 33])
    d = Descriptor(direction=Dir.STORE, mem_addr=50, rows=3, cols=1, stride=0)
    gd.execute(d, mem, [sp, acc], SOC)
    assert mem[50] == 33 and mem[49] == 0 and mem[51] == 0


@pytest.mark.parametrize("fields, fault", [
    (dict(rows=0), Fault.ZERO_SIZE),
    (dict(cols=0), Fault.ZERO_SIZE),
    (dict(elem_words=0), Fault.ELEM_WORDS),
    (dict(elem_words=3), Fault.ELEM_WORDS),
    (dict(cols=5), Fault.TOO_WIDE),
    (dict(transpose=1, rows=5), Fault.TOO_WIDE),
    (dict(transpose=1, rows=4, cols=33), Fault.SP_END),
    (dict(sp_row=32), Fault.SP_RANGE),
    (dict(space=Space.ACC, sp_row=8), Fault.SP_RANGE),
    (dict(space=Space.ACC, sp_row=7, rows=2), Fault.SP_END),
    (dict(sp_row=31, rows=2), Fault.SP_END),
    (dict(mem_addr=1000), Fault.MEM_RANGE),
    (dict(mem_addr=(1 << 32) - 1), Fault.MEM_RANGE),
    (dict(mem_addr=999, cols=2), Fault.MEM_END),
    (dict(mem_addr=998, cols=1, elem_words=2, rows=2, stride=1), Fault.MEM_END),
    (dict(rows=32, stride=(1 << 24) - 1), Fault.MEM_END),
    (dict(mem_addr=999, cols=1, rows=32, stride=0), Fault.NONE),
    (dict(mem_addr=996, cols=2, elem_words=2), Fault.NONE),
    (dict(sp_row=31, rows=1), Fault.NONE),
])
def test_golden_check(fields, fault):
    assert gd.check(Descriptor(**fields), SOC) is fault


def test_golden_check_order():
    # Several faults at once: the first in code order is reported.
    d = Descriptor(rows=0, elem_words=3, cols=9, mem_addr=5000)
    assert gd.check(d, SOC) is Fault.ZERO_SIZE
    d = Descriptor(elem_words=3, cols=9, mem_addr=5000)
    assert gd.check(d, SOC) is Fault.ELEM_WORDS


def test_golden_cycles():
    """A request per line a block row touches (a word per request with transpose); a store ends
    in the same cycle as a load (issue 27: the rule changed from a request per word; item 1: a
    store's first row arrives through the registered bank outputs and the DMA's row queue, two
    cycles more than before; items 1 and 5: the check takes five cycles, the product in a DSP
    block's registers, and a store's first row is in the queue by then, so a store ends when a
    load does)."""
    assert gd.CHECK_CYCLES == 5
    L = SOC.mem_latency
    d = Descriptor(rows=3, cols=4, elem_words=2, stride=8)          # rows at 0, 8, 16: aligned
    assert gd.requests(d, SOC) == 3
    assert gd.cycles(d, SOC) == gd.CHECK_CYCLES + 3 + L + 1
    assert gd.cycles(replace(d, direction=Dir.STORE), SOC) == gd.CHECK_CYCLES + 3 + L + 1
    # rows at 5, 14, 23: words 5..12 (2 lines), 14..21 (2 lines), 23..30 (line 2, line 3)
    assert gd.requests(replace(d, mem_addr=5, stride=9), SOC) == 6
    # 1-word rows of 4 at 4, 8, ...: line 0 for the first, then one line each
    assert gd.requests(Descriptor(rows=5, cols=4, stride=4, mem_addr=4), SOC) == 5
    # stride 0: the same line for every row; rows never share a request
    assert gd.requests(Descriptor(rows=4, cols=2, stride=0, mem_addr=7), SOC) == 8
    t = replace(d, transpose=1, rows=2, cols=3)
    assert gd.requests(t, SOC) == t.words == 12
    assert gd.cycles(t, SOC) == gd.CHECK_CYCLES + 12 + L + 1
    assert gd.cycles(Descriptor(rows=0), SOC) == gd.CHECK_CYCLES
    assert gd.requests(Descriptor(rows=0), SOC) == 0


def test_descriptor_validation():
    with pytest.raises(TypeError, match=r"^Descriptor field rows must be an integer, not 1\.5$"):
        Descriptor(rows=1.5)
    with pytest.raises(ValueError, match=r"^Descriptor field cols must be in 0\.\.255, not 256$"):
        Descriptor(cols=256)
    with pytest.raises(ValueError, match=r"^Descriptor field mem_addr must be in "):
        Descriptor(mem_addr=-1)


def test_golden_execute_validation():
    mem, sps = gd.new_images(SOC)
    with pytest.raises(ValueError, match=r"^Main memory must be an int64 tensor of shape \(1000,\)$"):
        gd.execute(Descriptor(), mem[:10], sps, SOC)
    with pytest.raises(ValueError, match=r"^Scratchpad ACC must be an int64 tensor of shape"):
        gd.execute(Descriptor(space=Space.ACC), mem, [sps[0], sps[0]], SOC)
    with pytest.raises(TypeError, match=r"^Descriptor must be a Descriptor, not 3$"):
        gd.check(3, SOC)
    with pytest.raises(TypeError, match=r"^DMA configuration must be a SocConfig, not 'x'$"):
        gd.check(Descriptor(), "x")


def test_golden_with_soc_config():
    """The SocConfig gives the memory sizes and latency (default 2); one scratchpad tensor may be
    passed."""
    soc = SocConfig(config=SOC.config, mem_words=1024, sp_banks=2, sp_depth=16, acc_banks=1,
                    acc_depth=8)
    assert soc.mem_latency == 2
    d = Descriptor(direction=Dir.LOAD, space=Space.ACC, rows=8, cols=4, elem_words=2, stride=8)
    assert gd.check(d, soc) is Fault.NONE
    assert gd.cycles(d, soc) == gd.CHECK_CYCLES + 8 + 2 + 1      # a line per row, a load
    assert gd.cycles(d, replace(soc, mem_latency=1)) == gd.CHECK_CYCLES + 8 + 1 + 1
    assert gd.cycles(d, replace(soc, mem_latency=3)) == gd.CHECK_CYCLES + 8 + 3 + 1
    assert gd.check(Descriptor(sp_row=32), soc) is Fault.SP_RANGE
    mem, (sp, acc) = gd.new_images(soc)
    mem[:64] = torch.arange(64)
    assert gd.execute(d, mem, acc, soc) is Fault.NONE
    assert acc[1].tolist() == [8 + (9 << 16), 10 + (11 << 16), 12 + (13 << 16), 14 + (15 << 16)]


def test_golden_default_soc():
    """Without a configuration the golden DMA is that of :data:`spec.soc.DEFAULT_SOC`."""
    d = Descriptor(direction=Dir.LOAD, rows=2, cols=8, stride=8)
    want = gd.CHECK_CYCLES + 2 + DEFAULT_SOC.mem_latency + 1     # a line per row, a load
    assert gd.cycles(d) == gd.cycles(d, DEFAULT_SOC) == want
    mem, sps = gd.new_images()
    assert mem.shape == (DEFAULT_SOC.mem_words,)
    assert [tuple(s.shape) for s in sps] == [(DEFAULT_SOC.sp_rows, DEFAULT_SOC.lanes),
                                             (DEFAULT_SOC.acc_rows, DEFAULT_SOC.lanes)]


def test_soc_config_memory_checks():
    """The checks SocConfig makes for the memory system (formerly MemoryConfig's)."""
    with pytest.raises(ValueError, match=r"^Scratchpad depth must be a power of two, not 24$"):
        SocConfig(sp_depth=24)
    with pytest.raises(ValueError, match=r"^Accumulator scratchpad rows \(banks × depth\) must be "
                                         r"at most 2\*\*13, not 16384$"):
        SocConfig(acc_banks=32)
    with pytest.raises(ValueError, match=r"^Main memory words must be at most 2\*\*32, "
                                         r"not 4294967304$"):
        SocConfig(mem_words=(1 << 32) + 8)
    with pytest.raises(ValueError, match=r"^Memory latency must be a positive integer, not 0$"):
        SocConfig(mem_latency=0)
    with pytest.raises(TypeError, match=r"^Memory latency must be a positive integer, not '2'$"):
        SocConfig(mem_latency="2")
    with pytest.raises(TypeError, match=r"^Scratchpad banks must be a positive integer, not '4'$"):
        SocConfig(sp_banks="4")
    assert SOC_ODD.sp_banks == 3                        # any number of banks
    assert SocConfig(mem_words=1 << 32, selector=None).mem_words == 1 << 32
    assert SocConfig(sp_banks=16, sp_depth=512).sp_rows == 1 << 13
    assert [SOC_ODD.space_rows(s) for s in Space] == [24, 8]
    assert [SOC_ODD.elem_width(s) for s in Space] == [16, 40]


def test_dma_main_memory_limit():
    """A stride below main memory's size is one operand of a DSP block: 18 bits at most."""
    assert DmaController(SocConfig(mem_words=1 << 18)).soc.mem_words == 1 << 18
    with pytest.raises(ValueError, match=r"^DMA main memory must have at most 2\*\*18 words \(a "
                                         r"stride below it is a DSP block's operand\), not 524288$"):
        DmaController(SocConfig(mem_words=1 << 19))


def test_checker_matches_golden():
    """The combinational DmaChecker gives golden's fault code on random and edge descriptors."""
    rng = random.Random(11)
    descs = [random_descriptor(rng, SOC, p_fault=0.7) for _ in range(300)]
    descs += [d for _, d in _fault_cases(SOC)]
    dut = DmaChecker(SOC)

    async def tb(ctx):
        for n, d in enumerate(descs):
            ctx.set(dut.desc, d.as_dict())
            assert ctx.get(dut.fault) == gd.check(d, SOC), f"descriptor {n}: {d}"

    run_sim(dut, tb, clock=None)    # combinational: no clock


def test_checker_latency_1_matches_golden():
    """DmaChecker(latency=1) (the SoC's): golden's fault code one cycle after the descriptor."""
    rng = random.Random(12)
    descs = [random_descriptor(rng, SOC, p_fault=0.7) for _ in range(200)]
    descs += [d for _, d in _fault_cases(SOC)]
    dut = DmaChecker(SOC, latency=1)
    assert dut.latency == 1

    async def tb(ctx):
        for n, d in enumerate(descs):
            ctx.set(dut.desc, d.as_dict())
            await ctx.tick()
            assert ctx.get(dut.fault) == gd.check(d, SOC), f"descriptor {n}: {d}"

    run_sim(dut, tb)


@pytest.mark.parametrize("soc", [SOC, SOC_ODD], ids=["soc", "odd"])
def test_checker_latency_3_matches_golden(soc):
    """DmaChecker(latency=3) (the SoC's): golden's fault code in cycle c when the product's
    operands (``pre_rows``, ``pre_stride``) were the descriptor's in c - 3 and ``desc`` holds it
    from c - 2 to c but for ``mem_addr``, junk before c; junk on every input in the other cycles
    (the product's operands change every cycle, as the fetch port's line does in the SoC)."""
    rng = random.Random(13)
    descs = [random_descriptor(rng, soc, p_fault=0.7) for _ in range(200)]
    descs += [d for _, d in _fault_cases(soc)]
    dut = DmaChecker(soc, latency=3)
    assert dut.latency == 3

    def junk():
        return random_descriptor(rng, soc, p_fault=0.9).as_dict()

    async def tb(ctx):
        for n, d in enumerate(descs):
            schedule = [("pre", junk()), ("desc", junk()), ("desc", junk()), ("desc", junk())]
            for cycle, (what, other) in enumerate(schedule):
                pre = d.as_dict() if cycle == 0 else other
                ctx.set(dut.pre_rows, pre["rows"])
                ctx.set(dut.pre_stride, pre["stride"])
                desc = d.as_dict() if what == "desc" else other
                if cycle in (1, 2):
                    desc = {**desc, "mem_addr": other["mem_addr"]}
                ctx.set(dut.desc, desc)
                if cycle == 3:
                    assert ctx.get(dut.fault) == gd.check(d, soc), f"descriptor {n}: {d}"
                await ctx.tick()

    run_sim(dut, tb)


def test_checker_latency_errors():
    with pytest.raises(TypeError, match=r"^DMA checker latency must be an integer, not '1'$"):
        DmaChecker(SOC, latency="1")
    with pytest.raises(ValueError, match=r"^DMA checker latency must be 0, 1 or 3, not 2$"):
        DmaChecker(SOC, latency=2)
    with pytest.raises(ValueError, match=r"^DMA checker main memory must have at most 2\*\*18 "
                                         r"words \(a stride below it is a DSP block's operand\), "
                                         r"not 524288$"):
        DmaChecker(SocConfig(mem_words=1 << 19), latency=3)
    assert DmaChecker(SocConfig(mem_words=1 << 19)).latency == 0


# --- RTL == golden ----------------------------------------------------------------------------------

def test_constructors():
    with pytest.raises(TypeError, match=r"^DMA configuration must be a SocConfig, not 3$"):
        DmaController(3)
    with pytest.raises(TypeError, match=r"^DMA configuration must be a SocConfig, not Config\("):
        DmaController(SOC.config)
    with pytest.raises(TypeError, match=r"^DMA checker configuration must be a SocConfig, "
                                        r"not 'x'$"):
        DmaChecker("x")
    with pytest.raises(TypeError, match=r"^Memory system configuration must be a SocConfig, "
                                        r"not 'x'$"):
        MemorySystem("x")
    assert DmaController().soc is DmaChecker().soc is DEFAULT_SOC
    dut = MemorySystem(SOC_ODD)
    assert dut.dma.soc is SOC_ODD
    assert (dut.mainmem.words, dut.mainmem.latency) == (512, 1)
    assert (dut.sp.banks, dut.sp.depth, dut.acc.banks, dut.acc.depth) == (3, 8, 2, 4)


@pytest.mark.parametrize("latency, seed", [(1, 101), (3, 102)])
def test_random_fixed_latency(latency, seed):
    """Random descriptors (10 % faulting), back to back: data, faults, accesses, cycles."""
    soc = replace(SOC, mem_latency=latency)
    check_against_golden(random_batch(seed, 150, soc), soc, seed)


@pytest.mark.parametrize("reader", [False, True], ids=["alone", "with-reader"])
def test_through_arbiter(reader):
    """Behind a BusArbiter: alone, the cycles are golden's at the bus latency (main memory's
    plus the arbiter's register); with a second master reading meanwhile, the data are still
    exact (and that master reads the right words)."""
    soc = replace(SOC, mem_latency=2)
    check_against_golden(random_batch(401, 60, soc), soc, 401, arbiter=True, reader=reader)


@pytest.mark.parametrize("lanes, latency, seed", [(2, 1, 211), (3, 2, 212)])
def test_random_narrow_rows(lanes, latency, seed):
    """Rows narrower than a main-memory line (2 and 3 lanes: at most 6 words a row)."""
    soc = SocConfig(config=Config(array=ArrayConfig(rows=lanes, cols=lanes)), mem_words=256,
                    sp_banks=2, sp_depth=8, acc_banks=1, acc_depth=8, mem_latency=latency)
    assert 2 * soc.lanes < LINE_WORDS
    check_against_golden(random_batch(seed, 120, soc), soc, seed, gaps=True)


def test_random_odd_geometry():
    """5 lanes, 40-bit accumulators, 3 banks, power-of-two main memory; gaps between descriptors."""
    soc = replace(SOC_ODD, mem_latency=2)
    check_against_golden(random_batch(201, 100, soc), soc, 201, gaps=True)


@pytest.mark.parametrize("latency, stall_rate, seed", [(1, 0.5, 301), (4, 0.25, 302)])
def test_random_stalls(latency, stall_rate, seed):
    """Random request and response stalls: data, faults and accesses still exact."""
    soc = replace(SOC, mem_latency=latency)
    check_against_golden(random_batch(seed, 100, soc), soc, seed, stall_rate=stall_rate)


def _fault_cases(soc):
    lanes = soc.lanes
    return [
        (Fault.ZERO_SIZE, Descriptor(rows=0, cols=4)),
        (Fault.ZERO_SIZE, Descriptor(direction=Dir.STORE, rows=3, cols=0)),
        (Fault.ELEM_WORDS, Descriptor(elem_words=3)),
        (Fault.TOO_WIDE, Descriptor(direction=Dir.STORE, cols=lanes + 1)),
        (Fault.TOO_WIDE, Descriptor(transpose=1, rows=lanes + 1)),
        # out-of-map source and destination
        (Fault.MEM_RANGE, Descriptor(mem_addr=soc.mem_words)),
        (Fault.MEM_RANGE, Descriptor(direction=Dir.STORE, mem_addr=(1 << 32) - 1)),
        (Fault.SP_RANGE, Descriptor(direction=Dir.STORE, sp_row=soc.sp_rows)),
        (Fault.SP_RANGE, Descriptor(space=Space.ACC, sp_row=soc.acc_rows)),
        # crossing the end
        (Fault.MEM_END, Descriptor(direction=Dir.STORE, mem_addr=soc.mem_words - 3, cols=2,
                                   elem_words=2)),
        (Fault.MEM_END, Descriptor(mem_addr=0, rows=4, cols=1, stride=soc.mem_words // 3 + 1)),
        (Fault.MEM_END, Descriptor(direction=Dir.STORE, rows=8191 // 256, stride=(1 << 24) - 1)),
        (Fault.MEM_END, Descriptor(rows=2, stride=(1 << 23) + 1)),     # stride's top bit counts
        # the product's stride is its low bits: a wider one is flagged beside it
        (Fault.MEM_END, Descriptor(rows=2, stride=1 << 18)),
        (Fault.MEM_END, Descriptor(direction=Dir.STORE, rows=2, stride=soc.mem_words)),
        (Fault.MEM_END, Descriptor(mem_addr=1, rows=2, stride=soc.mem_words - 1)),
        (Fault.SP_END, Descriptor(sp_row=soc.sp_rows - 1, rows=2)),
        (Fault.SP_END, Descriptor(direction=Dir.STORE, space=Space.ACC, transpose=1,
                                  sp_row=1, rows=1, cols=soc.acc_rows)),
    ]


@pytest.mark.parametrize("soc", [SOC, replace(SOC, mem_words=1024)],
                         ids=["1000-words", "1024-words"])
def test_faults(soc):
    """Each fault: its code, no access at all, memory unchanged, the next descriptor works."""
    cases = _fault_cases(soc)
    good = [Descriptor(direction=Dir.STORE, mem_addr=soc.mem_words - 4, rows=1, cols=4),
            Descriptor(direction=Dir.LOAD, transpose=1, sp_row=soc.sp_rows - 2, mem_addr=7,
                       rows=4, cols=2, stride=9)]
    descs = []
    for n, (_, desc) in enumerate(cases):
        assert gd.check(desc, soc) is cases[n][0], desc
        descs += [desc, good[n % 2]]
    records = check_against_golden(descs, soc, seed=7)
    for n, (fault, _) in enumerate(cases):
        assert records[2 * n]["fault"] is fault
        assert records[2 * n + 1]["fault"] is Fault.NONE
    # Only faulting descriptors: the whole image is unchanged.
    rng = random.Random(8)
    mem, sps = random_images(rng, soc)
    records, r_mem, r_sps = run_rtl([d for _, d in cases], soc, mem, sps)
    assert [r["fault"] for r in records] == [f for f, _ in cases]
    assert torch.equal(r_mem, mem)
    assert all(torch.equal(a, b) for a, b in zip(r_sps, sps))


def test_full_scratchpad_and_edges():
    """Whole-scratchpad loads and stores, 1-row and 1-column blocks, the last memory word."""
    lanes = SOC.lanes
    W = SOC.mem_words
    descs = [
        Descriptor(direction=Dir.LOAD, rows=SOC.sp_rows, cols=lanes, stride=lanes, mem_addr=3),
        Descriptor(direction=Dir.STORE, space=Space.ACC, elem_words=2, rows=SOC.acc_rows, cols=lanes,
                   stride=lanes * 2, mem_addr=W - SOC.acc_rows * lanes * 2),
        Descriptor(direction=Dir.LOAD, space=Space.ACC, transpose=1, rows=lanes, cols=SOC.acc_rows,
                   stride=SOC.acc_rows, mem_addr=200),
        Descriptor(direction=Dir.STORE, transpose=1, rows=1, cols=SOC.sp_rows, mem_addr=W - SOC.sp_rows),
        Descriptor(direction=Dir.STORE, rows=1, cols=1, mem_addr=W - 1, sp_row=SOC.sp_rows - 1),
        Descriptor(direction=Dir.LOAD, rows=1, cols=1, mem_addr=W - 1, sp_row=SOC.sp_rows - 1),
        Descriptor(direction=Dir.LOAD, space=Space.ACC, elem_words=2, rows=1, cols=1, mem_addr=W - 2),
        Descriptor(direction=Dir.STORE, rows=SOC.sp_rows, cols=1, stride=0, mem_addr=500),
        # strides past main memory in one row, and a block that ends at its last word
        Descriptor(direction=Dir.LOAD, rows=1, cols=lanes, stride=(1 << 24) - 1, mem_addr=W - lanes),
        Descriptor(direction=Dir.STORE, rows=1, cols=2, stride=1 << 18, mem_addr=W - 2),
        Descriptor(direction=Dir.STORE, rows=2, cols=1, stride=W - 1, mem_addr=0),
    ]
    check_against_golden(descs, SOC, seed=9)


@pytest.mark.slow
@pytest.mark.parametrize("latency", [1, 2, 5])
def test_random_fixed_latency_full(latency):
    """≥ 500 random descriptors per latency with the deterministic memory model."""
    soc = replace(SOC, mem_latency=latency)
    seed = 1000 + latency
    check_against_golden(random_batch(seed, 600, soc), soc, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2001, 2002, 2003])
def test_random_stalls_full(seed):
    """≥ 500 random descriptors under random stalls, on both geometries."""
    rng = random.Random(seed)
    latency, rate = rng.randint(1, 4), rng.choice((0.1, 0.3, 0.6))
    for base in (SOC, SOC_ODD):
        soc = replace(base, mem_latency=latency)
        check_against_golden(random_batch(seed, 500, soc), soc, seed, stall_rate=rate, gaps=True)


@pytest.mark.slow
def test_random_large_config():
    """8 lanes, default-size scratchpads, 64 Ki-word memory."""
    soc = SocConfig(config=Config(array=ArrayConfig(rows=8, cols=8)), mem_words=1 << 16,
                    mem_latency=3)
    check_against_golden(random_batch(3001, 100, soc), soc, 3001)
