"""The host-link protocol in Python (no simulation): CRC, frame round trips, the golden bridge
model's checks, and the HostLink client against the model and over pyserial."""

import random

import pytest

from spec.csr import Csr, CSR_COUNT, STATUS_DONE
from spec.hostlink import (SYNC_REQUEST, SYNC_RESPONSE, MAX_BURST_LIMIT, Cmd, Status,
                           check_max_burst)
from golden.hostlink import BridgeModel
from firmware.protocol import (crc16, words_to_bytes, bytes_to_words, encode_request,
                               encode_response, decode_request, decode_response, split_responses,
                               ProtocolError, Request, Response)
from firmware.transport import (HostLink, ModelTransport, SerialTransport, HostLinkTimeout,
                                HostLinkStatusError, HostLinkProtocolError)


# -- CRC and framing -------------------------------------------------------------------------

def test_crc16_ccitt_false():
    assert crc16(b"123456789") == 0x29B1                 # the catalogue's check value
    assert crc16(b"") == 0xFFFF
    rng = random.Random(1)
    for _ in range(50):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        assert crc16(data + crc16(data).to_bytes(2, "big")) == 0
        # continuing from a partial CRC is the same as one pass
        cut = rng.randint(0, len(data))
        assert crc16(data[cut:], crc16(data[:cut])) == crc16(data)


def test_frame_layout():
    """The documented byte layout, pinned."""
    frame = encode_request(Cmd.WRITE, seq=0x11, addr=0x12345678, payload=b"\xcd\xab")
    body = bytes([Cmd.WRITE, 0x11, 2, 0, 0x78, 0x56, 0x34, 0x12, 0xcd, 0xab])
    assert frame == bytes([SYNC_REQUEST]) + body + crc16(body).to_bytes(2, "big")
    rsp = encode_response(Cmd.READ, 7, Status.OK, b"\x01\x02")
    body = bytes([Cmd.READ, 7, Status.OK, 2, 0, 1, 2])
    assert rsp == bytes([SYNC_RESPONSE]) + body + crc16(body).to_bytes(2, "big")


def test_round_trips():
    seed = 2
    rng = random.Random(seed)
    rsps = []
    for _ in range(100):
        payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 30)))
        cmd, seq, addr = rng.choice(list(Cmd)), rng.randrange(256), rng.randrange(1 << 32)
        req = decode_request(encode_request(cmd, seq=seq, addr=addr, payload=payload))
        assert req == Request(cmd, seq, addr, payload), f"seed {seed}"
        status = rng.choice(list(Status))
        rsps.append(Response(cmd, seq, status, payload))
    stream = b"".join(encode_response(r.cmd, r.seq, r.status, r.payload) for r in rsps)
    assert split_responses(stream) == rsps
    words = [rng.randrange(1 << 16) for _ in range(33)]
    assert bytes_to_words(words_to_bytes(words)) == words
    assert words_to_bytes([0x1234]) == b"\x34\x12"       # low byte first


def test_decode_errors():
    frame = encode_request(Cmd.PING)
    with pytest.raises(ProtocolError, match="bad CRC"):
        decode_request(frame[:-1] + bytes([frame[-1] ^ 1]))
    with pytest.raises(ProtocolError, match="starts with 0x5a, not 0xa5"):
        decode_request(bytes([SYNC_RESPONSE]) + frame[1:])
    with pytest.raises(ProtocolError, match="announces a payload"):
        decode_request(frame + b"\0")
    with pytest.raises(ProtocolError, match="too short"):
        decode_response(b"\x5a\x01")
    with pytest.raises(ProtocolError, match="trailing bytes"):
        split_responses(encode_response(1, 0, 0) + b"\x5a")
    with pytest.raises(ValueError, match=r"^Address must fit in 32 bits, not 4294967296$"):
        encode_request(Cmd.READ, addr=1 << 32)
    with pytest.raises(ValueError, match=r"^Word must be in \[0, 0xffff\], not -1$"):
        words_to_bytes([-1])
    with pytest.raises(ValueError, match=r"^Byte count must be a multiple of 2, not 3$"):
        bytes_to_words(b"abc")


def test_parameter_validation():
    with pytest.raises(ValueError, match=r"^Main memory size must be a positive integer, not 0$"):
        BridgeModel(0)
    with pytest.raises(ValueError, match=r"^Main memory size must be less than 2\*\*32"):
        BridgeModel(1 << 32)
    with pytest.raises(TypeError, match=r"^Maximum burst must be a positive integer, not 2\.0$"):
        BridgeModel(16, max_burst=2.0)
    with pytest.raises(ValueError, match=rf"^Maximum burst must be at most {MAX_BURST_LIMIT}"):
        check_max_burst(MAX_BURST_LIMIT + 1)
    with pytest.raises(ValueError, match=rf"^CSR count must be at least {len(Csr)}, not 8$"):
        BridgeModel(16, csr_count=8)
    with pytest.raises(ValueError, match=r"^Memory image must have at most 4 words, not 5$"):
        BridgeModel(4, memory=[0] * 5)


# -- the golden bridge model -----------------------------------------------------------------

def _status(model, frame):
    (rsp,) = split_responses(model.feed(frame))
    return rsp.status


def test_model_checks_in_order():
    """Each failing check gets its code; a frame failing several gets the first in Status order;
    no rejected frame changes memory or CSRs."""
    m = BridgeModel(64, max_burst=4, memory=range(64))
    image, csrs = list(m.memory), list(m.csrs)
    bad_crc = bytearray(encode_request(Cmd.WRITE, addr=1, payload=b"\0\0"))
    bad_crc[5] ^= 0x40
    cases = [
        (bytes(bad_crc), Status.BAD_CRC),
        (encode_request(0xEE, addr=1 << 31, payload=b"\0" * 3), Status.BAD_CMD),
        (encode_request(0, ), Status.BAD_CMD),
        (encode_request(Cmd.WRITE, addr=1 << 31, payload=b"\0" * 4), Status.BAD_LENGTH),
        (encode_request(Cmd.READ, payload=b"\0\0"), Status.BAD_LENGTH),
        (encode_request(Cmd.BURST_READ, payload=b"\0\0"), Status.BAD_LENGTH),       # count 0
        (encode_request(Cmd.BURST_WRITE, payload=b"\0" * 3), Status.BAD_LENGTH),    # odd
        (encode_request(Cmd.BURST_WRITE, payload=b""), Status.BAD_LENGTH),
        (encode_request(Cmd.CSR_WRITE, payload=b"\0" * 2), Status.BAD_LENGTH),
        (encode_request(Cmd.BURST_WRITE, addr=1 << 31, payload=b"\0" * 10), Status.TOO_LONG),
        (encode_request(Cmd.BURST_READ, payload=b"\x05\0"), Status.TOO_LONG),
        (encode_request(Cmd.BURST_WRITE, addr=61, payload=b"\0" * 8), Status.BAD_ADDR),
        (encode_request(Cmd.BURST_READ, addr=0xFFFF_FFFF, payload=b"\x01\0"), Status.BAD_ADDR),
        (encode_request(Cmd.READ, addr=64), Status.BAD_ADDR),
        (encode_request(Cmd.CSR_READ, addr=CSR_COUNT), Status.BAD_ADDR),
        (encode_request(Cmd.START, addr=64), Status.BAD_ADDR),
    ]
    for i, (frame, status) in enumerate(cases):
        assert _status(m, frame) == status, f"case {i}"
        assert m.memory == image and m.csrs == csrs, f"case {i}"
    assert m.frame_errors == len(cases)
    assert _status(m, encode_request(Cmd.BURST_WRITE, addr=60, payload=b"\0" * 8)) == Status.OK
    assert m.memory[60:] == [0] * 4


def test_model_framing():
    """Garbage between frames is ignored; a cut frame answers TIMEOUT on idle with the command
    and sequence bytes received so far; a frame swallows whatever follows until its length."""
    m = BridgeModel(64)
    ping = encode_request(Cmd.PING, seq=9)
    out = split_responses(m.feed(b"\x00\x13\xff" + ping + b"\x5a\x01"))
    assert [(r.cmd, r.seq, r.status) for r in out] == [(Cmd.PING, 9, Status.OK)]
    for cut, echo in ((1, (0, 0)), (2, (Cmd.PING, 0)), (5, (Cmd.PING, 9))):
        assert m.feed(ping[:cut]) == b"" and m.in_frame
        (r,) = split_responses(m.idle())
        assert (r.cmd, r.seq, r.status) == (*echo, Status.TIMEOUT)
    assert m.idle() == b""
    # a cut frame announcing 4 payload bytes takes the next frame's first bytes as its own
    big = encode_request(Cmd.CSR_WRITE, payload=b"\0" * 4)
    out = split_responses(m.feed(big[:9] + ping + ping))
    assert [r.status for r in out] == [Status.BAD_CRC, Status.OK]    # the first ping is lost
    assert m.frame_errors == 4


def test_model_commands():
    m = BridgeModel(1000, max_burst=16, memory=[7] * 10)
    m.csrs[Csr.STATUS] = 0x1234_5678
    m.rx_framing_errors, m.rx_overruns = 3, 4
    r = split_responses(
        m.feed(encode_request(Cmd.PING) + encode_request(Cmd.STATUS) +
               encode_request(Cmd.START, addr=48) + encode_request(Cmd.BURST_READ, addr=8,
                                                                   payload=b"\x03\0")))
    assert r[0].words == [1, 16, 1000, 0, CSR_COUNT]
    assert r[1].words == [0x5678, 0x1234, 0, 3, 4]
    assert (m.csrs[Csr.ENTRY], m.csrs[Csr.CTRL]) == (48, 1)
    assert r[3].words == [7, 7, 0]


# -- the client against the model ------------------------------------------------------------

def test_client_against_model():
    m = BridgeModel(2000, max_burst=16)
    link = HostLink(ModelTransport(m))
    assert link.ping().mem_words == 2000
    rng = random.Random(3)
    words = [rng.randrange(1 << 16) for _ in range(50)]
    link.write_words(100, words)                                # 4 bursts
    assert m.memory[100:150] == words
    assert link.read_words(99, 52) == [0] + words + [0]
    link.write_word(5, 0xBEEF)
    assert link.read_word(5) == 0xBEEF
    link.csr_write(Csr.ENTRY, 0xFFFF_FFFF)
    assert link.csr_read(Csr.ENTRY) == 0xFFFF_FFFF
    link.start(64)
    assert (m.csrs[Csr.ENTRY], m.csrs[Csr.CTRL]) == (64, 1)
    m.csrs[Csr.STATUS] = STATUS_DONE | 3 << 8
    st = link.status()
    assert st.done and not st.running and st.error == 3
    with pytest.raises(HostLinkStatusError,
                       match=r"^Device rejected BURST_READ at 0x7c6: BAD_ADDR \(0x06\)$") as e:
        link.read_words(1990, 11)
    assert e.value.status == Status.BAD_ADDR
    with pytest.raises(HostLinkStatusError, match="CSR_READ at 0x20: BAD_ADDR"):
        link.csr_read(CSR_COUNT)
    assert link.retried == 0


class _Flaky:
    """A transport that corrupts or drops chosen writes (0-based) to its inner transport."""

    def __init__(self, inner, corrupt=(), drop=()):
        self.inner, self.corrupt, self.drop, self.writes = inner, corrupt, drop, 0

    def write(self, data):
        n, self.writes = self.writes, self.writes + 1
        if n in self.drop:
            return
        if n in self.corrupt:
            data = bytearray(data)
            data[-3] ^= 0x10
        self.inner.write(data)

    def read(self, n, timeout):
        return self.inner.read(n, timeout)


def test_client_retries_and_timeouts():
    m = BridgeModel(64)
    link = HostLink(_Flaky(ModelTransport(m), corrupt={0}, drop={1}), timeout=0.01)
    link.write_word(3, 0x55)                    # BAD_CRC, dropped, then OK
    assert m.memory[3] == 0x55 and link.retried == 2
    link = HostLink(_Flaky(ModelTransport(m), corrupt={0, 1}), retries=1)
    with pytest.raises(HostLinkStatusError, match="BAD_CRC"):
        link.write_word(3, 0x66)
    assert m.memory[3] == 0x55
    link = HostLink(_Flaky(ModelTransport(m), drop={0, 1, 2}), timeout=0.01)
    with pytest.raises(HostLinkTimeout, match=r"^No response within 0\.01 s$"):
        link.ping()
    link = HostLink(_Flaky(ModelTransport(m), drop={0}), timeout=0.01)
    with pytest.raises(HostLinkTimeout):
        link.start(8)                           # not sent again: it may have run
    assert link.retried == 0
    with pytest.raises(ValueError, match=r"^Retries must be a non-negative integer, not -1$"):
        HostLink(ModelTransport(m), retries=-1)


def test_client_drops_stale_responses_and_checks_crc():
    m = BridgeModel(64)
    t = ModelTransport(m)
    link = HostLink(t, retries=0)
    t._out += encode_response(Cmd.PING, 0xEE, Status.OK, b"\0" * 10) + b"\x00\x42"
    assert link.ping().version == 1                             # the stale answer is skipped
    bad = bytearray(encode_response(Cmd.READ, 2, Status.OK, b"\0\0"))
    bad[-1] ^= 1
    t.model = type("Echo", (), {"feed": staticmethod(lambda data: bytes(bad))})
    with pytest.raises(HostLinkProtocolError, match="bad CRC"):
        link.read_word(0)


def test_serial_transport_loopback():
    """pyserial's loop:// port: the bytes come back; the client sees no response (its own
    request is not one) and times out."""
    with SerialTransport("loop://", 115200) as t:
        t.write(b"\x01\x02\x03")
        assert t.read(3, 0.5) == b"\x01\x02\x03"
        assert t.read(1, 0.01) == b""
        with pytest.raises(HostLinkTimeout):
            HostLink(t, timeout=0.05, retries=0).ping()


def test_serial_transport_over_a_port_object():
    """An open port object is used as is (and left open); a port with ``now()`` is the clock."""
    import serial
    port = serial.serial_for_url("loop://", baudrate=115200, timeout=0.1)

    class Clocked:
        def __init__(self, inner):
            self.inner, self.t = inner, 5.0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def now(self):
            return self.t

    t = SerialTransport(port)
    t.write(b"\x01\x02")
    assert t.read(2, 0.1) == b"\x01\x02" and t.serial is port
    t.close()
    assert port.is_open
    clocked = Clocked(port)
    assert SerialTransport(clocked).now() == 5.0
    assert HostLink(SerialTransport(clocked)).now() == 5.0
    port.close()
    with pytest.raises(TypeError, match=r"^Serial port must be a port name or a pyserial-like "
                                        r"port object, not 42$"):
        SerialTransport(42)
