"""Streaming balanced selection: per-class top-K (:class:`TopKSelector`), its top-P front end
(:class:`TopPFilter`) and the two joined (:class:`BalancedSelector`).

The rule and its golden models are in :mod:`golden.selection`; the design is explained in
``docs/selection.md``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl.memattrs import COLLISION_FREE
from spec.params import OPERAND_WIDTH, check_positive_int
from spec.selection import (ID_WIDTH, READOUT_FIFO_DEPTH, WORD_SLOTS, SelectorConfig,
                            check_word_slots)

__all__ = ["entry_layout", "record_layout", "prob_layout",
           "TopKSelector", "TopPFilter", "BalancedSelector"]


def entry_layout(config):
    """Payload of an entry stream: a sample id, a class and that class's score."""
    return data.StructLayout({
        "id": unsigned(config.id_width),
        "cls": unsigned(config.class_width),
        "score": signed(config.score_width),
    })


def record_layout(config):
    """Payload of the read-out stream: an entry with its rank in its class, the class's entry
    count, and ``last`` on the class's final entry."""
    return data.StructLayout({
        "id": unsigned(config.id_width),
        "cls": unsigned(config.class_width),
        "score": signed(config.score_width),
        "rank": unsigned((config.k - 1).bit_length()),
        "count": unsigned(config.count_width),
        "last": unsigned(1),
    })


def prob_layout(config):
    """Payload of a probability stream: one class's probability of a sample, the sample's id, and
    ``last`` on the sample's final class."""
    return data.StructLayout({
        "id": unsigned(config.id_width),
        "score": signed(config.score_width),
        "last": unsigned(1),
    })


class TopKSelector(wiring.Component):
    """Streaming per-class top-K: keeps, for every class, the ``k`` best entries seen since the last
    clear, in rank order (higher score first, then lower sample id), bit-exact with
    :class:`golden.selection.StreamingSelector`.

    Storage. One block RAM holds each class's sorted list, ``word_slots`` entries per word
    (``W``; rank ``r`` of class ``c`` in word ``c·⌈k/W⌉ + ⌊r/W⌋``, slot ``r mod W``), read with
    two registers (address, output: :data:`spec.selection.READ_CYCLES`) and written a slot or
    a word at a time from registers. A slot holds its
    entry as a sort key (the score with its sign bit flipped, above the inverted id), so that
    the ranking rule is one unsigned comparison of two keys; the read-out decodes it. Three small
    ``classes``-word memories (distributed RAM) hold each class's entry count, its *last* key
    (the key at rank ``count − 1``: the class's minimum once it is full) and the address of the
    word holding rank ``count`` (so that the look-up adds nothing after reading the count).

    Insertion. Accepted entries wait in a ``queue_depth``-entry FIFO (:class:`SyncFIFOBuffered`:
    an entry can leave it two cycles after it was accepted); the inserter takes one at a time.
    The cycle it takes an entry it looks up its class's count ``n`` and last key and compares
    the entry with that key; the next cycle it decides: an entry that does not beat the last key
    is rejected if the class is full and appended at rank ``n`` otherwise, as is the first entry
    of a class (two cycles in all, :data:`spec.selection.INSERT_SETUP`). Otherwise it shifts
    the list by one rank from its new last rank ``min(n, k − 1)`` down to the entry's rank, a
    word per cycle: it reads the words from the top one down, one per cycle; two cycles after a
    word's read it compares the entry with the word's ``W`` slots at once, and writes the word
    above (whose lowest slot takes this word's highest if the entry beats it, else the entry);
    the first word whose lowest slot the entry does not beat (or word 0) is the last, written a
    cycle later. A shift over ``w`` words takes ``w + 4`` cycles
    (:meth:`golden.selection.StreamingSelector.entry_cycles`); the last key changes only when a
    full class drops its last entry. ``draining`` is high while the queue holds an entry or the
    inserter works on one. Sample ids must be unique within a class.

    Clear. ``clear_stb`` drops the queue and any insertion in progress and resets every count:
    ``busy`` for ``classes`` cycles (:func:`golden.selection.clear_cycles`). After reset the
    selector is empty.

    Read-out. ``readout_stb`` waits until the queue is empty and the inserter idle, then emits
    every held entry on ``o_record``: class by class in increasing class, each class's entries in
    rank order, each beat with its ``rank``, its class's ``count`` and ``last`` on the class's
    final entry; empty classes emit nothing. It reads one slot per cycle (a cycle per empty
    class) while the reads in flight and the records waiting fit its
    :data:`spec.selection.READOUT_FIFO_DEPTH`-entry output FIFO, from which ``o_record`` is
    served: its ``ready`` reaches only the FIFO. ``busy`` is high from the strobe until the FIFO
    is empty, for :func:`golden.selection.readout_cycles` cycles when ``o_record`` is always
    ready; ``o_record`` may be stalled at will. The read-out leaves the selection unchanged.
    ``total`` tells beforehand how many beats it will emit.

    Collisions. The block RAM is marked :data:`rtl.memattrs.COLLISION_FREE`: its word read in a
    cycle that writes the same address is never used (the read port reads every cycle; its word
    is used only by a shift step's compare and a read-out slot, and neither ever reads a word
    being written: an appended or shifted word is written the cycle after it is formed, and the
    next read of its address comes later), so synthesis emulates no read-during-write behaviour.
    The attribute :attr:`collision` (not a port; nothing in the design reads it) is 1 in a
    cycle that uses a word whose read collided: the tests watch it.

    Strobes are taken only while ``busy`` is low; ``clear_stb`` wins over ``readout_stb``.
    ``i_entry.ready`` is low while the queue is full, while clearing, from a read-out's strobe
    until its last read, and in a cycle with either strobe high, so every entry accepted before a
    strobe is part of the selection it acts on (it depends on registers and the strobes only).

    Parameters
    ----------
    classes : int
        Number of classes, ≥ 1.
    k : int
        Entries kept per class, ≥ 1.
    score_width : int
        Width of a signed score; default :data:`spec.params.OPERAND_WIDTH`.
    id_width : int
        Width of an unsigned sample id; default :data:`spec.selection.ID_WIDTH`.
    queue_depth : int
        Entries the input FIFO holds, ≥ 2; default 4.
    word_slots : int
        Entries per block-RAM word, a power of two; default :data:`spec.selection.WORD_SLOTS`.

    Members
    -------
    i_entry : In(stream.Signature(entry_layout))
        Entries to consider: ``id``, ``cls`` (``< classes``), ``score``.
    o_record : Out(stream.Signature(record_layout))
        The read-out: ``id``, ``cls``, ``score``, ``rank``, ``count``, ``last``.
    clear_stb : In(1)
        Forget every entry.
    readout_stb : In(1)
        Emit the selection on ``o_record``.
    busy : Out(1)
        Clearing or reading out (from the strobe, also while waiting for the queue).
    total : Out(range(k * classes + 1))
        Number of entries held.
    draining : Out(1)
        Entries wait in the queue or are being inserted.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is out of range.
    """

    def __init__(self, classes, k, *, score_width=OPERAND_WIDTH, id_width=ID_WIDTH,
                 queue_depth=4, word_slots=WORD_SLOTS):
        self._config = SelectorConfig(classes=classes, k=k, p=1, id_width=id_width,
                                      score_width=score_width)
        self._queue_depth = check_queue_depth(queue_depth)
        self._word_slots = check_word_slots(word_slots)
        super().__init__({
            "i_entry": In(stream.Signature(entry_layout(self._config))),
            "o_record": Out(stream.Signature(record_layout(self._config))),
            "clear_stb": In(1),
            "readout_stb": In(1),
            "busy": Out(1),
            "total": Out(range(k * classes + 1)),
            "draining": Out(1),
        })
        #: Simulation probe: the word used this cycle was read while its address was written.
        self.collision = Signal()

    #: Cycles from forming a word to writing it; a test's variant lengthens it to make the
    #: block RAM's reads collide with its writes.
    _WRITE_STAGES = 1

    @property
    def classes(self):
        return self._config.classes

    @property
    def k(self):
        return self._config.k

    @property
    def score_width(self):
        return self._config.score_width

    @property
    def id_width(self):
        return self._config.id_width

    @property
    def queue_depth(self):
        return self._queue_depth

    @property
    def word_slots(self):
        return self._word_slots

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        classes, k, W = cfg.classes, cfg.k, self._word_slots
        lw = W.bit_length() - 1
        iw, sw = cfg.id_width, cfg.score_width
        kw = iw + sw
        kwords = -(-k // W)                       # words per class
        aw = max(1, ceil_log2(classes * kwords))

        def slot(word, j):
            return word[j * kw:(j + 1) * kw]

        # The slots: one block RAM, written by the inserter, read (registered twice) by the
        # inserter and the read-out; `q` is the output register.
        m.submodules.slots = slots = Memory(shape=unsigned(W * kw), depth=classes * kwords,
                                            init=[], attrs={COLLISION_FREE: 1})
        s_wr = slots.write_port(granularity=kw)
        s_rd = slots.read_port(transparent_for=())
        q = Signal(W * kw)
        # Its ports are driven by registers only: `rd_addr` is read every cycle (the inserter
        # and the read-out use the word only when they asked for it), `wq_*` is written the
        # cycle after the inserter forms it.
        rd_addr = Signal(aw)
        wq_addr, wq_data, wq_en = Signal(aw), Signal(W * kw), Signal(W)
        m.d.sync += [q.eq(s_rd.data), wq_en.eq(0)]
        w_addr, w_data, w_en = wq_addr, wq_data, wq_en
        for _ in range(self._WRITE_STAGES - 1):
            late = Signal(aw), Signal(W * kw), Signal(W)
            m.d.sync += [late[0].eq(w_addr), late[1].eq(w_data), late[2].eq(w_en)]
            w_addr, w_data, w_en = late
        m.d.comb += [s_rd.en.eq(1), s_rd.addr.eq(rd_addr),
                     s_wr.addr.eq(w_addr), s_wr.data.eq(w_data), s_wr.en.eq(w_en)]
        # The probe: q holds the word read two cycles ago; `q_used` (set below) is high when
        # a shift step or the read-out uses it.
        q_used, hit = Signal(), Signal(2)
        m.d.sync += hit.eq(Cat(w_en.any() & (w_addr == rd_addr), hit[0]))
        m.d.comb += self.collision.eq(hit[1] & q_used)
        # Per class: its count and its last key (distributed RAM, 2^class_width words).
        depth = 1 << cfg.class_width
        m.submodules.counts = counts = Memory(shape=unsigned(cfg.count_width), depth=depth,
                                              init=[])
        cnt_wr, cnt_in, cnt_ro = (counts.write_port(), counts.read_port(domain="comb"),
                                  counts.read_port(domain="comb"))
        m.submodules.lasts = lasts = Memory(shape=unsigned(kw), depth=depth, init=[])
        last_wr, last_rd = lasts.write_port(), lasts.read_port(domain="comb")
        # and the word that holds its rank `count` (base + count / W): the look-up reads it
        # instead of adding after the count's read
        m.submodules.words = words = Memory(
            shape=unsigned(aw), depth=depth,
            init=[c * kwords if c < classes else 0 for c in range(depth)])
        word_wr, word_in = words.write_port(), words.read_port(domain="comb")

        # The input queue (registered output): an entry's key, class, and its class's word 0.
        qlayout = data.StructLayout({"key": unsigned(kw), "cls": unsigned(cfg.class_width),
                                     "base": unsigned(aw)})
        flush = Signal()
        queue = SyncFIFOBuffered(width=qlayout.size, depth=self._queue_depth)
        m.submodules.queue = ResetInserter(flush)(queue)
        head = qlayout(queue.r_data)
        q_in = Signal(qlayout)
        ent = self.i_entry.payload
        m.d.comb += [
            q_in.key.eq(Cat(~ent.id, ent.score.as_unsigned() ^ (1 << (sw - 1)))),
            q_in.cls.eq(ent.cls),
            q_in.base.eq(_times(ent.cls, kwords)),
            queue.w_data.eq(q_in),
            queue.w_en.eq(self.i_entry.valid & self.i_entry.ready),
            cnt_in.addr.eq(head.cls),
            word_in.addr.eq(head.cls),
            last_rd.addr.eq(head.cls),
        ]

        # The read-out pipeline: a read issued (v1), its word in q (v2: a slot to the FIFO).
        layout = record_layout(cfg)
        meta = data.StructLayout({"cls": unsigned(cfg.class_width),
                                  "rank": unsigned((k - 1).bit_length()),
                                  "count": unsigned(cfg.count_width), "last": unsigned(1)})
        m.submodules.out_fifo = out = SyncFIFO(width=layout.size, depth=READOUT_FIFO_DEPTH)
        v1, v2 = Signal(), Signal()
        m1, m2 = Signal(meta), Signal(meta)
        ro_issue = Signal()
        m.d.sync += [v1.eq(ro_issue), v2.eq(v1), m2.eq(m1)]
        m.d.comb += q_used.eq(v2)
        ro_key = Signal(kw)
        m.d.comb += ro_key.eq(q.word_select(m2.rank[:lw], kw) if lw else q)
        record = Signal(layout)
        m.d.comb += [
            record.id.eq(~ro_key[:iw]),
            record.score.eq((ro_key[iw:] ^ (1 << (sw - 1))).as_signed()),
            record.cls.eq(m2.cls),
            record.rank.eq(m2.rank),
            record.count.eq(m2.count),
            record.last.eq(m2.last),
            out.w_data.eq(record),
            out.w_en.eq(v2),
            self.o_record.valid.eq(out.r_rdy),
            self.o_record.payload.eq(out.r_data),
            out.r_en.eq(self.o_record.ready),
        ]

        clearing, reading, inserting = Signal(), Signal(), Signal()
        ro_req, ro_stb, clear = Signal(), Signal(), Signal()
        m.d.comb += [
            self.busy.eq(clearing | reading | ro_req | v1 | v2 | out.r_rdy),
            self.draining.eq((queue.level != 0) | inserting),
            self.i_entry.ready.eq(queue.w_rdy & ~clearing & ~reading & ~ro_req &
                                  ~self.clear_stb & ~self.readout_stb),
            clear.eq(self.clear_stb & ~self.busy),
            ro_stb.eq(self.readout_stb & ~self.busy & ~self.clear_stb),
        ]
        with m.If(ro_stb):
            m.d.sync += ro_req.eq(1)

        # Inserter registers: the entry and what the look-up found.
        e_key, e_cls, base = Signal(kw), Signal(range(classes)), Signal(aw)
        n, full, beats_last = Signal(range(k + 1)), Signal(), Signal()
        app_word, app_slot = Signal(aw), Signal(max(1, lw))     # rank n
        top_word, top_slot = Signal(aw), Signal(max(1, lw))     # rank min(n, k - 1)
        top_index = Signal(range(kwords))                        # its word within the class
        # Shift registers: reads still to issue, the word in q, the word waiting to be written.
        rd_left = Signal(range(kwords))
        cmp_addr, primed, at_top = Signal(aw), Signal(), Signal()
        # the previous step's word and compare (the word written in this step), its address
        q_prev, b_prev, pend_addr = Signal(W * kw), Signal(W), Signal(aw)
        pend_top, have_pend = Signal(), Signal()
        # Read-out registers: the class, its count and the ranks left to read; the class whose
        # count is looked up for the next.
        ro_class, ro_rank = Signal(range(classes)), Signal(range(k))
        ro_count, ro_left, ro_look = (Signal(range(k + 1)), Signal(range(k + 1)),
                                      Signal(range(classes)))
        ro_base = Signal(aw)
        m.d.comb += cnt_ro.addr.eq(ro_look)
        clr_addr, clr_base = Signal(range(classes)), Signal(aw)

        # The compare of a shift step (used in state SHIFT): beaten[j], the entry ranks before
        # slot j of the word in q, or slot j is empty (in the top word, the slots from rank n up
        # when the class is not full, and those past rank k - 1). Empty slots may be written
        # with anything.
        beaten = Signal(W)
        for j in range(W):
            m.d.comb += beaten[j].eq((at_top & ((j > top_slot) | (~full & (j == top_slot)))) |
                                     (e_key > slot(q, j)))
        # Writes: an appended entry, or the previous step's word shifted: a beaten slot takes
        # its lower neighbour, the first beaten one the entry; its lowest slot (if beaten) takes
        # the highest of the word now in q if the entry beats it, else the entry (always in
        # FINAL, after word 0 or the last word).
        do_append, do_pend, final = Signal(), Signal(), Signal()
        carry, pword = Signal(kw), Signal(W * kw)
        for j in range(1, W):
            m.d.comb += slot(pword, j).eq(Mux(b_prev[j - 1], slot(q_prev, j - 1),
                                              Mux(b_prev[j], e_key, slot(q_prev, j))))
        m.d.comb += [
            carry.eq(Mux(final | ~beaten[W - 1], e_key, slot(q, W - 1))),
            slot(pword, 0).eq(Mux(b_prev[0], carry, slot(q_prev, 0))),
            last_wr.addr.eq(e_cls),
            last_wr.data.eq(Mux(do_append, e_key, slot(pword, (k - 1) % W))),
            # a full class's new last rank is in its top word
            last_wr.en.eq(do_append | (do_pend & pend_top & full)),
        ]
        with m.If(do_append):
            m.d.sync += [wq_addr.eq(Mux(full, base, app_word)), wq_data.eq(Cat([e_key] * W)),
                         wq_en.eq(Mux(full, 1, Const(1, W) << app_slot[:lw]))]
        with m.Elif(do_pend):
            m.d.sync += [wq_addr.eq(pend_addr), wq_data.eq(pword), wq_en.eq(-1)]

        def to_clear():
            with m.If(clear):
                m.d.comb += flush.eq(1)
                m.d.sync += [clr_addr.eq(0), clr_base.eq(0)]
                m.next = "CLEAR"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(clear):
                    to_clear()
                with m.Elif((ro_stb | ro_req) & (queue.level == 0)):
                    # ro_look is 0 here: class 0's count
                    m.d.sync += [ro_req.eq(0), ro_class.eq(0), ro_rank.eq(0), ro_base.eq(0),
                                 rd_addr.eq(0), ro_count.eq(cnt_ro.data),
                                 ro_left.eq(cnt_ro.data), ro_look.eq(1 % classes)]
                    m.next = "READOUT"
                with m.Elif(queue.r_rdy):
                    count = cnt_in.data
                    is_full = count == k
                    m.d.comb += queue.r_en.eq(1)
                    top = Signal(aw)
                    m.d.comb += top.eq(Mux(is_full, head.base + ((k - 1) >> lw), word_in.data))
                    m.d.sync += [
                        e_key.eq(head.key), e_cls.eq(head.cls), base.eq(head.base),
                        n.eq(count), full.eq(is_full), beats_last.eq(head.key > last_rd.data),
                        app_word.eq(word_in.data), app_slot.eq(count[:lw]),
                        top_word.eq(top), rd_addr.eq(top),
                        top_slot.eq(Mux(is_full, (k - 1) % W, count[:lw])),
                        top_index.eq(Mux(is_full, (k - 1) >> lw, count >> lw)),
                    ]
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                m.d.comb += inserting.eq(1)
                with m.If(~full):
                    m.d.comb += [cnt_wr.addr.eq(e_cls), cnt_wr.data.eq(n + 1), cnt_wr.en.eq(1),
                                 word_wr.addr.eq(e_cls), word_wr.en.eq(1),
                                 word_wr.data.eq(app_word + (app_slot == W - 1) if lw else
                                                 app_word + 1)]
                    m.d.sync += self.total.eq(self.total + 1)
                m.next = "IDLE"
                with m.If(full & ~beats_last):
                    pass                                              # rejected
                with m.Elif(~full & ((n == 0) | ~beats_last) | full & int(k == 1)):
                    # appended at rank n (or the only entry of k = 1 replaced)
                    m.d.comb += do_append.eq(1)
                with m.Else():
                    # the top word is read now (rd_addr)
                    m.d.sync += [rd_addr.eq(top_word - 1), rd_left.eq(top_index),
                                 cmp_addr.eq(top_word), primed.eq(0), at_top.eq(1),
                                 have_pend.eq(0)]
                    m.next = "SHIFT"
                to_clear()
            with m.State("SHIFT"):
                m.d.comb += inserting.eq(1)
                with m.If(rd_left != 0):
                    m.d.sync += [rd_addr.eq(rd_addr - 1), rd_left.eq(rd_left - 1)]
                # the top word reaches q a cycle after SHIFT starts
                m.d.sync += primed.eq(1)
                with m.If(primed):
                    m.d.comb += [do_pend.eq(have_pend), q_used.eq(1)]
                    m.d.sync += [q_prev.eq(q), b_prev.eq(beaten), pend_addr.eq(cmp_addr),
                                 pend_top.eq(at_top), have_pend.eq(1), at_top.eq(0),
                                 cmp_addr.eq(cmp_addr - 1)]
                    with m.If(~beaten[0] | (cmp_addr == base)):
                        m.next = "FINAL"
                to_clear()
            with m.State("FINAL"):
                m.d.comb += [inserting.eq(1), final.eq(1), do_pend.eq(1)]
                m.next = "IDLE"
                to_clear()
            with m.State("CLEAR"):
                m.d.comb += [clearing.eq(1), cnt_wr.addr.eq(clr_addr), cnt_wr.en.eq(1),
                             cnt_wr.data.eq(0), word_wr.addr.eq(clr_addr), word_wr.en.eq(1),
                             word_wr.data.eq(clr_base)]
                m.d.sync += [clr_addr.eq(clr_addr + 1), clr_base.eq(clr_base + kwords)]
                with m.If(clr_addr == classes - 1):
                    m.d.sync += self.total.eq(0)
                    m.next = "IDLE"
            with m.State("READOUT"):
                m.d.comb += reading.eq(1)
                room = out.level + v1 + v2 < READOUT_FIFO_DEPTH
                advance = Signal()
                with m.If(ro_left == 0):
                    m.d.comb += advance.eq(1)
                with m.Elif(room):
                    is_last = ro_left == 1
                    m.d.comb += [ro_issue.eq(1), advance.eq(is_last)]
                    m.d.sync += [m1.cls.eq(ro_class), m1.rank.eq(ro_rank), m1.count.eq(ro_count),
                                 m1.last.eq(is_last), ro_rank.eq(ro_rank + 1),
                                 ro_left.eq(ro_left - 1)]
                    if lw:
                        with m.If(ro_rank[:lw] == W - 1):
                            m.d.sync += rd_addr.eq(rd_addr + 1)
                    else:
                        m.d.sync += rd_addr.eq(rd_addr + 1)
                with m.If(advance):
                    m.d.sync += [ro_class.eq(ro_class + 1), ro_rank.eq(0),
                                 ro_base.eq(ro_base + kwords), rd_addr.eq(ro_base + kwords),
                                 ro_count.eq(cnt_ro.data), ro_left.eq(cnt_ro.data),
                                 ro_look.eq(ro_look + 1)]
                    with m.If(ro_class == classes - 1):
                        m.d.sync += ro_look.eq(0)
                        m.next = "IDLE"
        return m


def _times(value, const):
    """``value × const`` (a constant) as a sum of shifted copies: no multiplier."""
    terms = [value << b for b in range(const.bit_length()) if const >> b & 1]
    return sum(terms[1:], terms[0]) if terms else 0


def check_queue_depth(depth):
    """Raise unless ``depth`` (entries of the selector's input FIFO) is an integer ≥ 2."""
    check_positive_int(depth, "Selector queue depth")
    if depth < 2:
        raise ValueError(f"Selector queue depth must be at least 2, not {depth!r}")
    return depth


class TopPFilter(wiring.Component):
    """Top-P front end: turns a stream of probability vectors into the entries of each sample's
    top-``p`` classes, bit-exact with :func:`golden.selection.entries`.

    A sample is ``classes`` beats on ``i_prob``, class ``0`` first, ``last`` set on beat
    ``classes - 1`` (the beat count, not ``last``, delimits samples; a mismatched ``last`` sets the
    sticky ``error``). Each beat is inserted, in the cycle it is accepted, into a ``p``-entry sorted
    register list (higher probability first; on a tie the earlier, lower class stays first). On a
    sample's final beat the list moves to an output buffer, from which ``o_entry`` emits the ``p``
    entries ``(id, cls, score)`` in that order, ``id`` being the final beat's id, while the next
    sample streams in. The input never stalls while ``o_entry`` is ready: ``classes`` beats per
    sample, one per cycle; the last entry of a sample leaves ``p`` cycles after its final beat was
    accepted (with an always-ready output; :func:`golden.selection.balanced_cycles` models it
    in front of the selector).

    Parameters
    ----------
    classes : int
        Probabilities per sample, ≥ 1.
    p : int
        Entries per sample, ``1 <= p <= classes``.
    score_width : int
        Width of a signed probability; default :data:`spec.params.OPERAND_WIDTH`.
    id_width : int
        Width of an unsigned sample id; default :data:`spec.selection.ID_WIDTH`.

    Members
    -------
    i_prob : In(stream.Signature(prob_layout))
        Probabilities: ``id``, ``score``, ``last``.
    o_entry : Out(stream.Signature(entry_layout))
        Each sample's top-``p`` entries.
    clear_stb : In(1)
        Drop any partial sample and unsent entries; clear ``error``.
    busy : Out(1)
        A partial sample or unsent entries are held.
    error : Out(1)
        A beat's ``last`` did not match its position (sticky until ``clear_stb``).

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is not positive, or ``p > classes``.
    """

    def __init__(self, classes, p, *, score_width=OPERAND_WIDTH, id_width=ID_WIDTH):
        self._config = SelectorConfig(classes=classes, k=1, p=p, id_width=id_width,
                                      score_width=score_width)
        super().__init__({
            "i_prob": In(stream.Signature(prob_layout(self._config))),
            "o_entry": Out(stream.Signature(entry_layout(self._config))),
            "clear_stb": In(1),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def classes(self):
        return self._config.classes

    @property
    def p(self):
        return self._config.p

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        classes, p = cfg.classes, cfg.p
        pair = data.StructLayout({"cls": unsigned(cfg.class_width),
                                  "score": signed(cfg.score_width)})
        top = [Signal(pair, name=f"top_{i}") for i in range(p)]
        buf = [Signal(pair, name=f"buf_{i}") for i in range(p)]
        buf_id = Signal(cfg.id_width)
        buf_count = Signal(range(p + 1))
        beat = Signal(range(classes))   # class index of the next beat
        final = beat == classes - 1

        # Insert the offered beat into the sorted list (used only if the beat is accepted).
        new = Signal(pair)
        m.d.comb += [new.cls.eq(beat), new.score.eq(self.i_prob.payload.score)]
        beats = []
        for i in range(p):
            b = Signal(name=f"beats_{i}")
            m.d.comb += b.eq((beat <= i) | (self.i_prob.payload.score > top[i].score))
            beats.append(b)
        inserted = []
        for i in range(p):
            v = Signal(pair, name=f"ins_{i}")
            kept = Mux(beats[i], new.as_value(), top[i].as_value())
            m.d.comb += v.eq(kept if i == 0 else Mux(beats[i - 1], top[i - 1].as_value(), kept))
            inserted.append(v)

        out_hs = self.o_entry.valid & self.o_entry.ready
        m.d.comb += [
            self.o_entry.valid.eq(buf_count != 0),
            self.o_entry.payload.id.eq(buf_id),
            self.o_entry.payload.cls.eq(buf[0].cls),
            self.o_entry.payload.score.eq(buf[0].score),
            self.i_prob.ready.eq(~self.clear_stb &
                                 (~final | (buf_count == 0) | ((buf_count == 1) & out_hs))),
            self.busy.eq((beat != 0) | (buf_count != 0)),
        ]
        with m.If(out_hs):
            m.d.sync += buf_count.eq(buf_count - 1)
            m.d.sync += [buf[i].eq(buf[i + 1]) for i in range(p - 1)]
        with m.If(self.i_prob.valid & self.i_prob.ready):
            with m.If(self.i_prob.payload.last != final):
                m.d.sync += self.error.eq(1)
            with m.If(final):
                m.d.sync += [beat.eq(0), buf_id.eq(self.i_prob.payload.id), buf_count.eq(p)]
                m.d.sync += [buf[i].eq(inserted[i]) for i in range(p)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
                m.d.sync += [top[i].eq(inserted[i]) for i in range(p)]
        with m.If(self.clear_stb):
            m.d.sync += [beat.eq(0), buf_count.eq(0), self.error.eq(0)]
        return m


class BalancedSelector(wiring.Component):
    """Balanced pseudo-label selection from a probability stream: a :class:`TopPFilter` feeding a
    :class:`TopKSelector`, bit-exact with :class:`golden.selection.StreamingSelector` (and so with
    :func:`golden.selection.select_offline`). The sequencer feeds it straight from the softmax
    unit's probability stream and writes its read-out to main memory.

    A read-out reflects every sample whose entries have all reached the selector: strobe
    ``readout_stb`` once ``pending`` is low. ``clear_stb`` clears both parts.

    Parameters
    ----------
    classes, k, p : int
        Classes; entries kept per class; classes considered per sample (``1 <= p <= classes``).
    score_width, id_width, queue_depth, word_slots : int
        As for :class:`TopKSelector`.

    Members
    -------
    i_prob : In(stream.Signature(prob_layout))
        Probability vectors, as :class:`TopPFilter` ``i_prob``.
    o_record : Out(stream.Signature(record_layout))
        The read-out, as :class:`TopKSelector` ``o_record``.
    clear_stb, readout_stb : In(1)
        As for :class:`TopKSelector`.
    busy : Out(1)
        The selector is clearing or reading out.
    pending : Out(1)
        The filter holds a partial sample or entries not yet in the selector, or the selector's
        queue holds entries or it is inserting one.
    total : Out(range(k * classes + 1))
        Entries held by the selector.
    error : Out(1)
        A probability vector was mis-framed (see :class:`TopPFilter`).
    selector : TopKSelector
        Its selector (not a port: the tests watch its ``collision`` probe).

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is not positive, or ``p > classes``.
    """

    def __init__(self, classes, k, p, *, score_width=OPERAND_WIDTH, id_width=ID_WIDTH,
                 queue_depth=4, word_slots=WORD_SLOTS):
        self._config = SelectorConfig(classes=classes, k=k, p=p, id_width=id_width,
                                      score_width=score_width)
        self._queue_depth = check_queue_depth(queue_depth)
        self._word_slots = check_word_slots(word_slots)
        super().__init__({
            "i_prob": In(stream.Signature(prob_layout(self._config))),
            "o_record": Out(stream.Signature(record_layout(self._config))),
            "clear_stb": In(1),
            "readout_stb": In(1),
            "busy": Out(1),
            "pending": Out(1),
            "total": Out(range(k * classes + 1)),
            "error": Out(1),
        })
        self.selector = TopKSelector(classes, k, score_width=score_width, id_width=id_width,
                                     queue_depth=queue_depth, word_slots=word_slots)

    @property
    def config(self):
        """The :class:`~spec.selection.SelectorConfig` of this selector."""
        return self._config

    @property
    def queue_depth(self):
        return self._queue_depth

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        kw = dict(score_width=cfg.score_width, id_width=cfg.id_width)
        m.submodules.filter = filt = TopPFilter(cfg.classes, cfg.p, **kw)
        m.submodules.selector = sel = self.selector
        wiring.connect(m, wiring.flipped(self.i_prob), filt.i_prob)
        wiring.connect(m, filt.o_entry, sel.i_entry)
        wiring.connect(m, sel.o_record, wiring.flipped(self.o_record))
        m.d.comb += [
            filt.clear_stb.eq(self.clear_stb),
            sel.clear_stb.eq(self.clear_stb),
            sel.readout_stb.eq(self.readout_stb),
            self.busy.eq(sel.busy),
            self.pending.eq(filt.busy | sel.draining),
            self.total.eq(sel.total),
            self.error.eq(filt.error),
        ]
        return m
