"""The host link: a framed, CRC-checked bridge from a byte stream to main memory and the CSRs.

:class:`HostLinkBridge` speaks the protocol of :mod:`spec.hostlink` (``docs/hostlink.md``) on two
byte streams; :class:`HostLink` puts it behind an 8N1 UART (:mod:`rtl.uart`) for the SoC top.
Its golden model is :class:`golden.hostlink.BridgeModel`.
"""

from amaranth.hdl import Module, Signal, Cat, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.csr import CSR_COUNT, Csr
from spec.hostlink import (PROTOCOL_VERSION, SYNC_REQUEST, SYNC_RESPONSE, REQUEST_HEADER,
                           RESPONSE_HEADER, CRC_BYTES, CRC_POLY, CRC_INIT, WORD_BYTES, CSR_BYTES,
                           MAX_BURST, PING_WORDS, STATUS_WORDS, Cmd, Status, check_max_burst,
                           check_mem_words, check_csr_count)
from spec.params import OPERAND_WIDTH, check_positive_int
from .bus import BusSignature
from .uart import UartRx, UartTx, check_divisor

__all__ = ["crc16_next", "HostLinkBridge", "HostLink", "DEFAULT_TIMEOUT", "TIMEOUT_BYTE_TIMES"]

#: The bridge's default inter-byte timeout, in clock cycles.
DEFAULT_TIMEOUT = 1 << 20
#: :class:`HostLink`'s default inter-byte timeout, in byte times of its UART.
TIMEOUT_BYTE_TIMES = 1000

_REQ_HDR = sum(n for _, n in REQUEST_HEADER)
_RSP_HDR = sum(n for _, n in RESPONSE_HEADER)


def _header_bytes(fields, **signals):
    """``(signal, byte index)`` of each header byte in order, from ``(name, bytes)`` ``fields``."""
    return [(signals[name], i) for name, size in fields for i in range(size)]
_COUNTER_MAX = 0xFFFF


def _crc16_step(crc, byte):
    for i in reversed(range(8)):
        fb = (crc >> 15 ^ byte >> i) & 1
        crc = (crc << 1 & 0xFFFF) ^ (CRC_POLY if fb else 0)
    return crc


def crc16_next(crc, byte):
    """The CRC-16/CCITT-FALSE register after ``byte``: a table-free expression of ``crc``, ``byte``.

    One byte's eight shift-and-XOR steps (most significant bit first, as
    :func:`golden.hostlink.crc16` computes them) are linear over GF(2) in ``crc`` and ``byte``
    together, so each bit of the result is the XOR of a fixed set of their bits; the sets are
    found by running the steps on each input bit alone. (Unrolling the steps as nested
    expressions instead repeats subexpressions 2**8-fold, which the Python simulator evaluates
    literally.)
    """
    inputs = [(byte[i], _crc16_step(0, 1 << i)) for i in range(8)]
    inputs += [(crc[i], _crc16_step(1 << i, 0)) for i in range(16)]
    return Cat(*[Cat(*[bit for bit, image in inputs if image >> j & 1]).xor()
                 for j in range(16)])


class HostLinkBridge(wiring.Component):
    """The host-link protocol engine: requests from ``i_byte``, responses to ``o_byte``.

    Between frames the bridge discards every byte but the request sync byte. It then takes the
    header, ``length`` payload bytes (burst-write words go into a ``max_burst``-word buffer;
    bytes beyond it are counted and checked but dropped) and the CRC. If ``timeout`` cycles pass
    without a byte inside a frame, the frame is abandoned with a TIMEOUT response. A complete
    frame is checked — CRC, command, length, burst size, address, in that order — and only a
    frame that passes every check is executed: a burst write is written to memory from the buffer
    after its CRC was verified, so a rejected frame changes nothing. Every frame gets exactly one
    response; then the bridge hunts for the next sync byte. It does not accept bytes while it
    executes or responds.

    Main memory is reached through a bus master port (:class:`rtl.bus.BusSignature`): a burst
    write issues its requests back to back and waits for every acknowledgement before responding;
    reads are issued one at a time as the response is sent.

    CSR port: in a cycle with ``csr_we`` high, write ``csr_wdata`` to CSR ``csr_addr``; in a cycle
    with ``csr_re`` high, read CSR ``csr_addr``: ``csr_rdata`` must hold its value in the next
    cycle. Strobes last one cycle; ``csr_addr`` is always ``< csr_count``. START writes CSR ENTRY
    (the entry address) and, in the next cycle, CTRL (1); STATUS reads CSR STATUS.

    Parameters
    ----------
    mem_words : int
        Main memory size in words (``< 2**32``): word addresses ``[0, mem_words)``.
    max_burst : int
        Longest burst in words (the size of the write buffer); longer ones get TOO_LONG.
    timeout : int
        Inter-byte timeout in clock cycles (``≥ 1``).
    csr_count : int
        CSR indices ``[0, csr_count)``.

    Members
    -------
    i_byte : ``In(stream.Signature(8))``
        Request bytes (from a UART receiver).
    o_byte : ``Out(stream.Signature(8))``
        Response bytes (to a UART transmitter).
    bus : ``Out(BusSignature(max(1, ceil_log2(mem_words)), OPERAND_WIDTH))``
        Main-memory master port.
    csr_addr : ``Out(max(1, ceil_log2(csr_count)))``
    csr_re, csr_we : ``Out(1)``
        CSR read and write strobes.
    csr_wdata : ``Out(32)``
    csr_rdata : ``In(32)``
        The value of the CSR read in the previous cycle.
    rx_framing_errors, rx_overruns : ``In(16)``
        The UART receiver's counters, reported by STATUS.
    frame_errors : ``Out(16)``
        Rejected frames (saturating); reported by STATUS.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If a parameter is out of range.
    """

    def __init__(self, mem_words, *, max_burst=MAX_BURST, timeout=DEFAULT_TIMEOUT,
                 csr_count=CSR_COUNT):
        self._mem_words = check_mem_words(mem_words)
        self._max_burst = check_max_burst(max_burst)
        self._timeout = check_positive_int(timeout, "Timeout")
        self._csr_count = check_csr_count(csr_count)
        super().__init__({
            "i_byte": In(stream.Signature(8)),
            "o_byte": Out(stream.Signature(8)),
            "bus": Out(BusSignature(max(1, ceil_log2(mem_words)), OPERAND_WIDTH)),
            "csr_addr": Out(max(1, ceil_log2(csr_count))),
            "csr_re": Out(1),
            "csr_we": Out(1),
            "csr_wdata": Out(32),
            "csr_rdata": In(32),
            "rx_framing_errors": In(16),
            "rx_overruns": In(16),
            "frame_errors": Out(16),
        })

    @property
    def mem_words(self):
        return self._mem_words

    @property
    def max_burst(self):
        return self._max_burst

    @property
    def timeout(self):
        return self._timeout

    @property
    def csr_count(self):
        return self._csr_count

    def elaborate(self, platform):
        m = Module()
        i_byte, o_byte, req, rsp = self.i_byte, self.o_byte, self.bus.req, self.bus.rsp
        W = OPERAND_WIDTH

        # Frame registers.
        crc = Signal(16, init=CRC_INIT)
        cmd = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        addr = Signal(32)
        arg = Signal(32)                 # the first four payload bytes
        status = Signal(8)
        cnt = Signal(range(max(_REQ_HDR, _RSP_HDR + 1, CRC_BYTES)))  # byte within a header/CRC
        pcnt = Signal(16)                # byte index within the payload
        low = Signal(8)                  # the low byte of a payload word
        tmo = Signal(range(self._timeout))
        k = Signal(16)                   # words issued / sent
        k1 = Signal(16, init=1)          # k + 1, kept beside it
        pending = Signal()               # MEM_WRITE: words left to issue (k != n)
        acks = Signal(16)                # write acknowledgements received
        rsp_len = Signal(16)             # response payload bytes
        word = Signal(W)                 # the response word being sent
        csr_val = Signal(32)

        # `length - 1`, registered: the header ends with the address, so `length` holds still
        # from at least a cycle before PAY and `length_m1` is the frame's throughout PAY
        assert [name for name, _ in REQUEST_HEADER][-1] != "length"
        length_m1 = Signal(16)
        m.d.sync += length_m1.eq(length - 1)

        crc_in = Signal(8)
        crc_out = Signal(16)
        m.d.comb += crc_out.eq(crc16_next(crc, crc_in))

        def count_error():
            with m.If(self.frame_errors != _COUNTER_MAX):
                m.d.sync += self.frame_errors.eq(self.frame_errors + 1)

        # The burst-write buffer.
        m.submodules.buffer = buffer = Memory(shape=W, depth=self._max_burst, init=[])
        wr = buffer.write_port()
        rd = buffer.read_port()
        buf_index = pcnt[1:]
        m.d.comb += [
            wr.addr.eq(buf_index),
            wr.data.eq(Cat(low, i_byte.payload)),
        ]

        # Checks of a complete frame, precomputed while its CRC arrives. The header and payload
        # fields (cmd, length, addr, arg) hold still from the first cycle of CRC to CHECK, and CRC
        # takes at least two cycles (a byte per cycle at most): the decode stage registers the
        # command's length rule, word count and bounds in every cycle, the verdict stage
        # registers every check but the CRC's from them, so both hold the complete frame's
        # results when CHECK reads them. CHECK itself only tests the CRC register (the measured
        # critical path was the decode, the address adder and the verdict in one cycle into
        # `frame_errors`'s enable).
        known = Signal()
        len_ok = Signal()
        n_words = Signal(16)
        is_mem = Signal()
        is_csr = Signal()
        is_start = Signal()
        ok_len = Signal(16)              # response payload bytes if OK
        m.d.comb += known.eq(1)
        with m.Switch(cmd):
            with m.Case(Cmd.PING):
                m.d.comb += [len_ok.eq(length == 0), ok_len.eq(PING_WORDS * WORD_BYTES)]
            with m.Case(Cmd.STATUS):
                m.d.comb += [len_ok.eq(length == 0), ok_len.eq(STATUS_WORDS * WORD_BYTES)]
            with m.Case(Cmd.READ):
                m.d.comb += [len_ok.eq(length == 0), n_words.eq(1), is_mem.eq(1),
                             ok_len.eq(WORD_BYTES)]
            with m.Case(Cmd.WRITE):
                m.d.comb += [len_ok.eq(length == WORD_BYTES), n_words.eq(1), is_mem.eq(1)]
            with m.Case(Cmd.BURST_READ):
                m.d.comb += [len_ok.eq((length == WORD_BYTES) & (arg[:16] != 0)),
                             n_words.eq(arg[:16]), is_mem.eq(1),
                             ok_len.eq(arg[:16] * WORD_BYTES)]
            with m.Case(Cmd.BURST_WRITE):
                m.d.comb += [len_ok.eq((length != 0) & (length[:1] == 0)),
                             n_words.eq(length[1:]), is_mem.eq(1)]
            with m.Case(Cmd.CSR_READ):
                m.d.comb += [len_ok.eq(length == 0), is_csr.eq(1), ok_len.eq(CSR_BYTES)]
            with m.Case(Cmd.CSR_WRITE):
                m.d.comb += [len_ok.eq(length == CSR_BYTES), is_csr.eq(1)]
            with m.Case(Cmd.START):
                m.d.comb += [len_ok.eq(length == 0), is_start.eq(1)]
            with m.Default():
                m.d.comb += known.eq(0)

        # decode stage
        known_q, len_ok_q = Signal(), Signal()
        n_words_q = Signal(16)
        ok_len_q = Signal(16)
        is_mem_q, is_csr_q, is_start_q = Signal(), Signal(), Signal()
        room = Signal(33)                # mem_words - addr, if addr <= mem_words
        addr_in_mem, addr_le_mem, addr_in_csr = Signal(), Signal(), Signal()
        m.d.sync += [
            known_q.eq(known), len_ok_q.eq(len_ok), n_words_q.eq(n_words), ok_len_q.eq(ok_len),
            is_mem_q.eq(is_mem), is_csr_q.eq(is_csr), is_start_q.eq(is_start),
            room.eq(self._mem_words - addr),
            addr_in_mem.eq(addr < self._mem_words), addr_le_mem.eq(addr <= self._mem_words),
            addr_in_csr.eq(addr < self._csr_count),
        ]
        # verdict stage (all but the CRC)
        addr_ok = Signal()
        m.d.comb += addr_ok.eq(
            (~is_mem_q | (addr_le_mem & (n_words_q <= room[:32]))) &
            (~is_csr_q | addr_in_csr) &
            (~is_start_q | addr_in_mem))
        pre_verdict = Signal(8)
        n = Signal(16)                   # words a memory command moves
        rsp_ok_len = Signal(16)
        m.d.sync += [n.eq(n_words_q), rsp_ok_len.eq(ok_len_q)]
        with m.If(~known_q):
            m.d.sync += pre_verdict.eq(Status.BAD_CMD)
        with m.Elif(~len_ok_q):
            m.d.sync += pre_verdict.eq(Status.BAD_LENGTH)
        with m.Elif(n_words_q > self._max_burst):
            m.d.sync += pre_verdict.eq(Status.TOO_LONG)
        with m.Elif(~addr_ok):
            m.d.sync += pre_verdict.eq(Status.BAD_ADDR)
        with m.Else():
            m.d.sync += pre_verdict.eq(Status.OK)
        verdict = Signal(8)
        m.d.comb += verdict.eq(Mux(crc != 0, Status.BAD_CRC, pre_verdict))

        # Constant and CSR response words (PING, CSR_READ, STATUS), indexed by k.
        table = Signal(W)
        ping = [PROTOCOL_VERSION, self._max_burst, self._mem_words & ((1 << W) - 1),
                self._mem_words >> W, self._csr_count]
        status_words = [csr_val[:W], csr_val[W:], self.frame_errors, self.rx_framing_errors,
                        self.rx_overruns]
        # k < max(PING_WORDS, STATUS_WORDS) while a table word is sent: only its low bits select
        table_words = max(PING_WORDS, STATUS_WORDS)
        is_ping = Signal()               # cmd == PING, registered (cmd holds still until HUNT)
        m.d.sync += is_ping.eq(cmd == Cmd.PING)
        with m.Switch(k[:max(1, ceil_log2(table_words))]):
            for i in range(table_words):
                with m.Case(i):
                    m.d.comb += table.eq(Mux(is_ping, ping[i], status_words[i]))

        # The memory-write address follows `k` one cycle ahead, so that `rd.data` is word `k`.
        issue = Signal()
        m.d.comb += [
            req.payload.addr.eq(addr + k),
            req.payload.wdata.eq(rd.data),
        ]

        with m.FSM(name="bridge"):
            rx_states = ("HDR", "PAY", "CRC")

            with m.State("HUNT"):
                m.d.comb += i_byte.ready.eq(1)
                with m.If(i_byte.valid & (i_byte.payload == SYNC_REQUEST)):
                    m.d.sync += [crc.eq(CRC_INIT), cmd.eq(0), seq.eq(0), length.eq(0),
                                 addr.eq(0), arg.eq(0), cnt.eq(0), pcnt.eq(0), tmo.eq(0)]
                    m.next = "HDR"

            for state in rx_states:
                with m.State(state):
                    m.d.comb += [i_byte.ready.eq(1), crc_in.eq(i_byte.payload)]
                    with m.If(i_byte.valid):
                        m.d.sync += [crc.eq(crc_out), tmo.eq(0)]
                        if state == "PAY":
                            m.d.sync += pcnt.eq(pcnt + 1)
                        else:
                            m.d.sync += cnt.eq(cnt + 1)
                        if state == "HDR":
                            with m.Switch(cnt):
                                for pos, (sig, i) in enumerate(_header_bytes(
                                        REQUEST_HEADER, cmd=cmd, seq=seq, length=length,
                                        addr=addr)):
                                    with m.Case(pos):
                                        m.d.sync += sig[8 * i:8 * i + 8].eq(i_byte.payload)
                            with m.If(cnt == _REQ_HDR - 1):
                                m.d.sync += cnt.eq(0)
                                with m.If(length == 0):
                                    m.next = "CRC"
                                with m.Else():
                                    m.next = "PAY"
                        elif state == "PAY":
                            for i in range(4):
                                with m.If(pcnt == i):
                                    m.d.sync += arg[8 * i:8 * i + 8].eq(i_byte.payload)
                            with m.If(pcnt[0] == 0):
                                m.d.sync += low.eq(i_byte.payload)
                            with m.Elif(buf_index < self._max_burst):
                                m.d.comb += wr.en.eq(1)
                            with m.If(pcnt == length_m1):
                                m.next = "CRC"
                        else:
                            with m.If(cnt == CRC_BYTES - 1):
                                m.next = "CHECK"
                    with m.Elif(tmo == self._timeout - 1):
                        m.d.sync += [status.eq(Status.TIMEOUT), rsp_len.eq(0), cnt.eq(0)]
                        count_error()
                        m.next = "RSP_HDR"
                    with m.Else():
                        m.d.sync += tmo.eq(tmo + 1)

            with m.State("CHECK"):
                m.d.sync += [status.eq(verdict), k.eq(0), k1.eq(1), pending.eq(1), acks.eq(0),
                             cnt.eq(0),
                             rsp_len.eq(Mux(verdict == Status.OK, rsp_ok_len, 0))]
                with m.If(verdict != Status.OK):
                    count_error()
                    m.next = "RSP_HDR"
                with m.Elif((cmd == Cmd.WRITE) | (cmd == Cmd.BURST_WRITE)):
                    m.next = "MEM_WRITE"
                with m.Elif(cmd == Cmd.CSR_WRITE):
                    m.next = "CSR_WRITE"
                with m.Elif(cmd == Cmd.START):
                    m.next = "START_ENTRY"
                with m.Elif((cmd == Cmd.CSR_READ) | (cmd == Cmd.STATUS)):
                    m.next = "CSR_READ"
                with m.Else():
                    m.next = "RSP_HDR"

            with m.State("MEM_WRITE"):
                m.d.comb += [
                    req.valid.eq(pending),
                    req.payload.we.eq(1),
                    issue.eq(req.valid & req.ready),
                    rd.addr.eq(Mux(issue, k1, k)),
                    rsp.ready.eq(1),
                ]
                with m.If(issue):
                    m.d.sync += [k.eq(k1), k1.eq(k1 + 1), pending.eq(k1 != n)]
                with m.If(rsp.valid):
                    m.d.sync += acks.eq(acks + 1)
                with m.If(acks == n):
                    m.next = "RSP_HDR"

            with m.State("CSR_WRITE"):
                m.d.comb += [self.csr_we.eq(1), self.csr_addr.eq(addr), self.csr_wdata.eq(arg)]
                m.next = "RSP_HDR"

            with m.State("START_ENTRY"):
                m.d.comb += [self.csr_we.eq(1), self.csr_addr.eq(Csr.ENTRY),
                             self.csr_wdata.eq(addr)]
                m.next = "START_CTRL"

            with m.State("START_CTRL"):
                m.d.comb += [self.csr_we.eq(1), self.csr_addr.eq(Csr.CTRL), self.csr_wdata.eq(1)]
                m.next = "RSP_HDR"

            with m.State("CSR_READ"):
                m.d.comb += [self.csr_re.eq(1),
                             self.csr_addr.eq(Mux(cmd == Cmd.STATUS, Csr.STATUS, addr))]
                m.next = "CSR_LATCH"

            with m.State("CSR_LATCH"):
                m.d.sync += csr_val.eq(self.csr_rdata)
                m.next = "RSP_HDR"

            with m.State("RSP_HDR"):
                m.d.comb += o_byte.valid.eq(1)
                with m.Switch(cnt):
                    with m.Case(0):
                        m.d.comb += o_byte.payload.eq(SYNC_RESPONSE)
                    for pos, (sig, i) in enumerate(_header_bytes(
                            RESPONSE_HEADER, cmd=cmd, seq=seq, status=status, length=rsp_len)):
                        with m.Case(1 + pos):
                            m.d.comb += o_byte.payload.eq(sig[8 * i:8 * i + 8])
                m.d.comb += crc_in.eq(o_byte.payload)
                with m.If(o_byte.ready):
                    m.d.sync += [cnt.eq(cnt + 1), crc.eq(Mux(cnt == 0, CRC_INIT, crc_out))]
                    with m.If(cnt == _RSP_HDR):
                        m.d.sync += [cnt.eq(0), k.eq(0), k1.eq(1)]
                        with m.If(rsp_len == 0):
                            m.next = "RSP_CRC"
                        with m.Else():
                            m.next = "FETCH"

            with m.State("FETCH"):
                with m.If((cmd == Cmd.READ) | (cmd == Cmd.BURST_READ)):
                    m.d.comb += req.valid.eq(1)
                    with m.If(req.ready):
                        m.next = "READ_WAIT"
                with m.Else():
                    m.d.sync += word.eq(table)
                    m.next = "SEND_LO"

            with m.State("READ_WAIT"):
                m.d.comb += rsp.ready.eq(1)
                with m.If(rsp.valid):
                    m.d.sync += word.eq(rsp.payload)
                    m.next = "SEND_LO"

            with m.State("SEND_LO"):
                m.d.comb += [o_byte.valid.eq(1), o_byte.payload.eq(word[:8]),
                             crc_in.eq(o_byte.payload)]
                with m.If(o_byte.ready):
                    m.d.sync += crc.eq(crc_out)
                    m.next = "SEND_HI"

            with m.State("SEND_HI"):
                m.d.comb += [o_byte.valid.eq(1), o_byte.payload.eq(word[8:]),
                             crc_in.eq(o_byte.payload)]
                with m.If(o_byte.ready):
                    m.d.sync += [crc.eq(crc_out), k.eq(k1), k1.eq(k1 + 1)]
                    with m.If(k1 * WORD_BYTES == rsp_len):
                        m.next = "RSP_CRC"
                    with m.Else():
                        m.next = "FETCH"

            with m.State("RSP_CRC"):
                m.d.comb += [o_byte.valid.eq(1),
                             o_byte.payload.eq(Mux(cnt == 0, crc[8:], crc[:8]))]
                with m.If(o_byte.ready):
                    m.d.sync += cnt.eq(1)
                    with m.If(cnt == CRC_BYTES - 1):
                        m.next = "HUNT"
        return m


class HostLink(wiring.Component):
    """The SoC's host link: :class:`HostLinkBridge` behind an 8N1 UART.

    Parameters
    ----------
    mem_words : int
        Main memory size in words.
    divisor : int
        UART clock cycles per bit (:func:`rtl.uart.uart_divisor`).
    max_burst : int
        Longest burst in words.
    timeout : int, optional
        Inter-byte timeout in clock cycles; default :data:`TIMEOUT_BYTE_TIMES` byte times.
    csr_count : int
        CSR indices ``[0, csr_count)``.

    Members
    -------
    rx : ``In(1, init=1)``
        Serial input from the host (asynchronous).
    tx : ``Out(1, init=1)``
        Serial output to the host.
    bus, csr_addr, csr_re, csr_we, csr_wdata, csr_rdata, frame_errors
        As :class:`HostLinkBridge`'s.
    framing_errors, overruns : ``Out(16)``
        The UART receiver's counters.

    Raises
    ------
    TypeError, ValueError
        As :class:`HostLinkBridge` and :class:`rtl.uart.UartRx`.
    """

    def __init__(self, mem_words, *, divisor, max_burst=MAX_BURST, timeout=None,
                 csr_count=CSR_COUNT):
        self._divisor = check_divisor(divisor)
        if timeout is None:
            timeout = TIMEOUT_BYTE_TIMES * 10 * divisor
        self._bridge_params = dict(mem_words=check_mem_words(mem_words),
                                   max_burst=check_max_burst(max_burst),
                                   timeout=check_positive_int(timeout, "Timeout"),
                                   csr_count=check_csr_count(csr_count))
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "bus": Out(BusSignature(max(1, ceil_log2(mem_words)), OPERAND_WIDTH)),
            "csr_addr": Out(max(1, ceil_log2(csr_count))),
            "csr_re": Out(1),
            "csr_we": Out(1),
            "csr_wdata": Out(32),
            "csr_rdata": In(32),
            "frame_errors": Out(16),
            "framing_errors": Out(16),
            "overruns": Out(16),
        })

    @property
    def divisor(self):
        return self._divisor

    @property
    def timeout(self):
        """The bridge's inter-byte timeout in clock cycles."""
        return self._bridge_params["timeout"]

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UartRx(self._divisor)
        m.submodules.uart_tx = utx = UartTx(self._divisor)
        p = self._bridge_params
        m.submodules.bridge = br = HostLinkBridge(p["mem_words"], max_burst=p["max_burst"],
                                                  timeout=p["timeout"], csr_count=p["csr_count"])
        wiring.connect(m, urx.o_data, br.i_byte)
        wiring.connect(m, br.o_byte, utx.i_data)
        wiring.connect(m, wiring.flipped(self.bus), br.bus)
        m.d.comb += [
            urx.rx.eq(self.rx),
            self.tx.eq(utx.tx),
            br.rx_framing_errors.eq(urx.framing_errors),
            br.rx_overruns.eq(urx.overruns),
            self.framing_errors.eq(urx.framing_errors),
            self.overruns.eq(urx.overruns),
            self.frame_errors.eq(br.frame_errors),
            self.csr_addr.eq(br.csr_addr),
            self.csr_re.eq(br.csr_re),
            self.csr_we.eq(br.csr_we),
            self.csr_wdata.eq(br.csr_wdata),
            br.csr_rdata.eq(self.csr_rdata),
        ]
        return m
