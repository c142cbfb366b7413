"""Teacher labeling on the accelerator: cycles per sample, selection cycles and storage.

``python -m benchmarks.selection [--samples N --features F --hidden H --seed S] [--rtl] [--json]``
runs the teacher-labeling program (:func:`teacher_label_program`: per chunk of ``lanes``
samples a DMA of the inputs, two GEMM/REQ layers, SMX probabilities, SELFEED; then one SELOUT)
on the golden machine for the default SoC (``spec.soc.DEFAULT_SOC``: its array and its selector,
C = 10, K = 100, P = 1) and reports the program's cycles (the RTL's cycle model), each unit's busy
cycles, the selection unit's share, the selected set's size in main memory and the check that it
equals :func:`golden.selection.select_offline` of the same probabilities. ``--rtl`` also runs a
small configuration on the SoC in Amaranth's simulator and checks its memory and cycle count
against golden. Exit status 1 on any mismatch.
"""

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass

import torch

from spec import isa
from spec.isa import Cond, Unit
from spec.soc import SocConfig, DEFAULT_SOC
from spec.softmax_tables import INV_TEMP_ONE
from golden.machine import Machine
from golden.selection import select_offline
from firmware.asm import Assembler

__all__ = ["TeacherLayout", "teacher_label_program", "teacher_image", "measure", "main"]


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
    sel, C = soc.selector, soc.selector.classes
    probs = torch.tensor(mem[layout.probs:layout.probs + samples * C]).reshape(samples, C)
    probs = probs - ((probs >> 15) << 16)
    want = select_offline(probs, sel.k, sel.p, list(range(id_base, id_base + samples)))
    return isa.sel_out_unpack(mem[layout.sel:], sel), want


def measure(soc=DEFAULT_SOC, samples=512, features=64, hidden=32, seed=1):
    """Run on the golden machine; return a dict of figures (``ok``: the selection matches)."""
    program, layout, img = random_teacher(soc, samples, features, hidden, seed)
    m = Machine(soc)
    m.write_words(0, img)
    t0 = time.process_time()
    r = m.run()
    cpu = time.process_time() - t0
    mem = m.mem.tolist()
    got, want = selection_of(soc, mem, layout, samples)
    sel, L = soc.selector, soc.lanes
    words = isa.sel_out_words(sel, want.counts)
    c = m.counters
    return dict(
        array=f"{soc.config.array.rows}x{soc.config.array.cols}", lanes=L,
        selector=dict(classes=sel.classes, k=sel.k, p=sel.p, id_width=sel.id_width),
        samples=samples, features=features, hidden=hidden, error=r.error.name,
        cycles=r.cycles, cycles_per_sample=r.cycles / samples,
        busy={u.name.lower(): c[f"busy_{u.name.lower()}"] for u in Unit},
        selfeed_cycles_per_chunk=m.timing.duration(m, isa.Op.SELFEED, dict(samples=L)),
        selout_cycles=m.timing.duration(m, isa.Op.SELOUT, {}),
        selected=len(want.records), selout_words=words,
        bytes_per_selected=2 * isa.sel_record_words(sel, 16),
        softmax_bytes_per_sample=2 * sel.classes,
        golden_cpu_s=round(cpu, 2),
        ok=r.error == isa.Error.NONE and got == want.per_class,
    )


def measure_rtl(seed=1):
    """The small configuration of ``tests/test_selection_soc.py`` on the SoC (Amaranth pysim):
    memory and cycles against golden."""
    from spec.params import Config, ArrayConfig
    from spec.selection import SelectorConfig
    from spec.csr import Csr
    from sim.soc import run_program
    soc = SocConfig(config=Config(array=ArrayConfig(rows=4, cols=4)), mem_words=4096,
                    sp_banks=4, sp_depth=32, acc_banks=2, acc_depth=16,
                    selector=SelectorConfig(classes=4, k=3, p=2))
    samples = 16
    program, layout, img = random_teacher(soc, samples, 8, 8, seed)
    m = Machine(soc)
    m.write_words(0, img)
    r = m.run()
    t0 = time.perf_counter()
    rt = run_program(soc, img)
    wall = time.perf_counter() - t0
    cycles = rt["csr"][Csr.CYCLES_LO] | (rt["csr"][Csr.CYCLES_HI] << 32)
    got, want = selection_of(soc, rt["mem"], layout, samples)
    return dict(array="4x4", samples=samples, selector=dict(classes=4, k=3, p=2),
                cycles=cycles, golden_cycles=r.cycles, pysim_s=round(wall, 1),
                ok=rt["mem"] == m.mem.tolist() and cycles == r.cycles and got == want.per_class)


def _table(g, rt):
    s = g["selector"]
    lines = [
        f"Teacher labeling on the golden machine (cycle model of the RTL): {g['array']} array, "
        f"{g['features']}-{g['hidden']}-{s['classes']} teacher, {g['samples']} samples, "
        f"selector K={s['k']} P={s['p']}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| cycles | {g['cycles']} ({g['cycles_per_sample']:.1f} per sample) |",
        *(f"| busy {u} | {v} ({v / g['cycles']:.0%}) |" for u, v in g["busy"].items()),
        f"| SELFEED per chunk of {g['lanes']} | {g['selfeed_cycles_per_chunk']} cycles |",
        f"| SELOUT | {g['selout_cycles']} cycles, {g['selout_words']} words |",
        f"| selected | {g['selected']} samples, {g['bytes_per_selected']} bytes each "
        f"(softmax vector: {g['softmax_bytes_per_sample']} bytes) |",
        f"| == select_offline | {g['ok']} |",
        f"| golden CPU | {g['golden_cpu_s']} s |",
    ]
    if rt:
        lines += ["", f"SoC in Amaranth's simulator, {rt['array']}, {rt['samples']} samples: "
                      f"{rt['cycles']} cycles (golden {rt['golden_cycles']}), "
                      f"{rt['pysim_s']} s, bit-exact and == select_offline: {rt['ok']}"]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.selection",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rtl", action="store_true", help="also run a small SoC in pysim")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    g = measure(samples=a.samples, features=a.features, hidden=a.hidden, seed=a.seed)
    rt = measure_rtl(a.seed) if a.rtl else None
    print(json.dumps(dict(golden=g, rtl=rt)) if a.json else _table(g, rt))
    return 0 if g["ok"] and (rt is None or rt["ok"]) else 1


if __name__ == "__main__":
    sys.exit(main())
