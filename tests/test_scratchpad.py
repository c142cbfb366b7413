# amaranth: UnusedElaboratable=no
"""Banked scratchpad (rtl/scratchpad.py) against a cycle-level Python model of its ports."""

import functools
import operator
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
    with pytest.raises(ValueError, match=r"^Scratchpad write latency must be 0 or 1, not 2$"):
        Scratchpad(**kw, write_latency=2)
    with pytest.raises(TypeError, match=r"^Scratchpad write latency must be an integer"):
        Scratchpad(**kw, write_latency=True)
    sp = Scratchpad(**kw, read_ports=2)
    assert sp.rows == 16 and len(sp.read) == 2 and len(sp.write) == 1
    assert sp.write_latency == 1
    assert sp.read[0].signature.members == ReadPortSignature(16, 16, 4).flip().members
    assert sp.write[0].signature.members == WritePortSignature(16, 16, 4).flip().members
    with pytest.raises(IndexError, match=r"^Scratchpad row 16 is outside 0\.\.15$"):
        sp.cell(16)


@pytest.mark.parametrize("lanes, elem_width, banks, depth, seed, late, ports, owners", [
    (3, 16, 3, 4, 1, 0, 2, False),     # 3 banks: addresses 12..15 are outside
    (2, 32, 2, 8, 2, 0, 2, False),
    (4, 16, 1, 1, 3, 0, 2, False),     # one row
    (3, 16, 3, 4, 4, 1, 2, False),     # read port 0 late (the DMA's in the memory system)
    (2, 32, 2, 8, 5, 2, 2, False),
    (3, 16, 3, 4, 6, 0, 3, True),      # one user per bank and cycle: the sequencer's promise
    (2, 16, 4, 4, 7, 1, 4, True),
    (3, 32, 2, 8, 8, 2, 3, True),
    (2, 16, 5, 2, 9, 0, 6, True),      # as many ports as the memory system's operand scratchpad
])
@pytest.mark.parametrize("write_latency", [1, 0])
def test_random_ports(lanes, elem_width, banks, depth, seed, late, ports, owners, write_latency):
    """``ports`` read and ``ports`` write ports, random traffic with per-lane enables; the first
    ``late`` read ports see what an ordinary port would have seen a cycle before, and the banks
    perform each cycle the writes presented ``write_latency`` cycles before.

    With ``owners`` each bank has at most one read port and one write port in a cycle (a port
    that would share one is idle, its address still pointing there): every port then gets
    exactly what it asked for. Otherwise ports clash, and the model expects the simulation's
    defined junk for a behaviour that is undefined on the FPGA.
    """
    rng = random.Random(seed)
    sp = Scratchpad(lanes=lanes, elem_width=elem_width, banks=banks, depth=depth,
                    read_ports=ports, write_ports=ports, late_read_ports=late,
                    write_latency=write_latency)
    lo, hi = -(1 << (elem_width - 1)), (1 << (elem_width - 1)) - 1
    addr_space = 1 << len(sp.read[0].addr)
    rows = {r: [0] * lanes for r in range(sp.rows)}
    bank_out = [[0] * lanes for _ in range(banks)]
    sel = [0] * ports
    before = (None, None)             # (bank_out, sel) a cycle before
    presented = [[] for _ in range(write_latency)]  # the writes of the last cycles, oldest first

    def value():
        return rng.choice((lo, hi, 0, -1, rng.randint(lo, hi)))

    def one_per_bank(ports_traffic, en_of):
        """Idle the ports that would share a bank with a port before them (in random order)."""
        taken = set()
        order = list(range(len(ports_traffic)))
        rng.shuffle(order)
        for p in order:
            t = ports_traffic[p]
            if en_of(t):
                if t[1] // depth in taken:
                    ports_traffic[p] = (0,) + t[1:]
                taken.add(t[1] // depth)
        return ports_traffic

    async def tb(ctx):
        nonlocal before
        for cycle in range(300):
            reads = [(int(rng.random() < 0.6), rng.randrange(addr_space)) for _ in sp.read]
            writes = [(rng.randrange(1 << lanes) if rng.random() < 0.6 else 0,
                       rng.randrange(addr_space), [value() for _ in range(lanes)])
                      for _ in sp.write]
            if owners:
                reads = one_per_bank(reads, lambda t: t[0])
                writes = one_per_bank(writes, lambda t: t[0])
            for port, (en, addr) in zip(sp.read, reads):
                ctx.set(port.en, en)
                ctx.set(port.addr, addr)
            for port, (en, addr, data) in zip(sp.write, writes):
                ctx.set(port.en, en)
                ctx.set(port.addr, addr)
                ctx.set(port.data, data)
            await ctx.tick()
            presented.append(writes)
            landing = presented.pop(0)    # the writes the banks perform in this cycle
            # Model, per bank, with the writes landing now: one write port writes its lanes; two
            # or more write nothing (in simulation; undefined on the FPGA). One read port reads
            # the old row, but in the lanes written into it, inverted (undefined on the FPGA);
            # two or more read the row at the OR of their row addresses (the FPGA's bank sees
            # that address) all inverted.
            for bank in range(banks):
                readers = [addr for en, addr in reads if en and addr // depth == bank]
                writers = [w for w in landing if w[0] and w[1] // depth == bank]
                assert not owners or (len(readers) <= 1 and len(writers) <= 1)
                if readers:
                    row = bank * depth + functools.reduce(operator.or_,
                                                          (a % depth for a in readers))
                    if len(readers) > 1:
                        hit = (1 << lanes) - 1
                    elif len(writers) == 1 and writers[0][1] == row:
                        hit = writers[0][0]
                    else:
                        hit = 0
                    bank_out[bank] = [~x if hit >> lane & 1 else x
                                      for lane, x in enumerate(rows[row])]
                if len(writers) == 1:
                    en, addr, data = writers[0]
                    for lane in range(lanes):
                        if en >> lane & 1:
                            rows[addr][lane] = data[lane]
            for p, (en, addr) in enumerate(reads):
                if en:
                    sel[p] = addr // depth
            for p, port in enumerate(sp.read):
                outs, sels = before if p < late else (bank_out, sel)
                if sels is not None and sels[p] < banks:
                    got = list(ctx.get(port.data))
                    assert got == outs[sels[p]], f"seed {seed}, cycle {cycle}, read port {p}"
            before = ([list(row) for row in bank_out], list(sel))
        for r in range(sp.rows):
            assert list(ctx.get(sp.cell(r))) == rows[r], f"seed {seed}, row {r}"

    run_sim(sp, tb)


@pytest.mark.parametrize("write_latency", [1, 0])
def test_conflict_visible(write_latency):
    """Two ports on one bank in one cycle (undefined on the FPGA): in simulation both read ports
    get a row inverted, the late one a cycle later, and neither write happens (in the cycle the
    writes land); the next cycle with one port per bank works again."""
    sp = Scratchpad(lanes=2, elem_width=16, banks=2, depth=4, read_ports=3, write_ports=2,
                    late_read_ports=1, write_latency=write_latency)
    untouched = [[500, 501], [600, 601], [700, 701]]

    async def tb(ctx):
        for r in range(sp.rows):
            ctx.set(sp.cell(r), [100 * r, 100 * r + 1])
        (r0, r1, r2), (w0, w1) = sp.read, sp.write
        ctx.set(w0.data, [-5, 7])
        ctx.set(w1.data, [-9, 11])
        for port, addr in ((r0, 1), (r1, 2), (r2, 6), (w0, 5), (w1, 6)):
            ctx.set(port.addr, addr)
            ctx.set(port.en, 0b11 if port in (w0, w1) else 1)
        await ctx.tick()                    # bank 0: two reads; bank 1: a read and two writes
        for port in (r0, r1, r2, w0, w1):
            ctx.set(port.en, 0)
        clash = [~300, ~301]                # rows 1 | 2 = 3, inverted
        assert list(ctx.get(r1.data)) == clash
        assert list(ctx.get(r2.data)) == [600, 601]
        assert [list(ctx.get(sp.cell(r))) for r in (5, 6, 7)] == untouched
        await ctx.tick()                    # the writes have landed, or landed a cycle ago
        assert [list(ctx.get(sp.cell(r))) for r in (5, 6, 7)] == untouched
        assert list(ctx.get(r0.data)) == clash
        assert list(ctx.get(r1.data)) == clash          # held while no port reads bank 0
        ctx.set(r0.addr, 2)
        ctx.set(r0.en, 1)
        ctx.set(w1.en, 0b01)
        await ctx.tick()
        ctx.set(w1.en, 0)
        await ctx.tick()
        assert list(ctx.get(r0.data)) == [200, 201]
        assert list(ctx.get(sp.cell(6))) == [-9, 601]

    run_sim(sp, tb)


@pytest.mark.parametrize("write_latency", [1, 0])
def test_parallel_banks_and_hold(write_latency):
    """A and B rows from two banks and a write to a third in one cycle; data holds while idle."""
    sp = Scratchpad(lanes=2, elem_width=16, banks=3, depth=4, read_ports=2, write_ports=1,
                    write_latency=write_latency)

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
        for _ in range(write_latency):
            assert list(ctx.get(sp.cell(9))) == [900, 901]
            await ctx.tick()
        assert list(ctx.get(sp.cell(9))) == [-5, 7]
        for _ in range(3):
            await ctx.tick()
            assert list(ctx.get(a.data)) == [100, 101]
            assert list(ctx.get(b.data)) == [600, 601]

    run_sim(sp, tb)


@pytest.mark.parametrize("write_latency", [1, 0])
@pytest.mark.parametrize("port", [0, 1])
def test_write_timing(write_latency, port):
    """A write presented in cycle 0, read in cycles 0..3 (the row the next cycle): a read before
    cycle ``write_latency`` returns the old row, the read in that cycle collides with the bank's
    write (the lanes written inverted, the simulation's mark for undefined), later reads return
    the new row; the storage changes at the end of cycle ``write_latency``. The port's signals
    change after cycle 0 (a registered write keeps what was presented)."""
    sp = Scratchpad(lanes=3, elem_width=16, banks=2, depth=4, read_ports=1, write_ports=2,
                    write_latency=write_latency)
    old, new = [500, 501, 502], [-5, 501, 7]            # lanes 0 and 2 written

    async def tb(ctx):
        for r in range(sp.rows):
            ctx.set(sp.cell(r), [100 * r, 100 * r + 1, 100 * r + 2])
        rd, wr = sp.read[0], sp.write[port]
        ctx.set(rd.addr, 5)
        ctx.set(rd.en, 1)
        ctx.set(wr.addr, 5)
        ctx.set(wr.data, [-5, -6, 7])
        ctx.set(wr.en, 0b101)
        for cycle in range(4):
            await ctx.tick()
            ctx.set(wr.addr, 4)                          # another row of the same bank
            ctx.set(wr.data, [1, 2, 3])
            ctx.set(wr.en, 0)
            if cycle < write_latency:
                want = old
            elif cycle == write_latency:
                want = [~500, 501, ~502]
            else:
                want = new
            assert list(ctx.get(rd.data)) == want, f"read in cycle {cycle}"
            assert list(ctx.get(sp.cell(5))) == (old if cycle < write_latency else new), \
                f"row after cycle {cycle}"
        assert list(ctx.get(sp.cell(4))) == [400, 401, 402]

    run_sim(sp, tb)
