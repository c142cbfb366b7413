"""Random programs for differential tests of the SoC against the golden machine.

* :func:`valid_program` — random legal instructions of every unit (the selection instructions when
  the SoC has a selector), random shapes, a loop, scalar ops, LDW/STW, fences, both rounding
  modes; an :class:`firmware.asm.Assembler` at address 0.
* :func:`invalid_case` / :func:`invalid_program` — a valid prefix followed by one illegal
  instruction (illegal opcode, non-zero unused bits, bad field, scratchpad range, DMA fault,
  bank conflict, a RELUB writing rows it has still to read (:func:`overlap_relub`), branch
  out of main memory, to an unaligned address or with no such condition, LDW/STW/SELOUT out
  of range),
  with the error code and pc it must halt with.
* :func:`runaway_program` — a random legal loop that never halts (for the watchdog).
* :func:`random_image` — the program at 0, zeros up to half of main memory, random data above.
* :func:`shrink` — a minimal failing program (instruction deletion, loop counts cut to 1), and
  :func:`describe` its disassembly, for failure messages.
"""

import random

from spec import isa
from spec.isa import Op, Cond, Unit, Error
from spec.softmax_tables import INV_TEMP_ONE
from firmware.asm import Assembler

__all__ = ["valid_program", "runaway_program", "instruction_program", "SCALAR_OPS", "invalid_case",
           "invalid_program", "overlap_relub", "random_image", "with_program", "shrink",
           "describe"]


def _rows(rng, soc, bank, n, space="sp"):
    depth = soc.sp_depth if space == "sp" else soc.acc_depth
    n = min(n, depth)
    return bank * depth + rng.randrange(0, depth - n + 1), n


def random_instruction(rng, soc, data_lo, data_hi, kind=None):
    """One random legal unit instruction (as (op, fields)); ``kind`` (an opcode name) picks
    which, default any (DMA twice as likely)."""
    L, R, C = soc.lanes, soc.config.array.rows, soc.config.array.cols
    nb, na = soc.sp_banks, soc.acc_banks
    kinds = ["DMA", "DMA", "GEMM", "REQ", "RELUB", "SGD", "FILL", "SMX"]
    if soc.selector is not None:
        kinds += ["SELCLR", "SELFEED", "SELFEED", "SELOUT"]
    if kind is None:
        kind = rng.choice(kinds)
    elif kind not in kinds:
        raise ValueError(f"No random {kind!r} instructions for this SoC (kinds: {kinds})")
    if kind == "SELOUT":
        span = isa.sel_out_max_words(soc.selector, soc.config.array.operand_width)
        if data_hi - data_lo >= span:
            return Op.SELOUT, dict(rm=0, mem_off=rng.randrange(data_lo, data_hi - span + 1))
        kind = "SELFEED"                    # the selected set would not fit the data region
    if kind == "SELCLR":
        return Op.SELCLR, {}
    if kind == "SELFEED":
        cl = soc.selector.classes
        return Op.SELFEED, dict(prob_row=rng.randrange(soc.sp_rows - cl + 1),
                                samples=rng.randint(1, L), rid=rng.randrange(isa.NUM_REGS))
    if kind == "DMA":
        space = rng.randint(0, 1)
        transpose = rng.randint(0, 1)
        ew = 1 if space == 0 or rng.random() < 0.5 else 2
        rows = rng.randint(1, L if transpose else 6)
        cols = rng.randint(1, 6 if transpose else L)
        stride = rng.randint(cols * ew, cols * ew + 3)
        span = (rows - 1) * stride + cols * ew
        mem_addr = rng.randrange(data_lo, data_hi - span)
        sp_n = cols if transpose else rows
        sp_row, _ = _rows(rng, soc, rng.randrange(nb if space == 0 else na), sp_n,
                          "sp" if space == 0 else "acc")
        return Op.DMA, dict(direction=rng.randint(0, 1), space=space, transpose=transpose,
                            elem_words=ew, rm=0, mem_off=mem_addr, sp_row=sp_row, rows=rows,
                            cols=cols, stride=stride)
    if kind == "GEMM":
        kmax = max(1, min(9, soc.sp_depth // 2 - 2))        # two panels fit in one bank
        k, mt, nt = rng.randint(1, kmax), rng.randint(1, 2), rng.randint(1, 2)
        ba, bb = rng.sample(range(nb), 2)
        a_ps, b_ps = k + rng.randint(0, 2), k + rng.randint(0, 2)
        a_row, _ = _rows(rng, soc, ba, (mt - 1) * a_ps + k)
        b_row, _ = _rows(rng, soc, bb, (nt - 1) * b_ps + k)
        c_ps = mt * R + rng.randint(0, 2)
        c_row, _ = _rows(rng, soc, rng.randrange(na), (nt - 1) * c_ps + mt * R, "acc")
        return Op.GEMM, dict(a_row=a_row, b_row=b_row, c_row=c_row, k=k, mt=mt, nt=nt,
                             a_ps=a_ps, b_ps=b_ps, c_ps=c_ps, accumulate=rng.randint(0, 1))
    n = rng.randint(1, 5)
    if kind == "REQ":
        bd, bm = rng.sample(range(nb), 2)
        return Op.REQ, dict(src=_rows(rng, soc, rng.randrange(na), n, "acc")[0],
                            dst=_rows(rng, soc, bd, n)[0], rows=n, lanes=rng.randint(1, L),
                            shift=rng.choice([0, 3, 12, 16, 20, 32]), relu=rng.randint(0, 1),
                            rounding=rng.randint(0, 1), mask_en=rng.randint(0, 1),
                            mask_row=_rows(rng, soc, bm, n)[0])
    if kind == "RELUB":
        bg, bm = rng.sample(range(nb), 2)
        g_row, mask_row = _rows(rng, soc, bg, n)[0], _rows(rng, soc, bm, n)[0]
        dst = _rows(rng, soc, rng.randrange(nb), n)[0]
        if rng.random() < 0.25:             # in place, or a backward overlap: legal
            src = rng.choice([g_row, mask_row])
            dst = src - rng.randrange(min(n, src % soc.sp_depth + 1))
        for src in (g_row, mask_row):       # a destination ahead inside a source: in place
            if isa.writes_ahead(src, dst, n):
                dst = src
        return Op.RELUB, dict(g_row=g_row, mask_row=mask_row, dst=dst, rows=n,
                              lanes=rng.randint(1, L))
    if kind == "SGD":
        return Op.SGD, dict(w_row=_rows(rng, soc, rng.randrange(nb), n)[0],
                            g_row=_rows(rng, soc, rng.randrange(na), n, "acc")[0], rows=n,
                            lanes=rng.randint(1, L), lr_shift=rng.choice([0, 8, 16, 20]),
                            lr_mul=rng.choice([1, 1, 3]), wd_mul=rng.choice([0, 0, 1]),
                            rounding=rng.randint(0, 1))
    if kind == "FILL":
        space = rng.randint(0, 1)
        lim = 1 << (15 if space == 0 else 31)
        dst = _rows(rng, soc, rng.randrange(nb if space == 0 else na), n,
                    "sp" if space == 0 else "acc")[0]
        return Op.FILL, dict(space=space, dst=dst, rows=n, value=rng.randrange(-lim, lim))
    cl = rng.randint(1, 6)
    bz, bt = rng.sample(range(nb), 2)
    return Op.SMX, dict(mode=rng.randint(0, 1), z_row=_rows(rng, soc, bz, cl)[0],
                        t_row=_rows(rng, soc, bt, cl)[0],
                        dst=_rows(rng, soc, rng.randrange(nb), cl)[0], classes=cl,
                        samples=rng.randint(1, L), z_frac=rng.choice([4, 8]),
                        grad_shift=rng.choice([0, 2]),
                        inv_temp=rng.choice([INV_TEMP_ONE, INV_TEMP_ONE // 2]))


def valid_program(rng, soc, n=8, data_lo=None, data_hi=None):
    """Random legal program: a seed, a loop of random unit instructions, scalar ops, fences."""
    data_lo = data_lo if data_lo is not None else soc.mem_words // 2
    data_hi = data_hi if data_hi is not None else soc.mem_words
    p = Assembler(base=0)
    p.seed(seed=rng.randrange(1, 1 << 32))
    p.seti(rd=1, imm=rng.randint(1, 2))
    p.label("loop")
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            p.fence(mask=rng.randrange(1 << len(Unit)))
        elif r < 0.15:
            p.stw(rt=1, rs=0, imm=data_lo + 2 * rng.randrange(4))
        elif r < 0.2:
            p.ldw(rd=2, rs=0, imm=data_lo + 2 * rng.randrange(4))
        else:
            op, fields = random_instruction(rng, soc, data_lo + 8, data_hi)
            p.emit(op, **fields)
    p.addi(rd=1, rs=1, imm=-1)
    p.br(cond=Cond.NE, rs1=1, rs2=0, target="loop")
    p.halt()
    return p


def runaway_program(rng, soc, n=6, data_lo=None, data_hi=None):
    """A random legal program that never halts: :func:`valid_program`'s start and loop body,
    with the loop's branch always taken (for the watchdog, ``Csr.BUDGET``)."""
    data_lo = data_lo if data_lo is not None else soc.mem_words // 2
    data_hi = data_hi if data_hi is not None else soc.mem_words
    p = Assembler(base=0)
    p.seed(seed=rng.randrange(1, 1 << 32))
    p.seti(rd=1, imm=rng.randint(1, 2))
    p.label("loop")
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            p.fence(mask=rng.randrange(1 << len(Unit)))
        elif r < 0.2:
            p.stw(rt=1, rs=0, imm=data_lo + 2 * rng.randrange(4))
        else:
            op, fields = random_instruction(rng, soc, data_lo + 8, data_hi)
            p.emit(op, **fields)
    p.addi(rd=1, rs=1, imm=1)
    p.br(cond=Cond.ALWAYS, rs1=0, rs2=0, target="loop")
    return p


#: Opcodes of the scalar instructions :func:`instruction_program` exercises by hand.
SCALAR_OPS = (Op.HALT, Op.FENCE, Op.SETI, Op.ADDI, Op.ADD, Op.SUB, Op.LDW, Op.STW, Op.BR,
              Op.SEED)


def instruction_program(rng, soc, op, count=4, data_lo=None):
    """A straight-line program exercising ``op`` ``count`` times with random legal fields.

    Registers get random values first; unit instructions run on random scratchpad contents
    (the image's data is loaded by DMA first); afterwards every register is stored to memory and
    a stochastic REQ shows the rounding generator's state, so that every instruction's effect
    reaches main memory or a scratchpad. ``op`` is an :class:`spec.isa.Op` other than
    ``ILLEGAL``.
    """
    op = Op(op)
    if op is Op.ILLEGAL:
        raise ValueError("ILLEGAL is not an instruction")
    data_lo = data_lo if data_lo is not None else soc.mem_words // 2
    data_hi = soc.mem_words
    out = data_lo                              # 16 words for the registers
    p = Assembler(base=0)
    p.seed(seed=rng.randrange(1, 1 << 32))
    for rd in range(1, isa.NUM_REGS):
        p.seti(rd=rd, imm=rng.choice([rng.randrange(1 << 32), rng.randrange(-8, 8) & 0xFFFF_FFFF,
                                      0x7FFF_FFFF, 0x8000_0000]))
    for _ in range(3):                        # random scratchpad contents
        op_, f = random_instruction(rng, soc, data_lo + 16, data_hi, kind="DMA")
        p.emit(op_, **dict(f, direction=0))
    for i in range(count):
        if op not in SCALAR_OPS:
            op_, f = random_instruction(rng, soc, data_lo + 16, data_hi, kind=op.name)
            p.emit(op_, **f)
        elif op is Op.FENCE:
            p.fence(mask=rng.randrange(1 << len(Unit)))
        elif op is Op.SETI:
            p.seti(rd=rng.randrange(isa.NUM_REGS), imm=rng.randrange(1 << 32))
        elif op is Op.ADDI:
            p.addi(rd=rng.randrange(isa.NUM_REGS), rs=rng.randrange(isa.NUM_REGS),
                   imm=rng.randrange(-(1 << 31), 1 << 31))
        elif op in (Op.ADD, Op.SUB):
            p.emit(op, rd=rng.randrange(isa.NUM_REGS), rs1=rng.randrange(isa.NUM_REGS),
                   rs2=rng.randrange(isa.NUM_REGS))
        elif op is Op.LDW:
            p.ldw(rd=rng.randrange(1, isa.NUM_REGS), rs=0,
                  imm=rng.randrange(data_lo + 16, data_hi - 1))
        elif op is Op.STW:
            p.stw(rt=rng.randrange(isa.NUM_REGS), rs=0,
                  imm=rng.randrange(data_lo + 16, data_hi - 1))
        elif op is Op.BR:                     # forward: skip the next instruction or not
            name = f"skip{i}"
            p.br(cond=rng.choice(list(Cond)), rs1=rng.randrange(isa.NUM_REGS),
                 rs2=rng.randrange(isa.NUM_REGS), target=name)
            p.seti(rd=rng.randrange(1, isa.NUM_REGS), imm=i + 1)
            p.label(name)
        elif op is Op.SEED:
            p.seed(seed=rng.randrange(1, 1 << 32))
        if op is not Op.HALT and rng.random() < 0.5:
            p.fill(space=0, dst=rng.randrange(soc.sp_rows), rows=1, value=i)   # a VEC neighbour
    for rs in range(1, isa.NUM_REGS):
        p.stw(rt=rs, rs=0, imm=out + 2 * (rs - 1))
    acc_row = rng.randrange(soc.acc_rows)
    sp_row = (acc_row % soc.sp_depth)           # bank 0
    p.req(src=acc_row, dst=sp_row, rows=1, lanes=soc.lanes, shift=20, relu=0, rounding=1,
          mask_en=0, mask_row=soc.sp_depth)
    p.halt()
    return p


def invalid_case(rng, soc):
    """A short valid prefix followed by one illegal instruction.

    Returns
    -------
    (list of int, spec.isa.Error, int)
        The program's words, the error code ``docs/isa.md`` documents for the illegal
        instruction, and the pc the program must halt at (the illegal instruction's address, or
        for a branch out of main memory the branch's target).
    """
    p = valid_program(rng, soc, n=rng.randint(0, 3))
    words = p.words()[:-8]                  # drop HALT
    pc = len(words)
    kinds = ["opcode", "unused", "range", "dma", "bank", "field", "fetch", "ldw", "overlap"]
    if soc.selector is not None:
        kinds += ["selout", "selfeed"]
    kind = rng.choice(kinds)
    if kind == "opcode":
        bad, error = rng.choice([0, 0x7F, 0xFF]), Error.ILLEGAL_OPCODE
    elif kind == "unused":
        bad = isa.encode(Op.HALT) | (1 << rng.randrange(isa.OPCODE_BITS + 1, 128))
        error = Error.BAD_FIELD
    elif kind == "range":
        bad = isa.encode(Op.FILL, space=0, dst=soc.sp_rows - 1, rows=2, value=0)
        error = Error.SP_RANGE
    elif kind == "dma":
        bad = isa.encode(Op.DMA, direction=1, space=0, transpose=0, elem_words=1, rm=0,
                         mem_off=soc.mem_words - 2, sp_row=0, rows=1, cols=4, stride=4)
        error = Error.DMA_FAULT
    elif kind == "bank":
        bad = isa.encode(Op.GEMM, a_row=0, b_row=1, c_row=0, k=2, mt=1, nt=1, a_ps=2, b_ps=2,
                         c_ps=0, accumulate=0)
        error = Error.BANK_CONFLICT
    elif kind == "overlap":
        bad, error = overlap_relub(rng, soc), Error.ROW_OVERLAP
    elif kind == "fetch":
        r = rng.random()
        if r < 0.5:                         # a branch out of main memory: halts at the target
            target = soc.mem_words + 8 * rng.choice([0, rng.randrange(1, 1 << 20)])
            bad = isa.encode(Op.BR, cond=Cond.ALWAYS, rs1=0, rs2=0, target=target)
            return words + isa.to_words(bad), Error.FETCH_RANGE, target
        if r < 0.75:                        # to an address that is not an instruction's
            bad = isa.encode(Op.BR, cond=Cond.ALWAYS, rs1=0, rs2=0,
                             target=pc + 8 + rng.randrange(1, 8))
        else:                               # no such condition
            bad = isa.encode(Op.BR, cond=max(Cond) + 1, rs1=0, rs2=0, target=pc + 8)
        error = Error.BAD_FIELD
    elif kind == "ldw":                     # a 32-bit access whose second word is outside
        op = rng.choice([Op.LDW, Op.STW])
        reg = dict(rd=2) if op is Op.LDW else dict(rt=1)
        bad = isa.encode(op, **reg, rs=0, imm=rng.choice([soc.mem_words - 1, soc.mem_words, -2]))
        error = Error.MEM_RANGE
    elif kind == "selout":
        bad = isa.encode(Op.SELOUT, rm=0, mem_off=soc.mem_words - rng.randint(1, 3))
        error = Error.MEM_RANGE
    elif kind == "selfeed" and soc.selector.classes > 1 and rng.random() < 0.5:
        bad = isa.encode(Op.SELFEED, prob_row=soc.sp_rows - 1, samples=1, rid=1)
        error = Error.SP_RANGE
    elif kind == "selfeed":
        bad = isa.encode(Op.SELFEED, prob_row=0, samples=rng.choice([0, soc.lanes + 1]), rid=1)
        error = Error.BAD_FIELD
    else:
        bad = isa.encode(Op.REQ, src=0, dst=0, rows=1, lanes=0, shift=0, relu=0, rounding=0,
                         mask_en=0, mask_row=0)
        error = Error.BAD_FIELD
    return words + isa.to_words(bad), error, pc


def overlap_relub(rng, soc, k=None, rows=None):
    """A RELUB whose destination starts ``k`` rows after one of its sources' first row, ``0 < k
    < rows`` (:func:`spec.isa.writes_ahead`), otherwise legal: ``Error.ROW_OVERLAP``. ``k`` and
    ``rows`` default to random values (``k`` often 1, the vector pipeline's depth 10 or 11, or
    ``rows − 1``); the sources in different banks, the destination anywhere up to the
    scratchpad's last row (often ending there)."""
    d, nb = soc.sp_depth, soc.sp_banks
    top_rows = min(d, 24)
    n = rows if rows is not None else rng.choice([top_rows, rng.randint(2, top_rows)])
    if k is None:
        k = min(rng.choice([1, 10, 11, n - 1, rng.randint(1, n - 1)]), n - 1)
    if not 0 < k < n <= d:
        raise ValueError(f"A RELUB overlap needs 0 < k < rows <= {d}, not k={k}, rows={n}")

    def others(src):          # the banks the other source may take
        return [b for b in range(nb) if not src // d <= b <= (src + n - 1) // d]

    src = soc.sp_rows - k - n                               # the destination to the last row
    if rng.random() < 0.75 or not others(src):
        bs = rng.choice([b for b in range(nb) if b * d + k + n <= soc.sp_rows])
        top = min(d - n, soc.sp_rows - k - n - bs * d)      # in bank bs, the destination fits
        src = bs * d + rng.choice([0, top, rng.randint(0, top)])
    other = _rows(rng, soc, rng.choice(others(src)), n)[0]
    g_row, mask_row = (src, other) if rng.random() < 0.5 else (other, src)
    return isa.encode(Op.RELUB, g_row=g_row, mask_row=mask_row, dst=src + k, rows=n,
                      lanes=rng.randint(1, soc.lanes))


def invalid_program(rng, soc):
    """The words of :func:`invalid_case`'s program."""
    return invalid_case(rng, soc)[0]


def random_image(rng, soc, program_words):
    """Main-memory image: the program at 0, random data above it."""
    img = [rng.randrange(1 << 16) for _ in range(soc.mem_words)]
    img[:len(program_words)] = program_words
    # keep the gap between program and data zero (a runaway program hits opcode 0)
    for i in range(len(program_words), soc.mem_words // 2):
        img[i] = 0
    return img


def with_program(image, old_words, new_words):
    """``image`` with the program ``old_words`` at 0 replaced by ``new_words`` (the rest of the
    old program's space zeroed, as :func:`random_image` leaves the gap)."""
    img = list(image)
    n = max(len(old_words), len(new_words))
    img[:n] = list(new_words) + [0] * (n - len(new_words))
    return img


def _without(insns, i, base):
    """The 128-bit instructions ``insns`` without the ``i``-th; branch targets after it move
    back by one instruction (a target at it now names its successor)."""
    removed = base + isa.INSN_WORDS * i
    out = []
    for j, word in enumerate(insns):
        if j == i:
            continue
        try:
            op, f = isa.decode(word)
        except ValueError:
            out.append(word)
            continue
        if op is Op.BR and f["target"] > removed:
            f["target"] -= isa.INSN_WORDS
            word = isa.encode(op, **f)
        out.append(word)
    return out


def _smaller_loop(word):
    """A ``SETI`` of a loop count above 1 with count 1 (else ``None``)."""
    try:
        op, f = isa.decode(word)
    except ValueError:
        return None
    if op is Op.SETI and f["imm"] > 1:
        return isa.encode(op, **dict(f, imm=1))
    return None


def shrink(words, fails, *, base=0, budget=400):
    """A minimal version of a failing program, for the failure message.

    Greedily deletes instructions (fixing branch targets) and cuts loop counts to 1 while
    ``fails(words)`` stays true, until no single deletion keeps it failing (1-minimal) or
    ``budget`` candidates have been tried.

    Parameters
    ----------
    words : list of int
        The failing program (16-bit words, a whole number of instructions, at ``base``).
    fails : callable
        ``fails(words) -> bool``: the candidate program still shows the failure.

    Returns
    -------
    list of int
        The smallest failing program found (``words`` itself if nothing smaller fails).
    """
    if len(words) % isa.INSN_WORDS:
        raise ValueError(f"A program is a whole number of {isa.INSN_WORDS}-word instructions, "
                         f"not {len(words)} words")
    insns = [isa.from_words(list(words[i:i + isa.INSN_WORDS]))
             for i in range(0, len(words), isa.INSN_WORDS)]

    def flat(ins):
        return [w for word in ins for w in isa.to_words(word)]

    tries = 0
    changed = True
    while changed and tries < budget:
        changed = False
        i = 0
        while i < len(insns) and tries < budget:
            candidate = _without(insns, i, base)
            tries += 1
            if candidate and fails(flat(candidate)):
                insns, changed = candidate, True
            else:
                i += 1
        for i, word in enumerate(insns):
            smaller = _smaller_loop(word)
            if smaller is not None and tries < budget:
                tries += 1
                candidate = insns[:i] + [smaller] + insns[i + 1:]
                if fails(flat(candidate)):
                    insns, changed = candidate, True
    return flat(insns)


def describe(words):
    """Disassembly of a program's words (for failure messages)."""
    out = []
    for i in range(0, len(words), isa.INSN_WORDS):
        w = isa.from_words(words[i:i + isa.INSN_WORDS])
        try:
            op, f = isa.decode(w)
            out.append(f"{i:5d}: {op.name} {f}")
        except ValueError as e:
            out.append(f"{i:5d}: <{e.args[0]}>")
            break
    return "\n".join(out)
