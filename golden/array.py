"""Golden model of the systolic array: what a tile computes and exactly when.

Two parts:

* **Values** — :func:`gemm_tile`: one tile ``C[R×C] = A[R×K]·B[K×C]`` with a wrapping
  ``acc_width``-bit accumulator (:func:`golden.fixedpoint.int_gemm`).
* **Cycles** — the exact cycle model of :class:`rtl.array.SystolicArray`. Cycle 0 is the cycle in
  which the first input of the first tile is presented; cycle numbers count clock cycles from it.

Cycle model
-----------
A tile of depth ``K`` is fed as ``K`` valid input cycles (``k = 0 .. K-1``; idle cycles, *bubbles*,
may be interleaved anywhere). Its latencies depend only on the cycle ``L`` of its **last** input:

* output row ``r`` (``0 <= r < rows``) is presented on the output ports in cycle
  ``L + cols + 5 + r`` (see :func:`spec.timing.output_latency`): rows come out in order, one per
  cycle.

  Where the ``cols + 5`` comes from: operand lane ``r`` is skewed by ``r`` cycles, and operands take
  one cycle per PE they cross, so the ``k``-th operands reach PE ``(r, c)``'s operand registers,
  and its multiplier's, ``r + c + 1`` cycles after they were presented; the multiplier's pipeline
  and product registers (a DSP block's own, on the ECP5) take two more, the PE's fabric product
  register one more, and the accumulator/result register one more; the last column of row ``r``
  is done after ``L + r + cols + 4``, the result-row select is registered on the way, and the
  output register adds one cycle.

**Spacing rule.** The result registers of a tile are overwritten when the next tile's last input
reaches them, and read-out takes one cycle per row, so the last inputs of consecutive tiles must be
at least :func:`spec.timing.tile_spacing` ``= max(rows, cols)`` cycles apart::

    L[j+1] - L[j] >= max(rows, cols)

(``>= rows`` keeps the output rows of two tiles from colliding; ``>= cols`` keeps the next tile
from overwriting row ``r``'s column-0 result before row ``r`` is read out.) A producer keeps to it
by inserting bubbles before a short tile's last input; with ``K >= max(rows, cols)`` back-to-back
tiles need no bubbles at all. Nothing else constrains the input: tiles follow each other without
a gap, and bubbles inside a tile are harmless.

Utilization
-----------
For tiles of depths ``K_1 .. K_T`` the array does ``rows·cols·ΣK`` multiply-accumulates in
``total`` cycles, where ``total`` counts every cycle from the first input to the last output row,
both included. Utilization is the fraction of PE-cycles that do a MAC:
``rows·cols·ΣK / (rows·cols·total) = ΣK / total`` — drain and fill count as idle.

This module never imports Amaranth or ``rtl/``.
"""

from dataclasses import dataclass

import torch

from spec.params import ACC_WIDTH, check_int, check_positive_int
from spec.timing import output_latency, tile_spacing
from golden.fixedpoint import int_gemm

__all__ = [
    "gemm_tile", "split_gemm", "join_tiles", "output_latency", "tile_spacing",
    "TileTiming", "Schedule", "tile_timing", "check_spacing", "schedule", "utilization",
]


def gemm_tile(a, b, acc_width=ACC_WIDTH):
    """One tile of the array: ``A·B`` with a wrapping ``acc_width``-bit accumulator.

    Parameters
    ----------
    a : integer tensor, shape (rows, K)
    b : integer tensor, shape (K, cols)
    acc_width : int

    Returns
    -------
    torch.Tensor
        ``int64`` tensor (rows, cols): ``wrap(a @ b, acc_width)``.
    """
    return int_gemm(a, b, acc_width)


def split_gemm(a, b, rows, cols):
    """Cut ``A[M×K]·B[K×N]`` into array tiles, zero-padding ``M`` and ``N`` to whole tiles.

    Tiles come in the order ``for j in range(ceil(N / cols)): for i in range(ceil(M / rows))``
    (the order :func:`join_tiles` expects); each has the full depth ``K``.

    Returns
    -------
    list of (A_i, B_j)
        ``A_i`` of shape (rows, K), ``B_j`` of shape (K, cols), ``int64``.
    """
    _check_shape(rows, cols)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"GEMM shapes do not match: A {tuple(a.shape)}, B {tuple(b.shape)}")
    (m, k), n = a.shape, b.shape[1]
    mt, nt = -(-m // rows), -(-n // cols)
    a_pad = torch.zeros(mt * rows, k, dtype=torch.int64)
    a_pad[:m] = a
    b_pad = torch.zeros(k, nt * cols, dtype=torch.int64)
    b_pad[:, :n] = b
    return [(a_pad[i * rows:(i + 1) * rows], b_pad[:, j * cols:(j + 1) * cols])
            for j in range(nt) for i in range(mt)]


def join_tiles(tiles, m, n, rows, cols):
    """Assemble the (rows × cols) result tiles of :func:`split_gemm` into the ``M×N`` result."""
    _check_shape(rows, cols)
    mt, nt = -(-m // rows), -(-n // cols)
    if len(tiles) != mt * nt:
        raise ValueError(f"A {m}×{n} result needs {mt * nt} tiles, not {len(tiles)}")
    out = torch.zeros(mt * rows, nt * cols, dtype=torch.int64)
    for idx, tile in enumerate(tiles):
        j, i = divmod(idx, mt)
        out[i * rows:(i + 1) * rows, j * cols:(j + 1) * cols] = tile
    return out[:m, :n]


def _check_shape(rows, cols):
    check_positive_int(rows, "Array rows")
    check_positive_int(cols, "Array columns")


@dataclass(frozen=True)
class TileTiming:
    """When one tile goes in and comes out (cycle numbers, first input of the run = cycle 0).

    Attributes
    ----------
    first_input, last_input : int
        Cycles in which the tile's first (``k = 0``) and last (``k = K-1``) inputs are presented.
    first_output, last_output : int
        Cycles in which output rows ``0`` and ``rows - 1`` are presented.
    """
    first_input: int
    last_input: int
    first_output: int
    last_output: int

    def row_cycle(self, r):
        """The cycle in which output row ``r`` is presented."""
        return self.first_output + r


def tile_timing(first_input, last_input, rows, cols):
    """The :class:`TileTiming` of a tile whose first and last inputs are at the given cycles."""
    _check_shape(rows, cols)
    check_int(first_input, "First input cycle")
    check_int(last_input, "Last input cycle")
    if last_input < first_input:
        raise ValueError(f"Last input cycle must not precede the first ({first_input}), "
                         f"not {last_input!r}")
    first_output = last_input + output_latency(cols)
    return TileTiming(first_input, last_input, first_output, first_output + rows - 1)


def check_spacing(last_inputs, rows, cols):
    """Raise :exc:`ValueError` unless consecutive last-input cycles keep to the spacing rule."""
    s = tile_spacing(rows, cols)
    for j in range(1, len(last_inputs)):
        if last_inputs[j] - last_inputs[j - 1] < s:
            raise ValueError(f"Tile {j} ends {last_inputs[j] - last_inputs[j - 1]} cycles after "
                             f"tile {j - 1}; the array needs at least {s}")


@dataclass(frozen=True)
class Schedule:
    """The timing of a sequence of tiles fed to the array.

    Attributes
    ----------
    rows, cols : int
        Array shape.
    depths : tuple of int
        ``K`` of each tile.
    tiles : tuple of TileTiming
    """
    rows: int
    cols: int
    depths: tuple
    tiles: tuple

    @property
    def total_cycles(self):
        """Cycles from the first input to the last output row, both included (0 if no tiles)."""
        if not self.tiles:
            return 0
        return self.tiles[-1].last_output - self.tiles[0].first_input + 1

    @property
    def mac_cycles(self):
        """``ΣK``: cycles in which every PE does a multiply-accumulate."""
        return sum(self.depths)

    @property
    def utilization(self):
        """``ΣK / total_cycles`` (0.0 if no tiles): the fraction of PE-cycles doing a MAC."""
        return self.mac_cycles / self.total_cycles if self.tiles else 0.0


def schedule(depths, rows, cols):
    """Tiles of the given depths fed as early as the spacing rule allows, without bubbles inside.

    Tile ``j`` starts in the cycle after tile ``j-1``'s last input, unless it is short
    (``K_j < max(rows, cols)``): then its first input is delayed so that its last input lands
    exactly ``max(rows, cols)`` cycles after the previous last input. In formulas, with
    ``S = max(rows, cols)``::

        L[0] = K[0] - 1
        L[j] = L[j-1] + max(K[j], S)
        first_input[j] = L[j] - K[j] + 1

    Parameters
    ----------
    depths : sequence of int
        ``K`` of each tile, each ≥ 1.
    rows, cols : int
        Array shape.

    Returns
    -------
    Schedule
    """
    s = tile_spacing(rows, cols)
    depths = tuple(depths)
    tiles, last = [], None
    for k in depths:
        check_positive_int(k, "Tile depth")
        last = k - 1 if last is None else last + max(k, s)
        tiles.append(tile_timing(last - k + 1, last, rows, cols))
    return Schedule(rows, cols, depths, tuple(tiles))


def utilization(depths, rows, cols):
    """Utilization of tiles of the given depths fed by :func:`schedule`: ``ΣK / total_cycles``."""
    return schedule(depths, rows, cols).utilization
