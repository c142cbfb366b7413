"""The Python side of the compiled simulator: :class:`CxxSim`, a ctypes driver of the harness."""

import contextlib
import ctypes
import re
import sys
import time

import numpy as np
from amaranth.hdl import Elaboratable, Signal, ValueCastable
from amaranth.lib import wiring

from .build import (DEFAULT_CXXFLAGS, DEFAULT_CXXRTL_OPTIONS, HARNESS_VERSION, BuildInfo,
                    CxxSimBuildError, build_library, elaborate, signal_name)
from .verilator import build_verilator

__all__ = ["CxxSim", "CxxSimError", "SimItem", "SimMemory", "SIMULATORS", "DEFAULT_SIMULATOR"]

#: The engines a model can be built with: Yosys's CXXRTL (every named signal readable) or
#: Verilator (faster; only ports, kept state and exposed signals are items).
SIMULATORS = ("cxxrtl", "verilator")
#: The engine every compiled model is built with unless its caller names one: Verilator, which
#: builds the default SoC in about a minute and runs it several times faster than CXXRTL.
DEFAULT_SIMULATOR = "verilator"

_ABI_VERSION = 2     # CS_ABI_VERSION of harness_abi.h

_CHUNK = 1 << 20      # cycles per foreign call in long runs (about a second)

_FLAG_MEMORY, _FLAG_WRITABLE, _FLAG_INPUT, _FLAG_OUTLINE = 1, 2, 4, 8     # cs_item_info

_ERRORS = {
    -1: "no such item",
    -2: "is not writable (driven by combinational logic, or a constant)",
    -3: "is the wrong kind of item (a memory used as a signal, or a signal as a memory)",
    -4: "has the wrong width for this operation",
    -5: "rows out of range",
    -6: "file error",
    -7: "wrong state",
}


class CxxSimError(RuntimeError):
    """A compiled-simulator operation failed (bad name, read-only signal, out-of-range rows...)."""


class SimItem:
    """A signal or memory of a :class:`CxxSim` model, looked up once by name.

    Attributes
    ----------
    name : str
        CXXRTL's name: the hierarchy below the top module joined by spaces (``"mac acc"``).
    id : int
        The harness's item id.
    width, depth : int
        Bits per value; rows (1 for a signal).
    signed : bool
        Values read back are sign-extended (from the Amaranth shape when the design names the
        signal; unsigned otherwise).
    memory, writable, input, on_demand : bool
        A memory; writable (inputs, registers, memories); a top-level input; computed on demand
        (a combinational signal that the optimiser removed: slower to read every cycle; list it
        in ``expose`` to make it direct state).
    """
    __slots__ = ("name", "id", "width", "depth", "signed", "memory", "writable", "input",
                 "on_demand", "words")

    def __init__(self, name, id, width, depth, flags, signed):
        self.name, self.id, self.width, self.depth, self.signed = name, id, width, depth, signed
        self.memory = bool(flags & _FLAG_MEMORY)
        self.writable = bool(flags & _FLAG_WRITABLE)
        self.input = bool(flags & _FLAG_INPUT)
        self.on_demand = bool(flags & _FLAG_OUTLINE)
        self.words = (width + 31) // 32

    def __repr__(self):
        kind = f"memory {self.width}×{self.depth}" if self.memory else \
            f"{'signed' if self.signed else 'unsigned'}({self.width})"
        return f"<SimItem {self.name!r} {kind}>"

    def to_raw(self, value):
        """``value`` (an int, negative allowed) as the unsigned bit pattern of the item's width."""
        if not isinstance(value, (int, np.integer)):
            raise TypeError(f"Value of {self.name!r} must be an integer, not {value!r}")
        value = int(value)
        low, high = (-(1 << (self.width - 1)) if self.width else 0), (1 << self.width) - 1
        if not low <= value <= high:
            raise ValueError(f"Value {value} does not fit {self.name!r} ({self.width} bits)")
        return value & high

    def from_raw(self, raw, signed=None):
        signed = self.signed if signed is None else signed
        if signed and self.width and raw >> (self.width - 1) & 1:
            return raw - (1 << self.width)
        return raw


class SimMemory:
    """Backdoor access to one memory of a :class:`CxxSim` model (no clock cycles pass).

    Rows are storage indices ``0 .. depth-1``. Reads and writes go straight to the memory's
    contents, as ``ctx.get(mem.data[i])``/``ctx.set(...)`` do in Amaranth's simulator; a write
    is seen by the design's read ports from the next clock edge (asynchronous read ports at
    once).
    """

    def __init__(self, sim, item):
        self._sim, self._item = sim, item

    @property
    def name(self):
        return self._item.name

    @property
    def width(self):
        return self._item.width

    @property
    def depth(self):
        return self._item.depth

    def __len__(self):
        return self._item.depth

    def _range(self, start, count):
        depth = self._item.depth
        if not isinstance(start, (int, np.integer)) or isinstance(start, bool):
            raise TypeError(f"Row index must be an integer, not {start!r}")
        start = int(start)
        if count is None:
            count = depth - start
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool):
            raise TypeError(f"Row count must be an integer, not {count!r}")
        count = int(count)
        if start < 0 or count < 0 or start + count > depth:
            raise IndexError(f"Rows {start}..{start + count - 1} out of range for memory "
                             f"{self.name!r} of depth {depth}")
        return start, count

    def read(self, start=0, count=None, *, signed=None):
        """Rows ``start .. start+count-1`` (default: to the end).

        Returns a numpy ``int64`` array for widths up to 63 bits (``uint64`` for 64), else a list
        of Python ints. ``signed``: sign-extend (default: unsigned; memories have no shape in the
        compiled model).
        """
        start, count = self._range(start, count)
        item = self._item
        words = np.zeros((count, item.words), dtype=np.uint32)
        if count:
            self._sim._check(self._sim._lib.cs_mem_read(
                self._sim._h, item.id, start, count, words.ctypes.data_as(_U32P)), item)
        if item.width <= 64:
            raw = words[:, 0].astype(np.uint64)
            if item.words == 2:
                raw |= words[:, 1].astype(np.uint64) << np.uint64(32)
            if item.width == 64:
                return raw.view(np.int64) if signed else raw
            raw = raw.astype(np.int64)
            if signed:
                sign = np.int64(1) << np.int64(item.width - 1)
                raw = (raw ^ sign) - sign
            return raw
        values = []
        for row in words:
            raw = sum(int(w) << (32 * i) for i, w in enumerate(row))
            values.append(SimItem.from_raw(item, raw, bool(signed)))
        return values

    def write(self, start, values):
        """Write ``values`` from row ``start``: ints (negative allowed) in any sequence, numpy
        array or tensor; integer arrays of memories up to 64 bits take a vectorised path."""
        item = self._item
        array = np.asarray(values)
        if array.ndim == 1 and np.issubdtype(array.dtype, np.integer) and item.width <= 64:
            start, count = self._range(start, len(array))
            low, high = -(1 << (item.width - 1)), (1 << item.width) - 1
            if count and (int(array.min()) < low or int(array.max()) > high):
                raise ValueError(f"Values do not fit memory {self.name!r} ({item.width} bits)")
            raw = array.astype(np.int64).view(np.uint64) & np.uint64(high)
            words = np.empty((count, item.words), dtype=np.uint32)
            words[:, 0] = raw & np.uint64(0xFFFFFFFF)
            if item.words == 2:
                words[:, 1] = raw >> np.uint64(32)
        else:
            values = [item.to_raw(v) for v in values]
            start, count = self._range(start, len(values))
            words = np.zeros((count, item.words), dtype=np.uint32)
            for r, v in enumerate(values):
                for i in range(item.words):
                    words[r, i] = (v >> (32 * i)) & 0xFFFFFFFF
        if count:
            self._sim._check(self._sim._lib.cs_mem_write(
                self._sim._h, item.id, start, count, words.ctypes.data_as(_U32P)), item)

    def read_raw(self, start=0, count=None):
        """Rows ``start .. start+count-1`` as stored: a ``uint32`` array of shape
        ``(count, ceil(width / 32))``, little-endian 32-bit words of each row (the fast path for
        wide memories; unpack them with numpy)."""
        start, count = self._range(start, count)
        words = np.zeros((count, self._item.words), dtype=np.uint32)
        if count:
            self._sim._check(self._sim._lib.cs_mem_read(
                self._sim._h, self._item.id, start, count, words.ctypes.data_as(_U32P)),
                self._item)
        return words

    def write_raw(self, start, words):
        """Write rows from ``start`` as stored: ``words`` of shape ``(count, ceil(width / 32))``
        (see :meth:`read_raw`; bits above the width are ignored)."""
        words = np.ascontiguousarray(words, dtype=np.uint32)
        if words.ndim != 2 or words.shape[1] != self._item.words:
            raise ValueError(f"Raw rows of memory {self.name!r} must have shape (count, "
                             f"{self._item.words}), not {words.shape}")
        start, count = self._range(start, words.shape[0])
        if count:
            self._sim._check(self._sim._lib.cs_mem_write(
                self._sim._h, self._item.id, start, count, words.ctypes.data_as(_U32P)),
                self._item)

    def __getitem__(self, index):
        return int(self.read(index, 1)[0])

    def __setitem__(self, index, value):
        self.write(index, [value])


_U32P = ctypes.POINTER(ctypes.c_uint32)
_U64P = ctypes.POINTER(ctypes.c_uint64)
_INTP = ctypes.POINTER(ctypes.c_int)


def _bind(lib):
    sim = ctypes.c_void_p
    sigs = {
        "cs_abi_version": ([], ctypes.c_int),
        "cs_create": ([], sim),
        "cs_destroy": ([sim], None),
        "cs_error": ([sim], ctypes.c_char_p),
        "cs_item_count": ([sim], ctypes.c_int),
        "cs_item_name": ([sim, ctypes.c_int], ctypes.c_char_p),
        "cs_item_info": ([sim, ctypes.c_int, _U32P, _U32P, _U32P], ctypes.c_int),
        "cs_set_clock": ([sim, ctypes.c_int, ctypes.c_int], ctypes.c_int),
        "cs_cycle": ([sim], ctypes.c_uint64),
        "cs_get64": ([sim, ctypes.c_int, _U64P], ctypes.c_int),
        "cs_set64": ([sim, ctypes.c_int, ctypes.c_uint64], ctypes.c_int),
        "cs_get_words": ([sim, ctypes.c_int, _U32P], ctypes.c_int),
        "cs_set_words": ([sim, ctypes.c_int, _U32P], ctypes.c_int),
        "cs_mem_read": ([sim, ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64, _U32P], ctypes.c_int),
        "cs_mem_write": ([sim, ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64, _U32P],
                         ctypes.c_int),
        "cs_step": ([sim, ctypes.c_uint64], ctypes.c_int),
        "cs_reset": ([sim, ctypes.c_uint64], ctypes.c_int),
        "cs_run_until": ([sim, ctypes.c_int, ctypes.c_uint64], ctypes.c_int64),
        "cs_run_io": ([sim, ctypes.c_uint64, ctypes.c_int, _INTP, _U64P, ctypes.c_int, _INTP,
                       _U64P], ctypes.c_int),
        "cs_snapshot": ([sim], ctypes.c_int),
        "cs_restore": ([sim, ctypes.c_int], ctypes.c_int),
        "cs_snapshot_free": ([sim, ctypes.c_int], ctypes.c_int),
        "cs_vcd_open": ([sim, ctypes.c_char_p], ctypes.c_int),
        "cs_vcd_close": ([sim], ctypes.c_int),
    }
    for name, (argtypes, restype) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    return lib


def _stderr_progress(message):
    print(f"cxxsim: {message}", file=sys.stderr, flush=True)


class CxxSim:
    """A compiled (Verilator or CXXRTL, + g++) simulation of an Amaranth design, driven from Python.

    Construction elaborates the design, generates C++ with the engine (:data:`DEFAULT_SIMULATOR`
    unless ``simulator`` names the other), compiles it with the engine's harness
    (``sim/compiled/vl_harness.cc`` or ``harness.cc``, both over ``harness_abi.h``) into a shared
    library — or takes the library from the build cache — and loads it. The model starts in its
    power-on state (every signal at its ``init``) with the clock low; cycles run only when asked
    (:meth:`step`, :meth:`reset`, :meth:`run_until`, :meth:`run`), inside C++.

    Timing matches Amaranth's simulator: after ``step(1)`` every signal reads as it would after
    ``await ctx.tick()`` with the same inputs; an input set with :meth:`set` holds until set
    again and is seen by combinational logic at once.

    Naming signals. Everywhere a signal is expected you may pass

    * an Amaranth :class:`Signal` (or a value-castable wrapping one, e.g. a ``data.View``) of the
      design — top-level ports or internal signals alike;
    * or its name: the submodule hierarchy below the top, then the signal's name, separated by
      dots or spaces — ``"mac.acc"`` or ``"mac acc"`` (CXXRTL's own spelling). Top-level ports
      of a component are named by their signature path joined with ``__`` (``"i_a__0"`` for
      lane 0 of ``i_a``); the clock and reset are ``"clk"``/``"rst"``. Memories are named the
      same way: ``"mem"`` for ``m.submodules.mem = Memory(...)`` in the top module.

    :attr:`names` lists every name the model knows.

    Parameters
    ----------
    design : Elaboratable
        The design; a :class:`wiring.Component` brings its own ports.
    ports : list of Signal or dict, optional
        Top-level ports of a design that is not a component (as for
        :func:`amaranth.back.rtlil.convert`).
    expose : iterable of Signal or str
        Signals to keep as direct state: always readable at full speed (by default signals that
        the optimiser removed are still readable, but computed on demand). Checked to exist.
    clock, reset : str or None
        Names of the clock and reset inputs (the ``sync`` domain's ``"clk"``/``"rst"``);
        ``reset=None`` for a design without a reset, ``clock=None, reset=None`` for a purely
        combinational one (then only :meth:`get`/:meth:`set` and memories work).
    name : str, optional
        A short name for progress messages and the cache directory (default: the design's
        class name, lower case).
    cache_dir : path, optional
        Default ``$APPRENTICE_CXXSIM_CACHE`` or ``~/.cache/apprentice/cxxsim``.
    cxx : str or list of str, optional
        The C++ compiler command (default ``$CXX`` or ``g++``).
    cxxflags : tuple of str
        Optimisation flags (default ``("-O2",)``).
    cxxrtl_options : tuple of str
        Options of Yosys's ``write_cxxrtl`` (default ``("-O6", "-g4")``; add ``"-noflatten"``
        to keep the hierarchy: much faster to compile for a large design).
    simulator : str
        One of :data:`SIMULATORS`, default :data:`DEFAULT_SIMULATOR` (``"verilator"``).
        ``"verilator"`` (:mod:`sim.compiled.verilator`) builds faster and runs a large design
        several times faster; its items are the top-level ports, the state Verilator keeps —
        registers, memories — and the signals in ``expose``; signals it optimised away are not
        readable. ``"cxxrtl"`` (Yosys's CXXRTL) reads every named signal of the design. Both run
        the same cycles bit for bit.
    progress : bool or callable
        Report what the build is doing: ``True`` prints to standard error, a callable receives
        each message, ``False`` is silent.

    Attributes
    ----------
    build_info : BuildInfo
        Cache key, library path, whether it was a cache hit, and how long each step took.

    Raises
    ------
    TypeError
        If ``design`` is not elaboratable, ``ports`` is missing for a non-component, or another
        argument has the wrong type.
    CxxSimBuildError
        If Yosys or the C++ compiler is missing or fails; the message shows the tool's last
        lines and names the fallback, Amaranth's Python simulator (``--backend pysim``).
    CxxSimError
        If the clock or reset is not a 1-bit input of the design.
    """

    def __init__(self, design, *, ports=None, expose=(), clock="clk", reset="rst", name=None,
                 cache_dir=None, cxx=None, cxxflags=DEFAULT_CXXFLAGS, progress=True,
                 cxxrtl_options=DEFAULT_CXXRTL_OPTIONS, simulator=DEFAULT_SIMULATOR):
        if simulator not in SIMULATORS:
            raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, not "
                             f"{simulator!r}")
        if not isinstance(design, Elaboratable) and not hasattr(design, "elaborate"):
            raise TypeError(f"Design must be an elaboratable, not {design!r}")
        if ports is None and not isinstance(design, wiring.Component):
            raise TypeError("Design is not a wiring.Component: pass its top-level `ports=`")
        if clock is not None and not isinstance(clock, str):
            raise TypeError(f"Clock name must be a string or None, not {clock!r}")
        if reset is not None and not isinstance(reset, str):
            raise TypeError(f"Reset name must be a string or None, not {reset!r}")
        if clock is None and reset is not None:
            raise ValueError(f"A model without a clock has no reset either: pass reset=None, "
                             f"not {reset!r}")
        if name is None:
            name = type(design).__name__.lower()
        if not isinstance(name, str):
            raise TypeError(f"Design name must be a string, not {name!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"Design name must be letters, digits, '_', '.' or '-', not {name!r}")
        if progress is True:
            progress = _stderr_progress
        elif progress is False or progress is None:
            progress = None
        elif not callable(progress):
            raise TypeError(f"Progress must be a bool or a callable, not {progress!r}")
        expose = [self._expose_key(x) for x in expose]

        self._h = None
        say = progress or (lambda msg: None)
        say(f"elaborating {name}")
        start = time.perf_counter()
        rtlil_text, self._signals, self._by_signal = elaborate(design, ports, expose=expose)
        if simulator == "verilator":
            library, key, cached, compile_seconds, cxx_lines = build_verilator(
                name, rtlil_text, cache_dir=cache_dir, cxx=cxx, flags=cxxflags,
                progress=progress)
            cxxrtl_options = ()
        else:
            library, key, cached, compile_seconds, cxx_lines = build_library(
                name, rtlil_text, cache_dir=cache_dir, cxx=cxx, flags=cxxflags,
                progress=progress, cxxrtl_options=cxxrtl_options)
        self.build_info = BuildInfo(name=name, key=key, library=library, cached=cached,
                                    build_seconds=time.perf_counter() - start,
                                    compile_seconds=compile_seconds, cxx_lines=cxx_lines,
                                    cxxflags=tuple(cxxflags),
                                    cxxrtl_options=tuple(cxxrtl_options),
                                    simulator=simulator)

        self._lib = _bind(ctypes.CDLL(str(library)))
        if self._lib.cs_abi_version() != _ABI_VERSION:
            raise CxxSimBuildError(f"{library} has harness ABI {self._lib.cs_abi_version()}, "
                                   f"expected {_ABI_VERSION} (harness version {HARNESS_VERSION})")
        self._h = self._lib.cs_create()
        self._ids = {self._lib.cs_item_name(self._h, i).decode(): i
                     for i in range(self._lib.cs_item_count(self._h))}
        self._items = {}
        if clock is not None:
            clk = self._lookup_name(clock, "Clock")
            rst = self._lookup_name(reset, "Reset").id if reset is not None else -1
            rc = self._lib.cs_set_clock(self._h, clk.id, rst)
            if rc < 0:
                raise CxxSimError(self._lib.cs_error(self._h).decode())
        self._has_clock, self._has_reset = clock is not None, reset is not None

    @staticmethod
    def _expose_key(x):
        if isinstance(x, ValueCastable):
            x = x.as_value()
        if not isinstance(x, (Signal, str)):
            raise TypeError(f"Signal to expose must be a Signal or a name, not {x!r}")
        return x

    # Lifetime --------------------------------------------------------------------------------

    def close(self):
        """Free the model (an open VCD window is flushed and closed). Idempotent."""
        if self._h is not None:
            self._lib.cs_destroy(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()

    @property
    def library(self):
        """The loaded harness (a :class:`ctypes.CDLL`): its ``cs_*`` functions, for C code that
        drives the model itself, as the simulated serial port (:mod:`sim.compiled.serial`)
        does with :attr:`handle`."""
        return self._lib

    @property
    def handle(self):
        """The model's handle (the harness's ``cs_sim *``), the first argument of every ``cs_*``
        function of :attr:`library`; None once the model is closed."""
        return self._h

    # Names -----------------------------------------------------------------------------------

    @property
    def names(self):
        """Every signal and memory name the model knows (CXXRTL spelling), sorted."""
        return sorted(self._ids)

    def __contains__(self, name):
        return signal_name(name, self._ids) in self._ids

    def _lookup_name(self, name, what="Signal"):
        key = signal_name(name, self._ids)
        if key not in self._ids:
            raise CxxSimError(f"{what} {name!r} is not in the compiled model "
                              f"(see CxxSim.names for what is)")
        return self.item(key)

    def item(self, signal):
        """The :class:`SimItem` of ``signal`` (a Signal, a value-castable or a name)."""
        if isinstance(signal, ValueCastable):
            signal = signal.as_value()
        if isinstance(signal, Signal):
            name = self._by_signal.get(id(signal))
            if name is None:
                raise CxxSimError(f"{signal!r} is not a signal of the simulated design")
        elif isinstance(signal, str):
            name = signal_name(signal, self._ids)
        else:
            raise TypeError(f"Signal must be a Signal, a value-castable or a name, not {signal!r}")
        item = self._items.get(name)
        if item is None:
            if name not in self._ids:
                raise CxxSimError(f"Signal {name!r} is not in the compiled model "
                                  f"(see CxxSim.names for what is)")
            width, depth, flags = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint32()
            self._lib.cs_item_info(self._h, self._ids[name], ctypes.byref(width),
                                   ctypes.byref(depth), ctypes.byref(flags))
            known = self._signals.get(name)
            item = self._items[name] = SimItem(name, self._ids[name], width.value, depth.value,
                                               flags.value, known is not None and
                                               known.shape().signed)
        return item

    def _signal_item(self, signal):
        item = self.item(signal)
        if item.memory:
            raise CxxSimError(f"{item.name!r} is a memory; use CxxSim.memory()")
        return item

    def _check(self, rc, item=None):
        if rc < 0:
            what = f"{item.name!r} " if item is not None else ""
            detail = self._lib.cs_error(self._h).decode() if rc in (-6, -7) else ""
            raise CxxSimError(f"{what}{_ERRORS.get(rc, f'error {rc}')}"
                              + (f": {detail}" if detail else ""))
        return rc

    # Signals ---------------------------------------------------------------------------------

    def get(self, signal, *, signed=None):
        """The current value of ``signal`` (any width), sign-extended if it is signed
        (``signed=`` overrides)."""
        item = self._signal_item(signal)
        if item.width <= 64:
            value = ctypes.c_uint64()
            self._check(self._lib.cs_get64(self._h, item.id, ctypes.byref(value)), item)
            raw = value.value
        else:
            words = (ctypes.c_uint32 * item.words)()
            self._check(self._lib.cs_get_words(self._h, item.id, words), item)
            raw = sum(w << (32 * i) for i, w in enumerate(words))
        return item.from_raw(raw, signed)

    def set(self, signal, value):
        """Drive an input (held until set again) or overwrite a register's current value.

        ``value`` is an int of the signal's width, negative allowed (two's complement).
        """
        item = self._signal_item(signal)
        if not item.writable:
            raise CxxSimError(f"{item.name!r} is not writable (only inputs, registers and "
                              f"memories are)")
        raw = item.to_raw(value)
        if item.width <= 64:
            self._check(self._lib.cs_set64(self._h, item.id, raw), item)
        else:
            words = (ctypes.c_uint32 * item.words)(
                *[(raw >> (32 * i)) & 0xFFFFFFFF for i in range(item.words)])
            self._check(self._lib.cs_set_words(self._h, item.id, words), item)

    def memory(self, name):
        """Backdoor access (:class:`SimMemory`) to the memory ``name`` (e.g. ``"soc.ram"``)."""
        item = self.item(name)
        if not item.memory:
            raise CxxSimError(f"{item.name!r} is a signal, not a memory")
        return SimMemory(self, item)

    # Time ------------------------------------------------------------------------------------

    @property
    def cycle(self):
        """Clock cycles run since the model was created."""
        return self._lib.cs_cycle(self._h)

    @staticmethod
    def _check_count(n, what="Cycle count"):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f"{what} must be a non-negative integer, not {n!r}")
        if n < 0:
            raise ValueError(f"{what} must be a non-negative integer, not {n!r}")
        return int(n)

    def _require_clock(self):
        if not self._has_clock:
            raise CxxSimError("The model has no clock (it was built with clock=None)")

    def step(self, cycles=1):
        """Run ``cycles`` clock cycles with the inputs as they are."""
        self._require_clock()
        remaining = self._check_count(cycles)
        while remaining:                      # in chunks, so that Ctrl-C gets through
            chunk = min(remaining, _CHUNK)
            self._check(self._lib.cs_step(self._h, chunk))
            remaining -= chunk

    def reset(self, cycles=1):
        """Hold the reset input high for ``cycles`` cycles, then release it."""
        self._require_clock()
        if not self._has_reset:
            raise CxxSimError("The model has no reset input (it was built with reset=None)")
        self._check(self._lib.cs_reset(self._h, self._check_count(cycles)))

    def run_until(self, signal, max_cycles):
        """Run until the 1-bit ``signal`` reads 1 or ``max_cycles`` cycles have run.

        The condition is checked before every cycle (a condition that already holds runs none),
        so after a return with fewer than ``max_cycles`` cycles the signal reads 1.

        Returns
        -------
        int
            The number of cycles run.
        """
        self._require_clock()
        item = self._signal_item(signal)
        if item.width != 1:
            raise CxxSimError(f"run_until needs a 1-bit signal; {item.name!r} has {item.width} "
                              f"bits")
        remaining, total = self._check_count(max_cycles, "Max cycles"), 0
        while True:                           # in chunks, so that Ctrl-C gets through
            chunk = min(remaining, _CHUNK)
            ran = self._check(self._lib.cs_run_until(self._h, item.id, chunk), item)
            total, remaining = total + ran, remaining - ran
            if ran < chunk or not remaining:
                return total

    def run(self, cycles, inputs=None, outputs=()):
        """Run ``cycles`` cycles with per-cycle inputs, recording outputs (all in C++).

        Parameters
        ----------
        cycles : int
        inputs : dict or iterable of pairs, optional
            ``{input: values}`` or ``[(input, values), ...]`` (Amaranth signals cannot be dict
            keys: use pairs for them): before cycle ``i`` each top-level input (≤ 64 bits)
            takes ``values[i]`` (a sequence or array of ``cycles`` ints, negative allowed).
        outputs : sequence
            Signals (≤ 64 bits) to record after every cycle.

        Returns
        -------
        numpy.ndarray
            ``int64``, shape ``(cycles, len(outputs))``: row ``i`` holds the values after cycle
            ``i`` (what ``await ctx.tick()`` then ``ctx.get`` would give), sign-extended for
            signed signals (an unsigned 64-bit value shows as its two's complement).
        """
        self._require_clock()
        n = self._check_count(cycles)
        pairs = list(inputs.items() if isinstance(inputs, dict) else inputs or ())
        in_items = [self._signal_item(s) for s, _ in pairs]
        out_items = [self._signal_item(s) for s in outputs]
        for item in in_items:
            if not item.input:
                raise CxxSimError(f"{item.name!r} is not a top-level input")
        for item in in_items + out_items:
            if item.width > 64:
                raise CxxSimError(f"{item.name!r} has {item.width} bits; run() handles at most "
                                  f"64 (use get/set)")
        in_values = np.zeros((n, len(in_items)), dtype=np.uint64)
        for j, (item, (_, values)) in enumerate(zip(in_items, pairs)):
            values = np.asarray(values, dtype=np.int64) if not isinstance(values, np.ndarray) \
                else values
            if values.shape != (n,):
                raise ValueError(f"Inputs of {item.name!r} must be {n} values, not shape "
                                 f"{values.shape}")
            if n:
                low, high = -(1 << (item.width - 1)), (1 << item.width) - 1
                if int(values.min()) < low or int(values.max()) > high:
                    raise ValueError(f"Inputs of {item.name!r} do not fit {item.width} bits")
            in_values[:, j] = values.astype(np.int64).view(np.uint64)   # harness masks
        out_values = np.zeros((n, len(out_items)), dtype=np.uint64)
        in_ids = (ctypes.c_int * len(in_items))(*[i.id for i in in_items])
        out_ids = (ctypes.c_int * len(out_items))(*[i.id for i in out_items])
        self._check(self._lib.cs_run_io(self._h, n, len(in_items), in_ids,
                                        in_values.ctypes.data_as(_U64P), len(out_items), out_ids,
                                        out_values.ctypes.data_as(_U64P)))
        result = out_values.view(np.int64)
        for k, item in enumerate(out_items):
            if item.signed and item.width < 64:
                sign = np.int64(1) << np.int64(item.width - 1)
                result[:, k] = (result[:, k] ^ sign) - sign
        return result

    # Snapshots -------------------------------------------------------------------------------

    def snapshot(self):
        """Save the whole state of the design — every register, input and memory — and return
        a handle for :meth:`restore`. No cycles pass."""
        return self._check(self._lib.cs_snapshot(self._h))

    def restore(self, snapshot):
        """Put the design back into the state saved by :meth:`snapshot` (``cycle`` keeps
        counting). A snapshot can be restored any number of times."""
        if not isinstance(snapshot, int) or isinstance(snapshot, bool):
            raise TypeError(f"Snapshot must be a handle from CxxSim.snapshot(), not {snapshot!r}")
        if self._lib.cs_restore(self._h, snapshot) < 0:
            raise CxxSimError(f"No snapshot {snapshot!r} (freed, or never taken)")

    def snapshot_free(self, snapshot):
        """Free a snapshot's storage (its handle is not reused)."""
        if self._lib.cs_snapshot_free(self._h, snapshot) < 0:
            raise CxxSimError(f"No snapshot {snapshot!r}")

    # Waveforms -------------------------------------------------------------------------------

    def vcd_start(self, path):
        """Start recording every signal (memories excluded) into the VCD file ``path``.

        VCD time is 10 ns per cycle: the state after ``c`` cycles at ``10·c``, the rising edge
        of the next cycle at ``10·c + 5`` (``c`` counts from the model's creation).
        """
        self._check(self._lib.cs_vcd_open(self._h, str(path).encode()))

    def vcd_stop(self):
        """Stop recording and close the VCD file."""
        self._check(self._lib.cs_vcd_close(self._h))

    @contextlib.contextmanager
    def vcd(self, path):
        """A VCD window: ``with sim.vcd("wave.vcd"): sim.step(100)``."""
        self.vcd_start(path)
        try:
            yield
        finally:
            self.vcd_stop()
