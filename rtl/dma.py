"""The DMA controller: 2-D strided block moves between main memory and the scratchpads."""

from amaranth.hdl import C, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.memory import DESC_FIELDS, FAULT_BITS, LINE_WORDS, MAX_ELEM_WORDS, Dir, Fault, Space
from spec.soc import check_soc
from .bus import LineBusSignature
from .dsp import MAX_OPERAND_WIDTH, registered_product
from .spport import ReadPortSignature, WritePortSignature

__all__ = ["descriptor_layout", "DmaChecker", "DmaController"]


def descriptor_layout():
    """The descriptor stream's payload: the fields of :data:`spec.memory.DESC_FIELDS`."""
    return data.StructLayout({name: unsigned(width) for name, width in DESC_FIELDS})


def _block_words(d):
    """Main-memory words of one row of the block of descriptor ``d``."""
    return Mux(d.elem_words == 2, d.cols << 1, d.cols)


def _check_dsp_words(mem_words, what):
    """Raise ``ValueError`` if a stride below ``mem_words`` does not fit a DSP block's operand."""
    if mem_words > 1 << MAX_OPERAND_WIDTH:
        raise ValueError(f"{what} main memory must have at most 2**{MAX_OPERAND_WIDTH} words "
                         f"(a stride below it is a DSP block's operand), not {mem_words!r}")


def _fault_checks(d, soc):
    """The checks of :func:`golden.dma.check` on descriptor ``d`` (a view of
    :func:`descriptor_layout`) but the last (``MEM_END``), in its order: ``(code, failed)``
    pairs."""
    n_out = Mux(d.transpose, d.cols, d.rows)
    n_in = Mux(d.transpose, d.rows, d.cols)
    space_rows = Mux(d.space == Space.ACC, soc.acc_rows, soc.sp_rows)
    return (
        (Fault.ZERO_SIZE, (d.rows == 0) | (d.cols == 0)),
        (Fault.ELEM_WORDS, (d.elem_words == 0) | (d.elem_words > MAX_ELEM_WORDS)),
        (Fault.TOO_WIDE, n_in > soc.lanes),
        (Fault.SP_RANGE, d.sp_row >= space_rows),
        (Fault.SP_END, d.sp_row + n_out > space_rows),
        (Fault.MEM_RANGE, d.mem_addr >= soc.mem_words),
    )


def _sum_sign(a, b, k, n):
    """Whether ``a + b + k < 0``, for unsigned ``a``, ``b`` and signed ``k`` whose sum fits in
    ``n`` signed bits: a carry-save step, then one ``n``-bit adder's top bit."""
    a, b = Value.cast(a).as_unsigned(), Value.cast(b).as_unsigned()
    a, b = Cat(a, C(0, n - len(a))), Cat(b, C(0, n - len(b)))
    k = Value.cast(k)
    k = Cat(k, k[-1].replicate(n - len(k)))
    total = ((a ^ b ^ k) + Cat(C(0, 1), (a & b) | (a & k) | (b & k)))[:n]
    return total[n - 1]


def _first_fault(m, checks, name):
    """The code of the first failing check of ``checks`` (``(code, failed)`` pairs), 0 if none
    fails."""
    code = Signal(FAULT_BITS, name=name)
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
    latency : 0, 1 or 3
        0: combinational, ``fault`` in the cycle ``desc`` is given. 1: the product
        ``(rows - 1) * stride`` is registered (from ``rows`` and ``stride`` of the cycle before),
        so ``fault`` is right from the second cycle ``rows`` and ``stride`` hold still; the
        other fields are still read in the same cycle. 3 (the SoC's): the product is a DSP
        block's, registered three times (:func:`rtl.dsp.registered_product`), its operands
        ``pre_rows`` and ``pre_stride``; ``fault`` is right in a cycle *c* if those were the
        descriptor's ``rows`` and ``stride`` in cycle *c − 3* (the sequencer gives them from the
        fetched instruction in DECODE) and ``desc`` holds the descriptor in cycles *c − 2* to *c*
        (``mem_addr`` is read in *c* only: the checks of the other fields are registered in
        *c − 2* and their priority in *c − 1*, so only ``MEM_RANGE`` and ``MEM_END`` follow the
        product; the sequencer's ``ir`` holds from READ, *c − 2*, its ``dma_addr`` from
        COMPARE). As :class:`DmaController`, it then needs main memory of at most 2**18 words (a
        stride below it is a DSP block's operand).

    Members
    -------
    desc : ``In(descriptor_layout())``
        The descriptor.
    pre_rows, pre_stride : ``In(...)``
        With latency 3 only: the descriptor's ``rows`` and ``stride``, three cycles early.
    fault : ``Out(FAULT_BITS)``
        Its :class:`~spec.memory.Fault` code (0 if the DMA would do it).

    Raises
    ------
    TypeError
        If ``soc`` is not a ``SocConfig`` or ``latency`` not an integer.
    ValueError
        If ``latency`` is not 0, 1 or 3, or with latency 3 main memory has more than 2**18 words.
    """

    def __init__(self, soc=None, *, latency=0):
        self._soc = check_soc(soc, "DMA checker")
        if not isinstance(latency, int) or isinstance(latency, bool):
            raise TypeError(f"DMA checker latency must be an integer, not {latency!r}")
        if latency not in (0, 1, 3):
            raise ValueError(f"DMA checker latency must be 0, 1 or 3, not {latency!r}")
        if latency == 3:
            _check_dsp_words(self._soc.mem_words, "DMA checker")
        self._latency = latency
        layout = descriptor_layout()
        members = {"desc": In(layout), "fault": Out(FAULT_BITS)}
        if latency == 3:
            members.update(pre_rows=In(layout.members["rows"]),
                           pre_stride=In(layout.members["stride"]))
        super().__init__(members)

    @property
    def soc(self):
        return self._soc

    @property
    def latency(self):
        return self._latency

    def elaborate(self, platform):
        m = Module()
        d, soc = self.desc, self._soc
        if self._latency == 3:
            # mem_addr + (rows - 1)·stride + block words > mem_words, for mem_addr below mem_words
            # (MEM_RANGE comes first otherwise): `big` (two rows or more and stride >=
            # mem_words) or rows·s + mem_addr > mem_words + s - block words, s the stride's low
            # bits (the stride itself if below mem_words). The product is out in cycle c; the
            # right side is registered in c - 1 as k = -(right side) - 1, so the comparison is
            # the sign of product + mem_addr + k: a carry-save step (one LUT per bit) and one
            # carry chain in c, not an adder's chain followed by a comparator's.
            sw = max(1, ceil_log2(soc.mem_words))
            product = registered_product(m, "span", self.pre_rows, self.pre_stride[:sw],
                                         en=C(1, 1), platform=platform)
            bw = _block_words(d)
            n = max(len(product), sw, len(bw) + 2) + 3     # holds the sum and its sign
            k = Signal(signed(n), name="neg_lim")
            big = Signal(name="big")
            m.d.sync += [k.eq(-(soc.mem_words + d.stride[:sw] - bw) - 1),
                         big.eq((d.rows > 1) & (d.stride >= soc.mem_words))]
            over = big | ~_sum_sign(product, d.mem_addr[:sw], k, n)
        else:
            product = (d.rows - 1) * d.stride
            if self._latency:
                span = Signal(product.shape(), name="span")
                m.d.sync += span.eq(product)
            else:
                span = product
            over = d.mem_addr + span + _block_words(d) > soc.mem_words
        checks = _fault_checks(d, soc)
        if self._latency == 3:
            # the checks of the instruction's fields alone (ZERO_SIZE ... SP_END): each one's
            # outcome registered in c - 2, their priority in c - 1; in c only MEM_RANGE and
            # MEM_END (mem_addr and the product) pass through logic, behind one register's choice
            early, late = checks[:-1], (*checks[-1:], (Fault.MEM_END, over))
            failed = Signal(len(early), name="early_failed")
            pre_code = Signal(FAULT_BITS, name="pre_code")
            pre_fail = Signal(name="pre_fail")
            m.d.sync += [failed.eq(Cat(*[bad for _, bad in early])),
                         pre_code.eq(_first_fault(m, [(code, failed[i])
                                                      for i, (code, _) in enumerate(early)],
                                                  "early_code")),
                         pre_fail.eq(failed.any())]
            m.d.comb += self.fault.eq(Mux(pre_fail, pre_code,
                                          _first_fault(m, late, "late_code")))
        else:
            m.d.comb += self.fault.eq(_first_fault(m, (*checks, (Fault.MEM_END, over)),
                                                   "fault_code"))
        return m


class _State(enum.Enum, shape=3):
    IDLE = 0
    CHECK = 1
    DECIDE = 2
    PRIME = 3
    RUN = 4
    FLUSH = 5
    ROOM = 6
    COMPARE = 7


class DmaController(wiring.Component):
    """Moves 2-D strided blocks between main memory and the two scratchpads, a line per cycle.

    Takes one descriptor at a time from ``i_desc`` (see :data:`spec.memory.DESC_FIELDS` and
    ``golden/dma.py`` for the exact semantics: block geometry, transpose, zero padding of loaded
    rows, element width conversion). Main memory is a line memory on a line bus
    (:class:`~rtl.bus.LineBusSignature`, :data:`~spec.memory.LINE_WORDS` words per line). For
    each descriptor it

    1. checks every address before any access (four cycles, then DECIDE acts on the outcome); a
       faulting descriptor makes no bus request and no scratchpad write (a store reads its first
       scratchpad rows while the check runs, whatever its outcome: a read changes nothing, and so
       the fault code stays off the scratchpad's bank arbitration). The product ``rows * stride``
       goes through a DSP block's three registers (:func:`rtl.dsp.registered_product`, its
       operands the descriptor's fields as it is taken); ``stride`` enters it as its low
       ``ceil_log2(mem_words)`` bits, which is exact whenever the outcome depends on it (a block
       of two rows or more whose stride is ``mem_words`` or more is past the end either way, a
       flag registered beside it). The main-memory end is a comparison of the product with a
       registered ``mem_words + stride - (mem_addr + row words)``, registered in turn, so DECIDE
       reads one register;
    2. issues one bus request per cycle (as back-pressure allows): without transpose, one per
       line each block row touches (a store writes the row's words in it, its mask selecting
       them), row after row; with transpose, one per word, in order scratchpad row, lane, word.
       Each request's tag (how to place its line in the row being assembled, whether it ends a
       row, whether it is the last) is queued, ``mem_latency + 1`` deep, and the responses are
       taken as they come (``rsp.ready`` is always high). A load rotates each line read into a
       row buffer and writes the scratchpad row from that buffer (a register) the cycle after its
       last line arrives. A store sends a row from a shift register of its words (``sent``), loaded
       when the row starts from the head of a queue of four rows, which its reads fill as room
       allows (the read enable is a register; the read port is a late one, and each row is taken
       off it into the queue when it arrives, two cycles after its read): the scratchpad's
       block-RAM output reaches only the scratchpad's registers of the bank outputs. A store's
       first request comes two cycles after DECIDE (PRIME moves the first row, queued during the
       check, into ``sent``). The line's words are a window of ``sent``'s first line and the line
       before it;
    3. raises ``done`` for one cycle after the last response (a store: every write has been
       performed) or, for a load, after the last row's write, with the fault code on ``fault``,
       and is ready for the next descriptor in that same cycle.

    The check is the one :class:`DmaChecker` makes, in registered steps.

    Under the deterministic memory model the cycle count is exactly
    :func:`golden.dma.cycles`.

    Parameters
    ----------
    soc : SocConfig
        Lanes, word and element widths, the memory sizes (main memory, both scratchpads) and
        main memory's latency; default :data:`spec.soc.DEFAULT_SOC`.

    Members
    -------
    i_desc : ``In(stream.Signature(descriptor_layout()))``
        Descriptors; ``ready`` is high when the DMA is idle.
    bus : ``Out(LineBusSignature(ceil_log2(mem_words // LINE_WORDS), word_width, LINE_WORDS))``
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
    ValueError
        If main memory has more than ``2**18`` words (a stride below ``mem_words`` must fit a
        DSP block's 18-bit operand).
    """

    def __init__(self, soc=None):
        self._soc = soc = check_soc(soc, "DMA")
        _check_dsp_words(soc.mem_words, "DMA")
        ports = {}
        for space, prefix in ((Space.SP, "sp"), (Space.ACC, "acc")):
            geometry = (soc.space_rows(space), soc.elem_width(space), soc.lanes)
            ports[f"{prefix}_read"] = Out(ReadPortSignature(*geometry))
            ports[f"{prefix}_write"] = Out(WritePortSignature(*geometry))
        lines = soc.mem_words // LINE_WORDS
        super().__init__({
            "i_desc": In(stream.Signature(descriptor_layout())),
            "bus": Out(LineBusSignature(max(1, ceil_log2(lines)), soc.word_width, LINE_WORDS)),
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
        F = LINE_WORDS
        fb = F.bit_length() - 1                           # bits of a word's index in its line
        NW = MAX_ELEM_WORDS * lanes                       # words of a row, at most
        addr_width = max(1, ceil_log2(soc.mem_words))     # word addresses
        req, rsp = self.bus.req, self.bus.rsp
        reads = (self.sp_read, self.acc_read)
        writes = (self.sp_write, self.acc_write)
        row_width = len(self.i_desc.payload.sp_row)
        t_width = max(len(self.i_desc.payload.rows), len(self.i_desc.payload.cols))

        state = Signal(_State)
        d = Signal(descriptor_layout())
        wide = d.elem_words[1]                            # 2-word elements (if it is legal)
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
        n_in_m1 = Signal(range(lanes))                    # lanes covered - 1
        n_out_m1 = Signal(t_width)                        # scratchpad rows - 1
        n_out_m2 = Signal(t_width)                        # scratchpad rows - 2 (if two or more)
        inner = Signal(len(d.stride))                     # word step between lanes (transpose)
        outer = Signal(len(d.stride))                     # word step between scratchpad rows
        lane_on = Signal(lanes)                           # lanes the block covers
        row_ones = Signal(NW)                             # bit p: a row's first request
                                                          # covers word p of it (transpose: p = 0)
        fits = Signal(F)                                  # bit q: a row from word q of a line
                                                          # ends in it (without transpose)

        # --- check: four registered steps, the fault code acted on in DECIDE -------------------
        n_out = Mux(d.transpose, d.cols, d.rows)
        n_in = Mux(d.transpose, d.rows, d.cols)
        # The end of the block, mem_addr + (rows - 1) * stride + row words, is past mem_words iff
        # `big` (two rows or more and stride >= mem_words) or rows * s > mem_words + s - row_end
        # with s the stride's low `sw` bits (below mem_words otherwise, so s = stride; a row
        # end past mem_words + s makes the right side negative). The product's operands are
        # the descriptor's fields as it is taken (IDLE), its product is out in COMPARE.
        sw = max(1, ceil_log2(soc.mem_words))
        pd = self.i_desc.payload
        product = registered_product(m, "span", pd.rows, pd.stride[:sw], en=C(1, 1),
                                     platform=platform)
        # CHECK: the first six checks' outcomes (they read only the descriptor), each a
        # register, the row's end (mem_addr's low bits: a higher mem_addr is MEM_RANGE),
        # mem_words + s and `big`.
        pre_checks = _fault_checks(d, soc)
        pre_failed = Signal(len(pre_checks))              # bit i: check i failed
        row_end = Signal(sw + len(d.cols) + 2)            # mem_addr + block row words
        s_plus = Signal(sw + 1)                           # mem_words + s
        big = Signal()
        # ROOM: their code, by priority (`pre_fail`: one failed), and mem_words + s - row_end,
        # as a sign and low bits (it is below 2**(sw + 1)).
        pre_code = Signal(FAULT_BITS)                     # the fault code but for MEM_END
        pre_fail = Signal()
        room_neg = Signal()
        mem_room = Signal(sw + 1)
        # COMPARE: the outcome, for DECIDE.
        fail = Signal()
        code = Signal(FAULT_BITS)
        diff = s_plus - row_end
        over = big | room_neg | (product[sw + 1:] != 0) | (product[:sw + 1] > mem_room)

        # --- issue side: one request per cycle ---------------------------------------------------
        # Without transpose a request is a line of the block row t, whose words start at word
        # `off` of its first line; `window` has bit 8k + q set if word q of the row's line k is
        # one of its words (so the request's mask is its low byte, and the row's last line is
        # the one after which nothing is left). With transpose a request is word `i_w` of lane
        # `i_l`, at word `off` of line `a_line`; `window` is its one-hot mask.
        iss_on = Signal()
        i_t = Signal(t_width)
        i_l = Signal(range(lanes))
        i_w = Signal()
        a_row = Signal(addr_width)                         # word address of row t's start
        a_elem = Signal(addr_width)                        # transpose: element (t, l)
        a_word = Signal(addr_width)                        # transpose: the request's word
        a_line = Signal(addr_width - fb if addr_width > fb else 1)   # the request's line
        # the next row's start `a_row + outer` and (transpose) the next lane's element
        # `a_elem + inner`, registers: a request's address, window and flags come from registers
        # through one adder or one shift at most
        r_next = Signal(addr_width)
        e_next = Signal(addr_width)
        deciding = Signal()                                # the state is DECIDE, one register
        priming = Signal()                                 # the state is PRIME, one register
        row_start = Signal()                               # a row's first request is set up
        m.d.sync += [deciding.eq(0), priming.eq(0)]
        off = Signal(fb)
        window = Signal(NW + F)
        pos = Signal(range(NW))                            # transpose: the word's place in the row
        place = Signal(NW + F)                             # bit F + p: the request fills word p
        i_last_w = i_w == wide
        i_last_l = i_l == n_in_m1
        # Registered flags, set with the request they describe (so that the row's advance starts
        # at registers): the request is the last of its row (without transpose:
        # `window[F:] == 0`; with: `i_last_w & i_last_l`), and its row is the last
        # (`i_t == n_out_m1`, set from `i_t == n_out_m2` when the row before starts).
        row_last = Signal()
        t_last = Signal()
        n_words = Signal(range(NW + 1))                    # words of a block row
        accept = Signal()

        # Tags of the requests in flight, for the response side.
        tag_layout = data.StructLayout({"rot": fb, "place": NW, "row_last": 1, "last": 1})
        m.submodules.tags = tags = SyncFIFO(width=tag_layout.size, depth=soc.mem_latency + 1)
        tag_in = Signal(tag_layout)
        tag = Signal(tag_layout)
        m.d.comb += [
            tag_in.rot.eq(off - pos),
            tag_in.place.eq(place[F:]),
            tag_in.row_last.eq(row_last),
            tag_in.last.eq(row_last & t_last),
            tags.w_data.eq(tag_in),
            tags.w_en.eq(accept),
            tag.eq(tags.r_data),
            tags.r_en.eq(rsp.valid),
        ]
        # `req.valid` is a register, `req_on` = `iss_on` and the tag FIFO's room, set from their
        # next values (`iss_next`, the FIFO's next level), so that no gate lies between it and
        # the arbiter's grant
        iss_next = Signal()
        req_on = Signal()
        level_next = (tags.level + (tags.w_en & tags.w_rdy) - (tags.r_en & tags.r_rdy))
        m.d.comb += iss_next.eq(iss_on)
        m.d.sync += [iss_on.eq(iss_next),
                     req_on.eq(iss_next & (level_next[:len(tags.level)] != tags.depth))]

        # Store data: the row's words in `sent` (a shift register loaded from the row queue
        # below, so that no block-RAM output reaches the bus in the same cycle) and
        # the line before its first line in `prev`: word q of the request is the window's word
        # F + q - off of Cat(prev, sent[:F]).
        NS = max(NW, F)                                    # at least a line (narrow rows)
        sent = [Signal(ww, name=f"sent_{p}") for p in range(NS)]
        prev = [Signal(ww, name=f"prev_{q}") for q in range(F)]
        both = Cat(*prev, *sent[:F])
        m.d.comb += [
            req.valid.eq(req_on),
            req.payload.addr.eq(a_line),
            req.payload.we.eq(d.direction == Dir.STORE),
            req.payload.mask.eq(window[:F]),
            accept.eq(req.valid & req.ready),
        ]
        for q in range(F):
            m.d.comb += req.payload.wdata[q].eq(
                both.word_select((F + q - off)[:fb + 1], ww))
        # Store reads: a prefetch queue of four rows between the read port and `sent`. The read
        # port is a late one (the row two cycles after the read: the scratchpad registers each
        # bank's output for it). A read is issued whenever rows are left to read and the queue
        # will have room for its row (the rows queued plus the two in flight, at most three,
        # counted for the next cycle: `rd_ok` is a register, so the bus's handshake does not
        # reach the scratchpad's read enable), and its row is taken off the read port into the
        # queue when it arrives (one register per queue entry, enabled by registers). A row
        # moves from the queue's head into `sent` in PRIME and when a row's last request is
        # accepted; four entries keep one row per cycle.
        Q = 4
        # A queue entry holds a row as the words `sent` takes (the descriptor's space and
        # element width applied as the row comes off the read port, from registers), so the
        # queue's head reaches `sent` through its one-hot selection only.
        queue = [Signal(ww * NW, name=f"queue_{i}") for i in range(Q)]
        q_wr = Signal(Q, init=1)                           # one-hot: the entry the next row fills
        q_rd = Signal(Q, init=1)                           # one-hot: the queue's head
        q_count = Signal(range(Q + 1))                     # rows in the queue
        q_occ = Signal(range(Q + 1))                       # rows in the queue or on their way
        rd_q = Signal()                                    # a read was issued last cycle
        rd_q2 = Signal()                                   # a row arrives on the read port
        rd_ok = Signal()                                   # read a row in this cycle
        # `rd_ok` and the descriptor's space, one register per scratchpad: its read enable
        rd_on = [Signal(name=f"rd_on_{prefix}") for prefix in ("sp", "acc")]

        def set_rd(value, space=d.space):
            return [rd_ok.eq(value), *(rd_on[s].eq(value & (space == s)) for s in Space)]
        rd_left = Signal(t_width)                          # rows still to read
        next_row = Signal(row_width)                       # the row the next read reads
        consume = Signal()                                 # the head moves into `sent`
        for space, port in enumerate(reads):
            m.d.comb += [port.addr.eq(next_row), port.en.eq(rd_on[space])]
        elem32 = [Signal(signed(MAX_ELEM_WORDS * ww), name=f"elem32_{k}") for k in range(lanes)]
        m.d.comb += [elem32[k].eq(Mux(d.space == Space.ACC, reads[1].data[k], reads[0].data[k]))
                     for k in range(lanes)]
        arrived = Signal(ww * NW)                          # the row off the port, as `sent` words
        for p in range(NW):
            narrow = elem32[p][:ww] if p < lanes else 0
            m.d.comb += arrived.word_select(p, ww).eq(
                Mux(wide, elem32[p // 2].word_select(p % 2, ww), narrow))
        # (words NW.. of a narrow row are never selected: their mask bits are off)
        with m.If(rd_q2):
            for i in range(Q):
                with m.If(q_wr[i]):
                    m.d.sync += queue[i].eq(arrived)
            m.d.sync += q_wr.eq(q_wr.rotate_left(1))
        with m.If(consume):
            m.d.sync += q_rd.eq(q_rd.rotate_left(1))
        # Read in the next cycle if a row is left after this cycle's read and at most Q - 1 rows
        # will be queued or on their way: `q_occ + rd_ok - consume <= Q - 1`, written so that
        # `consume` (the bus's handshake) meets registers in one gate (`q_occ + rd_ok <= Q`).
        left_after = (rd_left != 0) & ~((rd_left == 1) & rd_ok)
        room = (q_occ <= Q - 2) | ((q_occ == Q - 1) & ~rd_ok)
        m.d.sync += [
            rd_q.eq(rd_ok), rd_q2.eq(rd_q), rd_left.eq(rd_left - rd_ok),
            q_count.eq(q_count + rd_q2 - consume), q_occ.eq(q_occ + rd_ok - consume),
            next_row.eq(next_row + rd_ok),
            *set_rd((d.direction == Dir.STORE) & left_after & (room | consume)),
        ]

        head = queue[Q - 1]
        for i in reversed(range(Q - 1)):
            head = Mux(q_rd[i], queue[i], head)
        load_row = [sent[p].eq(head.word_select(p, ww)) for p in range(NW)]   # `sent` takes it

        def start_row(addr):
            """The first request of the row whose words start at ``addr``: without transpose
            its first line, with transpose its first word."""
            low = addr[:fb]
            return [i_l.eq(0), i_w.eq(0), pos.eq(0),
                    a_row.eq(addr), a_elem.eq(addr), a_word.eq(addr),
                    r_next.eq(addr + outer), e_next.eq(addr + inner),
                    a_line.eq(addr[fb:]), off.eq(low),
                    window.eq(Cat(row_ones, C(0, F)) << low),
                    place.eq(Mux(d.transpose, 1 << F, C(((1 << F) - 1) << F, 2 * F) >> low)),
                    row_last.eq(Mux(d.transpose, ~wide & (n_in_m1 == 0), fits.bit_select(low, 1)))]

        def start_word(addr):
            """With transpose: the request of the word at ``addr``."""
            return [a_word.eq(addr), a_line.eq(addr[fb:]), off.eq(addr[:fb])]

        # --- response side: rotates lines into the row buffer of a load -------------------------
        buf = [Signal(ww, name=f"buf_{p}") for p in range(NW)]
        line = rsp.payload
        rotated = [Signal(ww, name=f"rotated_{j}") for j in range(F)]
        for j in range(F):
            m.d.comb += rotated[j].eq(line.as_value().word_select((j + tag.rot)[:fb], ww))
        with m.If(rsp.valid & (d.direction == Dir.LOAD)):
            for p in range(NW):
                with m.If(tag.place[p]):
                    m.d.sync += buf[p].eq(rotated[p % F])
        wr_row = Signal(row_width)
        wr_en = Signal()                                   # write the row in `buf` this cycle
        m.d.sync += wr_en.eq(rsp.valid & tag.row_last & (d.direction == Dir.LOAD))
        with m.If(wr_en):
            m.d.sync += wr_row.eq(wr_row + 1)
        row = [Signal(signed(MAX_ELEM_WORDS * ww), name=f"row_{k}") for k in range(lanes)]
        for k in range(lanes):
            value = Mux(wide, Cat(buf[2 * k], buf[2 * k + 1]).as_signed(), buf[k].as_signed())
            m.d.comb += row[k].eq(Mux(lane_on[k], value, 0))
        for space, port in enumerate(writes):
            m.d.comb += [
                port.addr.eq(wr_row),
                port.en.eq(Mux(wr_en & (d.space == space), (1 << lanes) - 1, 0)),
            ]
            for k in range(lanes):
                m.d.comb += port.data[k].eq(row[k])

        # --- the requests: `accept` implies RUN (`iss_on` is set on entering RUN and cleared in
        # it), so the issue side's registers are enabled by the handshake and registers alone,
        # not by the state's decoding
        m.d.comb += row_start.eq(deciding)
        with m.If(accept):
            with m.If(~row_last):
                with m.If(d.transpose):
                    with m.If(~i_last_w):
                        # the element's second word: the window's one bit moves up a word
                        m.d.sync += [i_w.eq(1), *start_word(a_word + 1),
                                     window.eq(window[:F].rotate_left(1)),
                                     row_last.eq(i_last_l)]
                    with m.Else():
                        m.d.sync += [i_w.eq(0), i_l.eq(i_l + 1),
                                     a_elem.eq(e_next), e_next.eq(e_next + inner),
                                     *start_word(e_next),
                                     window.eq(C(1, NW + F) << e_next[:fb]),
                                     row_last.eq(~wide & (i_l + 1 == n_in_m1))]
                    m.d.sync += [pos.eq(pos + 1), place.eq(place << 1)]
                    m.d.sync += [sent[p].eq(sent[p + 1]) for p in range(NS - 1)]
                with m.Else():
                    m.d.sync += [a_line.eq(a_line + 1), window.eq(window >> F),
                                 place.eq(place << F), row_last.eq(window[2 * F:] == 0)]
                    m.d.sync += [prev[q].eq(sent[q]) for q in range(F)]
                    m.d.sync += [sent[p].eq(sent[p + F]) for p in range(NS - F)]
            with m.Elif(~t_last):
                m.d.sync += [i_t.eq(i_t + 1), t_last.eq(i_t == n_out_m2)]
                m.d.comb += [row_start.eq(1), consume.eq(d.direction == Dir.STORE)]
            with m.Else():
                m.d.comb += iss_next.eq(0)
            # `sent` takes the next row after a row's last request (after the last row
            # the queue's head, unused): its enable is RUN and `accept` only
            with m.If(row_last):
                m.d.sync += load_row
        # a row's first request, from `r_next` (the next row's start; the first row's, set in
        # COMPARE, in DECIDE)
        with m.If(row_start):
            m.d.sync += start_row(r_next)
        with m.If(deciding):
            m.d.sync += [i_t.eq(0), wr_row.eq(d.sp_row)]
        with m.If(priming):
            m.d.comb += consume.eq(1)
            m.d.sync += load_row

        # --- control ----------------------------------------------------------------------------
        with m.Switch(state):
            with m.Case(_State.IDLE):
                m.d.sync += set_rd(0)
                with m.If(self.i_desc.valid):
                    pd = self.i_desc.payload
                    # a store reads its first row in CHECK, whatever the check's outcome
                    m.d.sync += [d.eq(pd), state.eq(_State.CHECK),
                                 next_row.eq(pd.sp_row),
                                 *set_rd(pd.direction == Dir.STORE, pd.space),
                                 rd_left.eq(Mux(pd.transpose, pd.cols, pd.rows)),
                                 q_count.eq(0), q_occ.eq(0), q_wr.eq(1), q_rd.eq(1), rd_q.eq(0),
                                 rd_q2.eq(0)]

            with m.Case(_State.CHECK):
                m.d.sync += [state.eq(_State.ROOM),
                             pre_failed.eq(Cat(failed for _, failed in pre_checks)),
                             row_end.eq(d.mem_addr[:sw] + _block_words(d)),
                             s_plus.eq(soc.mem_words + d.stride[:sw]),
                             big.eq((d.rows > 1) & (d.stride >= soc.mem_words))]
                # the run's constants, whatever the outcome (nothing reads them before RUN, and
                # the last descriptor's run is over); ROOM adds those it computes from these
                m.d.sync += [
                    n_in_m1.eq(n_in - 1),
                    n_out_m1.eq(n_out - 1),
                    n_out_m2.eq(n_out - 2),
                    inner.eq(Mux(d.transpose, d.stride, d.elem_words)),
                    outer.eq(Mux(d.transpose, d.elem_words, d.stride)),
                    n_words.eq(_block_words(d)),
                    t_last.eq(n_out == 1),
                ]

            with m.Case(_State.ROOM):
                m.d.sync += [state.eq(_State.COMPARE),
                             room_neg.eq(diff < 0), mem_room.eq(diff[:sw + 1]),
                             pre_code.eq(_first_fault(
                                 m, [(value, pre_failed[i])
                                     for i, (value, _) in enumerate(pre_checks)], "pre_first")),
                             pre_fail.eq(pre_failed != 0),
                             # from CHECK's `n_words` and `n_in_m1` (a legal block's: a row's
                             # words fit them), a compare with a constant for each bit
                             row_ones.eq(Mux(d.transpose, 1,
                                             Cat((n_words > p) for p in range(NW)))),
                             fits.eq(Cat(q + n_words <= F for q in range(F))),
                             lane_on.eq(Cat((n_in_m1 >= k) for k in range(lanes)))]

            with m.Case(_State.COMPARE):
                m.d.sync += [state.eq(_State.DECIDE), deciding.eq(1),
                             r_next.eq(d.mem_addr[:addr_width]),
                             fail.eq(pre_fail | over),
                             code.eq(Mux(pre_fail, pre_code,
                                         Mux(over, Fault.MEM_END, Fault.NONE)))]

            with m.Case(_State.DECIDE):
                # whatever the fault code: a read changes nothing, and the rows are the
                # instruction's (the sequencer checked their range)
                # The run registers are set whatever the fault code (with a fault nothing reads
                # them: no request is issued, no row written); only the next state, `iss_on`
                # and the status depend on it, on one register (`fail`).
                with m.If(fail):
                    m.d.sync += [state.eq(_State.IDLE), done.eq(1), fault.eq(code),
                                 *set_rd(0)]
                with m.Elif(d.direction == Dir.STORE):
                    m.d.sync += [state.eq(_State.PRIME), priming.eq(1)]
                with m.Else():
                    m.d.sync += state.eq(_State.RUN)
                    m.d.comb += iss_next.eq(1)
                # (the run's constants were set in CHECK, from the descriptor's registers, the
                # run's first registers are set above, enabled by `deciding`)

            with m.Case(_State.PRIME):
                # a store: the first row, read in CHECK, is at the queue's head (it came off the
                # late read port in COMPARE); it moves into `sent` (above, enabled by
                # `priming`), the first request goes out in the next cycle
                m.d.sync += state.eq(_State.RUN)
                m.d.comb += iss_next.eq(1)

            with m.Case(_State.RUN):
                with m.If(rsp.valid & tag.last):
                    with m.If(d.direction == Dir.LOAD):
                        m.d.sync += state.eq(_State.FLUSH)
                    with m.Else():
                        m.d.sync += [state.eq(_State.IDLE), done.eq(1), fault.eq(Fault.NONE)]

            with m.Case(_State.FLUSH):
                # the last row is written from `buf` in this cycle
                m.d.sync += [state.eq(_State.IDLE), done.eq(1), fault.eq(Fault.NONE)]
        return m
