"""Formal proofs (SymbiYosys, k-induction) of the stream handshakes, and of their power to fail.

Each proof runs in a few seconds (``docs/formal.md`` has the timings). Each property is also run
on a deliberately broken design and must fail there: a proof that cannot fail proves nothing.
"""

import pytest
from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Signal, Value, unsigned
from amaranth.lib import data

from rtl.skid import SkidBuffer
from sim.formal import FormalResult, FormalToolError, prove

#: Width of the harness's beat counters. They wrap; the proof holds for every index modulo
#: 2 ** COUNT_WIDTH, and more than two beats are never in flight.
COUNT_WIDTH = 4

#: Induction length of the skid buffer proofs.
SKID_DEPTH = 4


class SkidBufferHarness(Elaboratable):
    """Proof obligations around a :class:`rtl.skid.SkidBuffer` (``dut``).

    The producer and the consumer are free (``AnySeq``) except that the producer obeys the
    stream protocol (``Assume``: it keeps ``valid`` and ``payload`` until ``ready``). Proven:

    - *occupancy*: beats in − beats out = ``o.valid`` + (skid entry full) ≤ 2, so no beat leaves
      that did not enter and at most two are inside;
    - *no loss, no duplication, order, integrity*: for any index *n* and any value *v*
      (``AnyConst``), if the *n*-th beat in carries *v* then the *n*-th beat out carries *v*;
    - *output protocol*: ``o`` keeps ``valid`` and ``payload`` until ``o.ready``.

    The inductive invariant names where a beat in flight sits: the oldest in ``o.payload``, the
    next in ``dut.skid_payload``.
    """

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        i, o = dut.i, dut.o
        shape = dut.payload_shape

        m.d.comb += [i.valid.eq(AnySeq(1)), i.payload.eq(AnySeq(shape)), o.ready.eq(AnySeq(1))]
        in_fire = i.valid & i.ready
        out_fire = o.valid & o.ready

        # The producer keeps its beat until it is taken (assumed), the buffer likewise (proven).
        i_held, i_last = Signal(), Signal(shape)
        o_held, o_last = Signal(), Signal(shape)
        m.d.sync += [i_held.eq(i.valid & ~i.ready), i_last.eq(i.payload),
                     o_held.eq(o.valid & ~o.ready), o_last.eq(o.payload)]
        with m.If(i_held):
            m.d.comb += Assume(i.valid & (Value.cast(i.payload) == Value.cast(i_last)))
        with m.If(o_held):
            m.d.comb += Assert(o.valid & (Value.cast(o.payload) == Value.cast(o_last)))

        # Occupancy: beats in minus beats out is what the two entries hold.
        n_in, n_out = Signal(COUNT_WIDTH), Signal(COUNT_WIDTH)
        with m.If(in_fire):
            m.d.sync += n_in.eq(n_in + 1)
        with m.If(out_fire):
            m.d.sync += n_out.eq(n_out + 1)
        level = Signal(COUNT_WIDTH)
        m.d.comb += [level.eq(n_in - n_out),
                     Assert(level == o.valid + ~dut.skid_empty),
                     Assert(level <= 2)]

        # A tracked beat: the n-th in carries `value`, so must the n-th out.
        index, value = AnyConst(COUNT_WIDTH), AnyConst(shape)
        with m.If(in_fire & (n_in == index)):
            m.d.comb += Assume(Value.cast(i.payload) == Value.cast(value))
        position = Signal(COUNT_WIDTH)      # the tracked beat's place in the queue, if inside
        m.d.comb += position.eq(index - n_out)
        with m.If((position == 0) & (level >= 1)):
            m.d.comb += Assert(Value.cast(o.payload) == Value.cast(value))
        with m.If((position == 1) & (level >= 2)):
            m.d.comb += Assert(Value.cast(dut.skid_payload) == Value.cast(value))
        return m


def prove_skid(dut, depth=SKID_DEPTH):
    return prove(SkidBufferHarness(dut), depth=depth, name="skid")


class DropsWhenFull(SkidBuffer):
    """Injected bug: ``i.ready`` stays high with both entries full, so a beat is overwritten."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
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
    result = prove_skid(SkidBuffer(shape))
    assert result.passed, str(result)


@pytest.mark.parametrize("broken", [DropsWhenFull, RepeatsLastBeat, CorruptsSkidEntry])
def test_skid_buffer_proof_fails_on_injected_bug(broken):
    result = prove_skid(broken(unsigned(8)))
    assert result.status == "FAIL", str(result)    # a counterexample, not a tool error
    assert not result.passed
    assert result.failed_assertions, str(result)
    assert all("test_formal.py:" in where for where in result.failed_assertions), str(result)


def test_prove_checks_depth():
    with pytest.raises(TypeError, match=r"^Proof depth must be a positive integer, not 2\.0$"):
        prove(SkidBufferHarness(SkidBuffer(1)), depth=2.0)
    with pytest.raises(ValueError, match=r"^Proof depth must be a positive integer, not 0$"):
        prove(SkidBufferHarness(SkidBuffer(1)), depth=0)


def test_prove_names_a_missing_tool(monkeypatch):
    monkeypatch.setattr("sim.formal.SBY", "no-such-sby")
    with pytest.raises(FormalToolError, match=r"^no-such-sby not found .*pip install"):
        prove(SkidBufferHarness(SkidBuffer(1)), depth=2)


def test_result_reads_sby_log():
    result = prove_skid(SkidBuffer(4))
    assert isinstance(result, FormalResult)
    assert result.status == "PASS" and "successful proof by k-induction" in result.log_tail
