"""Simulation of the RTL: testbench drivers and the compiled simulator.

Nothing here is hardware; ``rtl/`` is. Each module drives one design from Python:

- :mod:`sim.array` — the bare systolic array in Amaranth's Python simulator (GEMM runs, cycle counts).
- :mod:`sim.softmax` — the softmax / cross-entropy unit in Amaranth's Python simulator.
- :mod:`sim.soc` — the whole SoC in Amaranth's Python simulator (the ``pysim`` backend).
- :mod:`sim.hostlink` — the UART host link and main memory in Amaranth's Python simulator.
- :mod:`sim.formal` — formal proofs: an Amaranth design with ``Assert``/``Assume`` proven by
  SymbiYosys (YoWASP) with the Boolector SMT solver (``docs/formal.md``).
- :mod:`sim.compiled` — the compiled simulation (Verilator by default, CXXRTL as an alternative)
  of the array, the SoC and its UART pins, at about half a million cycles per second
  (``docs/simulation.md``).
"""
