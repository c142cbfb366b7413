"""The selection engine: runs SELCLR, SELFEED and SELOUT on a balanced top-K selector.

SELFEED reads the probability rows ``prob_row .. prob_row + C - 1`` of the operand scratchpad
whole, shifts their lanes (samples ``s``, ids ``r[rid] + s``) out at one probability per cycle
through per-sample top-P lists, and queues each sample's top-P entries into a
:class:`~rtl.topk.TopKSelector`. SELOUT reads the selection out and writes it to main
memory through the engine's own bus master, in the layout of :func:`spec.isa.sel_out_pack`: for
each class its count word, then its records (id words, score word). SELCLR clears the selector.
The selector's state persists between instructions and programs until SELCLR.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec import isa
from spec.isa import Op
from spec.selection import WORD_SLOTS, check_word_slots
from spec.timing import SEL_BUSY_LATENCY
from spec.soc import check_soc
from .sequencer import field
from .spport import ReadPortSignature
from .bus import BusSignature
from .topk import TopKSelector

__all__ = ["SelEngine"]


class SelEngine(wiring.Component):
    """Executes the selection instructions of ``docs/isa.md`` (unit ``SEL``).

    Timing (deterministic memory, :class:`golden.machine.Timing`): the engine takes the
    instruction in the cycle ``start`` is high (``t``) and is busy from ``t+1``; ``busy`` is a
    register, so it stays high :data:`~spec.timing.SEL_BUSY_LATENCY` cycle after each
    instruction's work, described next. SELCLR strobes the
    selector's clear at ``t+1``: its work ``C + 1`` cycles. SELFEED reads the probability rows whole:
    row ``j`` (class ``j`` of every sample) at ``t+1 + j·N`` (``T = max(N, 2)``) through a late
    read port (the row two cycles after the read: ``spec.timing.SEL_READ_STAGES``) into a shift
    register whose lanes (samples) leave it one per cycle, so the beats run back to back from
    ``t+4``, one
    probability per cycle, with no lane multiplexer. Each beat inserts its probability into its
    sample's top-P list (distributed RAM, one list per lane; a beat of the last row waits until
    the output buffer has handed over the previous sample's entries); at the last row the list
    goes to the output buffer, which hands the entries to the selector's queue one per cycle
    (the queue holds ``max(2, lanes·P)``: it never fills). Its work lasts until the last
    entry is inserted: :func:`golden.selection.selfeed_cycles` of the entries' inserter cycles
    (data-dependent). SELOUT strobes the read-out at ``t+1`` and from ``t+2`` writes one word per
    cycle while it has one: a class's count word and its records' words as they leave the
    selector's output FIFO, an empty class's count word once a later class's record (or the
    read-out's end) shows it empty. Its work lasts until the last write is acknowledged:
    :func:`golden.machine.selout_last_write` ``+ latency`` cycles (``words + 4 + latency`` with
    no empty class).

    Parameters
    ----------
    soc : SocConfig
        Its ``selector`` (not ``None``) sets the classes ``C``, ``K``, ``P`` and the id width.
    word_slots : int
        Entries per block-RAM word of the selector (:class:`~rtl.topk.TopKSelector`); the cycle
        model assumes the default, :data:`spec.selection.WORD_SLOTS`.

    Members
    -------
    start : In(1)
        Take the instruction on ``ir`` (a SELCLR, SELFEED or SELOUT; only while not ``busy``).
    ir : In(128)
        The instruction.
    arg : In(32)
        With ``start``: SELFEED's base sample id ``r[rid]``, SELOUT's address ``r[rm] + mem_off``.
    busy : Out(1)
    sp_rd : Out(ReadPortSignature)
        Operand scratchpad read (SELFEED's probability rows): a late port (``rtl.scratchpad``),
        the row two cycles after the read.
    bus : Out(BusSignature)
        Main-memory bus master (SELOUT's writes; it never reads).
    total : Out(range(K·C + 1))
        Entries the selector holds.
    selector : TopKSelector
        Its selector (not a port: the tests watch its ``collision`` probe).

    Raises
    ------
    TypeError
        If ``soc`` is not a :class:`~spec.soc.SocConfig`.
    ValueError
        If ``soc`` has no selector.
    """

    def __init__(self, soc=None, *, word_slots=WORD_SLOTS):
        soc = check_soc(soc, "Selection engine")
        self._word_slots = check_word_slots(word_slots)
        if soc.selector is None:
            raise ValueError("Selection engine needs a SoC configuration with a selector, "
                             "not selector=None")
        self._soc = soc
        sel = soc.selector
        a = soc.config.array
        super().__init__({
            "start": In(1),
            "ir": In(isa.INSN_BITS),
            "arg": In(32),
            "busy": Out(1),
            "sp_rd": Out(ReadPortSignature(soc.sp_rows, a.operand_width, soc.lanes)),
            "bus": Out(BusSignature(max(1, ceil_log2(soc.mem_words)), soc.word_width)),
            "total": Out(range(sel.k * sel.classes + 1)),
        })
        #: The selector (not a port: the tests watch its ``collision`` probe).
        self.selector = TopKSelector(sel.classes, sel.k, score_width=sel.score_width,
                                     id_width=sel.id_width,
                                     queue_depth=max(2, soc.lanes * sel.p),
                                     word_slots=self._word_slots)

    @property
    def soc(self):
        return self._soc

    def elaborate(self, platform):
        m = Module()
        soc = self._soc
        cfg = soc.selector
        C, L = cfg.classes, soc.lanes
        W = soc.word_width
        id_words = isa.sel_record_words(cfg, W) - 1
        last_part = id_words + 1              # parts of a record: 0 count, 1.. id, last score

        m.submodules.selector = sel = self.selector
        m.d.comb += self.total.eq(sel.total)

        ir, arg = Signal(isa.INSN_BITS), Signal(32)
        with m.If(self.start):
            m.d.sync += [ir.eq(self.ir), arg.eq(self.arg)]
        f = lambda op, name: field(ir, op, name)

        feeding = Signal()
        feed_busy = self._feed(m, sel, f, arg, feeding)

        # ---------------- SELOUT: the read-out as main-memory writes ---------------------------
        rec = sel.o_record
        req, rsp = self.bus.req, self.bus.rsp
        wcls = Signal(range(C + 1))          # the class whose count word is next
        part = Signal(range(last_part + 1))  # word of the current record
        widx = Signal(32)                    # words written
        inflight = Signal(8)                 # writes not yet acknowledged
        writing = Signal()
        zero_mid = Signal()                  # an empty class before the offered record's class
        tail = Signal()                      # empty classes after the read-out ended
        m.d.comb += [
            zero_mid.eq(rec.valid & (rec.payload.cls != wcls)),
            tail.eq(~sel.busy & (wcls != C)),
        ]
        word = Signal(W)
        with m.If(~zero_mid & ~tail):
            with m.Switch(part):
                with m.Case(0):
                    m.d.comb += word.eq(rec.payload.count)
                for i in range(id_words):
                    with m.Case(1 + i):
                        m.d.comb += word.eq(rec.payload.id[W * i:W * (i + 1)])
                with m.Case(last_part):
                    m.d.comb += word.eq(rec.payload.score)
        m.d.comb += [
            req.valid.eq(writing & (rec.valid | tail)),
            req.payload.addr.eq(arg + widx),
            req.payload.we.eq(1),
            req.payload.wdata.eq(word),
            rsp.ready.eq(1),
        ]
        accept = Signal()
        m.d.comb += accept.eq(req.valid & req.ready)
        with m.If(accept):
            m.d.sync += widx.eq(widx + 1)
            with m.If(zero_mid | tail):
                m.d.sync += wcls.eq(wcls + 1)
            with m.Elif(part == last_part):
                m.d.comb += rec.ready.eq(1)
                m.d.sync += part.eq(~rec.payload.last)
                with m.If(rec.payload.last):
                    m.d.sync += wcls.eq(wcls + 1)
            with m.Else():
                m.d.sync += part.eq(part + 1)
        m.d.sync += inflight.eq(inflight + accept - rsp.valid)

        # ---------------- control ----------------------------------------------------------------
        # ``busy`` is a register (spec.timing.SEL_BUSY_LATENCY): high from the cycle after the
        # instruction is taken, low the cycle after its work is done (``work``, from deep in the
        # selector's state, reaches no other unit). The FSM is back in IDLE when it falls.
        assert SEL_BUSY_LATENCY == 1, "busy is one register after the work"
        work = Signal()
        m.d.sync += self.busy.eq(work)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += work.eq(self.start)
                with m.If(self.start):
                    with m.Switch(self.ir[:isa.OPCODE_BITS]):
                        with m.Case(Op.SELCLR):
                            m.next = "CLEAR"
                        with m.Case(Op.SELFEED):
                            m.next = "FEED"
                        with m.Case(Op.SELOUT):
                            m.next = "READOUT"
            with m.State("CLEAR"):
                m.d.comb += [work.eq(1), sel.clear_stb.eq(1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += work.eq(sel.busy)
                with m.If(~sel.busy):
                    m.next = "IDLE"
            with m.State("FEED"):
                m.d.comb += [feeding.eq(1), work.eq(feed_busy)]
                with m.If(~feed_busy):
                    m.next = "IDLE"
            with m.State("READOUT"):
                m.d.comb += [work.eq(1), sel.readout_stb.eq(1)]
                m.d.sync += [wcls.eq(0), part.eq(0), widx.eq(0)]
                m.next = "WRITE"
            with m.State("WRITE"):
                done = (wcls == C) & ~sel.busy & (inflight == 0)
                m.d.comb += [writing.eq(1), work.eq(~done)]
                with m.If(done):
                    m.next = "IDLE"
        return m

    def _feed(self, m, sel, f, arg, feeding):
        """SELFEED: rows into a shift register, lanes through per-sample top-P lists into the
        selector. Returns the busy signal of the instruction (valid while ``feeding``)."""
        soc, cfg = self._soc, self._soc.selector
        C, P, L, sw = cfg.classes, cfg.p, soc.lanes, cfg.score_width
        samples, prob_row = f(Op.SELFEED, "samples"), f(Op.SELFEED, "prob_row")

        # Row j (class j of every sample) is read in cycle j·T of the instruction, T = max(N, 2),
        # so that it reaches the shift register as the previous row's last lane leaves it (and a
        # lane's list is back from its two-cycle insertion before the lane's next beat).
        # The port is a late one: the row read in cycle c is loaded at the end of cycle c + 2
        # (ld_1, then ld). ld_cls holds until the next read, T >= 2 cycles later.
        rd_row, rd_wait = Signal(range(C + 1)), Signal(len(samples))
        ld_1, ld, ld_cls = Signal(), Signal(), Signal(range(C))
        read = Signal()
        m.d.comb += [
            read.eq(feeding & (rd_row != C) & (rd_wait == 0)),
            self.sp_rd.addr.eq(prob_row + rd_row),
            self.sp_rd.en.eq(read),
        ]
        m.d.sync += [ld_1.eq(read), ld.eq(ld_1)]
        with m.If(read):
            m.d.sync += [rd_row.eq(rd_row + 1), ld_cls.eq(rd_row),
                         rd_wait.eq(Mux(samples < 2, 1, samples - 1))]
        with m.Elif(rd_wait != 0):
            m.d.sync += rd_wait.eq(rd_wait - 1)

        # The shift register: the row's lanes leave it one per cycle, lane 0 first.
        row = Signal(L * sw)
        r_left, r_lane, r_cls = Signal(range(L + 1)), Signal(range(L)), Signal(range(C))
        last_row = r_cls == C - 1

        # Each sample's top-P (class, score) list so far, higher score first (lower class on a
        # tie), in distributed RAM addressed by lane. A beat is inserted in two stages: compare
        # (the new score against the list, `cur`, read a cycle ahead), then insert: into the
        # list, or at the last row into the output buffer `buf`. Two copies, written alike,
        # one per look-ahead read (below): two reads of one memory whose words are then selected
        # are merged by Yosys into one read with a selected address, which puts the selection's
        # late signal (`beat`, from the selector's ready) in front of the distributed RAM.
        pair = data.StructLayout({"cls": unsigned(cfg.class_width), "score": signed(sw)})
        plist = data.ArrayLayout(pair, P)
        t_wr = Signal(data.StructLayout({"addr": unsigned((L - 1).bit_length() or 1),
                                         "data": plist, "en": unsigned(1)}))
        copies = []
        for name in ("tops_after_beat", "tops_no_beat"):
            m.submodules[name] = copy = Memory(shape=plist, depth=1 << (L - 1).bit_length(),
                                               init=[])
            port = copy.write_port()
            m.d.comb += [port.addr.eq(t_wr.addr), port.data.eq(t_wr.data), port.en.eq(t_wr.en)]
            copies.append(copy)
        cur = Signal(plist)
        # stage 1 → 2 registers
        s1_v, s1_last, s1_lane = Signal(), Signal(), Signal(range(L))
        s1_new, s1_cur, s1_beats = Signal(pair), Signal(plist), Signal(P)
        # stage 2: the list with the new pair inserted
        inserted = Signal(plist)
        for i in range(P):
            kept = Mux(s1_beats[i], s1_new.as_value(), s1_cur[i].as_value())
            m.d.comb += inserted[i].eq(kept if i == 0 else
                                       Mux(s1_beats[i - 1], s1_cur[i - 1].as_value(), kept))

        buf = Signal(plist)
        buf_id, buf_count = Signal(cfg.id_width), Signal(range(P + 1))
        take = Signal()
        m.d.comb += [
            sel.i_entry.valid.eq(buf_count != 0),
            sel.i_entry.payload.id.eq(buf_id),
            sel.i_entry.payload.cls.eq(buf[0].cls),
            sel.i_entry.payload.score.eq(buf[0].score),
            take.eq(sel.i_entry.valid & sel.i_entry.ready),
        ]
        with m.If(take):
            m.d.sync += buf_count.eq(buf_count - 1)
            m.d.sync += [buf[i].eq(buf[i + 1]) for i in range(P - 1)]
        # stage 2 moves on unless it holds a last-row list and the buffer is not free
        advance2 = Signal()
        m.d.comb += advance2.eq(~s1_v | ~s1_last | (buf_count == 0) |
                                ((buf_count == 1) & take))
        with m.If(s1_v & s1_last & advance2):
            m.d.sync += [buf.eq(inserted), buf_id.eq(arg + s1_lane), buf_count.eq(P)]
        m.d.comb += [t_wr.addr.eq(s1_lane), t_wr.data.eq(inserted), t_wr.en.eq(s1_v & ~s1_last)]

        # stage 1: a beat takes the lane at the head of the row register; last-row beats are
        # P cycles apart (the buffer hands over P entries one per cycle)
        gap = Signal(range(P))
        beat = Signal()
        m.d.comb += beat.eq((r_left != 0) & (~last_row | ((gap == 0) & advance2)))
        score = row[:sw].as_signed()
        with m.If(beat):
            m.d.sync += [s1_v.eq(1), s1_last.eq(last_row), s1_lane.eq(r_lane), s1_cur.eq(cur),
                         s1_new.cls.eq(r_cls), s1_new.score.eq(score)]
            for i in range(P):   # slot i is empty in row j <= i, or the new score is higher
                m.d.sync += s1_beats[i].eq((r_cls <= i) | (score > cur[i].score))
            if P > 1:
                with m.If(last_row):
                    m.d.sync += gap.eq(P - 1)
        with m.Elif(advance2):
            m.d.sync += s1_v.eq(0)
        with m.If(~beat & (gap != 0)):
            m.d.sync += gap.eq(gap - 1)
        with m.If(ld):
            m.d.sync += [row.eq(self.sp_rd.data.as_value()), r_left.eq(samples), r_lane.eq(0),
                         r_cls.eq(ld_cls)]
        with m.Elif(beat):
            m.d.sync += [row.eq(row >> sw), r_left.eq(r_left - 1), r_lane.eq(r_lane + 1)]

        # `cur` is read a cycle ahead (a register after the distributed RAM): the list of the
        # lane of the next beat, or that lane's list in stage 2 now (two samples, or one: written
        # at the end of the cycle). Both candidates for the next lane (after a beat or not) are
        # read, so that `beat` only selects between them.
        def lookahead(tops, lane, name):
            port = tops.read_port(domain="comb")
            value = Signal(plist, name=name)
            m.d.comb += port.addr.eq(lane)
            with m.If(s1_v & ~s1_last & (s1_lane == lane)):
                m.d.comb += value.eq(inserted)
            with m.Else():
                m.d.comb += value.eq(port.data)
            return value

        after_beat = lookahead(copies[0], Mux(r_left == 1, 0, r_lane + 1), "cur_after_beat")
        no_beat = lookahead(copies[1], Mux(ld, 0, r_lane), "cur_no_beat")
        m.d.sync += cur.eq(Mux(beat, after_beat, no_beat))

        with m.If(self.start):
            m.d.sync += [rd_row.eq(0), rd_wait.eq(0), r_left.eq(0), s1_v.eq(0), gap.eq(0)]

        busy = Signal()
        m.d.comb += busy.eq((rd_row != C) | ld_1 | ld | (r_left != 0) | s1_v | (buf_count != 0) |
                            sel.draining)
        return busy
