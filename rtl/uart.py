"""An 8N1 UART: :class:`UartTx` and :class:`UartRx`, byte streams on the inside, pins outside.

A bit lasts ``divisor`` clock cycles (``divisor = clk_freq / baud``, see :func:`uart_divisor`).
Bytes go least significant bit first, framed by a start bit (0) and one stop bit (1); the line
idles at 1.
"""

from amaranth.hdl import Module, Signal, Cat, Const
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from spec.params import check_int

__all__ = ["MIN_DIVISOR", "check_divisor", "uart_divisor", "UartTx", "UartRx"]

#: The fewest clock cycles per bit the UART supports (the receiver samples mid-bit).
MIN_DIVISOR = 4

_COUNTER_MAX = 0xFFFF


def check_divisor(divisor):
    """Validate a UART divisor: an integer ≥ :data:`MIN_DIVISOR`."""
    check_int(divisor, "UART divisor")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be at least {MIN_DIVISOR}, not {divisor!r}")
    return divisor


def uart_divisor(clk_freq, baud, *, tolerance=0.02):
    """The divisor for ``baud`` at ``clk_freq`` Hz: ``round(clk_freq / baud)``.

    Raises
    ------
    TypeError
        If ``clk_freq`` or ``baud`` is not a number.
    ValueError
        If they are not positive, if the divisor is below :data:`MIN_DIVISOR`, or if the actual
        baud rate is off by more than ``tolerance`` (relative).
    """
    for what, v in (("Clock frequency", clk_freq), ("Baud rate", baud)):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise TypeError(f"{what} must be a number, not {v!r}")
        if not v > 0:
            raise ValueError(f"{what} must be positive, not {v!r}")
    divisor = round(clk_freq / baud)
    check_divisor(divisor)
    error = abs(clk_freq / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"Baud rate {baud} at {clk_freq} Hz is off by {error:.1%} "
                         f"(divisor {divisor}); more than {tolerance:.1%}")
    return divisor


class UartTx(wiring.Component):
    """UART transmitter, 8N1: sends each byte of ``i_data`` on ``tx``.

    A byte accepted in cycle ``a`` puts its start bit on ``tx`` from cycle ``a + 1``; each bit
    lasts ``divisor`` cycles. ``i_data.ready`` is high in the last cycle of a stop bit and while
    idle, so back-to-back bytes follow each other with no gap (one byte per ``10 * divisor``
    cycles). ``tx`` comes straight from a register.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`MIN_DIVISOR`.

    Members
    -------
    i_data : ``In(stream.Signature(8))``
        Bytes to send.
    tx : ``Out(1, init=1)``
        The serial line (idle high).

    Raises
    ------
    TypeError
        If ``divisor`` is not an integer.
    ValueError
        If ``divisor`` is below :data:`MIN_DIVISOR`.
    """

    def __init__(self, divisor):
        self._divisor = check_divisor(divisor)
        super().__init__({
            "i_data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        D = self._divisor
        shreg = Signal(10, init=0x3FF)          # stop, data[7:0], start; shifts out LSB first
        bits = Signal(range(11))                # bits left to send
        cnt = Signal(range(D))                  # cycles left in the current bit, minus one
        last_cycle = Signal()

        m.d.comb += [
            self.tx.eq(shreg[0]),
            last_cycle.eq((bits == 1) & (cnt == 0)),
            self.i_data.ready.eq((bits == 0) | last_cycle),
        ]
        with m.If(self.i_data.valid & self.i_data.ready):
            m.d.sync += [
                shreg.eq(Cat(Const(0, 1), self.i_data.payload, Const(1, 1))),
                bits.eq(10),
                cnt.eq(D - 1),
            ]
        with m.Elif(bits != 0):
            with m.If(cnt == 0):
                m.d.sync += [
                    shreg.eq(Cat(shreg[1:], Const(1, 1))),
                    bits.eq(bits - 1),
                    cnt.eq(D - 1),
                ]
            with m.Else():
                m.d.sync += cnt.eq(cnt - 1)
        return m


class UartRx(wiring.Component):
    """UART receiver, 8N1: presents each byte received on ``rx`` on ``o_data``.

    ``rx`` passes a 2-flip-flop synchroniser. A falling edge starts a byte; the start bit is
    checked ``divisor // 2`` cycles later (a glitch shorter than that is ignored) and every
    following bit is sampled ``divisor`` cycles after the previous sample, i.e. mid-bit. The
    receiver is ready for the next start bit right after sampling the stop bit, so a transmitter
    a few per cent fast or slow is received correctly (about ±4 % at large divisors).

    A byte whose stop bit is 0 is dropped and counted in ``framing_errors``; the receiver then
    waits for the line to be idle (1) before looking for the next start bit. A byte that arrives
    while the previous one is still waiting in ``o_data`` (``ready`` low) is dropped and counted
    in ``overruns``. Counters saturate at ``0xFFFF``.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`MIN_DIVISOR`.

    Members
    -------
    rx : ``In(1, init=1)``
        The serial line (asynchronous; idle high).
    o_data : ``Out(stream.Signature(8))``
        Received bytes; ``valid`` stays high until ``ready``.
    framing_errors : ``Out(16)``
        Bytes dropped for a bad stop bit.
    overruns : ``Out(16)``
        Bytes dropped because ``o_data`` was still full.

    Raises
    ------
    TypeError
        If ``divisor`` is not an integer.
    ValueError
        If ``divisor`` is below :data:`MIN_DIVISOR`.
    """

    def __init__(self, divisor):
        self._divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o_data": Out(stream.Signature(8)),
            "framing_errors": Out(16),
            "overruns": Out(16),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        D = self._divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        cnt = Signal(range(D))                 # cycles until the next sample, minus one
        bit = Signal(range(10))                # data bits sampled so far
        shreg = Signal(8)

        with m.If(self.o_data.ready):
            m.d.sync += self.o_data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += cnt.eq(D // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(cnt != 0):
                    m.d.sync += cnt.eq(cnt - 1)
                with m.Elif(rx):                # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [cnt.eq(D - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(cnt != 0):
                    m.d.sync += cnt.eq(cnt - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bit.eq(bit + 1), cnt.eq(D - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(cnt != 0):
                    m.d.sync += cnt.eq(cnt - 1)
                with m.Elif(rx):
                    with m.If(self.o_data.valid & ~self.o_data.ready):
                        with m.If(self.overruns != _COUNTER_MAX):
                            m.d.sync += self.overruns.eq(self.overruns + 1)
                    with m.Else():
                        m.d.sync += [self.o_data.payload.eq(shreg), self.o_data.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    with m.If(self.framing_errors != _COUNTER_MAX):
                        m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
                    m.next = "BREAK"
            with m.State("BREAK"):              # wait for the line to go idle
                with m.If(rx):
                    m.next = "IDLE"
        return m
