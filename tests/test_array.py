# amaranth: UnusedElaboratable=no
"""SystolicArray (rtl/array.py) against its golden model (golden/array.py): values and cycles."""

import random

import pytest
import torch
from amaranth.hdl import Fragment, Shape, signed, unsigned

from golden.array import (TileTiming, check_spacing, gemm_tile, join_tiles, output_latency,
                          schedule, split_gemm, tile_spacing, tile_timing, utilization)
from golden.fixedpoint import int_gemm
from rtl.array import SystolicArray
from sim.array import simulate_tiles
from spec.params import ArrayConfig


def random_tiles(rows, cols, depths, seed, width=16):
    g = torch.Generator().manual_seed(seed)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    return [(torch.randint(lo, hi, (rows, k), generator=g),
             torch.randint(lo, hi, (k, cols), generator=g)) for k in depths]


def check_run(dut, tiles, run, what):
    """Every tile bit-exact, rows in order with the right flags, each at its model cycle."""
    rows = dut.rows
    assert len(run.outputs) == rows * len(tiles), f"{what}: {len(run.outputs)} output rows"
    check_spacing(run.last_inputs, dut.rows, dut.cols)
    for j, ((a, b), got) in enumerate(zip(tiles, run.results)):
        want = gemm_tile(a, b, dut.acc_width)
        assert torch.equal(got, want), f"{what}: tile {j} differs\n{got}\n!=\n{want}"
        timing = tile_timing(run.first_inputs[j], run.last_inputs[j], dut.rows, dut.cols)
        for r, out in enumerate(run.outputs[j * rows:(j + 1) * rows]):
            assert (out.row, out.last) == (r, r == rows - 1), f"{what}: tile {j} row {r}: {out}"
            assert out.cycle == timing.row_cycle(r), \
                f"{what}: tile {j} row {r} at cycle {out.cycle}, model {timing.row_cycle(r)}"


# --- constructor and ports --------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(rows=0, cols=1), ValueError, r"^Array rows must be a positive integer, not 0$"),
    (dict(rows=2, cols=-3), ValueError, r"^Array columns must be a positive integer, not -3$"),
    (dict(rows="4", cols=4), TypeError, r"^Array rows must be a positive integer, not '4'$"),
    (dict(rows=True, cols=4), TypeError, r"^Array rows must be a positive integer, not True$"),
    (dict(rows=2, cols=2.0), TypeError, r"^Array columns must be a positive integer, not 2.0$"),
    (dict(rows=2, cols=2, operand_width=1), ValueError,
     r"^Operand width must be at least 2, not 1$"),
    (dict(rows=2, cols=2, operand_width=None), TypeError,
     r"^Operand width must be a positive integer, not None$"),
    (dict(rows=2, cols=2, acc_width=31), ValueError,
     r"^Accumulator width must be at least twice the operand width \(32\), not 31$"),
    (dict(rows=2, cols=2, operand_width=8, acc_width=15), ValueError,
     r"^Accumulator width must be at least twice the operand width \(16\), not 15$"),
])
def test_constructor_validation(kwargs, exc, msg):
    rows, cols = kwargs.pop("rows"), kwargs.pop("cols")
    with pytest.raises(exc, match=msg):
        SystolicArray(rows, cols, **kwargs)


def test_from_config():
    dut = SystolicArray.from_config(ArrayConfig(rows=3, cols=5, operand_width=8, acc_width=20))
    assert (dut.rows, dut.cols, dut.operand_width, dut.acc_width) == (3, 5, 8, 20)
    assert dut.config == ArrayConfig(3, 5, 8, 20)
    assert dut.signature == SystolicArray(3, 5, operand_width=8, acc_width=20).signature
    Fragment.get(dut, None)     # elaborates (and so counts as used: it was made in rtl/array.py)
    with pytest.raises(TypeError, match=r"^Array configuration must be an ArrayConfig, not 8$"):
        SystolicArray.from_config(8)


def test_ports():
    dut = SystolicArray(3, 5, operand_width=8, acc_width=20)
    members = dut.signature.members
    assert len(dut.i_a) == 3 and len(dut.i_b) == 5 and len(dut.o_c) == 5
    assert members["i_a"].dimensions == (3,) and members["i_a"].shape == signed(8)
    assert members["i_b"].dimensions == (5,) and members["i_b"].shape == signed(8)
    assert members["o_c"].dimensions == (5,) and members["o_c"].shape == signed(20)
    assert Shape.cast(members["o_row"].shape) == unsigned(2)
    for name in ("i_valid", "i_first", "i_last", "o_valid", "o_last"):
        assert Shape.cast(members[name].shape) == unsigned(1)
    # Defaults come from spec.params.
    default = SystolicArray(1, 1)
    assert (default.operand_width, default.acc_width) == (16, 32)


def test_signal_names():
    """PE registers keep their explicit names in the netlist (waveforms, CXXRTL symbols)."""
    from amaranth.back import rtlil
    text = rtlil.convert(SystolicArray(2, 3))
    for name in ("pe_1_2_acc", "pe_1_2_result", "pe_1_2_prod", "pe_0_1_a", "pe_1_0_b",
                 "pe_1_1_step", "skew_a_1_0", "skew_b_2_1", "readout_row"):
        assert f"\\{name} " in text or f"\\{name}\n" in text, name


# --- golden cycle model ------------------------------------------------------------------------

def test_model_formulas():
    assert output_latency(5) == 10
    assert tile_spacing(3, 5) == 5 and tile_spacing(8, 2) == 8
    assert tile_timing(4, 10, 3, 5) == TileTiming(4, 10, 20, 22)
    # 4×2 array (S = 4): K = 6 back to back, then K = 1 and K = 2 padded up to the spacing.
    s = schedule([6, 1, 2, 6], 4, 2)
    assert [(t.first_input, t.last_input) for t in s.tiles] == [(0, 5), (9, 9), (12, 13), (14, 19)]
    assert [(t.first_output, t.last_output) for t in s.tiles][-1] == (26, 29)
    assert s.total_cycles == 30 and s.mac_cycles == 15
    assert s.utilization == pytest.approx(15 / 30)
    # 8×8, K = 256, 2 tiles: 512 MAC cycles in 511 + 8 + 5 + 8 cycles.
    assert utilization([256, 256], 8, 8) == pytest.approx(512 / 532)
    assert schedule([], 2, 2).total_cycles == 0 and schedule([], 2, 2).utilization == 0.0


def test_model_validation():
    with pytest.raises(ValueError, match=r"^Tile 2 ends 3 cycles after tile 1; the array needs at least 4$"):
        check_spacing([3, 7, 10], 4, 2)
    check_spacing([3, 7, 11], 4, 2)
    with pytest.raises(ValueError, match=r"^Tile depth must be a positive integer, not 0$"):
        schedule([3, 0], 2, 2)
    with pytest.raises(ValueError, match=r"^Array columns must be a positive integer, not 0$"):
        schedule([3], 2, 0)
    with pytest.raises(ValueError, match=r"^Last input cycle must not precede the first \(5\), not 4$"):
        tile_timing(5, 4, 2, 2)


@pytest.mark.parametrize("m, k, n, rows, cols", [(5, 3, 7, 2, 3), (4, 1, 6, 4, 6), (1, 9, 1, 3, 2)])
def test_split_and_join(m, k, n, rows, cols):
    g = torch.Generator().manual_seed(m * k * n)
    a = torch.randint(-(1 << 15), 1 << 15, (m, k), generator=g)
    b = torch.randint(-(1 << 15), 1 << 15, (k, n), generator=g)
    tiles = split_gemm(a, b, rows, cols)
    mt, nt = -(-m // rows), -(-n // cols)
    assert len(tiles) == mt * nt
    assert all(ta.shape == (rows, k) and tb.shape == (k, cols) for ta, tb in tiles)
    for idx, (ta, tb) in enumerate(tiles):          # order: for j (columns of B): for i
        j, i = divmod(idx, mt)
        a_part, b_part = a[i * rows:(i + 1) * rows], b[:, j * cols:(j + 1) * cols]
        assert torch.equal(ta[:len(a_part)], a_part) and not ta[len(a_part):].any()
        assert torch.equal(tb[:, :b_part.shape[1]], b_part) and not tb[:, b_part.shape[1]:].any()
    c = join_tiles([gemm_tile(ta, tb) for ta, tb in tiles], m, n, rows, cols)
    assert torch.equal(c, int_gemm(a, b, 32))
    with pytest.raises(ValueError, match=rf"^A {m}×{n} result needs {mt * nt} tiles, not 0$"):
        join_tiles([], m, n, rows, cols)
    with pytest.raises(ValueError, match=r"^GEMM shapes do not match: A \(2, 3\), B \(2, 3\)$"):
        split_gemm(torch.zeros(2, 3), torch.zeros(2, 3), rows, cols)


# --- RTL == golden: values and cycles ----------------------------------------------------------

@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 3), (4, 4), (8, 8)])
@pytest.mark.parametrize("depth", [1, 2, 7, 64])
def test_tiles_back_to_back(rows, cols, depth):
    seed = 1000 * rows + 10 * cols + depth
    n_tiles = 2 if rows * cols * depth >= 64 * 64 else 3
    tiles = random_tiles(rows, cols, [depth] * n_tiles, seed)
    dut = SystolicArray(rows, cols)
    run = simulate_tiles(dut, tiles)
    what = f"{rows}x{cols} K={depth} seed={seed}"
    check_run(dut, tiles, run, what)
    model = schedule([depth] * n_tiles, rows, cols)
    assert run.first_inputs == [t.first_input for t in model.tiles], what
    assert run.last_inputs == [t.last_input for t in model.tiles], what
    assert run.cycles == model.total_cycles, what


@pytest.mark.parametrize("rows, cols, depth", [(1, 1, 1), (2, 3, 1), (2, 3, 7), (4, 4, 5), (3, 1, 2)])
def test_single_tile(rows, cols, depth):
    """One tile: first input at cycle 0, row r out at K - 1 + cols + 5 + r; K + rows + cols + 4 in all."""
    seed = 7 * rows + cols + depth
    tiles = random_tiles(rows, cols, [depth], seed)
    dut = SystolicArray(rows, cols)
    run = simulate_tiles(dut, tiles)
    check_run(dut, tiles, run, f"{rows}x{cols} K={depth} seed={seed}")
    assert [o.cycle for o in run.outputs] == [depth - 1 + cols + 5 + r for r in range(rows)]
    assert run.cycles == schedule([depth], rows, cols).total_cycles == depth + rows + cols + 4


@pytest.mark.parametrize("rows, cols, seed", [(2, 3, 1), (4, 4, 2), (5, 2, 3), (1, 4, 4), (3, 1, 5)])
def test_mixed_depths(rows, cols, seed):
    """Random back-to-back sequences, including K < max(rows, cols) and K = 1."""
    rng = random.Random(seed)
    s = max(rows, cols)
    depths = [rng.choice([1, 2, s - 1 or 1, s, s + 1, 2 * s + 3]) for _ in range(8)]
    tiles = random_tiles(rows, cols, depths, seed)
    dut = SystolicArray(rows, cols)
    run = simulate_tiles(dut, tiles)
    what = f"{rows}x{cols} depths={depths} seed={seed}"
    check_run(dut, tiles, run, what)
    model = schedule(depths, rows, cols)
    assert run.last_inputs == [t.last_input for t in model.tiles], what
    assert run.cycles == model.total_cycles, what


@pytest.mark.parametrize("rows, cols, seed", [(2, 3, 11), (4, 4, 12), (3, 2, 13)])
def test_random_bubbles(rows, cols, seed):
    """Bubbles anywhere (inside and between tiles) change neither results nor latencies."""
    rng = random.Random(seed)
    depths = [rng.choice([1, 2, 5, 9]) for _ in range(8)]
    tiles = random_tiles(rows, cols, depths, seed)
    dut = SystolicArray(rows, cols)
    run = simulate_tiles(dut, tiles, bubble_rate=0.4, seed=seed)
    what = f"{rows}x{cols} depths={depths} seed={seed}"
    assert run.last_inputs[-1] > schedule(depths, rows, cols).tiles[-1].last_input, \
        f"{what}: no bubble was inserted"
    check_run(dut, tiles, run, what)


@pytest.mark.parametrize("rows, cols", [(4, 2), (2, 4)])
def test_spacing_rule_is_tight(rows, cols):
    """One cycle less than the rule breaks the array (rows collide, or results are overwritten)."""
    depths = [1] * 4
    tiles = random_tiles(rows, cols, depths, seed=rows)
    dut = SystolicArray(rows, cols)
    run = simulate_tiles(dut, tiles, spacing=tile_spacing(rows, cols) - 1)
    wants = [gemm_tile(a, b) for a, b in tiles]
    good = len(run.outputs) == rows * len(tiles) \
        and all(torch.equal(g, w) for g, w in zip(run.results, wants))
    assert not good


def test_most_negative_and_wrap():
    """−32768·−32768 = 2**30; all-max accumulations overflow 32 bits and wrap."""
    dut = SystolicArray(2, 2)
    lo, hi = -(1 << 15), (1 << 15) - 1
    cases = [(lo, lo, 1), (lo, lo, 2), (lo, lo, 3), (lo, hi, 5), (hi, hi, 7), (lo, lo, 64)]
    tiles = []
    for a, b, k in cases:
        tiles.append((torch.full((2, k), a), torch.full((k, 2), b)))
    run = simulate_tiles(dut, tiles)
    check_run(dut, tiles, run, "extremes")
    for (a, b, k), got in zip(cases, run.results):
        want = (k * a * b + (1 << 31)) % (1 << 32) - (1 << 31)      # plain-int wrap to 32 bits
        assert got.tolist() == [[want] * 2] * 2, (a, b, k)
    assert run.results[1][0, 0] == -(1 << 31)                       # 2**31 wrapped
    assert run.results[5][0, 0] == 0                                 # 64 · 2**30 = 2**36


def test_narrow_widths():
    """Non-default widths: 4-bit operands, 8-bit accumulators wrap quickly."""
    dut = SystolicArray(3, 2, operand_width=4, acc_width=8)
    tiles = random_tiles(3, 2, [1, 7, 30, 3], seed=7, width=4)
    run = simulate_tiles(dut, tiles)
    check_run(dut, tiles, run, "3x2 4/8-bit seed=7")
    # The data do overflow 8 bits somewhere, so the wrap itself was exercised.
    assert any(not torch.equal(a @ b, got) for (a, b), got in zip(tiles, run.results))


def test_idle_array_is_silent():
    dut = SystolicArray(2, 2)
    run = simulate_tiles(dut, [])
    assert run.outputs == [] and run.cycles == 0


def test_utilization_8x8():
    """8×8 tiles of K = 256 back to back keep the array ≥ 95 % busy (pysim ≈ 600–800 cycles/s)."""
    rows = cols = 8
    depths = [256, 256]
    tiles = random_tiles(rows, cols, depths, seed=256)
    dut = SystolicArray(rows, cols)
    run = simulate_tiles(dut, tiles)
    check_run(dut, tiles, run, "8x8 K=256 seed=256")
    model = schedule(depths, rows, cols)
    assert run.cycles == model.total_cycles
    measured = sum(depths) / run.cycles
    print(f"\n8x8, {len(depths)} tiles of K=256: {run.cycles} cycles, utilization "
          f"{measured:.1%} (model {model.utilization:.1%}), pysim {run.cycles_per_second:.0f} cycles/s")
    assert measured == model.utilization
    assert measured >= 0.95
