# amaranth: UnusedElaboratable=no
"""Banked scratchpad (rtl/scratchpad.py) against a cycle-level Python model of its ports."""

import random

import pytest

from rtl.scratchpad import Scratchpad
from rtl.spport import ReadPortSignature, WritePortSignature
from tests.simutil import run_sim


def test_constructor_validation():
    kw = dict(lanes=4, elem_width=16, banks=2, depth=8)
    with pytest.raises(ValueError, match=r"^Scratchpad depth must be a power of two, not 12$"):
        Scratchpad(**{**kw, "depth": 12})
    with pytest.raises(ValueError, match=r"^Scratchpad lanes must be a positive integer, not 0$"):
        Scratchpad(**{**kw, "lanes": 0})
    with pytest.raises(TypeError, match=r"^Scratchpad banks must be a positive integer, not 2\.0$"):
        Scratchpad(**{**kw, "banks": 2.0})
    with pytest.raises(ValueError, match=r"^Scratchpad read ports must be a positive integer, "
                                         r"not 0$"):
        Scratchpad(**kw, read_ports=0)
    with pytest.raises(ValueError, match=r"^Scratchpad element width must be a positive integer"):
        Scratchpad(**{**kw, "elem_width": 0})
    with pytest.raises(ValueError, match=r"^Scratchpad late read ports must be 0 to 2, not 3$"):
        Scratchpad(**kw, read_ports=2, late_read_ports=3)
    with pytest.raises(TypeError, match=r"^Scratchpad late read ports must be an integer"):
        Scratchpad(**kw, late_read_ports=None)
    sp = Scratchpad(**kw, read_ports=2)
    assert sp.rows == 16 and len(sp.read) == 2 and len(sp.write) == 1
    assert sp.read[0].signature.members == ReadPortSignature(16, 16, 4).flip().members
    assert sp.write[0].signature.members == WritePortSignature(16, 16, 4).flip().members
    with pytest.raises(IndexError, match=r"^Scratchpad row 16 is outside 0\.\.15$"):
        sp.cell(16)


@pytest.mark.parametrize("lanes, elem_width, banks, depth, seed, late", [
    (3, 16, 3, 4, 1, 0),       # 3 banks: addresses 12..15 are outside
    (2, 32, 2, 8, 2, 0),
    (4, 16, 1, 1, 3, 0),       # one row
    (3, 16, 3, 4, 4, 1),       # read port 0 late (the DMA's in the memory system)
    (2, 32, 2, 8, 5, 2),
])
def test_random_ports(lanes, elem_width, banks, depth, seed, late):
    """Two read and two write ports, random traffic with bank conflicts and per-lane enables;
    the first ``late`` read ports see what an ordinary port would have seen a cycle before."""
    rng = random.Random(seed)
    sp = Scratchpad(lanes=lanes, elem_width=elem_width, banks=banks, depth=depth,
                    read_ports=2, write_ports=2, late_read_ports=late)
    lo, hi = -(1 << (elem_width - 1)), (1 << (elem_width - 1)) - 1
    addr_space = 1 << len(sp.read[0].addr)
    rows = {r: [0] * lanes for r in range(sp.rows)}
    bank_out = [[0] * lanes for _ in range(banks)]
    sel = [0, 0]
    before = (None, None)             # (bank_out, sel) a cycle before

    def value():
        return rng.choice((lo, hi, 0, -1, rng.randint(lo, hi)))

    async def tb(ctx):
        nonlocal before
        for cycle in range(300):
            reads = [(rng.random() < 0.6, rng.randrange(addr_space)) for _ in sp.read]
            writes = [(rng.randrange(1 << lanes) if rng.random() < 0.6 else 0,
                       rng.randrange(addr_space), [value() for _ in range(lanes)])
                      for _ in sp.write]
            for port, (en, addr) in zip(sp.read, reads):
                ctx.set(port.en, en)
                ctx.set(port.addr, addr)
            for port, (en, addr, data) in zip(sp.write, writes):
                ctx.set(port.en, en)
                ctx.set(port.addr, addr)
                ctx.set(port.data, data)
            await ctx.tick()
            # Model: each bank serves its lowest-numbered port; reads see the old contents but
            # in the lanes the bank writes into the row read (undefined on the FPGA; the
            # simulation inverts them, so that a unit's use of one shows).
            winner = {}                   # bank -> (lane enables, row) of the write it takes
            for en, addr, data in writes:
                bank = addr // depth
                if en and bank < banks and bank not in winner:
                    winner[bank] = (en, addr, data)
            served = set()
            for p, (en, addr) in enumerate(reads):
                bank = addr // depth
                if en:
                    if bank < banks and bank not in served:
                        w_en, w_addr, _ = winner.get(bank, (0, None, None))
                        hit = w_en if w_addr == addr else 0
                        bank_out[bank] = [~x if hit >> lane & 1 else x
                                          for lane, x in enumerate(rows[addr])]
                        served.add(bank)
                    sel[p] = bank
            for en, addr, data in winner.values():
                for lane in range(lanes):
                    if en >> lane & 1:
                        rows[addr][lane] = data[lane]
            for p, port in enumerate(sp.read):
                outs, sels = before if p < late else (bank_out, sel)
                if sels is not None and sels[p] < banks:
                    got = list(ctx.get(port.data))
                    assert got == outs[sels[p]], f"seed {seed}, cycle {cycle}, read port {p}"
            before = ([list(row) for row in bank_out], list(sel))
        for r in range(sp.rows):
            assert list(ctx.get(sp.cell(r))) == rows[r], f"seed {seed}, row {r}"

    run_sim(sp, tb)


def test_parallel_banks_and_hold():
    """A and B rows from two banks and a write to a third in one cycle; data holds while idle."""
    sp = Scratchpad(lanes=2, elem_width=16, banks=3, depth=4, read_ports=2, write_ports=1)

    async def tb(ctx):
        for r in range(sp.rows):
            ctx.set(sp.cell(r), [100 * r, 100 * r + 1])
        a, b, w = sp.read[0], sp.read[1], sp.write[0]
        ctx.set(a.addr, 1)                  # bank 0
        ctx.set(b.addr, 6)                  # bank 1
        ctx.set(w.addr, 9)                  # bank 2
        ctx.set(w.data, [-5, 7])
        for s in (a.en, b.en, w.en):
            ctx.set(s, 0b11 if s is w.en else 1)
        await ctx.tick()
        for s in (a.en, b.en, w.en):
            ctx.set(s, 0)
        assert list(ctx.get(a.data)) == [100, 101]
        assert list(ctx.get(b.data)) == [600, 601]
        assert list(ctx.get(sp.cell(9))) == [-5, 7]
        for _ in range(3):
            await ctx.tick()
            assert list(ctx.get(a.data)) == [100, 101]
            assert list(ctx.get(b.data)) == [600, 601]

    run_sim(sp, tb)
