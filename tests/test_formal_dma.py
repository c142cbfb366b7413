"""Formal proof (SymbiYosys) that the DMA never leaves main memory or a scratchpad.

:class:`DmaHarness` gives a :class:`rtl.dma.DmaController` any descriptor at any time, any bus
back-pressure and any response data and timing a memory may produce, and claims on its ports that
every bus request and every scratchpad write stays inside the map, and that a faulting descriptor
accesses nothing. The claims are also run on DMAs with injected bugs, where they must fail.
``docs/formal.md`` has what is proven, the timings and what is not proven.
"""

from dataclasses import replace

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assume, Elaboratable, Module, Mux, Signal, Value

from rtl.dma import DmaController, descriptor_layout
from sim.formal import Claims, prove
from spec.memory import LINE_WORDS, Dir, Space
from spec.params import DEFAULT_CONFIG
from spec.soc import SocConfig

#: A small SoC whose sizes are not powers of two, so that an address port can hold an address
#: outside its memory (a port of ``range(n)`` for a power of two ``n`` cannot): main memory of 48
#: words (6-bit addresses), an operand scratchpad of 3 banks × 4 rows (4-bit row addresses), an
#: accumulator scratchpad of 3 banks × 2 rows (3-bit row addresses), 2 lanes.
SOC = SocConfig(config=DEFAULT_CONFIG.with_array(rows=2, cols=2), mem_words=48,
                sp_banks=3, sp_depth=4, acc_banks=3, acc_depth=2, selector=None)

#: Width of the harness's count of requests without a response (a transfer has at most
#: ``rows × lanes × 2`` words, 48 here).
OUTSTANDING_WIDTH = 8

#: Depth of the bounded check in the default suite: from reset, a one-line transfer (descriptor
#: taken in cycle 0, checked in cycles 1-2, request in cycle 3, response in cycle 4, a load's row
#: written in cycle 5, ``done`` in cycle 5 for a store, 6 for a load) and the check of the next
#: descriptor after a store; every shorter prefix of a longer one.
DMA_DEPTH = 7

#: Depth of the slow suite's bounded check (about a minute): a whole two-request transfer (two
#: rows, or a transposed two-word element; ``done`` in cycle 6 for a store, 7 for a load) and the
#: next descriptor taken.
DMA_DEPTH_SLOW = 8


class DmaHarness(Elaboratable):
    """Proof obligations around a :class:`rtl.dma.DmaController` (``dut``) in ``soc``.

    The environment is free (``AnySeq``) in everything a real one may do: a descriptor (any
    field values) offered or not in any cycle, ``bus.req.ready`` in any cycle, responses with any
    data at any time after their requests, any scratchpad read data. The one assumption is the
    bus protocol's: a response answers a request that has none yet (``rsp.valid`` only while a
    request is outstanding).

    The harness keeps its own copy of the descriptor the DMA took and decides from it, with
    full-width arithmetic of its own, whether the descriptor is legal (``golden.dma.check`` passes:
    sizes non-zero, 1 or 2 words per element, at most ``lanes`` lanes, scratchpad rows
    ``[sp_row, sp_row + n_out)`` inside its scratchpad, main-memory words ``[mem_addr, mem_addr +
    (rows - 1) * stride + cols * elem_words)`` inside main memory). The claims, in every cycle:

    - ``bus``: a bus request's line (``LINE_WORDS`` words) is inside main memory;
    - ``bus_block``: it meets the legal descriptor's main-memory span, a write's masked words
      lie in that span, and only a store writes (so a faulting descriptor makes no bus request);
    - ``sp_write``: a scratchpad write (any lane enabled) goes to a row below that scratchpad's
      rows, of the descriptor's scratchpad, of a legal load, inside its rows ``[sp_row, sp_row +
      n_out)`` (so a faulting descriptor makes no scratchpad write);
    - ``sp_read``: a scratchpad read (``en`` high) addresses a row below that scratchpad's rows —
      for a descriptor whose scratchpad range is legal (a store reads its first two rows while
      its check runs, before it knows the outcome; ``docs/formal.md``);
    - ``fault``: ``done`` reports a fault exactly when the descriptor was illegal.

    After elaboration ``claims`` (a :class:`sim.formal.Claims`) holds each check's source
    locations.
    """

    def __init__(self, dut, soc):
        self.dut = dut
        self.soc = soc
        self.claims = Claims()

    def _check(self, m, name, test):
        self.claims.add(m, name, test, src_loc_at=1)

    def _legal(self, m, d):
        """Signals ``(legal, sp_legal, mem_end)`` of descriptor ``d``, computed at full width."""
        soc = self.soc
        n_out = Mux(d.transpose, d.cols, d.rows)
        n_in = Mux(d.transpose, d.rows, d.cols)
        space_rows = Mux(d.space == Space.ACC, soc.acc_rows, soc.sp_rows)
        mem_end = Signal(64)
        m.d.comb += mem_end.eq(d.mem_addr + (d.rows - 1) * d.stride + d.cols * d.elem_words)
        sp_legal, legal = Signal(), Signal()
        m.d.comb += [
            sp_legal.eq((n_out != 0) & (d.sp_row + n_out <= space_rows)),
            legal.eq(sp_legal & (d.rows != 0) & (d.cols != 0)
                     & ((d.elem_words == 1) | (d.elem_words == 2))
                     & (n_in <= soc.lanes) & (mem_end <= soc.mem_words)),
        ]
        return legal, sp_legal, mem_end

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        soc = self.soc
        req, rsp = dut.bus.req, dut.bus.rsp

        # --- the environment ----------------------------------------------------------------
        m.d.comb += [
            dut.i_desc.valid.eq(AnySeq(1)),
            dut.i_desc.payload.eq(AnySeq(descriptor_layout())),
            req.ready.eq(AnySeq(1)),
            rsp.valid.eq(AnySeq(1)),
            rsp.payload.eq(AnySeq(len(rsp.payload))),
        ]
        for port in (dut.sp_read, dut.acc_read):
            m.d.comb += port.data.eq(AnySeq(len(Value.cast(port.data))))
        outstanding = Signal(OUTSTANDING_WIDTH)
        m.d.sync += outstanding.eq(outstanding + (req.valid & req.ready) - (rsp.valid & rsp.ready))
        with m.If(rsp.valid):
            m.d.comb += Assume(outstanding != 0)

        # --- the descriptor taken, and whether it is legal -----------------------------------
        d = Signal(descriptor_layout())
        with m.If(dut.i_desc.valid & dut.i_desc.ready):
            m.d.sync += d.eq(dut.i_desc.payload)
        legal, sp_legal, mem_end = self._legal(m, d)

        # --- the claims ----------------------------------------------------------------------
        # The bus moves lines of F words: a request's line must be inside main memory and meet
        # the block's span, and a write's masked words must all be in the span (a load's reads
        # of a line's other words change nothing).
        F = LINE_WORDS
        first = Signal(64)                                 # the request line's first word
        m.d.comb += first.eq(req.payload.addr * F)
        with m.If(req.valid):
            self._check(m, "bus", first < soc.mem_words)
            self._check(m, "bus_block", legal & (first + F > d.mem_addr) & (first < mem_end)
                        & ((d.direction == Dir.STORE) | ~req.payload.we))
            with m.If(req.payload.we):
                for k in range(F):
                    with m.If(req.payload.mask[k]):
                        self._check(m, "bus_block", (first + k >= d.mem_addr)
                                    & (first + k < mem_end))
        n_out = Mux(d.transpose, d.cols, d.rows)
        for space, write, read in ((Space.SP, dut.sp_write, dut.sp_read),
                                   (Space.ACC, dut.acc_write, dut.acc_read)):
            rows = soc.space_rows(space)
            with m.If(write.en != 0):
                self._check(m, "sp_write", write.addr < rows)
                self._check(m, "sp_write", legal & (d.direction == Dir.LOAD) & (d.space == space)
                            & (write.addr >= d.sp_row) & (write.addr < d.sp_row + n_out))
            with m.If(read.en & sp_legal):
                self._check(m, "sp_read", read.addr < rows)
        with m.If(dut.done):
            self._check(m, "fault", (dut.fault != 0) == ~legal)
        return m

    def failed_checks(self, result):
        """The names of the checks a :class:`sim.formal.FormalResult` reports as failed."""
        return self.claims.failed(result)


def prove_dma(dut, *, soc=SOC, mode="bmc", depth=DMA_DEPTH):
    """Run :class:`DmaHarness` on ``dut``; returns the harness and the result."""
    harness = DmaHarness(dut, soc)
    return harness, prove(harness, depth=depth, mode=mode, name="dma")


def test_dma_stays_in_its_memory_map():
    _, result = prove_dma(DmaController(SOC))
    assert result.passed, str(result)


@pytest.mark.slow
def test_dma_stays_in_its_memory_map_deeper():
    _, result = prove_dma(DmaController(SOC), depth=DMA_DEPTH_SLOW)
    assert result.passed, str(result)


#: Injected bugs: a DMA whose checks use a bound one step too large (a parameter off by one line
#: of main memory or one bank of scratchpad; the port widths stay those of ``SOC``), and the claims
#: that may catch each within ``DMA_DEPTH`` cycles (the shortest counterexample: a store from
#: rows past the end requests the bus before a load could write them).
BUGS = {
    "mem_end_one_line_too_far": (replace(SOC, mem_words=SOC.mem_words + 8), {"bus", "bus_block"}),
    "sp_end_one_bank_too_far": (replace(SOC, sp_banks=SOC.sp_banks + 1), {"sp_write", "bus_block"}),
}


@pytest.mark.parametrize("bug", BUGS.keys())
def test_dma_proof_fails_on_injected_bug(bug):
    wrong_soc, expected = BUGS[bug]
    dut = DmaController(wrong_soc)
    assert len(dut.bus.req.payload.addr) == len(DmaController(SOC).bus.req.payload.addr)
    harness, result = prove_dma(dut)
    assert result.status == "FAIL", str(result)    # a counterexample, not a tool error
    failed = harness.failed_checks(result)
    assert failed & expected, (failed, str(result))
