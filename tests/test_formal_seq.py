"""Formal proof (SymbiYosys, k-induction) that the sequencer always halts or makes progress.

:class:`SequencerHarness` runs a :class:`rtl.sequencer.Sequencer` with every input free: any
instruction line from any fetch, any start, entry and budget, any DMA fault code, any LDW data,
and units whose ``busy`` rises only after their ``start`` and lasts at most :data:`UNIT_CYCLES`
cycles, with a main memory that acknowledges within :data:`MEM_CYCLES`. It proves, for every
reachable state:

- ``progress``: a running program never spends more than :func:`progress_bound` cycles in a
  row without fetching its next instruction or halting (no deadlock between an instruction and
  the units and banks it waits for);
- ``scoreboard``: a unit is never started while it is busy, and at most one unit per cycle;
- ``watchdog``: a program with a budget halts by cycle ``budget +`` :func:`watchdog_bound`.

Each claim fails on a sequencer with an injected bug. ``docs/formal.md`` has the claims, the
invariants the induction needs and the timings.
"""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assume, Cat, Const, Elaboratable, Module, Signal

from rtl.sequencer import Sequencer
from sim.formal import Claims, prove
from spec import isa
from spec.isa import Unit
from spec.params import Config, ArrayConfig
from spec.selection import SelectorConfig
from spec.soc import SocConfig
from spec.timing import FETCH_CYCLES, ISSUE_LATENCY

#: A small SoC with every unit, the selector included (the sequencer's logic depends on the sizes
#: only through its range checks).
SOC = SocConfig(config=Config(array=ArrayConfig(rows=2, cols=2)), mem_words=64,
                sp_banks=2, sp_depth=4, acc_banks=2, acc_depth=2,
                selector=SelectorConfig(classes=3, k=2, p=2))

#: The units' promise: a unit's ``busy`` is high for at most this many consecutive cycles. More
#: than the fetch of the next instruction takes, so that instructions do wait for units.
UNIT_CYCLES = FETCH_CYCLES + 2

#: Main memory's promise: an LDW/STW request is acknowledged within this many cycles.
MEM_CYCLES = 2


def progress_bound(unit_cycles, mem_cycles):
    """Cycles a running program may spend in a row outside FETCH, plus one, for units that are
    busy at most ``unit_cycles`` cycles and a memory that acknowledges within ``mem_cycles``.

    An instruction fetched in cycle ``t`` reaches ISSUE in ``t + FETCH_CYCLES``; a unit the
    instruction before it issued (in ``t - 1``) starts ``ISSUE_LATENCY`` cycles later and is busy
    until ``t - 1 + ISSUE_LATENCY + unit_cycles`` at most, so ISSUE ends by
    ``t + max(FETCH_CYCLES, unit_cycles + ISSUE_LATENCY)`` (the halting HALT or error included),
    and an LDW/STW then spends at most ``mem_cycles`` in MEM. The proof shows it is tight: one
    less fails (``docs/formal.md``)."""
    return max(FETCH_CYCLES - 1, unit_cycles - 1 + ISSUE_LATENCY) + mem_cycles + 1


def watchdog_bound(unit_cycles, mem_cycles):
    """The most cycles past its budget in which a program with a budget is still running.

    Worst cases: an LDW/STW issued the cycle before the budget runs out (its memory access, then
    the next instruction's fetch, whose ISSUE halts), or a unit's instruction issued then (the
    unit starts ``ISSUE_LATENCY`` cycles later; ISSUE waits for it to finish before halting).
    Tight, as :func:`progress_bound`."""
    return max(unit_cycles + ISSUE_LATENCY, mem_cycles + FETCH_CYCLES)


#: The induction's length: longer than any run of cycles without progress.
DEPTH = max(progress_bound(UNIT_CYCLES, MEM_CYCLES), watchdog_bound(UNIT_CYCLES, MEM_CYCLES)) + 4


class SequencerHarness(Elaboratable):
    """Proof obligations around ``dut``, a :class:`rtl.sequencer.Sequencer` (see the module).

    The harness counts, for each unit, its consecutive busy cycles; for the sequencer, the
    consecutive running cycles outside FETCH (``stuck``); and it latches the budget of each
    start. Besides the claims it asserts the invariants that make them inductive: the sequencer
    is in one of its states, and the watchdog's registers agree with the cycle count.

    After elaboration ``claims`` (a :class:`sim.formal.Claims`) holds each claim's source
    locations.
    """

    def __init__(self, dut, *, unit_cycles=UNIT_CYCLES, mem_cycles=MEM_CYCLES, tighter=()):
        self.dut = dut
        self.unit_cycles = unit_cycles
        self.mem_cycles = mem_cycles
        # ``tighter``: claims whose bound is one cycle less than proven (to show it is tight)
        self.progress_bound = progress_bound(unit_cycles, mem_cycles) - ("progress" in tighter)
        self.watchdog_bound = watchdog_bound(unit_cycles, mem_cycles) - ("watchdog" in tighter)
        self.claims = Claims()

    def _check(self, m, name, test):
        self.claims.add(m, name, test, src_loc_at=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        in_state = dut.in_state

        # --- the environment ----------------------------------------------------------------
        m.d.comb += [
            dut.start.eq(AnySeq(1)), dut.entry.eq(AnySeq(32)), dut.budget.eq(AnySeq(32)),
            dut.f_data.eq(AnySeq(isa.INSN_BITS)), dut.m_rdata.eq(AnySeq(32)),
            dut.dma_fault.eq(AnySeq(8)),
        ]
        starts = Cat(dut.dma_start, dut.gemm_start, dut.vec_start, dut.sel_start)
        busys = Cat(dut.dma_busy, dut.gemm_busy, dut.vec_busy, dut.sel_busy)
        run_width = (self.unit_cycles + 1).bit_length()
        for u in Unit:
            busy = Signal(name=f"{u.name.lower()}_busy")
            started = Signal(name=f"{u.name.lower()}_started")   # ``start`` last cycle
            run = Signal(run_width, name=f"{u.name.lower()}_run")  # busy cycles before this one
            m.d.comb += [busy.eq(AnySeq(1)), busys[u].eq(busy)]
            m.d.sync += [started.eq(starts[u]), run.eq(Mux0(busy, run + 1))]
            was_busy = run != 0
            # busy rises only the cycle after a start; it lasts at most ``unit_cycles`` cycles
            m.d.comb += [Assume(~busy | was_busy | started),
                         Assume(~busy | (run < self.unit_cycles))]
        mem_wait = Signal(range(self.mem_cycles + 1))
        m.d.comb += dut.m_ack.eq(AnySeq(1))
        m.d.sync += mem_wait.eq(Mux0(dut.m_req & ~dut.m_ack, mem_wait + 1))
        m.d.comb += [Assume(~dut.m_ack | dut.m_req),
                     Assume(~dut.m_req | dut.m_ack | (mem_wait < self.mem_cycles - 1))]

        # --- invariants -----------------------------------------------------------------------
        self._check(m, "state", Cat(*in_state.values()).any())
        running = dut.running
        budget = Signal(32)
        with m.If(dut.start & ~running):
            m.d.sync += budget.eq(dut.budget)
        with m.If(running):
            self._check(m, "state", ~in_state["IDLE"])
            self._check(m, "watchdog", dut.wd_on == (budget != 0))
            with m.If(dut.wd_on):
                self._check(m, "watchdog", dut.wd_left == (budget - dut.cycles)[:32])
                self._check(m, "watchdog", dut.wd_expired == (dut.cycles >= budget))
        with m.Else():
            self._check(m, "state", in_state["IDLE"])

        # --- the claims ---------------------------------------------------------------------
        stuck = Signal(range(self.progress_bound + 2))
        moving = in_state["FETCH"] | ~running
        m.d.sync += stuck.eq(Mux0(~moving, stuck + 1))
        self._check(m, "progress", moving | (stuck < self.progress_bound))

        self._check(m, "scoreboard", (starts & busys) == 0)
        self._check(m, "scoreboard", (starts & (starts - 1))[:len(starts)] == 0)
        # the start strobes are registers: high only the cycle after ISSUE (ISSUE_LATENCY = 1)
        assert ISSUE_LATENCY == 1
        issued = Signal()
        m.d.sync += issued.eq(running & in_state["ISSUE"])
        self._check(m, "scoreboard", (starts == 0) | issued)

        with m.If(running & dut.wd_on):
            self._check(m, "watchdog", dut.cycles <= budget + self.watchdog_bound)
        return m

    def failed_checks(self, result):
        """The names of the checks a :class:`sim.formal.FormalResult` reports as failed."""
        return self.claims.failed(result)


def Mux0(keep, value):
    """``value`` where ``keep``, else 0."""
    return keep.replicate(len(value)) & value


def prove_sequencer(dut, *, mode="prove", depth=None, **options):
    """Run :class:`SequencerHarness` on ``dut``; returns the harness and the result."""
    harness = SequencerHarness(dut, **options)
    if depth is None:
        depth = max(harness.progress_bound, harness.watchdog_bound) + 4
    return harness, prove(harness, depth=depth, mode=mode, name="seq")


def test_sequencer_always_halts_or_makes_progress():
    _, result = prove_sequencer(Sequencer(SOC))
    assert result.passed, str(result)


@pytest.mark.slow
def test_sequencer_progress_with_slower_units_and_memory():
    _, result = prove_sequencer(Sequencer(SOC), unit_cycles=FETCH_CYCLES + 5, mem_cycles=3)
    assert result.passed, str(result)


#: Depth of the bounded checks that find the counterexamples below from reset: a program that
#: starts, issues a unit's instruction, then one that waits for it past the bound.
BUG_DEPTH = 2 * DEPTH


@pytest.mark.parametrize("claim", ["progress", "watchdog"])
def test_sequencer_bounds_are_tight(claim):
    """One cycle less than each proven bound is refuted (a counterexample, not a tool error)."""
    harness, result = prove_sequencer(Sequencer(SOC), mode="bmc", depth=BUG_DEPTH,
                                      tighter=(claim,))
    assert result.status == "FAIL", str(result)
    assert harness.failed_checks(result) == {claim}, str(result)


class StaleBankHold(Sequencer):
    """Bug: a bank stays held after the unit that used it is idle (the busy test is dropped from
    the bank conflicts): the next instruction on that bank waits for ever."""

    @staticmethod
    def _hazards(x_need, x_hold, unit_busy):
        return (x_need & unit_busy) != 0, x_hold != 0


class IssueToBusyUnit(Sequencer):
    """Bug: an instruction does not wait for the units it needs idle (only for its banks)."""

    @staticmethod
    def _hazards(x_need, x_hold, unit_busy):
        return Const(0), (x_hold & unit_busy) != 0


class LateWatchdog(Sequencer):
    """Bug: the watchdog expires a cycle late (its flag set when ``left`` is 0, not 1)."""

    @staticmethod
    def _expiring(left):
        return left == 0


#: Each injected bug and the claims that must catch it.
BUGS = {StaleBankHold: {"progress"}, IssueToBusyUnit: {"scoreboard"}, LateWatchdog: {"watchdog"}}


@pytest.mark.parametrize("bug", BUGS.keys(), ids=lambda bug: bug.__name__)
def test_sequencer_proof_fails_on_injected_bug(bug):
    harness, result = prove_sequencer(bug(SOC), mode="bmc", depth=BUG_DEPTH)
    assert result.status == "FAIL", str(result)    # a counterexample, not a tool error
    assert harness.failed_checks(result) & BUGS[bug], (harness.failed_checks(result), str(result))
