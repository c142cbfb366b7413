"""Formal proof (SymbiYosys, k-induction) that the DMA never leaves main memory or a scratchpad.

:class:`DmaHarness` gives a :class:`rtl.dma.DmaController` any descriptor at any time, any bus
back-pressure and any response data and timing a memory may produce, and claims on its ports that
every bus request and every scratchpad write stays inside the map, and that a faulting descriptor
accesses nothing. With the invariants on the DMA's registers it also asserts, the claims hold in
every reachable state (``mode="prove"``); without them they are checked from reset to a depth.
Both fail on DMAs with injected bugs, one of which only the proof finds. ``docs/formal.md`` has
what is proven, the invariants, the timings and what is not proven.
"""

from dataclasses import replace

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assume, C, Cat, Elaboratable, Module, Mux, Signal, Value, signed
from amaranth.lib import data
from amaranth.utils import ceil_log2

from golden.dma import Descriptor
from rtl.dma import DmaController, _State, descriptor_layout
from sim.formal import Claims, Opened, prove, prove_in_stages
from spec.memory import LINE_WORDS, MAX_ELEM_WORDS, Dir, Space
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
#: taken in cycle 0, checked in cycles 1-3, decided in cycle 4; a load's request in cycle 5,
#: response in cycle 6, row written in cycle 7; a store's first row into its ``sent`` register in
#: cycle 5, request in cycle 6, acknowledgement in 7; ``done`` in cycle 8 for both); every shorter
#: prefix of a longer one.
DMA_DEPTH = 9

#: The induction's length: the invariants (:meth:`DmaHarness._invariants`) make the claims
#: inductive on their own, in one step.
DMA_PROOF_DEPTH = 1

#: Depth of the slow suite's bounded check: a whole two-request transfer (two
#: rows, or a transposed two-word element; ``done`` in cycle 9) and the next descriptor taken.
DMA_DEPTH_SLOW = 10


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
    (rows - 1) * stride + cols * elem_words)`` inside main memory). A block of two rows or more
    whose stride is ``mem_words`` or more is illegal outright; otherwise the stride is below
    ``2**sw`` (``sw = ceil_log2(mem_words)``), and ``(rows - 1) * stride`` is ``rows * s - s``
    with ``s`` the stride's low ``sw`` bits. The product ``rows * s`` is a ghost register, taken
    the cycle after the descriptor, from the operand registers of the DMA's multiplier (which
    ``descriptor`` claims hold the descriptor's ``rows`` and ``s`` then) with the multiplier's own
    expression, so that Yosys merges the two multipliers into one (``docs/formal.md``). The
    claims, in every cycle:

    - ``bus``: a bus request's line (``LINE_WORDS`` words) is inside main memory;
    - ``bus_block``: it meets the legal descriptor's main-memory span, a write's masked words
      lie in that span, and only a store writes (so a faulting descriptor makes no bus request);
    - ``sp_write``: a scratchpad write (any lane enabled) goes to a row below that scratchpad's
      rows, of the descriptor's scratchpad, of a legal load, inside its rows ``[sp_row, sp_row +
      n_out)`` (so a faulting descriptor makes no scratchpad write);
    - ``sp_read``: a scratchpad read (``en`` high) addresses a row below that scratchpad's rows —
      for a descriptor whose scratchpad range is legal (a store starts reading its rows while
      its check runs, before it knows the outcome; ``docs/formal.md``);
    - ``fault``: ``done`` reports a fault exactly when the descriptor was illegal;
    - ``descriptor``: the DMA's copy of the descriptor is the one it took, and its multiplier's
      operands are that descriptor's ``rows`` and ``s`` the cycle after.

    With ``invariants`` (for k-induction) it also asserts, as named claims, the invariants that
    make these inductive (:meth:`_invariants`). ``claims`` (a :class:`sim.formal.Claims`, a new
    one by default) takes the assertions: a staged one for :func:`sim.formal.prove_in_stages`
    (:data:`DMA_STAGES`). ``only`` (a :class:`golden.dma.Descriptor`)
    assumes that descriptor is the only one offered. The DMA is opened
    (:class:`sim.formal.Opened`, as ``opened``) to name its registers.

    After elaboration ``claims`` (a :class:`sim.formal.Claims`) holds each check's source
    locations.
    """

    def __init__(self, dut, soc, *, invariants=False, only=None, claims=None):
        self.dut = dut
        self.soc = soc
        self.invariants = invariants
        self.only = only
        self.claims = Claims() if claims is None else claims

    def _check(self, m, name, test):
        self.claims.add(m, name, test, src_loc_at=1)

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        self.opened = opened = Opened(dut, platform)
        m.submodules.dut = opened.module
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
        if self.only is not None:
            m.d.comb += Assume(dut.i_desc.payload.as_value()
                               == descriptor_layout().const(self.only.as_dict()).as_value())
        outstanding = Signal(OUTSTANDING_WIDTH)
        m.d.sync += outstanding.eq(outstanding + (req.valid & req.ready) - (rsp.valid & rsp.ready))
        with m.If(rsp.valid):
            m.d.comb += Assume(outstanding != 0)

        # --- the descriptor taken, and whether it is legal -----------------------------------
        d = Signal(descriptor_layout())
        taken = dut.i_desc.valid & dut.i_desc.ready
        dut_d = data.View(descriptor_layout(), opened["d"])      # the DMA's own copy
        after = Signal()                                         # the cycle after it was taken
        known = Signal()                                         # ``prod`` is the descriptor's
        sw = max(1, ceil_log2(soc.mem_words))                    # a stride below mem_words
        s = d.stride[:sw]
        op_rows, op_s = opened["span_a"], opened["span_b"]       # the DMA's multiplier's operands
        assert len(op_rows) == len(d.rows) and len(op_s) == sw, "the DMA's product changed"
        prod = Signal(len(d.rows) + sw)                          # rows * s
        span = Signal(len(prod))                                 # (rows - 1) * s, for rows >= 1
        m.d.sync += after.eq(taken)
        with m.If(taken):
            m.d.sync += [d.eq(dut.i_desc.payload), known.eq(0)]
        with m.If(after):
            m.d.sync += [prod.eq(op_rows * op_s), known.eq(1)]
            self._check(m, "descriptor", (op_rows == d.rows) & (op_s == s))
        m.d.comb += span.eq(prod - s)
        self._check(m, "descriptor", dut_d.as_value() == d.as_value())

        n_out = Mux(d.transpose, d.cols, d.rows)
        n_in = Mux(d.transpose, d.rows, d.cols)
        space_rows = Mux(d.space == Space.ACC, soc.acc_rows, soc.sp_rows)
        row_words = d.cols * d.elem_words
        mem_end = Signal(signed(66))                             # signed: whatever ``prod`` is
        sp_legal, shape_legal, legal = Signal(), Signal(), Signal()
        m.d.comb += [
            mem_end.eq(d.mem_addr + prod + row_words - s),
            sp_legal.eq((n_out != 0) & (d.sp_row + n_out <= space_rows)),
            shape_legal.eq(sp_legal & (d.rows != 0) & (d.cols != 0)
                           & ((d.elem_words == 1) | (d.elem_words == 2)) & (n_in <= soc.lanes)),
            legal.eq(known & shape_legal & ~((d.rows >= 2) & (d.stride >= soc.mem_words))
                     & (mem_end <= soc.mem_words)),
        ]

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

        if self.invariants:
            self._invariants(m, opened, d, span, prod, known, after, outstanding, legal,
                             shape_legal)
        m.submodules.held = self.claims.held()      # a staged proof's claims assumed late
        return m

    def _invariants(self, m, opened, d, span, prod, known, after, outstanding, legal,
                    shape_legal):
        """Assert what makes the claims inductive: the DMA's registers agree with the descriptor
        it took and with each other, and so do the ghost registers the harness keeps."""
        soc = self.soc
        F = LINE_WORDS
        fb = F.bit_length() - 1
        NW = MAX_ELEM_WORDS * soc.lanes
        # Narrow widths for the legal descriptors' products: (rows - 1) and a stride of a block of
        # two rows or more are below these powers of two.
        nt = max(soc.sp_rows, soc.acc_rows, soc.lanes).bit_length()
        na = soc.mem_words.bit_length()

        def reg(name):
            return opened[name]

        state = reg("state")
        idle, check, room, compare, decide, prime, run, flush = (state == s for s in (
            _State.IDLE, _State.CHECK, _State.ROOM, _State.COMPARE, _State.DECIDE, _State.PRIME,
            _State.RUN, _State.FLUSH))
        iss_on, wr_en, wr_row = reg("iss_on"), reg("wr_en"), reg("wr_row")
        n_out_m1, n_in_m1 = reg("n_out_m1"), reg("n_in_m1")
        inner, outer, row_ones = reg("inner"), reg("outer"), reg("row_ones")
        i_t, i_l, i_w = reg("i_t"), reg("i_l"), reg("i_w")
        a_row, a_elem, a_word = reg("a_row"), reg("a_elem"), reg("a_word")
        a_line, off, window = reg("a_line"), reg("off"), reg("window")
        next_row = reg("next_row")
        accept = reg("accept")
        # the layout of the DMA's request tags (rtl/dma.py), to read its FIFO's entries
        tag_layout = data.StructLayout({"rot": fb, "place": NW, "row_last": 1, "last": 1})
        row_last = data.View(tag_layout, reg("tag_in")).row_last
        n_out = Mux(d.transpose, d.cols, d.rows)
        wide = d.elem_words == 2

        # the tags' FIFO: its pointers, level and entries
        fifo = opened.submodule("tags")
        depth = fifo.design.depth
        assert fifo.design.width == tag_layout.size, "the DMA's tags changed: update tag_layout"
        level, produce, consume = fifo.design.level, fifo["produce"], fifo["consume"]
        entries = [data.View(tag_layout, row) for row in fifo.memory_rows("storage")]

        # ghost registers of a run: the span still ahead of the row (without transpose) and the
        # line of the row being requested
        rest = Signal(len(span))                          # (n_out_m1 - i_t) * outer
        line = Signal(range(NW // F + 2))
        with m.If(decide):
            m.d.sync += [rest.eq(span), line.eq(0)]
        with m.If(run & accept):
            with m.If(~row_last):
                m.d.sync += line.eq(line + 1)
            with m.Elif(i_t != n_out_m1):
                m.d.sync += [line.eq(0), rest.eq(rest - outer)]

        # --- states, the FIFO, the descriptor's check -------------------------------------------
        store = d.direction == Dir.STORE
        self._check(m, "state", idle | check | room | compare | decide | prime | run | flush)
        self._check(m, "state", after == check)
        self._check(m, "state", (reg("deciding") == decide) & (reg("priming") == prime))
        with m.If(room | compare | decide | prime | run | flush):
            self._check(m, "state", known)
        with m.If(idle | check | room | compare | decide | prime):
            self._check(m, "state", ~iss_on & (level == 0) & ~wr_en)

        self._check(m, "fifo", (produce < depth) & (consume < depth) & (level <= depth))
        self._check(m, "fifo", outstanding == level)
        # the DMA's `req.valid`, a register: `iss_on` and the FIFO's room
        self._check(m, "fifo", reg("req_on") == (iss_on & (level != depth)))
        with m.If(produce == consume):
            self._check(m, "fifo", (level == 0) | (level == depth))
        with m.Else():
            self._check(m, "fifo", level == Mux(produce > consume, produce - consume,
                                                depth + produce - consume))

        # the check's steps: the multiplier's pipeline and product registers hold the ghost
        # product, the others what the DMA computes from the descriptor; DECIDE its outcome
        sw = max(1, ceil_log2(soc.mem_words))
        s = d.stride[:sw]
        row_end = d.mem_addr[:sw] + Mux(d.elem_words == 2, d.cols * 2, d.cols)
        pre_illegal = ~shape_legal | (d.mem_addr >= soc.mem_words)
        with m.If(room):
            # CHECK registers each of the first six checks' outcomes, ROOM their code
            self._check(m, "check", (reg("pre_failed") != 0) == pre_illegal)
        with m.If(compare):
            self._check(m, "check", ((reg("pre_code") != 0) == pre_illegal)
                        & (reg("pre_fail") == pre_illegal))
        with m.If(room | compare):
            self._check(m, "check", reg("big") == ((d.rows > 1) & (d.stride >= soc.mem_words)))
        with m.If(room):
            self._check(m, "check", reg("span_pipe") == prod)
            self._check(m, "check", (reg("row_end") == row_end)
                        & (reg("s_plus") == soc.mem_words + s))
        with m.If(compare):
            self._check(m, "check", reg("span_p") == prod)
            diff = soc.mem_words + s - row_end
            self._check(m, "check", (reg("room_neg") == (diff < 0))
                        & (reg("mem_room") == diff[:sw + 1]))
        with m.If(decide):
            self._check(m, "check", (reg("fail") == ~legal) & ((reg("code") != 0) == ~legal))

        # --- a store's scratchpad reads: from a count of the rows left to read (the row on the
        # read port, next_row, is the one after those read), whatever the check's outcome
        rd_left, rd_ok = reg("rd_left"), reg("rd_ok")
        width = len(next_row)
        self._check(m, "reads", (next_row + rd_left)[:width] == (d.sp_row + n_out)[:width])
        self._check(m, "reads", (reg("rd_on_sp") == (rd_ok & (d.space == Space.SP)))
                    & (reg("rd_on_acc") == (rd_ok & (d.space == Space.ACC))))
        with m.If(n_out != 0):
            self._check(m, "reads", (rd_left <= n_out) & (~rd_ok | (rd_left != 0)))

        aw = len(a_row)
        with m.If(decide):
            # the first row's start, DECIDE's `r_next` (set in COMPARE)
            self._check(m, "address", reg("r_next") == d.mem_addr[:aw])
        with m.If(prime | run):
            # flags the DMA registers with the request they describe
            self._check(m, "run", reg("t_last") == (i_t == n_out_m1))
            self._check(m, "run", d.transpose | (reg("n_words") == d.cols * d.elem_words))
            self._check(m, "run", reg("row_last") == Mux(
                d.transpose, (i_w == wide) & (i_l == n_in_m1), window[F:] == 0))
        with m.If((room | compare | decide | prime | run) & legal):
            self._check(m, "product", (d.rows <= 1) | (d.stride < soc.mem_words))
            self._check(m, "product", span == (d.rows - 1)[:nt] * d.stride[:na])

        # --- a run: its constants, counters and addresses ----------------------------------------
        with m.If(prime | run | flush):
            self._check(m, "run", legal)
        with m.If(prime):
            # a store, between DECIDE and its first request: the first rows move to registers
            self._check(m, "run", store & (i_t == 0) & (i_l == 0) & (i_w == 0) & (line == 0)
                        & (wr_row == d.sp_row))
        with m.If(run & ~iss_on):
            self._check(m, "run", i_t == n_out_m1)
        with m.If((room | compare | decide) & shape_legal | prime | run):
            # the run's constants, set in CHECK (for a descriptor of a legal shape)
            self._check(m, "run", (n_out_m1 == n_out - 1) & (n_in_m1 == Mux(d.transpose, d.rows,
                                                                             d.cols) - 1))
            self._check(m, "run", reg("n_out_m2") == (n_out - 2)[:len(n_out_m1)])
            self._check(m, "run", inner == Mux(d.transpose, d.stride, d.elem_words))
            self._check(m, "run", outer == Mux(d.transpose, d.elem_words, d.stride))
            self._check(m, "run", d.transpose | (reg("n_words") == d.cols * d.elem_words))
        with m.If((room | compare | decide) & shape_legal):
            # and the first request's flags: `t_last` set in CHECK; a row's `row_last` without
            # transpose from `fits`, set in ROOM
            self._check(m, "run", reg("t_last") == (n_out == 1))
        with m.If((compare | decide) & shape_legal | prime | run):
            # and those ROOM computes from them
            self._check(m, "run", row_ones == Mux(
                d.transpose, 1, Cat(d.cols * d.elem_words > p for p in range(NW))))
            self._check(m, "run", d.transpose | (reg("fits") == Cat(
                q + d.cols * d.elem_words <= F for q in range(F))))
        with m.If(prime | run):
            self._check(m, "run", (i_t <= n_out_m1) & (i_l <= n_in_m1) & (i_w <= wide))
            # the next row's start and the next lane's element, registered ahead
            self._check(m, "address", (reg("r_next") == (a_row + outer)[:aw])
                        & (reg("e_next") == (a_elem + inner)[:aw]))
            with m.If(d.transpose):
                self._check(m, "address", a_row == d.mem_addr + i_t * d.elem_words)
                self._check(m, "address", a_elem == a_row + i_l * inner)
                self._check(m, "address", a_word == a_elem + i_w)
                self._check(m, "address", (a_line == a_word[fb:]) & (off == a_word[:fb]))
                self._check(m, "address", window == (C(1, len(window)) << off)[:len(window)])
            with m.Else():
                self._check(m, "address", a_row + rest == d.mem_addr + span)
                self._check(m, "address", rest <= span)
                self._check(m, "address", rest == (n_out_m1 - i_t)[:nt] * outer[:na])
                self._check(m, "address", (a_line == a_row[fb:] + line) & (off == a_row[:fb]))
                row_window = (Cat(row_ones, C(0, F)) << off) >> (line * F)
                self._check(m, "address", window == row_window[:len(window)])
                self._check(m, "address", window[:F] != 0)

        with m.If(run):
            # the requests in flight: a row's last, and the last of all at the tail only
            tail = Mux(produce == 0, depth - 1, (produce - 1)[:len(produce)])
            ends = []
            for slot, entry in enumerate(entries):
                ahead = Mux(slot >= consume, slot - consume, slot + depth - consume)
                held = ahead < level
                ends.append(held & entry.row_last)
                with m.If(held & entry.last):
                    self._check(m, "fifo", entry.row_last & ~iss_on & (tail == slot))
            self._check(m, "fifo", iss_on | ((level != 0)
                                             & Cat(e.last for e in entries).bit_select(tail, 1)))
            with m.If(~store):
                self._check(m, "rows", wr_row + wr_en + sum(ends) == d.sp_row + i_t + ~iss_on)
                self._check(m, "rows", wr_row >= d.sp_row)
            with m.Else():
                self._check(m, "rows", (wr_row == d.sp_row) & ~wr_en)
        with m.If(flush):
            self._check(m, "rows", ~store & ~iss_on & (level == 0) & wr_en
                        & (wr_row + 1 == d.sp_row + n_out))

    def failed_checks(self, result):
        """The names of the checks a :class:`sim.formal.FormalResult` reports as failed."""
        return self.claims.failed(result)


#: The order in which a staged proof (:func:`sim.formal.prove_in_stages`) proves the claims, a
#: job each: the state and the FIFO first, the check, the run's registers and addresses, then the
#: claims on the ports. One query for the whole step on ``SOC_WIDE`` did not finish in 11
#: minutes; each of these takes 1-37 s there (``docs/formal.md``).
DMA_STAGES = (("state",), ("fifo",), ("descriptor",), ("check",), ("reads",), ("product",),
              ("run",), ("address",), ("rows",), ("bus",), ("bus_block",), ("sp_write",),
              ("sp_read",), ("fault",))


def prove_dma(dut, *, soc=SOC, mode="bmc", depth=DMA_DEPTH, invariants=False, only=None,
              staged=False):
    """Run :class:`DmaHarness` on ``dut`` (``only``: a :class:`golden.dma.Descriptor`, the one
    descriptor offered); returns the harness and the result. ``staged``: prove by induction in
    the stages of :data:`DMA_STAGES` (:func:`sim.formal.prove_in_stages`); then ``dut`` is a
    function that makes the DMA (each job elaborates its own) and the first value returned is
    the last job's :class:`sim.formal.Claims` (its ``failed`` names the failed claims)."""
    if staged:
        return prove_in_stages(
            lambda claims: DmaHarness(dut(), soc, invariants=invariants, only=only,
                                      claims=claims),
            DMA_STAGES, depth=depth, mode=mode, name="dma", flatten=True)
    harness = DmaHarness(dut, soc, invariants=invariants, only=only)
    return harness, prove(harness, depth=depth, mode=mode, name="dma", flatten=True)


def test_dma_stays_in_its_memory_map():
    """The claims and the invariants hold in every reachable state (k-induction)."""
    _, result = prove_dma(DmaController(SOC), mode="prove", depth=DMA_PROOF_DEPTH,
                          invariants=True)
    assert result.passed, str(result)


def test_dma_claims_hold_from_reset():
    """The claims alone, checked from reset to ``DMA_DEPTH`` (the proof's base case is shorter)."""
    _, result = prove_dma(DmaController(SOC))
    assert result.passed, str(result)


#: A wider SoC for the slow suite's proof: 4 lanes (a row of 2-word elements fills a line), 200
#: words of main memory, 5 × 4 and 5 × 2 scratchpad rows, latency 1 (a tag FIFO of 2 entries).
SOC_WIDE = SocConfig(config=DEFAULT_CONFIG.with_array(rows=4, cols=4), mem_words=200,
                     sp_banks=5, sp_depth=4, acc_banks=5, acc_depth=2, selector=None,
                     mem_latency=1)


@pytest.mark.slow
def test_dma_stays_in_its_memory_map_wider_soc():
    """The same proof on ``SOC_WIDE``, in the stages of :data:`DMA_STAGES`."""
    _, result = prove_dma(lambda: DmaController(SOC_WIDE), soc=SOC_WIDE, mode="prove",
                          depth=DMA_PROOF_DEPTH, invariants=True, staged=True)
    assert result.passed, str(result)


@pytest.mark.slow
def test_dma_stays_in_its_memory_map_deeper():
    _, result = prove_dma(DmaController(SOC), depth=DMA_DEPTH_SLOW)
    assert result.passed, str(result)


class NarrowRowCounter(DmaController):
    """Bug: the row counter ``i_t`` keeps 2 bits (as if sized for 4 scratchpad rows), so a block
    of 6 rows or more never reaches its last row and its requests run on past the block's end.
    The first request outside the block comes 11 cycles after the descriptor is taken (a load of
    6 rows of one word), beyond the bounded checks' depths (9, and 10 in the slow suite)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        i_t = Opened(m, platform)["i_t"]
        m.d.sync += i_t[2:].eq(0)                         # overrides the DMA's own update
        return m


#: Injected bugs: a DMA whose checks use a bound one step too large (a parameter off by one line
#: of main memory or one bank of scratchpad; the port widths stay those of ``SOC``), and the claims
#: that may catch each within ``DMA_DEPTH`` cycles (the shortest counterexample: a store from
#: rows past the end requests the bus before a load could write them).
BUGS = {
    "mem_end_one_line_too_far": (replace(SOC, mem_words=SOC.mem_words + 8), {"bus", "bus_block"}),
    "sp_end_one_bank_too_far": (replace(SOC, sp_banks=SOC.sp_banks + 1), {"sp_write", "bus_block"}),
}


@pytest.mark.parametrize("bug", BUGS.keys())
def test_dma_bounded_check_fails_on_injected_bug(bug):
    wrong_soc, expected = BUGS[bug]
    dut = DmaController(wrong_soc)
    assert len(dut.bus.req.payload.addr) == len(DmaController(SOC).bus.req.payload.addr)
    harness, result = prove_dma(dut)
    assert result.status == "FAIL", str(result)    # a counterexample, not a tool error
    failed = harness.failed_checks(result)
    assert failed & expected, (failed, str(result))


#: Each injected bug, the DMA with it, and the claims on which the proof by induction may fail
#: (the solver reports one shortest counterexample, and which one has changed with the DMA's
#: versions): for the first two the DMA starts a run of a descriptor the harness holds illegal
#: (``check`` in DECIDE, ``run`` or the bus claims the step after); for the third the row counter
#: wraps, and the invariants that tie it to the addresses, the reads and the rows written break.
STARTS_ILLEGAL_RUN = {"check", "run", "bus", "bus_block"}
PROOF_BUGS = {
    "mem_end_one_line_too_far": (lambda: DmaController(BUGS["mem_end_one_line_too_far"][0]),
                                 STARTS_ILLEGAL_RUN),
    "sp_end_one_bank_too_far": (lambda: DmaController(BUGS["sp_end_one_bank_too_far"][0]),
                                STARTS_ILLEGAL_RUN),
    "narrow_row_counter": (lambda: NarrowRowCounter(SOC), {"address", "reads", "rows", "run"}),
}


@pytest.mark.parametrize("bug", PROOF_BUGS.keys())
def test_dma_proof_fails_on_injected_bug(bug):
    make, expected = PROOF_BUGS[bug]
    harness, result = prove_dma(make(), mode="prove", depth=DMA_PROOF_DEPTH, invariants=True)
    assert not result.passed and result.status != "ERROR", str(result)
    failed = harness.failed_checks(result)
    assert failed and failed <= expected, (failed, str(result))


#: A load of 6 rows of one word, a line apart, from the start of main memory (words 0, 8, .., 40).
SIX_ROWS = Descriptor(direction=Dir.LOAD, rows=6, cols=1, stride=LINE_WORDS)


def test_narrow_row_counter_escapes_the_bounded_checks_but_is_real():
    """The bug the proof finds is reachable: the DMA given ``SIX_ROWS`` requests line 6, past the
    block and past main memory, in cycle 11 (a bounded check to depth 12 with only that descriptor
    offered fails on ``bus_block``, and ``bus``); the bounded check of the claims from reset to
    ``DMA_DEPTH`` misses it."""
    _, result = prove_dma(NarrowRowCounter(SOC))
    assert result.passed, str(result)
    harness, result = prove_dma(NarrowRowCounter(SOC), depth=12, only=SIX_ROWS)
    assert result.status == "FAIL", str(result)
    assert "bus_block" in harness.failed_checks(result), str(result)
    _, result = prove_dma(DmaController(SOC), depth=12, only=SIX_ROWS)
    assert result.passed, str(result)


def test_staged_claims_reject_bad_stages():
    """A staged ``Claims`` needs both its stages and a stage among them, and every claim's name
    in a stage; ``prove_in_stages`` proves by induction only."""
    with pytest.raises(ValueError, match=r"both stages and stage.*stage=None"):
        Claims(DMA_STAGES)
    with pytest.raises(ValueError, match=r"index into its 14 stages, not 14"):
        Claims(DMA_STAGES, len(DMA_STAGES))
    with pytest.raises(ValueError, match=r"Claim 'nowhere' is in none of the stages"):
        Claims(DMA_STAGES, 0).add(Module(), "nowhere", C(1, 1))
    with pytest.raises(ValueError, match=r"at least one stage"):
        prove_in_stages(lambda claims: None, (), depth=1)
    with pytest.raises(ValueError, match=r"not 'bmc'"):
        prove_in_stages(lambda claims: None, DMA_STAGES, depth=1, mode="bmc")


#: The proof's injected bugs on ``SOC_WIDE`` (one line of memory or one bank too far; the row
#: counter of 2 bits), for the staged proof, and the claims its first failing stage may break.
WIDE_PROOF_BUGS = {
    "mem_end_one_line_too_far": (lambda: DmaController(replace(SOC_WIDE, mem_words=208)),
                                 STARTS_ILLEGAL_RUN),
    "sp_end_one_bank_too_far": (lambda: DmaController(replace(SOC_WIDE, sp_banks=6)),
                                STARTS_ILLEGAL_RUN),
    "narrow_row_counter": (lambda: NarrowRowCounter(SOC_WIDE), {"address", "reads", "rows", "run"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("bug", WIDE_PROOF_BUGS.keys())
def test_dma_staged_proof_fails_on_injected_bug(bug):
    """The staged proof on ``SOC_WIDE`` fails on each injected bug, at a stage that names a claim
    the bug breaks (so the staged proof is not vacuous)."""
    make, expected = WIDE_PROOF_BUGS[bug]
    assert len(make().bus.req.payload.addr) == len(DmaController(SOC_WIDE).bus.req.payload.addr)
    claims, result = prove_dma(make, soc=SOC_WIDE, mode="prove", depth=DMA_PROOF_DEPTH,
                               invariants=True, staged=True)
    assert not result.passed and result.status != "ERROR", str(result)
    failed = claims.failed(result)
    assert failed and failed <= expected, (failed, str(result))
