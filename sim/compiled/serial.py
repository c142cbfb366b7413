"""A simulated serial port: the compiled SoC's UART pins driven from byte queues, as pyserial.

:class:`SimSerial` is a pyserial-like port (``write``, ``read(n)``, ``timeout``, ``in_waiting``,
``reset_input_buffer``...) on the receive and transmit pins of a :class:`~sim.compiled.CxxSim`
model. The bytes written are sent to the ``rx`` pin as 8N1 frames, ``divisor`` clock cycles per
bit, and the ``tx`` pin is decoded back into bytes, by a UART bit-banger in C++
(``sim/compiled/uart_port.cc``, its own small shared library, built once and cached) that steps the
model through the harness's C functions: Python pays one foreign call per ``read``, not one per
cycle. Time is simulated time: ``timeout`` and :meth:`SimSerial.now` are in seconds of the
model's clock (``clk_freq``).

:class:`SerialSocSim` is the whole SoC (:class:`rtl.soc.Soc`) built with its UART host link and
reachable, like a board, only through those pins; main memory can still be read through the
backdoor to check that nothing changed behind the protocol's back.

>>> dut = SerialSocSim(soc, divisor=4)                      # doctest: +SKIP
>>> link = HostLink(SerialTransport(dut.port))
>>> link.write_words(0, [1, 2, 3]); link.read_words(0, 3)
>>> dut.read_memory()[:3]
"""

import ctypes
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from spec import isa
from spec.hostlink import MAX_BURST
from spec.params import check_int
from spec.soc import SocConfig, DEFAULT_SOC
from .build import CxxSimBuildError, default_cache_dir
from .sim import DEFAULT_SIMULATOR, CxxSim, CxxSimError

__all__ = ["SimSerial", "SerialSocSim", "SerialTimeout", "port_library", "DEFAULT_BAUD"]

_SOURCE = Path(__file__).with_name("uart_port.cc")
_LIBRARY = "libuartport.so"
_ABI_VERSION = 1            # SU_ABI_VERSION of uart_port.cc
_CHUNK = 1 << 20            # cycles per foreign call in long waits (so that Ctrl-C gets through)
_BAD_STOP = 256             # queue item offset: a byte with a low stop bit

#: The nominal baud rate of a simulated port: with ``clk_freq`` not given, the model's clock is
#: taken to be ``divisor * DEFAULT_BAUD`` (the ULX3S's FT231X rate).
DEFAULT_BAUD = 3_000_000


class SerialTimeout(TimeoutError):
    """A blocking read (``timeout=None``) saw no byte for the port's ``hang_cycles``."""


_LIB = {}


def port_library(*, cache_dir=None, cxx=None):
    """The bit-banger's shared library (``uart_port.cc``), compiled once per source and
    compiler and cached next to the compiled models (:func:`sim.compiled.default_cache_dir`).

    Raises
    ------
    CxxSimBuildError
        If the C++ compiler is missing or fails.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cxx is None:
        cxx = os.environ.get("CXX") or "g++"
    cxx = shlex.split(cxx) if isinstance(cxx, str) else list(cxx)
    exe = shutil.which(cxx[0])
    if exe is None:
        raise CxxSimBuildError(f"C++ compiler {cxx[0]!r} not found (set $CXX or install g++); "
                               f"the simulated serial port needs one")
    source = _SOURCE.read_text()
    flags = ["-std=c++17", "-O2", "-fPIC", "-shared"]
    key = hashlib.sha256("\0".join([source, exe, *flags]).encode()).hexdigest()[:24]
    lib = _LIB.get((str(cache_dir), key))
    if lib is not None:
        return lib
    entry = cache_dir / f"uartport-{key}"
    if not (entry / _LIBRARY).is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-uartport-", dir=cache_dir))
        try:
            (tmp / "uart_port.cc").write_text(source)
            cmd = [*cxx, *flags, "-o", _LIBRARY, "uart_port.cc"]
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            if proc.returncode != 0:
                raise CxxSimBuildError(f"Compiling the simulated serial port failed (exit "
                                       f"{proc.returncode}, {shlex.join(cmd)}):\n"
                                       f"{(proc.stdout + proc.stderr)[-2000:]}")
            (tmp / "build.json").write_text(json.dumps({"command": cmd, "key": key}))
            tmp.chmod(0o755)
            try:
                os.rename(tmp, entry)
            except OSError:
                if not (entry / _LIBRARY).is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    lib = ctypes.CDLL(str(entry / _LIBRARY))
    port, u64, vp = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p
    sigs = {
        "su_abi_version": ([], ctypes.c_int),
        "su_create": ([vp, vp, vp, vp, ctypes.c_int, ctypes.c_int, ctypes.c_uint32], port),
        "su_destroy": ([port], None),
        "su_write": ([port, ctypes.POINTER(ctypes.c_int32), u64], ctypes.c_int),
        "su_run": ([port, u64, u64, ctypes.c_int], ctypes.c_int64),
        "su_read": ([port, ctypes.c_char_p, u64], u64),
        "su_available": ([port], u64),
        "su_pending": ([port], u64),
        "su_framing_errors": ([port], u64),
        "su_cycles": ([port], u64),
        "su_clear": ([port, ctypes.c_int, ctypes.c_int], None),
        "su_reset": ([port], None),
    }
    for name, (argtypes, restype) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    if lib.su_abi_version() != _ABI_VERSION:
        raise CxxSimBuildError(f"{entry / _LIBRARY} has ABI {lib.su_abi_version()}, expected "
                               f"{_ABI_VERSION}")
    _LIB[(str(cache_dir), key)] = lib
    return lib


def _fn_address(fn):
    return ctypes.cast(fn, ctypes.c_void_p).value


class SimSerial:
    """A pyserial-like serial port on the UART pins of a compiled model.

    Writing queues bytes (no clock cycles pass); cycles run, in C++, while the port is read or
    waited on: :meth:`read` runs the model until ``size`` bytes arrived or ``timeout`` seconds of
    simulated time passed, exactly as a blocking read of a real port lets the device run.

    Parameters
    ----------
    sim : CxxSim
        The model; its receive pin must be a 1-bit top-level input, its transmit pin a 1-bit
        signal.
    divisor : int
        Clock cycles per bit (the device UART's divisor; at least 2).
    clk_freq : float, optional
        The model's clock in Hz, for converting timeouts (default ``divisor * DEFAULT_BAUD``).
    rx, tx : str
        Names of the device's receive (driven by the port) and transmit (decoded) pins.
    timeout : float or None
        Default read timeout in simulated seconds; ``None`` blocks until the bytes arrive (at
        most ``hang_cycles`` without a byte, then :class:`SerialTimeout`), 0 does not wait.
    hang_cycles : int
        How long a blocking read waits for a byte before it gives up.
    cache_dir : path, optional
        Where the bit-banger's library is cached (default: the compiled models' cache).

    Attributes
    ----------
    port : str
        ``"sim://<model name>"``.
    baudrate : float
        ``clk_freq / divisor``.
    """

    def __init__(self, sim, *, divisor, clk_freq=None, rx="rx", tx="tx", timeout=None,
                 hang_cycles=100_000_000, cache_dir=None):
        if not isinstance(sim, CxxSim):
            raise TypeError(f"Simulator must be a CxxSim, not {sim!r}")
        check_int(divisor, "UART divisor")
        if divisor < 2:
            raise ValueError(f"UART divisor must be at least 2, not {divisor!r}")
        if clk_freq is None:
            clk_freq = divisor * DEFAULT_BAUD
        if not isinstance(clk_freq, (int, float)) or isinstance(clk_freq, bool):
            raise TypeError(f"Clock frequency must be a number, not {clk_freq!r}")
        if not clk_freq > 0:
            raise ValueError(f"Clock frequency must be positive, not {clk_freq!r}")
        check_int(hang_cycles, "Hang limit")
        if hang_cycles < 1:
            raise ValueError(f"Hang limit must be a positive integer, not {hang_cycles!r}")
        rx_item, tx_item = sim.item(rx), sim.item(tx)
        if not (rx_item.input and rx_item.width == 1):
            raise CxxSimError(f"Receive pin {rx!r} must be a 1-bit top-level input")
        if tx_item.memory or tx_item.width != 1:
            raise CxxSimError(f"Transmit pin {tx!r} must be a 1-bit signal")
        self._lib = port_library(cache_dir=cache_dir)
        self._sim = sim
        # The harness's own C functions drive the model (see uart_port.cc).
        lib, handle = sim.library, sim.handle
        self._h = self._lib.su_create(handle, _fn_address(lib.cs_step), _fn_address(lib.cs_set64),
                                      _fn_address(lib.cs_get64), rx_item.id, tx_item.id, divisor)
        if not self._h:
            raise CxxSimError("Cannot create the simulated serial port")
        self._divisor, self._clk_freq = divisor, float(clk_freq)
        self._hang = hang_cycles
        self.timeout = timeout
        self.port = f"sim://{sim.build_info.name}"
        self.baudrate = self._clk_freq / divisor

    # pyserial's interface ----------------------------------------------------------------------

    @property
    def timeout(self):
        """Read timeout in simulated seconds (``None``: block)."""
        return self._timeout

    @timeout.setter
    def timeout(self, value):
        if value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"Timeout must be a number or None, not {value!r}")
            if value < 0:
                raise ValueError(f"Timeout must be non-negative, not {value!r}")
        self._timeout = value

    @property
    def is_open(self):
        return self._h is not None

    def _check_open(self):
        if self._h is None:
            raise ValueError("Attempting to use a port that is not open")

    def write(self, data):
        """Queue ``data`` (bytes-like) for sending; returns its length. No cycles pass."""
        self._check_open()
        data = bytes(data)
        self._queue(list(data))
        return len(data)

    def read(self, size=1):
        """Up to ``size`` bytes: runs the model until they arrived, or until ``timeout``
        simulated seconds passed (fewer bytes then; ``timeout=0``: what has arrived)."""
        self._check_open()
        check_int(size, "Read size")
        if size < 0:
            raise ValueError(f"Read size must be a non-negative integer, not {size!r}")
        if self._timeout is None:
            while self._lib.su_available(self._h) < size:
                have = self._lib.su_available(self._h)
                self._run(self._hang, size)
                if self._lib.su_available(self._h) == have:
                    raise SerialTimeout(f"{self.port}: no byte for {self._hang} cycles "
                                        f"({have} of {size} bytes received)")
        else:
            self._run(round(self._timeout * self._clk_freq), size)
        buf = ctypes.create_string_buffer(max(size, 1))
        n = self._lib.su_read(self._h, buf, size)
        return buf.raw[:n]

    @property
    def in_waiting(self):
        """Bytes received and not yet read. Polling it lets time pass, as it does on a real
        port: every call first runs the model for one byte time (``10 · divisor`` cycles)."""
        self._check_open()
        self._run(10 * self._divisor, 0)
        return int(self._lib.su_available(self._h))

    @property
    def out_waiting(self):
        """Bytes (and idle gaps) queued and not yet completely sent. No cycles pass."""
        self._check_open()
        return int(self._lib.su_pending(self._h))

    def flush(self):
        """Run the model until everything written has been sent."""
        self._check_open()
        while self._lib.su_pending(self._h):
            self._check(self._lib.su_run(self._h, _CHUNK, 0, 1))

    def reset_input_buffer(self):
        """Drop the bytes received and not yet read."""
        self._check_open()
        self._lib.su_clear(self._h, 0, 1)

    def reset_output_buffer(self):
        """Drop the bytes not yet sent (a frame being sent is cut short: the line goes idle)."""
        self._check_open()
        self._lib.su_clear(self._h, 1, 0)

    def close(self):
        """Release the port (the model stays). Idempotent."""
        if self._h is not None:
            self._lib.su_destroy(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()

    # Simulation extras -------------------------------------------------------------------------

    @property
    def divisor(self):
        return self._divisor

    @property
    def clk_freq(self):
        return self._clk_freq

    def now(self):
        """Simulated time in seconds (the model's cycle count / ``clk_freq``): the clock that
        :class:`firmware.transport.HostLink` uses for its timeouts."""
        return self._sim.cycle / self._clk_freq

    @property
    def cycles(self):
        """Cycles this port has run the model."""
        return int(self._lib.su_cycles(self._h))

    @property
    def framing_errors(self):
        """Bytes from the device dropped for a low stop bit."""
        return int(self._lib.su_framing_errors(self._h))

    def gap(self, cycles):
        """Keep the line idle for exactly ``cycles`` cycles after what was written so far."""
        self._check_open()
        check_int(cycles, "Gap")
        if cycles < 0:
            raise ValueError(f"Gap must be a non-negative integer, not {cycles!r}")
        items = []
        while cycles:
            step = min(cycles, (1 << 31) - 1)
            items.append(-step)
            cycles -= step
        self._queue(items)

    def write_bad_stop(self, data):
        """Queue ``data`` with a low stop bit on every byte (framing errors at the device)."""
        self._check_open()
        self._queue([_BAD_STOP + b for b in bytes(data)])

    def run(self, cycles):
        """Run ``cycles`` cycles, sending and receiving."""
        self._check_open()
        check_int(cycles, "Cycle count")
        self._run(cycles, 0)

    def reset(self):
        """Forget everything queued, received and counted (after the model was restored)."""
        self._check_open()
        self._lib.su_reset(self._h)

    def _queue(self, items):
        if items:
            arr = (ctypes.c_int32 * len(items))(*items)
            self._check(self._lib.su_write(self._h, arr, len(items)))

    def _run(self, cycles, want):
        while cycles > 0:
            chunk = min(cycles, _CHUNK)
            ran = self._check(self._lib.su_run(self._h, chunk, want, 0))
            cycles -= ran
            if ran < chunk:
                return

    def _check(self, rc):
        if rc < 0:
            raise CxxSimError(f"{self.port}: the simulated serial port failed (error {rc})")
        return rc


class SerialSocSim:
    """The SoC with its UART host link in the compiled simulator, reached through its pins.

    Parameters
    ----------
    soc : SocConfig, optional
        Default :data:`spec.soc.DEFAULT_SOC`.
    divisor : int
        The host link's UART divisor (clock cycles per bit; small in simulation, e.g. 4).
    clk_freq : float, optional
        The clock in Hz (default ``divisor * DEFAULT_BAUD``): only converts seconds to cycles.
    timeout : int, optional
        The bridge's inter-byte timeout in cycles (default: the link's, 1000 byte times).
    max_burst : int
        The bridge's longest burst.
    stall_rate, seed : float, int
        Main memory's random stalls (0: the deterministic memory model).
    cache_dir, progress, cxxflags, cxxrtl_options
        As for :class:`~sim.compiled.CxxSim` (``cxxflags=("-O0",)`` compiles several times faster
        and runs slower: the default test suite's choice).
    simulator : str
        ``"verilator"`` or ``"cxxrtl"`` (default :data:`~sim.compiled.DEFAULT_SIMULATOR`, as for
        :class:`~sim.compiled.CxxSim`): the same pins cycle for cycle; Verilator runs the default
        SoC several times faster.

    Attributes
    ----------
    port : SimSerial
        The serial port (``timeout`` 0.05 simulated seconds by default).
    sim : CxxSim
    dut : rtl.soc.Soc
    """

    def __init__(self, soc=None, *, divisor=4, clk_freq=None, timeout=None,
                 max_burst=MAX_BURST, stall_rate=0, seed=1, cache_dir=None, progress=False,
                 cxxflags=None, cxxrtl_options=None, simulator=DEFAULT_SIMULATOR):
        from rtl.soc import Soc
        if soc is None:
            soc = DEFAULT_SOC
        if not isinstance(soc, SocConfig):
            raise TypeError(f"SoC configuration must be a SocConfig, not {soc!r}")
        link = {"divisor": divisor, "max_burst": max_burst}
        if timeout is not None:
            link["timeout"] = timeout
        self._soc = soc
        self.dut = Soc(soc, stall_rate=stall_rate, seed=seed, host_link=link)
        tag = hashlib.sha256(repr((soc, sorted(link.items()), stall_rate)).encode()).hexdigest()
        kwargs = {}
        if cxxflags is not None:
            kwargs["cxxflags"] = tuple(cxxflags)
        if cxxrtl_options is not None:
            kwargs["cxxrtl_options"] = tuple(cxxrtl_options)
        # what the port and the checks read besides ports and memories (state for Verilator)
        expose = [self.dut.running] if simulator == "verilator" else ()
        self.sim = CxxSim(self.dut, name=f"soclink-{tag[:10]}", cache_dir=cache_dir,
                          progress=progress, simulator=simulator, expose=expose, **kwargs)
        self._mem = self.sim.memory("memsys.mainmem.storage")
        word = isa.INSN_WORDS
        if self._mem.width != 16 * word or self._mem.depth * word != soc.mem_words:
            raise CxxSimError(f"Unexpected main-memory layout {self._mem.width}×"
                              f"{self._mem.depth}")
        self.sim.set(self.dut.csr_re, 0)
        self.sim.set(self.dut.csr_we, 0)
        self._power_on = self.sim.snapshot()
        self.port = SimSerial(self.sim, divisor=divisor, clk_freq=clk_freq, timeout=0.05,
                              cache_dir=cache_dir)

    @property
    def config(self):
        return self._soc

    @property
    def divisor(self):
        return self.port.divisor

    def power_on(self):
        """Back to the power-on state (memories zero, registers at their initial values); the
        port forgets everything queued and received."""
        self.sim.restore(self._power_on)
        self.port.reset()

    def read_memory(self):
        """The whole main-memory image through the backdoor (``uint16`` array; no cycles)."""
        return self._mem.read_raw().view("<u2").ravel().copy()

    def write_memory(self, addr, words):
        """Overwrite main memory from word ``addr`` through the backdoor (no cycles)."""
        image = self.read_memory()
        w = np.asarray(words, dtype=np.int64).ravel() & 0xFFFF
        check_int(addr, "Address")
        if addr < 0 or addr + w.size > image.size:
            raise ValueError(f"Write of {w.size} words at {addr} is outside main memory "
                             f"({image.size} words)")
        image[addr:addr + w.size] = w
        self._mem.write_raw(0, image.view("<u4").reshape(self._mem.depth, -1))

    @property
    def running(self):
        return bool(self.sim.get(self.dut.running))

    def close(self):
        """Free the port and the model. Idempotent."""
        self.port.close()
        self.sim.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
