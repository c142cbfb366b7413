"""Parameters of the balanced pseudo-label selection (the streaming per-class top-K).

Pure Python (no Amaranth, no PyTorch): the RTL selector (:mod:`rtl.topk`), its golden models
(:mod:`golden.selection`) and the firmware import these defaults and this validation, so the
checks and their messages live in one place. Widths that belong to the whole accelerator (the
score is an operand-width probability) come from :mod:`spec.params`.
"""

from dataclasses import dataclass

from .params import OPERAND_WIDTH, check_positive_int

__all__ = ["SelectorConfig", "DEFAULT_SELECTOR", "ID_WIDTH", "READOUT_FIFO_DEPTH",
           "READ_CYCLES", "INSERT_SETUP", "WORD_SLOTS", "check_word_slots", "check_top_p"]


#: Default width of a sample id in bits: one 16-bit memory word, 65 536 samples per selection.
ID_WIDTH = 16

#: Records the top-K selector's read-out holds (``rtl.topk``): its output FIFO's depth, which
#: bounds the block-RAM reads in flight plus the records waiting (so ``o_record.ready`` reaches
#: only the FIFO).
READOUT_FIFO_DEPTH = 4

#: Cycles from a block-RAM read of the top-K selector (``rtl.topk``) to its word in the register
#: its logic reads: the address register, then the block RAM's output register.
READ_CYCLES = 2

#: Cycles the top-K selector's inserter spends on an entry it rejects or appends without a shift
#: (``rtl.topk``: a cycle to take it from the queue and look up its class, a cycle to decide); an
#: entry that shifts its class's list over ``w`` block-RAM words takes
#: ``w + INSERT_SETUP + READ_CYCLES`` (the top word's read, a compare and write per word, a last
#: write; ``golden.selection.StreamingSelector.entry_cycles``).
INSERT_SETUP = 2

#: Entries per block-RAM word of the top-K selector (``rtl.topk``): an insertion compares and
#: shifts this many ranks per cycle. A power of two.
WORD_SLOTS = 4


def check_word_slots(slots):
    """Raise unless ``slots`` (entries per block-RAM word) is a power of two ≥ 1."""
    check_positive_int(slots, "Selector word slots")
    if slots & (slots - 1):
        raise ValueError(f"Selector word slots must be a power of two, not {slots!r}")
    return slots


@dataclass(frozen=True)
class SelectorConfig:
    """Shape of a balanced selection: for each of ``classes`` classes keep the top ``k`` samples
    by that class's score, each sample considered only for its top ``p`` classes.

    The defaults are the recipe of a reference float study on digits (10 classes, K = 100, P = 1:
    93.1 % at 10 % labels against 91.3 % supervised), with 16-bit scores (softmax probabilities)
    and 16-bit sample ids.

    Parameters
    ----------
    classes : int
        Number of classes, ≥ 1.
    k : int
        Entries kept per class, ≥ 1.
    p : int
        Classes each sample is considered for, ``1 <= p <= classes``.
    id_width : int
        Width of a sample id in bits, ≥ 1 (ids are unsigned).
    score_width : int
        Width of a score in bits, ≥ 1 (scores are signed two's complement).

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is out of range.
    """
    classes: int = 10
    k: int = 100
    p: int = 1
    id_width: int = ID_WIDTH
    score_width: int = OPERAND_WIDTH

    def __post_init__(self):
        check_positive_int(self.classes, "Selector classes")
        check_positive_int(self.k, "Selector K")
        check_top_p(self.p, self.classes)
        check_positive_int(self.id_width, "Sample id width")
        check_positive_int(self.score_width, "Score width")

    @property
    def class_width(self):
        """Bits of a class index: ``ceil(log2(classes))`` (0 for a single class)."""
        return (self.classes - 1).bit_length()

    @property
    def count_width(self):
        """Bits of a per-class entry count ``0 .. k``."""
        return self.k.bit_length()


def check_top_p(p, classes):
    """Raise unless ``p`` is an integer with ``1 <= p <= classes``."""
    check_positive_int(p, "Selector P")
    if p > classes:
        raise ValueError(f"Selector P must not exceed the number of classes ({classes}), "
                         f"not {p!r}")
    return p


DEFAULT_SELECTOR = SelectorConfig()
