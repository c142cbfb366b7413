"""Timing: the latencies and timing rules that the RTL, the golden cycle model and the simulators
share, each stated once.

An RTL unit exposes its latency as one of these constants
(``rtl.postproc.PostProcessor.LATENCY is REQ_LATENCY``); the golden cycle model
(``golden.machine.Timing``, ``golden.array``) computes with them; tests measure the RTL against them. Main memory's latency is a size of the SoC
(:attr:`spec.soc.SocConfig.mem_latency`); the softmax unit's latencies live with its tables
(:mod:`spec.softmax_tables`); the DMA's own cycle model is :func:`golden.dma.cycles`.

Pure Python, so that every layer may import it.
"""

from .params import check_positive_int

__all__ = [
    "REQ_LATENCY", "SGD_LATENCY", "VEC_READ_STAGES", "SEL_READ_STAGES", "SEL_BUSY_LATENCY",
    "FETCH_CYCLES", "ISSUE_LATENCY", "MEMOP_CYCLES", "BUS_LATENCY", "WORD_MASTER_LATENCY",
    "DMA_OVERHEAD", "GEMM_OVERHEAD",
    "memop_cycles", "bus_latency", "word_bus_latency", "output_latency", "tile_spacing",
]


# --- vector units ---------------------------------------------------------------------------------

#: Pipeline latency of REQ and RELUB in the post-processing datapath
#: (:class:`rtl.postproc.PostProcessor`): a beat taken in cycle ``t`` is presented on its output in
#: cycle ``t + REQ_LATENCY``. Eight stages: the products in DSP blocks with their own operand,
#: pipeline and product registers (three stages, issue 27 item 5; the rounding addend and the
#: other operands beside them); two partial sums; the sum; coarse shift with the range and tie
#: flags; fine shift, tie correction and range flag; saturate (and ``w − step``). (Four until issue
#: 28: 69 MHz, the products' DSP blocks and adders in one stage; seven with the DSP blocks
#: between fabric registers: 101.7 MHz.)
REQ_LATENCY = 8

#: Pipeline latency of SGD in the same datapath: the same eight stages as :data:`REQ_LATENCY`.
SGD_LATENCY = 8

#: Cycles from a scratchpad read of the vector engine (:class:`rtl.vec_engine.VecEngine`) to its
#: row at the engine: two, through the scratchpads' late read ports (issue 27 item 1: each bank's
#: block-RAM output reaches only a register, then the bank multiplexer on a registered select).
#: REQ, RELUB and SGD are busy ``rows + VEC_READ_STAGES + latency`` cycles, SMX
#: ``softmax_cycles + VEC_READ_STAGES``; FILL reads nothing (``rows + 1``). (1 until then: the row
#: the cycle after the read.)
VEC_READ_STAGES = 2


# --- the selection engine -------------------------------------------------------------------------

#: Cycles from the selection engine's read of a probability row (:class:`rtl.sel_engine.SelEngine`,
#: SELFEED) to the row at the engine: two, through the operand scratchpad's late read port (issue 27
#: item 1). :func:`golden.selection.selfeed_cycles` counts with it. (1 until then.)
SEL_READ_STAGES = 2

#: Cycles the selection engine stays busy after its instruction is done: its ``busy`` is a
#: register (issue 27 item 4), so SELCLR, SELFEED and SELOUT each last one cycle more than their
#: work. On a routed 2×2 SoC the combinational ``busy`` (from deep in the selector's state: the
#: feed's queues, the inserter, the write-back's outstanding count) ran through the sequencer's
#: scoreboard into ``pc``, 11.9 ns. (0 until then.)
SEL_BUSY_LATENCY = 1


# --- the sequencer ----------------------------------------------------------------------------------

#: Cycles from the start of an instruction's fetch to the first cycle it may issue: the
#: sequencer's states FETCH, DECODE, READ, OPERANDS, COMPARE and CHECK
#: (:class:`rtl.sequencer.Sequencer`; READ and COMPARE since issue 27, for the clock).
FETCH_CYCLES = 6

#: Cycles from an instruction's issue to the cycle its unit takes it: the sequencer's start
#: strobes are registers (issue 27 item 4: no combinational path from a unit's busy through the
#: scoreboard into a unit; on a routed 2×2 SoC that loop was the critical path at seed 2,
#: 14.8 ns). A unit operation issued at cycle ``t`` is taken at ``t + ISSUE_LATENCY`` (0 before).
ISSUE_LATENCY = 1

#: Cycles an LDW/STW holds the sequencer after it issues, besides main memory's latency: see
#: :func:`memop_cycles`.
MEMOP_CYCLES = 2

#: Cycles the bus arbiter adds to every main-memory access of a bus master in the SoC (its
#: request register, issue 27 item 4: :class:`rtl.bus.BusArbiter`): see :func:`bus_latency`.
BUS_LATENCY = 1

#: Cycles a word master of the SoC (the sequencer's LDW/STW, the selection engine, the host link)
#: adds on top of :data:`BUS_LATENCY`: its requests reach the arbiter through a two-entry skid
#: buffer (:class:`rtl.skid.SkidBuffer`: valid, payload and ready all registers, issue 27 item 4;
#: on a routed 2×2 SoC the selection engine's request `valid`, deep in its selector's state, ran
#: through the arbiter's grant into a bridge's lane queue, 12.4 ns). See :func:`word_bus_latency`.
WORD_MASTER_LATENCY = 1

#: A DMA instruction keeps the DMA unit busy for ``golden.dma.cycles(desc) + DMA_OVERHEAD``
#: cycles (the DMA takes the descriptor in the cycle its start strobe is high,
#: :data:`ISSUE_LATENCY` after the issue).
DMA_OVERHEAD = -1

#: A GEMM keeps the GEMM engine busy for the array schedule's total cycles + ``GEMM_OVERHEAD``: two
#: read stages before the array (the scratchpad's late read ports, issue 27 item 1: the block
#: RAM's output reaches only a register), three write stages after (the old row's late read, the
#: sum with forwarding, the write from registers: :class:`rtl.gemm_engine.GemmEngine`). (2 until
#: then: one read stage, the sum formed from the block RAM's output in the write's cycle.)
GEMM_OVERHEAD = 5


def bus_latency(mem_latency):
    """The latency the DMA sees on a main memory of latency ``mem_latency`` in the SoC: from the
    cycle the arbiter takes its request to the cycle the response is valid, ``mem_latency +
    BUS_LATENCY`` (the word masters see :func:`word_bus_latency`)."""
    check_positive_int(mem_latency, "Memory latency")
    return mem_latency + BUS_LATENCY


def word_bus_latency(mem_latency):
    """The latency a word master of the SoC (the sequencer's LDW/STW, the selection engine, the
    host link) sees on a main memory of latency ``mem_latency``, from the cycle it hands a request
    over to the cycle the response is valid: :func:`bus_latency` plus
    :data:`WORD_MASTER_LATENCY`."""
    return bus_latency(mem_latency) + WORD_MASTER_LATENCY


def memop_cycles(mem_latency):
    """Cycles an LDW/STW holds the sequencer after it issues, on a main memory of latency
    ``mem_latency``: ``MEMOP_CYCLES + mem_latency`` (two bus transfers, low word first)."""
    check_positive_int(mem_latency, "Memory latency")
    return MEMOP_CYCLES + mem_latency


# --- the systolic array -----------------------------------------------------------------------------

def output_latency(cols):
    """Cycles from a tile's last input to its output row 0 in :class:`rtl.array.SystolicArray`:
    ``cols + 5`` (``golden/array.py`` derives it: each PE's multiplier has its operand, pipeline
    and product registers, then a fabric product register, before the accumulator)."""
    check_positive_int(cols, "Array columns")
    return cols + 5


def tile_spacing(rows, cols):
    """Minimum distance, in cycles, between the last inputs of consecutive tiles of a
    ``rows`` × ``cols`` systolic array: ``max(rows, cols)`` (``golden/array.py`` explains the
    rule)."""
    check_positive_int(rows, "Array rows")
    check_positive_int(cols, "Array columns")
    return max(rows, cols)
