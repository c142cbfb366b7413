"""The project's boards and the configuration each board gets, as data.

A :class:`BoardConfig` says everything the build needs to know about a board: its platform class
(by name: the classes live in :mod:`platforms.vendor`, which imports amaranth-boards),
the FPGA family, the SoC's sizes and units (:class:`spec.soc.SocConfig`: array shape, main
memory, scratchpads, the selection engine or none), the target clock, the host link's baud rate,
the reset button and the synthesis and place-and-route options. :func:`get_board` looks a
board up by name.

This module is pure Python (it imports only ``spec``): the host side reads a board's clock, baud
rate and SoC configuration without importing Amaranth. What needs Amaranth — the platform, the PLL —
is imported by the methods that make them.
"""

from dataclasses import dataclass, field, replace

from spec.params import ArrayConfig, Config, check_positive_int
from spec.soc import SocConfig

__all__ = ["PartResources", "PARTS", "BoardConfig", "BOARDS", "get_board"]


def _check_options(value, what):
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a tuple of strings, not {value!r}")
    return value


@dataclass(frozen=True)
class PartResources:
    """The hard blocks of an FPGA part that a design can run out of before placement.

    ``python -m rtl.build`` compares a lower bound of what a configuration needs with these
    counts before it elaborates (:func:`rtl.build.estimate_resources`).

    Parameters
    ----------
    part : str
        The part's name in reports (``"LFE5U-85F"``).
    dsp_cell : str
        The multiplier block Yosys maps a multiplication to (``"MULT18X18D"``).
    dsp : int
        How many the part has.
    bram_cell : str
        The block RAM (``"DP16KD"``).
    bram : int
        How many the part has.
    bram_bits : int
        Bits one block RAM holds at its widest configuration (18432 for an 18 kbit block).

    Raises
    ------
    TypeError, ValueError
        If a name is not a non-empty string or a count is not a positive integer.
    """
    part: str
    dsp_cell: str
    dsp: int
    bram_cell: str
    bram: int
    bram_bits: int

    def __post_init__(self):
        for what, name in (("Part name", self.part), ("DSP cell name", self.dsp_cell),
                           ("Block RAM cell name", self.bram_cell)):
            if not isinstance(name, str) or not name:
                raise TypeError(f"{what} must be a non-empty string, not {name!r}")
        check_positive_int(self.dsp, "Part DSP count")
        check_positive_int(self.bram, "Part block RAM count")
        check_positive_int(self.bram_bits, "Block RAM bits")


#: The parts of the boards, by name (counts from the vendors' data sheets; nextpnr's
#: utilization tables say the same: 156 MULT18X18D and 208 DP16KD, 8 ICESTORM_DSP and 30
#: ICESTORM_RAM).
PARTS = {
    "LFE5U-85F": PartResources(part="LFE5U-85F", dsp_cell="MULT18X18D", dsp=156,
                               bram_cell="DP16KD", bram=208, bram_bits=18 * 1024),
    "iCE40UP5K": PartResources(part="iCE40UP5K", dsp_cell="SB_MAC16", dsp=8,
                               bram_cell="SB_RAM40_4K", bram=30, bram_bits=4 * 1024),
}


@dataclass(frozen=True)
class BoardConfig:
    """One board and the configuration the project builds for it.

    Parameters
    ----------
    name : str
        The board's name in :data:`BOARDS` (``"ulx3s-85f"``).
    description : str
        One line for reports.
    platform : str
        The name of the board's Amaranth platform class in :mod:`platforms.vendor`;
        :meth:`make_platform` imports and instantiates it.
    family : ``"ecp5"`` or ``"ice40"``
        The FPGA family (selects the PLL primitive and the report's resource names).
    clock : str
        The board oscillator's resource name.
    clock_hz : float
        The board oscillator's frequency in Hz (the platform's ``clock`` resource says the same;
        a test checks it).
    soc : SocConfig
        Array shape, widths, main memory and scratchpad sizes, the selection engine's
        configuration (``None``: the SoC has none).
    freq_mhz : float
        Target clock of the SoC in MHz (the PLL gets as close as it can).
    baud : int
        Host-link UART baud rate.
    reset_button : tuple of (str, int) or None
        Resource of a button that resets the ``sync`` domain while pressed.
    synth_opts, nextpnr_opts : tuple of str
        Extra options of Yosys's ``synth_<family>`` and of nextpnr.
    soc_nextpnr_opts : tuple of str
        Further nextpnr options for the whole SoC (``--top soc``) only.
    resources : PartResources or None
        The FPGA part's DSP and block RAM counts (``None``: not known, nothing is checked
        before the build).

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If a field is out of range.
    """
    name: str
    description: str
    platform: str
    family: str
    clock: str
    clock_hz: float
    soc: SocConfig
    freq_mhz: float
    baud: int = 115200
    reset_button: tuple = ("button", 0)
    synth_opts: tuple = ()
    nextpnr_opts: tuple = ()
    soc_nextpnr_opts: tuple = ()
    resources: PartResources = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Board name must be a non-empty string, not {self.name!r}")
        if not isinstance(self.platform, str) or not self.platform.isidentifier():
            raise TypeError(f"Board platform must be the name of a class in platforms.vendor, "
                            f"not {self.platform!r}")
        if self.family not in ("ecp5", "ice40"):
            raise ValueError(f"FPGA family must be 'ecp5' or 'ice40', not {self.family!r}")
        if not isinstance(self.soc, SocConfig):
            raise TypeError(f"Board SoC configuration must be a SocConfig, not {self.soc!r}")
        if not isinstance(self.clock_hz, (int, float)) or isinstance(self.clock_hz, bool) \
                or not self.clock_hz > 0:
            raise ValueError(f"Board oscillator must be a positive number of Hz, "
                             f"not {self.clock_hz!r}")
        if not isinstance(self.freq_mhz, (int, float)) or isinstance(self.freq_mhz, bool):
            raise TypeError(f"Target clock must be a number of MHz, not {self.freq_mhz!r}")
        if not self.freq_mhz > 0:
            raise ValueError(f"Target clock must be positive, not {self.freq_mhz!r}")
        check_positive_int(self.baud, "Baud rate")
        if self.reset_button is not None and not (
                isinstance(self.reset_button, tuple) and len(self.reset_button) == 2
                and isinstance(self.reset_button[0], str) and isinstance(self.reset_button[1], int)):
            raise TypeError(f"Reset button must be a (name, number) tuple or None, "
                            f"not {self.reset_button!r}")
        _check_options(self.synth_opts, "Synthesis options")
        _check_options(self.nextpnr_opts, "nextpnr options")
        _check_options(self.soc_nextpnr_opts, "SoC nextpnr options")
        if self.resources is not None and not isinstance(self.resources, PartResources):
            raise TypeError(f"Board resources must be a PartResources or None, "
                            f"not {self.resources!r}")

    @property
    def array(self):
        """The array's :class:`~spec.params.ArrayConfig`."""
        return self.soc.config.array

    def with_array(self, rows=None, cols=None):
        """A copy with another array shape (``None`` keeps a dimension)."""
        array = replace(self.array, rows=self.array.rows if rows is None else rows,
                        cols=self.array.cols if cols is None else cols)
        return replace(self, soc=replace(self.soc, config=replace(self.soc.config, array=array)))

    def with_freq(self, freq_mhz):
        """A copy with another target clock."""
        return replace(self, freq_mhz=freq_mhz)

    @property
    def platform_class(self):
        """The board's Amaranth platform class (imports :mod:`platforms.vendor`)."""
        from . import vendor
        try:
            return getattr(vendor, self.platform)
        except AttributeError:
            raise ValueError(f"platforms.vendor has no platform class {self.platform!r}") \
                from None

    def make_platform(self):
        """A new instance of the board's platform."""
        return self.platform_class()

    def clock_reset(self):
        """The board's :class:`~platforms.pll.ClockReset` for the target clock."""
        from .pll import ClockReset
        return ClockReset(self.family, clock=self.clock, f_in=self.clock_hz,
                          freq=self.freq_mhz * 1e6)

    @property
    def clock_frequency(self):
        """The board oscillator's frequency in Hz (:attr:`clock_hz`)."""
        return self.clock_hz


def _soc(rows, cols, **kwargs):
    return SocConfig(config=Config(array=ArrayConfig(rows=rows, cols=cols)), **kwargs)


#: The boards, by name.
BOARDS = {
    # ECP5-85F: 83640 LUT4, 156 MULT18X18D, 208 DP16KD (18 kbit). Main memory has two read
    # ports (the bus and the instruction fetch), so Yosys builds it twice: 2**16 words take
    # 2 x 64 DP16KD (2**17 words needed 256: 291 of 208 in all); the scratchpads take 16 + 16,
    # the softmax unit and the host link's buffer the rest.
    "ulx3s-85f": BoardConfig(
        name="ulx3s-85f",
        description="Radiona ULX3S, Lattice ECP5 LFE5U-85F-6BG381C",
        platform="ULX3S85FPlatform",
        family="ecp5",
        clock="clk25",
        clock_hz=25e6,
        soc=_soc(8, 8, mem_words=1 << 16, sp_banks=4, sp_depth=512, acc_banks=2, acc_depth=512),
        # The goal of issue 27: the whole 8x8 SoC at 100 MHz (docs/build.md has what it meets).
        # Until the SoC was re-pipelined it ran at 30 MHz (32.7 MHz routed).
        freq_mhz=100.0,
        # The FT231X does 3 Mbaud: divisor 33 at 100 MHz (1 % off, within a UART's margin).
        baud=3_000_000,
        # Timing-driven placement on for the SoC too (issue 27): it was turned off while the
        # unpipelined SoC did not route with it (45 k arcs left after an hour at 30 MHz).
        # nextpnr's analytic `static` placer for the SoC: its placement of the 8x8 SoC has 30 %
        # less wire than HeAP's and routes (76.5 MHz, routing 52 min at load 3-6), where HeAP's
        # still had 119 k of 150 k arcs left after 8 min and no build finished in over an hour
        # (docs/build.md); the 2x2 probe is the same either way (89.1 against 89.2-90.5 MHz).
        soc_nextpnr_opts=("--placer", "static"),
        resources=PARTS["LFE5U-85F"],
    ),
    # iCE40UP5K: 5280 LC, 8 SB_MAC16, 30 EBR (4 kbit), 4 SPRAM (256 kbit). The whole SoC does
    # not fit (docs/build.md): this configuration, with a 2048-word main memory, needs 19500 LC
    # (369 %), 33 DSP and 48 EBR; even a 1x1 array with 1024 words and 256-row scratchpads
    # synthesizes to 8995 LUT4 + 3172 SB_CARRY, 17 SB_MAC16 and 30 EBR. Main memory cannot go
    # to SPRAM either: the sequencer fetches 128-bit lines on a second read port, and SPRAM is
    # single-ported and 16 bits wide. The board builds the bare 2x4 array (--top array).
    "icebreaker": BoardConfig(
        name="icebreaker",
        description="1BitSquared iCEBreaker, Lattice iCE40UP5K-SG48",
        platform="ICEBreakerPlatform",
        family="ice40",
        clock="clk12",
        clock_hz=12e6,
        soc=_soc(2, 4, mem_words=1 << 11, sp_banks=2, sp_depth=256, acc_banks=2, acc_depth=256,
                 selector=None),
        freq_mhz=30.0,
        # The FT2232H's channel B: 1 Mbaud is divisor 30 at 30 MHz, exact.
        baud=1_000_000,
        synth_opts=("-dsp", "-spram"),
        resources=PARTS["iCE40UP5K"],
    ),
}


def get_board(name):
    """The :class:`BoardConfig` named ``name`` (``"ulx3s-85f"`` or ``"icebreaker"``).

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If there is no such board.
    """
    if not isinstance(name, str):
        raise TypeError(f"Board name must be a string, not {name!r}")
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"Unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}") \
            from None
