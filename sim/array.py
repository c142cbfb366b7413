"""Run tiles through a :class:`~rtl.array.SystolicArray` in Amaranth's Python simulator.

The driver is the array's producer and consumer: it presents each tile's steps (column ``k`` of
``A``, row ``k`` of ``B``) with ``first``/``last`` flags, inserts bubbles where the spacing rule of
:mod:`golden.array` requires them (and, optionally, random ones), records every output row with
its cycle number, and measures the simulator's speed. Tests, ``python -m firmware demo`` and
``python -m benchmarks.gemm`` share it.
"""

import random
import time
from dataclasses import dataclass

import torch
from amaranth.sim import Simulator

from spec.timing import tile_spacing

__all__ = ["OutputRow", "ArrayRun", "simulate_tiles", "input_plan"]


@dataclass(frozen=True)
class OutputRow:
    """One row the array presented: its cycle, ``o_row``, ``o_last`` and the ``cols`` values."""
    cycle: int
    row: int
    last: bool
    values: tuple


@dataclass
class ArrayRun:
    """What :func:`simulate_tiles` observed (cycle 0 = the first simulated cycle).

    Attributes
    ----------
    first_inputs, last_inputs : list of int
        Per tile, the cycles of its first and last steps.
    outputs : list of OutputRow
        Every cycle with ``o_valid`` high, in order.
    sim_cycles : int
        Cycles simulated.
    wall_seconds, cpu_seconds : float
        Wall-clock and process CPU time of the simulation proper (elaboration excluded); on a
        shared machine the CPU time is the steadier measure.
    """
    rows: int
    cols: int
    first_inputs: list
    last_inputs: list
    outputs: list
    sim_cycles: int
    wall_seconds: float
    cpu_seconds: float

    @property
    def results(self):
        """Output rows grouped ``rows`` at a time into ``int64`` tiles (a short tail is dropped)."""
        tiles = []
        for i in range(len(self.outputs) // self.rows):
            group = self.outputs[i * self.rows:(i + 1) * self.rows]
            tiles.append(torch.tensor([o.values for o in group], dtype=torch.int64))
        return tiles

    @property
    def cycles(self):
        """Cycles from the first input to the last output row, both included (0 if no output)."""
        return self.outputs[-1].cycle - self.first_inputs[0] + 1 if self.outputs else 0

    @property
    def cycles_per_second(self):
        """Simulated cycles per wall-clock second."""
        return self.sim_cycles / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    @property
    def cycles_per_cpu_second(self):
        """Simulated cycles per second of process CPU time."""
        return self.sim_cycles / self.cpu_seconds if self.cpu_seconds > 0 else float("inf")


def input_plan(tiles, rows, cols, bubble_rate, seed, spacing=None):
    """The array's input schedule for ``tiles``, shared by this driver and the compiled one
    (:mod:`sim.compiled.array`): per cycle, ``None`` (bubble) or ``(a_col, b_row, first, last)``;
    plus each tile's first and last cycles.

    ``spacing`` defaults to :func:`spec.timing.tile_spacing`; ``bubble_rate`` is the probability
    of an input bubble per cycle, drawn from ``random.Random(seed)``.

    Raises
    ------
    ValueError
        If ``bubble_rate`` is not in ``[0, 1)`` or a tile's shapes do not fit the array.
    """
    if not 0 <= bubble_rate < 1:
        raise ValueError(f"Bubble rate must be in [0, 1), not {bubble_rate!r}")
    if spacing is None:
        spacing = tile_spacing(rows, cols)
    rng = random.Random(seed)
    plan, firsts, lasts = [], [], []
    for j, (a, b) in enumerate(tiles):
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != rows or b.shape[1] != cols \
                or a.shape[1] != b.shape[0] or a.shape[1] < 1:
            raise ValueError(f"Tile {j} has shapes A {tuple(a.shape)}, B {tuple(b.shape)}; "
                             f"the array needs A ({rows}, K) and B (K, {cols}) with K >= 1")
        a_cols, b_rows = a.T.tolist(), b.tolist()
        depth = len(b_rows)
        if lasts:       # a short tile starts late enough that its last step keeps the spacing
            plan.extend([None] * (lasts[-1] + spacing - (depth - 1) - len(plan)))
        for k in range(depth):
            while bubble_rate and rng.random() < bubble_rate:
                plan.append(None)
            if k == 0:
                firsts.append(len(plan))
            if k == depth - 1:
                lasts.append(len(plan))
            plan.append((a_cols[k], b_rows[k], k == 0, k == depth - 1))
    return plan, firsts, lasts


def simulate_tiles(array, tiles, *, bubble_rate=0.0, seed=0, spacing=None, vcd=None):
    """Feed ``tiles`` to ``array`` in the Python simulator and record what comes out.

    Tiles go in as early as the spacing rule allows; with ``bubble_rate > 0`` each step is
    preceded by a random number of bubbles (each further bubble with probability
    ``bubble_rate``, drawn from ``random.Random(seed)``). The simulation runs until
    ``2 * (rows + cols) + 8`` cycles after the last input, so late or spurious rows are recorded
    too.

    Parameters
    ----------
    array : SystolicArray
    tiles : sequence of (A, B)
        Integer tensors, ``A`` of shape (rows, K) and ``B`` of shape (K, cols), values within the
        operand width.
    bubble_rate : float
        ``0 <= bubble_rate < 1``.
    seed : int
    spacing : int, optional
        Minimum distance between consecutive last steps; default (and the only correct value)
        :func:`spec.timing.tile_spacing`. Tests pass less to show the rule is tight.
    vcd : str, optional
        Write a waveform to this path.

    Returns
    -------
    ArrayRun
    """
    rows, cols = array.rows, array.cols
    plan, firsts, lasts = input_plan(tiles, rows, cols, bubble_rate, seed, spacing)
    n_cycles = len(plan) + 2 * (rows + cols) + 8
    outputs = []

    async def testbench(ctx):
        a_ports, b_ports = list(array.i_a), list(array.i_b)
        watched = (array.o_valid, array.o_row, array.o_last, *array.o_c)
        valid = False
        for cycle in range(n_cycles):
            step = plan[cycle] if cycle < len(plan) else None
            if step is None:
                if valid:
                    ctx.set(array.i_valid, 0)
                    valid = False
            else:
                a_col, b_row, first, last = step
                for port, x in zip(a_ports, a_col):
                    ctx.set(port, x)
                for port, x in zip(b_ports, b_row):
                    ctx.set(port, x)
                ctx.set(array.i_first, first)
                ctx.set(array.i_last, last)
                if not valid:
                    ctx.set(array.i_valid, 1)
                    valid = True
            _, _, o_valid, o_row, o_last, *o_c = await ctx.tick().sample(*watched)
            if o_valid:
                outputs.append(OutputRow(cycle, o_row, bool(o_last), tuple(o_c)))

    sim = Simulator(array)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    start, cpu_start = time.perf_counter(), time.process_time()
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return ArrayRun(rows, cols, firsts, lasts, outputs, n_cycles, wall, cpu)
