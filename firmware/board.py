"""The ``board`` backend: the SoC on a board (or its simulation), reached over the host link.

:class:`BoardDevice` is a :class:`~firmware.device.Device` whose every operation is a host-link
request (``docs/hostlink.md``): memory reads and writes are bursts, a run is START followed by
STATUS polls until the program is done, then CSR reads for its result and counters. Nothing
goes around the link, so the same code drives a ULX3S on ``/dev/ttyUSB0`` and the compiled SoC's
UART pins (:class:`sim.compiled.serial.SimSerial`)::

    from firmware import Accelerator
    from firmware.board import BoardDevice
    acc = Accelerator(BoardDevice("/dev/ttyUSB0", soc, baud=3_000_000))
    acc.matmul(a, b)
"""

import numpy as np

from spec.csr import Csr, CHIP_ID, config_value
from spec.hostlink import PROTOCOL_VERSION
from spec.isa import Error
from spec.memory import Fault
from spec.params import check_int
from spec.soc import SocConfig, DEFAULT_SOC
from .device import Device, DeviceTimeout, RunResult, check_watchdog
from .transport import HostLink, SerialTransport, Transport

__all__ = ["BoardDevice", "BoardMismatch", "config_word", "open_link"]

#: Counters a board reports (:meth:`BoardDevice.counters`): those with a CSR.
_COUNTER_CSRS = {
    "cycles": (Csr.CYCLES_LO, Csr.CYCLES_HI), "stall": (Csr.STALL_LO, Csr.STALL_HI),
    "busy_dma": (Csr.BUSY_DMA,), "busy_gemm": (Csr.BUSY_GEMM,), "busy_vec": (Csr.BUSY_VEC,),
    "sat_req": (Csr.SAT_REQ,), "sat_sgd": (Csr.SAT_SGD,),
}


_MASK32 = 0xFFFF_FFFF


class BoardMismatch(ValueError):
    """The device on the link is not the SoC the host expects (chip id, sizes, protocol)."""


def config_word(soc):
    """The value of the CONFIG CSR of a SoC built for ``soc``: rows, cols, lanes."""
    a = soc.config.array
    return config_value(a.rows, a.cols, soc.lanes)


def open_link(port_or_transport, *, baud=115200, timeout=1.0, retries=2):
    """A :class:`~firmware.transport.HostLink` over whatever ``port_or_transport`` is.

    Parameters
    ----------
    port_or_transport : str, HostLink, Transport or serial port object
        A serial port name or pyserial URL (opened at ``baud``); a ready client; a transport
        (anything with ``write(data)`` and ``read(n, timeout)``); or an open pyserial-like port
        (``serial.Serial``, :class:`sim.compiled.serial.SimSerial`).
    baud, timeout, retries
        The port's baud rate (ports opened by name) and the client's response timeout and
        retries.

    Raises
    ------
    TypeError
        If ``port_or_transport`` is none of these.
    firmware.transport.SerialPortError
        If the serial port named cannot be opened.
    """
    x = port_or_transport
    if isinstance(x, HostLink):
        return x
    if isinstance(x, str) or hasattr(x, "timeout") and hasattr(x, "read"):
        transport = SerialTransport(x, baud)
    elif isinstance(x, Transport) or hasattr(x, "read") and hasattr(x, "write"):
        transport = x
    else:
        raise TypeError(f"Board link must be a serial port name, a serial port, a transport or "
                        f"a HostLink, not {x!r}")
    return HostLink(transport, timeout=timeout, retries=retries)


class BoardDevice(Device):
    """The SoC over its UART host link as a device (the ``"board"`` backend).

    On construction the device is identified: PING (protocol version, main-memory size), then
    the ID, CONFIG and MEM_WORDS CSRs must match ``soc`` — a board built for another
    configuration is refused before any memory is touched.

    Parameters
    ----------
    port_or_transport : str, HostLink, Transport or serial port object
        See :func:`open_link`.
    soc : SocConfig, optional
        The configuration the board was built with (default :data:`spec.soc.DEFAULT_SOC`).
    baud : int
        Baud rate of a port opened by name.
    timeout : float
        Seconds of link time to wait for each response (simulated seconds on a simulated port).
    retries : int
        The client's retries of damaged requests and responses.
    run_timeout : float
        Seconds of link time a run without a cycle budget may take before
        :class:`~firmware.device.DeviceTimeout`.

    Members
    -------
    link : firmware.transport.HostLink
    info : firmware.transport.DeviceInfo
        The PING response.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    BoardMismatch
        If the device is not the expected SoC (the message names the field and both values).
    firmware.transport.SerialPortError
        If the serial port named cannot be opened (a :exc:`OSError`; the message names it).
    firmware.transport.HostLinkError
        If the device does not answer.
    """

    def __init__(self, port_or_transport, soc=None, *, baud=115200, timeout=1.0, retries=2,
                 run_timeout=600.0):
        if soc is None:
            soc = DEFAULT_SOC
        if not isinstance(soc, SocConfig):
            raise TypeError(f"SoC configuration must be a SocConfig, not {soc!r}")
        if not isinstance(run_timeout, (int, float)) or isinstance(run_timeout, bool):
            raise TypeError(f"Run timeout must be a number, not {run_timeout!r}")
        if not run_timeout > 0:
            raise ValueError(f"Run timeout must be positive, not {run_timeout!r}")
        self._soc = soc
        self._run_timeout = run_timeout
        self.link = open_link(port_or_transport, baud=baud, timeout=timeout, retries=retries)
        self.info = self.link.ping()
        self._identify()
        self._counters = dict.fromkeys(_COUNTER_CSRS, 0)

    def _identify(self):
        soc, info = self._soc, self.info
        checks = [("protocol version", info.version, PROTOCOL_VERSION),
                  ("main memory words (PING)", info.mem_words, soc.mem_words)]
        for what, got, want in checks:
            if got != want:
                raise BoardMismatch(f"Device {what} is {got}, expected {want}")
        for csr, want in ((Csr.ID, CHIP_ID), (Csr.CONFIG, config_word(soc)),
                          (Csr.MEM_WORDS, soc.mem_words)):
            got = self.link.csr_read(csr)
            if got != want:
                raise BoardMismatch(f"Device CSR {csr.name} is {got:#x}, expected {want:#x} "
                                    f"(is the board built for this SoC configuration?)")

    @property
    def config(self):
        return self._soc

    def close(self):
        """Close the link's transport (a port object passed in stays open)."""
        self.link.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, addr, words):
        self.link.write_words(addr, words.tolist())

    def _read(self, addr, n):
        return np.asarray(self.link.read_words(addr, n), dtype=np.uint16)

    def _csr64(self, lo, hi):
        return self.link.csr_read(lo) | self.link.csr_read(hi) << 32

    def _run(self, entry, max_cycles):
        check_int(entry, "Entry address")
        status = self.link.status()
        if status.running:
            raise RuntimeError(f"The device is still running a program (pc "
                               f"{self.link.csr_read(Csr.PC):#x})")
        # the SoC's watchdog stops a program at max_cycles by itself (Error.WATCHDOG); a budget
        # beyond its 32-bit CSR is watched from here instead
        hw_budget = max_cycles if max_cycles is not None and max_cycles <= _MASK32 else 0
        self.link.csr_write(Csr.BUDGET, hw_budget)
        self.link.start(entry)
        deadline = self.link.now() + self._run_timeout
        while True:
            status = self.link.status()
            if status.done and not status.running:
                break
            if max_cycles is not None and not hw_budget:
                cycles = self._csr64(Csr.CYCLES_LO, Csr.CYCLES_HI)
                if cycles > max_cycles:
                    raise DeviceTimeout(f"Program at {entry:#x} did not halt within {max_cycles}"
                                        f" cycles ({cycles} so far; it is still running)")
            if self.link.now() > deadline:
                raise DeviceTimeout(f"Program at {entry:#x} did not halt within "
                                    f"{self._run_timeout} s (pc {self.link.csr_read(Csr.PC):#x};"
                                    f" it is still running)")
        error = Error(status.error)
        pc = self.link.csr_read(Csr.PC)
        insns = self.link.csr_read(Csr.INSNS)
        fault = Fault(self.link.csr_read(Csr.DMA_FAULT)) if error == Error.DMA_FAULT \
            else Fault.NONE
        self._counters = {name: (self.link.csr_read(c[0]) if len(c) == 1 else self._csr64(*c))
                          for name, c in _COUNTER_CSRS.items()}
        return check_watchdog(entry, max_cycles,
                              RunResult(error, pc, self._counters["cycles"], insns, fault))

    def counters(self):
        """The last run's counters read from the CSRs: ``cycles``, ``stall``, ``busy_dma``,
        ``busy_gemm``, ``busy_vec``, ``sat_req``, ``sat_sgd`` (the selection unit's busy time
        has no CSR, so a board does not report ``busy_sel``)."""
        return dict(self._counters)
