"""Run tiles through a :class:`~rtl.array.SystolicArray` in the compiled simulator.

The compiled counterpart of :func:`sim.array.simulate_tiles`: the same input plan (tiles as
early as the spacing rule allows, optional random bubbles), the same :class:`ArrayRun` result
with the same cycle numbering, but every cycle runs in C++ (one foreign call for the whole run).
"""

import time

import numpy as np

from sim.array import ArrayRun, OutputRow, input_plan

from .sim import CxxSim

__all__ = ["array_model", "run_tiles"]


def array_model(array, **kwargs):
    """A :class:`CxxSim` of ``array`` (keyword arguments go to :class:`CxxSim`)."""
    kwargs.setdefault("name", f"array{array.rows}x{array.cols}")
    return CxxSim(array, **kwargs)


def run_tiles(sim, array, tiles, *, bubble_rate=0.0, seed=0, spacing=None):
    """Reset ``sim`` (a model of ``array``), feed it ``tiles`` and record what comes out.

    Parameters and result as :func:`sim.array.simulate_tiles` (cycle 0 is the first cycle
    after the reset; ``OutputRow.cycle`` is the cycle in which the row was presented).
    """
    rows, cols = array.rows, array.cols
    plan, firsts, lasts = input_plan(tiles, rows, cols, bubble_rate, seed, spacing)
    n = len(plan) + 2 * (rows + cols) + 8

    # Per-cycle input columns: valid, first, last, A lanes, B lanes. During a bubble the operands
    # hold their last values, as the Python driver leaves them.
    stim = np.zeros((n, 3 + rows + cols), dtype=np.int64)
    held = [0] * (rows + cols)
    for cycle, step in enumerate(plan):
        if step is not None:
            a_col, b_row, first, last = step
            held = [*a_col, *b_row]
            stim[cycle, :3] = (1, first, last)
        stim[cycle, 3:] = held
    stim[len(plan):, 3:] = held
    ports = [array.i_valid, array.i_first, array.i_last, *array.i_a, *array.i_b]
    watched = [array.o_valid, array.o_row, array.o_last, *array.o_c]

    sim.reset()
    start, cpu_start = time.perf_counter(), time.process_time()
    got = sim.run(n, [(port, stim[:, j]) for j, port in enumerate(ports)], watched)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start

    # Row i holds the values after cycle i's clock edge: what the Python driver samples
    # (`ctx.tick().sample`) in cycle i + 1.
    outputs = [OutputRow(i + 1, int(row[1]), bool(row[2]), tuple(int(x) for x in row[3:]))
               for i, row in enumerate(got[:n - 1]) if row[0]]
    return ArrayRun(rows, cols, firsts, lasts, outputs, n, wall, cpu)
