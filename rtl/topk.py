"""Streaming balanced selection: per-class top-K (:class:`TopKSelector`), its top-P front end
(:class:`TopPFilter`) and the two joined (:class:`BalancedSelector`).

The rule and its golden models are in :mod:`golden.selection`; the design is explained in
``docs/selection.md``.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spec.params import OPERAND_WIDTH
from spec.selection import ID_WIDTH, SelectorConfig

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
    decodes it. Rank-sliced memories (rather than one ``k × classes`` memory, or registers) let one
    read fetch a class's whole sorted list, so an entry is inserted in one cycle, while the state
    stays in block or distributed RAM instead of ``k × classes × (id + score)`` flip-flops.

    Insertion (state idle). A two-stage pipeline that accepts one entry every cycle: stage 0
    accepts the entry and reads its class's row (all banks and the count at address ``cls``);
    stage 1 compares the entry with every slot at once — it *beats* slot ``r`` if the slot is empty
    (``r >= count``), or has a lower score, or an equal score and a higher id — and writes each
    beaten slot: the entry into the first, slot ``r - 1`` into each later one (a shift; the last
    entry falls off a full list). The read ports are transparent for the write ports, so an entry
    of the same class in the next cycle sees the update. The read ports are enabled only while an
    entry is offered, on the read-out strobe and during the read-out, so an idle selector's read
    registers hold still (no change in the hardware's function: a row is always re-read when an
    entry is accepted; in a compiled simulation, less work per idle cycle). Cycles: one per entry
    (:func:`golden.selection.insert_cycles`). Sample ids must be unique within a class.

    Clear. ``clear_stb`` resets every count: ``busy`` for ``classes`` cycles
    (:func:`golden.selection.clear_cycles`). After reset the selector is empty.

    Read-out. ``readout_stb`` emits every held entry on ``o_record``: class by class in increasing
    class, each class's entries in rank order, each beat with its ``rank``, its class's ``count``
    and ``last`` on the class's final entry; empty classes emit nothing. ``busy`` is high for
    ``Σ max(count, 1)`` cycles when ``o_record`` is always ready
    (:func:`golden.selection.readout_cycles`); ``o_record`` may be stalled at will. The read-out
    leaves the selection unchanged. ``total`` tells beforehand how many beats it will emit.

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

        rd, wr = [], []
        for r in range(k):
            m.submodules[f"rank_{r}"] = bank = Memory(shape=unsigned(iw + sw), depth=classes,
                                                      init=[])
            wr.append(bank.write_port())
            rd.append(bank.read_port(transparent_for=(wr[-1],)))
        m.submodules.counts = counts = Memory(shape=unsigned(cfg.count_width), depth=classes,
                                              init=[])
        count_wr = counts.write_port()
        count_rd = counts.read_port(transparent_for=(count_wr,))

        rd_addr = Signal(range(classes))
        rd_en = Signal()
        for port in (*rd, count_rd):
            m.d.comb += [port.addr.eq(rd_addr), port.en.eq(rd_en)]
        count = count_rd.data

        # Stage 1: the entry whose class row is on the read ports this cycle.
        e1_valid = Signal()
        e1 = Signal(entry_layout(cfg))
        new_slot = Signal(iw + sw)
        m.d.comb += new_slot.eq(key(e1.id, e1.score))
        beats = []
        for r in range(k):
            beat = Signal(name=f"beats_{r}")
            m.d.comb += beat.eq((count <= r) | (new_slot > rd[r].data))
            beats.append(beat)
        for r in range(k):
            shifted = new_slot if r == 0 else Mux(beats[r - 1], rd[r - 1].data, new_slot)
            m.d.comb += [
                wr[r].addr.eq(e1.cls),
                wr[r].en.eq(e1_valid & beats[r]),
                wr[r].data.eq(shifted),
            ]
        grows = e1_valid & (count != k)
        m.d.comb += [count_wr.addr.eq(e1.cls), count_wr.en.eq(grows), count_wr.data.eq(count + 1)]
        m.d.sync += e1_valid.eq(self.i_entry.valid & self.i_entry.ready)
        with m.If(self.i_entry.valid & self.i_entry.ready):
            m.d.sync += e1.eq(self.i_entry.payload)
        with m.If(grows):
            m.d.sync += self.total.eq(self.total + 1)

        # Read-out: the row of class `ro_class` is on the read ports.
        ro_class = Signal(range(classes))
        ro_rank = Signal(range(k))
        ro_key = Array(p.data for p in rd)[ro_rank]
        ro_last = Signal()
        m.d.comb += [
            ro_last.eq(ro_rank + 1 == count),
            self.o_record.payload.id.eq(~ro_key[:iw]),
            self.o_record.payload.score.eq((ro_key[iw:] ^ (1 << (sw - 1))).as_signed()),
            self.o_record.payload.cls.eq(ro_class),
            self.o_record.payload.rank.eq(ro_rank),
            self.o_record.payload.count.eq(count),
            self.o_record.payload.last.eq(ro_last),
        ]

        clr_addr = Signal(range(classes))
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [
                    self.i_entry.ready.eq(~self.clear_stb & ~self.readout_stb),
                    rd_addr.eq(Mux(self.readout_stb, 0, self.i_entry.payload.cls)),
                    rd_en.eq(self.readout_stb | self.i_entry.valid),
                ]
                with m.If(self.clear_stb):
                    m.d.sync += clr_addr.eq(0)
                    m.next = "CLEAR"
                with m.Elif(self.readout_stb):
                    m.d.sync += [ro_class.eq(0), ro_rank.eq(0)]
                    m.next = "READOUT"
            with m.State("CLEAR"):
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
                advance = (count == 0) | (self.o_record.ready & ro_last)
                last_class = ro_class == classes - 1
                m.d.comb += [
                    self.busy.eq(1),
                    self.o_record.valid.eq(count != 0),
                    rd_addr.eq(Mux(advance & ~last_class, ro_class + 1, ro_class)),
                    rd_en.eq(1),
                ]
                with m.If(advance):
                    m.d.sync += [ro_class.eq(ro_class + 1), ro_rank.eq(0)]
                    with m.If(last_class):
                        m.next = "IDLE"
                with m.Elif(self.o_record.ready):
                    m.d.sync += ro_rank.eq(ro_rank + 1)
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
        The filter holds a partial sample or entries not yet in the selector.
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
            self.pending.eq(filt.busy),
            self.total.eq(sel.total),
            self.error.eq(filt.error),
        ]
        return m
