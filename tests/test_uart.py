# amaranth: UnusedElaboratable=no
"""The 8N1 UART: exact transmit waveforms, reception at several divisors with idle gaps and baud
mismatch, framing errors, glitches, overruns, and TX → RX loopback."""

import random

import pytest
from amaranth.hdl import Module

from rtl.uart import UartTx, UartRx, uart_divisor, MIN_DIVISOR
from sim.hostlink import uart_levels
from tests.simutil import run_sim


# -- parameters ------------------------------------------------------------------------------

def test_divisor_validation():
    for cls in (UartTx, UartRx):
        with pytest.raises(ValueError, match=r"^UART divisor must be at least 4, not 3$"):
            cls(3)
        with pytest.raises(TypeError, match=r"^UART divisor must be an integer, not 4\.0$"):
            cls(4.0)
        assert cls(MIN_DIVISOR).divisor == MIN_DIVISOR


def test_uart_divisor():
    assert uart_divisor(12_000_000, 115_200) == 104
    assert uart_divisor(25e6, 115200) == 217
    with pytest.raises(ValueError, match=r"^UART divisor must be at least 4, not 3$"):
        uart_divisor(1e6, 300_000)
    with pytest.raises(ValueError, match=r"off by 7\.4%"):
        uart_divisor(1e6, 180_000)                       # divisor 6: 166 667 baud
    with pytest.raises(ValueError, match=r"^Baud rate must be positive, not 0$"):
        uart_divisor(1e6, 0)
    with pytest.raises(TypeError, match=r"^Clock frequency must be a number, not '1'$"):
        uart_divisor("1", 9600)


# -- simulation helpers ----------------------------------------------------------------------

def line(data, bit_cycles, rng=None, max_idle=0):
    """The rx waveform of ``data`` with random idle gaps (0..max_idle cycles) before each byte."""
    levels = []
    for byte in data:
        if rng is not None and max_idle:
            levels += [1] * rng.randint(0, max_idle)
        levels += uart_levels(byte, bit_cycles)
    return levels


def receive(divisor, levels, *, p_ready=1.0, seed=0, ready_from=0):
    """Drive ``levels`` into a UartRx; return (bytes taken, framing errors, overruns)."""
    dut = UartRx(divisor)
    got, out = [], {}

    async def tb(ctx):
        rng = random.Random(seed)
        for cycle, level in enumerate(levels + [1] * (4 * divisor)):
            ctx.set(dut.rx, level)
            ready = cycle >= ready_from and rng.random() < p_ready
            ctx.set(dut.o_data.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o_data.valid, dut.o_data.payload)
            if valid and ready:
                got.append(payload)
        out["framing"] = ctx.get(dut.framing_errors)
        out["overruns"] = ctx.get(dut.overruns)

    run_sim(dut, tb)
    return got, out["framing"], out["overruns"]


# -- transmitter -----------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 5, 7, 16])
def test_tx_waveform(divisor):
    """The line is exactly each accepted byte's 8N1 frame from the cycle after its acceptance;
    bytes offered while one is being sent follow it with no idle time."""
    seed = divisor
    rng = random.Random(seed)
    data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(12)]
    dut = UartTx(divisor)
    trace, accepted = [], []

    async def tb(ctx):
        cycle = 0
        for i, byte in enumerate(data):
            idle = 0 if i % 3 else rng.randint(0, 3 * divisor)   # every third byte after a gap
            for _ in range(idle):
                _, _, tx = await ctx.tick().sample(dut.tx)
                trace.append(tx)
                cycle += 1
            ctx.set(dut.i_data.payload, byte)
            ctx.set(dut.i_data.valid, 1)
            while True:
                _, _, ready, tx = await ctx.tick().sample(dut.i_data.ready, dut.tx)
                trace.append(tx)
                cycle += 1
                if ready:
                    accepted.append(cycle - 1)
                    break
            ctx.set(dut.i_data.valid, 0)
        for _ in range(11 * divisor):
            _, _, tx = await ctx.tick().sample(dut.tx)
            trace.append(tx)

    run_sim(dut, tb)
    expected = [1] * len(trace)
    for a, byte in zip(accepted, data):
        frame = uart_levels(byte, divisor)
        expected[a + 1:a + 1 + len(frame)] = frame
    assert trace == expected, f"seed {seed}"
    for i in range(1, len(data)):
        if i % 3:                                    # offered at once: back to back
            assert accepted[i] - accepted[i - 1] == 10 * divisor, f"seed {seed}, byte {i}"


# -- receiver --------------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 5, 7, 16])
def test_rx_bytes(divisor):
    """Back-to-back bytes and random idle gaps, with random back-pressure (never long enough to
    overrun: a byte takes 10 bit times)."""
    seed = 100 + divisor
    rng = random.Random(seed)
    data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(16)]
    got, framing, overruns = receive(divisor, line(data, divisor, rng, 2 * divisor),
                                     p_ready=0.5, seed=seed)
    assert (got, framing, overruns) == (data, 0, 0), f"seed {seed}"


@pytest.mark.parametrize("divisor, error", [(16, -0.04), (16, -0.03), (16, 0.03), (16, 0.04),
                                            (5, -0.03), (5, 0.03)])
def test_rx_baud_mismatch(divisor, error):
    """A transmitter a few per cent fast or slow, bytes back to back (the hardest case: no idle
    time to realign)."""
    seed = 200 + divisor
    rng = random.Random(seed)
    data = [0xFF, 0x00, 0x55] + [rng.randrange(256) for _ in range(10)]
    got, framing, overruns = receive(divisor, line(data, divisor * (1 + error)))
    assert (got, framing, overruns) == (data, 0, 0), f"seed {seed}"


def test_rx_mismatch_beyond_tolerance_fails():
    """The mismatch test can fail: 8 % fast at divisor 16 loses bytes."""
    data = [0x00] * 8
    got, framing, _ = receive(16, line(data, 16 * 0.92))
    assert got != data and framing > 0


def test_rx_framing_error():
    """A byte whose stop bit is 0 is dropped and counted; a break (line held low) counts once;
    the next good byte is received."""
    d = 8
    levels = uart_levels(0x3C, d, stop=0) + [0] * (5 * d) + [1] * d + uart_levels(0xA7, d)
    levels += uart_levels(0x11, d, stop=0) + [1] * (2 * d) + uart_levels(0x5E, d)
    got, framing, overruns = receive(d, levels)
    assert (got, framing, overruns) == ([0xA7, 0x5E], 2, 0)


def test_rx_glitch_ignored():
    """A low pulse of ``divisor // 2`` cycles is not a start bit; one cycle longer is one."""
    d = 8
    levels = [1] * d + [0] * (d // 2) + [1] * (12 * d) + uart_levels(0x42, d)
    assert receive(d, levels) == ([0x42], 0, 0)
    levels = [1] * d + [0] * (d // 2 + 1) + [1] * (12 * d)
    got, framing, _ = receive(d, levels)
    assert got == [0xFF] and framing == 0                # read as a byte of ones


def test_rx_overrun():
    """Bytes arriving while the previous one waits are dropped and counted."""
    d = 4
    data = [0x12, 0x34, 0x56]
    got, framing, overruns = receive(d, line(data, d), ready_from=len(line(data, d)) + 2 * d)
    assert (got, framing, overruns) == ([0x12], 0, 2)


# -- loopback --------------------------------------------------------------------------------

@pytest.mark.parametrize("tx_div, rx_div", [(4, 4), (8, 8), (32, 33), (33, 32)])
def test_loopback(tx_div, rx_div):
    """UartTx → UartRx, the receiver's divisor equal or 3 % off; bytes back to back and with
    gaps, random back-pressure on both streams."""
    seed = tx_div * 100 + rx_div
    rng = random.Random(seed)
    data = [rng.randrange(256) for _ in range(8)]
    m = Module()
    m.submodules.tx = tx = UartTx(tx_div)
    m.submodules.rx = rx = UartRx(rx_div)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def send(ctx):
        for i, byte in enumerate(data):
            for _ in range(rng.randint(0, 2 * tx_div) if i % 2 else 0):
                await ctx.tick()
            ctx.set(tx.i_data.payload, byte)
            ctx.set(tx.i_data.valid, 1)
            await ctx.tick().until(tx.i_data.ready)
            ctx.set(tx.i_data.valid, 0)

    async def collect(ctx):
        ready_rng = random.Random(seed + 1)
        while len(got) < len(data):
            ready = ready_rng.random() < 0.5
            ctx.set(rx.o_data.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(rx.o_data.valid, rx.o_data.payload)
            if valid and ready:
                got.append(payload)
        assert ctx.get(rx.framing_errors) == 0 and ctx.get(rx.overruns) == 0

    run_sim(m, send, collect, deadline=1e-6 * 12 * max(tx_div, rx_div) * 3 * len(data))
    assert got == data, f"seed {seed}"
