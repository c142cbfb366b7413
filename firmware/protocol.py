"""The host-link protocol on the host's side: requests encoded, responses decoded.

The host client (:mod:`firmware.transport`) builds its requests and parses its responses with
these functions. The codec they share with the device — the CRC, word and header packing,
framing — and the golden model of the device's bridge (:class:`golden.hostlink.BridgeModel`)
live in :mod:`golden.hostlink`; the codec's functions are exported here too. Encodings come
from :mod:`spec.hostlink`; ``docs/hostlink.md`` describes the protocol.
"""

from dataclasses import dataclass

from spec.hostlink import (SYNC_REQUEST, SYNC_RESPONSE, REQUEST_HEADER, RESPONSE_HEADER,
                           CRC_BYTES, MAX_LENGTH, Cmd, Status)
from spec.params import check_int
from golden.hostlink import (crc16, words_to_bytes, bytes_to_words, encode_frame,
                             encode_response, pack_header, unpack_header)

__all__ = [
    "crc16", "words_to_bytes", "bytes_to_words", "encode_request", "encode_response",
    "Request", "Response", "ProtocolError", "decode_request", "decode_response",
    "split_responses",
]

_RSP_HDR = sum(n for _, n in RESPONSE_HEADER)          # bytes after the sync byte


def encode_request(cmd, *, seq=0, addr=0, payload=b""):
    """One request frame (bytes). ``cmd`` may be any byte (tests send unknown commands).

    Raises
    ------
    ValueError
        If a field does not fit (``cmd``/``seq`` a byte, ``addr`` 32 bits, payload ≤ 65535
        bytes).
    """
    for what, v, bits in (("Command", cmd, 8), ("Sequence number", seq, 8), ("Address", addr, 32)):
        check_int(v, what)
        if not 0 <= v < 1 << bits:
            raise ValueError(f"{what} must fit in {bits} bits, not {v!r}")
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"Payload must be at most {MAX_LENGTH} bytes, not {len(payload)}")
    header = pack_header(REQUEST_HEADER, dict(cmd=cmd, seq=seq, length=len(payload), addr=addr))
    return encode_frame(SYNC_REQUEST, header, payload)


class ProtocolError(Exception):
    """A byte sequence is not a well-formed frame (wrong sync byte, length or CRC)."""


@dataclass(frozen=True)
class Request:
    """A decoded request. ``cmd`` is a :class:`~spec.hostlink.Cmd` when known, else an int."""
    cmd: int
    seq: int
    addr: int
    payload: bytes


@dataclass(frozen=True)
class Response:
    """A decoded response. ``status`` is a :class:`~spec.hostlink.Status` when known."""
    cmd: int
    seq: int
    status: int
    payload: bytes

    @property
    def words(self):
        """The payload as words."""
        return bytes_to_words(self.payload)


def _as_enum(enum, value):
    try:
        return enum(value)
    except ValueError:
        return value


def _decode(frame, sync, fields, what):
    hdr = sum(n for _, n in fields)
    frame = bytes(frame)
    if len(frame) < 1 + hdr + CRC_BYTES:
        raise ProtocolError(f"{what} frame too short ({len(frame)} bytes)")
    if frame[0] != sync:
        raise ProtocolError(f"{what} frame starts with {frame[0]:#04x}, not {sync:#04x}")
    values = unpack_header(fields, frame[1:1 + hdr])
    if len(frame) != 1 + hdr + values["length"] + CRC_BYTES:
        raise ProtocolError(f"{what} frame of {len(frame)} bytes announces a payload of "
                            f"{values['length']} bytes")
    if crc16(frame[1:]) != 0:
        raise ProtocolError(f"{what} frame has a bad CRC")
    return values, frame[1 + hdr:-CRC_BYTES]


def decode_request(frame):
    """Decode one complete request frame; :exc:`ProtocolError` if malformed."""
    v, payload = _decode(frame, SYNC_REQUEST, REQUEST_HEADER, "Request")
    return Request(_as_enum(Cmd, v["cmd"]), v["seq"], v["addr"], payload)


def decode_response(frame):
    """Decode one complete response frame; :exc:`ProtocolError` if malformed."""
    v, payload = _decode(frame, SYNC_RESPONSE, RESPONSE_HEADER, "Response")
    return Response(_as_enum(Cmd, v["cmd"]), v["seq"], _as_enum(Status, v["status"]), payload)


def split_responses(data):
    """Decode a byte string of back-to-back response frames into a list of :class:`Response`."""
    data, out, pos = bytes(data), [], 0
    while pos < len(data):
        if len(data) - pos < 1 + _RSP_HDR:
            raise ProtocolError(f"{len(data) - pos} trailing bytes are not a response frame")
        length = unpack_header(RESPONSE_HEADER, data[pos + 1:pos + 1 + _RSP_HDR])["length"]
        end = pos + 1 + _RSP_HDR + length + CRC_BYTES
        out.append(decode_response(data[pos:end]))
        pos = end
    return out
