"""Host-link throughput: link bytes per word and time per word of burst reads and writes.

``python -m benchmarks.hostlink [--divisor D] [--baud B] [--bursts 1,16,256] [--json]`` runs
BURST_WRITE and BURST_READ requests of each size through the RTL host link in Amaranth's Python
simulator, with the HostLink client: on the bridge's byte streams (bytes and bridge cycles per
exchange), and through the UARTs at divisor ``D`` (cycles from the request's first bit to the
response's last). Each read checks the words written. ``bytes_per_word`` counts both directions;
``words_per_s`` is the UART-level time per word scaled to ``B`` baud (a host that waits for each
response, as :class:`firmware.transport.HostLink` does). With ``--json`` the benchmark prints one
JSON object.

``--soc`` measures instead the whole SoC in the compiled simulator behind its simulated serial
port (:class:`sim.compiled.serial.SerialSocSim`, the bring-up's small configuration): all of main
memory written and read back with the HostLink client, the words per second that gives at
``B`` baud, and how fast the simulation ran (simulated cycles per wall-clock second).
"""

import json
import random
import sys

from rtl.uart import MIN_DIVISOR
from spec.cli import ArgumentParser, int_range, positive_int, positive_int_list
from spec.hostlink import Cmd, MAX_BURST_LIMIT, WORD_BYTES
from firmware.protocol import encode_request, encode_response, words_to_bytes
from sim.hostlink import LinkHarness, PysimLink

__all__ = ["measure", "main"]


def _exchange(link, frame, rsp_len):
    """Cycles from sending ``frame`` until its ``rsp_len``-byte response has been received."""
    link.run(1)
    start = link.cycle
    link.write(frame)
    got = link.read(rsp_len, 1.0)
    if len(got) != rsp_len:
        raise RuntimeError(f"no response to {frame[:2].hex()}...")
    return link.last_byte_cycle - start, got


def measure(bursts=(1, 16, 256), divisor=4, seed=1):
    """One row per (command, burst): bytes each way, byte-level cycles, UART-level cycles."""
    max_burst = max(bursts)
    mem_words = 2 * max_burst
    rng = random.Random(seed)
    links = {"bytes": PysimLink(LinkHarness(mem_words, max_burst=max_burst, timeout=1000)),
             "uart": PysimLink(LinkHarness(mem_words, divisor=divisor, max_burst=max_burst))}
    rows = []
    for n in bursts:
        words = [rng.randrange(1 << 16) for _ in range(n)]
        frames = {
            Cmd.BURST_WRITE: (encode_request(Cmd.BURST_WRITE, addr=1,
                                             payload=words_to_bytes(words)),
                              encode_response(Cmd.BURST_WRITE, 0, 0)),
            Cmd.BURST_READ: (encode_request(Cmd.BURST_READ, addr=1,
                                            payload=n.to_bytes(WORD_BYTES, "little")),
                             encode_response(Cmd.BURST_READ, 0, 0, words_to_bytes(words))),
        }
        for cmd, (req, rsp) in frames.items():
            row = dict(command=cmd.name, words=n, request_bytes=len(req), response_bytes=len(rsp),
                       bytes_per_word=(len(req) + len(rsp)) / n)
            for kind, link in links.items():
                cycles, got = _exchange(link, req, len(rsp))
                if got != rsp:
                    raise RuntimeError(f"{cmd.name} of {n} words: wrong response on {kind}")
                row[f"{kind}_cycles"] = cycles
            row["uart_bit_times_per_word"] = row["uart_cycles"] / divisor / n
            rows.append(row)
    return rows


def measure_soc(divisor=4, seed=1):
    """All of the small SoC's main memory written and read back through its UART pins."""
    import time
    import numpy as np
    from firmware.bringup import SMALL_SOC, SIM_OPTIONS
    from firmware.transport import HostLink, SerialTransport
    from sim.compiled.serial import SerialSocSim
    with SerialSocSim(SMALL_SOC, divisor=divisor, **SIM_OPTIONS) as dut:
        link = HostLink(SerialTransport(dut.port), timeout=0.05)
        n = SMALL_SOC.mem_words
        words = np.random.default_rng(seed).integers(0, 1 << 16, n).tolist()
        row = {"words": n, "divisor": divisor}
        for what, fn in (("write", lambda: link.write_words(0, words)),
                         ("read", lambda: link.read_words(0, n))):
            cycles, wall = dut.sim.cycle, time.perf_counter()
            got = fn()
            cycles, wall = dut.sim.cycle - cycles, time.perf_counter() - wall
            if what == "read" and got != words:
                raise RuntimeError("the words read back differ from those written")
            row[f"{what}_bit_times_per_word"] = cycles / divisor / n
            row[f"{what}_sim_cycles_per_s"] = cycles / wall
        if not np.array_equal(dut.read_memory(), words):
            raise RuntimeError("main memory differs from the words written")
    return row


def main(argv=None):
    p = ArgumentParser(prog="python -m benchmarks.hostlink", description=__doc__.split("\n")[0])
    p.add_argument("--divisor", type=int_range(MIN_DIVISOR), default=4,
                   help=f"UART clock cycles per bit (at least {MIN_DIVISOR})")
    p.add_argument("--baud", type=positive_int, default=115200)
    p.add_argument("--bursts", type=positive_int_list,
                   help=f"comma-separated burst lengths, each at most {MAX_BURST_LIMIT} "
                        f"(default 1,16,256)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--soc", action="store_true",
                   help="through the whole SoC in the compiled simulator (its UART pins)")
    args = p.parse_args(argv)
    if args.bursts is not None and args.soc:
        p.error("--bursts is not for --soc (it moves all of main memory)")
    bursts = args.bursts or (1, 16, 256)
    if max(bursts) > MAX_BURST_LIMIT:
        p.error(f"argument --bursts: each burst must be at most {MAX_BURST_LIMIT}, "
                f"not {max(bursts)}")
    if args.soc:
        r = measure_soc(args.divisor)
        for what in ("write", "read"):
            r[f"{what}_words_per_s"] = args.baud / r[f"{what}_bit_times_per_word"]
        if args.json:
            print(json.dumps({"baud": args.baud, **r}))
            return 0
        print(f"SoC (compiled, {r['words']} words, divisor {r['divisor']}), HostLink client:")
        for what in ("write", "read"):
            print(f"  {what:5s} {r[what + '_bit_times_per_word']:6.1f} bit times/word = "
                  f"{r[what + '_words_per_s']:>9,.0f} words/s at {args.baud} baud  "
                  f"(simulated {r[what + '_sim_cycles_per_s']:,.0f} cycles/s)")
        return 0
    rows = measure(bursts, args.divisor)
    for r in rows:
        r["words_per_s"] = args.baud / r["uart_bit_times_per_word"]
    if args.json:
        print(json.dumps({"divisor": args.divisor, "baud": args.baud, "rows": rows}))
        return 0
    print(f"{'command':<12} {'words':>5} {'req B':>6} {'rsp B':>6} {'B/word':>7} "
          f"{'bridge cyc':>10} {'UART cyc':>9} {'bits/word':>9} {'words/s @' + str(args.baud):>16}")
    for r in rows:
        print(f"{r['command']:<12} {r['words']:>5} {r['request_bytes']:>6} "
              f"{r['response_bytes']:>6} "
              f"{r['bytes_per_word']:>7.2f} {r['bytes_cycles']:>10} {r['uart_cycles']:>9} "
              f"{r['uart_bit_times_per_word']:>9.1f} {r['words_per_s']:>16.0f}")
    print(f"(bridge cyc: byte-stream level, one byte per cycle; UART cyc: divisor {args.divisor})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
