"""Golden models of the balanced pseudo-label selection (Yalniz et al. 2019), offline and streaming.

The rule. For every class ``c``, keep the ``k`` samples with the highest score for ``c``, where a
sample competes only for its top-``p`` classes. Ties are broken deterministically:

* a sample's top-``p`` classes: higher probability first, then lower class index;
* within a class: higher score first, then lower sample id.

Two models of the same rule, which must agree on every input:

* :func:`select_offline` — the paper's rule as written: collect every sample's top-``p``
  ``(class, score)`` pairs, then sort each class's pairs globally and cut at ``k``
  (vectorised with PyTorch).
* :class:`StreamingSelector` — what the hardware does: one bounded, sorted list of at most ``k``
  entries per class, updated entry by entry; its state never depends on the stream's length.

Both return a :class:`Selection`. Because "higher score, then lower id" is a strict total order
on a class's entries (sample ids are unique), the top ``k`` of a class is a property of the
*set* of entries it received, not of their order: the streaming selection equals the global sort
for every permutation of the stream (argument in ``docs/selection.md``).

The module also gives the selector's cycle models (:meth:`StreamingSelector.entry_cycles`,
:func:`queue_cycles`, :func:`balanced_cycles`, :func:`selfeed_cycles`, :func:`clear_cycles`,
:class:`Readout`, :func:`readout_cycles`: the RTL in :mod:`rtl.topk` and :mod:`rtl.sel_engine`
is tested against them) and the storage accounting (:func:`storage`). Scores may be integers (the
hardware's fixed-point probabilities) or floats; sample ids are non-negative integers.
"""

import bisect
from dataclasses import dataclass

import torch

from spec.selection import (INSERT_SETUP, READ_CYCLES, READOUT_FIFO_DEPTH, WORD_SLOTS,
                            SelectorConfig, check_top_p, check_word_slots)
from spec.params import check_int, check_positive_int
from spec.timing import SEL_READ_STAGES

__all__ = [
    "Selection", "Beat", "top_p", "entries", "select_offline", "select_entries_offline",
    "StreamingSelector",
    "queue_cycles", "balanced_cycles", "selfeed_cycles", "clear_cycles", "Readout",
    "readout_cycles",
    "Storage", "storage", "soft_labels", "soft_targets",
]


@dataclass(frozen=True)
class Beat:
    """One beat of the selector's read-out stream (:class:`rtl.topk.TopKSelector` ``o_record``).

    ``rank`` is the entry's position in its class (0 = best), ``count`` the class's number of
    entries, ``last`` marks the class's final entry (``rank == count - 1``).
    """
    sample_id: int
    cls: int
    score: int
    rank: int
    count: int
    last: bool


@dataclass(frozen=True)
class Selection:
    """A balanced selection in canonical form.

    Attributes
    ----------
    per_class : tuple of tuple of (int, score)
        ``per_class[c]`` is class ``c``'s entries ``(sample_id, score)`` in rank order (higher
        score first, then lower sample id); at most ``k`` of them.
    soft : tuple or None
        Soft labels, if requested: ``((sample_id, ((class, prob), ...)), ...)``, one item per
        distinct selected sample in increasing sample id, each with its top-``p`` classes in
        order (higher probability first, then lower class).
    """
    per_class: tuple
    soft: tuple = None

    @property
    def classes(self):
        return len(self.per_class)

    @property
    def counts(self):
        """Number of entries of each class."""
        return tuple(len(lst) for lst in self.per_class)

    @property
    def records(self):
        """The compact pseudo-labeled set: ``(sample_id, class, score)`` records, class-major, each
        class in rank order (the order the hardware reads them out)."""
        return tuple((sid, c, score) for c, lst in enumerate(self.per_class)
                     for sid, score in lst)

    def beats(self):
        """The read-out stream the hardware emits for this selection: a list of :class:`Beat`."""
        return [Beat(sid, c, score, rank, len(lst), rank == len(lst) - 1)
                for c, lst in enumerate(self.per_class)
                for rank, (sid, score) in enumerate(lst)]


def _rows(probs):
    """``probs`` (tensor, array or nested lists, shape ``(N, C)``) as a 2-D tensor."""
    t = probs if isinstance(probs, torch.Tensor) else torch.as_tensor(probs)
    if t.dim() == 1 and t.numel() == 0:
        t = t.reshape(0, 0)
    if t.dim() != 2:
        raise ValueError(f"Probabilities must be a 2-D (samples × classes) array, "
                         f"not of shape {tuple(t.shape)}")
    if t.dtype == torch.bool or t.dtype.is_complex:
        raise TypeError(f"Probabilities must be integers or reals, not {t.dtype}")
    return t


def _ids(sample_ids, n):
    if sample_ids is None:
        return list(range(n))
    ids = [int(s) for s in (sample_ids.tolist() if isinstance(sample_ids, torch.Tensor)
                            else sample_ids)]
    if len(ids) != n:
        raise ValueError(f"Expected {n} sample ids, not {len(ids)}")
    if any(s < 0 for s in ids):
        raise ValueError("Sample ids must be non-negative")
    if len(set(ids)) != n:
        raise ValueError("Sample ids must be unique")
    return ids


def top_p(row, p):
    """A sample's top-``p`` classes: ``[(class, prob), ...]``, higher probability first, then lower
    class index. ``row`` is one probability vector (sequence or 1-D tensor)."""
    row = row.tolist() if isinstance(row, torch.Tensor) else list(row)
    check_top_p(p, len(row))
    return sorted(enumerate(row), key=lambda cp: -cp[1])[:p]   # sorted() is stable


def entries(probs, p, sample_ids=None):
    """The entry stream of ``probs``: for each sample in order, its top-``p`` classes as
    ``(sample_id, class, score)`` in top-P order — exactly what :class:`rtl.topk.TopPFilter` emits."""
    t = _rows(probs)
    ids = _ids(sample_ids, t.shape[0])
    return [(sid, c, score) for sid, row in zip(ids, t.tolist()) for c, score in top_p(row, p)]


def _soft(probs, p, ids, selected):
    rows = dict(zip(ids, _rows(probs).tolist()))
    return tuple((sid, tuple(top_p(rows[sid], p))) for sid in sorted(selected))


def select_entries_offline(entry_list, classes, k):
    """The global rule on a raw entry stream: for each class, all its ``(sample_id, class, score)``
    entries sorted by (higher score, lower id), cut at ``k``. ``sample_id`` must be unique within
    a class."""
    check_positive_int(classes, "Selector classes")
    check_positive_int(k, "Selector K")
    per = [[] for _ in range(classes)]
    for sid, c, score in entry_list:
        if not 0 <= c < classes:
            raise ValueError(f"Class must be in range [0, {classes}), not {c!r}")
        per[c].append((sid, score))
    for c, lst in enumerate(per):
        if len({sid for sid, _ in lst}) != len(lst):
            raise ValueError(f"Sample ids must be unique within class {c}")
    return Selection(tuple(tuple(sorted(lst, key=lambda e: (-e[1], e[0]))[:k]) for lst in per))


def select_offline(probs, k, p, sample_ids=None, *, soft=False):
    """The paper's rule on a whole set at once (a global sort per class).

    Parameters
    ----------
    probs : tensor or array, shape (N, C)
        Each sample's class probabilities (integers, e.g. fixed-point, or reals).
    k, p : int
        Entries kept per class; classes considered per sample (``1 <= p <= C``).
    sample_ids : sequence of int, optional
        Unique non-negative id of each row; default ``0 .. N-1``.
    soft : bool
        Also return each selected sample's top-``p`` (class, probability) pairs.

    Returns
    -------
    Selection
    """
    t = _rows(probs)
    n, classes = t.shape
    check_positive_int(classes, "Selector classes")
    check_positive_int(k, "Selector K")
    check_top_p(p, classes)
    ids = torch.tensor(_ids(sample_ids, n), dtype=torch.int64)
    # Every sample's top-p classes: a stable descending sort keeps the lower class first on ties.
    vals, cls = torch.sort(t, dim=1, descending=True, stable=True)
    vals, cls = vals[:, :p].reshape(-1), cls[:, :p].reshape(-1)
    pair_ids = ids.repeat_interleave(p)
    # One global sort over all pairs: by class, then higher score, then lower id (three stable
    # passes, least significant key first).
    order = torch.sort(pair_ids, stable=True).indices
    order = order[torch.sort(vals[order], descending=True, stable=True).indices]
    order = order[torch.sort(cls[order], stable=True).indices]
    cls_s, ids_s, vals_s = cls[order].tolist(), pair_ids[order].tolist(), vals[order].tolist()
    per = [[] for _ in range(classes)]
    for c, sid, score in zip(cls_s, ids_s, vals_s):
        if len(per[c]) < k:
            per[c].append((sid, score))
    sel = Selection(tuple(tuple(lst) for lst in per))
    if soft:
        chosen = {sid for lst in sel.per_class for sid, _ in lst}
        sel = Selection(sel.per_class, _soft(t, p, ids.tolist(), chosen))
    return sel


class StreamingSelector:
    """The streaming rule: one sorted list of at most ``k`` entries per class, updated per entry.

    State is bounded by ``k × classes`` entries (plus, with ``soft``, the top-``p`` pairs of at
    most ``k × classes`` samples) whatever the stream's length. An entry that ties an entry already
    held (same score, same id — never the case for unique ids) goes after it, as in the hardware.

    Parameters
    ----------
    classes, k : int
        Number of classes; entries kept per class.
    p : int
        Classes each pushed sample is considered for (:meth:`push`); default 1.
    soft : bool
        Keep the top-``p`` (class, probability) pairs of every currently selected sample.
    """

    def __init__(self, classes, k, p=1, *, soft=False):
        self._config = SelectorConfig(classes=classes, k=k, p=p)
        self._soft = bool(soft)
        self.clear()

    @property
    def config(self):
        return self._config

    def clear(self):
        """Forget every entry (the hardware's ``clear_stb``)."""
        self._lists = [[] for _ in range(self._config.classes)]   # keys (-score, id)
        self._soft_labels = {}   # id -> top-p pairs, for ids held in some list
        self._refs = {}          # id -> number of lists holding it

    def push_entry(self, sample_id, cls, score):
        """Offer one entry ``(sample_id, class, score)``; return True if it was kept."""
        check_int(sample_id, "Sample id")
        check_int(cls, "Class")
        if not 0 <= cls < self._config.classes:
            raise ValueError(f"Class must be in range [0, {self._config.classes}), not {cls!r}")
        lst = self._lists[cls]
        key = (-score, sample_id)
        if len(lst) == self._config.k and not key < lst[-1]:
            return False
        bisect.insort_right(lst, key)
        self._refs[sample_id] = self._refs.get(sample_id, 0) + 1
        if len(lst) > self._config.k:
            _, evicted = lst.pop()
            self._release(evicted)
        assert len(lst) <= self._config.k
        return True

    def entry_cycles(self, sample_id, cls, score, word_slots=WORD_SLOTS):
        """Cycles :class:`rtl.topk.TopKSelector`'s inserter (``word_slots`` entries per block-RAM
        word, ``W``) spends on the entry ``(sample_id, cls, score)`` offered now (before
        :meth:`push_entry`): :data:`spec.selection.INSERT_SETUP` if it does not beat its class's
        last entry (rejected from a full class, appended to another), starts its class, or
        replaces the only entry of ``k = 1``. Otherwise it shifts the list over the words from
        the one of its new last rank ``min(n, k − 1)`` (``n`` the class's count) down to the
        word of rank ``r − 1`` (``r`` its own rank; word 0 if ``r = 0``), ``w`` words:
        ``w + INSERT_SETUP + READ_CYCLES``."""
        lst = self._lists[cls]
        key, n, k = (-score, sample_id), len(lst), self._config.k
        slots = check_word_slots(word_slots)
        if n == 0 or not key < lst[-1] or k == 1:
            return INSERT_SETUP
        top = min(n, k - 1) // slots
        rank = bisect.bisect_right(lst, key)
        stop = (rank - 1) // slots if rank else 0
        return top - stop + 1 + INSERT_SETUP + READ_CYCLES

    def push_costs(self, sample_id, probs_row, word_slots=WORD_SLOTS):
        """:meth:`push` one sample; return the inserter cycles of its entries, in order
        (:meth:`entry_cycles`). Soft labels are not kept."""
        costs = []
        for c, score in top_p(probs_row, self._config.p):
            costs.append(self.entry_cycles(sample_id, c, score, word_slots))
            self.push_entry(sample_id, c, score)
        return costs

    def _release(self, sample_id):
        self._refs[sample_id] -= 1
        if not self._refs[sample_id]:
            del self._refs[sample_id]
            self._soft_labels.pop(sample_id, None)

    def push(self, sample_id, probs_row):
        """Offer one sample: its top-``p`` classes become entries (in top-P order)."""
        pairs = top_p(probs_row, self._config.p)
        for c, score in pairs:
            self.push_entry(sample_id, c, score)
        if self._soft and sample_id in self._refs:
            self._soft_labels[sample_id] = tuple(pairs)

    def push_all(self, probs, sample_ids=None):
        """Push every row of ``probs`` in order (ids default to ``0 .. N-1``)."""
        t = _rows(probs)
        for sid, row in zip(_ids(sample_ids, t.shape[0]), t.tolist()):
            self.push(sid, row)
        return self

    @property
    def held(self):
        """Entries currently held (≤ ``k × classes``)."""
        return sum(len(lst) for lst in self._lists)

    def result(self):
        """The current selection (a :class:`Selection`)."""
        per = tuple(tuple((sid, -neg) for neg, sid in lst) for lst in self._lists)
        soft = None
        if self._soft:
            soft = tuple((sid, self._soft_labels[sid]) for sid in sorted(self._soft_labels))
        return Selection(per, soft)


# --- Cycle models of rtl.topk --------------------------------------------------------------------

class _Queue:
    """The selector's input FIFO (``amaranth.lib.fifo.SyncFIFOBuffered`` of ``depth ≥ 2``): an
    inner FIFO of ``depth − 1`` entries and an output register, which takes the inner FIFO's
    next entry in a cycle it is empty or read. An entry written in cycle ``t`` is readable from
    ``t + 2`` at the earliest."""

    def __init__(self, depth):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
            raise ValueError(f"Queue depth must be an integer of at least 2, not {depth!r}")
        self.depth, self.inner, self.out = depth, 0, False

    @property
    def w_rdy(self):
        return self.inner != self.depth - 1

    @property
    def level(self):
        return self.inner + self.out

    def step(self, push, pop):
        inner_read = self.inner > 0 and (not self.out or pop)
        self.inner += push - inner_read
        self.out = inner_read or (self.out and not pop)


def queue_cycles(costs, depth):
    """:class:`rtl.topk.TopKSelector` offered entries back to back from cycle 0 (nothing
    strobed), their inserter cycles ``costs`` in order (:meth:`StreamingSelector.entry_cycles`),
    behind a ``depth``-entry queue (:class:`_Queue`). An entry offered in cycle ``t`` is taken if
    the queue has room at the start of ``t``; the inserter takes the queue's head in a cycle it
    is idle and is busy ``cost`` cycles.

    Returns
    -------
    (int, int)
        The cycle after the last entry was taken (0 if none), and the first cycle from which
        the queue is empty and the inserter idle (``draining`` low).
    """
    q, n = _Queue(depth), len(costs)
    free = offered = taken = t = accepted = 0
    while taken < n:
        pop = t >= free and q.out
        if pop:
            free, taken = t + costs[taken], taken + 1
        push = offered < n and q.w_rdy
        if push:
            offered += 1
            accepted = t + 1
        q.step(push, pop)
        t += 1
    return accepted, free


def balanced_cycles(costs, samples, classes, p, depth):
    """:class:`rtl.topk.BalancedSelector` fed ``samples`` probability vectors back to back from
    cycle 0: the first cycle from which ``pending`` is low (0 for no sample). ``costs`` are the
    inserter cycles of the ``samples × p`` entries in stream order; ``depth`` the selector's queue.

    A cycle model of :class:`rtl.topk.TopPFilter` (a beat per cycle; a sample's final beat only
    when its output buffer is empty or hands over its last entry this cycle; the buffer hands
    an entry to the queue whenever the queue has room) in front of :func:`queue_cycles`'s queue
    and inserter."""
    q, beats = _Queue(depth), samples * classes
    beat = buf = free = taken = t = 0
    while True:
        out = buf > 0 and q.w_rdy
        final = beat < beats and beat % classes == classes - 1
        take = beat < beats and (not final or buf == 0 or (buf == 1 and out))
        pop = t >= free and q.out
        pending = beat % classes != 0 or buf > 0 or q.level > 0 or t < free
        if beat == beats and not pending:
            return t
        if pop:
            free, taken = t + costs[taken], taken + 1
        if out:
            buf -= 1
        if take:
            beat += 1
            if final:
                buf = p
        q.step(out, pop)
        t += 1


def selfeed_cycles(costs, samples, classes, p):
    """Cycles the selection engine (:class:`rtl.sel_engine.SelEngine`) is busy with a SELFEED of
    ``samples ≥ 1`` samples whose ``samples × p`` entries have inserter cycles ``costs`` in
    stream order. Counted from the engine's first busy cycle (0), with ``T = max(N, 2)`` and
    ``R = SEL_READ_STAGES`` (:mod:`spec.timing`, 2: the late read port): row ``j`` is read in
    cycle ``j·T`` and its lanes leave the row register one per cycle from ``j·T + R + 1`` (the
    last row's a sample every ``p`` cycles); a lane's top-P insertion takes two cycles, the last
    row's goes to an output buffer that hands the ``p`` entries to the selector's queue one per
    cycle, so entry ``e`` (in stream order) enters the queue at ``(C − 1)·T + e + R + 3`` and can
    leave it from ``(C − 1)·T + e + R + 5`` (``+ 7``; ``+ 6`` before the late port); the inserter
    takes them in order (its queue never fills: it holds ``max(2, lanes × p)``); the engine is
    busy until the last one is inserted."""
    check_positive_int(samples, "Sample count")
    first = (classes - 1) * max(samples, 2) + SEL_READ_STAGES + 5
    free = 0
    for e, cost in enumerate(costs):
        free = max(free, first + e) + cost
    return free


def clear_cycles(classes):
    """Cycles ``busy`` is high after a ``clear_stb``: one per class (counts are reset in memory)."""
    return classes


class Readout:
    """Cycle model of :class:`rtl.topk.TopKSelector`'s read-out from its first cycle in the read-out
    state: each cycle it skips an empty class, or reads its class's next rank if the reads in
    flight (:data:`spec.selection.READ_CYCLES`) and the records in the output FIFO are fewer
    than :data:`spec.selection.READOUT_FIFO_DEPTH`; a read's record enters the FIFO at the end of
    the ``READ_CYCLES``-th cycle after the read. Step it a cycle at a time with :meth:`step`."""

    def __init__(self, counts):
        self.counts = list(counts)
        self.fifo = []          # (class, last) of the records in the output FIFO
        self.flight = [None] * READ_CYCLES   # reads in flight, the latest first
        self.reading = True
        self._cls = self._rank = 0

    @property
    def busy(self):
        """The selector's ``busy`` this cycle."""
        return self.reading or any(r is not None for r in self.flight) or bool(self.fifo)

    @property
    def head(self):
        """``(class, last)`` of the record ``o_record`` offers this cycle, or None."""
        return self.fifo[0] if self.fifo else None

    def step(self, pop):
        """Advance one cycle; ``pop``: the consumer takes the head record in it."""
        issue = None
        if self.reading:
            n, advance = self.counts[self._cls], False
            inflight = sum(r is not None for r in self.flight)
            if n == 0:
                advance = True
            elif len(self.fifo) + inflight < READOUT_FIFO_DEPTH:
                last = self._rank + 1 == n
                issue, advance, self._rank = (self._cls, last), last, self._rank + 1
            if advance:
                self._rank = 0
                if self._cls == len(self.counts) - 1:
                    self.reading = False
                else:
                    self._cls += 1
        if pop:
            self.fifo.pop(0)
        if self.flight[-1] is not None:
            self.fifo.append(self.flight[-1])
        self.flight = [issue] + self.flight[:-1]


def readout_cycles(counts, wait=0):
    """Cycles ``busy`` is high after a ``readout_stb`` with the read-out always ready: ``wait``
    cycles until the queue is empty and the inserter idle, then the :class:`Readout` until its
    FIFO is empty (a cycle per record and per empty class, and ``READ_CYCLES + 1`` for the last
    record to pass the block RAM, its registers and the FIFO)."""
    check_int(wait, "Read-out wait")
    r, cycles = Readout(counts), wait
    while r.busy:
        r.step(r.head is not None)
        cycles += 1
    return cycles


# --- Storage accounting ---

@dataclass(frozen=True)
class Storage:
    """What a selection costs to store (see :func:`storage`). Sizes in bits or bytes."""
    record_bits: int
    record_bytes: int
    record_words: int
    softmax_bytes: int
    soft_label_bytes: int
    on_chip_bits: int

    @property
    def ratio(self):
        """How many times smaller a selected record is than a full softmax vector."""
        return self.softmax_bytes / self.record_bytes


def _bytes(bits):
    return -(-bits // 8)


def storage(config=None, *, word_bits=16):
    """Storage of one selected record versus one full softmax vector, for a :class:`SelectorConfig`.

    * ``record_bits``: a pseudo-label record ``(sample id, class, score)`` bit-packed:
      ``id_width + class_width + score_width``; ``record_bytes`` rounds it up to bytes and
      ``record_words`` stores each field in whole ``word_bits``-bit memory words (how the sequencer
      writes the read-out to main memory).
    * ``softmax_bytes``: a full probability vector, ``classes`` scores of whole bytes each
      (``classes × 2`` bytes for 16-bit scores) — what keeping every sample's softmax would cost.
    * ``soft_label_bytes``: a selected sample's soft label for distillation: its id and its
      top-``p`` (class, probability) pairs, bit-packed, rounded up to bytes.
    * ``on_chip_bits``: the selector's state, ``k × classes`` (id, score) entries plus one count
      per class; independent of the stream's length.
    """
    c = config if config is not None else SelectorConfig()
    if not isinstance(c, SelectorConfig):
        raise TypeError(f"Selector configuration must be a SelectorConfig, not {c!r}")
    check_positive_int(word_bits, "Word width")
    bits = c.id_width + c.class_width + c.score_width
    words = sum(-(-w // word_bits) for w in (c.id_width, c.class_width, c.score_width) if w)
    return Storage(
        record_bits=bits,
        record_bytes=_bytes(bits),
        record_words=words,
        softmax_bytes=c.classes * _bytes(c.score_width),
        soft_label_bytes=_bytes(c.id_width + c.p * (c.class_width + c.score_width)),
        on_chip_bits=c.k * c.classes * (c.id_width + c.score_width) + c.classes * c.count_width,
    )


# --- Soft labels for distillation ------------------------------------------------------------------

def soft_labels(probs, p):
    """The compact soft labels of the samples of ``probs``: each sample's top-``p`` classes and
    their probabilities (:func:`top_p`'s order: higher probability first, then lower class).

    Stored as two ``(N, p)`` arrays, a class index (``ceil(log2 C)`` bits) and a probability
    (one word in the prob format) per kept class: ``p`` words and ``p`` class fields per
    sample instead of ``C`` probabilities.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``classes`` and ``probs``, ``int64`` (N, p).
    """
    t = _rows(probs)
    check_top_p(p, t.shape[1])
    vals, cls = torch.sort(t, dim=1, descending=True, stable=True)
    return cls[:, :p].to(torch.int64), vals[:, :p].to(torch.int64)


def soft_targets(classes, probs, num_classes, scale):
    """Dense training targets from compact soft labels (:func:`soft_labels`): each row's kept
    probabilities renormalized to sum to exactly ``scale`` (``2**prob_frac``, the prob
    format's 1.0): ``floor(q · scale / Σq)`` per kept class, the remainder of the division
    added to the row's first (most probable) class. A row whose kept probabilities are all 0
    becomes one-hot on its first class.

    Returns
    -------
    torch.Tensor
        ``int64`` (N, num_classes).
    """
    check_positive_int(num_classes, "Classes")
    check_positive_int(scale, "Target scale")
    cls, q = torch.as_tensor(classes, dtype=torch.int64), torch.as_tensor(probs, dtype=torch.int64)
    if cls.dim() != 2 or cls.shape != q.shape:
        raise ValueError(f"Soft-label classes and probabilities must be two (N, p) arrays of "
                         f"one shape, not {tuple(cls.shape)} and {tuple(q.shape)}")
    if cls.numel() and (int(cls.min()) < 0 or int(cls.max()) >= num_classes):
        raise ValueError(f"Soft-label classes must be in 0..{num_classes - 1}")
    if q.numel() and int(q.min()) < 0:
        raise ValueError("Soft-label probabilities must be non-negative")
    total = q.sum(dim=1, keepdim=True)
    zero = total == 0
    q = torch.where(zero, torch.zeros_like(q), q)
    q[:, :1] = torch.where(zero, torch.ones_like(q[:, :1]), q[:, :1])
    total = q.sum(dim=1, keepdim=True)
    part = q * scale // total
    part[:, 0] += scale - part.sum(dim=1)
    out = torch.zeros(cls.shape[0], num_classes, dtype=torch.int64)
    out.scatter_add_(1, cls, part)
    return out
