"""Board plumbing shared by the board tops (:mod:`platforms.top_soc`, :mod:`platforms.top_array`): the reset
button, a heartbeat, and signals on the board's LEDs."""

from amaranth.hdl import Signal
from amaranth.lib import io

__all__ = ["connect_reset_button", "heartbeat", "drive_leds"]


def connect_reset_button(m, platform, button, clock_reset):
    """Hold ``clock_reset`` (a :class:`~platforms.pll.ClockReset`) in reset while the board's
    ``button`` (a ``(name, number)`` resource, or ``None`` for none) is pressed."""
    if button is None:
        return
    m.submodules.reset_button = buf = io.Buffer("i", platform.request(*button, dir="-"))
    m.d.comb += clock_reset.rst.eq(buf.i)


def heartbeat(m, f_clk):
    """A signal of ``m``'s ``sync`` domain that toggles every half second at ``f_clk`` Hz."""
    half_period = max(1, round(f_clk / 2))
    timer = Signal(range(half_period), name="heartbeat_timer")
    beat = Signal(name="heartbeat")
    with m.If(timer == half_period - 1):
        m.d.sync += [timer.eq(0), beat.eq(~beat)]
    with m.Else():
        m.d.sync += timer.eq(timer + 1)
    return beat


def drive_leds(m, platform, values):
    """Show ``values`` (1-bit values) on the board's LEDs in the order of their numbers; as many
    as the board has, the rest of ``values`` unshown."""
    leds = sorted(number for name, number in platform.resources if name == "led")
    for number, value in zip(leds, values):
        led = m.submodules[f"led_{number}"] = io.Buffer("o", platform.request("led", number,
                                                                              dir="-"))
        m.d.comb += led.o.eq(value)
