"""The board backend and the host link through the compiled SoC's UART pins.

Everything here goes through :class:`sim.compiled.serial.SimSerial`: bytes → 8N1 waveform on the
SoC's ``rx`` pin (C++ bit-banger) → UART → bridge → main memory and CSRs → UART → ``tx`` pin →
bytes. The protocol's golden model (:class:`golden.hostlink.BridgeModel`, with the SoC's CSRs
modelled for a SoC that runs no program) is fed the same bytes; the RTL must answer it byte for
byte, and the full main-memory image (read through the backdoor) must equal what the valid
frames alone make of it. The slow suite sends 1000+ corrupted frames.
"""

import random

import numpy as np
import pytest

from spec.csr import Csr, CHIP_ID, CSR_COUNT, decode_status
from spec.hostlink import Cmd, Status, MAX_BURST
from spec.isa import Cond, Error
from firmware import Accelerator
from firmware.asm import Assembler
from firmware.board import BoardDevice, BoardMismatch, config_word, open_link
from firmware.bringup import SMALL_SOC, SIM_OPTIONS, SIM_DIVISOR
from firmware.device import DeviceError, DeviceTimeout
from golden.hostlink import BridgeModel
from firmware.protocol import encode_request, split_responses, words_to_bytes
from firmware.transport import HostLinkError, HostLinkStatusError, SerialPortError
from sim.compiled import CxxSimError
from sim.compiled.serial import SimSerial, SerialSocSim, SerialTimeout
from rtl.hostlink import TIMEOUT_BYTE_TIMES
from tests.simutil import corrupt_frame

pytestmark = pytest.mark.xdist_group("cxxsim")

SOC = SMALL_SOC
MEM = SOC.mem_words
#: The bridge's inter-byte timeout in the simulated SoC (the link's default), in cycles.
TIMEOUT = TIMEOUT_BYTE_TIMES * 10 * SIM_DIVISOR
BYTE = 10 * SIM_DIVISOR                   # cycles per byte on the line


@pytest.fixture(scope="module")
def dut():
    with SerialSocSim(SOC, divisor=SIM_DIVISOR, **SIM_OPTIONS) as d:
        yield d


class Link:
    """The simulated SoC and the protocol model, fed the same bytes."""

    def __init__(self, dut, seed):
        dut.power_on()
        self.dut, self.port, self.seed = dut, dut.port, seed
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 1 << 16, MEM)
        dut.write_memory(0, image)
        self.entry = 0
        self.model = BridgeModel(MEM, max_burst=MAX_BURST, csr_count=CSR_COUNT,
                                 memory=image.tolist(), csr_read=self._csr_read,
                                 csr_write=self._csr_write)

    def _csr_read(self, i):
        return {Csr.ID: CHIP_ID, Csr.CONFIG: config_word(SOC), Csr.MEM_WORDS: MEM,
                Csr.ENTRY: self.entry}.get(i, 0)

    def _csr_write(self, i, v):
        assert i not in (Csr.CTRL,), "the fuzz never starts a program"
        if i == Csr.ENTRY:
            self.entry = v

    def send(self, data, *, idle=False, bad_stop=False):
        """Send ``data`` (and, if the bridge is left inside a frame or ``idle``, a gap past its
        timeout); return the responses after checking the RTL's bytes equal the model's."""
        if bad_stop:                  # each byte with a low stop bit, then an idle line
            for byte in data:
                self.port.write_bad_stop([byte])
                self.port.gap(2 * BYTE)
            self.model.rx_framing_errors += len(data)
            expected = b""
        else:
            self.port.write(data)
            expected = self.model.feed(data)
        gap = 0
        if idle or self.model.in_frame:
            gap = TIMEOUT + 2 * BYTE
            self.port.gap(gap)
            expected += self.model.idle()
        cycles = (len(data) + len(expected) + 20) * BYTE + gap
        self.port.timeout = cycles / self.port.clk_freq
        got = self.port.read(len(expected))
        assert got == expected, f"seed {self.seed}: RTL {got.hex()} != model {expected.hex()}"
        return split_responses(got)

    def check_memory(self, what=""):
        assert np.array_equal(self.dut.read_memory(), np.asarray(self.model.memory)), \
            f"seed {self.seed} {what}: memory image"

    def check_quiet(self):
        self.port.flush()
        self.port.timeout = (TIMEOUT + 50 * BYTE) / self.port.clk_freq
        assert self.port.read(1) == b"", f"seed {self.seed}: unexpected bytes"


# -- the simulated serial port -----------------------------------------------------------------

def test_sim_serial_interface(dut):
    dut.power_on()
    port = dut.port
    assert port.is_open and port.port.startswith("sim://")
    assert port.baudrate == port.clk_freq / SIM_DIVISOR
    frame = encode_request(Cmd.PING, seq=9)
    assert port.write(frame) == len(frame)
    assert port.out_waiting == len(frame)
    port.timeout = 0
    assert port.read(18) == b""                        # timeout 0: nothing has arrived yet
    port.flush()
    assert port.out_waiting == 0
    while port.in_waiting < 18:                        # polling lets time pass
        pass
    t = port.now()
    port.timeout = 1e-3
    (rsp,) = split_responses(port.read(100))           # fewer bytes after the timeout
    assert rsp.status == Status.OK and rsp.seq == 9 and rsp.words[2] == MEM
    assert port.now() - t == pytest.approx(1e-3, abs=2 / port.clk_freq)
    port.write(frame)
    port.flush()
    port.run(25 * BYTE)
    assert port.in_waiting == 18
    port.reset_input_buffer()
    port.timeout = 0
    assert port.read(18) == b""
    small = SimSerial(dut.sim, divisor=SIM_DIVISOR, hang_cycles=1000)
    with pytest.raises(SerialTimeout, match=r"no byte for 1000 cycles \(0 of 1 bytes"):
        small.read(1)
    small.close()
    with pytest.raises(ValueError, match="not open"):
        small.write(b"x")
    with pytest.raises(TypeError, match=r"^Simulator must be a CxxSim, not 3$"):
        SimSerial(3, divisor=4)
    with pytest.raises(ValueError, match=r"^UART divisor must be at least 2, not 1$"):
        SimSerial(dut.sim, divisor=1)
    with pytest.raises(CxxSimError, match="Receive pin 'tx' must be a 1-bit top-level input"):
        SimSerial(dut.sim, divisor=4, rx="tx")
    with pytest.raises(ValueError, match=r"^Timeout must be non-negative, not -1$"):
        port.timeout = -1
    with pytest.raises(ValueError, match=r"^Read size must be a non-negative integer, not -2$"):
        port.read(-2)


def test_uart_framing_errors_counted(dut):
    """Bytes with a low stop bit are dropped by the device's UART and counted (STATUS); the
    frame they made is not executed, the next one is."""
    link = Link(dut, 3)
    frame = encode_request(Cmd.WRITE, addr=5, payload=b"\1\2")
    assert link.send(frame, bad_stop=True) == []
    (st,) = link.send(encode_request(Cmd.STATUS, seq=4))
    assert st.words[3] == len(frame)
    link.check_memory()
    (ok,) = link.send(frame)
    assert ok.status == Status.OK and link.dut.read_memory()[5] == 0x0201
    link.check_memory()


# -- the board backend --------------------------------------------------------------------------

def test_matmul_over_serial_port_equals_golden(dut):
    dut.power_on()
    dev = BoardDevice(dut.port, SOC, timeout=0.05)
    acc, gold = Accelerator(dev), Accelerator("golden", soc=SOC)
    rng = np.random.default_rng(7)
    for m, k, n, shift in [(3, 5, 2, 0), (5, 11, 7, 9)]:
        a = rng.integers(-(1 << 15), 1 << 15, (m, k))
        b = rng.integers(-(1 << 15), 1 << 15, (k, n))
        got, want = acc.matmul(a, b, shift=shift), gold.matmul(a, b, shift=shift)
        assert got.dtype == np.int16 and np.array_equal(got, want), (m, k, n)
        assert acc.last_cycles == gold.last_cycles
    assert dev.counters()["cycles"] == gold.device.counters()["cycles"]
    assert dev.counters()["busy_gemm"] == gold.device.counters()["busy_gemm"]
    by_name = Accelerator("board", soc=SOC, port=dut.port, timeout=0.05)   # the backend by name
    assert np.array_equal(by_name.matmul(a, b, shift=shift), want)


def test_board_device_errors(dut):
    dut.power_on()
    other = SMALL_SOC.__class__(config=SOC.config, mem_words=4096, sp_banks=SOC.sp_banks,
                                sp_depth=SOC.sp_depth, acc_banks=SOC.acc_banks,
                                acc_depth=SOC.acc_depth, selector=None)
    with pytest.raises(BoardMismatch, match=r"main memory words \(PING\) is 2048, expected 4096"):
        BoardDevice(dut.port, other, timeout=0.05)
    with pytest.raises(TypeError, match=r"^Board link must be a serial port name, a serial port"):
        BoardDevice(42, SOC)
    with pytest.raises(TypeError, match=r"^SoC configuration must be a SocConfig, not 'x'$"):
        BoardDevice(dut.port, "x")
    dev = BoardDevice(dut.port, SOC, timeout=0.05)
    prog = Assembler()
    prog.halt()
    words = prog.words()
    words[0] = 0xFFFF                                  # an illegal opcode
    dev.write_words(0, words)
    with pytest.raises(DeviceError, match=r"^Device halted with error ") as e:
        dev.run(0)
    assert e.value.result.error != Error.NONE and e.value.result.pc == 0
    with pytest.raises(ValueError, match="outside main memory"):
        dev.read_words(MEM - 1, 2)
    link = open_link(dut.port, timeout=0.05)
    with pytest.raises(HostLinkStatusError, match=r"BURST_READ at 0x7ff: BAD_ADDR"):
        link.request(Cmd.BURST_READ, MEM - 1, (2).to_bytes(2, "little"), expect=4)


def test_board_watchdog_stops_a_runaway_program(dut):
    # the SoC halts a loop at the run's budget by itself (Csr.BUDGET): the device is idle
    # afterwards, not left running, and takes the next program at once
    dut.power_on()
    dev = BoardDevice(dut.port, SOC, timeout=0.05)
    loop = Assembler(64)
    loop.label("top")
    loop.br(cond=Cond.EQ, rs1=0, rs2=0, target="top")
    dev.load_program(64, loop)
    with pytest.raises(DeviceTimeout, match=r"^Program at 0x40 did not halt within 700 cycles$"):
        dev.run(64, max_cycles=700)
    link = open_link(dut.port, timeout=0.05)
    status = link.status()
    assert not status.running and Error(decode_status(status.status).error) == Error.WATCHDOG
    assert link.csr_read(Csr.BUDGET) == 700
    halt = Assembler(64)
    halt.halt()
    dev.load_program(64, halt)
    assert dev.run(64).instructions == 1 and link.csr_read(Csr.BUDGET) == 0


@pytest.mark.parametrize("kind", ["missing", "directory", "file", "url"])
def test_port_that_cannot_be_opened(kind, tmp_path):
    """A port that cannot be opened is one clear error naming it (was: pyserial's
    ``SerialException`` traceback through ``python -m firmware ssl --backend board``)."""
    port, reason = {
        "missing": (tmp_path / "ttyUSB9", "No such file or directory"),
        "directory": (tmp_path, "Is a directory"),
        "file": (tmp_path / "not-a-tty", "Could not configure port"),
        "url": ("nosuch://port", "invalid URL, protocol 'nosuch' not known"),
    }[kind]
    if kind == "file":
        port.write_text("")
    with pytest.raises(SerialPortError) as e:
        BoardDevice(str(port), SOC)
    assert str(e.value).startswith(f"Cannot open serial port {str(port)!r}: {reason}")
    assert "\n" not in str(e.value)
    assert isinstance(e.value, OSError) and isinstance(e.value, HostLinkError)


# -- faults through the pins ---------------------------------------------------------------------

def _flip(frame, index, bit):
    frame = bytearray(frame)
    frame[index] ^= 1 << bit
    return bytes(frame)


_WRITE = encode_request(Cmd.BURST_WRITE, seq=1, addr=8, payload=words_to_bytes(range(1, 9)))

FAULTS = {
    # name: (bytes, expected statuses)
    "bad_crc_payload": (_flip(_WRITE, 12, 3), [Status.BAD_CRC]),
    "bad_crc_address": (_flip(_WRITE, 6, 0), [Status.BAD_CRC]),
    "bad_crc_field": (_flip(_WRITE, len(_WRITE) - 1, 7), [Status.BAD_CRC]),
    "truncated": (_WRITE[:-5], [Status.TIMEOUT]),
    "truncated_header": (_WRITE[:4], [Status.TIMEOUT]),
    "garbage": (bytes([0x00, 0xFF, 0x5A, 0x13, 0x37] * 5), []),
    "garbage_with_sync": (bytes([0x00, 0xA5, 0x05, 0x00, 0xFF, 0xFF]), [Status.TIMEOUT]),
    "unknown_command": (encode_request(0x7E, addr=3, payload=b"\0\0"), [Status.BAD_CMD]),
    "bad_length": (encode_request(Cmd.WRITE, addr=3, payload=b"\0" * 4), [Status.BAD_LENGTH]),
    "too_long": (encode_request(Cmd.BURST_WRITE, payload=words_to_bytes(range(MAX_BURST + 1))),
                 [Status.TOO_LONG]),
    "write_out_of_map": (encode_request(Cmd.WRITE, addr=MEM, payload=b"\1\0"),
                         [Status.BAD_ADDR]),
    "burst_past_end": (encode_request(Cmd.BURST_WRITE, addr=MEM - 2,
                                      payload=words_to_bytes([1, 2, 3])), [Status.BAD_ADDR]),
    "read_out_of_map": (encode_request(Cmd.READ, addr=1 << 31), [Status.BAD_ADDR]),
    "csr_out_of_map": (encode_request(Cmd.CSR_WRITE, addr=CSR_COUNT, payload=b"\1\0\0\0"),
                       [Status.BAD_ADDR]),
    "start_out_of_map": (encode_request(Cmd.START, addr=MEM), [Status.BAD_ADDR]),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault(dut, fault):
    """Each fault gets its error response (== the model's, byte for byte), the full memory image
    and the CSRs are unchanged, and the next valid frame succeeds."""
    data, statuses = FAULTS[fault]
    link = Link(dut, 30)
    link.send(encode_request(Cmd.CSR_WRITE, addr=Csr.ENTRY, payload=(0x1234).to_bytes(4, "little")))
    before = dut.read_memory()
    rsps = link.send(data)
    assert [r.status for r in rsps] == statuses, fault
    assert all(r.payload == b"" for r in rsps)
    assert np.array_equal(dut.read_memory(), before), fault
    assert not dut.running
    (entry,) = link.send(encode_request(Cmd.CSR_READ, seq=2, addr=Csr.ENTRY))
    assert entry.status == Status.OK and entry.words == [0x1234, 0]
    (ok,) = link.send(_WRITE)
    assert ok.status == Status.OK
    (rd,) = link.send(encode_request(Cmd.BURST_READ, addr=8, payload=b"\x08\0"))
    assert rd.words == list(range(1, 9))
    (st,) = link.send(encode_request(Cmd.STATUS))
    assert st.words[2] == len(statuses)               # rejected frames, as counted
    link.check_memory(fault)
    link.check_quiet()


# -- random corrupted traffic ----------------------------------------------------------------------

_BURST = 16          # longest burst the fuzz sends (keeps the frames short)


def _valid_request(rng, seq):
    """A random well-formed request the SoC executes without running a program."""
    cmd = rng.choice([Cmd.PING, Cmd.READ, Cmd.WRITE, Cmd.BURST_READ, Cmd.BURST_WRITE,
                      Cmd.CSR_READ, Cmd.CSR_WRITE, Cmd.STATUS])
    n = rng.randint(1, _BURST)
    addr, payload = 0, b""
    if cmd in (Cmd.READ, Cmd.WRITE):
        addr = rng.choice([0, MEM - 1, rng.randrange(MEM)])
    elif cmd in (Cmd.BURST_READ, Cmd.BURST_WRITE):
        addr = rng.choice([0, MEM - n, rng.randint(0, MEM - n)])
    elif cmd == Cmd.CSR_READ:
        addr = rng.choice([Csr.ID, Csr.CONFIG, Csr.MEM_WORDS, Csr.ENTRY, Csr.STATUS])
    elif cmd == Cmd.CSR_WRITE:
        addr = Csr.ENTRY
    if cmd == Cmd.WRITE:
        payload = words_to_bytes([rng.randrange(1 << 16)])
    elif cmd == Cmd.BURST_WRITE:
        payload = words_to_bytes([rng.randrange(1 << 16) for _ in range(n)])
    elif cmd == Cmd.BURST_READ:
        payload = n.to_bytes(2, "little")
    elif cmd == Cmd.CSR_WRITE:
        payload = rng.randrange(1 << 32).to_bytes(4, "little")
    return encode_request(cmd, seq=seq, addr=addr, payload=payload)


def _semantic_error(rng):
    """A frame with a good CRC that the bridge must reject (changing nothing)."""
    kind = rng.randrange(4)
    if kind == 0:
        return encode_request(rng.choice([0, 0x0A, 0x7F, 0xFF]), addr=rng.randrange(MEM))
    if kind == 1:
        return encode_request(Cmd.WRITE, addr=rng.randrange(MEM), payload=b"\0" * rng.randint(3, 6))
    if kind == 2:
        n = rng.randint(1, _BURST)
        return encode_request(Cmd.BURST_WRITE, addr=rng.randint(MEM - n + 1, MEM + 100),
                              payload=words_to_bytes([0x5555] * n))
    return encode_request(Cmd.CSR_WRITE, addr=rng.randint(CSR_COUNT, 255), payload=b"\xff" * 4)


def run_fuzz(dut, seed, events):
    """Random valid (50 %), corrupted (35 %) and rejected (15 %) frames through the pins. The RTL
    answers exactly as the model; every valid frame succeeds; no corrupted or rejected frame
    does; the memory image equals what the valid frames alone make of it (0 corruption); every
    exchange finishes within its deadline (0 hangs). Returns the number of bad frames."""
    rng = random.Random(seed)
    link = Link(dut, seed)
    expected = list(link.model.memory)
    bad = 0
    for i in range(events):
        r, seq = rng.random(), i & 0xFF
        if r < 0.5:
            frame = _valid_request(rng, seq)
            (rsp,) = link.send(frame)
            assert rsp.status == Status.OK and rsp.seq == seq, f"seed {seed}, event {i}"
            hdr = frame[1:9]
            if hdr[0] in (Cmd.WRITE, Cmd.BURST_WRITE):
                addr = int.from_bytes(hdr[4:8], "little")
                words = [int.from_bytes(frame[9 + 2 * j:11 + 2 * j], "little")
                         for j in range((len(frame) - 11) // 2)]
                expected[addr:addr + len(words)] = words
        else:
            bad += 1
            data = (corrupt_frame(rng, _valid_request(rng, seq)) if r < 0.85
                    else _semantic_error(rng))
            rsps = link.send(data)
            assert all(x.status != Status.OK for x in rsps), f"seed {seed}, event {i}"
    link.check_memory(f"after {events} events")
    assert link.model.memory == expected, f"seed {seed}: memory corrupted"
    assert not dut.running
    link.check_quiet()
    return bad


def test_fuzz(dut):
    assert run_fuzz(dut, 50, 40) >= 10


@pytest.mark.slow
def test_fuzz_long(dut):
    """2400 events: over 1000 corrupted or rejected frames."""
    assert run_fuzz(dut, 60, 2400) >= 1000


@pytest.mark.slow
@pytest.mark.parametrize("freq_mhz,want", [(None, 33), (30, 10)])
def test_real_board_divisor(freq_mhz, want):
    """The ULX3S's divisor at 3 Mbaud: its clock, 100 MHz (issue 27), 33 clock cycles per bit
    (1 % off); the 30 MHz it ran at before, 10 (exact)."""
    from platforms import get_board
    from rtl.uart import uart_divisor
    board = get_board("ulx3s-85f")
    if freq_mhz is not None:
        board = board.with_freq(freq_mhz)
    divisor = uart_divisor(board.freq_mhz * 1e6, board.baud)
    assert divisor == want
    with SerialSocSim(SOC, divisor=divisor, clk_freq=board.freq_mhz * 1e6,
                      **SIM_OPTIONS) as d:
        dev = BoardDevice(d.port, SOC, timeout=0.05)
        rng = np.random.default_rng(5)
        words = rng.integers(0, 1 << 16, 300)
        dev.write_words(100, words)
        assert np.array_equal(dev.read_words(100, 300), words)
        assert np.array_equal(d.read_memory()[100:400], words)
        a, b = rng.integers(-999, 999, (3, 4)), rng.integers(-999, 999, (4, 3))
        assert np.array_equal(Accelerator(dev).matmul(a, b),
                              Accelerator("golden", soc=SOC).matmul(a, b))
