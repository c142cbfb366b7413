"""The golden model of the host link's device side: the bridge, and the codec it shares.

:class:`BridgeModel` answers request bytes with response bytes exactly as the RTL bridge
(:class:`rtl.hostlink.HostLinkBridge`) does — byte for byte, with the same checks in the same
order, the same counters and the same effect on memory and CSRs. The codec underneath — the
CRC, the word and header packing, the framing of responses — is the protocol's own: the host
client (:mod:`firmware.protocol`, :mod:`firmware.transport`) builds and parses its frames with
it too. Encodings come from :mod:`spec.hostlink`; ``docs/hostlink.md`` describes the protocol.

This module is pure Python and imports only :mod:`spec`.
"""

from spec.csr import CSR_COUNT, Csr
from spec.hostlink import (PROTOCOL_VERSION, SYNC_RESPONSE, SYNC_REQUEST, REQUEST_HEADER,
                           RESPONSE_HEADER, CRC_POLY, CRC_INIT, CRC_BYTES, WORD_BYTES, CSR_BYTES,
                           MAX_BURST, Cmd, Status, check_max_burst, check_mem_words,
                           check_csr_count)
from spec.params import check_int

__all__ = [
    "crc16", "words_to_bytes", "bytes_to_words", "pack_header", "unpack_header", "encode_frame",
    "encode_response", "BridgeModel",
]

_REQ_HDR = sum(n for _, n in REQUEST_HEADER)          # bytes after the sync byte
_WORD_BITS = 8 * WORD_BYTES
_WORD_MASK = (1 << _WORD_BITS) - 1
_COUNTER_MAX = _WORD_MASK                              # the bridge's saturating counters


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data`` (bytes), continuing from ``crc``.

    Bitwise, most significant bit first, as the RTL computes it one byte per cycle.
    ``crc16(b"123456789") == 0x29B1``; ``crc16(x + crc16(x).to_bytes(2, "big")) == 0``.
    """
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def words_to_bytes(words):
    """Main-memory words (unsigned, ``WORD_BYTES`` bytes each) as link bytes, low byte first."""
    out = bytearray()
    for w in words:
        check_int(w, "Word")
        if not 0 <= w <= _WORD_MASK:
            raise ValueError(f"Word must be in [0, {_WORD_MASK:#x}], not {w!r}")
        out += w.to_bytes(WORD_BYTES, "little")
    return bytes(out)


def bytes_to_words(data):
    """Link bytes as main-memory words (the inverse of :func:`words_to_bytes`)."""
    if len(data) % WORD_BYTES:
        raise ValueError(f"Byte count must be a multiple of {WORD_BYTES}, not {len(data)}")
    return [int.from_bytes(data[i:i + WORD_BYTES], "little")
            for i in range(0, len(data), WORD_BYTES)]


def pack_header(fields, values):
    """A frame header's bytes: ``values[name]`` for each ``(name, bytes)`` of ``fields``
    (:data:`~spec.hostlink.REQUEST_HEADER` or :data:`~spec.hostlink.RESPONSE_HEADER`), each
    little-endian."""
    return b"".join(int(values[name]).to_bytes(n, "little") for name, n in fields)


def unpack_header(fields, data):
    """``{name: value}`` of a frame header's bytes (the inverse of :func:`pack_header`)."""
    out, pos = {}, 0
    for name, n in fields:
        out[name] = int.from_bytes(data[pos:pos + n], "little")
        pos += n
    return out


def encode_frame(sync, header, payload):
    """A whole frame: the sync byte, the header and payload bytes, their CRC (big-endian)."""
    body = header + bytes(payload)
    return bytes([sync]) + body + crc16(body).to_bytes(CRC_BYTES, "big")


def encode_response(cmd, seq, status, payload=b""):
    """One response frame (bytes), as the device sends it."""
    header = pack_header(RESPONSE_HEADER, dict(cmd=cmd, seq=seq, status=status,
                                               length=len(payload)))
    return encode_frame(SYNC_RESPONSE, header, payload)


class BridgeModel:
    """The golden model of the host-link bridge: request bytes in, response bytes out.

    It behaves exactly as :class:`rtl.hostlink.HostLinkBridge`. Between frames it discards every
    byte but :data:`~spec.hostlink.SYNC_REQUEST`; after one it collects the header, ``length``
    payload bytes and the CRC, whatever they contain. :meth:`idle` stands for the link being idle
    for the bridge's timeout: a frame in progress is then abandoned with a TIMEOUT response.
    A complete frame is checked in :class:`~spec.hostlink.Status` order — CRC, command, length,
    burst size, address — and either executed (status OK) or rejected with no effect at all.
    Every frame gets exactly one response; a rejected frame's response has no payload and echoes
    the command and sequence bytes received (0 for those not received). ``frame_errors`` counts
    rejected frames (saturating at ``0xFFFF``).

    CSRs are reached through ``csr_read(index) -> int`` and ``csr_write(index, value)``; by
    default a plain register file :attr:`csrs` of ``csr_count`` 32-bit registers.

    Parameters
    ----------
    mem_words : int
        Main memory size in words; addresses ``[0, mem_words)``.
    max_burst : int
        Longest burst in words.
    csr_count : int
        CSR indices ``[0, csr_count)``.
    memory : list of int, optional
        Initial memory image (padded with zeros to ``mem_words``); the model keeps and updates
        its own copy, :attr:`memory`.
    csr_read, csr_write : callable, optional
        The CSR port; both or neither.

    Raises
    ------
    TypeError, ValueError
        If a parameter has a wrong type or value.
    """

    def __init__(self, mem_words, *, max_burst=MAX_BURST, csr_count=CSR_COUNT, memory=(),
                 csr_read=None, csr_write=None):
        self.mem_words = check_mem_words(mem_words)
        self.max_burst = check_max_burst(max_burst)
        self.csr_count = check_csr_count(csr_count)
        memory = list(memory)
        if len(memory) > mem_words:
            raise ValueError(f"Memory image must have at most {mem_words} words, "
                             f"not {len(memory)}")
        self.memory = memory + [0] * (mem_words - len(memory))
        if (csr_read is None) != (csr_write is None):
            raise ValueError("Give both csr_read and csr_write, or neither")
        self.csrs = [0] * csr_count
        self._csr_read = csr_read or (lambda i: self.csrs[i])
        self._csr_write = csr_write or self.csrs.__setitem__
        self.frame_errors = 0
        self.rx_framing_errors = 0
        self.rx_overruns = 0
        self._frame = None          # bytes after the sync byte of the frame in progress

    @property
    def in_frame(self):
        """Whether a frame is in progress (its sync byte was received, its CRC not yet)."""
        return self._frame is not None

    def feed(self, data):
        """Receive ``data`` (bytes); return the bytes of the responses it completes."""
        out = bytearray()
        for byte in bytes(data):
            if self._frame is None:
                if byte == SYNC_REQUEST:
                    self._frame = bytearray()
                continue
            self._frame.append(byte)
            if len(self._frame) >= _REQ_HDR:
                length = unpack_header(REQUEST_HEADER, self._frame[:_REQ_HDR])["length"]
                if len(self._frame) == _REQ_HDR + length + CRC_BYTES:
                    frame, self._frame = bytes(self._frame), None
                    out += self._execute(frame)
        return bytes(out)

    def idle(self):
        """The link was idle for the timeout: return the TIMEOUT response if a frame was cut."""
        if self._frame is None:
            return b""
        frame, self._frame = self._frame, None
        cmd = frame[0] if len(frame) > 0 else 0
        seq = frame[1] if len(frame) > 1 else 0
        return self._respond(cmd, seq, Status.TIMEOUT)

    def _respond(self, cmd, seq, status, payload=b""):
        if status != Status.OK:
            self.frame_errors = min(self.frame_errors + 1, _COUNTER_MAX)
        return encode_response(cmd, seq, status, payload)

    def _check(self, cmd, length, addr, payload):
        """(status, words moved) of a frame whose CRC is good."""
        arg = int.from_bytes(payload[:4].ljust(4, b"\0"), "little")
        count = arg & _WORD_MASK
        mem = csr = False
        if cmd in (Cmd.PING, Cmd.STATUS):
            ok, n = length == 0, 0
        elif cmd == Cmd.READ:
            ok, n, mem = length == 0, 1, True
        elif cmd == Cmd.WRITE:
            ok, n, mem = length == WORD_BYTES, 1, True
        elif cmd == Cmd.BURST_READ:
            ok, n, mem = length == WORD_BYTES and count != 0, count, True
        elif cmd == Cmd.BURST_WRITE:
            ok, n, mem = length != 0 and length % WORD_BYTES == 0, length // WORD_BYTES, True
        elif cmd == Cmd.CSR_READ:
            ok, n, csr = length == 0, 0, True
        elif cmd == Cmd.CSR_WRITE:
            ok, n, csr = length == CSR_BYTES, 0, True
        elif cmd == Cmd.START:
            ok, n = length == 0, 0
        else:
            return Status.BAD_CMD, 0
        if not ok:
            return Status.BAD_LENGTH, 0
        if n > self.max_burst:
            return Status.TOO_LONG, 0
        if mem and addr + n > self.mem_words or csr and addr >= self.csr_count \
                or cmd == Cmd.START and addr >= self.mem_words:
            return Status.BAD_ADDR, 0
        return Status.OK, n

    def _execute(self, frame):
        h = unpack_header(REQUEST_HEADER, frame[:_REQ_HDR])
        cmd, seq, length, addr = h["cmd"], h["seq"], h["length"], h["addr"]
        payload = frame[_REQ_HDR:_REQ_HDR + length]
        if crc16(frame) != 0:
            return self._respond(cmd, seq, Status.BAD_CRC)
        status, n = self._check(cmd, length, addr, payload)
        if status != Status.OK:
            return self._respond(cmd, seq, status)
        words = []
        if cmd in (Cmd.READ, Cmd.BURST_READ):
            words = self.memory[addr:addr + n]
        elif cmd in (Cmd.WRITE, Cmd.BURST_WRITE):
            self.memory[addr:addr + n] = bytes_to_words(payload)
        elif cmd == Cmd.CSR_READ:
            v = self._csr_read(addr)
            words = [v & _WORD_MASK, v >> _WORD_BITS & _WORD_MASK]
        elif cmd == Cmd.CSR_WRITE:
            self._csr_write(addr, int.from_bytes(payload, "little"))
        elif cmd == Cmd.START:
            self._csr_write(Csr.ENTRY, addr)
            self._csr_write(Csr.CTRL, 1)
        elif cmd == Cmd.PING:
            words = [PROTOCOL_VERSION, self.max_burst, self.mem_words & _WORD_MASK,
                     self.mem_words >> _WORD_BITS, self.csr_count]
        elif cmd == Cmd.STATUS:
            v = self._csr_read(Csr.STATUS)
            words = [v & _WORD_MASK, v >> _WORD_BITS & _WORD_MASK, self.frame_errors,
                     self.rx_framing_errors, self.rx_overruns]
        return self._respond(cmd, seq, Status.OK, words_to_bytes(words))
