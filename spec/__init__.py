"""The specification: every width, size, format, encoding and latency of Apprentice, stated once.

The RTL (``rtl/``), the golden model (``golden/``), the simulators (``sim/``), the firmware
(``firmware/``) and the board files (``platforms/``) import these modules; none of them restates
a number that lives here. Every module is pure Python (no Amaranth, no PyTorch), so that every
layer may import it.

Modules
-------
:mod:`spec.params`
    Operand and accumulator widths, fixed-point formats, the array's shape (``Config``,
    ``ArrayConfig``, ``Formats``) and the shared argument checks.
:mod:`spec.soc`
    ``SocConfig``: the whole SoC (the array's ``Config``, main memory's size and latency, the two
    scratchpads, the selector), with every check that joins them.
:mod:`spec.memory`
    The DMA descriptor's fields (``DESC_FIELDS``), ``Dir``, ``Space``, the fault codes
    (``Fault``, ``FAULT_BITS``) and ``MAX_ELEM_WORDS``.
:mod:`spec.isa`
    The instruction set: opcodes, field layouts, error codes, the 128-bit encoding and
    SELOUT's layout in main memory.
:mod:`spec.csr`
    The control and status registers: indices, the ID, the STATUS and CONFIG fields with their
    encode/decode helpers.
:mod:`spec.timing`
    Unit latencies and the sequencer's timing rules (fetch, LDW/STW, DMA and GEMM overheads),
    the systolic array's output latency and tile spacing.
:mod:`spec.selection`
    The balanced top-K selector's parameters (``SelectorConfig``).
:mod:`spec.softmax_tables`
    The fixed-point softmax's constants, latencies and tables.
:mod:`spec.rng`
    The stochastic-rounding generators: one xorshift32 per lane and how each lane's state
    derives from the SEED value (``lane_seed``).
:mod:`spec.hostlink`
    The UART host link's protocol: frames, commands, statuses.
:mod:`spec.cli`
    The command lines' convention, shared by ``python -m firmware``, ``rtl.build`` and every
    benchmark: a bad argument is one line ``error: …`` and exit status 2; argument types that
    check values while parsing (positive counts, 32-bit seeds, existing files).

Convention for configuration
----------------------------
Leaf datapath units (systolic array, requantizer, SGD, softmax, top-K selector, scratchpad,
UART, random generator) take the few scalar parameters they need (lanes, widths, depths).
Every block that touches main memory or the instruction set (main memory's users, the DMA and
its checker, the memory system, the GEMM/vector/selection engines, the sequencer, the SoC, the
golden machine and golden DMA, the compiler) takes one :class:`spec.soc.SocConfig`, as a
parameter named ``soc``.
"""
