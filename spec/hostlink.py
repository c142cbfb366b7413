"""The host-link protocol's encodings, defined once: sync bytes, header layouts, commands, statuses.

The RTL bridge (``rtl/hostlink.py``), the protocol's golden model and the host client
(``firmware/protocol.py``, ``firmware/transport.py``) import these objects; none of them
restates a code or a field. ``docs/hostlink.md`` describes the protocol.

Frames (all multi-byte fields little-endian except the CRC, which is sent high byte first)::

    request   SYNC_REQUEST  cmd seq length[2] addr[4]  payload[length]  crc[2]
    response  SYNC_RESPONSE cmd seq status length[2]   payload[length]  crc[2]

The CRC is CRC-16/CCITT-FALSE (polynomial ``0x1021``, initial value ``0xFFFF``, no reflection,
no final XOR) over every byte after the sync byte up to the CRC; running it over the CRC too
leaves 0.

This module is pure Python (no Amaranth, no PyTorch) so that every layer may import it.
"""

from enum import IntEnum

from .csr import Csr
from .params import OPERAND_WIDTH, check_positive_int

__all__ = [
    "PROTOCOL_VERSION", "SYNC_REQUEST", "SYNC_RESPONSE", "REQUEST_HEADER", "RESPONSE_HEADER",
    "CRC_POLY", "CRC_INIT", "CRC_BYTES", "WORD_BYTES", "CSR_BYTES", "MAX_LENGTH", "MAX_BURST",
    "MAX_BURST_LIMIT", "PING_WORDS", "STATUS_WORDS", "Cmd", "Status",
    "check_max_burst", "check_mem_words", "check_csr_count",
]

#: Version of the protocol; the PING response carries it.
PROTOCOL_VERSION = 1

#: First byte of every request (host → device).
SYNC_REQUEST = 0xA5
#: First byte of every response (device → host).
SYNC_RESPONSE = 0x5A

#: Fields of a request after its sync byte: ``(name, bytes)``, little-endian.
REQUEST_HEADER = (("cmd", 1), ("seq", 1), ("length", 2), ("addr", 4))
#: Fields of a response after its sync byte: ``(name, bytes)``, little-endian.
RESPONSE_HEADER = (("cmd", 1), ("seq", 1), ("status", 1), ("length", 2))

#: CRC-16/CCITT-FALSE.
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
CRC_BYTES = 2

#: Bytes of a main-memory word on the link (a word is ``OPERAND_WIDTH`` bits, low byte first).
WORD_BYTES = OPERAND_WIDTH // 8
#: Bytes of a CSR value on the link (32 bits, low byte first).
CSR_BYTES = 4
#: Largest payload a frame can announce (the ``length`` field is 16 bits).
MAX_LENGTH = 0xFFFF
#: Default longest burst in words (the bridge buffers a whole burst write before writing).
MAX_BURST = 256
#: The longest burst the ``length`` field can carry.
MAX_BURST_LIMIT = MAX_LENGTH // WORD_BYTES

#: Payload words of a PING response: version, max burst, memory words (low, high), CSR count.
PING_WORDS = 5
#: Payload words of a STATUS response: the STATUS CSR (low, high), rejected frames, UART framing
#: errors, UART overruns.
STATUS_WORDS = 5

assert OPERAND_WIDTH % 8 == 0


class Cmd(IntEnum):
    """Request commands. ``addr`` is a main-memory word address unless noted.

    Payloads (``length`` in bytes): PING 0; READ 0; WRITE 2 (the word); BURST_READ 2 (the word
    count ``n``, 16 bits); BURST_WRITE ``2 n`` (the words); CSR_READ 0 (``addr`` = CSR index);
    CSR_WRITE 4 (the value; ``addr`` = CSR index); START 0 (``addr`` = entry word address: writes
    CSR ENTRY, then CTRL = 1); STATUS 0.
    """
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    BURST_READ = 0x04
    BURST_WRITE = 0x05
    CSR_READ = 0x06
    CSR_WRITE = 0x07
    START = 0x08
    STATUS = 0x09


class Status(IntEnum):
    """Response status codes, in the order the bridge checks them (the first failure is sent).

    Any status but OK means the request changed nothing; its response has no payload.
    """
    OK = 0x00
    BAD_CRC = 0x01       #: the frame's CRC is wrong
    TIMEOUT = 0x02       #: the frame was truncated: the link was idle too long within it
    BAD_CMD = 0x03       #: unknown command
    BAD_LENGTH = 0x04    #: ``length`` (or a burst count of 0) disagrees with the command
    TOO_LONG = 0x05      #: a burst longer than the bridge's ``max_burst``
    BAD_ADDR = 0x06      #: an address (or the end of a burst) outside the memory or CSR map


def check_max_burst(value):
    """Validate a bridge's longest burst: a positive integer ≤ :data:`MAX_BURST_LIMIT`."""
    check_positive_int(value, "Maximum burst")
    if value > MAX_BURST_LIMIT:
        raise ValueError(f"Maximum burst must be at most {MAX_BURST_LIMIT}, not {value!r}")
    return value


def check_mem_words(value):
    """Validate a memory size on the link: a positive integer < ``2**32``."""
    check_positive_int(value, "Main memory size")
    if value >= 1 << 32:
        raise ValueError(f"Main memory size must be less than 2**32, not {value!r}")
    return value


def check_csr_count(value):
    """Validate a CSR count on the link: it covers every :class:`~spec.csr.Csr` (START writes
    ENTRY and CTRL, STATUS reads STATUS) and fits in a word (PING reports it)."""
    check_positive_int(value, "CSR count")
    least, limit = max(Csr) + 1, (1 << OPERAND_WIDTH) - 1
    if value < least:
        raise ValueError(f"CSR count must be at least {least}, not {value!r}")
    if value > limit:
        raise ValueError(f"CSR count must be at most {limit}, not {value!r}")
    return value
