"""A board top around the systolic array alone, to measure its speed and size on real parts.

:class:`ArrayExerciser` feeds a :class:`~rtl.array.SystolicArray` from free-running LFSRs, one
tile after another, and XOR-reduces every result row it reads out, so that synthesis keeps every
multiplier and accumulator. :class:`ArrayBoardTop` puts it on a board behind a clock/reset block
(:class:`platforms.pll.ClockReset`) and shows the running parity and status on the LEDs.
``python -m rtl.build --top array`` builds it.
"""

from amaranth.hdl import Cat, ClockDomain, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from spec.params import ArrayConfig, check_positive_int
from spec.timing import tile_spacing
from rtl.array import SystolicArray
from .board_io import connect_reset_button, drive_leds, heartbeat

__all__ = ["LFSR_WIDTH", "LFSR_TAPS", "lfsr_seed", "lfsr_step", "ArrayExerciser", "ArrayBoardTop"]


#: Width of each lane's Galois LFSR.
LFSR_WIDTH = 32
#: Its feedback taps (x^32 + x^22 + x^2 + x + 1, maximal length).
LFSR_TAPS = 0x8020_0003


def lfsr_seed(lane):
    """The (non-zero) initial state of LFSR ``lane`` (A lanes first, then B lanes)."""
    return (0x9E37_79B9 * (lane + 1)) & 0xFFFF_FFFF or 1


def lfsr_step(state):
    """One step of the lanes' Galois LFSR: shift right, XOR the taps in if bit 0 was set."""
    return (state >> 1) ^ (LFSR_TAPS if state & 1 else 0)


class ArrayExerciser(wiring.Component):
    """A :class:`~rtl.array.SystolicArray` busy on LFSR operands, its results XOR-reduced.

    Every cycle presents one step: tiles of ``depth`` steps back to back (``i_first`` on step 0,
    ``i_last`` on step ``depth - 1``, never a bubble). West lane ``r`` takes its operand from LFSR
    ``r`` and north lane ``c`` from LFSR ``rows + c`` (:func:`lfsr_seed`, :func:`lfsr_step`; the
    low ``operand_width`` bits of the state, repeated if the operand is wider); each LFSR steps
    every cycle. In cycle ``t`` after reset the step number is ``t mod depth`` and LFSR ``i``
    holds :func:`lfsr_step` applied ``t`` times to ``lfsr_seed(i)``.

    Each result row the array presents is XOR-reduced to one bit in two registered stages (each
    column's ``acc_width`` bits, then the columns), so the row parity appears two cycles after
    the row; :attr:`o_parity` is the running XOR of all row parities.

    Parameters
    ----------
    config : ArrayConfig
        The array's shape and widths.
    depth : int, optional
        Steps per tile; at least :func:`spec.timing.tile_spacing` (the default).

    Members
    -------
    o_row_valid : Out(1)
        A row parity is presented this cycle.
    o_row_parity : Out(1)
        XOR of every bit of the row's ``cols`` results.
    o_parity : Out(1)
        XOR of every row parity so far (a register; drives an LED on a board).

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`~spec.params.ArrayConfig` or ``depth`` not an integer.
    ValueError
        If ``depth`` is shorter than the array's tile spacing.
    """

    o_row_valid: Out(1)
    o_row_parity: Out(1)
    o_parity: Out(1)

    def __init__(self, config, *, depth=None):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"Array configuration must be an ArrayConfig, not {config!r}")
        spacing = tile_spacing(config.rows, config.cols)
        if depth is None:
            depth = spacing
        check_positive_int(depth, "Tile depth")
        if depth < spacing:
            raise ValueError(f"Tile depth must be at least the tile spacing ({spacing}), "
                             f"not {depth!r}")
        self._config = config
        self._depth = depth
        super().__init__()

    @property
    def config(self):
        return self._config

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.array = array = SystolicArray.from_config(cfg)

        lanes = list(array.i_a) + list(array.i_b)
        for i, lane in enumerate(lanes):
            state = Signal(LFSR_WIDTH, init=lfsr_seed(i), name=f"lfsr_{i}")
            feedback = Mux(state[0], Const(LFSR_TAPS, LFSR_WIDTH), 0)
            m.d.sync += state.eq((state >> 1) ^ feedback)
            bits = Cat(*[state] * -(-cfg.operand_width // LFSR_WIDTH))
            m.d.comb += lane.eq(bits[:cfg.operand_width])

        step = Signal(range(self._depth), name="tile_step")
        m.d.sync += step.eq(Mux(step == self._depth - 1, 0, step + 1))
        m.d.comb += [
            array.i_valid.eq(1),
            array.i_first.eq(step == 0),
            array.i_last.eq(step == self._depth - 1),
        ]

        col_valid = Signal(name="col_parity_valid")
        col_parity = Signal(cfg.cols, name="col_parity")
        m.d.sync += [
            col_valid.eq(array.o_valid),
            col_parity.eq(Cat(*[array.o_c[c].xor() for c in range(cfg.cols)])),
            self.o_row_valid.eq(col_valid),
            self.o_row_parity.eq(col_parity.xor()),
        ]
        with m.If(self.o_row_valid):
            m.d.sync += self.o_parity.eq(self.o_parity ^ self.o_row_parity)
        return m


class ArrayBoardTop(Elaboratable):
    """A board design: clock/reset, an :class:`ArrayExerciser`, status on the LEDs.

    LEDs, as many as the board has, in order: the running parity (:attr:`ArrayExerciser.o_parity`),
    a heartbeat (about 1 Hz), ``sync`` out of reset, PLL locked.

    Parameters
    ----------
    config : ArrayConfig
        The array's shape and widths.
    clock_reset : wiring.Component
        Drives the ``sync`` domain (a :class:`platforms.pll.ClockReset`: ports ``rst`` in,
        ``locked`` and ``running`` out, attribute ``f_out``).
    reset_button : tuple of (str, int) or None
        A button resource that resets ``sync`` while pressed.
    depth : int, optional
        Steps per tile (:class:`ArrayExerciser`).
    """

    def __init__(self, config, *, clock_reset, reset_button=None, depth=None):
        self.exerciser = ArrayExerciser(config, depth=depth)
        self.clock_reset = clock_reset
        self.reset_button = reset_button

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.crg = crg = self.clock_reset
        m.submodules.exerciser = ex = self.exerciser
        connect_reset_button(m, platform, self.reset_button, crg)

        beat = heartbeat(m, crg.f_out)
        drive_leds(m, platform, [ex.o_parity, beat, crg.running, crg.locked])
        return m
