"""The GEMM engine against the golden machine: results bit-exact, busy cycles exact."""

import random

import pytest
import torch
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from spec import isa
from spec.isa import Op
from spec.params import Config, ArrayConfig
from spec.soc import SocConfig
from spec.timing import GEMM_OVERHEAD
from golden import array as garr
from golden.machine import Machine
from rtl.gemm_engine import GemmEngine
from rtl.scratchpad import Scratchpad
from rtl.spport import row_layout
from tests.simutil import run_sim


def soc_for(rows, cols):
    return SocConfig(config=Config(array=ArrayConfig(rows=rows, cols=cols)), mem_words=1024,
                     sp_banks=4, sp_depth=64, acc_banks=2, acc_depth=64)


class _Harness(wiring.Component):
    """GEMM engine + operand scratchpad (two read ports) + accumulator scratchpad, the SoC's
    :class:`~rtl.scratchpad.Scratchpad` (a late read port, its writes registered: a read in the
    cycle a write reaches the bank returns the lanes inverted)."""

    def __init__(self, soc, sp_init):
        self.eng = GemmEngine(soc)
        self.soc = soc
        self.sp_init = sp_init
        self.acc = Scratchpad(lanes=soc.lanes, elem_width=32, banks=soc.acc_banks,
                              depth=soc.acc_depth, late_read_ports=1)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        soc, L = self.soc, self.soc.lanes
        m.submodules.eng = eng = self.eng
        m.submodules.sp = sp = Memory(shape=row_layout(16, L), depth=soc.sp_rows,
                                      init=self.sp_init)
        m.submodules.acc = self.acc
        # the engine's ports are late ones (rtl.scratchpad): the row two cycles after the read
        for port, rd in ((eng.a_rd, sp.read_port()), (eng.b_rd, sp.read_port())):
            m.d.comb += [rd.addr.eq(port.addr), rd.en.eq(port.en)]
            m.d.sync += port.data.eq(rd.data)
        wiring.connect(m, eng.acc_rd, self.acc.read[0])
        wiring.connect(m, eng.acc_wr, self.acc.write[0])
        self.sp_mem = sp
        return m


def random_gemm(rng, soc):
    R = soc.config.array.rows
    k = rng.choice([1, 2, 3, 7, 9])
    mt, nt = rng.randint(1, 2), rng.randint(1, 2)
    d = soc.sp_depth
    a_ps = rng.choice([k, k + 1])
    b_ps = rng.choice([k, k + 2])
    c_ps = rng.choice([mt * R, mt * R + 1, 0])
    return dict(a_row=rng.randrange(0, d - 2 * a_ps - k), b_row=d + rng.randrange(0, d - 2 * b_ps - k),
                c_row=rng.randrange(0, soc.acc_rows - 2 * mt * R - 2 * c_ps), k=k, mt=mt, nt=nt,
                a_ps=a_ps, b_ps=b_ps, c_ps=c_ps, accumulate=rng.randint(0, 1))


def run_case(soc, fields, seed):
    rng = random.Random(seed)
    L = soc.lanes
    g = torch.Generator().manual_seed(seed)
    sp = torch.randint(-32768, 32768, (soc.sp_rows, L), generator=g)
    if seed % 3 == 0:                       # edge: most negative operands everywhere
        sp[:] = -32768
    acc = torch.randint(-(1 << 31), 1 << 31, (soc.acc_rows, L), generator=g)
    m = Machine(soc)
    m.sp[:] = sp
    m.acc[:] = acc
    m._execute(Op.GEMM, fields)
    depths = [fields["k"]] * (fields["mt"] * fields["nt"])
    expect_busy = garr.schedule(depths, soc.config.array.rows, soc.config.array.cols).total_cycles + \
        GEMM_OVERHEAD

    dut = _Harness(soc, [list(r) for r in sp.tolist()])
    word = isa.encode(Op.GEMM, **fields)
    out = {}

    async def tb(ctx):
        eng = dut.eng
        for r, row in enumerate(acc.tolist()):
            ctx.set(dut.acc.cell(r), row)
        ctx.set(eng.ir, word)
        ctx.set(eng.start, 1)
        await ctx.tick()
        ctx.set(eng.start, 0)
        busy = 0
        for _ in range(10_000):
            if not ctx.get(eng.busy):
                break
            busy += 1
            await ctx.tick()
        out["busy"] = busy
        for _ in range(dut.acc.write_latency):      # the last write reaches its bank
            await ctx.tick()
        out["acc"] = [list(ctx.get(dut.acc.cell(r))) for r in range(soc.acc_rows)]

    run_sim(dut, tb)
    assert out["busy"] == expect_busy, f"busy cycles (seed {seed}): {out['busy']} != {expect_busy}"
    assert out["acc"] == m.acc.tolist(), f"accumulator scratchpad differs (seed {seed}, {fields})"


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (4, 4), (3, 2)])
@pytest.mark.parametrize("seed", range(6))
def test_gemm_engine_matches_golden(shape, seed):
    soc = soc_for(*shape)
    fields = random_gemm(random.Random(seed * 31 + shape[0]), soc)
    run_case(soc, fields, seed)


@pytest.mark.parametrize("shape", [(1, 1), (1, 3)])
def test_accumulate_onto_the_row_just_written(shape):
    """Tiles accumulating onto the same rows back to back: the read of a row in the cycle it is
    written must see the new value (the engine forwards it)."""
    soc = soc_for(*shape)
    fields = dict(a_row=0, b_row=soc.sp_depth, c_row=5, k=1, mt=1, nt=4, a_ps=1, b_ps=1,
                  c_ps=0, accumulate=1)
    run_case(soc, fields, seed=1)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_accumulate_forwards_each_distance(k):
    """On a 1×1 array, tiles of depth ``k`` accumulating onto one row give an output row every
    ``k`` cycles: the write pipeline must forward a row 1, 2, 3 or 4 rows ahead (k = 1..4: the
    read misses those writes, the fourth reaching the bank from the scratchpad's write register
    at the read's clock edge) and read it back from the memory from k = 5 on."""
    soc = soc_for(1, 1)
    fields = dict(a_row=0, b_row=soc.sp_depth, c_row=3, k=k, mt=1, nt=6, a_ps=k, b_ps=k,
                  c_ps=0, accumulate=1)
    run_case(soc, fields, seed=2)
