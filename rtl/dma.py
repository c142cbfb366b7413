"""The DMA controller: 2-D strided block moves between main memory and the scratchpads."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.memory import DESC_FIELDS, FAULT_BITS, MAX_ELEM_WORDS, Dir, Fault, Space
from spec.soc import check_soc
from .bus import BusSignature
from .spport import ReadPortSignature, WritePortSignature

__all__ = ["descriptor_layout", "DmaChecker", "DmaController"]


def descriptor_layout():
    """The descriptor stream's payload: the fields of :data:`spec.memory.DESC_FIELDS`."""
    return data.StructLayout({name: unsigned(width) for name, width in DESC_FIELDS})


def _block_words(d):
    """Main-memory words of one row of the block of descriptor ``d``."""
    return Mux(d.elem_words == 2, d.cols << 1, d.cols)


def _fault_code(m, d, mem_end_over, soc):
    """The fault code of descriptor ``d`` (a view of :func:`descriptor_layout`) given
    ``mem_end_over``, whether ``mem_addr + (rows - 1) * stride + block words > mem_words``: the
    checks of :func:`golden.dma.check`, in its order."""
    lanes = soc.lanes
    n_out = Mux(d.transpose, d.cols, d.rows)
    n_in = Mux(d.transpose, d.rows, d.cols)
    space_rows = Mux(d.space == Space.ACC, soc.acc_rows, soc.sp_rows)
    code = Signal(FAULT_BITS, name="fault_code")
    checks = (
        (Fault.ZERO_SIZE, (d.rows == 0) | (d.cols == 0)),
        (Fault.ELEM_WORDS, (d.elem_words == 0) | (d.elem_words > MAX_ELEM_WORDS)),
        (Fault.TOO_WIDE, n_in > lanes),
        (Fault.SP_RANGE, d.sp_row >= space_rows),
        (Fault.SP_END, d.sp_row + n_out > space_rows),
        (Fault.MEM_RANGE, d.mem_addr >= soc.mem_words),
        (Fault.MEM_END, mem_end_over),
    )
    for i, (value, failed) in enumerate(checks):
        with (m.Elif if i else m.If)(failed):
            m.d.comb += code.eq(value)
    return code


class DmaChecker(wiring.Component):
    """Fault check of a DMA descriptor: the DMA's own checks, for a sequencer that rejects a
    descriptor before issuing it.

    Parameters
    ----------
    soc : SocConfig
        As :class:`DmaController`.
    latency : 0 or 1
        0: combinational, ``fault`` in the cycle ``desc`` is given. 1: the product
        ``(rows - 1) * stride`` is registered (from ``rows`` and ``stride`` of the cycle before),
        so ``fault`` is right from the second cycle ``rows`` and ``stride`` hold still; the
        other fields are still read in the same cycle. The SoC uses 1, to keep the multiplier
        out of the sequencer's CHECK stage.

    Members
    -------
    desc : ``In(descriptor_layout())``
        The descriptor.
    fault : ``Out(FAULT_BITS)``
        Its :class:`~spec.memory.Fault` code (0 if the DMA would do it).

    Raises
    ------
    TypeError
        If ``soc`` is not a ``SocConfig`` or ``latency`` not an integer.
    ValueError
        If ``latency`` is not 0 or 1.
    """

    def __init__(self, soc=None, *, latency=0):
        self._soc = check_soc(soc, "DMA checker")
        if not isinstance(latency, int) or isinstance(latency, bool):
            raise TypeError(f"DMA checker latency must be an integer, not {latency!r}")
        if latency not in (0, 1):
            raise ValueError(f"DMA checker latency must be 0 or 1, not {latency!r}")
        self._latency = latency
        super().__init__({"desc": In(descriptor_layout()), "fault": Out(FAULT_BITS)})

    @property
    def soc(self):
        return self._soc

    @property
    def latency(self):
        return self._latency

    def elaborate(self, platform):
        m = Module()
        product = (self.desc.rows - 1) * self.desc.stride
        if self._latency:
            span = Signal(product.shape(), name="span")
            m.d.sync += span.eq(product)
        else:
            span = product
        over = self.desc.mem_addr + span + _block_words(self.desc) > self._soc.mem_words
        m.d.comb += self.fault.eq(_fault_code(m, self.desc, over, self._soc))
        return m


class _State(enum.Enum, shape=2):
    IDLE = 0
    CHECK = 1
    DECIDE = 2
    RUN = 3


class DmaController(wiring.Component):
    """Moves 2-D strided blocks between main memory and the two scratchpads.

    Takes one descriptor at a time from ``i_desc`` (see :data:`spec.memory.DESC_FIELDS` and
    ``golden/dma.py`` for the exact semantics: block geometry, transpose, zero padding of loaded
    rows, element width conversion). For each descriptor it

    1. checks every address before any access (two cycles); a faulting descriptor makes no bus
       request and no scratchpad write (a store reads its first two scratchpad rows while the
       check runs, whatever its outcome: a read changes nothing, and so the fault code stays off
       the scratchpad's bank arbitration);
    2. issues one bus request per cycle (as back-pressure allows) for the block's words, in order
       scratchpad row, lane, word, while it takes the responses as they come (``rsp.ready`` is
       always high): a load writes a scratchpad row in the cycle its last word arrives; a store
       sends a row from a register it loads from the read port, and reads the row after next in
       the cycle the register takes the next row (when the current row's last request is
       accepted), so that the scratchpad's block-RAM output reaches only that register;
    3. raises ``done`` for one cycle after the last response (so every write of a store has
       been performed), with the fault code on ``fault``, and is ready for the next descriptor in
       that same cycle.

    The check is the one :class:`DmaChecker` makes (the product ``(rows - 1) * stride`` is
    registered here, to keep the multiplier out of the comparison's path).

    Under the deterministic memory model the cycle count is exactly
    :func:`golden.dma.cycles`.

    Parameters
    ----------
    soc : SocConfig
        Lanes, word and element widths, and the memory sizes (main memory, both scratchpads);
        default :data:`spec.soc.DEFAULT_SOC`.

    Members
    -------
    i_desc : ``In(stream.Signature(descriptor_layout()))``
        Descriptors; ``ready`` is high when the DMA is idle.
    bus : ``Out(BusSignature(ceil_log2(mem_words), word_width))``
        Master port to main memory.
    sp_read, sp_write : ``Out(ReadPortSignature(...))``, ``Out(WritePortSignature(...))``
        Ports to the operand scratchpad (``space`` 0), see :mod:`rtl.spport`.
    acc_read, acc_write : as ``sp_read``, ``sp_write``
        Ports to the accumulator scratchpad (``space`` 1).
    busy : ``Out(1)``
        A descriptor is being processed.
    done : ``Out(1)``
        Strobe: a descriptor finished (done or faulted).
    fault : ``Out(FAULT_BITS)``
        The last finished descriptor's :class:`~spec.memory.Fault` code, held until the next one.

    Raises
    ------
    TypeError
        If ``soc`` is not a ``SocConfig``.
    """

    def __init__(self, soc=None):
        self._soc = soc = check_soc(soc, "DMA")
        ports = {}
        for space, prefix in ((Space.SP, "sp"), (Space.ACC, "acc")):
            geometry = (soc.space_rows(space), soc.elem_width(space), soc.lanes)
            ports[f"{prefix}_read"] = Out(ReadPortSignature(*geometry))
            ports[f"{prefix}_write"] = Out(WritePortSignature(*geometry))
        super().__init__({
            "i_desc": In(stream.Signature(descriptor_layout())),
            "bus": Out(BusSignature(max(1, ceil_log2(soc.mem_words)), soc.word_width)),
            **ports,
            "busy": Out(1),
            "done": Out(1),
            "fault": Out(FAULT_BITS),
        })

    @property
    def soc(self):
        return self._soc

    def elaborate(self, platform):
        m = Module()
        soc = self._soc
        lanes = soc.lanes
        ww = soc.word_width
        addr_width = self.bus.signature.addr_width
        req, rsp = self.bus.req, self.bus.rsp
        reads = (self.sp_read, self.acc_read)
        writes = (self.sp_write, self.acc_write)
        row_width = len(self.i_desc.payload.sp_row)
        t_width = max(len(self.i_desc.payload.rows), len(self.i_desc.payload.cols))

        state = Signal(_State)
        d = Signal(descriptor_layout())
        m.d.comb += [
            self.i_desc.ready.eq(state == _State.IDLE),
            self.busy.eq(state != _State.IDLE),
            rsp.ready.eq(1),
        ]
        done = Signal()
        fault = Signal(FAULT_BITS)
        m.d.comb += [self.done.eq(done), self.fault.eq(fault)]
        m.d.sync += done.eq(0)

        # Per-descriptor constants, set when the check passes.
        wide = Signal()                                   # elem_words == 2
        n_in_m1 = Signal(range(lanes))                    # lanes covered - 1
        n_out_m1 = Signal(t_width)                        # scratchpad rows - 1
        inner = Signal(len(d.stride))                     # word step between lanes
        outer = Signal(len(d.stride))                     # word step between scratchpad rows
        lane_on = Signal(lanes)                           # lanes the block covers

        # --- check: span registered in CHECK, the fault code decided in DECIDE -----------------
        n_out = Mux(d.transpose, d.cols, d.rows)
        n_in = Mux(d.transpose, d.rows, d.cols)
        span = Signal(len(d.rows) + len(d.stride))        # (rows - 1) * stride
        code = _fault_code(m, d, d.mem_addr + span + _block_words(d) > soc.mem_words, soc)

        # --- issue side: one request per cycle, order (row t, lane l, word w) -------------------
        iss_on = Signal()
        i_t = Signal(t_width)
        i_l = Signal(range(lanes))
        i_w = Signal()
        a_row = Signal(addr_width)                         # address of element (t, 0)
        a_elem = Signal(addr_width)                        # address of element (t, l)
        a_word = Signal(addr_width)                        # address of the request
        i_last_w = i_w == wide
        i_last_l = i_l == n_in_m1
        i_last_t = i_t == n_out_m1
        more_rows = Signal()                               # a row after row i_t + 1
        accept = Signal()
        m.d.comb += [
            req.valid.eq(iss_on),
            req.payload.addr.eq(a_word),
            req.payload.we.eq(d.direction == Dir.STORE),
            accept.eq(req.valid & req.ready),
        ]

        # Store data: element i_l, word i_w of the row being sent, held in `sent` (a register, so
        # that the scratchpad's block-RAM output does not reach the bus in the same cycle).
        sent = [Signal(signed(MAX_ELEM_WORDS * ww), name=f"sent_{k}") for k in range(lanes)]
        port_row = [Mux(d.space == Space.ACC, reads[1].data[k], reads[0].data[k])
                    for k in range(lanes)]
        elem = Signal(signed(MAX_ELEM_WORDS * ww))
        m.d.comb += [
            elem.eq(Array(sent)[i_l]),
            req.payload.wdata.eq(Mux(i_w, elem[ww:], elem[:ww])),
        ]

        # Scratchpad reads of a store run a row ahead: the first row is read while checking, and
        # whenever a row moves into `sent` (in DECIDE, and when a row's last request is accepted)
        # the row after it, if any, is read; it stays on the read port until it moves.
        next_row = Signal(row_width)
        rd_addr = Signal(row_width)
        rd_en = Signal()
        for space, port in enumerate(reads):
            m.d.comb += [port.addr.eq(rd_addr), port.en.eq(rd_en & (d.space == space))]

        # --- response side: walks the same order, fills and writes rows of a load ---------------
        r_t = Signal(t_width)
        r_l = Signal(range(lanes))
        r_w = Signal()
        r_last_w = r_w == wide
        r_last_l = r_l == n_in_m1
        r_last_t = r_t == n_out_m1
        buf = [Signal(MAX_ELEM_WORDS * ww, name=f"buf_{k}") for k in range(lanes)]
        wr_row = Signal(row_width)
        wr_en = Signal()
        row = [Signal(signed(MAX_ELEM_WORDS * ww), name=f"row_{k}") for k in range(lanes)]
        for k in range(lanes):
            here = r_l == k
            lo = Mux(here & ~r_w, rsp.payload, buf[k][:ww])
            hi = Mux(here & r_w, rsp.payload, buf[k][ww:])
            value = Mux(wide, Cat(lo, hi), lo.as_signed())
            m.d.comb += row[k].eq(Mux(lane_on[k], value, 0))
        for space, port in enumerate(writes):
            m.d.comb += [
                port.addr.eq(wr_row),
                port.en.eq(Mux(wr_en & (d.space == space), (1 << lanes) - 1, 0)),
            ]
            for k in range(lanes):
                m.d.comb += port.data[k].eq(row[k])

        # --- control ----------------------------------------------------------------------------
        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.i_desc.valid):
                    m.d.sync += [d.eq(self.i_desc.payload), state.eq(_State.CHECK)]

            with m.Case(_State.CHECK):
                m.d.comb += [rd_addr.eq(d.sp_row), rd_en.eq(d.direction == Dir.STORE)]
                m.d.sync += [span.eq((d.rows - 1) * d.stride), state.eq(_State.DECIDE),
                             next_row.eq(d.sp_row + 1)]

            with m.Case(_State.DECIDE):
                # whatever the fault code: a read changes nothing, and the rows are the
                # instruction's (the sequencer checked their range)
                m.d.comb += [rd_addr.eq(next_row),
                             rd_en.eq((d.direction == Dir.STORE) & (n_out != 1))]
                m.d.sync += [sent[k].eq(port_row[k]) for k in range(lanes)]
                with m.If(code != Fault.NONE):
                    m.d.sync += [state.eq(_State.IDLE), done.eq(1), fault.eq(code)]
                with m.Else():
                    m.d.sync += [
                        state.eq(_State.RUN),
                        wide.eq(d.elem_words == 2),
                        n_in_m1.eq(n_in - 1),
                        n_out_m1.eq(n_out - 1),
                        inner.eq(Mux(d.transpose, d.stride, d.elem_words)),
                        outer.eq(Mux(d.transpose, d.elem_words, d.stride)),
                        lane_on.eq(Cat((n_in > k) for k in range(lanes))),
                        iss_on.eq(1),
                        i_t.eq(0), i_l.eq(0), i_w.eq(0),
                        a_row.eq(d.mem_addr), a_elem.eq(d.mem_addr), a_word.eq(d.mem_addr),
                        next_row.eq(next_row + 1), more_rows.eq(n_out > 2),
                        r_t.eq(0), r_l.eq(0), r_w.eq(0),
                        wr_row.eq(d.sp_row),
                    ]

            with m.Case(_State.RUN):
                with m.If(accept):
                    with m.If(~i_last_w):
                        m.d.sync += [i_w.eq(1), a_word.eq(a_word + 1)]
                    with m.Elif(~i_last_l):
                        m.d.sync += [i_w.eq(0), i_l.eq(i_l + 1),
                                     a_elem.eq(a_elem + inner), a_word.eq(a_elem + inner)]
                    with m.Elif(~i_last_t):
                        m.d.sync += [i_w.eq(0), i_l.eq(0), i_t.eq(i_t + 1),
                                     a_row.eq(a_row + outer), a_elem.eq(a_row + outer),
                                     a_word.eq(a_row + outer), next_row.eq(next_row + 1)]
                        m.d.sync += [sent[k].eq(port_row[k]) for k in range(lanes)]
                        m.d.sync += more_rows.eq(i_t + 3 <= n_out_m1)
                        m.d.comb += [rd_addr.eq(next_row),
                                     rd_en.eq((d.direction == Dir.STORE) & more_rows)]
                    with m.Else():
                        m.d.sync += iss_on.eq(0)
                with m.If(rsp.valid):
                    with m.If(d.direction == Dir.LOAD):
                        for k in range(lanes):
                            with m.If(r_l == k):
                                with m.If(r_w):
                                    m.d.sync += buf[k][ww:].eq(rsp.payload)
                                with m.Else():
                                    m.d.sync += buf[k][:ww].eq(rsp.payload)
                        m.d.comb += wr_en.eq(r_last_w & r_last_l)
                    with m.If(~r_last_w):
                        m.d.sync += r_w.eq(1)
                    with m.Elif(~r_last_l):
                        m.d.sync += [r_w.eq(0), r_l.eq(r_l + 1)]
                    with m.Elif(~r_last_t):
                        m.d.sync += [r_w.eq(0), r_l.eq(0), r_t.eq(r_t + 1),
                                     wr_row.eq(wr_row + 1)]
                    with m.Else():
                        m.d.sync += [state.eq(_State.IDLE), done.eq(1), fault.eq(Fault.NONE)]
        return m
