"""A compiled RTL simulator: Verilator or Yosys's CXXRTL back end, compiled with g++, driven from
Python. Models are Verilator's unless the caller names CXXRTL (:data:`DEFAULT_SIMULATOR`).

Amaranth's Python simulator runs about a thousand cycles per second on the array; whole programs
need a few hundred thousand. :class:`CxxSim` compiles a design to C++ once (cached by content),
loads it with ctypes and runs every loop — clock cycles, run-until, per-cycle stimulus and
recording — in C++. See ``docs/simulation.md``.

>>> sim = CxxSim(MyComponent())          # doctest: +SKIP
>>> sim.reset(); sim.set("i_en", 1); sim.step(1000)
>>> sim.get("counter"), sim.memory("ram").read(0, 16)
"""

from .build import (CACHE_ENV, BuildInfo, CxxSimBuildError, default_cache_dir,  # noqa: F401
                    signal_name)
from .sim import DEFAULT_SIMULATOR, SIMULATORS, CxxSim, CxxSimError, SimItem, SimMemory

__all__ = ["CxxSim", "CxxSimError", "CxxSimBuildError", "BuildInfo", "SimItem", "SimMemory",
           "SIMULATORS", "DEFAULT_SIMULATOR", "CACHE_ENV", "default_cache_dir", "signal_name"]
