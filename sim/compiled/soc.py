"""The whole SoC (:class:`rtl.soc.Soc`) in the compiled simulator: load, run, read back.

:class:`SocSim` builds (or takes from the cache) the compiled model of the SoC and drives it as
a host would: main memory and the scratchpads through the backdoor (numpy, no cycles), the CSRs
through the CSR port, programs started by writing ``ENTRY`` and ``CTRL`` and run in C++ until
``done``. One model runs any number of programs without a reset, as the firmware does.
:func:`run_program` is the compiled twin of :func:`sim.soc.run_program` (same arguments,
same result), so a test can run one program on either backend. See ``docs/simulation.md``.

>>> sim = SocSim(DEFAULT_SOC)                          # doctest: +SKIP
>>> sim.write_words(0, program.words())
>>> r = sim.run(entry=0)
>>> r.error, r.cycles, r.counters["busy_gemm"], sim.read_words(0x8000, 64)
"""

import contextlib
import hashlib
import sys

import numpy as np

from spec import isa
from spec.csr import Csr, decode_status
from spec.isa import Error
from spec.memory import Fault
from spec.params import check_int
from spec.soc import SocConfig
from rtl.soc import Soc
from sim.soc import SocRun

from .sim import DEFAULT_SIMULATOR, CxxSim

__all__ = ["SocSim", "SocResult", "run_program", "shared_model"]

_MASK32 = 0xFFFF_FFFF
_CSRS = tuple(Csr)


class SocResult:
    """What a program run on :class:`SocSim` ended with (the CSRs read after ``done``).

    Attributes
    ----------
    entry : int
        Word address the program started at.
    error : spec.isa.Error
        ``Error.NONE`` after ``HALT``.
    pc : int
        The last instruction (``HALT``, or the faulting one).
    cycles : int
        The sequencer's cycle counter: start to done, as the golden model counts.
    instructions : int
        Instructions issued.
    dma_fault : spec.memory.Fault
        The DMA fault code of a ``DMA_FAULT`` error (else ``Fault.NONE``).
    csr : dict of Csr to int
        Every CSR, as :func:`sim.soc.run_program` reads them.
    counters : dict of str to int
        The counters under the golden model's names (``golden.machine.Machine.counters``):
        ``cycles``, ``stall``, ``busy_dma``, ``busy_gemm``, ``busy_vec``, ``busy_sel``,
        ``sat_req``, ``sat_sgd``.
    sim_cycles : int
        Clock cycles the simulator ran for this call (the two CSR writes that start the program,
        the run, the CSR reads).
    """

    __slots__ = ("entry", "error", "pc", "cycles", "instructions", "dma_fault", "csr",
                 "counters", "sim_cycles")

    def __init__(self, entry, csr, busy_sel, sim_cycles):
        self.entry = entry
        self.csr = csr
        self.error = Error(decode_status(csr[Csr.STATUS]).error)
        self.pc = csr[Csr.PC]
        self.cycles = csr[Csr.CYCLES_LO] | csr[Csr.CYCLES_HI] << 32
        self.instructions = csr[Csr.INSNS]
        self.dma_fault = Fault(csr[Csr.DMA_FAULT]) if self.error == Error.DMA_FAULT \
            else Fault.NONE
        self.counters = dict(
            cycles=self.cycles, stall=csr[Csr.STALL_LO] | csr[Csr.STALL_HI] << 32,
            busy_dma=csr[Csr.BUSY_DMA], busy_gemm=csr[Csr.BUSY_GEMM],
            busy_vec=csr[Csr.BUSY_VEC], busy_sel=busy_sel,
            sat_req=csr[Csr.SAT_REQ], sat_sgd=csr[Csr.SAT_SGD])
        self.sim_cycles = sim_cycles

    def __repr__(self):
        return (f"<SocResult {self.error.name} pc={self.pc:#x} cycles={self.cycles} "
                f"instructions={self.instructions}>")


# Packing rows of elements (a memory row holds `count` elements of `width` bits, element i at
# bits [i·width, (i+1)·width), stored as little-endian 32-bit words).

def _unpack(raw, width, count, signed):
    """``(n, words)`` ``uint32`` rows → ``(n, count)`` ``int64`` elements."""
    n = raw.shape[0]
    if width in (8, 16, 32) and sys.byteorder == "little":
        dtype = {8: np.int8, 16: np.int16, 32: np.int32}[width] if signed else \
            {8: np.uint8, 16: np.uint16, 32: np.uint32}[width]
        return raw.view(dtype)[:, :count].astype(np.int64)
    bits = np.unpackbits(raw.astype("<u4").view(np.uint8), axis=1, bitorder="little")
    bits = bits[:, :count * width].reshape(n, count, width).astype(np.int64)
    values = (bits << np.arange(width, dtype=np.int64)).sum(axis=2)
    if signed:
        values -= (values >> (width - 1) & 1) << width
    return values


def _pack(values, width, words):
    """``(n, count)`` integers (two's complement if negative) → ``(n, words)`` ``uint32`` rows."""
    values = np.asarray(values, dtype=np.int64)
    n, count = values.shape
    masked = values & ((1 << width) - 1)
    if width in (8, 16, 32) and sys.byteorder == "little" and (count * width) % 32 == 0 \
            and count * width // 32 == words:
        dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[width]
        return np.ascontiguousarray(masked.astype(dtype)).view(np.uint32).reshape(n, words)
    bits = ((masked[:, :, None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)
    bits = np.concatenate([bits.reshape(n, count * width),
                           np.zeros((n, 32 * words - count * width), dtype=np.uint8)], axis=1)
    return np.packbits(bits, axis=1, bitorder="little").view("<u4").astype(np.uint32)


def _words(memory):
    """32-bit words per row of a :class:`SimMemory`."""
    return (memory.width + 31) // 32


def _model_name(soc, stall_threshold):
    """Cache name of the model: array shape and a digest of the whole configuration."""
    a = soc.config.array
    digest = hashlib.sha256(f"{soc!r} stall {stall_threshold}".encode()).hexdigest()[:8]
    return f"soc{a.rows}x{a.cols}_{digest}"


class SocSim:
    """The SoC (:class:`rtl.soc.Soc`) as a compiled model, driven like a host drives it.

    Construction builds the SoC's compiled model (or takes it from the build cache: a first build
    of the default SoC takes minutes, later runs load it in seconds) and leaves it in its
    power-on state: main memory and scratchpads zero, the sequencer idle.

    Main memory and the scratchpads are reached through the backdoor (no clock cycles pass);
    the CSRs through the SoC's CSR port (a cycle per access, as a host link would). A program
    runs with :meth:`run`: it writes ``ENTRY`` and ``CTRL`` and runs in C++ until ``done``.
    Programs follow one another without a reset; :meth:`power_on` returns to the power-on
    state (memories included), :meth:`reset` pulses the reset input (memories keep their
    contents).

    Parameters
    ----------
    soc : SocConfig
        The SoC's configuration (default :data:`spec.soc.DEFAULT_SOC`).
    stall_rate : float
        Main memory's random stalls (:class:`rtl.mainmem.MainMemory`), ``0 <= stall_rate < 1``.
        Each stall rate is a model of its own (the rate is a constant of the hardware); 0 is the
        deterministic memory model.
    seed : int
        Power-on state of the stall generator, ``1 <= seed < 2**32`` (set in the model's
        power-on state, so seeds share one compiled model).
    cache_dir : path, optional
        The build cache (default ``$APPRENTICE_CXXSIM_CACHE`` or ``~/.cache/apprentice/cxxsim``).
    progress : bool or callable
        Report what the build does (:class:`CxxSim`).
    cxxflags : tuple of str, optional
        C++ optimisation flags (default: :class:`CxxSim`'s, ``-O2``).
    cxxrtl_options : tuple of str, optional
        Yosys ``write_cxxrtl`` options (default: :class:`CxxSim`'s).
    simulator : str
        ``"verilator"`` or ``"cxxrtl"`` (default :data:`~sim.compiled.DEFAULT_SIMULATOR`, as for
        :class:`CxxSim`): the same cycles bit for bit; Verilator builds the default SoC in about
        a minute and runs it several times faster.

    Attributes
    ----------
    config : SocConfig
    dut : rtl.soc.Soc
        The simulated design (for its signals: ``sim.get(socsim.dut.seq.pc)``).
    sim : CxxSim
        The compiled model itself (signals, VCD, cycles).
    build_info : sim.compiled.BuildInfo

    Raises
    ------
    TypeError, ValueError
        On a bad argument.
    sim.compiled.CxxSimBuildError
        If the model cannot be built (no C++ compiler, ...).
    """

    def __init__(self, soc=None, *, stall_rate=0, seed=1, cache_dir=None, progress=True,
                 cxxflags=None, cxxrtl_options=None, simulator=DEFAULT_SIMULATOR):
        if soc is None:
            from spec.soc import DEFAULT_SOC
            soc = DEFAULT_SOC
        if not isinstance(soc, SocConfig):
            raise TypeError(f"SoC configuration must be a SocConfig, not {soc!r}")
        # the SoC validates the stall rate; the seed is ours (the model is built with seed 1)
        self._check_seed(seed)
        self._soc = soc
        self.dut = Soc(soc, stall_rate=stall_rate)
        mm = self.dut.mainmem
        self._stall_rate = stall_rate
        kwargs = {}
        if cxxflags is not None:
            kwargs["cxxflags"] = tuple(cxxflags)
        if cxxrtl_options is not None:
            kwargs["cxxrtl_options"] = tuple(cxxrtl_options)
        # what the driver reads besides ports and memories (kept as state for Verilator)
        expose = [self.dut.seq.pc, self.dut.seq.cycles, self.dut.seq.insns, self.dut.running,
                  self.dut.done]
        if mm.stall_threshold:
            expose.append("memsys.mainmem.state")
        self.sim = CxxSim(self.dut, name=_model_name(soc, mm.stall_threshold),
                          cache_dir=cache_dir, progress=progress, simulator=simulator,
                          expose=expose if simulator == "verilator" else (), **kwargs)
        self.build_info = self.sim.build_info
        sim = self.sim
        self._fetch_words = mm.fetch_words or 1
        self._word_width = soc.word_width
        self._mem = sim.memory("memsys.mainmem.storage")
        self._sp = [sim.memory(f"memsys.sp.bank_{b}") for b in range(soc.sp_banks)]
        self._acc = [sim.memory(f"memsys.acc.bank_{b}") for b in range(soc.acc_banks)]
        a = soc.config.array
        self._sp_width, self._acc_width = a.operand_width, a.acc_width
        self._done = sim.item(self.dut.done)
        self._running = sim.item(self.dut.running)
        self._stall_state = sim.item("memsys.mainmem.state") if mm.stall_threshold else None
        sim.set(self.dut.csr_re, 0)
        sim.set(self.dut.csr_we, 0)
        self._power_on = sim.snapshot()
        self._seed = 1
        self.power_on(seed)

    @staticmethod
    def _check_seed(seed):
        check_int(seed, "Stall seed")
        if not 0 < seed <= _MASK32:
            raise ValueError(f"Stall seed must be in 1..2**32-1, not {seed!r}")

    @property
    def config(self):
        return self._soc

    @property
    def stall_rate(self):
        return self._stall_rate

    @property
    def seed(self):
        """The stall generator's power-on state (of the last :meth:`power_on`)."""
        return self._seed

    # Lifetime --------------------------------------------------------------------------------

    def close(self):
        """Free the model. Idempotent."""
        self.sim.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def power_on(self, seed=None):
        """Return to the power-on state: memories and scratchpads zero, every register at its
        initial value, as a freshly built :class:`rtl.soc.Soc` (no cycles pass).

        ``seed``: the stall generator's power-on state (default: the current one).
        """
        if seed is not None:
            self._check_seed(seed)
            self._seed = seed
        self.sim.restore(self._power_on)
        if self._stall_state is not None:
            self.sim.set(self._stall_state.name, self._seed)

    def reset(self, cycles=1):
        """Hold the SoC's reset high for ``cycles`` cycles: registers return to their initial
        values (a running program stops); memories and scratchpads keep their contents."""
        self.sim.reset(cycles)

    # Main memory and scratchpads (backdoor) --------------------------------------------------

    def _check_range(self, addr, n, what):
        check_int(addr, f"{what} address")
        check_int(n, f"{what} word count")
        if n < 0:
            raise ValueError(f"{what} word count must be a non-negative integer, not {n!r}")
        if addr < 0 or addr + n > self._soc.mem_words:
            raise ValueError(f"{what} of {n} words at {addr} is outside main memory "
                             f"({self._soc.mem_words} words)")

    def _lines(self, first, last):
        """Words of main-memory lines ``first .. last-1`` as one flat int64 array."""
        raw = self._mem.read_raw(first, last - first)
        return _unpack(raw, self._word_width, self._fetch_words, False).ravel()

    def read_words(self, addr, n):
        """``n`` words of main memory from word address ``addr`` (a numpy ``int64`` array of
        unsigned words). No cycles pass."""
        self._check_range(addr, n, "Read")
        F = self._fetch_words
        first, last = addr // F, -(-(addr + n) // F)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        off = addr - first * F
        return self._lines(first, last)[off:off + n]

    def write_words(self, addr, words):
        """Store ``words`` (integers; the low word-width bits of each, so negative values are
        stored in two's complement) at word address ``addr``. No cycles pass."""
        w = np.asarray(words)
        if w.size and not np.issubdtype(w.dtype, np.integer):
            w = np.asarray(words, dtype=object)
            if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                       for x in w.ravel()):
                raise TypeError("Words must be integers")
        w = w.astype(np.int64).ravel() if w.size else np.zeros(0, dtype=np.int64)
        self._check_range(addr, w.size, "Write")
        if not w.size:
            return
        F = self._fetch_words
        first, last = addr // F, -(-(addr + w.size) // F)
        lines = self._lines(first, last)
        off = addr - first * F
        lines[off:off + w.size] = w & ((1 << self._word_width) - 1)
        self._mem.write_raw(first, _pack(lines.reshape(-1, F), self._word_width,
                                         _words(self._mem)))

    def _read_pad(self, banks, width):
        lanes = self._soc.lanes
        return np.concatenate([_unpack(bank.read_raw(), width, lanes, True) for bank in banks])

    def _write_pad(self, banks, width, row, values, what):
        lanes, depth = self._soc.lanes, len(banks[0])
        check_int(row, f"{what} row")
        v = np.asarray(values, dtype=np.int64)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != lanes:
            raise ValueError(f"{what} rows must have {lanes} lanes, not shape {v.shape}")
        if row < 0 or row + v.shape[0] > depth * len(banks):
            raise ValueError(f"{what} rows {row}..{row + v.shape[0] - 1} are outside "
                             f"0..{depth * len(banks) - 1}")
        lo, hi = -(1 << (width - 1)), 1 << (width - 1)
        if v.size and (v.min() < lo or v.max() >= hi):
            raise ValueError(f"{what} values must be signed {width}-bit integers")
        done = 0
        while done < v.shape[0]:                      # bank by bank
            bank, i = divmod(row + done, depth)
            n = min(depth - i, v.shape[0] - done)
            banks[bank].write_raw(i, _pack(v[done:done + n], width, _words(banks[bank])))
            done += n

    def read_sp(self):
        """The operand scratchpad: ``(sp_rows, lanes)`` signed ``int64`` (row ``bank·depth +
        row``, as ``golden.machine.Machine.sp``)."""
        return self._read_pad(self._sp, self._sp_width)

    def read_acc(self):
        """The accumulator scratchpad: ``(acc_rows, lanes)`` signed ``int64``."""
        return self._read_pad(self._acc, self._acc_width)

    def write_sp(self, row, values):
        """Overwrite operand-scratchpad rows from ``row`` with ``values`` (``(n, lanes)``)."""
        self._write_pad(self._sp, self._sp_width, row, values, "Scratchpad")

    def write_acc(self, row, values):
        """Overwrite accumulator-scratchpad rows from ``row`` with ``values`` (``(n, lanes)``)."""
        self._write_pad(self._acc, self._acc_width, row, values, "Accumulator scratchpad")

    # CSRs (through the CSR port) -------------------------------------------------------------

    def _csr_cycles(self, addrs, we, wdata=None):
        """One cycle per CSR access (strobe high), all in one foreign call; returns
        ``csr_rdata`` after each cycle."""
        n, d = len(addrs), self.dut
        inputs = [(d.csr_addr, np.asarray(addrs, dtype=np.int64)),
                  (d.csr_we, np.full(n, int(we), dtype=np.int64)),
                  (d.csr_re, np.full(n, int(not we), dtype=np.int64))]
        if wdata is not None:
            inputs.append((d.csr_wdata, np.asarray(wdata, dtype=np.int64)))
        out = self.sim.run(n, inputs, [d.csr_rdata])
        self.sim.set(d.csr_we if we else d.csr_re, 0)
        return out[:, 0]

    @staticmethod
    def _check_csr(idx):
        check_int(idx, "CSR index")
        from spec.csr import CSR_COUNT
        if not 0 <= idx < CSR_COUNT:
            raise ValueError(f"CSR index must be in 0..{CSR_COUNT - 1}, not {idx!r}")

    def csr_read(self, idx):
        """Read CSR ``idx`` through the CSR port (one cycle)."""
        self._check_csr(idx)
        return int(self._csr_cycles([idx], we=False)[0])

    def csr_write(self, idx, value):
        """Write CSR ``idx`` through the CSR port (one cycle)."""
        self._check_csr(idx)
        check_int(value, "CSR value")
        if not 0 <= value <= _MASK32:
            raise ValueError(f"CSR value must be a 32-bit unsigned integer, not {value!r}")
        self._csr_cycles([idx], we=True, wdata=[value])

    def csr_read_all(self):
        """Every CSR of :class:`spec.csr.Csr`, in index order, one cycle each (one foreign
        call): ``{Csr: value}``."""
        values = self._csr_cycles([int(c) for c in _CSRS], we=False)
        return {c: int(v) for c, v in zip(_CSRS, values)}

    # Programs --------------------------------------------------------------------------------

    @property
    def running(self):
        """A program is running (the sequencer's ``running``)."""
        return bool(self.sim.get(self._running.name))

    @property
    def pc(self):
        """The sequencer's program counter (no cycles pass)."""
        return self.sim.get(self.dut.seq.pc)

    def start(self, entry, budget=None):
        """Start the program at word address ``entry`` (writes ``ENTRY``, then ``CTRL``: two
        cycles; with ``budget``, ``BUDGET`` first: three) and return; :meth:`wait` runs it to
        the end. ``budget``: the watchdog's cycle budget (``0 .. 2**32 − 1``, 0 = none;
        ``None`` keeps the CSR's value)."""
        check_int(entry, "Entry address")
        if not 0 <= entry <= _MASK32:
            raise ValueError(f"Entry address must be a 32-bit unsigned integer, not {entry!r}")
        idx, values = [Csr.ENTRY, Csr.CTRL], [entry, 1]
        if budget is not None:
            check_int(budget, "Cycle budget")
            if not 0 <= budget <= _MASK32:
                raise ValueError(f"Cycle budget must be a 32-bit unsigned integer, not "
                                 f"{budget!r}")
            idx, values = [Csr.BUDGET] + idx, [budget] + values
        if self.running:
            raise RuntimeError(f"The SoC is still running a program (pc {self.pc:#x}); "
                               f"wait for it, or reset()")
        self._csr_cycles(idx, we=True, wdata=values)

    def wait(self, max_cycles=100_000_000, *, entry=None):
        """Run until the program halts (``done``), in C++; then read the CSRs.

        Returns
        -------
        SocResult

        Raises
        ------
        TimeoutError
            If the program has not halted after ``max_cycles`` cycles (the message names the
            pc and its instruction; the SoC is left running).
        """
        check_int(max_cycles, "Cycle budget")
        if max_cycles < 0:
            raise ValueError(f"Cycle budget must be a non-negative integer, not {max_cycles!r}")
        start = self.sim.cycle
        self.sim.run_until(self._done.name, max_cycles)
        if not self.sim.get(self._done.name):
            pc = self.pc
            where = f"program at {entry:#x}" if entry is not None else "program"
            raise TimeoutError(f"SoC did not halt within {max_cycles} cycles ({where}; pc now "
                               f"{pc:#x}: {self._describe(pc)})")
        csr = self.csr_read_all()
        busy_sel = self.sim.get(self.dut.busy_sel)
        return SocResult(entry, csr, busy_sel, self.sim.cycle - start)

    def _describe(self, pc):
        if pc % isa.INSN_WORDS or pc + isa.INSN_WORDS > self._soc.mem_words:
            return "<outside main memory>"
        try:
            op, f = isa.decode(isa.from_words(self.read_words(pc, isa.INSN_WORDS).tolist()))
        except ValueError as e:
            return f"<{e.args[0]}>"
        return " ".join([op.name] + [f"{k}={v}" for k, v in f.items()])

    def run(self, entry=0, max_cycles=100_000_000, *, budget=None, vcd=None, vcd_window=None):
        """Run the program at word address ``entry`` until it halts; return its result.

        Parameters
        ----------
        entry : int
        max_cycles : int
            Cycle budget of the simulation (:class:`TimeoutError` past it).
        budget : int, optional
            The SoC's watchdog budget (:meth:`start`): past it the program halts itself with
            ``Error.WATCHDOG``.
        vcd : path, optional
            Record a VCD waveform of the cycles ``vcd_window`` (``(first, last)``: cycles
            counted from the program's start, default the first 1000) into this file.

        Returns
        -------
        SocResult

        Raises
        ------
        TimeoutError
            If the program has not halted within ``max_cycles``.
        RuntimeError
            If a program is already running.
        """
        cycle0 = self.sim.cycle
        self.start(entry, budget)
        check_int(max_cycles, "Cycle budget")
        budget = max_cycles
        if vcd is not None:
            first, last = vcd_window if vcd_window is not None else (0, 1000)
            check_int(first, "VCD window start")
            check_int(last, "VCD window end")
            if not 0 <= first <= last:
                raise ValueError(f"VCD window must be (first, last) with 0 <= first <= last, "
                                 f"not {vcd_window!r}")
            # cycles counted from the start (the cycle after the write to CTRL)
            budget -= self.sim.run_until(self._done.name, min(first, budget))
            with self.sim.vcd(vcd):
                budget -= self.sim.run_until(self._done.name, min(last - first, budget))
        result = self.wait(budget, entry=entry)
        result.sim_cycles = self.sim.cycle - cycle0
        return result

    @contextlib.contextmanager
    def vcd(self, path):
        """A VCD window over whatever runs inside: ``with socsim.vcd("w.vcd"): socsim.run()``."""
        with self.sim.vcd(path):
            yield


_MODELS = {}


def shared_model(soc, *, stall_rate=0, cache_dir=None, progress=False, cxxflags=None,
                 simulator=DEFAULT_SIMULATOR):
    """This process's :class:`SocSim` of ``soc`` at ``stall_rate`` (built once, then reused:
    :func:`run_program` returns it to the power-on state before each program)."""
    key = (soc, stall_rate, None if cache_dir is None else str(cache_dir),
           None if cxxflags is None else tuple(cxxflags), simulator)
    sim = _MODELS.get(key)
    if sim is None:
        sim = _MODELS[key] = SocSim(soc, stall_rate=stall_rate, cache_dir=cache_dir,
                                    progress=progress, cxxflags=cxxflags, simulator=simulator)
    return sim


def run_program(soc, image, entry=0, *, stall_rate=0, seed=1, max_cycles=200_000,
                read_back=True, programs=None, cache_dir=None, progress=False, cxxflags=None,
                simulator=DEFAULT_SIMULATOR):
    """Run the program at ``entry`` on a power-on SoC whose main memory holds ``image``.

    The compiled twin of :func:`sim.soc.run_program`: the same arguments, the same clock
    cycles (two CSR writes, the run, a read of every CSR, for each program), the same result —
    a :class:`sim.soc.SocRun` with ``mem``, ``sp``, ``acc`` (lists), ``csr`` ({Csr: value})
    of the last program and ``runs`` (each program's CSRs). The model is built once per process
    and configuration (:func:`shared_model`) and put back into its power-on state for each call.

    ``programs``: further entries run one after the other without reset. ``cache_dir``,
    ``progress``, ``cxxflags``, ``simulator``: as for :class:`SocSim`.
    """
    sim = shared_model(soc, stall_rate=stall_rate, cache_dir=cache_dir, progress=progress,
                       cxxflags=cxxflags, simulator=simulator)
    sim.power_on(seed)
    sim.write_words(0, image)
    runs = []
    for e in [entry] + list(programs or []):
        runs.append(sim.run(e, max_cycles + 2).csr)
    out = SocRun()
    out["runs"] = runs
    out["csr"] = runs[-1]
    if read_back:
        out["mem"] = sim.read_words(0, soc.mem_words).tolist()
        out["sp"] = sim.read_sp().tolist()
        out["acc"] = sim.read_acc().tolist()
    return out
