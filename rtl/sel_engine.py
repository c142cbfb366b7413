"""The selection engine: runs SELCLR, SELFEED and SELOUT on a balanced top-K selector.

SELFEED walks probability rows of the operand scratchpad sample by sample (lane ``s``, rows
``prob_row .. prob_row + C - 1``) into a :class:`~rtl.topk.BalancedSelector` at one probability
per cycle, with sample id ``r[rid] + s``. SELOUT reads the selection out and writes it to main
memory through the engine's own bus master, in the layout of :func:`spec.isa.sel_out_pack`: for
each class its count word, then its records (id words, score word). SELCLR clears the selector.
The selector's state persists between instructions and programs until SELCLR.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec import isa
from spec.isa import Op
from spec.soc import check_soc
from .sequencer import field
from .spport import ReadPortSignature
from .bus import BusSignature
from .topk import BalancedSelector

__all__ = ["SelEngine"]


class SelEngine(wiring.Component):
    """Executes the selection instructions of ``docs/isa.md`` (unit ``SEL``).

    Timing (deterministic memory, :class:`golden.machine.Timing`): the engine takes the
    instruction in the cycle ``start`` is high (``t``) and is busy from ``t+1``. SELCLR strobes the
    selector's clear at ``t+1``: busy ``C + 1`` cycles. SELFEED reads one scratchpad row per cycle
    from ``t+1`` and offers each element to the selector the cycle after its read; it is busy until
    the last top-P entry of the last sample has left the selector's insertion chain:
    ``N·C + P + S + 1`` cycles, ``S`` the chain's stages (:func:`spec.selection.chain_stages`;
    so a read-out never waits for the chain). SELOUT strobes the
    read-out at ``t+1`` and from ``t+2`` writes one word per cycle while it has one: a class's
    count word and its records' words as they leave the selector's output FIFO, an empty class's
    count word once a later class's record (or the read-out's end) shows it empty. It is busy until
    the last write is acknowledged: :func:`golden.machine.selout_last_write` ``+ latency`` cycles
    (``words + 4 + latency`` with no empty class).

    Parameters
    ----------
    soc : SocConfig
        Its ``selector`` (not ``None``) sets the classes ``C``, ``K``, ``P`` and the id width.

    Members
    -------
    start : In(1)
        Take the instruction on ``ir`` (a SELCLR, SELFEED or SELOUT; only while not ``busy``).
    ir : In(128)
        The instruction.
    arg : In(32)
        With ``start``: SELFEED's base sample id ``r[rid]``, SELOUT's address ``r[rm] + mem_off``.
    busy : Out(1)
    sp_rd : Out(ReadPortSignature)
        Operand scratchpad read (SELFEED's probability rows).
    bus : Out(BusSignature)
        Main-memory bus master (SELOUT's writes; it never reads).
    total : Out(range(K·C + 1))
        Entries the selector holds.

    Raises
    ------
    TypeError
        If ``soc`` is not a :class:`~spec.soc.SocConfig`.
    ValueError
        If ``soc`` has no selector.
    """

    def __init__(self, soc=None):
        soc = check_soc(soc, "Selection engine")
        if soc.selector is None:
            raise ValueError("Selection engine needs a SoC configuration with a selector, "
                             "not selector=None")
        self._soc = soc
        sel = soc.selector
        a = soc.config.array
        super().__init__({
            "start": In(1),
            "ir": In(isa.INSN_BITS),
            "arg": In(32),
            "busy": Out(1),
            "sp_rd": Out(ReadPortSignature(soc.sp_rows, a.operand_width, soc.lanes)),
            "bus": Out(BusSignature(max(1, ceil_log2(soc.mem_words)), soc.word_width)),
            "total": Out(range(sel.k * sel.classes + 1)),
        })

    @property
    def soc(self):
        return self._soc

    def elaborate(self, platform):
        m = Module()
        soc = self._soc
        cfg = soc.selector
        C, L = cfg.classes, soc.lanes
        W = soc.word_width
        id_words = isa.sel_record_words(cfg, W) - 1
        last_part = id_words + 1              # parts of a record: 0 count, 1.. id, last score

        m.submodules.selector = sel = BalancedSelector(C, cfg.k, cfg.p,
                                                       score_width=cfg.score_width,
                                                       id_width=cfg.id_width)
        m.d.comb += self.total.eq(sel.total)

        ir, arg = Signal(isa.INSN_BITS), Signal(32)
        with m.If(self.start):
            m.d.sync += [ir.eq(self.ir), arg.eq(self.arg)]
        f = lambda op, name: field(ir, op, name)

        # ---------------- SELFEED: one probability per cycle, sample (lane) by sample ----------
        s_rd, j_rd = Signal(range(L + 1)), Signal(range(C))     # next element to read
        have = Signal()                                          # an element is on the port
        have_s, have_last = Signal(range(L)), Signal()
        feeding = Signal()
        samples = f(Op.SELFEED, "samples")
        more = Signal()
        m.d.comb += more.eq(feeding & (s_rd != samples))
        take = Signal()
        m.d.comb += take.eq(sel.i_prob.valid & sel.i_prob.ready)
        rd = Signal()
        m.d.comb += rd.eq(more & (~have | take))
        with m.If(self.start):
            m.d.sync += [s_rd.eq(0), j_rd.eq(0), have.eq(0)]
        with m.If(rd):
            m.d.sync += [have.eq(1), have_s.eq(s_rd), have_last.eq(j_rd == C - 1)]
            with m.If(j_rd == C - 1):
                m.d.sync += [j_rd.eq(0), s_rd.eq(s_rd + 1)]
            with m.Else():
                m.d.sync += j_rd.eq(j_rd + 1)
        with m.Elif(take):
            m.d.sync += have.eq(0)
        m.d.comb += [
            self.sp_rd.addr.eq(f(Op.SELFEED, "prob_row") + j_rd),
            self.sp_rd.en.eq(rd),
            sel.i_prob.valid.eq(have),
            sel.i_prob.payload.id.eq(arg + have_s),
            sel.i_prob.payload.score.eq(self.sp_rd.data.as_value().word_select(have_s,
                                                                               cfg.score_width)),
            sel.i_prob.payload.last.eq(have_last),
        ]

        # ---------------- SELOUT: the read-out as main-memory writes ---------------------------
        rec = sel.o_record
        req, rsp = self.bus.req, self.bus.rsp
        wcls = Signal(range(C + 1))          # the class whose count word is next
        part = Signal(range(last_part + 1))  # word of the current record
        widx = Signal(32)                    # words written
        inflight = Signal(8)                 # writes not yet acknowledged
        writing = Signal()
        zero_mid = Signal()                  # an empty class before the offered record's class
        tail = Signal()                      # empty classes after the read-out ended
        m.d.comb += [
            zero_mid.eq(rec.valid & (rec.payload.cls != wcls)),
            tail.eq(~sel.busy & (wcls != C)),
        ]
        word = Signal(W)
        with m.If(~zero_mid & ~tail):
            with m.Switch(part):
                with m.Case(0):
                    m.d.comb += word.eq(rec.payload.count)
                for i in range(id_words):
                    with m.Case(1 + i):
                        m.d.comb += word.eq(rec.payload.id[W * i:W * (i + 1)])
                with m.Case(last_part):
                    m.d.comb += word.eq(rec.payload.score)
        m.d.comb += [
            req.valid.eq(writing & (rec.valid | tail)),
            req.payload.addr.eq(arg + widx),
            req.payload.we.eq(1),
            req.payload.wdata.eq(word),
            rsp.ready.eq(1),
        ]
        accept = Signal()
        m.d.comb += accept.eq(req.valid & req.ready)
        with m.If(accept):
            m.d.sync += widx.eq(widx + 1)
            with m.If(zero_mid | tail):
                m.d.sync += wcls.eq(wcls + 1)
            with m.Elif(part == last_part):
                m.d.comb += rec.ready.eq(1)
                m.d.sync += part.eq(~rec.payload.last)
                with m.If(rec.payload.last):
                    m.d.sync += wcls.eq(wcls + 1)
            with m.Else():
                m.d.sync += part.eq(part + 1)
        m.d.sync += inflight.eq(inflight + accept - rsp.valid)

        # ---------------- control ----------------------------------------------------------------
        def next_or_idle():
            # the sequencer may start the next instruction in the cycle busy falls
            m.next = "IDLE"
            with m.If(self.start):
                with m.Switch(self.ir[:isa.OPCODE_BITS]):
                    with m.Case(Op.SELCLR):
                        m.next = "CLEAR"
                    with m.Case(Op.SELFEED):
                        m.next = "FEED"
                    with m.Case(Op.SELOUT):
                        m.next = "READOUT"

        with m.FSM():
            with m.State("IDLE"):
                next_or_idle()
            with m.State("CLEAR"):
                m.d.comb += [self.busy.eq(1), sel.clear_stb.eq(1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(sel.busy)
                with m.If(~sel.busy):
                    next_or_idle()
            with m.State("FEED"):
                m.d.comb += [feeding.eq(1), self.busy.eq(more | have | sel.pending)]
                with m.If(~self.busy):
                    next_or_idle()
            with m.State("READOUT"):
                m.d.comb += [self.busy.eq(1), sel.readout_stb.eq(1)]
                m.d.sync += [wcls.eq(0), part.eq(0), widx.eq(0)]
                m.next = "WRITE"
            with m.State("WRITE"):
                done = (wcls == C) & ~sel.busy & (inflight == 0)
                m.d.comb += [writing.eq(1), self.busy.eq(~done)]
                with m.If(done):
                    next_or_idle()
        return m
