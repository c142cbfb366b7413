"""Devices over the RTL: the SoC in the compiled simulator and in Amaranth's simulator.

* :class:`RtlSimDevice` — :class:`sim.compiled.soc.SocSim`, the whole :class:`rtl.soc.Soc` as a
  compiled C++ model (the ``"rtl-sim"`` backend). Main memory is reached through the
  simulator's backdoor (no cycles), programs are started through the CSR port and run in C++.
* :class:`PysimDevice` — :class:`rtl.soc.Soc` in Amaranth's Python simulator (the ``"pysim"``
  backend). Slow (hundreds of cycles per second): for small configurations and short programs.

Both keep one simulated SoC for their whole life: nothing is reset between programs, so
everything the hardware keeps between programs — main memory, scratchpads, the random
generator's state, the selector's state — persists exactly as on a board. The board backend
(``"board"``, the SoC over the host link) lives in :mod:`firmware.board`.

A run given no cycle budget gets :data:`firmware.device.DEFAULT_MAX_CYCLES`.

Both count cycles as the golden model does (the sequencer's ``CYCLES`` CSR, start to done), so
the same firmware gives the same memory and the same cycles on every backend.
"""

import numpy as np

from spec.csr import Csr, decode_status
from spec.isa import Error
from spec.memory import Fault
from spec.soc import SocConfig, DEFAULT_SOC
from .device import (DEFAULT_MAX_CYCLES, WATCHDOG_DRAIN, Device, DeviceTimeout, RunResult,
                     check_watchdog)

__all__ = ["RtlSimDevice", "PysimDevice", "COUNTER_NAMES"]

#: Names of the counters a device reports (:meth:`Device.counters`), as the golden model's.
COUNTER_NAMES = ("cycles", "busy_dma", "busy_gemm", "busy_vec", "busy_sel", "stall", "sat_req",
                 "sat_sgd")



def _check_soc(soc):
    if soc is None:
        return DEFAULT_SOC
    if not isinstance(soc, SocConfig):
        raise TypeError(f"SoC configuration must be a SocConfig, not {soc!r}")
    return soc


def _counters_from_csrs(csr, busy_sel):
    """The golden model's counter names from a run's CSRs (as :class:`sim.compiled.soc.SocResult`)."""
    return dict(cycles=csr[Csr.CYCLES_LO] | csr[Csr.CYCLES_HI] << 32,
                stall=csr[Csr.STALL_LO] | csr[Csr.STALL_HI] << 32,
                busy_dma=csr[Csr.BUSY_DMA], busy_gemm=csr[Csr.BUSY_GEMM],
                busy_vec=csr[Csr.BUSY_VEC], busy_sel=busy_sel,
                sat_req=csr[Csr.SAT_REQ], sat_sgd=csr[Csr.SAT_SGD])


def _result_from_csrs(csr):
    error = Error(decode_status(csr[Csr.STATUS]).error)
    fault = Fault(csr[Csr.DMA_FAULT]) if error == Error.DMA_FAULT else Fault.NONE
    return RunResult(error, csr[Csr.PC], csr[Csr.CYCLES_LO] | csr[Csr.CYCLES_HI] << 32,
                     csr[Csr.INSNS], fault)


class RtlSimDevice(Device):
    """The SoC in the compiled simulator (:class:`sim.compiled.soc.SocSim`) as a device.

    The first construction for a configuration builds its compiled model (a few minutes for the
    default SoC); later ones load it from the build cache in seconds. The model is Verilator's
    by default (``simulator="cxxrtl"`` for Yosys's CXXRTL: the same cycles bit for bit, every
    internal signal readable, several times slower on the whole SoC).

    Parameters
    ----------
    soc : SocConfig, optional
        Default :data:`spec.soc.DEFAULT_SOC`.
    **socsim_kwargs
        Passed to :class:`~sim.compiled.soc.SocSim` (``simulator``, ``stall_rate``, ``seed``,
        ``cache_dir``, ``progress``, ``cxxflags``, ...). ``progress`` defaults to False (the
        build is silent), ``simulator`` to :data:`sim.compiled.DEFAULT_SIMULATOR` (Verilator).

    Members
    -------
    sim : sim.compiled.soc.SocSim
        The simulator (for tests that look inside; firmware must not).
    last_result : sim.compiled.soc.SocResult or None
        The last run's full result (every CSR, simulated clock cycles).
    """

    def __init__(self, soc=None, **socsim_kwargs):
        from sim.compiled.soc import SocSim           # Yosys and a C++ compiler: only when used
        self._soc = _check_soc(soc)
        socsim_kwargs.setdefault("progress", False)
        self.sim = SocSim(self._soc, **socsim_kwargs)
        self.last_result = None
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)

    @property
    def config(self):
        return self._soc

    def close(self):
        """Free the compiled model. Idempotent."""
        self.sim.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, addr, words):
        self.sim.write_words(addr, words.astype(np.int64))

    def _read(self, addr, n):
        return self.sim.read_words(addr, n).astype(np.uint16)

    def _run(self, entry, max_cycles):
        budget = DEFAULT_MAX_CYCLES if max_cycles is None else max_cycles
        try:
            r = self.sim.run(entry, budget + WATCHDOG_DRAIN, budget=budget)
        except TimeoutError as e:
            # the SoC is left running: stop it so that the device stays usable
            self.sim.reset()
            raise DeviceTimeout(f"Program at {entry:#x} did not halt within {budget} cycles "
                                f"({e})") from e
        self.last_result = r
        self._counters = dict(r.counters)
        return check_watchdog(entry, budget,
                              RunResult(r.error, r.pc, r.cycles, r.instructions, r.dma_fault))

    def counters(self):
        return dict(self._counters)


_PENDING = object()


class PysimDevice(Device):
    """The SoC (:class:`rtl.soc.Soc`) in Amaranth's Python simulator as a device.

    One simulation runs for the device's life. A testbench waits for the host's requests and
    serves them: memory reads and writes go straight to main memory's storage (no cycles),
    a program is started by writing ``ENTRY`` and ``CTRL`` through the CSR port and run
    cycle by cycle until ``done``, then every CSR is read (as :func:`sim.soc.run_program`).
    Between two requests one idle clock cycle passes; the SoC is never reset, so all its state
    (the random generator, the selector, the scratchpads) persists from program to program.

    Memory accesses cost tens of microseconds per word and the SoC runs at a few hundred cycles
    per second: use a small configuration (a few thousand words of main memory) and short
    programs.

    Parameters
    ----------
    soc : SocConfig
    stall_rate : float
        Main memory's random stalls (0: the deterministic memory model).
    seed : int
        The stall generator's seed.

    Members
    -------
    dut : rtl.soc.Soc
    """

    def __init__(self, soc=None, *, stall_rate=0, seed=1):
        from rtl.soc import Soc
        self._soc = _check_soc(soc)
        self.dut = Soc(self._soc, stall_rate=stall_rate, seed=seed)
        self._request = None
        self._reply = None
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._sim = None                     # started at the first request

    def _simulator(self):
        from amaranth.sim import Simulator
        if self._sim is None:
            self._sim = Simulator(self.dut)
            self._sim.add_clock(1e-6)
            self._sim.add_testbench(self._bench)
        return self._sim

    @property
    def config(self):
        return self._soc

    async def _bench(self, ctx):
        while True:
            request = self._request
            if request is None:
                await ctx.tick()
                continue
            self._request = None
            try:
                self._reply = (True, await request(ctx))
            except Exception as e:                      # handed to the caller
                self._reply = (False, e)

    def _call(self, request):
        """Run the async ``request(ctx)`` in the testbench; return its result."""
        sim = self._simulator()
        self._request, self._reply = request, _PENDING
        while self._reply is _PENDING:
            sim.advance()
        ok, value = self._reply
        self._reply = None
        if not ok:
            raise value
        return value

    def _write(self, addr, words):
        mm = self.dut.mainmem

        async def write(ctx):
            for i, w in enumerate(words.tolist()):
                ctx.set(mm.word(addr + i), w)
        self._call(write)

    def _read(self, addr, n):
        mm = self.dut.mainmem

        async def read(ctx):
            return [ctx.get(mm.word(addr + i)) for i in range(n)]
        return np.asarray(self._call(read), dtype=np.uint16)

    def _run(self, entry, max_cycles):
        from sim.soc import csr_read, csr_write
        dut = self.dut
        budget = DEFAULT_MAX_CYCLES if max_cycles is None else max_cycles

        async def run(ctx):
            await csr_write(ctx, dut, Csr.BUDGET, budget)
            await csr_write(ctx, dut, Csr.ENTRY, entry)
            await csr_write(ctx, dut, Csr.CTRL, 1)
            n = 0
            while not ctx.get(dut.done):
                if n >= budget + WATCHDOG_DRAIN:
                    return None
                await ctx.tick()
                n += 1
            csr = {c: await csr_read(ctx, dut, c) for c in Csr}
            return csr, ctx.get(dut.busy_sel)

        out = self._call(run)
        if out is None:
            raise DeviceTimeout(f"Program at {entry:#x} did not halt within {budget} cycles "
                                f"(the SoC is left running)")
        csr, busy_sel = out
        self._counters = _counters_from_csrs(csr, busy_sel)
        return check_watchdog(entry, budget, _result_from_csrs(csr))

    def counters(self):
        return dict(self._counters)
