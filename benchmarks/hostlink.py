"""Host-link throughput: link bytes per word and time per word of burst reads and writes.

``python -m benchmarks.hostlink [--divisor D] [--baud B] [--bursts 1,16,256] [--json]`` runs
BURST_WRITE and BURST_READ requests of each size through the RTL host link in Amaranth's Python
simulator, with the HostLink client: on the bridge's byte streams (bytes and bridge cycles per
exchange), and through the UARTs at divisor ``D`` (cycles from the request's first bit to the
response's last). Each read checks the words written. ``bytes_per_word`` counts both directions;
``words_per_s`` is the UART-level time per word scaled to ``B`` baud (a host that waits for each
response, as :class:`firmware.transport.HostLink` does). With ``--json`` the benchmark prints one
JSON object.
"""

import argparse
import json
import random
import sys

from spec.hostlink import Cmd, WORD_BYTES
from firmware.protocol import encode_request, encode_response, words_to_bytes
from rtl.hostlink_sim import LinkHarness, PysimLink

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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--divisor", type=int, default=4)
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--bursts", default="1,16,256")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = measure(tuple(int(x) for x in args.bursts.split(",")), args.divisor)
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
