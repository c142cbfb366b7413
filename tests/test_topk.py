"""Balanced selection: golden offline rule == golden streaming rule == RTL, for any stream order.

Golden tests run hundreds of random streams with many ties (scores from a small pool that holds
the most negative and most positive values) and check every permutation-invariance claim; RTL
tests run many short streams per simulation (clearing in between) and compare the read-out beat
for beat with the golden read-out, plus the cycle formulas at full throughput and random
back-pressure elsewhere. Every failure message carries its seed.
"""

import itertools
import random

import pytest
import torch
from amaranth.hdl import Fragment

from golden import selection as gs
from rtl.topk import BalancedSelector, TopKSelector, TopPFilter
from spec.selection import SelectorConfig
from tests.simutil import random_ready, run_sim


# --- Random streams ----------------------------------------------------------------------------

def score_pool(rng, width):
    """A small pool of scores (heavy ties) including, often, the extremes of a signed width."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    mode = rng.random()
    if mode < 0.1:
        return [rng.randint(lo, hi)]                       # every score equal
    pool = {rng.randint(max(lo, -2), min(hi, 3)) for _ in range(rng.randint(1, 4))}
    if mode < 0.6:
        pool |= {lo, hi}
    return sorted(pool)


def random_probs(rng, n, classes, width):
    pool = score_pool(rng, width)
    return [[rng.choice(pool) for _ in range(classes)] for _ in range(n)]


def random_ids(rng, n, id_width):
    ids = rng.sample(range(1 << id_width), n)
    top = (1 << id_width) - 1
    if n and top not in ids and rng.random() < 0.3:     # the largest id takes part
        ids[rng.randrange(n)] = top
    return ids


def beat_tuples(beats):
    return [(b.sample_id, b.cls, b.score, b.rank, b.count, int(b.last)) for b in beats]


# --- Golden: offline == streaming, for every order ---------------------------------------------

def brute_force(probs, ids, classes, k, p):
    """The rule straight from its definition (no shared code with either model)."""
    per = []
    for c in range(classes):
        cand = []
        for sid, row in zip(ids, probs):
            rank = sorted(range(classes), key=lambda j: (-row[j], j))
            if c in rank[:p]:
                cand.append((sid, row[c]))
        cand.sort(key=lambda e: (-e[1], e[0]))
        per.append(tuple(cand[:k]))
    return tuple(per)


def test_golden_offline_equals_streaming_any_order():
    for seed in range(300):
        rng = random.Random(seed)
        classes = rng.randint(1, 7)
        k, p = rng.randint(1, 6), rng.randint(1, classes)
        n = rng.randint(0, 40)
        width = rng.choice([2, 3, 8, 16])
        probs = random_probs(rng, n, classes, width)
        ids = random_ids(rng, n, 12)
        t = torch.tensor(probs, dtype=torch.int64).reshape(n, classes)
        offline = gs.select_offline(t, k, p, ids, soft=True)
        assert offline.per_class == brute_force(probs, ids, classes, k, p), f"seed {seed}"
        for perm in range(4):
            order = list(range(n))
            rng.shuffle(order)
            stream = gs.StreamingSelector(classes, k, p, soft=True)
            stream.push_all([probs[i] for i in order], [ids[i] for i in order])
            assert stream.result() == offline, f"seed {seed}, permutation {perm}"
            assert stream.held == sum(offline.counts) <= k * classes, f"seed {seed}"
        # the permuted offline rule is the same too
        order = list(range(n))
        rng.shuffle(order)
        assert gs.select_offline(t[order] if n else t, k, p, [ids[i] for i in order],
                                 soft=True) == offline, f"seed {seed}"


def test_golden_selection_properties():
    """Each class: ≤ k entries, strictly ranked, only top-P candidates, nothing better left out."""
    for seed in range(100):
        rng = random.Random(1000 + seed)
        classes = rng.randint(1, 6)
        k, p, n = rng.randint(1, 5), rng.randint(1, classes), rng.randint(0, 30)
        probs = random_probs(rng, n, classes, 4)
        ids = random_ids(rng, n, 10)
        sel = gs.select_offline(probs if n else torch.zeros(0, classes), k, p, ids, soft=True)
        rows = dict(zip(ids, probs))
        for c, lst in enumerate(sel.per_class):
            assert len(lst) <= k
            keys = [(-s, i) for i, s in lst]
            assert keys == sorted(keys) and len(set(keys)) == len(keys), f"seed {seed}"
            cands = [(-rows[i][c], i) for i in ids if c in [cc for cc, _ in gs.top_p(rows[i], p)]]
            assert len(lst) == min(k, len(cands)), f"seed {seed}"
            for i, s in lst:
                assert rows[i][c] == s
            if lst:
                assert all(key >= keys[-1] for key in cands if key not in keys), f"seed {seed}"
        # soft labels: one per distinct selected sample, its top-P pairs
        chosen = sorted({i for lst in sel.per_class for i, _ in lst})
        assert [sid for sid, _ in sel.soft] == chosen
        for sid, pairs in sel.soft:
            assert list(pairs) == gs.top_p(rows[sid], p)
        assert sel.records == tuple((i, c, s) for c, lst in enumerate(sel.per_class)
                                    for i, s in lst)


def test_golden_tie_breaks():
    # within a class: equal scores rank by lower id
    sel = gs.select_offline([[5, 0], [5, 0], [5, 0]], k=2, p=1, sample_ids=[7, 3, 9])
    assert sel.per_class == (((3, 5), (7, 5)), ())
    # a sample's top-P: equal probabilities prefer the lower class
    assert gs.top_p([2, 7, 7, 1], 2) == [(1, 7), (2, 7)]
    sel = gs.select_offline([[3, 3, 3]], k=1, p=1)
    assert sel.per_class == (((0, 3),), (), ())
    # the most negative score is still a score (an entry, not an empty slot)
    sel = gs.select_offline([[-32768]], k=1, p=1)
    assert sel.per_class == (((0, -32768),),)
    # a sample may be selected for several of its top-P classes
    sel = gs.select_offline([[4, 3, 0], [1, 1, 2]], k=1, p=2, soft=True)
    assert sel.per_class == (((0, 4),), ((0, 3),), ((1, 2),))
    assert sel.soft == ((0, ((0, 4), (1, 3))), (1, ((2, 2), (0, 1))))


def test_golden_streaming_state_is_bounded():
    rng = random.Random(7)
    classes, k, p = 4, 3, 2
    stream = gs.StreamingSelector(classes, k, p, soft=True)
    probs = random_probs(rng, 2000, classes, 8)
    for sid, row in enumerate(probs):
        stream.push(sid, row)
        assert stream.held <= k * classes
        assert len(stream._soft_labels) <= k * classes and stream._soft_labels.keys() == \
            {i for lst in stream._lists for _, i in lst}
    assert stream.result() == gs.select_offline(probs, k, p, soft=True)
    stream.clear()
    assert stream.result().counts == (0,) * classes


def test_golden_float_probabilities():
    rng = random.Random(3)
    probs = torch.softmax(torch.randn(50, 5, generator=torch.Generator().manual_seed(3)), dim=1)
    off = gs.select_offline(probs, 4, 2)
    order = list(range(50))
    rng.shuffle(order)
    assert gs.StreamingSelector(5, 4, 2).push_all(probs[order], order).result() == off
    assert all(isinstance(s, float) for _, _, s in off.records)


def test_golden_entries_offline_equals_streaming():
    for seed in range(100):
        rng = random.Random(2000 + seed)
        classes, k = rng.randint(1, 5), rng.randint(1, 5)
        n = rng.randint(0, 40)
        pool = score_pool(rng, 3)
        ents = [(sid, rng.randrange(classes), rng.choice(pool))
                for sid in rng.sample(range(256), n)]
        off = gs.select_entries_offline(ents, classes, k)
        for _ in range(3):
            rng.shuffle(ents)
            s = gs.StreamingSelector(classes, k)
            kept = [s.push_entry(*e) for e in ents]
            assert s.result() == off, f"seed {seed}"
            assert sum(kept) >= sum(off.counts), f"seed {seed}"


def test_golden_entries_stream_matches_rows():
    assert gs.entries([[1, 5, 5], [0, 0, 2]], 2, [4, 9]) == \
        [(4, 1, 5), (4, 2, 5), (9, 2, 2), (9, 0, 0)]


def test_golden_argument_checks():
    with pytest.raises(ValueError, match=r"^Selector P must not exceed the number of classes "
                                         r"\(2\), not 3$"):
        gs.select_offline([[1, 2]], 1, 3)
    with pytest.raises(ValueError, match=r"^Selector K must be a positive integer, not 0$"):
        gs.select_offline([[1, 2]], 0, 1)
    with pytest.raises(ValueError, match=r"^Sample ids must be unique$"):
        gs.select_offline([[1], [2]], 1, 1, [3, 3])
    with pytest.raises(ValueError, match=r"^Expected 2 sample ids, not 1$"):
        gs.select_offline([[1], [2]], 1, 1, [3])
    with pytest.raises(ValueError, match=r"^Probabilities must be a 2-D"):
        gs.select_offline([1, 2], 1, 1)
    with pytest.raises(ValueError, match=r"^Class must be in range \[0, 2\), not 2$"):
        gs.StreamingSelector(2, 1).push_entry(0, 2, 5)
    with pytest.raises(TypeError, match=r"^Selector classes must be a positive integer, "
                                        r"not 'a'$"):
        gs.StreamingSelector("a", 1)
    with pytest.raises(ValueError, match=r"^Sample ids must be unique within class 0$"):
        gs.select_entries_offline([(1, 0, 3), (1, 0, 4)], 1, 2)


def test_cycle_models():
    def costs(k, slots, entries):
        sel, out = gs.StreamingSelector(1, k), []
        for sid, score in entries:
            out.append(sel.entry_cycles(sid, 0, score, slots))
            sel.push_entry(sid, 0, score)
        return out, sel.result().per_class[0]

    # one entry per word: first entry, shifts over 2 and 3 words (the top one holding the empty
    # slot), rejected, a shift over 3 words of a full class, rejected (ties 6 but id 6 > 3),
    # beats only the dropped rank (words 2 and 1)
    got, kept = costs(3, 1, [(1, 5), (2, 7), (3, 6), (4, 1), (5, 9), (6, 5), (0, 6)])
    assert got == [2, 6, 7, 2, 7, 2, 6] and kept == ((5, 9), (2, 7), (0, 6))
    # two per word, K = 5: each new best shifts from the word of rank n (1, 2, 2, 3 words);
    # full: 25 lands at rank 3 (words 2 and 1), 45 at rank 1 (words 2 down to 0)
    got, kept = costs(5, 2, [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50), (6, 25), (7, 45)])
    assert got == [2, 5, 6, 6, 7, 6, 7] and kept == ((5, 50), (7, 45), (4, 40), (3, 30), (6, 25))
    # four per word (the default): every shift here stays within word 0
    got, _ = costs(3, 4, [(1, 5), (2, 7), (3, 6), (4, 1), (5, 9)])
    assert got == [2, 5, 5, 2, 5]
    one = gs.StreamingSelector(1, 1)
    assert [one.entry_cycles(1, 0, 3), one.push_entry(1, 0, 3), one.entry_cycles(2, 0, 4)] \
        == [2, True, 2]
    assert gs.queue_cycles([2, 5, 5], 2) == (5, 14)
    assert gs.queue_cycles([2, 5, 5], 4) == (3, 14)
    assert gs.queue_cycles([], 4) == (0, 0)
    assert gs.selfeed_cycles([2, 2], 2, 3, 1) == 15
    assert gs.selfeed_cycles([2], 1, 3, 1) == 2 * 2 + 7 + 2   # a row every 2 cycles
    assert gs.balanced_cycles([2], 1, 2, 1, 4) == 6
    assert gs.balanced_cycles([], 0, 2, 1, 4) == 0
    assert gs.clear_cycles(10) == 10
    # a read per record and per empty class; the last record leaves the FIFO 3 cycles after its
    # read (block RAM, its output register, the FIFO)
    assert gs.readout_cycles([0, 3, 1, 0]) == 8
    assert gs.readout_cycles([0, 3, 1, 2], wait=7) == 7 + 10
    assert gs.readout_cycles([0, 0, 0]) == 3
    with pytest.raises(ValueError, match=r"^Queue depth must be an integer of at least 2, "
                                         r"not 1$"):
        gs.queue_cycles([1], 1)
    with pytest.raises(ValueError, match=r"^Selector word slots must be a power of two, not 3$"):
        one.entry_cycles(2, 0, 4, 3)


# --- Storage accounting ------------------------------------------------------------------------

def test_storage_figures():
    # Default (digits): 10 classes, K = 100, P = 1, 16-bit ids and scores.
    s = gs.storage()
    assert (s.record_bits, s.record_bytes, s.record_words) == (36, 5, 3)
    assert s.softmax_bytes == 20 and s.ratio == 4.0
    assert s.soft_label_bytes == 5
    assert s.on_chip_bits == 100 * 10 * 32 + 10 * 7
    # ImageNet-scale (the paper): 1000 classes, 32-bit ids (a billion images), K = 16 000, P = 10.
    s = gs.storage(SelectorConfig(classes=1000, k=16000, p=10, id_width=32))
    assert (s.record_bits, s.record_bytes) == (58, 8)
    assert s.softmax_bytes == 2000 and s.ratio == 250.0
    assert s.soft_label_bytes == 4 + 33
    with pytest.raises(TypeError, match=r"^Selector configuration must be a SelectorConfig"):
        gs.storage(10)


# --- Constructor validation --------------------------------------------------------------------

@pytest.mark.parametrize("make, exc, msg", [
    (lambda: TopKSelector(0, 1), ValueError, r"Selector classes must be a positive integer, not 0"),
    (lambda: TopKSelector(2, 0), ValueError, r"Selector K must be a positive integer, not 0"),
    (lambda: TopKSelector(2, 1.5), TypeError, r"Selector K must be a positive integer, not 1\.5"),
    (lambda: TopKSelector(2, 1, score_width=0), ValueError,
     r"Score width must be a positive integer, not 0"),
    (lambda: TopKSelector(2, 1, id_width=True), TypeError,
     r"Sample id width must be a positive integer, not True"),
    (lambda: TopKSelector(2, 1, queue_depth=0), ValueError,
     r"Selector queue depth must be a positive integer, not 0"),
    (lambda: TopKSelector(2, 1, queue_depth=1), ValueError,
     r"Selector queue depth must be at least 2, not 1"),
    (lambda: TopKSelector(2, 1, word_slots=6), ValueError,
     r"Selector word slots must be a power of two, not 6"),
    (lambda: TopPFilter(3, 0), ValueError, r"Selector P must be a positive integer, not 0"),
    (lambda: TopPFilter(3, 4), ValueError,
     r"Selector P must not exceed the number of classes \(3\), not 4"),
    (lambda: BalancedSelector(3, 2, 4), ValueError,
     r"Selector P must not exceed the number of classes \(3\), not 4"),
    (lambda: BalancedSelector("3", 2, 1), TypeError,
     r"Selector classes must be a positive integer, not '3'"),
    (lambda: SelectorConfig(id_width=-1), ValueError,
     r"Sample id width must be a positive integer, not -1"),
])
def test_constructor_checks(make, exc, msg):
    with pytest.raises(exc, match=f"^{msg}$"):
        make()


def test_properties():
    sel = TopKSelector(4, 3, score_width=8, id_width=5, queue_depth=6, word_slots=2)
    assert (sel.queue_depth, sel.word_slots) == (6, 2)
    assert (sel.classes, sel.k, sel.score_width, sel.id_width) == (4, 3, 8, 5)
    f = TopPFilter(4, 2)
    assert (f.classes, f.p) == (4, 2)
    top = BalancedSelector(4, 3, 2)
    assert top.config == SelectorConfig(classes=4, k=3, p=2)
    for dut in (sel, f, top):
        Fragment.get(dut, None)   # elaborates


# --- RTL drivers -------------------------------------------------------------------------------

MAX_WAIT = 10_000   # cycles: a hang fails the test instead of simulating for ever


def bounded():
    """Counts cycles of a wait loop; raises TimeoutError past MAX_WAIT."""
    for n in range(MAX_WAIT):
        yield n
    raise TimeoutError(f"no progress after {MAX_WAIT} cycles")


async def strobe(ctx, sig):
    ctx.set(sig, 1)
    await ctx.tick()
    ctx.set(sig, 0)


async def wait_idle(ctx, busy):
    """Tick until ``busy`` is low; return the number of busy cycles."""
    for n in bounded():
        _, _, b = await ctx.tick().sample(busy)
        if not b:
            return n


async def read_out(ctx, dut, ready):
    """Strobe a read-out, collect its beats; return (beats, busy cycles). ``ready`` iterates 0/1."""
    ctx.set(dut.readout_stb, 1)
    await ctx.tick()
    ctx.set(dut.readout_stb, 0)
    beats, busy_cycles = [], 0
    for _ in bounded():
        r = next(ready)
        ctx.set(dut.o_record.ready, r)
        _, _, b, v, pl = await ctx.tick().sample(dut.busy, dut.o_record.valid, dut.o_record.payload)
        if not b:
            assert not v
            break
        busy_cycles += 1
        if v and r:
            beats.append((pl.id, pl.cls, pl.score, pl.rank, pl.count, pl.last))
    ctx.set(dut.o_record.ready, 0)
    return beats, busy_cycles


async def send(ctx, stream, payloads, gaps):
    """Offer ``payloads`` in order; ``gaps`` yields 1 to leave a cycle idle before a beat.
    Return the number of cycles until the last was accepted."""
    cycles = 0
    for pl in payloads:
        while next(gaps):
            ctx.set(stream.valid, 0)
            await ctx.tick()
            cycles += 1
        ctx.set(stream.payload, pl)
        ctx.set(stream.valid, 1)
        for _ in bounded():
            _, _, ready = await ctx.tick().sample(stream.ready)
            cycles += 1
            if ready:
                break
    ctx.set(stream.valid, 0)
    return cycles


def never():
    return itertools.repeat(0)


# --- RTL: TopKSelector on raw entry streams ----------------------------------------------------

async def wait_drained(ctx, dut):
    """Tick until ``draining`` is low; return the number of cycles waited."""
    for n in bounded():
        if not ctx.get(dut.draining):
            return n
        await ctx.tick()


def collision_monitor(selector):
    """A process that fails the simulation in the first cycle in which ``selector`` uses a word
    of its block RAM whose read collided with a write to its address (the claim behind
    ``rtl.memattrs.COLLISION_FREE``: never)."""
    async def watch(ctx):
        cycle = 0
        async for _, _, hit in ctx.tick().sample(selector.collision):
            assert not hit, f"cycle {cycle}: a word read during a write of its address was used"
            cycle += 1
    return watch


def run_selector_streams(classes, k, score_width, id_width, seed, streams, max_entries=12,
                         queue_depth=4, word_slots=4, selector=TopKSelector):
    dut = selector(classes, k, score_width=score_width, id_width=id_width,
                   queue_depth=queue_depth, word_slots=word_slots)
    rng = random.Random(seed)
    checked = []

    async def tb(ctx):
        for s in range(streams):
            where = f"seed {seed}, stream {s}"
            n = rng.randint(0, min(max_entries, 1 << id_width))
            pool = score_pool(rng, score_width)
            ents = [(sid, rng.randrange(classes), rng.choice(pool))
                    for sid in random_ids(rng, n, id_width)]
            streaming = gs.StreamingSelector(classes, k)
            costs = []
            for sid, c, v in ents:
                costs.append(streaming.entry_cycles(sid, c, v, word_slots))
                streaming.push_entry(sid, c, v)
            accepted, idle = gs.queue_cycles(costs, queue_depth)
            golden = gs.select_entries_offline(ents, classes, k)
            assert streaming.result().per_class == golden.per_class, where
            full = rng.random() < 0.5
            gaps = never() if full else random_ready(rng.random(), 0.3)
            cycles = await send(ctx, dut.i_entry,
                                [{"id": i, "cls": c, "score": v} for i, c, v in ents], gaps)
            ready = itertools.repeat(1) if full else random_ready(rng.random(), 0.5)
            if rng.random() < 0.5:
                # read-out strobed at once: it waits for the queue and the inserter
                beats, busy = await read_out(ctx, dut, ready)
                if full:
                    assert cycles == accepted, where
                    wait = max(0, idle - cycles)
                    assert busy == gs.readout_cycles(golden.counts, wait), where
            else:
                drained = await wait_drained(ctx, dut)
                if full:
                    assert (cycles, cycles + drained) == (accepted, idle), where
                assert ctx.get(dut.total) == sum(golden.counts), where
                beats, busy = await read_out(ctx, dut, ready)
                if full:
                    assert busy == gs.readout_cycles(golden.counts), where
            assert beats == beat_tuples(golden.beats()), where
            assert ctx.get(dut.total) == sum(golden.counts), where
            await strobe(ctx, dut.clear_stb)
            assert await wait_idle(ctx, dut.busy) == gs.clear_cycles(classes), where
            assert ctx.get(dut.total) == 0, where
            checked.append(s)

    run_sim(dut, tb, processes=[collision_monitor(dut)])
    assert len(checked) == streams, f"seed {seed}: testbench stopped early"


@pytest.mark.parametrize("classes, k, score_width, id_width, seed, depth, slots", [
    (1, 1, 16, 4, 11, 4, 4),
    (3, 2, 3, 6, 12, 2, 1),
    (5, 4, 16, 16, 13, 4, 2),
    (5, 4, 16, 16, 13, 4, 4),
    # long shifts, a queue that fills, K not a multiple of the word, classes not a power of two
    (2, 16, 16, 16, 14, 3, 4),
    (3, 9, 4, 7, 15, 8, 2),
    (3, 9, 4, 7, 15, 8, 4),
    (1, 21, 16, 8, 16, 2, 1),
    (1, 21, 16, 8, 16, 2, 8),
])
def test_rtl_selector_entries(classes, k, score_width, id_width, seed, depth, slots):
    run_selector_streams(classes, k, score_width, id_width, seed, streams=20,
                         max_entries=12 if k <= 8 else 4 * k, queue_depth=depth,
                         word_slots=slots)


class _LateWriteSelector(TopKSelector):
    """A deliberately broken variant: each word is written a cycle later, so that a shift of
    the next entry of the same class reads the word just appended while it is written."""
    _WRITE_STAGES = 2


def test_collision_monitor_catches_a_colliding_variant():
    """The monitor is not vacuous: the late-write variant uses a word read during its write."""
    with pytest.raises(AssertionError, match="a word read during a write of its address"):
        run_selector_streams(2, 16, 16, 16, 14, streams=20, max_entries=64, queue_depth=3,
                             selector=_LateWriteSelector)


# --- RTL: BalancedSelector on probability streams ----------------------------------------------

def run_balanced_streams(classes, k, p, score_width, id_width, seed, streams, max_samples,
                         min_samples=0):
    dut = BalancedSelector(classes, k, p, score_width=score_width, id_width=id_width)
    rng = random.Random(seed)
    checked = []

    def beats_of(probs, ids):
        return [{"id": sid, "score": v, "last": c == classes - 1}
                for sid, row in zip(ids, probs) for c, v in enumerate(row)]

    async def feed(ctx, probs, ids, full):
        """Stream samples in; return cycles until ``pending`` is low (first beat = cycle 0)."""
        gaps = never() if full else random_ready(rng.random(), 0.3)
        cycles = await send(ctx, dut.i_prob, beats_of(probs, ids), gaps)
        for _ in bounded():
            if not ctx.get(dut.pending):
                break
            await ctx.tick()
            cycles += 1
        await ctx.tick()
        return cycles

    async def tb(ctx):
        for s in range(streams):
            where = f"seed {seed}, stream {s}"
            n = rng.randint(min_samples, min(max_samples, 1 << id_width))
            probs = random_probs(rng, n, classes, score_width)
            ids = random_ids(rng, n, id_width)
            golden = gs.StreamingSelector(classes, k, p).push_all(
                torch.tensor(probs, dtype=torch.int64).reshape(n, classes), ids).result()
            assert golden == gs.select_offline(
                torch.tensor(probs, dtype=torch.int64).reshape(n, classes), k, p, ids), where
            full = rng.random() < 0.5
            split = rng.randint(0, n) if rng.random() < 0.3 else n
            cycles = await feed(ctx, probs[:split], ids[:split], full)
            if full:
                streaming = gs.StreamingSelector(classes, k, p)
                costs = [c for sid, row in zip(ids[:split], probs[:split])
                         for c in streaming.push_costs(sid, row)]
                assert cycles == gs.balanced_cycles(costs, split, classes, p,
                                                    dut.queue_depth), where
            if split < n:   # a read-out mid-stream: a snapshot of the prefix, then go on
                prefix = gs.select_offline(torch.tensor(probs[:split], dtype=torch.int64)
                                           .reshape(split, classes), k, p, ids[:split])
                beats, _ = await read_out(ctx, dut, random_ready(rng.random(), 0.5))
                assert beats == beat_tuples(prefix.beats()), where
                await feed(ctx, probs[split:], ids[split:], full)
            assert ctx.get(dut.total) == sum(golden.counts), where
            ready = itertools.repeat(1) if full else random_ready(rng.random(), 0.5)
            beats, busy = await read_out(ctx, dut, ready)
            assert beats == beat_tuples(golden.beats()), where
            if full:
                assert busy == gs.readout_cycles(golden.counts), where   # pending fell: drained
            if rng.random() < 0.25:   # the same samples in another order: the same selection
                order = list(range(n))
                rng.shuffle(order)
                await strobe(ctx, dut.clear_stb)
                await wait_idle(ctx, dut.busy)
                await feed(ctx, [probs[i] for i in order], [ids[i] for i in order], False)
                again, _ = await read_out(ctx, dut, random_ready(rng.random(), 0.5))
                assert again == beats, f"{where}, permuted"
            assert not ctx.get(dut.error), where
            await strobe(ctx, dut.clear_stb)
            assert await wait_idle(ctx, dut.busy) == gs.clear_cycles(classes), where
            checked.append(s)

    run_sim(dut, tb, processes=[collision_monitor(dut.selector)])
    assert len(checked) == streams, f"seed {seed}: testbench stopped early"


BALANCED_CONFIGS = [   # classes, k, p, score_width, id_width
    (1, 1, 1, 16, 4),
    (3, 2, 1, 4, 5),
    (4, 3, 2, 16, 16),
    (5, 2, 5, 3, 6),
    (6, 4, 3, 8, 8),
    (3, 11, 2, 8, 8),
]


@pytest.mark.parametrize("config", BALANCED_CONFIGS)
def test_rtl_balanced(config):
    k = config[1]
    run_balanced_streams(*config, seed=100 + BALANCED_CONFIGS.index(config), streams=40,
                         max_samples=8 if k <= 8 else 3 * k)


def test_rtl_clear_while_draining():
    """A clear strobed while entries wait in the queue and one is being inserted (a long shift):
    the clear drops them, so the next selection holds only what came after the clear (several
    rounds, the next stream starting as soon as the clear ends)."""
    classes, k = 2, 40
    dut = TopKSelector(classes, k, score_width=8, id_width=10, queue_depth=4)
    rng = random.Random(17)
    checked = []

    async def tb(ctx):
        for rnd in range(6):
            ids = random_ids(rng, 2 * k, 10)
            old = [(i, rng.randrange(classes), rng.randrange(-128, 128)) for i in ids[:k + 7]]
            new = [(i, rng.randrange(classes), rng.randrange(-128, 128)) for i in ids[k + 7:]]
            await send(ctx, dut.i_entry, [{"id": i, "cls": c, "score": v} for i, c, v in old],
                       never())
            assert ctx.get(dut.draining)
            await strobe(ctx, dut.clear_stb)            # the cycle after the last old entry
            assert await wait_idle(ctx, dut.busy) == gs.clear_cycles(classes)
            assert not ctx.get(dut.draining), "the clear drops the queue and the insertion"
            await send(ctx, dut.i_entry, [{"id": i, "cls": c, "score": v} for i, c, v in new],
                       never())
            beats, _ = await read_out(ctx, dut, random_ready(rng.random(), 0.5))
            golden = gs.select_entries_offline(new, classes, k)
            assert beats == beat_tuples(golden.beats()), f"round {rnd}"
            assert ctx.get(dut.total) == sum(golden.counts), f"round {rnd}"
            await strobe(ctx, dut.clear_stb)
            await wait_idle(ctx, dut.busy)
            checked.append(rnd)

    run_sim(dut, tb, processes=[collision_monitor(dut)])
    assert len(checked) == 6


def test_rtl_framing_error_and_clear():
    classes = 3
    dut = BalancedSelector(classes, 2, 1, score_width=8, id_width=4)

    async def tb(ctx):
        # a sample whose `last` comes one beat early: error, and the beat count still frames
        bad = [{"id": 1, "score": 5, "last": 0}, {"id": 1, "score": 2, "last": 1},
               {"id": 1, "score": 1, "last": 1}]
        await send(ctx, dut.i_prob, bad, never())
        await ctx.tick()
        assert ctx.get(dut.error)
        good = [{"id": 2, "score": v, "last": c == classes - 1} for c, v in enumerate([0, 7, 1])]
        await send(ctx, dut.i_prob, good, never())
        for _ in bounded():
            if not ctx.get(dut.pending):
                break
            await ctx.tick()
        beats, _ = await read_out(ctx, dut, itertools.repeat(1))
        assert beats == [(1, 0, 5, 0, 1, 1), (2, 1, 7, 0, 1, 1)]
        # a partial sample is dropped by clear, and so is the error
        await send(ctx, dut.i_prob, good[:2], never())
        assert ctx.get(dut.pending)
        await strobe(ctx, dut.clear_stb)
        await wait_idle(ctx, dut.busy)
        assert not ctx.get(dut.error) and not ctx.get(dut.pending) and ctx.get(dut.total) == 0
        beats, busy = await read_out(ctx, dut, itertools.repeat(1))
        assert beats == [] and busy == gs.readout_cycles([0] * classes)

    run_sim(dut, tb)


# --- Slow: larger configurations and longer streams --------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("config", [(10, 8, 3, 16, 16), (4, 20, 2, 16, 16), (7, 5, 7, 4, 8)])
def test_rtl_balanced_large(config):
    run_balanced_streams(*config, seed=200, streams=12, max_samples=60)


@pytest.mark.slow
def test_rtl_balanced_default_config():
    """The default configuration (10 classes, K = 100, P = 1) on a digits-sized stream."""
    c = SelectorConfig()
    run_balanced_streams(c.classes, c.k, c.p, c.score_width, c.id_width, seed=400, streams=1,
                         min_samples=1500, max_samples=1800)


@pytest.mark.slow
def test_rtl_selector_long():
    run_selector_streams(6, 5, 4, 10, seed=300, streams=100)
