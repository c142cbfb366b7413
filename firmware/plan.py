"""Placement of buffers in the scratchpads and in main memory.

* :class:`BankAllocator` — places named row buffers in a banked scratchpad: each buffer lies in
  one bank, buffers that one instruction reads together (``apart``) go to different banks, and
  buffers whose live ranges (instruction indices, found by a recording pass of the program
  emitter) do not overlap may share rows.
* :class:`Recorder` — the mapping the recording pass hands the emitter: every buffer starts at
  row 0, and each lookup notes the instruction index.
* :class:`MemoryLayout` — consecutive regions of main memory.
* :func:`check_selection_fits` — whether the selected set ``SELOUT`` stores fits a region.
"""

from dataclasses import dataclass

__all__ = ["BankAllocator", "Recorder", "overlap_pairs", "MemoryLayout", "Region",
           "selection_limit", "check_selection_fits"]


class Recorder:
    """Stands in for a buffer → row mapping while a program is emitted once to find live ranges.

    Parameters
    ----------
    position : callable
        Returns the index of the instruction about to be emitted.
    """

    def __init__(self, position):
        self._position = position
        self.uses = {}
        self.touched = {}         # instruction index -> names it uses

    def __getitem__(self, name):
        p = self._position()
        lo, hi = self.uses.get(name, (p, p))
        self.uses[name] = (min(lo, p), max(hi, p))
        self.touched.setdefault(p, set()).add(name)
        return 0


def overlap_pairs(units, recorders, costs=None, window=32):
    """Pairs of buffers better kept in different banks so that units overlap.

    For each instruction ``i`` of a unit, the instructions of *other* units that follow it,
    up to the first one using a buffer of ``i`` (which must wait anyway) and at most
    ``window`` of them, may run while ``i`` does — unless they share a bank with it. Returns,
    per recorder, a ``dict`` ``{frozenset((a, b)): count}``.

    Parameters
    ----------
    units : list
        The unit of each instruction (``None``: no unit).
    recorders : list of Recorder
        One per scratchpad.
    costs : list of int, optional
        Each instruction's duration estimate: the weight of its pairs (default 1).
    """
    touched = [{} for _ in recorders]
    for k, rec in enumerate(recorders):
        touched[k] = rec.touched
    out = [{} for _ in recorders]
    n = len(units)
    for i in range(n):
        if units[i] is None:
            continue
        mine = [t.get(i, set()) for t in touched]
        seen = 0
        for j in range(i + 1, n):
            theirs = [t.get(j, set()) for t in touched]
            if any(m & o for m, o in zip(mine, theirs)):
                break
            if units[j] is None or units[j] == units[i]:
                continue
            for k in range(len(recorders)):
                for a in mine[k]:
                    for b in theirs[k]:
                        if a != b:
                            key = frozenset((a, b))
                            out[k][key] = out[k].get(key, 0) + (costs[i] if costs else 1)
            seen += 1
            if seen >= window:
                break
    return out


class BankAllocator:
    """Places buffers of rows in a scratchpad of ``banks`` × ``depth`` rows.

    Parameters
    ----------
    banks, depth : int
        Banks and rows per bank; a row's address is ``bank * depth + row``.
    what : str
        Name of the scratchpad in error messages.
    span_banks : bool
        Let a buffer span consecutive banks (the whole scratchpad is one range; ``apart`` is then
        not supported). For the accumulator scratchpad, where no instruction reads two buffers.
    """

    def __init__(self, banks, depth, what="Operand scratchpad", span_banks=False):
        self.banks, self.depth, self.what = banks, depth, what
        self.span_banks = span_banks
        self._sizes = {}
        self._persistent = set()
        self._apart = set()

    def add(self, name, rows, persistent=False):
        """A buffer of ``rows`` rows; ``persistent`` ones are live during the whole program."""
        if name in self._sizes:
            raise ValueError(f"Buffer {name!r} is defined twice")
        self._sizes[name] = max(int(rows), 1)
        if persistent:
            self._persistent.add(name)

    def apart(self, a, b):
        """Buffers ``a`` and ``b`` must lie in different banks."""
        if self.span_banks:
            raise ValueError("Buffers that span banks cannot be kept apart")
        self._apart.add(frozenset((a, b)))

    def allocate(self, uses, prefer_apart=None):
        """Row address of every buffer (a ``dict``), given each used buffer's live range
        ``uses[name] = (first, last)`` (instruction indices, inclusive). Buffers never used are
        not placed. ``prefer_apart`` (``{frozenset((a, b)): weight}``, e.g. from
        :func:`overlap_pairs`): pairs to keep in different banks when there is a choice.

        Raises
        ------
        ValueError
            If the buffers do not fit.
        """
        INF = float("inf")
        live = {}
        for name in self._sizes:
            if name not in uses:
                continue
            live[name] = (-INF, INF) if name in self._persistent else uses[name]
        unknown = set(uses) - set(self._sizes)
        if unknown:
            raise AssertionError(f"Undeclared buffers {sorted(unknown)}")
        space = self.banks * self.depth if self.span_banks else self.depth
        nbanks = 1 if self.span_banks else self.banks
        placed = {}                              # name -> (bank, offset)
        load = [0] * nbanks
        order = sorted(live, key=lambda n: (n not in self._persistent, -self._sizes[n], n))
        for name in order:
            size = self._sizes[name]
            lo, hi = live[name]
            banned = {placed[o][0] for pair in self._apart if name in pair
                      for o in pair if o != name and o in placed}
            best = None
            cost = [0] * nbanks
            for pair, weight in (prefer_apart or {}).items():
                if name in pair:
                    other = next(iter(pair - {name}))
                    if other in placed and not self.span_banks:
                        cost[placed[other][0]] += weight
            for bank in sorted(range(nbanks), key=lambda b: (cost[b], load[b], b)):
                if bank in banned:
                    continue
                busy = sorted((placed[o][1], placed[o][1] + self._sizes[o])
                              for o in placed if placed[o][0] == bank
                              and not (live[o][1] < lo or hi < live[o][0]))
                off = 0
                for s, e in busy:
                    if off + size <= s:
                        break
                    off = max(off, e)
                if off + size <= space:
                    best = (bank, off)
                    break
            if best is None:
                total = sum(self._sizes[n] for n in live)
                raise ValueError(f"{self.what} is too small for this network: buffer {name!r} "
                                 f"({size} rows) does not fit ({total} rows in all, "
                                 f"{self.banks} banks of {self.depth})")
            placed[name] = best
            load[best[0]] += size
        return {n: b * self.depth + off if not self.span_banks else off
                for n, (b, off) in placed.items()}


@dataclass(frozen=True)
class Region:
    """``words`` words of main memory from ``addr``."""
    addr: int
    words: int

    @property
    def end(self):
        return self.addr + self.words


class MemoryLayout:
    """Consecutive regions of main memory, each aligned to ``align`` words.

    Parameters
    ----------
    mem_words : int
    base : int
        First address.
    """

    def __init__(self, mem_words, base=0):
        self.mem_words = mem_words
        self.here = base
        self.regions = {}

    def add(self, name, words, align=1):
        addr = -(-self.here // align) * align
        if addr + words > self.mem_words:
            raise ValueError(f"Main memory is too small: region {name!r} ({words} words) does "
                             f"not fit at {addr} ({self.mem_words} words)")
        self.regions[name] = r = Region(addr, words)
        self.here = addr + words
        return r

    def rest(self, name, align=1):
        """All the memory left, as region ``name``."""
        addr = -(-self.here // align) * align
        return self.add(name, max(self.mem_words - addr, 0), align)


def selection_limit(selector, words, word_bits):
    """The largest K whose selected set (``SELOUT``'s largest output,
    :func:`spec.isa.sel_out_max_words`: per class a count and K records) fits ``words`` words
    for ``selector``'s classes and id width (0 if not even K = 1 fits)."""
    from spec.isa import sel_record_words
    per_class = words // selector.classes - 1
    return max(per_class // sel_record_words(selector, word_bits), 0)


def check_selection_fits(selector, region, word_bits, where="main memory"):
    """Raise unless the largest selected set of ``selector`` fits ``region`` (the
    :class:`Region` ``SELOUT`` writes to).

    Raises
    ------
    ValueError
        Naming K, the words it needs, the words there are and the largest K that fits.
    """
    from spec.isa import sel_out_max_words, sel_record_words
    need = sel_out_max_words(selector, word_bits)
    if need > region.words:
        rec = sel_record_words(selector, word_bits)
        raise ValueError(f"Selector K = {selector.k} needs {need} words for the selected set "
                         f"({selector.classes} classes × (1 + K × {rec})); {where} holds "
                         f"{region.words} and at most K = "
                         f"{selection_limit(selector, region.words, word_bits)} here")
