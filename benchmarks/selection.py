"""Teacher labeling on the accelerator: cycles per sample, selection cycles and storage.

``python -m benchmarks.selection [--samples N --features F --hidden H --seed S] [--rtl] [--json]``
runs the teacher-labeling program (:func:`firmware.teacher_program.teacher_label_program`: per
chunk of ``lanes`` samples a DMA of the inputs, two GEMM/REQ layers, SMX probabilities, SELFEED;
then one SELOUT) on the golden machine for the default SoC (``spec.soc.DEFAULT_SOC``: its array and its selector,
C = 10, K = 100, P = 1) and reports the program's cycles (the RTL's cycle model), each unit's busy
cycles, the selection unit's share, the selected set's size in main memory and the check that it
equals :func:`golden.selection.select_offline` of the same probabilities. ``--rtl`` also runs a
small configuration on the SoC in Amaranth's simulator and checks its memory and cycle count
against golden. Exit status 1 on any mismatch.
"""

import json
import sys
import time

from spec import isa
from spec.isa import Unit
from spec.cli import ArgumentParser, positive_int, seed_int
from spec.soc import SocConfig, DEFAULT_SOC
from golden.machine import Machine
from firmware.teacher_program import random_teacher, selection_of, teacher_label_program

__all__ = ["measure", "main"]


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
        # SELFEED's duration depends on the selection it meets: the mean over the chunks (SEL's
        # busy cycles less the one SELCLR and the one SELOUT)
        selfeed_cycles_per_chunk=round((c["busy_sel"] - m.timing.duration(m, isa.Op.SELOUT, {})
                                        - m.timing.duration(m, isa.Op.SELCLR, {}))
                                       / -(-samples // L), 1),
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
        f"| SELFEED per chunk of {g['lanes']} (mean) | {g['selfeed_cycles_per_chunk']} cycles |",
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
    ap = ArgumentParser(prog="python -m benchmarks.selection", description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=positive_int, default=512)
    ap.add_argument("--features", type=positive_int, default=64)
    ap.add_argument("--hidden", type=positive_int, default=32)
    ap.add_argument("--seed", type=seed_int, default=1)
    ap.add_argument("--rtl", action="store_true", help="also run a small SoC in pysim")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    try:                                    # the program's memory plan, before it runs
        teacher_label_program(DEFAULT_SOC, a.samples, a.features, a.hidden)
    except ValueError as e:
        ap.error(f"{e} (--samples {a.samples}, --features {a.features}, --hidden {a.hidden})")
    g = measure(samples=a.samples, features=a.features, hidden=a.hidden, seed=a.seed)
    rt = measure_rtl(a.seed) if a.rtl else None
    print(json.dumps(dict(golden=g, rtl=rt)) if a.json else _table(g, rt))
    return 0 if g["ok"] and (rt is None or rt["ok"]) else 1


if __name__ == "__main__":
    sys.exit(main())
