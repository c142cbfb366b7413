"""The board top of the whole SoC: clock and reset, the :class:`~rtl.soc.Soc` with its UART host
link on the board's UART pins, and status on the LEDs.

``python -m rtl.build --top soc`` builds it (``docs/build.md``). The SoC's sizes come from the
board's configuration (:class:`platforms.boards.BoardConfig`); the host link's UART divisor from
the achieved clock and the board's baud rate.
"""

from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io

from .board_io import connect_reset_button, drive_leds, heartbeat
from rtl.soc import Soc
from rtl.uart import uart_divisor

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
        from .boards import BoardConfig
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

        connect_reset_button(m, platform, self._board.reset_button, crg)

        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [soc.rx.eq(rx.i), tx.o.eq(soc.tx)]

        beat = heartbeat(m, crg.f_out)
        status = {"heartbeat": beat, "running": soc.running, "done": soc.done,
                  "error": soc.error.any(), "rx": ~rx.i, "tx": ~soc.tx,
                  "reset_done": crg.running, "pll_locked": crg.locked}
        drive_leds(m, platform, [status[what] for what in LED_STATUS])
        return m
