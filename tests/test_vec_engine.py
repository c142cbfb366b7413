"""The vector engine against the golden machine: REQ, RELUB, SGD, FILL, SMX bit-exact, busy
cycles exactly the golden timing; RELUBs over their own rows, and on the SoC the ones the ISA
refuses (``Error.ROW_OVERLAP``)."""

import random

import pytest
import torch
from amaranth.hdl import Module
from amaranth.lib import wiring

from spec import isa
from spec.isa import Op, Error
from spec.csr import Csr, encode_status
from spec.params import Config, ArrayConfig
from spec.soc import SocConfig
from spec.softmax_tables import INV_TEMP_ONE
from spec.timing import REQ_LATENCY, SGD_LATENCY, VEC_READ_STAGES
from golden.fixedpoint import LaneGenerators
from golden.machine import Machine
from rtl.vec_engine import VecEngine
from rtl.scratchpad import Scratchpad
from sim.soc import run_program
from firmware.asm import Assembler
from tests.simutil import run_sim

SOC = SocConfig(config=Config(array=ArrayConfig(rows=4, cols=4)), mem_words=1024,
                sp_banks=4, sp_depth=32, acc_banks=2, acc_depth=32)


class _Harness(wiring.Component):
    def __init__(self, soc):
        self.soc = soc
        self.eng = VecEngine(soc)
        L = soc.lanes
        # the engine's read ports are late ones, as in the SoC (rtl.soc.memory_system): the row
        # two cycles after the read
        self.sp = Scratchpad(lanes=L, elem_width=16, banks=soc.sp_banks, depth=soc.sp_depth,
                             read_ports=2, write_ports=2, late_read_ports=2)
        self.acc = Scratchpad(lanes=L, elem_width=32, banks=soc.acc_banks, depth=soc.acc_depth,
                              read_ports=1, write_ports=1, late_read_ports=1)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.eng, m.submodules.sp, m.submodules.acc = self.eng, self.sp, self.acc
        e = self.eng
        wiring.connect(m, e.sp_x, self.sp.read[0])
        wiring.connect(m, e.sp_y, self.sp.read[1])
        wiring.connect(m, e.sp_w, self.sp.write[0])
        wiring.connect(m, e.sp_m, self.sp.write[1])
        wiring.connect(m, e.acc_rd, self.acc.read[0])
        wiring.connect(m, e.acc_wr, self.acc.write[0])
        return m


def rows_in(rng, bank, n):
    d = SOC.sp_depth
    return bank * d + rng.randrange(0, d - n + 1)


def random_op(rng):
    L = SOC.lanes
    kind = rng.choice(["REQ", "RELUB", "SGD", "FILL", "SMX"])
    n = rng.randint(1, 6)
    lanes = rng.randint(1, L)
    if kind == "REQ":
        return Op.REQ, dict(src=rng.randrange(0, SOC.acc_rows - n), dst=rows_in(rng, 0, n),
                            rows=n, lanes=lanes, shift=rng.choice([0, 1, 7, 16, 20, 32]),
                            relu=rng.randint(0, 1), rounding=rng.randint(0, 1),
                            mask_en=rng.randint(0, 1), mask_row=rows_in(rng, 1, n))
    if kind == "RELUB":
        g_row, mask_row = rows_in(rng, 0, n), rows_in(rng, 1, n)
        dst = rows_in(rng, rng.randrange(4), n)
        for src in (g_row, mask_row):       # ahead inside a source: refused (ROW_OVERLAP)
            if isa.writes_ahead(src, dst, n):
                dst = src
        return Op.RELUB, dict(g_row=g_row, mask_row=mask_row, dst=dst, rows=n, lanes=lanes)
    if kind == "SGD":
        return Op.SGD, dict(w_row=rows_in(rng, 2, n), g_row=rng.randrange(0, SOC.acc_rows - n),
                            rows=n, lanes=lanes, lr_shift=rng.choice([0, 5, 16, 32]),
                            lr_mul=rng.choice([1, 3, 65535]), wd_mul=rng.choice([0, 2]),
                            rounding=rng.randint(0, 1))
    if kind == "FILL":
        space = rng.randint(0, 1)
        lim = 1 << (15 if space == 0 else 31)
        rows_total = SOC.sp_rows if space == 0 else SOC.acc_rows
        return Op.FILL, dict(space=space, dst=rng.randrange(0, rows_total - n), rows=n,
                             value=rng.randrange(-lim, lim))
    classes = rng.randint(1, 7)
    mode = rng.randint(0, 1)
    return Op.SMX, dict(mode=mode, z_row=rows_in(rng, 0, classes), t_row=rows_in(rng, 1, classes),
                        dst=rows_in(rng, rng.choice([2, 3]), classes), classes=classes,
                        samples=rng.randint(1, L), z_frac=rng.choice([4, 8]),
                        grad_shift=rng.choice([0, 3]),
                        inv_temp=rng.choice([INV_TEMP_ONE, INV_TEMP_ONE // 4, 0]))


def reads_of(op, fields):
    """The rows ``op`` reads through ``sp_x``, ``sp_y`` and ``acc_rd``: the cycles each port's
    ``en`` must be high (SMX reads its group ``samples + 1`` times)."""
    n = fields.get("rows", 0)
    if op == Op.SMX:
        n = fields["classes"] * (fields["samples"] + 1)
        return n, n * fields["mode"], 0
    return (n * (op in (Op.RELUB, Op.SGD)), n * (op == Op.RELUB), n * (op in (Op.REQ, Op.SGD)))


def run_ops(ops, seed, checked=True):
    """Run ``ops`` on the engine and on golden (each checked by golden's checker unless not
    ``checked``) from the same random scratchpads; compare scratchpads, busy cycles, saturation
    counts and the cycles each read port is enabled (no read the operation does not need: in
    the SoC another unit may use that bank)."""
    g = torch.Generator().manual_seed(seed)
    L = SOC.lanes
    sp = torch.randint(-32768, 32768, (SOC.sp_rows, L), generator=g)
    sp[SOC.sp_depth:2 * SOC.sp_depth] = torch.randint(-2, 3, (SOC.sp_depth, L), generator=g)
    acc = torch.randint(-(1 << 31), 1 << 31, (SOC.acc_rows, L), generator=g)
    acc[::3] >>= 14                           # some rows that do not saturate
    m = Machine(SOC)
    m.sp[:] = sp
    m.acc[:] = acc
    m.rng = LaneGenerators(seed + 1, SOC.lanes)       # as after SEED seed + 1
    expect_busy = []
    for op, fields in ops:
        if checked:
            m._check(op, fields)
        m._execute(op, fields)
        expect_busy.append(m.timing.duration(m, op, fields))

    dut = _Harness(SOC)
    e = dut.eng
    got = {}

    async def tb(ctx):
        for r in range(SOC.sp_rows):
            ctx.set(dut.sp.cell(r), sp[r].tolist())
        for r in range(SOC.acc_rows):
            ctx.set(dut.acc.cell(r), acc[r].tolist())
        ctx.set(e.seed, seed + 1)
        ctx.set(e.seed_stb, 1)
        await ctx.tick()
        ctx.set(e.seed_stb, 0)
        busy, reads = [], []
        ports = (e.sp_x, e.sp_y, e.acc_rd)
        for op, fields in ops:
            ctx.set(e.ir, isa.encode(op, **fields))
            ctx.set(e.start, 1)
            en = [ctx.get(p.en) for p in ports]
            await ctx.tick()
            ctx.set(e.start, 0)
            n = 0
            while ctx.get(e.busy):
                en = [x + ctx.get(p.en) for x, p in zip(en, ports)]
                n += 1
                await ctx.tick()
                assert n < 5000
            busy.append(n)
            reads.append(tuple(en))
        got["busy"], got["reads"] = busy, reads
        for _ in range(dut.sp.write_latency):   # the last row's write reaches its bank
            await ctx.tick()
        got["sp"] = [list(ctx.get(dut.sp.cell(r))) for r in range(SOC.sp_rows)]
        got["acc"] = [list(ctx.get(dut.acc.cell(r))) for r in range(SOC.acc_rows)]
        got["sat"] = (ctx.get(e.sat_req), ctx.get(e.sat_sgd))

    run_sim(dut, tb)
    for i, (op, fields) in enumerate(ops):
        assert got["busy"][i] == expect_busy[i], \
            f"seed {seed}: op {i} {op.name} busy {got['busy'][i]} != golden {expect_busy[i]}"
        assert got["reads"][i] == reads_of(op, fields), \
            f"seed {seed}: op {i} {op.name} reads (x, y, acc) {got['reads'][i]}"
    assert got["sp"] == m.sp.tolist(), f"seed {seed}: operand scratchpad differs"
    assert got["acc"] == m.acc.tolist(), f"seed {seed}: accumulator scratchpad differs"
    assert got["sat"] == (m.counters["sat_req"], m.counters["sat_sgd"]), f"seed {seed}"


@pytest.mark.parametrize("seed", range(8))
def test_random_vector_ops(seed):
    rng = random.Random(seed)
    run_ops([random_op(rng) for _ in range(6)], seed)


@pytest.mark.parametrize("k", [1, REQ_LATENCY, REQ_LATENCY + VEC_READ_STAGES - 1,
                               REQ_LATENCY + VEC_READ_STAGES])
def test_relub_onto_rows_it_still_reads(k):
    """RELUB with ``dst = g_row + k``: row ``g_row + k + t`` is read ``REQ_LATENCY +
    VEC_READ_STAGES + 1 - k`` cycles before its bank writes destination row ``t`` over it (the
    scratchpad registers its writes: the bank writes a cycle after the engine presents the row),
    so it reads the old row, as golden does. The ISA refuses every such RELUB
    (``Error.ROW_OVERLAP``, from ``k = 1``: at ``k = REQ_LATENCY + VEC_READ_STAGES + 1`` the row is
    read in the cycle its bank writes it, which the collision-free banks leave undefined, and from
    the next ``k`` the engine reads the new rows); golden's checker is bypassed: this is the
    engine's margin, not a legal program."""
    n = k + 4
    run_ops([(Op.RELUB, dict(g_row=2, mask_row=SOC.sp_depth, dst=2 + k, rows=n, lanes=SOC.lanes))],
            seed=k, checked=False)


@pytest.mark.parametrize("mode", [0, 1])
def test_smx_onto_rows_it_still_reads(mode):
    """SMX may write over its logit and target rows at any offset (each lane is written after
    its last read; ``docs/isa.md``): ``dst`` from ``z_row − classes + 1`` to ``z_row + classes −
    1`` (and the same around ``t_row``), every sample count's last lane."""
    cl, z, t = 7, 10, SOC.sp_depth + 10
    ops = []
    for base in (z, t) if mode else (z,):
        for k in range(-cl + 1, cl):
            ops.append((Op.SMX, dict(mode=mode, z_row=z, t_row=t, dst=base + k, classes=cl,
                                     samples=1 + (k % SOC.lanes), z_frac=8, grad_shift=0,
                                     inv_temp=INV_TEMP_ONE)))
    run_ops(ops, seed=30 + mode)


def test_units_take_their_latencies_from_spec():
    from rtl.postproc import PostProcessor
    assert PostProcessor.LATENCY == REQ_LATENCY == SGD_LATENCY


# --- on the SoC: the sequencer refuses the RELUBs the engine would get wrong ------------------

SOC_SMALL = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=1024,
                      sp_banks=4, sp_depth=16, acc_banks=2, acc_depth=16, selector=None)


@pytest.mark.parametrize("g_row,mask_row,dst", [
    (0, 16, 1), (0, 16, 10), (0, 16, 11), (0, 16, 15),      # ahead of g_row: k = 1, 10, 11, 15
    (32, 16, 27), (0, 37, 48), (33, 0, 48),     # ahead of mask_row; ending on the last row
    (0, 16, 0), (16, 32, 5), (11, 32, 0), (12, 32, 28),  # in place, backward, beside
])
def test_relub_overlaps_on_the_soc(g_row, mask_row, dst):
    """16-row RELUBs on a small SoC after DMA loads of random rows, the destination rows stored
    back: the error code, pc, cycles, memories and counters of golden. ``dst − src`` of 11 and
    15 are the engine's wrong cases (it reads rows it already wrote); every ``0 < dst − src <
    16`` halts with ``Error.ROW_OVERLAP`` at the RELUB, as golden does."""
    soc, n, rng = SOC_SMALL, 16, random.Random(g_row * 64 + mask_row + dst)
    data = soc.mem_words // 2
    p = Assembler()
    for bank in range(soc.sp_banks):          # random rows: every operand bank
        p.dma(direction=0, space=0, transpose=0, elem_words=1, rm=0, mem_off=data + bank * 64,
              sp_row=bank * soc.sp_depth, rows=soc.sp_depth, cols=soc.lanes, stride=soc.lanes)
    p.relub(g_row=g_row, mask_row=mask_row, dst=dst, rows=n, lanes=soc.lanes)
    p.dma(direction=1, space=0, transpose=0, elem_words=1, rm=0, mem_off=data + 256, sp_row=dst,
          rows=n, cols=soc.lanes, stride=soc.lanes)
    p.halt()
    words = p.words()
    image = words + [0] * (data - len(words)) + \
        [rng.choice([0, 0, rng.randrange(1 << 16)]) for _ in range(soc.mem_words - data)]
    m = Machine(soc)
    m.write_words(0, image)
    r = m.run()
    ahead = any(isa.writes_ahead(s, dst, n) for s in (g_row, mask_row))
    assert (r.error, r.pc) == ((Error.ROW_OVERLAP, 32) if ahead else (Error.NONE, 48))
    rt = run_program(soc, image)
    csr = rt["csr"]
    assert csr[Csr.STATUS] == encode_status(False, True, r.error)
    assert (csr[Csr.PC], csr[Csr.INSNS]) == (r.pc, r.instructions)
    assert csr[Csr.CYCLES_LO] | csr[Csr.CYCLES_HI] << 32 == r.cycles
    assert (rt["mem"], rt["sp"], rt["acc"]) == (m.mem.tolist(), m.sp.tolist(), m.acc.tolist())
