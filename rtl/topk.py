"""Streaming balanced selection: per-class top-K (:class:`TopKSelector`), its top-P front end
(:class:`TopPFilter`) and the two joined (:class:`BalancedSelector`).

The rule and its golden models are in :mod:`golden.selection`; the design is explained in
``docs/selection.md``.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spec.params import OPERAND_WIDTH
from spec.selection import ID_WIDTH, READOUT_GROUP, STAGE_RANKS, SelectorConfig, chain_stages

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

    Storage. ``k`` memories (*rank banks*) of ``classes`` words each: bank ``r`` holds the entry of
    rank ``r`` of every class, addressed by the class; a ``classes``-word memory holds each class's
    entry count. That is exactly ``k × classes`` (id, score) entries, independent of the stream's
    length. A slot holds its entry as a sort key (the score with its sign bit flipped, above the
    inverted id), so that the ranking rule is one unsigned comparison of two keys; the read-out
    decodes it. The memories are read asynchronously (distributed RAM: ``classes`` is small).

    Insertion (state idle): a systolic chain of ``S = ceil(k / STAGE_RANKS)`` stages
    (:data:`spec.selection.STAGE_RANKS` rank banks each) that accepts one entry every cycle. An
    entry accepted in cycle ``t`` is in stage ``s`` in cycle ``t + 1 + s`` with its class and its
    class's count at acceptance (stage 0 reads the count and writes it back incremented, unless
    the class is full). Stage ``s`` reads its slots of the class and compares the entry with each
    at once: it *beats* slot ``r`` if the slot is empty (``count <= r``) or ranks lower (lower
    score, or equal score and higher id). The beaten slots are a suffix of the stage's slots: the
    first takes the entry, each later one its predecessor's entry (a shift). If the stage's last
    slot was occupied, its old entry (if beaten) or else the entry moves on to stage ``s + 1``;
    otherwise the list grew into an empty slot here and the entry stops. What leaves the last
    stage (the last rank of a full list) is dropped. Entries of one class pass each stage in
    stream order, one cycle apart, so each sees its predecessors' writes; the result is the sorted
    insertion of :class:`golden.selection.StreamingSelector`. Every path is local to a stage and
    its neighbour: no address or entry fans out to all banks. Cycles: one per entry
    (:func:`golden.selection.insert_cycles`); ``draining`` is high until the last entry's last
    possible write, ``S`` cycles after its acceptance. Sample ids must be unique within a class.

    Clear. ``clear_stb`` resets every count: ``busy`` for ``classes`` cycles
    (:func:`golden.selection.clear_cycles`). It need not wait for the chain: an entry still in it
    may write a slot at or above its class's new count, which is empty whatever it holds. After
    reset the selector is empty.

    Read-out. ``readout_stb`` emits every held entry on ``o_record``: class by class in increasing
    class, each class's entries in rank order, each beat with its ``rank``, its class's ``count``
    and ``last`` on the class's final entry; empty classes emit nothing. It first waits for the
    chain to drain, then makes every stage's class register hold the class being read (a cycle to
    load each class's rows). The ``k:1`` multiplexer that picks a rank is cut by a register: each
    group of :data:`spec.selection.READOUT_GROUP` neighbouring banks picks its slot of the rank
    into a register, and the next cycle the rank's group is selected and the record written into
    a 2-entry FIFO (a record every two cycles), from which ``o_record`` is served: its ``ready``
    reaches only the FIFO.
    ``busy`` is high until the FIFO is empty, for
    :func:`golden.selection.readout_cycles` cycles when ``o_record`` is always ready;
    ``o_record`` may be stalled at will. The read-out leaves the selection unchanged. ``total``
    tells beforehand how many beats it will emit.

    Strobes are taken only while idle (``busy`` low); ``clear_stb`` wins over ``readout_stb``.
    ``i_entry.ready`` is low while busy and in a cycle with either strobe high, so every entry
    accepted before a strobe is part of the selection it acts on.

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
        Clearing or reading out.
    total : Out(range(k * classes + 1))
        Number of entries held.
    draining : Out(1)
        Entries are still moving through the insertion chain.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is not positive.
    """

    def __init__(self, classes, k, *, score_width=OPERAND_WIDTH, id_width=ID_WIDTH):
        self._config = SelectorConfig(classes=classes, k=k, p=1, id_width=id_width,
                                      score_width=score_width)
        super().__init__({
            "i_entry": In(stream.Signature(entry_layout(self._config))),
            "o_record": Out(stream.Signature(record_layout(self._config))),
            "clear_stb": In(1),
            "readout_stb": In(1),
            "busy": Out(1),
            "total": Out(range(k * classes + 1)),
            "draining": Out(1),
        })

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

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        classes, k = cfg.classes, cfg.k
        iw, sw = cfg.id_width, cfg.score_width

        # A slot holds its entry as a sort key: the score with its sign bit flipped above the
        # inverted id, so that "ranks higher" (higher score, then lower id) is one unsigned
        # comparison of two keys.
        def key(id_, score):
            return Cat(~id_, score.as_unsigned() ^ (1 << (sw - 1)))

        # Stage s of the insertion chain handles ranks s·G .. s·G + G - 1 (G = STAGE_RANKS): the
        # entry travelling through it this cycle, its class (the address of the stage's banks,
        # read asynchronously), and the class's count when the entry was accepted (slot r is empty
        # if count <= r). Stage 0's count is read from the count memory.
        stages = chain_stages(k)
        valid = [Signal(name=f"s{i}_valid") for i in range(stages)]
        cls = [Signal(range(classes), name=f"s{i}_cls") for i in range(stages)]
        carried = [Signal(iw + sw, name=f"s{i}_key") for i in range(stages)]
        counts_in = [None] + [Signal(range(k + 1), name=f"s{i}_count") for i in range(1, stages)]

        # Memories are 2^class_width deep: in distributed RAM that costs nothing, and a compiled
        # simulation needs no bounds checks.
        depth = 1 << cfg.class_width
        m.submodules.counts = counts = Memory(shape=unsigned(cfg.count_width), depth=depth,
                                              init=[])
        count_wr = counts.write_port()
        count_rd = counts.read_port(domain="comb")
        m.d.comb += count_rd.addr.eq(cls[0])
        count = count_rd.data

        # Read-out: `ro_mode` (a register) makes every stage's class register load `ro_class`,
        # so the rows of `ro_class` are on the banks' read ports one cycle after it changes.
        ro_mode = Signal()
        ro_class = Signal(range(classes))
        accept = Signal()
        m.d.comb += accept.eq(self.i_entry.valid & self.i_entry.ready)

        slots = []
        for i in range(stages):
            ranks = range(i * STAGE_RANKS, min((i + 1) * STAGE_RANKS, k))
            stage_count = count if i == 0 else counts_in[i]
            beats = {}
            for r in ranks:
                m.submodules[f"rank_{r}"] = bank = Memory(shape=unsigned(iw + sw), depth=depth,
                                                          init=[])
                wr, rd = bank.write_port(), bank.read_port(domain="comb")
                slots.append(rd.data)
                # the entry beats slot r if it is empty or ranks lower; the beaten slots of a
                # sorted list are a suffix: the first takes the entry, each later one its
                # predecessor
                beats[r] = Signal(name=f"beats_{r}")
                m.d.comb += [
                    rd.addr.eq(cls[i]),
                    beats[r].eq((stage_count <= r) | (carried[i] > rd.data)),
                    wr.addr.eq(cls[i]),
                    wr.en.eq(valid[i] & beats[r]),
                    wr.data.eq(carried[i] if r == ranks[0]
                               else Mux(beats[r - 1], slots[r - 1], carried[i])),
                ]
            if i + 1 < stages:
                # if the stage's last slot was occupied, its entry or (if beaten) that slot moves
                # on; otherwise the list grew into an empty slot here and the entry ends. Off the
                # end of the chain, the last rank of a full list is dropped.
                last = ranks[-1]
                m.d.sync += [
                    valid[i + 1].eq(valid[i] & (stage_count > last)),
                    cls[i + 1].eq(Mux(ro_mode, ro_class, cls[i])),
                    carried[i + 1].eq(Mux(beats[last], slots[last], carried[i])),
                    counts_in[i + 1].eq(stage_count),
                ]
        m.d.sync += [
            valid[0].eq(accept),
            cls[0].eq(Mux(ro_mode, ro_class, self.i_entry.payload.cls)),
            carried[0].eq(key(self.i_entry.payload.id, self.i_entry.payload.score)),
        ]
        grows = valid[0] & (count != k)
        m.d.comb += [count_wr.addr.eq(cls[0]), count_wr.en.eq(grows), count_wr.data.eq(count + 1)]
        with m.If(grows):
            m.d.sync += self.total.eq(self.total + 1)

        # Cycles until the last accepted entry has made its last write (in the last stage, as many
        # cycles after its acceptance as there are stages): a read-out waits for 0.
        drain = Signal(range(stages + 1))
        with m.If(accept):
            m.d.sync += drain.eq(stages)
        with m.Elif(drain != 0):
            m.d.sync += drain.eq(drain - 1)
        m.d.comb += self.draining.eq(drain != 0)

        # Read-out records go through a 2-entry FIFO, so that o_record's ready reaches only the
        # FIFO and never the banks' addresses.
        layout = record_layout(cfg)
        m.submodules.out_fifo = fifo = SyncFIFO(width=layout.size, depth=2)
        ro_rank = Signal(range(k))
        row_ok = Signal()          # the rows of ro_class are on the read ports
        pick_ok = Signal()         # and the picks hold rank ro_rank of each group
        # The k:1 multiplexer in two halves with a register between them: each group of
        # READOUT_GROUP banks (neighbours in the chain) picks its rank ro_rank mod READOUT_GROUP
        # into a register; then the group of ro_rank is selected. A record is written the cycle
        # after its rank was set (two cycles per record: the engine's writer spends two or more).
        sub = min(READOUT_GROUP.bit_length() - 1, len(ro_rank))
        picks = []
        for g in range(0, k, READOUT_GROUP):
            pick = Signal(iw + sw, name=f"pick_{g // READOUT_GROUP}")
            group = slots[g:g + READOUT_GROUP]
            m.d.sync += pick.eq(Array(group)[ro_rank[:sub]] if len(group) > 1 else group[0])
            picks.append(pick)
        ro_key = Array(picks)[ro_rank[sub:]] if len(picks) > 1 else picks[0]
        ro_last = Signal()
        record = Signal(layout)
        m.d.comb += [
            ro_last.eq(ro_rank + 1 == count),
            record.id.eq(~ro_key[:iw]),
            record.score.eq((ro_key[iw:] ^ (1 << (sw - 1))).as_signed()),
            record.cls.eq(ro_class),
            record.rank.eq(ro_rank),
            record.count.eq(count),
            record.last.eq(ro_last),
            fifo.w_data.eq(record),
            self.o_record.valid.eq(fifo.r_rdy),
            self.o_record.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o_record.ready),
        ]

        clr_addr = Signal(range(classes))
        m.d.sync += [ro_mode.eq(0), row_ok.eq(0), pick_ok.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [
                    self.i_entry.ready.eq(~self.clear_stb & ~self.readout_stb),
                    self.busy.eq(fifo.r_rdy),
                ]
                with m.If(self.clear_stb):
                    m.d.sync += clr_addr.eq(0)
                    m.next = "CLEAR"
                with m.Elif(self.readout_stb):
                    m.d.sync += [ro_class.eq(0), ro_rank.eq(0), ro_mode.eq(drain == 0)]
                    m.next = "READOUT"
            with m.State("CLEAR"):
                # entries still in the chain may write their banks: a slot at or above its class's
                # count is empty whatever it holds, and the chain keeps the stream's order
                m.d.comb += [
                    self.busy.eq(1),
                    count_wr.addr.eq(clr_addr),
                    count_wr.en.eq(1),
                    count_wr.data.eq(0),
                ]
                m.d.sync += clr_addr.eq(clr_addr + 1)
                with m.If(clr_addr == classes - 1):
                    m.d.sync += self.total.eq(0)
                    m.next = "IDLE"
            with m.State("READOUT"):
                advance = Signal()
                last_class = ro_class == classes - 1
                m.d.comb += self.busy.eq(1)
                with m.If(pick_ok):
                    with m.If(count == 0):
                        m.d.comb += advance.eq(1)
                    with m.Elif(fifo.w_rdy):
                        m.d.comb += [fifo.w_en.eq(1), advance.eq(ro_last)]
                        m.d.sync += ro_rank.eq(ro_rank + 1)
                m.d.sync += [ro_mode.eq((drain == 0) & ~(advance & last_class)),
                             row_ok.eq(ro_mode & ~advance),
                             pick_ok.eq(row_ok & ~advance & ~fifo.w_en)]
                with m.If(advance):
                    m.d.sync += [ro_class.eq(ro_class + 1), ro_rank.eq(0)]
                    with m.If(last_class):
                        m.next = "IDLE"
        return m


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
    accepted (:func:`golden.selection.stream_cycles`).

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
    score_width, id_width : int
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
        The filter holds a partial sample or entries not yet in the selector, or entries are still
        moving through the selector's insertion chain.
    total : Out(range(k * classes + 1))
        Entries held by the selector.
    error : Out(1)
        A probability vector was mis-framed (see :class:`TopPFilter`).

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is not positive, or ``p > classes``.
    """

    def __init__(self, classes, k, p, *, score_width=OPERAND_WIDTH, id_width=ID_WIDTH):
        self._config = SelectorConfig(classes=classes, k=k, p=p, id_width=id_width,
                                      score_width=score_width)
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

    @property
    def config(self):
        """The :class:`~spec.selection.SelectorConfig` of this selector."""
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        kw = dict(score_width=cfg.score_width, id_width=cfg.id_width)
        m.submodules.filter = filt = TopPFilter(cfg.classes, cfg.p, **kw)
        m.submodules.selector = sel = TopKSelector(cfg.classes, cfg.k, **kw)
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
