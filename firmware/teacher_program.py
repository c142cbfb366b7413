"""A hand-written teacher-labeling program: a two-layer teacher labels samples on the device and
the selector keeps the best of them (``SELCLR``, per chunk of ``lanes`` samples a DMA of the
inputs, two ``GEMM``/``REQ`` layers, ``SMX`` probabilities, ``SELFEED``; then one ``SELOUT``).

The compiler's ``select`` program (:class:`firmware.compiler.CompiledMLP`) is the general one;
this one is small and self-contained (program, data layout and memory image): the selection
benchmark (``benchmarks/selection.py``) measures it and the SoC's selection tests
(``tests/test_selection_soc.py``) run it on the RTL against golden.
"""

import random
from dataclasses import dataclass

import torch

from spec import isa
from spec.isa import Cond
from spec.soc import SocConfig
from spec.softmax_tables import INV_TEMP_ONE
from .asm import Assembler

__all__ = ["TeacherLayout", "teacher_label_program", "teacher_image", "random_teacher",
           "selection_of"]


@dataclass(frozen=True)
class TeacherLayout:
    """Where :func:`teacher_label_program` expects and leaves its data (main-memory word
    addresses): ``w1``/``w2`` the weights as GEMM panels (see :func:`teacher_image`), ``x`` the
    inputs (sample-major, ``features`` words per sample), ``probs`` the probabilities it stores
    (sample-major, ``C`` words per sample), ``sel`` the selected set (``spec.isa.sel_out_pack``),
    ``check`` a copy of the set's first word read back by LDW after SELOUT."""
    w1: int
    w2: int
    x: int
    probs: int
    sel: int
    check: int
    end: int


def _ceil(a, b):
    return -(-a // b)


def teacher_label_program(soc, samples, features, hidden, *, id_base=0, shifts=(7, 6),
                          z_frac=8, program_words=1024):
    """A program that teacher-labels ``samples`` inputs and selects from them on the device.

    The teacher is ``x → relu(x·W1 >> s1) → (·W2 >> s2) = logits`` in the operand format; the
    program runs it ``lanes`` samples at a time (samples on lanes, features/units/classes on
    rows), turns the logits into probabilities (SMX mode 0, ``z_frac`` fraction bits, T = 1),
    feeds them to the selector as samples ``id_base + i`` and stores them; after the last chunk
    it writes the selection (SELOUT) and reads its first word back (LDW, then STW to ``check``).

    Returns
    -------
    (Assembler, TeacherLayout)
        The program (at address 0) and its data layout (after ``program_words``).

    Raises
    ------
    ValueError
        If ``samples`` is not a positive multiple of the lanes, ``hidden`` not a multiple of the
        array rows, or the operands do not fit the scratchpads or main memory.
    """
    if not isinstance(soc, SocConfig) or soc.selector is None:
        raise ValueError("Teacher labeling needs a SocConfig with a selector")
    L, R, C = soc.lanes, soc.config.array.rows, soc.selector.classes
    if samples < 1 or samples % L:
        raise ValueError(f"Samples must be a positive multiple of {L}, not {samples!r}")
    if hidden % R:
        raise ValueError(f"Hidden units must be a multiple of {R}, not {hidden!r}")
    mt1, mt2 = hidden // R, _ceil(C, R)
    d, ad = soc.sp_depth, soc.acc_depth
    if (mt1 * features + mt2 * hidden > d or features > d or hidden > d or mt2 * R + C > d
            or max(mt1, mt2) * R > ad or soc.sp_banks < 4 or soc.acc_banks < 2):
        raise ValueError("Teacher does not fit the scratchpads")
    w1 = program_words
    w2 = w1 + mt1 * features * R
    x = w2 + mt2 * hidden * R
    probs = x + samples * features
    sel = probs + samples * C
    check = sel + isa.sel_out_max_words(soc.selector, soc.config.array.operand_width)
    layout = TeacherLayout(w1, w2, x, probs, sel, check, check + 2)
    if layout.end > soc.mem_words:
        raise ValueError("Teacher does not fit main memory")

    sp_w1, sp_w2, sp_x, sp_h, sp_z = 0, mt1 * features, d, 2 * d, 3 * d
    sp_p = sp_z + mt2 * R
    p = Assembler()
    load = dict(direction=0, space=0, transpose=0, elem_words=1)
    p.selclr()
    p.dma(**load, rm=0, mem_off=w1, sp_row=sp_w1, rows=mt1 * features, cols=R, stride=R)
    p.dma(**load, rm=0, mem_off=w2, sp_row=sp_w2, rows=mt2 * hidden, cols=R, stride=R)
    p.seti(rd=3, imm=id_base)
    p.seti(rd=4, imm=x)
    p.seti(rd=5, imm=probs)
    p.seti(rd=1, imm=samples // L)
    p.label("chunk")
    p.dma(**dict(load, transpose=1), rm=4, mem_off=0, sp_row=sp_x, rows=L, cols=features,
          stride=features)
    p.gemm(a_row=sp_w1, b_row=sp_x, c_row=0, k=features, mt=mt1, nt=1, a_ps=features, b_ps=0,
           c_ps=0, accumulate=0)
    p.req(src=0, dst=sp_h, rows=hidden, lanes=L, shift=shifts[0], relu=1, rounding=0,
          mask_en=0, mask_row=0)
    p.gemm(a_row=sp_w2, b_row=sp_h, c_row=ad, k=hidden, mt=mt2, nt=1, a_ps=hidden, b_ps=0,
           c_ps=0, accumulate=0)
    p.req(src=ad, dst=sp_z, rows=C, lanes=L, shift=shifts[1], relu=0, rounding=0, mask_en=0,
          mask_row=0)
    p.smx(mode=0, z_row=sp_z, t_row=0, dst=sp_p, classes=C, samples=L, z_frac=z_frac,
          grad_shift=0, inv_temp=INV_TEMP_ONE)
    p.selfeed(prob_row=sp_p, samples=L, rid=3)
    p.dma(direction=1, space=0, transpose=1, elem_words=1, rm=5, mem_off=0, sp_row=sp_p,
          rows=L, cols=C, stride=C)
    p.addi(rd=3, rs=3, imm=L)
    p.addi(rd=4, rs=4, imm=L * features)
    p.addi(rd=5, rs=5, imm=L * C)
    p.addi(rd=1, rs=1, imm=-1)
    p.br(cond=Cond.NE, rs1=1, rs2=0, target="chunk")
    p.seti(rd=6, imm=sel)
    p.selout(rm=6, mem_off=0)
    p.ldw(rd=7, rs=6, imm=0)
    p.stw(rt=7, rs=0, imm=check)
    p.halt()
    if len(p.words()) > program_words:
        raise ValueError("Teacher program does not fit its words")
    return p, layout


def teacher_image(soc, program, layout, w1, w2, x, *, fill=0xA5A5):
    """Main-memory image for :func:`teacher_label_program`: the program, ``w1`` (features ×
    hidden) as panels of ``R`` hidden units (panel ``i``, row ``f``, lane ``r`` =
    ``w1[f][i·R + r]``), ``w2`` (hidden × C) as panels of ``R`` classes (zero-padded), ``x``
    (samples × features), every other word above the inputs = ``fill`` (sentinels)."""
    R, C = soc.config.array.rows, soc.selector.classes
    img = [0] * soc.mem_words
    words = program.words()
    img[:len(words)] = words
    F, H = len(w1), len(w1[0])
    img[layout.w1:layout.w2] = [w1[f][i * R + r] & 0xFFFF
                                for i in range(H // R) for f in range(F) for r in range(R)]
    img[layout.w2:layout.x] = [(w2[h][i * R + r] if i * R + r < C else 0) & 0xFFFF
                               for i in range(_ceil(C, R)) for h in range(H) for r in range(R)]
    flat = [v & 0xFFFF for row in x for v in row]
    img[layout.x:layout.x + len(flat)] = flat
    img[layout.probs:] = [fill] * (soc.mem_words - layout.probs)
    return img


def random_teacher(soc, samples, features, hidden, seed, *, id_base=0):
    """A random teacher (weights in ±64, inputs in ±256) and its program and image."""
    rng = random.Random(seed)
    C = soc.selector.classes
    program, layout = teacher_label_program(soc, samples, features, hidden, id_base=id_base)
    w1 = [[rng.randint(-64, 64) for _ in range(hidden)] for _ in range(features)]
    w2 = [[rng.randint(-64, 64) for _ in range(C)] for _ in range(hidden)]
    x = [[rng.randint(-256, 256) for _ in range(features)] for _ in range(samples)]
    return program, layout, teacher_image(soc, program, layout, w1, w2, x)


def selection_of(soc, mem, layout, samples, id_base=0):
    """(selection read from memory, select_offline of the stored probabilities)."""
    from golden.selection import select_offline
    sel, C = soc.selector, soc.selector.classes
    probs = torch.tensor(mem[layout.probs:layout.probs + samples * C]).reshape(samples, C)
    probs = probs - ((probs >> 15) << 16)
    want = select_offline(probs, sel.k, sel.p, list(range(id_base, id_base + samples)))
    return isa.sel_out_unpack(mem[layout.sel:], sel), want
