"""PLL divider search for the boards' FPGAs, and the clock/reset block built on it.

:func:`ecp5_pll` and :func:`ice40_pll` pick divider settings for a requested output frequency
with the same search (ranges, error criterion, tie-break) as Project Trellis's ``ecppll`` and
Project IceStorm's ``icepll``; the tests compare them with those tools. :class:`ClockReset`
instantiates the PLL (ECP5 ``EHXPLLL``, iCE40 ``SB_PLL40_PAD``) and drives the ``sync`` clock
domain from it, with a power-on delay and a reset synchroniser.
"""

import math
from dataclasses import dataclass

import numpy as np

from amaranth.hdl import ClockDomain, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import AsyncFFSynchronizer, FFSynchronizer
from amaranth.lib.wiring import Out

__all__ = ["Ecp5PllParams", "Ice40PllParams", "ecp5_pll", "ice40_pll", "ClockReset",
           "POWER_ON_DELAY"]

#: Time the ``sync`` domain stays in reset after the PLL locks, in seconds. (iCE40 block RAMs
#: read as zero for about 3 µs after configuration; the margin covers PVT variation.)
POWER_ON_DELAY = 20e-6


def _check_freq(value, what):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{what} must be a number, not {value!r}")
    if not value > 0:
        raise ValueError(f"{what} must be positive, not {value!r}")
    return float(value)


def _check_range(value, lo, hi, what):
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be between {lo:g} and {hi:g} MHz, not {value:g} MHz")


@dataclass(frozen=True)
class Ecp5PllParams:
    """Settings of an ECP5 ``EHXPLLL`` with ``CLKOP`` fed back: ``f_out = f_in·fb_div/in_div``.

    Frequencies are in Hz.
    """
    in_div: int      #: ``CLKI_DIV``
    fb_div: int      #: ``CLKFB_DIV``
    out_div: int     #: ``CLKOP_DIV``
    f_in: float
    f_pfd: float
    f_vco: float
    f_out: float     #: the achieved output frequency


@dataclass(frozen=True)
class Ice40PllParams:
    """Settings of an iCE40 PLL in ``SIMPLE`` feedback: ``f_out = f_in·(divf+1)/((divr+1)·2**divq)``.

    Frequencies are in Hz.
    """
    divr: int
    divf: int
    divq: int
    filter_range: int
    f_in: float
    f_pfd: float
    f_vco: float
    f_out: float     #: the achieved output frequency


def ecp5_pll(f_in, f_out):
    """Dividers of an ECP5 ``EHXPLLL`` for ``f_out`` Hz from ``f_in`` Hz (``ecppll``'s search).

    Input 8–400 MHz, output 10–400 MHz, phase detector 3.125–400 MHz, VCO 400–800 MHz; the
    closest output wins, then the VCO closest to 600 MHz, then the first in ``ecppll``'s loop
    order (``CLKI_DIV``, ``CLKFB_DIV`` ≤ 80, ``CLKOP_DIV``), all in single precision as ``ecppll``
    computes.

    Raises
    ------
    TypeError
        If a frequency is not a number.
    ValueError
        If a frequency is not positive or out of range.
    """
    fi = _check_freq(f_in, "PLL input frequency") / 1e6
    fo = _check_freq(f_out, "PLL output frequency") / 1e6
    _check_range(fi, 8, 400, "ECP5 PLL input frequency")
    _check_range(fo, 10, 400, "ECP5 PLL output frequency")
    # ecppll computes in single precision; its ties (equal output error) depend on that rounding.
    f32 = np.float32
    in_div, fb_div, out_div = np.meshgrid(np.arange(1, 129), np.arange(1, 81), np.arange(1, 129),
                                          indexing="ij")
    pfd = f32(fi) / in_div.astype(f32)
    vco = pfd * fb_div.astype(f32) * out_div.astype(f32)
    ok = (pfd >= f32(3.125)) & (pfd <= f32(400)) & (vco >= f32(400)) & (vco <= f32(800))
    err = np.where(ok, np.abs(vco / out_div.astype(f32) - f32(fo)), np.inf)
    dist = np.where(err == err.min(), np.abs(vco - f32(600)), np.inf)
    i = np.unravel_index(np.argmin(dist), dist.shape)      # the first of the best, in loop order
    a, b, c = int(in_div[i]), int(fb_div[i]), int(out_div[i])
    return Ecp5PllParams(a, b, c, fi * 1e6, fi / a * 1e6, fi / a * b * c * 1e6, fi / a * b * 1e6)


def ice40_pll(f_in, f_out):
    """Dividers of an iCE40 PLL for ``f_out`` Hz from ``f_in`` Hz (``icepll``'s search).

    Input 10–133 MHz, output 16–275 MHz, phase detector 10–133 MHz, VCO 533–1066 MHz; the first
    of the closest outputs wins (DIVR, then DIVF, then DIVQ ascending).

    Raises
    ------
    TypeError
        If a frequency is not a number.
    ValueError
        If a frequency is not positive or out of range.
    """
    fi = _check_freq(f_in, "PLL input frequency") / 1e6
    fo = _check_freq(f_out, "PLL output frequency") / 1e6
    _check_range(fi, 10, 133, "iCE40 PLL input frequency")
    _check_range(fo, 16, 275, "iCE40 PLL output frequency")
    best = None
    for divr in range(16):
        pfd = fi / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                if best is None or abs(out - fo) < best[0]:
                    best = abs(out - fo), (divr, divf, divq, pfd, vco, out)
    divr, divf, divq, pfd, vco, out = best[1]
    filter_range = 1 + sum(pfd >= edge for edge in (17, 26, 44, 66, 101))
    return Ice40PllParams(divr, divf, divq, filter_range, fi * 1e6, pfd * 1e6, vco * 1e6,
                          out * 1e6)


class ClockReset(wiring.Component):
    """The board's clock and reset: the ``sync`` domain at ``freq`` Hz from the board oscillator.

    If ``freq`` equals the oscillator's frequency the oscillator drives ``sync`` directly;
    otherwise a PLL does (ECP5 ``EHXPLLL`` with :func:`ecp5_pll`'s dividers, iCE40
    ``SB_PLL40_PAD`` with :func:`ice40_pll`'s); nextpnr derives the PLL output's clock constraint
    from the board clock's. ``sync`` is held in reset until the PLL has locked and then for
    :data:`POWER_ON_DELAY` more, and whenever ``rst`` is high or the PLL loses lock; the reset is
    asserted asynchronously and released synchronously
    (:class:`amaranth.lib.cdc.AsyncFFSynchronizer`) and, on the ECP5, distributed on a primary
    clock net through a ``DCCA``.
    The power-on counter runs in a reset-less local domain ``por`` on the same clock.

    The block drives the clock and reset of ``sync`` but does not define the domain: the design
    that instantiates it does (``m.domains.sync = ClockDomain("sync")``), as Amaranth 0.6 will
    require of a domain its parent uses.

    Parameters
    ----------
    family : ``"ecp5"`` or ``"ice40"``
        The FPGA family.
    clock : str
        Name of the board's clock resource (e.g. ``"clk25"``).
    f_in : float
        Its frequency in Hz.
    freq : float
        Requested ``sync`` frequency in Hz.

    Members
    -------
    rst : In(1)
        Reset request (e.g. a button), any clock domain.
    locked : Out(1)
        The PLL is locked (synchronised to ``sync``; 1 without a PLL).
    running : Out(1)
        ``sync`` is out of reset (a ``sync``-domain register: high from the first cycle after the
        reset is released).

    Attributes
    ----------
    pll : Ecp5PllParams or Ice40PllParams or None
        The PLL's settings (``None`` without a PLL).
    f_out : float
        The achieved ``sync`` frequency in Hz.

    Raises
    ------
    TypeError
        If a frequency is not a number.
    ValueError
        If ``family`` is unknown or a frequency is out of the PLL's range.
    """

    def __init__(self, family, *, clock, f_in, freq):
        if family not in ("ecp5", "ice40"):
            raise ValueError(f"FPGA family must be 'ecp5' or 'ice40', not {family!r}")
        if not isinstance(clock, str):
            raise TypeError(f"Clock resource name must be a string, not {clock!r}")
        self._family = family
        self._clock = clock
        f_in = _check_freq(f_in, "Board clock frequency")
        freq = _check_freq(freq, "Clock frequency")
        if math.isclose(f_in, freq, rel_tol=1e-9):
            self.pll = None
            self.f_out = f_in
        else:
            self.pll = (ecp5_pll if family == "ecp5" else ice40_pll)(f_in, freq)
            self.f_out = self.pll.f_out
        self.f_in = f_in
        super().__init__({"rst": wiring.In(1), "locked": Out(1), "running": Out(1)})

    def elaborate(self, platform):
        m = Module()
        p = self.pll
        clk = Signal(name="sync_clk")
        pll_locked = Signal(name="pll_locked")
        if p is None:
            clk_buf = m.submodules.clk_buf = io.Buffer("i", platform.request(self._clock, dir="-"))
            m.d.comb += [clk.eq(clk_buf.i), pll_locked.eq(1)]
        elif self._family == "ecp5":
            clk_buf = m.submodules.clk_buf = io.Buffer("i", platform.request(self._clock, dir="-"))
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{p.f_in / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{p.f_out / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
                a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED",
                p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p.in_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.out_div,
                p_CLKOP_CPHASE=p.out_div - 1, p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p.fb_div,
                i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, i_CLKFB=clk,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clk, o_LOCK=pll_locked,
            )
        else:
            clk_port = platform.request(self._clock, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=p.divr, p_DIVF=p.divf, p_DIVQ=p.divq, p_FILTER_RANGE=p.filter_range,
                i_PACKAGEPIN=clk_port.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk, o_LOCK=pll_locked,
            )

        # Power-on delay after lock, in a reset-less domain on the same clock.
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += ClockSignal("por").eq(clk)
        locked_por = Signal(name="pll_locked_por")
        m.submodules.locked_sync = FFSynchronizer(pll_locked, locked_por, o_domain="por")
        delay = max(1, math.ceil(POWER_ON_DELAY * self.f_out))
        timer = Signal(range(delay + 1), name="por_timer")
        with m.If(~locked_por):
            m.d.por += timer.eq(0)
        with m.Elif(timer != delay):
            m.d.por += timer.eq(timer + 1)

        # No constraint on the PLL's output: nextpnr derives it from the board clock's
        # constraint and the PLL's settings. (A constraint on an Amaranth signal names a net
        # that synthesis may rename when it merges the PLL output with the domain's clock.)
        m.d.comb += ClockSignal("sync").eq(clk)
        # The reset is asserted asynchronously and released synchronously to ``sync``. On the
        # ECP5 it then goes through a DCCA onto a primary clock net: it reaches the LSR of nearly
        # every flip-flop, which nextpnr-ecp5 does not promote by itself (it promotes clocks
        # only), and as a fabric net its tree of ~17 k sinks congested the whole SoC's routing
        # (docs/build.md).
        rst_sync = Signal(name="sync_rst")
        m.submodules.reset_sync = AsyncFFSynchronizer((timer != delay) | self.rst, rst_sync,
                                                      o_domain="sync")
        if self._family == "ecp5":
            m.submodules.reset_buf = Instance("DCCA", i_CLKI=rst_sync, i_CE=Const(1),
                                              o_CLKO=ResetSignal("sync"))
        else:
            m.d.comb += ResetSignal("sync").eq(rst_sync)
        m.d.comb += self.locked.eq(locked_por)
        m.d.sync += self.running.eq(1)
        return m
