# amaranth: UnusedElaboratable=no
"""The RTL host-link bridge against its golden model (golden.hostlink.BridgeModel): every
command, every fault, the timeout's exact boundary, random corrupted traffic, and the HostLink
client driving the RTL — on the byte streams (fast) and through the UARTs."""

import random

import pytest
from amaranth.hdl import Module, Signal

from spec.csr import CSR_COUNT, Csr
from spec.hostlink import Cmd, Status
from golden.hostlink import BridgeModel
from firmware.protocol import encode_request, words_to_bytes, split_responses, crc16
from firmware.transport import HostLink as Client, HostLinkStatusError
from rtl.hostlink import HostLinkBridge, HostLink, crc16_next
from sim.hostlink import LinkHarness, PysimLink
from tests.simutil import run_sim, corrupt_frame

MEM = 128           # words of main memory in these tests
BURST = 8           # max_burst
TIMEOUT = 40        # inter-byte timeout, cycles


class Bench:
    """A simulated device and the golden model, fed the same bytes; checks they answer alike."""

    def __init__(self, seed, *, latency=1, stall_rate=0.0, p_ready=1.0, p_valid=1.0, max_gap=0,
                 mem=MEM, burst=BURST, timeout=TIMEOUT, **kw):
        rng = random.Random(seed)
        self.seed = seed
        image = [rng.randrange(1 << 16) for _ in range(mem)]
        self.harness = LinkHarness(mem, max_burst=burst, timeout=timeout, latency=latency,
                                   stall_rate=stall_rate, seed=seed + 1, init=image)
        self.link = PysimLink(self.harness, p_ready=p_ready, p_valid=p_valid, max_gap=max_gap,
                              seed=seed, **kw)
        self.model = BridgeModel(mem, max_burst=burst, memory=image)
        self.timeout = timeout
        csrs = [rng.randrange(1 << 32) for _ in range(CSR_COUNT)]
        self.model.csrs[:] = csrs
        self.link.call(lambda ctx: [ctx.set(r, v) for r, v in zip(self.harness.csrs, csrs)])

    def send(self, data, *, idle=False):
        """Send ``data`` (then an idle gap past the timeout); return the responses, after
        checking the RTL's bytes equal the model's."""
        self.link.write(data)
        expected = self.model.feed(data)
        if idle:
            self.link.gap(self.timeout + 3)
            expected += self.model.idle()
        got = self.link.read(len(expected), 2e-6 * (200 + 20 * len(data) + 20 * len(expected)))
        assert got == expected, f"seed {self.seed}: RTL {got.hex()} != model {expected.hex()}"
        return split_responses(got)

    def check_state(self, what=""):
        assert self.link.memory() == self.model.memory, f"seed {self.seed} {what}: memory"
        assert self.link.csrs() == self.model.csrs, f"seed {self.seed} {what}: CSRs"

    def check_quiet(self):
        """Everything was sent and nothing more comes out (no hang, no spurious response)."""
        assert self.link.drain(10 * self.timeout), f"seed {self.seed}: input not consumed"
        self.link.run(4 * self.timeout)
        assert self.link.received() == b"", f"seed {self.seed}: unexpected bytes"


# -- parameters and the CRC ------------------------------------------------------------------

def test_parameter_validation():
    with pytest.raises(ValueError, match=r"^Main memory size must be a positive integer, not 0$"):
        HostLinkBridge(0)
    with pytest.raises(TypeError, match=r"^Main memory size must be a positive integer, not '8'$"):
        HostLinkBridge("8")
    with pytest.raises(ValueError, match=r"^Main memory size must be less than 2\*\*32"):
        HostLinkBridge(1 << 32)
    with pytest.raises(ValueError, match=r"^Maximum burst must be a positive integer, not 0$"):
        HostLinkBridge(64, max_burst=0)
    with pytest.raises(ValueError, match=r"^Maximum burst must be at most 32767, not 32768$"):
        HostLinkBridge(64, max_burst=32768)
    with pytest.raises(ValueError, match=r"^Timeout must be a positive integer, not 0$"):
        HostLinkBridge(64, timeout=0)
    with pytest.raises(ValueError, match=rf"^CSR count must be at least {len(Csr)}, not 4$"):
        HostLinkBridge(64, csr_count=4)
    with pytest.raises(ValueError, match=r"^UART divisor must be at least 4, not 2$"):
        HostLink(64, divisor=2)
    b = HostLinkBridge(1000, max_burst=16, timeout=99, csr_count=40)
    assert (b.mem_words, b.max_burst, b.timeout, b.csr_count) == (1000, 16, 99, 40)
    assert b.bus.signature.addr_width == 10 and len(b.csr_addr) == 6
    assert HostLink(64, divisor=10).timeout == 1000 * 10 * 10


def test_crc16_next_matches_golden():
    seed = 5
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc, byte))

    async def tb(ctx):
        rng = random.Random(seed)
        for c, b in [(0xFFFF, 0), (0, 0xFF), (0x8000, 0x80)] + \
                [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(200)]:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc16(bytes([b]), c), f"seed {seed}: {c:#x} {b:#x}"

    run_sim(m, tb, clock=None)


# -- every command ---------------------------------------------------------------------------

@pytest.mark.parametrize("latency, stall_rate, p_ready, p_valid",
                         [(1, 0.0, 1.0, 1.0), (3, 0.4, 0.4, 0.6)])
def test_every_command(latency, stall_rate, p_ready, p_valid):
    """Each command, edge addresses included, RTL == model byte for byte; memory and CSRs too.
    Second case: memory latency 3 with random stalls, random gaps and back-pressure."""
    seed = 10 + latency
    b = Bench(seed, latency=latency, stall_rate=stall_rate, p_ready=p_ready, p_valid=p_valid,
              max_gap=5)
    b.link.call(lambda ctx: (ctx.set(b.harness.link.rx_framing_errors, 7),
                             ctx.set(b.harness.link.rx_overruns, 0xFFFF)))
    b.model.rx_framing_errors, b.model.rx_overruns = 7, 0xFFFF
    words = [0x0000, 0xFFFF, 0x8000, 0x7FFF, 0x1234, 0xA5A5, 0x5A5A, 0x00A5]
    requests = [
        (Cmd.PING, 0, b""),
        (Cmd.WRITE, 0, words_to_bytes([0xA5A5])),
        (Cmd.WRITE, MEM - 1, words_to_bytes([0xFFFF])),
        (Cmd.READ, 0, b""),
        (Cmd.READ, MEM - 1, b""),
        (Cmd.BURST_WRITE, MEM - BURST, words_to_bytes(words)),
        (Cmd.BURST_WRITE, 17, words_to_bytes(words[:3])),
        (Cmd.BURST_READ, MEM - BURST, BURST.to_bytes(2, "little")),
        (Cmd.BURST_READ, 16, (5).to_bytes(2, "little")),
        (Cmd.BURST_READ, 0, (1).to_bytes(2, "little")),
        (Cmd.CSR_WRITE, Csr.ENTRY, (0xDEADBEEF).to_bytes(4, "little")),
        (Cmd.CSR_WRITE, CSR_COUNT - 1, (1).to_bytes(4, "little")),
        (Cmd.CSR_READ, Csr.ENTRY, b""),
        (Cmd.CSR_READ, CSR_COUNT - 1, b""),
        (Cmd.START, MEM - 8, b""),
        (Cmd.CSR_READ, Csr.CTRL, b""),
        (Cmd.STATUS, 0, b""),
    ]
    for i, (cmd, addr, payload) in enumerate(requests):
        (rsp,) = b.send(encode_request(cmd, seq=i, addr=addr, payload=payload))
        assert (rsp.cmd, rsp.seq, rsp.status) == (cmd, i, Status.OK), f"seed {seed}"
    b.check_state()
    assert b.model.memory[MEM - BURST:] == words and b.model.memory[17:20] == words[:3]
    assert b.model.csrs[Csr.ENTRY] == MEM - 8 and b.model.csrs[Csr.CTRL] == 1
    b.check_quiet()


def test_start_writes_entry_then_ctrl():
    """START is two CSR writes in consecutive cycles: ENTRY, then CTRL = 1."""
    b = Bench(20, record_csr=True)
    b.send(encode_request(Cmd.START, addr=40))
    b.send(encode_request(Cmd.CSR_WRITE, addr=9, payload=b"\x01\x02\x03\x04"))
    (c0, i0, v0), (c1, i1, v1), (_, i2, v2) = b.link.csr_writes
    assert (i0, v0, i1, v1, c1 - c0) == (Csr.ENTRY, 40, Csr.CTRL, 1, 1)
    assert (i2, v2) == (9, 0x04030201)


# -- faults ----------------------------------------------------------------------------------

def _flip(frame, index, bit):
    frame = bytearray(frame)
    frame[index] ^= 1 << bit
    return bytes(frame)


_BURST_W = encode_request(Cmd.BURST_WRITE, seq=1, addr=8, payload=words_to_bytes(range(1, 9)))

FAULTS = {
    # name: (bytes, idle gap after them, expected statuses)
    "bad_crc_payload": (_flip(_BURST_W, 12, 3), False, [Status.BAD_CRC]),
    "bad_crc_header": (_flip(_BURST_W, 5, 0), False, [Status.BAD_CRC]),   # address bit
    "bad_crc_field": (_flip(_BURST_W, len(_BURST_W) - 1, 7), False, [Status.BAD_CRC]),
    "truncated": (_BURST_W[:-5], True, [Status.TIMEOUT]),
    "truncated_header": (_BURST_W[:4], True, [Status.TIMEOUT]),
    "unknown_command": (encode_request(0x7E, addr=3, payload=b"\0\0"), False, [Status.BAD_CMD]),
    "bad_length": (encode_request(Cmd.WRITE, addr=3, payload=b"\0" * 4), False,
                   [Status.BAD_LENGTH]),
    "zero_burst": (encode_request(Cmd.BURST_READ, payload=b"\0\0"), False, [Status.BAD_LENGTH]),
    "odd_burst_write": (encode_request(Cmd.BURST_WRITE, payload=b"\0" * 5), False,
                        [Status.BAD_LENGTH]),
    "write_past_end": (encode_request(Cmd.BURST_WRITE, addr=MEM - 2,
                                      payload=words_to_bytes([1, 2, 3])), False, [Status.BAD_ADDR]),
    "write_out_of_map": (encode_request(Cmd.WRITE, addr=1 << 31, payload=b"\1\0"), False,
                         [Status.BAD_ADDR]),
    "read_out_of_map": (encode_request(Cmd.READ, addr=MEM), False, [Status.BAD_ADDR]),
    "csr_out_of_map": (encode_request(Cmd.CSR_WRITE, addr=CSR_COUNT, payload=b"\1\0\0\0"), False,
                       [Status.BAD_ADDR]),
    "start_out_of_map": (encode_request(Cmd.START, addr=MEM), False, [Status.BAD_ADDR]),
    "over_long_write": (encode_request(Cmd.BURST_WRITE, payload=words_to_bytes(range(BURST + 1))),
                        False, [Status.TOO_LONG]),
    "over_long_read": (encode_request(Cmd.BURST_READ, payload=(BURST + 1).to_bytes(2, "little")),
                       False, [Status.TOO_LONG]),
    "garbage": (bytes([0x00, 0xFF, 0x5A, 0x13, 0x37] * 3), False, []),
    "garbage_with_sync": (bytes([0x00, 0xA5, 0x05, 0x00, 0xFF, 0xFF]), True, [Status.TIMEOUT]),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault(fault):
    """The fault gets its error response, the full memory image and every CSR are unchanged,
    and the next valid frame succeeds."""
    data, idle, statuses = FAULTS[fault]
    b = Bench(30)
    before = b.link.memory(), b.link.csrs()
    rsps = b.send(data, idle=idle)
    assert [r.status for r in rsps] == statuses, fault
    assert all(r.payload == b"" for r in rsps)
    assert (b.link.memory(), b.link.csrs()) == before, fault
    (ok,) = b.send(_BURST_W)
    assert ok.status == Status.OK
    (rd,) = b.send(encode_request(Cmd.BURST_READ, addr=8, payload=b"\x08\0"))
    assert rd.words == list(range(1, 9))
    (st,) = b.send(encode_request(Cmd.STATUS))
    assert st.words[2] == len(statuses)                  # frame_errors counted each rejection
    b.check_state(fault)
    b.check_quiet()


def test_timeout_boundary():
    """A gap of ``timeout - 1`` cycles inside a frame is tolerated; ``timeout`` cycles cut it."""
    b = Bench(40, timeout=TIMEOUT)
    frame = encode_request(Cmd.WRITE, seq=3, addr=5, payload=b"\x34\x12")
    for cut in (1, 6, 10):
        b.link.write(frame[:cut])
        b.link.gap(TIMEOUT - 1)
        b.link.write(frame[cut:])
        (rsp,) = split_responses(b.link.read(8, 1e-3))
        assert rsp.status == Status.OK, cut
        b.link.write(frame[:cut])
        b.link.gap(TIMEOUT)
        (rsp,) = split_responses(b.link.read(8, 1e-3))
        assert rsp.status == Status.TIMEOUT, cut
        b.link.write(frame[cut:])        # now garbage: the CRC bytes could hold a sync byte
        b.link.gap(TIMEOUT + 2)
        b.link.run(2 * TIMEOUT)
        b.link.received()
    assert b.link.memory()[5] == 0x1234


# -- random corrupted traffic ----------------------------------------------------------------

def _valid_request(rng, seq):
    """A random well-formed request; returns (frame, memory writes, CSR writes)."""
    cmd = rng.choice(list(Cmd))
    n = rng.randint(1, BURST)
    addr, payload, mem_w, csr_w = 0, b"", {}, {}
    if cmd in (Cmd.READ, Cmd.WRITE):
        addr = rng.randrange(MEM)
    elif cmd in (Cmd.BURST_READ, Cmd.BURST_WRITE):
        addr = rng.randint(0, MEM - n)
    elif cmd in (Cmd.CSR_READ, Cmd.CSR_WRITE):
        addr = rng.randrange(CSR_COUNT)
    elif cmd == Cmd.START:
        addr = rng.randrange(MEM)
        csr_w = {Csr.ENTRY: addr, Csr.CTRL: 1}
    if cmd == Cmd.WRITE:
        w = [rng.randrange(1 << 16)]
        payload, mem_w = words_to_bytes(w), {addr: w[0]}
    elif cmd == Cmd.BURST_WRITE:
        w = [rng.randrange(1 << 16) for _ in range(n)]
        payload, mem_w = words_to_bytes(w), dict(zip(range(addr, addr + n), w))
    elif cmd == Cmd.BURST_READ:
        payload = n.to_bytes(2, "little")
    elif cmd == Cmd.CSR_WRITE:
        v = rng.randrange(1 << 32)
        payload, csr_w = v.to_bytes(4, "little"), {addr: v}
    return encode_request(cmd, seq=seq, addr=addr, payload=payload), mem_w, csr_w


def _semantic_error(rng):
    """A frame with a good CRC that the bridge must reject."""
    kind = rng.randrange(4)
    if kind == 0:
        return encode_request(rng.choice([0, 0x0A, 0x7F, 0xFF]), addr=rng.randrange(MEM))
    if kind == 1:
        return encode_request(Cmd.READ, addr=rng.randrange(MEM), payload=b"\0" * rng.randint(1, 4))
    if kind == 2:
        n = BURST + rng.randint(1, 3)
        return encode_request(Cmd.BURST_WRITE, payload=words_to_bytes([0xAAAA] * n))
    n = rng.randint(1, BURST)
    return encode_request(Cmd.BURST_WRITE, addr=rng.randint(MEM - n + 1, MEM + 100),
                          payload=words_to_bytes([0x5555] * n))


def run_fuzz(seed, events, **kw):
    """Random valid, corrupted and invalid frames and garbage. The RTL answers exactly as the
    model; every valid frame succeeds; memory and CSRs equal what the valid frames alone make of
    them (0 corruption); nothing hangs (each exchange has a bounded deadline)."""
    rng = random.Random(seed)
    b = Bench(seed, **kw)
    memory, csrs = list(b.model.memory), list(b.model.csrs)
    bad = 0
    for i in range(events):
        r = rng.random()
        bad += r >= 0.5
        if r < 0.5:
            frame, mem_w, csr_w = _valid_request(rng, i & 0xFF)
            (rsp,) = b.send(frame)
            assert rsp.status == Status.OK and rsp.seq == i & 0xFF, f"seed {seed}, event {i}"
            for a, v in mem_w.items():
                memory[a] = v
            for a, v in csr_w.items():
                csrs[a] = v
        elif r < 0.85:
            frame = _valid_request(rng, i & 0xFF)[0]
            rsps = b.send(corrupt_frame(rng, frame), idle=True)
            assert all(x.status != Status.OK for x in rsps), f"seed {seed}, event {i}"
        else:
            (rsp,) = b.send(_semantic_error(rng))
            assert rsp.status != Status.OK, f"seed {seed}, event {i}"
    b.check_state(f"after {events} events")
    assert b.model.memory == memory and b.model.csrs == csrs, f"seed {seed}: corruption"
    b.check_quiet()
    return bad


def test_fuzz():
    run_fuzz(50, 40, p_ready=0.6, p_valid=0.7, max_gap=6, latency=2, stall_rate=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [60, 61])
def test_fuzz_long(seed):
    """Two runs of 1100 events: at least 1000 corrupted or invalid frames in all."""
    bad = run_fuzz(seed, 1100, p_ready=0.6, p_valid=0.7, max_gap=6, latency=2, stall_rate=0.3)
    assert bad >= 500


# -- the host client on the RTL --------------------------------------------------------------

def test_client_on_rtl_bytes():
    """firmware.transport.HostLink drives the RTL bridge through the simulated byte streams."""
    seed = 70
    b = Bench(seed, p_ready=0.7, latency=2, stall_rate=0.2)
    client = Client(b.link, timeout=0.01)
    info = client.ping()
    assert (info.version, info.max_burst, info.mem_words, info.csr_count) == \
        (1, BURST, MEM, CSR_COUNT)
    rng = random.Random(seed)
    words = [rng.randrange(1 << 16) for _ in range(2 * BURST + 3)]
    client.write_words(MEM - len(words), words)              # three bursts, up to the end
    assert client.read_words(MEM - len(words), len(words)) == words
    client.csr_write(Csr.ENTRY, 0x89ABCDEF)
    assert client.csr_read(Csr.ENTRY) == 0x89ABCDEF
    client.start(64)
    csrs = b.link.csrs()
    assert (csrs[Csr.ENTRY], csrs[Csr.CTRL]) == (64, 1)
    with pytest.raises(HostLinkStatusError, match="BAD_ADDR"):
        client.read_words(MEM - 1, 2)
    st = client.status()
    assert st.frame_errors == 1 and st.status == b.link.csrs()[Csr.STATUS]
    assert b.link.memory()[MEM - len(words):] == words


class _CorruptFirst:
    def __init__(self, inner):
        self.inner, self.first = inner, True
        self.now = inner.now

    def write(self, data):
        if self.first:
            data, self.first = _flip(data, len(data) - 4, 2), False
        self.inner.write(data)

    def read(self, n, timeout):
        return self.inner.read(n, timeout)


def test_client_retries_on_rtl():
    """A frame damaged on the way gets BAD_CRC from the RTL; the client sends it again."""
    b = Bench(80)
    client = Client(_CorruptFirst(b.link), timeout=0.01)
    client.write_words(10, [1, 2, 3])
    assert client.retried == 1 and b.link.memory()[10:13] == [1, 2, 3]


def test_client_through_uarts():
    """The whole host link, UARTs included (divisor 4), with the transmitter 2 % slow."""
    harness = LinkHarness(64, divisor=4, max_burst=4, timeout=400)
    link = PysimLink(harness, baud_error=0.02, seed=90)
    client = Client(link, timeout=0.02)
    assert client.ping().max_burst == 4
    words = [0xA5A5, 0x5A5A, 0x0001, 0x8000, 0xFFFF, 0x1234]
    client.write_words(60 - len(words), words)
    assert client.read_words(60 - len(words) - 1, len(words) + 1) == [0] + words
    client.csr_write(Csr.ENTRY, 7)
    client.start(8)
    st = client.status()
    assert (st.frame_errors, st.framing_errors, st.overruns) == (0, 0, 0)
    csrs = link.csrs()
    assert (csrs[Csr.ENTRY], csrs[Csr.CTRL]) == (8, 1)
