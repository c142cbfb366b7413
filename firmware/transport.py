"""The host side of the host link: byte transports and the :class:`HostLink` client.

A *transport* moves bytes to and from the device: :class:`SerialTransport` over a serial port
(pyserial), :class:`ModelTransport` in memory against the protocol's golden model
(:class:`golden.hostlink.BridgeModel`), and, for the RTL in simulation,
:class:`sim.hostlink.PysimLink`. Any object with ``write(data)`` and
``read(n, timeout) -> bytes`` (at most ``n`` bytes; fewer only when ``timeout`` seconds of the
link's time passed) is a transport.

:class:`HostLink` is the client: memory reads and writes (split into bursts), CSR access, start
and status, with a sequence number per request, retries of requests lost to link errors, and
exceptions that name the device's status code.
"""

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from spec.csr import decode_status
from spec.hostlink import (SYNC_RESPONSE, RESPONSE_HEADER, CRC_BYTES, WORD_BYTES, CSR_BYTES,
                           PING_WORDS, STATUS_WORDS, Cmd, Status)
from spec.params import check_int, check_positive_int
from .protocol import (encode_request, decode_response, words_to_bytes, bytes_to_words,
                       ProtocolError)

__all__ = [
    "Transport", "SerialTransport", "ModelTransport",
    "HostLinkError", "HostLinkTimeout", "HostLinkProtocolError", "HostLinkStatusError",
    "SerialPortError", "DeviceInfo", "LinkStatus", "HostLink",
]

_RSP_HDR = sum(n for _, n in RESPONSE_HEADER)
_WORD_BITS = 8 * WORD_BYTES
#: Device statuses that mean the request was damaged on the way: the request is sent again.
_RETRIED = (Status.BAD_CRC, Status.TIMEOUT)


class Transport(ABC):
    """A bidirectional byte link to the device."""

    @abstractmethod
    def write(self, data):
        """Send ``data`` (bytes)."""

    @abstractmethod
    def read(self, n, timeout):
        """Receive up to ``n`` bytes, waiting at most ``timeout`` seconds; fewer only on timeout."""

    def close(self):
        """Release the link."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialTransport(Transport):
    """A serial port through pyserial: ``serial.serial_for_url(port, baud, timeout=...)``, or an
    open pyserial-like port object.

    Parameters
    ----------
    port : str or serial port object
        The device, e.g. ``/dev/ttyUSB1`` (pyserial URLs such as ``loop://`` work too); or an
        object with pyserial's ``write``, ``read(n)``, ``timeout`` and ``flush`` — an open
        ``serial.Serial``, or :class:`sim.compiled.serial.SimSerial`, the compiled SoC's UART pins.
        A port object that has ``now()`` (the simulated port) is also the link's clock: the
        client's timeouts are then in simulated seconds.
    baud : int
        Baud rate of a port opened by name; the device's UART divisor must match it.

    Raises
    ------
    TypeError
        If ``port`` is neither a string nor a port object, or ``baud`` is not an integer.
    ValueError
        If ``baud`` is not positive.
    SerialPortError
        If the port named cannot be opened (it does not exist, is busy, is not a serial port,
        or the URL is not one pyserial knows).
    """

    def __init__(self, port, baud=115200):
        check_positive_int(baud, "Baud rate")
        if isinstance(port, str):
            self._serial = _open_port(port, baud)
            self._owned = True
        elif all(hasattr(port, a) for a in ("write", "read", "timeout")):
            self._serial = port
            self._owned = False
        else:
            raise TypeError(f"Serial port must be a port name or a pyserial-like port object, "
                            f"not {port!r}")
        self._clock = getattr(self._serial, "now", None) or time.monotonic

    @property
    def serial(self):
        """The port object."""
        return self._serial

    def write(self, data):
        self._serial.write(bytes(data))
        self._serial.flush()

    def read(self, n, timeout):
        self._serial.timeout = max(0.0, timeout)
        return bytes(self._serial.read(n))

    def now(self):
        """The link's time in seconds: the port's ``now()`` (simulated time) if it has one, else
        the host's monotonic clock."""
        return self._clock()

    def close(self):
        """Close a port this transport opened (a port object passed in stays open)."""
        if self._owned:
            self._serial.close()


def _open_port(port, baud):
    """pyserial's port ``port`` opened at ``baud``, or :exc:`SerialPortError` naming it."""
    import serial
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=1.0)
    except (serial.SerialException, ValueError) as e:
        # pyserial's message repeats the port and its cause's; the cause alone says why
        cause = e.__context__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(e)
        raise SerialPortError(f"Cannot open serial port {port!r}: {reason}") from e


class ModelTransport(Transport):
    """An in-memory link to a device model with ``feed(bytes) -> bytes`` (a ``BridgeModel``).

    The model answers at once; :meth:`read` never waits.
    """

    def __init__(self, model):
        self.model = model
        self._out = bytearray()

    def write(self, data):
        self._out += self.model.feed(bytes(data))

    def read(self, n, timeout):
        data, self._out = bytes(self._out[:n]), self._out[n:]
        return data


class HostLinkError(Exception):
    """A host-link request failed."""


class SerialPortError(HostLinkError, OSError):
    """A serial port cannot be opened; the message names the port and why."""


class HostLinkTimeout(HostLinkError):
    """No complete response arrived in time."""


class HostLinkProtocolError(HostLinkError):
    """A response was malformed (bad CRC, or not the answer to the request)."""


class HostLinkStatusError(HostLinkError):
    """The device rejected a request; :attr:`status` is its :class:`~spec.hostlink.Status`."""

    def __init__(self, cmd, addr, status):
        self.cmd, self.addr, self.status = cmd, addr, status
        name = status.name if isinstance(status, Status) else "unknown status"
        cmd_name = cmd.name if isinstance(cmd, Cmd) else f"command {cmd:#04x}"
        super().__init__(f"Device rejected {cmd_name} at {addr:#x}: {name} ({int(status):#04x})")


@dataclass(frozen=True)
class DeviceInfo:
    """The PING response."""
    version: int
    max_burst: int
    mem_words: int
    csr_count: int


@dataclass(frozen=True)
class LinkStatus:
    """The STATUS response: the STATUS CSR and the link's error counters."""
    status: int
    frame_errors: int
    framing_errors: int
    overruns: int

    @property
    def running(self):
        return decode_status(self.status).running

    @property
    def done(self):
        return decode_status(self.status).done

    @property
    def error(self):
        """The :class:`spec.isa.Error` code of the last program."""
        return decode_status(self.status).error


class HostLink:
    """Client of the device's host link.

    Parameters
    ----------
    transport : Transport
        The byte link.
    timeout : float
        Seconds (of the transport's time) to wait for each response; make it longer than the
        device's inter-byte timeout so that a request cut short is answered first.
    retries : int
        How many times a request is sent again after a lost or damaged frame: the device's
        BAD_CRC/TIMEOUT, and — for reads and memory writes, which can safely run twice — no
        response or a response with a bad CRC. Other errors are not retried.

    Raises
    ------
    HostLinkTimeout, HostLinkProtocolError, HostLinkStatusError
        From the requests, once the retries are spent.
    """

    def __init__(self, transport, *, timeout=1.0, retries=2):
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise TypeError(f"Timeout must be a number, not {timeout!r}")
        if not timeout > 0:
            raise ValueError(f"Timeout must be positive, not {timeout!r}")
        check_int(retries, "Retries")
        if retries < 0:
            raise ValueError(f"Retries must be a non-negative integer, not {retries!r}")
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self._seq = 0
        self._info = None
        self.retried = 0            #: requests sent again so far

    # -- framing -----------------------------------------------------------------------------

    def _read_exact(self, n, deadline):
        data = bytearray()
        while len(data) < n:
            remaining = deadline - self._now()
            if remaining <= 0 and data:
                break
            chunk = self.transport.read(n - len(data), max(remaining, 0))
            if not chunk:
                break
            data += chunk
        if len(data) < n:
            raise HostLinkTimeout(f"No response within {self.timeout} s")
        return bytes(data)

    def now(self):
        """The link's time in seconds: the transport's ``now()`` if it has one (simulated time),
        else the host's monotonic clock. Timeouts are measured on it."""
        clock = getattr(self.transport, "now", None)
        return clock() if clock else time.monotonic()

    _now = now

    def _receive(self, cmd, seq, deadline):
        """The response to request ``seq``; stale responses to earlier requests are dropped."""
        while True:
            frame = bytearray(self._read_exact(1 + _RSP_HDR, deadline))
            while frame[0] != SYNC_RESPONSE:
                frame = frame[1:] + self._read_exact(1, deadline)
            length = int.from_bytes(frame[4:6], "little")
            frame += self._read_exact(length + CRC_BYTES, deadline)
            try:
                rsp = decode_response(frame)
            except ProtocolError as e:
                raise HostLinkProtocolError(str(e)) from None
            if rsp.seq == seq and rsp.cmd == cmd:
                return rsp

    def request(self, cmd, addr=0, payload=b"", *, expect=0, idempotent=True):
        """Send one request and return its OK response's payload (``expect`` bytes).

        Retries requests the device rejected as damaged (BAD_CRC, TIMEOUT: they did nothing);
        retries lost or damaged responses only if ``idempotent`` (the request may have been
        executed). Raises :exc:`HostLinkStatusError` on an error status.
        """
        for attempt in range(self.retries + 1):
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            self.transport.write(encode_request(cmd, seq=seq, addr=addr, payload=payload))
            deadline = self._now() + self.timeout
            last = attempt == self.retries
            try:
                rsp = self._receive(cmd, seq, deadline)
            except (HostLinkTimeout, HostLinkProtocolError):
                if last or not idempotent:
                    raise
                self.retried += 1
                continue
            if rsp.status in _RETRIED and not last:
                self.retried += 1
                continue
            if rsp.status != Status.OK:
                raise HostLinkStatusError(cmd, addr, rsp.status)
            if len(rsp.payload) != expect:
                raise HostLinkProtocolError(f"{cmd.name} response has {len(rsp.payload)} "
                                            f"payload bytes, not {expect}")
            return rsp.payload

    # -- commands ----------------------------------------------------------------------------

    def ping(self):
        """The device's :class:`DeviceInfo` (protocol version and sizes)."""
        w = bytes_to_words(self.request(Cmd.PING, expect=PING_WORDS * WORD_BYTES))
        self._info = DeviceInfo(version=w[0], max_burst=w[1],
                                mem_words=w[2] | w[3] << _WORD_BITS, csr_count=w[4])
        return self._info

    @property
    def info(self):
        """:class:`DeviceInfo`, from a PING on first use."""
        return self._info or self.ping()

    def read_word(self, addr):
        return bytes_to_words(self.request(Cmd.READ, addr, expect=WORD_BYTES))[0]

    def write_word(self, addr, value):
        self.request(Cmd.WRITE, addr, words_to_bytes([value]))

    def read_words(self, addr, n):
        """``n`` words from ``addr``, in bursts of at most the device's ``max_burst``."""
        check_int(n, "Word count")
        words, burst = [], self.info.max_burst
        for start in range(0, n, burst):
            count = min(burst, n - start)
            data = self.request(Cmd.BURST_READ, addr + start, count.to_bytes(WORD_BYTES, "little"),
                                expect=count * WORD_BYTES)
            words += bytes_to_words(data)
        return words

    def write_words(self, addr, words):
        """Write ``words`` from ``addr``, in bursts of at most the device's ``max_burst``."""
        data, burst = words_to_bytes(words), self.info.max_burst * WORD_BYTES
        for start in range(0, len(data), burst):
            self.request(Cmd.BURST_WRITE, addr + start // WORD_BYTES, data[start:start + burst])

    def csr_read(self, index):
        return int.from_bytes(self.request(Cmd.CSR_READ, index, expect=CSR_BYTES), "little")

    def csr_write(self, index, value):
        check_int(value, "CSR value")
        if not 0 <= value < 1 << (8 * CSR_BYTES):
            raise ValueError(f"CSR value must fit in {8 * CSR_BYTES} bits, not {value!r}")
        self.request(Cmd.CSR_WRITE, index, value.to_bytes(CSR_BYTES, "little"),
                     idempotent=False)           # a CSR write may have side effects (CTRL)

    def start(self, entry):
        """Start the program at word address ``entry`` (CSR ENTRY, then CTRL = 1)."""
        self.request(Cmd.START, entry, idempotent=False)

    def status(self):
        """The :class:`LinkStatus`: the STATUS CSR and the link's error counters."""
        w = bytes_to_words(self.request(Cmd.STATUS, expect=STATUS_WORDS * WORD_BYTES))
        return LinkStatus(status=w[0] | w[1] << _WORD_BITS, frame_errors=w[2],
                          framing_errors=w[3], overruns=w[4])
