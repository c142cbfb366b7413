"""The board top of the whole SoC: clock and reset, the :class:`~rtl.soc.Soc` with its UART host
link on the board's UART pins, and status on the LEDs.

``python -m rtl.build --top soc`` builds it (``docs/build.md``). The SoC's sizes come from the
board's configuration (:class:`platforms.boards.BoardConfig`); the host link's UART divisor from
the achieved clock and the board's baud rate.
"""

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io

from .soc import Soc
from .uart import uart_divisor

__all__ = ["LED_STATUS", "SocBoardTop"]


#: What the LEDs show, in the order of the board's LED numbers (as many as it has).
LED_STATUS = ("heartbeat", "running", "done", "error", "rx", "tx", "reset_done", "pll_locked")


class SocBoardTop(Elaboratable):
    """The SoC on a board.

    The SoC runs in ``sync``, driven by the board's :class:`~platforms.pll.ClockReset` at the
    board's target clock; its host link (:class:`~rtl.hostlink.HostLink`) talks 8N1 on the
    board's ``uart`` resource at ``board.baud`` baud. The reset button, if the board names one,
    resets ``sync`` while pressed. LEDs, as many as the board has, show :data:`LED_STATUS`:
    a heartbeat (about 1 Hz), the sequencer running, done, a nonzero error code, the serial
    lines' activity (low while a byte is on the line), ``sync`` out of reset, PLL locked.

    Parameters
    ----------
    board : BoardConfig
        The board and its configuration (:func:`platforms.get_board`).

    Attributes
    ----------
    clock_reset : ClockReset
        The clock and reset block (its ``f_out`` and ``pll`` are reported by the build).
    soc : Soc
        The SoC.

    Raises
    ------
    TypeError
        If ``board`` is not a :class:`~platforms.boards.BoardConfig`.
    ValueError
        If the board's baud rate cannot be made from the achieved clock.
    """

    def __init__(self, board):
        from platforms.boards import BoardConfig
        if not isinstance(board, BoardConfig):
            raise TypeError(f"Board must be a BoardConfig, not {board!r}")
        self._board = board
        self.clock_reset = board.clock_reset()
        divisor = uart_divisor(self.clock_reset.f_out, board.baud)
        self.soc = Soc(board.soc, host_link={"divisor": divisor})

    @property
    def board(self):
        return self._board

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.crg = crg = self.clock_reset
        m.submodules.soc = soc = self.soc

        if self._board.reset_button is not None:
            button = io.Buffer("i", platform.request(*self._board.reset_button, dir="-"))
            m.submodules.reset_button = button
            m.d.comb += crg.rst.eq(button.i)

        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [soc.rx.eq(rx.i), tx.o.eq(soc.tx)]

        half_period = max(1, round(crg.f_out / 2))
        heartbeat_timer = Signal(range(half_period), name="heartbeat_timer")
        heartbeat = Signal(name="heartbeat")
        with m.If(heartbeat_timer == half_period - 1):
            m.d.sync += [heartbeat_timer.eq(0), heartbeat.eq(~heartbeat)]
        with m.Else():
            m.d.sync += heartbeat_timer.eq(heartbeat_timer + 1)

        status = {"heartbeat": heartbeat, "running": soc.running, "done": soc.done,
                  "error": soc.error.any(), "rx": ~rx.i, "tx": ~soc.tx,
                  "reset_done": crg.running, "pll_locked": crg.locked}
        leds = sorted(number for name, number in platform.resources if name == "led")
        for number, what in zip(leds, LED_STATUS):
            led = m.submodules[f"led_{number}"] = io.Buffer("o", platform.request("led", number,
                                                                                  dir="-"))
            m.d.comb += led.o.eq(status[what])
        return m
