"""Apprentice's instruction set: opcodes, field layouts and error codes, defined once.

The RTL decoder, the golden instruction-level model and the firmware's assembler all use the
tables here; nothing restates a bit position. ``docs/isa.md`` explains the semantics.

Encoding
--------
Every instruction is 128 bits, stored in main memory as 8 consecutive 16-bit words, least
significant word first, at a word address that is a multiple of 8. Bits ``[0, 8)`` hold the opcode;
an instruction's fields follow from bit 8 upwards in the order of :data:`LAYOUTS`, each
``width`` bits wide (signed fields in two's complement). Unused high bits must be zero: an
instruction with a non-zero unused bit is illegal (:attr:`Error.BAD_FIELD`), as is opcode 0, so
zeroed or garbage memory halts instead of running.

This module is pure Python (no Amaranth, no PyTorch).
"""

from dataclasses import dataclass
from enum import IntEnum

from .memory import DESC_FIELDS
from .params import OPERAND_WIDTH
from .softmax_tables import INV_TEMP_WIDTH, GRAD_SHIFT_MAX

__all__ = [
    "INSN_BITS", "WORD_BITS", "INSN_WORDS", "OPCODE_BITS", "NUM_REGS",
    "Op", "Cond", "Unit", "Error", "Field", "LAYOUTS",
    "field_slices", "encode", "decode", "to_words", "from_words", "writes_ahead",
    "sel_record_words", "sel_out_words", "sel_out_max_words", "sel_out_pack", "sel_out_unpack",
]

#: Width of one instruction in bits.
INSN_BITS = 128
#: Width of a main-memory word in bits: the default operand width, the only one the SoC supports
#: (:class:`spec.soc.SocConfig` checks it).
WORD_BITS = OPERAND_WIDTH
#: One instruction occupies this many main-memory words.
INSN_WORDS = INSN_BITS // WORD_BITS
#: Width of the opcode field, bits ``[0, OPCODE_BITS)``.
OPCODE_BITS = 8
#: General-purpose 32-bit registers ``r0``..``r7``; ``r0`` reads as zero, writes are ignored.
NUM_REGS = 8

#: Width of scratchpad row fields (operand and accumulator scratchpads): up to 8192 rows.
ROW_BITS = 13


class Op(IntEnum):
    """Opcodes. ``ILLEGAL`` (0) is never valid."""
    ILLEGAL = 0x00
    HALT    = 0x01   # stop; status done
    FENCE   = 0x02   # wait until the units in `mask` are idle
    SETI    = 0x10   # rd = imm
    ADDI    = 0x11   # rd = rs + imm (wraps at 32 bits)
    ADD     = 0x12   # rd = rs1 + rs2
    SUB     = 0x13   # rd = rs1 - rs2
    LDW     = 0x14   # rd = mem32[rs + imm]     (waits for the DMA to be idle)
    STW     = 0x15   # mem32[rs + imm] = rt     (waits for the DMA to be idle)
    BR      = 0x20   # if cond(rs1, rs2): pc = target
    DMA     = 0x30   # one DMA descriptor
    GEMM    = 0x40   # tiled GEMM on the array, scratchpad → accumulator scratchpad
    REQ     = 0x50   # requantize/activation: accumulator rows → operand rows (+ mask rows)
    RELUB   = 0x51   # ReLU backward: operand rows × mask rows → operand rows
    SMX     = 0x52   # softmax probabilities or softmax-CE gradient, per sample (lane)
    SGD     = 0x53   # SGD update: operand rows (weights) − lr · accumulator rows (gradients)
    FILL    = 0x54   # fill scratchpad rows with a constant
    SEED    = 0x58   # load the stochastic-rounding generator's state
    SELCLR  = 0x60   # clear the balanced top-K selector
    SELFEED = 0x61   # feed probability rows (classes × sample lanes) to the selector
    SELOUT  = 0x62   # write the selected set to main memory


class Cond(IntEnum):
    """Branch conditions of :attr:`Op.BR` (signed comparisons unless ``U``)."""
    ALWAYS = 0
    EQ = 1
    NE = 2
    LT = 3
    GE = 4
    LTU = 5
    GEU = 6


class Unit(IntEnum):
    """Execution units; bit ``n`` of a FENCE mask is unit ``n``."""
    DMA = 0
    GEMM = 1
    VEC = 2
    SEL = 3


class Error(IntEnum):
    """Values of the sequencer's error code. Each halts the program cleanly."""
    NONE = 0
    ILLEGAL_OPCODE = 1     # opcode 0 or not in Op
    BAD_FIELD = 2          # a field out of its legal range, or a non-zero unused bit
    DMA_FAULT = 3          # the DMA refused a descriptor; the DMA fault code says why
    SP_RANGE = 4           # a scratchpad row range outside the scratchpad
    BANK_CONFLICT = 5      # one instruction reads two operands from the same bank
    FETCH_RANGE = 6        # the program counter left main memory
    MEM_RANGE = 7          # LDW/STW/SELOUT address range outside main memory
    WATCHDOG = 8           # an instruction would issue at or after the cycle budget (Csr.BUDGET)
    ROW_OVERLAP = 9        # a destination starts inside a source range, after its first row


@dataclass(frozen=True)
class Field:
    """One instruction field: ``name``, ``width`` bits, signed or not."""
    name: str
    width: int
    signed: bool = False

    @property
    def min(self):
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max(self):
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


def _f(name, width, signed=False):
    return Field(name, width, signed)


_ROW = ROW_BITS
_DESC = dict(DESC_FIELDS)

#: Field layout of every opcode, packed from bit 8 upward in this order.
LAYOUTS = {
    Op.HALT:  (),
    Op.FENCE: (_f("mask", len(Unit)),),
    Op.SETI:  (_f("rd", 3), _f("imm", 32)),
    Op.ADDI:  (_f("rd", 3), _f("rs", 3), _f("imm", 32, signed=True)),
    Op.ADD:   (_f("rd", 3), _f("rs1", 3), _f("rs2", 3)),
    Op.SUB:   (_f("rd", 3), _f("rs1", 3), _f("rs2", 3)),
    Op.LDW:   (_f("rd", 3), _f("rs", 3), _f("imm", 32, signed=True)),
    Op.STW:   (_f("rt", 3), _f("rs", 3), _f("imm", 32, signed=True)),
    Op.BR:    (_f("cond", 3), _f("rs1", 3), _f("rs2", 3), _f("target", 32)),
    # DMA: direction 0 = load (main memory → scratchpad), 1 = store; space 0 = operand scratchpad,
    # 1 = accumulator scratchpad; main-memory address = r[rm] + mem_off.
    # (the descriptor's field widths are spec.memory.DESC_FIELDS')
    Op.DMA:   (_f("direction", _DESC["direction"]), _f("space", _DESC["space"]),
               _f("transpose", _DESC["transpose"]), _f("elem_words", _DESC["elem_words"]),
               _f("rm", 3), _f("mem_off", 32, signed=True), _f("sp_row", _DESC["sp_row"]),
               _f("rows", _DESC["rows"]), _f("cols", _DESC["cols"]),
               _f("stride", _DESC["stride"])),
    # GEMM: for j < nt, i < mt: acc[c_row + j*c_ps + i*R + r, lane c] (+)= Σ_k
    #   sp[a_row + i*a_ps + k, lane r] · sp[b_row + j*b_ps + k, lane c]
    Op.GEMM:  (_f("a_row", _ROW), _f("b_row", _ROW), _f("c_row", _ROW), _f("k", _ROW),
               _f("mt", 6), _f("nt", 6), _f("a_ps", _ROW), _f("b_ps", _ROW), _f("c_ps", _ROW),
               _f("accumulate", 1)),
    Op.REQ:   (_f("src", _ROW), _f("dst", _ROW), _f("rows", _ROW), _f("lanes", 6),
               _f("shift", 6), _f("relu", 1), _f("rounding", 1), _f("mask_en", 1),
               _f("mask_row", _ROW)),
    Op.RELUB: (_f("g_row", _ROW), _f("mask_row", _ROW), _f("dst", _ROW), _f("rows", _ROW),
               _f("lanes", 6)),
    Op.SMX:   (_f("mode", 1), _f("z_row", _ROW), _f("t_row", _ROW), _f("dst", _ROW),
               _f("classes", 6), _f("samples", 6), _f("z_frac", 4),
               _f("grad_shift", GRAD_SHIFT_MAX.bit_length()), _f("inv_temp", INV_TEMP_WIDTH)),
    Op.SGD:   (_f("w_row", _ROW), _f("g_row", _ROW), _f("rows", _ROW), _f("lanes", 6),
               _f("lr_shift", 6), _f("lr_mul", 16), _f("wd_mul", 16), _f("rounding", 1)),
    Op.FILL:  (_f("space", 1), _f("dst", _ROW), _f("rows", _ROW), _f("value", 32, signed=True)),
    Op.SEED:  (_f("seed", 32),),
    # Selection (the SoC's SocConfig.selector: C classes, K, P, id width): SELFEED feeds lanes
    # s < samples of rows prob_row .. prob_row + C - 1 as samples with ids r[rid] + s; SELOUT
    # writes the selected set at r[rm] + mem_off (see sel_out_pack).
    Op.SELCLR:  (),
    Op.SELFEED: (_f("prob_row", _ROW), _f("samples", 6), _f("rid", 3)),
    Op.SELOUT:  (_f("rm", 3), _f("mem_off", 32, signed=True)),
}


def writes_ahead(src, dst, rows):
    """Whether an operation that reads rows ``src .. src + rows − 1`` and writes rows ``dst ..
    dst + rows − 1`` of the same scratchpad, a row of each in order, writes a row it has still
    to read: ``src < dst < src + rows``, the destination starting inside the source after its
    first row. Its destination row ``t`` is then source row ``t + dst − src``, read that many
    rows later (``docs/isa.md``: :attr:`Error.ROW_OVERLAP`, RELUB's rule). In place (``dst ==
    src``) and backward (``dst < src``), every row is read before it is written."""
    return src < dst < src + rows


def field_slices(op):
    """``{name: (lsb, Field)}`` for opcode ``op`` (bit positions within the 128-bit word)."""
    op = Op(op)
    out, pos = {}, OPCODE_BITS
    for f in LAYOUTS[op]:
        out[f.name] = (pos, f)
        pos += f.width
    assert pos <= INSN_BITS, f"{op.name} layout is {pos} bits"
    return out


def _used_bits(op):
    return OPCODE_BITS + sum(f.width for f in LAYOUTS[op])


def encode(op, **fields):
    """Encode one instruction as a 128-bit integer.

    Every field of the opcode's layout must be given (names from :data:`LAYOUTS`).

    Raises
    ------
    ValueError
        For an unknown opcode, a missing or unknown field, or a value outside its field.
    TypeError
        For a non-integer field value.
    """
    try:
        op = Op(op)
    except ValueError:
        raise ValueError(f"Unknown opcode {op!r}") from None
    if op is Op.ILLEGAL:
        raise ValueError("Opcode ILLEGAL (0) cannot be encoded")
    slices = field_slices(op)
    unknown = set(fields) - set(slices)
    if unknown:
        raise ValueError(f"{op.name} has no field(s) {', '.join(sorted(unknown))}")
    word = int(op)
    for name, (lsb, f) in slices.items():
        if name not in fields:
            raise ValueError(f"{op.name} needs field {name!r}")
        v = fields[name]
        if not isinstance(v, int) or isinstance(v, bool):
            if isinstance(v, bool):
                v = int(v)
            else:
                raise TypeError(f"{op.name}.{name} must be an integer, not {v!r}")
        if not f.min <= v <= f.max:
            raise ValueError(f"{op.name}.{name} must be in {f.min}..{f.max}, not {v!r}")
        word |= (v & ((1 << f.width) - 1)) << lsb
    return word


def decode(word):
    """Decode a 128-bit instruction into ``(op, fields)``.

    Raises
    ------
    ValueError
        With the hardware's error code as ``args[1]``: :attr:`Error.ILLEGAL_OPCODE` for opcode
        0 or an unknown opcode, :attr:`Error.BAD_FIELD` for a non-zero unused bit.
    """
    if not isinstance(word, int) or not 0 <= word < (1 << INSN_BITS):
        raise ValueError(f"Instruction must be a 128-bit unsigned integer, not {word!r}",
                         Error.BAD_FIELD)
    code = word & ((1 << OPCODE_BITS) - 1)
    try:
        op = Op(code)
    except ValueError:
        raise ValueError(f"Illegal opcode {code:#04x}", Error.ILLEGAL_OPCODE) from None
    if op is Op.ILLEGAL:
        raise ValueError("Illegal opcode 0x00", Error.ILLEGAL_OPCODE)
    if word >> _used_bits(op):
        raise ValueError(f"{op.name} has non-zero unused bits", Error.BAD_FIELD)
    fields = {}
    for name, (lsb, f) in field_slices(op).items():
        v = (word >> lsb) & ((1 << f.width) - 1)
        if f.signed and v >> (f.width - 1):
            v -= 1 << f.width
        fields[name] = v
    return op, fields


def to_words(word):
    """The 8 little-endian 16-bit memory words of a 128-bit instruction."""
    mask = (1 << WORD_BITS) - 1
    return [(word >> (WORD_BITS * i)) & mask for i in range(INSN_WORDS)]


def from_words(words):
    """The 128-bit instruction stored in 8 little-endian 16-bit words."""
    words = list(words)
    if len(words) != INSN_WORDS:
        raise ValueError(f"An instruction is {INSN_WORDS} words, not {len(words)}")
    mask = (1 << WORD_BITS) - 1
    return sum((int(w) & mask) << (WORD_BITS * i) for i, w in enumerate(words))


# --- The selected set in main memory (SELOUT) -----------------------------------------------------
#
# Class-major: for each class c = 0 .. C-1, one word with the class's count n_c, then its n_c
# records in rank order (higher score first, then lower id), each the sample id (low word first,
# ceil(id_width / word_bits) words) and the score (one word, two's complement). The class is
# implicit, so a selected sample costs sel_record_words() words (2 words = 4 bytes with 16-bit ids)
# plus one count word per class.

def _id_words(selector, word_bits):
    return -(-selector.id_width // word_bits)


def sel_record_words(selector, word_bits=WORD_BITS):
    """Main-memory words of one selected record (sample id and score) in SELOUT's layout."""
    return _id_words(selector, word_bits) + 1


def sel_out_words(selector, counts, word_bits=WORD_BITS):
    """Words SELOUT writes for a selection with per-class ``counts``."""
    return len(counts) + sel_record_words(selector, word_bits) * sum(counts)


def sel_out_max_words(selector, word_bits=WORD_BITS):
    """Words SELOUT writes at most (every class full): the range its address is checked for."""
    return selector.classes * (1 + selector.k * sel_record_words(selector, word_bits))


def sel_out_pack(per_class, selector, word_bits=WORD_BITS):
    """SELOUT's words for ``per_class[c]`` = ``[(sample_id, score), ...]`` in rank order."""
    mask, nid = (1 << word_bits) - 1, _id_words(selector, word_bits)
    out = []
    for lst in per_class:
        out.append(len(lst))
        for sid, score in lst:
            out += [(sid >> (word_bits * i)) & mask for i in range(nid)]
            out.append(score & mask)
    return out


def sel_out_unpack(words, selector, word_bits=WORD_BITS):
    """The selection stored by SELOUT: ``per_class`` as a tuple of tuples of ``(sample_id,
    score)`` (scores signed), read from ``words`` (at least :func:`sel_out_words` of them)."""
    words = [int(w) for w in words]
    nid, pos, per = _id_words(selector, word_bits), 0, []
    for _ in range(selector.classes):
        n, pos, lst = words[pos], pos + 1, []
        if n > selector.k:
            raise ValueError(f"Class count {n} exceeds K ({selector.k})")
        for _ in range(n):
            sid = sum(words[pos + i] << (word_bits * i) for i in range(nid))
            score = words[pos + nid]
            if score >> (word_bits - 1):
                score -= 1 << word_bits
            lst.append((sid, score))
            pos += nid + 1
        per.append(tuple(lst))
    return tuple(per)
