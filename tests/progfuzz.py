"""Random programs for differential tests of the SoC against the golden machine.

`valid_program(rng, soc)` makes a program of random legal instructions (every unit, the selection
instructions when the SoC has a selector, random shapes, loops, rounding modes, formats) whose data region is random; `invalid_program(rng, soc)` makes a
valid prefix followed by one illegal instruction. Both return `(words, entry, data_region)`.
"""

import random

from spec import isa
from spec.isa import Op, Cond, Unit
from spec.softmax_tables import INV_TEMP_ONE
from firmware.asm import Assembler

__all__ = ["valid_program", "invalid_program", "random_image", "describe"]


def _rows(rng, soc, bank, n, space="sp"):
    depth = soc.sp_depth if space == "sp" else soc.acc_depth
    n = min(n, depth)
    return bank * depth + rng.randrange(0, depth - n + 1), n


def random_instruction(rng, soc, data_lo, data_hi):
    """One random legal unit instruction (as (op, fields))."""
    L, R, C = soc.lanes, soc.config.array.rows, soc.config.array.cols
    nb, na = soc.sp_banks, soc.acc_banks
    kinds = ["DMA", "DMA", "GEMM", "REQ", "RELUB", "SGD", "FILL", "SMX"]
    if soc.selector is not None:
        kinds += ["SELCLR", "SELFEED", "SELFEED", "SELOUT"]
    kind = rng.choice(kinds)
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
        return Op.RELUB, dict(g_row=_rows(rng, soc, bg, n)[0], mask_row=_rows(rng, soc, bm, n)[0],
                              dst=_rows(rng, soc, rng.randrange(nb), n)[0], rows=n,
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


def invalid_program(rng, soc):
    """A short valid prefix followed by an illegal instruction (returns the program's words)."""
    p = valid_program(rng, soc, n=rng.randint(0, 3))
    words = p.words()[:-8]                  # drop HALT
    kinds = ["opcode", "unused", "range", "dma", "bank", "field"]
    if soc.selector is not None:
        kinds += ["selout", "selfeed"]
    kind = rng.choice(kinds)
    if kind == "opcode":
        bad = rng.choice([0, 0x7F, 0xFF])
    elif kind == "unused":
        bad = isa.encode(Op.HALT) | (1 << rng.randrange(isa.OPCODE_BITS + 1, 128))
    elif kind == "range":
        bad = isa.encode(Op.FILL, space=0, dst=soc.sp_rows - 1, rows=2, value=0)
    elif kind == "dma":
        bad = isa.encode(Op.DMA, direction=1, space=0, transpose=0, elem_words=1, rm=0,
                         mem_off=soc.mem_words - 2, sp_row=0, rows=1, cols=4, stride=4)
    elif kind == "bank":
        bad = isa.encode(Op.GEMM, a_row=0, b_row=1, c_row=0, k=2, mt=1, nt=1, a_ps=2, b_ps=2,
                         c_ps=0, accumulate=0)
    elif kind == "selout":
        bad = isa.encode(Op.SELOUT, rm=0, mem_off=soc.mem_words - rng.randint(1, 3))
    elif kind == "selfeed" and soc.selector.classes > 1 and rng.random() < 0.5:
        bad = isa.encode(Op.SELFEED, prob_row=soc.sp_rows - 1, samples=1, rid=1)
    elif kind == "selfeed":
        bad = isa.encode(Op.SELFEED, prob_row=0, samples=rng.choice([0, soc.lanes + 1]), rid=1)
    else:
        bad = isa.encode(Op.REQ, src=0, dst=0, rows=1, lanes=0, shift=0, relu=0, rounding=0,
                         mask_en=0, mask_row=0)
    return words + isa.to_words(bad)


def random_image(rng, soc, program_words):
    """Main-memory image: the program at 0, random data above it."""
    img = [rng.randrange(1 << 16) for _ in range(soc.mem_words)]
    img[:len(program_words)] = program_words
    # keep the gap between program and data zero (a runaway program hits opcode 0)
    for i in range(len(program_words), soc.mem_words // 2):
        img[i] = 0
    return img


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
