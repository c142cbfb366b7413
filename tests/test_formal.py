"""Formal proofs (SymbiYosys, k-induction) of the stream buffers, and of their power to fail.

Each proof runs in a few seconds (``docs/formal.md`` has the timings). Each property is also run
on a deliberately broken design and must fail there: a proof that cannot fail proves nothing.
"""

import pytest
from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assume, Elaboratable, Module, Signal, Value, unsigned
from amaranth.lib import data

from rtl.skid import ReadyBuffer, SkidBuffer
from sim.formal import Claims, FormalToolError, prove

#: Width of the harness's beat counters. They wrap; the proof holds for every index modulo
#: 2 ** COUNT_WIDTH, and more than two beats are never in flight.
COUNT_WIDTH = 4

#: Induction length of the skid buffer proofs.
SKID_DEPTH = 4


class SkidBufferHarness(Elaboratable):
    """Proof obligations around a :class:`rtl.skid.SkidBuffer` (``dut``).

    The producer and the consumer are free (``AnySeq``): nothing is assumed of them, not even
    that the producer keeps ``valid`` and ``payload`` until ``ready`` (the buffer needs no such
    promise, so the proof is stronger without it). The claims, on the ports only:

    - ``occupancy``: beats in − beats out = ``o.valid`` + ``~i.ready`` — never more than two
      inside, nothing leaves that did not enter, a beat inside is always offered, a free entry
      always takes one (so no beat is stuck and the buffer never stalls without cause);
    - ``delivery``: for any index *n* and value *v* (``AnyConst``), if the *n*-th beat in
      carries *v* then so does the *n*-th beat out — no loss, duplication, reordering or change;
    - ``protocol``: ``o`` keeps ``valid`` and ``payload`` until ``o.ready``.

    With ``invariants`` (for k-induction) it also asserts where the tracked beat sits while
    inside: ``head`` (in ``o.payload`` when it is the oldest) and ``skid`` (in
    ``dut.skid_payload`` when it is the second). After elaboration ``claims`` (a
    :class:`sim.formal.Claims`) holds each name's source location.
    """

    def __init__(self, dut, *, invariants=True):
        self.dut = dut
        self.invariants = invariants
        self.claims = Claims()

    def _check(self, m, name, test):
        self.claims.add(m, name, test, src_loc_at=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        i, o = dut.i, dut.o
        shape = dut.payload_shape

        m.d.comb += [i.valid.eq(AnySeq(1)), i.payload.eq(AnySeq(shape)), o.ready.eq(AnySeq(1))]
        in_fire = i.valid & i.ready
        out_fire = o.valid & o.ready

        # The buffer keeps its beat until it is taken.
        o_held, o_last = Signal(), Signal(shape)
        m.d.sync += [o_held.eq(o.valid & ~o.ready), o_last.eq(o.payload)]
        with m.If(o_held):
            self._check(m, "protocol", o.valid & (Value.cast(o.payload) == Value.cast(o_last)))

        # Beats in minus beats out is what the two entries hold.
        n_in, n_out = Signal(COUNT_WIDTH), Signal(COUNT_WIDTH)
        with m.If(in_fire):
            m.d.sync += n_in.eq(n_in + 1)
        with m.If(out_fire):
            m.d.sync += n_out.eq(n_out + 1)
        level = Signal(COUNT_WIDTH)
        m.d.comb += level.eq(n_in - n_out)
        self._check(m, "occupancy", level == o.valid + ~i.ready)

        # The tracked beat: the n-th in carries `value`, so must the n-th out.
        index, value = AnyConst(COUNT_WIDTH), AnyConst(shape)
        with m.If(in_fire & (n_in == index)):
            m.d.comb += Assume(Value.cast(i.payload) == Value.cast(value))
        with m.If(out_fire & (n_out == index)):
            self._check(m, "delivery", Value.cast(o.payload) == Value.cast(value))

        if self.invariants:
            position = Signal(COUNT_WIDTH)      # the tracked beat's place in the queue
            m.d.comb += position.eq(index - n_out)
            with m.If((position == 0) & (level >= 1)):
                self._check(m, "head", Value.cast(o.payload) == Value.cast(value))
            with m.If((position == 1) & (level >= 2)):
                self._check(m, "skid", Value.cast(dut.skid_payload) == Value.cast(value))
        return m

    def failed_checks(self, result):
        """The names of the checks a :class:`sim.formal.FormalResult` reports as failed."""
        return self.claims.failed(result)


def prove_skid(dut, *, mode="prove", invariants=True):
    """Run the skid buffer harness on ``dut``; returns the harness and the result."""
    harness = SkidBufferHarness(dut, invariants=invariants)
    return harness, prove(harness, depth=SKID_DEPTH, mode=mode, name="skid")


class DropsWhenFull(SkidBuffer):
    """Injected bug: ``i.ready`` stays high with both entries full, so a beat is overwritten."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


class StallsWhileHeld(SkidBuffer):
    """Injected bug: ``i.ready`` falls while the consumer stalls, so the skid entry is never
    used: nothing is lost, but the buffer refuses a beat it has room for."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.o.valid & ~self.o.ready):
            m.d.comb += self.i.ready.eq(0)
        return m


class RepeatsLastBeat(SkidBuffer):
    """Injected bug: when the last beat inside is taken and none arrives, it is offered again."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.o.valid & self.o.ready & self.skid_empty & ~self.i.valid):
            m.d.sync += self.o.valid.eq(1)
        return m


class CorruptsSkidEntry(SkidBuffer):
    """Injected bug: a beat that waits in the skid entry has its lowest bit flipped."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.o.valid & ~self.o.ready & self.i.valid & self.skid_empty):
            m.d.sync += self.skid_payload.eq(Value.cast(self.i.payload) ^ 1)
        return m


SHAPES = {
    "u8": unsigned(8),
    "u1": unsigned(1),
    "struct": data.StructLayout({"data": unsigned(5), "last": unsigned(1)}),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_skid_buffer_loses_and_duplicates_nothing(shape):
    _, result = prove_skid(SkidBuffer(shape))
    assert result.passed, str(result)
    assert "successful proof by k-induction" in result.log_tail


#: The claims that catch each injected bug at the ports (bounded model check, no invariants).
BUGS = {
    DropsWhenFull: {"occupancy"},
    StallsWhileHeld: {"occupancy"},
    RepeatsLastBeat: {"occupancy", "delivery"},
    CorruptsSkidEntry: {"delivery"},
}


@pytest.mark.parametrize("broken", BUGS.keys(), ids=[bug.__name__ for bug in BUGS])
def test_skid_buffer_proof_fails_on_injected_bug(broken):
    # The k-induction proof fails ...
    harness, result = prove_skid(broken(unsigned(8)))
    assert result.status == "FAIL", str(result)    # a counterexample, not a tool error
    assert not result.passed and harness.failed_checks(result), str(result)
    # ... and so do the claims on the ports alone, within SKID_DEPTH cycles.
    harness, result = prove_skid(broken(unsigned(8)), mode="bmc", invariants=False)
    assert result.status == "FAIL", str(result)
    failed = harness.failed_checks(result)
    assert failed & BUGS[broken] and failed <= BUGS[broken], str(result)


class ReadyBufferHarness(Elaboratable):
    """Proof obligations around a :class:`rtl.skid.ReadyBuffer` (``dut``).

    The consumer is free (``AnySeq``); the producer is free but for the streams' rule, assumed:
    it keeps ``valid`` and ``payload`` until ``ready`` (a pass-through buffer cannot keep ``o``
    stable for a producer that does not). The claims, on the ports only:

    - ``occupancy``: beats in − beats out = ``~i.ready`` — at most one beat inside, and the
      buffer refuses a beat only while it holds one;
    - ``latency``: while nothing is inside, ``o.valid`` is ``i.valid`` (a beat is offered in
      the cycle it arrives, and nothing is offered that did not), and a beat inside is offered;
    - ``delivery``: the *n*-th beat out carries what the *n*-th beat in carried (``AnyConst``
      index and value);
    - ``protocol``: ``o`` keeps ``valid`` and ``payload`` until ``o.ready``.

    With ``invariants`` it also asserts ``entry``: the tracked beat, inside and the oldest, is
    in ``dut.held``.
    """

    def __init__(self, dut, *, invariants=True):
        self.dut = dut
        self.invariants = invariants
        self.claims = Claims()

    def _check(self, m, name, test):
        self.claims.add(m, name, test, src_loc_at=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        i, o = dut.i, dut.o
        shape = dut.payload_shape

        m.d.comb += [i.valid.eq(AnySeq(1)), i.payload.eq(AnySeq(shape)), o.ready.eq(AnySeq(1))]
        in_fire = i.valid & i.ready
        out_fire = o.valid & o.ready

        # The producer keeps its beat until it is taken (assumed), and so must the buffer.
        i_held, i_last = Signal(), Signal(shape)
        o_held, o_last = Signal(), Signal(shape)
        m.d.sync += [i_held.eq(i.valid & ~i.ready), i_last.eq(i.payload),
                     o_held.eq(o.valid & ~o.ready), o_last.eq(o.payload)]
        with m.If(i_held):
            m.d.comb += Assume(i.valid & (Value.cast(i.payload) == Value.cast(i_last)))
        with m.If(o_held):
            self._check(m, "protocol", o.valid & (Value.cast(o.payload) == Value.cast(o_last)))

        n_in, n_out = Signal(COUNT_WIDTH), Signal(COUNT_WIDTH)
        with m.If(in_fire):
            m.d.sync += n_in.eq(n_in + 1)
        with m.If(out_fire):
            m.d.sync += n_out.eq(n_out + 1)
        level = Signal(COUNT_WIDTH)
        m.d.comb += level.eq(n_in - n_out)
        self._check(m, "occupancy", level == ~i.ready)
        self._check(m, "latency", o.valid == (i.valid | (level != 0)))

        index, value = AnyConst(COUNT_WIDTH), AnyConst(shape)
        with m.If(in_fire & (n_in == index)):
            m.d.comb += Assume(Value.cast(i.payload) == Value.cast(value))
        with m.If(out_fire & (n_out == index)):
            self._check(m, "delivery", Value.cast(o.payload) == Value.cast(value))

        if self.invariants:
            with m.If((index == n_out) & (level != 0)):
                self._check(m, "entry", Value.cast(dut.held) == Value.cast(value))
        return m

    def failed_checks(self, result):
        """The names of the checks a :class:`sim.formal.FormalResult` reports as failed."""
        return self.claims.failed(result)


def prove_ready_buffer(dut, *, mode="prove", invariants=True):
    """Run the ready buffer harness on ``dut``; returns the harness and the result."""
    harness = ReadyBufferHarness(dut, invariants=invariants)
    return harness, prove(harness, depth=SKID_DEPTH, mode=mode, name="ready")


class ReadyDropsWhenFull(ReadyBuffer):
    """Injected bug: ``i.ready`` stays high while a beat waits, so a beat is lost."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


class ReadyAddsLatency(ReadyBuffer):
    """Injected bug: a beat is offered only from the entry, a cycle after it arrives (and
    ``o.ready`` is ignored while empty, so every beat goes through the entry)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.o.valid.eq(~self.empty)
        with m.If(self.empty):
            m.d.sync += self.empty.eq(~self.i.valid)
        return m


class ReadyRepeatsBeat(ReadyBuffer):
    """Injected bug: the entry is not emptied when its beat is taken, so it is offered again."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(~self.empty):
            m.d.sync += self.empty.eq(0)
        return m


class ReadyCorruptsEntry(ReadyBuffer):
    """Injected bug: a beat that waits in the entry has its lowest bit flipped."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.empty):
            m.d.sync += self.held.eq(Value.cast(self.i.payload) ^ 1)
        return m


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_ready_buffer_loses_and_duplicates_nothing(shape):
    _, result = prove_ready_buffer(ReadyBuffer(shape))
    assert result.passed, str(result)
    assert "successful proof by k-induction" in result.log_tail


READY_BUGS = {
    ReadyDropsWhenFull: {"occupancy"},
    ReadyAddsLatency: {"occupancy", "latency"},
    ReadyRepeatsBeat: {"occupancy", "latency", "delivery"},
    ReadyCorruptsEntry: {"protocol", "delivery"},
}


@pytest.mark.parametrize("broken", READY_BUGS.keys(), ids=[bug.__name__ for bug in READY_BUGS])
def test_ready_buffer_proof_fails_on_injected_bug(broken):
    harness, result = prove_ready_buffer(broken(unsigned(8)))
    assert result.status == "FAIL", str(result)
    assert not result.passed and harness.failed_checks(result), str(result)
    harness, result = prove_ready_buffer(broken(unsigned(8)), mode="bmc", invariants=False)
    assert result.status == "FAIL", str(result)
    failed = harness.failed_checks(result)
    assert failed & READY_BUGS[broken] and failed <= READY_BUGS[broken], str(result)


def test_prove_checks_arguments():
    with pytest.raises(TypeError, match=r"^Proof depth must be a positive integer, not 2\.0$"):
        prove(SkidBufferHarness(SkidBuffer(1)), depth=2.0)
    with pytest.raises(ValueError, match=r"^Proof depth must be a positive integer, not 0$"):
        prove(SkidBufferHarness(SkidBuffer(1)), depth=0)
    with pytest.raises(ValueError, match=r"^Proof mode must be 'prove' or 'bmc', not 'cover'$"):
        prove(SkidBufferHarness(SkidBuffer(1)), depth=2, mode="cover")


def test_prove_names_a_missing_tool(monkeypatch):
    monkeypatch.setattr("sim.formal.SBY", "no-such-sby")
    with pytest.raises(FormalToolError, match=r"^no-such-sby not found .*pip install"):
        prove(SkidBufferHarness(SkidBuffer(1)), depth=2)
