"""The sequencer: fetches 128-bit instructions, checks them, and issues them to the units.

Its timing is the golden model's (``golden.machine.Timing``, from ``spec.timing``): an
instruction's fetch starts in state FETCH (cycle ``t``), its line arrives in DECODE (``t+1``), READ
(``t+2``) reads its register operands, OPERANDS (``t+3``) computes its addresses, ranges (the sums
and products of its fields) and scalar result, COMPARE (``t+4``) compares them with the memories'
sizes and each bank's rows, CHECK (``t+5``) combines the results into the error code and the
scratchpad banks it uses, and ISSUE (from ``t + FETCH_CYCLES``) waits until its unit is idle and no
busy unit holds one of its banks, then issues (the unit's start strobe, a register, is high the
cycle after: ``spec.timing.ISSUE_LATENCY``); the next fetch starts the cycle after. A failing
check halts cleanly once the units already running are idle. An LDW/STW holds the sequencer in MEM
until its second word is acknowledged: ``spec.timing.memop_cycles(mem_latency)`` cycles after it
issues.

READ, OPERANDS, COMPARE and CHECK are four stages for the clock (``docs/build.md``): in one
cycle the path from ``ir`` through GEMM's range products, the bank comparisons and the error
priority took 23 ns on the ECP5 (``python -m benchmarks.unit_fmax --units seq``); in two (an
adder, then a comparison and the error priority) 11.1–12.0 ns; a register read and an adder in
one, 10.4 ns. Every value these stages register is a function of ``ir`` and the registers alone,
which hold still from DECODE to ISSUE, so the registered values are those of the instruction in
CHECK and ISSUE. The cycles cost little: an instruction that waits for a unit is fetched and
checked while the unit runs.
"""

from amaranth.hdl import Module, Signal, Const, Mux, Cat, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from spec import isa
from spec.isa import Op, Cond, Unit, Error
from spec.timing import FETCH_CYCLES, ISSUE_LATENCY
from spec.soc import check_soc

__all__ = ["Sequencer", "field"]


def field(ir, op, name):
    """The value of field ``name`` of opcode ``op`` in the instruction register ``ir``."""
    lsb, f = isa.field_slices(op)[name]
    v = ir[lsb:lsb + f.width]
    return v.as_signed() if f.signed else v


_SEL_OPS = (Op.SELCLR, Op.SELFEED, Op.SELOUT)

#: The register-operand fields the sequencer reads (in READ).
_READS = ((Op.ADDI, "rs"), (Op.ADD, "rs1"), (Op.ADD, "rs2"), (Op.SUB, "rs1"), (Op.SUB, "rs2"),
          (Op.LDW, "rs"), (Op.STW, "rs"), (Op.STW, "rt"), (Op.BR, "rs1"), (Op.BR, "rs2"),
          (Op.DMA, "rm"), (Op.SELFEED, "rid"), (Op.SELOUT, "rm"))


def _used_bits(op):
    return isa.OPCODE_BITS + sum(f.width for f in isa.LAYOUTS[op])


class Sequencer(wiring.Component):
    """Fetch, check and issue; scalar instructions, branches, counters and status.

    Parameters
    ----------
    soc : SocConfig

    Members
    -------
    start : In(1)
        Strobe: start the program at ``entry`` (ignored while running). Clears ``done``/``error``.
    entry : In(32)
        Word address of the first instruction.
    budget : In(32)
        The watchdog's cycle budget, sampled at ``start`` (0: no watchdog). An instruction that
        is still in ISSUE in a cycle ``≥ budget`` of its program is not issued: the program halts
        with ``Error.WATCHDOG`` once the units are idle (``golden.machine.Machine.run``).
    running, done : Out(1)
        ``done`` stays high from the end of a program until the next ``start``.
    error : Out(8)
        :class:`spec.isa.Error` of the last program (0 after HALT).
    pc : Out(32)
        Address of the instruction being executed (the faulting one after an error).
    cycles : Out(64)
        Cycles of the last/current program, as the golden model counts them.
    stall : Out(64)
        Cycles instructions waited in ISSUE for units or banks.
    insns : Out(32)
        Instructions issued.
    f_addr : Out(32)
        Fetch port: line address (``pc // INSN_WORDS``); ``f_data`` is the 128-bit line one
        cycle later.
    f_data : In(128)
    m_req, m_we : Out(1)
        LDW/STW port: ``m_req`` is held until ``m_ack``; 32-bit ``m_addr`` (word address),
        ``m_wdata``; ``m_rdata`` is valid with ``m_ack``.
    m_addr, m_wdata : Out(32)
    m_ack : In(1)
    m_rdata : In(32)
    ir : Out(128)
        The instruction being issued (units decode their own fields from it at ``*_start``).
    dma_addr : Out(32)
        ``r[rm] + mem_off`` of a DMA instruction, registered: valid from COMPARE on.
    dma_fault : In(8)
        The DMA's fault code for the descriptor in ``ir``/``dma_addr`` (0 = legal), registered at
        the end of COMPARE (a checker may register what it computes: ``ir`` is loaded two cycles
        before, ``dma_addr`` one).
    dma_start, gemm_start, vec_start, sel_start : Out(1)
        Registered strobes: high in the cycle after the instruction issues
        (:data:`spec.timing.ISSUE_LATENCY`), when ``ir``, ``dma_addr`` and ``sel_arg`` still hold
        it.
    dma_busy, gemm_busy, vec_busy, sel_busy : In(1)
    sel_arg : Out(32)
        SELFEED's ``r[rid]`` (base sample id), SELOUT's ``r[rm] + mem_off`` (address).
    seed_stb : Out(1)
        SEED: load ``seed`` into the stochastic-rounding generator.
    seed : Out(32)

    Not ports: internal signals that proofs name (``tests/test_formal_seq.py``). ``in_state``
    maps each name of :attr:`STATES` to a signal high while the sequencer is in that state;
    ``wd_on``, ``wd_left`` and ``wd_expired`` are the watchdog's registers (armed, cycles left,
    expired).
    """

    #: Cycles from the start of an instruction's fetch to the first cycle it may issue: the states
    #: FETCH, DECODE, READ, OPERANDS, COMPARE and CHECK (:data:`spec.timing.FETCH_CYCLES`).
    FETCH_CYCLES = FETCH_CYCLES

    #: The control states, in their encoding's order (IDLE is 0, the reset state).
    STATES = ("IDLE", "FETCH", "DECODE", "READ", "OPERANDS", "COMPARE", "CHECK", "ISSUE", "MEM")

    def __init__(self, soc=None):
        soc = check_soc(soc, "Sequencer")
        self._soc = soc
        super().__init__({
            "start": In(1), "entry": In(32), "budget": In(32),
            "running": Out(1), "done": Out(1), "error": Out(8), "pc": Out(32),
            "cycles": Out(64), "stall": Out(64), "insns": Out(32),
            "f_addr": Out(32), "f_data": In(isa.INSN_BITS),
            "m_req": Out(1), "m_we": Out(1), "m_addr": Out(32), "m_wdata": Out(32),
            "m_ack": In(1), "m_rdata": In(32),
            "ir": Out(isa.INSN_BITS), "dma_addr": Out(32), "dma_fault": In(8),
            "dma_start": Out(1), "gemm_start": Out(1), "vec_start": Out(1), "sel_start": Out(1),
            "dma_busy": In(1), "gemm_busy": In(1), "vec_busy": In(1), "sel_busy": In(1),
            "sel_arg": Out(32),
            "seed_stb": Out(1), "seed": Out(32),
        })
        self.in_state = {name: Signal(name=f"in_{name.lower()}") for name in self.STATES}
        self.wd_on, self.wd_left, self.wd_expired = Signal(), Signal(32), Signal()

    @property
    def soc(self):
        return self._soc

    def elaborate(self, platform):
        m = Module()
        soc = self._soc
        R = soc.config.array.rows
        L = soc.lanes
        W, AW = soc.config.array.operand_width, soc.config.array.acc_width
        nsp, nacc = soc.sp_banks, soc.acc_banks
        sp_shift, acc_shift = exact_log2(soc.sp_depth), exact_log2(soc.acc_depth)
        insn_shift = exact_log2(isa.INSN_WORDS)      # an instruction's word address: 8-aligned

        regs = [Signal(32, name=f"r{i}") for i in range(isa.NUM_REGS)]
        ir = Signal(isa.INSN_BITS)
        m.d.comb += self.ir.eq(ir)
        opcode = ir[:isa.OPCODE_BITS]

        # READ: a register per position of a register-operand field, loaded every cycle with
        # ``r[field]`` (so, like the staged values, a function of ``ir`` and the registers)
        ports = {}
        for op, name in _READS:
            lsb, fld = isa.field_slices(op)[name]
            if lsb not in ports:
                ports[lsb] = Signal(32, name=f"rd_{lsb}")
                m.d.sync += ports[lsb].eq(Cat(*regs).word_select(ir[lsb:lsb + fld.width], 32))

        def reg(op, name):
            """``r[...]`` of register-operand field ``name`` of ``op``, as READ registered it."""
            assert (op, name) in _READS
            return ports[isa.field_slices(op)[name][0]]

        def f(op, name):
            return field(ir, op, name)

        def staged(value, name):
            """``value`` (of ``ir`` and the registers) registered: computed in OPERANDS (in READ
            if it depends on ``ir`` alone), read in COMPARE, CHECK or ISSUE, where ``ir`` and the
            registers still hold the same values. Inside an opcode's ``Case`` the register loads
            while ``ir`` holds that opcode, which is when it is read."""
            value = Value.cast(value)
            reg_ = Signal(value.shape(), name=f"st_{name}")
            m.d.sync += reg_.eq(value)
            return reg_

        def compared(value, name):
            """``value`` (a comparison of staged values) registered: computed in COMPARE, read
            in CHECK."""
            value = Value.cast(value)
            reg_ = Signal(value.shape(), name=f"cmp_{name}")
            m.d.sync += reg_.eq(value)
            return reg_

        # ---------------- CHECK: legality, unit, banks ---------------------------------------
        err = Signal(8)
        unit_dma, unit_gemm, unit_vec, unit_sel = Signal(), Signal(), Signal(), Signal()
        # scratchpad banks, then one bit for main memory (used by DMA, LDW/STW and SELOUT)
        banks = Signal(nsp + nacc + 1)
        mem_bit = Const(1 << (nsp + nacc), nsp + nacc + 1)
        sel_cfg = soc.selector

        spans = []

        def span(start, n, banks, shift, rows):
            """``[start, start + n)`` within ``rows`` rows, and the banks of ``2**shift`` rows it
            touches (a bank bit for each of ``banks``). OPERANDS stages the one sum, ``end =
            start + n``, and the tests of ``start`` and ``n`` alone; COMPARE compares ``end``
            with constants: the range is good if ``n >= 1`` and ``end <= rows``, and bank ``b`` is
            touched if ``start >> shift <= b`` and ``end > b << shift`` (the bank bits matter
            only where the range is good)."""
            i = len(spans)
            spans.append(i)
            end = staged(start + n, f"end_{i}")
            n_ok = staged(n >= 1, f"n_ok_{i}")
            lo_b = start >> shift
            bits = Cat(*[staged(lo_b <= b, f"first_{i}_{b}") & (end > (b << shift))
                         for b in range(banks)])
            return compared(n_ok & (end <= rows), f"ok_{i}"), compared(bits, f"bits_{i}")

        def pitched_span(start, count, pitch, add, banks, shift, rows):
            """:func:`span` of ``n = (count - 1) * pitch + add``. The product (a multiplier) is
            staged, and so is everything it is compared with in COMPARE: ``start + n <= rows`` is
            ``prod <= rows - start - add``; bank ``b`` is touched if ``lo_b <= b`` and
            ``(b << shift) <= start + n - 1``, i.e. ``prod >= (b << shift) + 1 - start - add``
            (the bank bits matter only if the range is good, where ``start + n - 1`` is in
            ``[0, 2**24)`` and the two forms agree)."""
            i = len(spans)
            spans.append(i)
            # ``count - 1`` depends on ``ir`` alone: registered in READ, the product in OPERANDS
            prod = staged(staged(count - 1, f"count_m1_{i}") * pitch, f"prod_{i}")
            base = start + add
            room = staged(rows - base, f"room_{i}")
            # n >= 1 without the product: for count >= 1 it is >= 0, and >= 1 if count >= 2
            # and pitch >= 1; for count = 0, n = add - pitch
            n_ok = staged(Mux(count == 0, add > pitch, (add != 0) | ((count >= 2) & (pitch != 0))),
                          f"n_ok_{i}")
            lo_b = start >> shift
            bits = []
            for b in range(banks):
                first = staged(lo_b <= b, f"first_{i}_{b}")
                least = staged((b << shift) + 1 - base, f"least_{i}_{b}")
                bits.append(first & (prod >= least))
            return compared(n_ok & (prod <= room), f"ok_{i}"), compared(Cat(*bits), f"bits_{i}")

        def sp_range(start, n, into, pitched=None):
            """Range check [start, start+n) in the operand scratchpad; OR its banks into `into`.
            ``pitched``: ``(count, pitch, add)``, ``n = (count - 1) * pitch + add``."""
            geometry = (nsp, sp_shift, soc.sp_rows)
            ok, bits = (span(start, n, *geometry) if pitched is None
                        else pitched_span(start, *pitched, *geometry))
            into.append(Cat(bits, Const(0, nacc)))
            checks.append(ok)
            return bits

        def acc_range(start, n, into, pitched=None):
            geometry = (nacc, acc_shift, soc.acc_rows)
            ok, bits = (span(start, n, *geometry) if pitched is None
                        else pitched_span(start, *pitched, *geometry))
            into.append(Cat(Const(0, nsp), bits))
            checks.append(ok)

        def writes_ahead(src, dst, n, name):
            """:func:`spec.isa.writes_ahead`, ``src < dst < src + n`` (``Error.ROW_OVERLAP``):
            READ stages the difference ``k = dst − src`` with its borrow (``dst < src``),
            OPERANDS stages ``0 < k < n``; the flag is a register from COMPARE on."""
            k = staged((dst - src)[:isa.ROW_BITS + 1], f"ahead_k_{name}")
            borrow, k = k[isa.ROW_BITS], k[:isa.ROW_BITS]
            return staged(~borrow & (k != 0) & (k < n), f"ahead_{name}")

        # LDW/STW's word address (the two share the field layout), staged: the check compares
        # it and the MEM state sends it, so no adder lies between ``ir`` and main memory.
        mem_addr = staged((reg(Op.LDW, "rs") + f(Op.LDW, "imm"))[:32], "mem_addr")

        legal = Signal()
        bad_terms = {}              # opcode: its fields' tests failed
        checks_of, parts_of, conflict_of = {}, {}, {}   # opcode: its range checks, banks, conflict
        overlap_of = {}             # opcode: its destination is ahead inside a source
        m.d.comb += legal.eq(0)

        with m.Switch(opcode):
            for op in Op:
                if op is Op.ILLEGAL or (sel_cfg is None and op in _SEL_OPS):
                    continue
                with m.Case(int(op)):
                    m.d.comb += legal.eq(1)
                    used = _used_bits(op)
                    unused_nz = (ir[used:] != 0) if used < isa.INSN_BITS else Const(0)
                    checks, parts = [], []
                    bad = [unused_nz]
                    if op is Op.SEED:
                        bad.append(f(op, "seed") == 0)
                    elif op is Op.BR:
                        bad.append(f(op, "cond") > max(Cond))
                        bad.append(f(op, "target")[:insn_shift] != 0)
                    elif op in (Op.LDW, Op.STW):
                        # mem_addr + 1 < mem_words, against a constant
                        checks.append(compared(mem_addr <= soc.mem_words - 2, "mem_ok"))
                        parts.append(mem_bit)
                    elif op is Op.SELCLR:
                        m.d.comb += unit_sel.eq(1)
                    elif op is Op.SELFEED:
                        samples = f(op, "samples")
                        bad.append((samples == 0) | (samples > L))
                        sp_range(f(op, "prob_row"), sel_cfg.classes, parts)
                        m.d.comb += unit_sel.eq(1)
                    elif op is Op.SELOUT:
                        addr = staged((reg(op, "rm") + f(op, "mem_off"))[:32], "selout_addr")
                        out_words = isa.sel_out_max_words(sel_cfg, W)
                        # addr + out_words <= mem_words, against a constant
                        checks.append(compared(addr <= soc.mem_words - out_words, "selout_ok")
                                      if out_words <= soc.mem_words else Const(0))
                        parts.append(mem_bit)
                        m.d.comb += unit_sel.eq(1)
                    elif op is Op.DMA:
                        n = Mux(f(op, "transpose"), f(op, "cols"), f(op, "rows"))
                        with_space = f(op, "space")
                        sp_parts, acc_parts = [], []
                        sp_range(f(op, "sp_row"), n, sp_parts)
                        sp_ok = checks.pop()
                        acc_range(f(op, "sp_row"), n, acc_parts)
                        acc_ok = checks.pop()
                        checks.append(Mux(with_space, acc_ok, sp_ok))
                        parts.append(Mux(with_space, acc_parts[0], sp_parts[0]))
                        parts.append(mem_bit)
                        m.d.comb += unit_dma.eq(1)
                    elif op is Op.GEMM:
                        k, mt, nt = f(op, "k"), f(op, "mt"), f(op, "nt")
                        bad.append((k == 0) | (mt == 0) | (nt == 0))
                        a_parts, b_parts = [], []
                        sp_range(f(op, "a_row"), None, a_parts, (mt, f(op, "a_ps"), k))
                        sp_range(f(op, "b_row"), None, b_parts, (nt, f(op, "b_ps"), k))
                        acc_range(f(op, "c_row"), None, parts, (nt, f(op, "c_ps"), mt * R))
                        parts += a_parts + b_parts
                        conflict_of[op] = (a_parts[0] & b_parts[0]) != 0
                        m.d.comb += unit_gemm.eq(1)
                    elif op is Op.REQ:
                        rows = f(op, "rows")
                        bad.append((f(op, "lanes") == 0) | (f(op, "lanes") > L) |
                                   (f(op, "shift") > 32))
                        acc_range(f(op, "src"), rows, parts)
                        d_parts, k_parts = [], []
                        sp_range(f(op, "dst"), rows, d_parts)
                        sp_range(f(op, "mask_row"), rows, k_parts)
                        mask_ok = checks.pop()
                        checks.append(mask_ok | ~f(op, "mask_en"))
                        parts += d_parts
                        parts.append(Mux(f(op, "mask_en"), k_parts[0], 0))
                        conflict_of[op] = f(op, "mask_en") & ((d_parts[0] & k_parts[0]) != 0)
                        m.d.comb += unit_vec.eq(1)
                    elif op is Op.RELUB:
                        rows = f(op, "rows")
                        bad.append((f(op, "lanes") == 0) | (f(op, "lanes") > L))
                        g_parts, k_parts = [], []
                        sp_range(f(op, "g_row"), rows, g_parts)
                        sp_range(f(op, "mask_row"), rows, k_parts)
                        sp_range(f(op, "dst"), rows, parts)
                        parts += g_parts + k_parts
                        conflict_of[op] = (g_parts[0] & k_parts[0]) != 0
                        overlap_of[op] = Cat(*[writes_ahead(f(op, src), f(op, "dst"), rows, src)
                                               for src in ("g_row", "mask_row")]).any()
                        m.d.comb += unit_vec.eq(1)
                    elif op is Op.SMX:
                        cl = f(op, "classes")
                        bad.append((f(op, "samples") == 0) | (f(op, "samples") > L) |
                                   (cl == 0) | (f(op, "z_frac") >= W))
                        z_parts, t_parts = [], []
                        sp_range(f(op, "z_row"), cl, z_parts)
                        sp_range(f(op, "dst"), cl, parts)
                        sp_range(f(op, "t_row"), cl, t_parts)
                        t_ok = checks.pop()
                        grad = f(op, "mode")
                        checks.append(t_ok | ~grad)
                        parts += z_parts
                        parts.append(Mux(grad, t_parts[0], 0))
                        conflict_of[op] = grad & ((z_parts[0] & t_parts[0]) != 0)
                        m.d.comb += unit_vec.eq(1)
                    elif op is Op.SGD:
                        rows = f(op, "rows")
                        bad.append((f(op, "lanes") == 0) | (f(op, "lanes") > L) |
                                   (f(op, "lr_shift") > 32))
                        sp_range(f(op, "w_row"), rows, parts)
                        acc_range(f(op, "g_row"), rows, parts)
                        m.d.comb += unit_vec.eq(1)
                    elif op is Op.FILL:
                        v, rows = f(op, "value"), f(op, "rows")
                        sp_parts, acc_parts = [], []
                        sp_range(f(op, "dst"), rows, sp_parts)
                        sp_ok = checks.pop()
                        acc_range(f(op, "dst"), rows, acc_parts)
                        acc_ok = checks.pop()
                        fits16 = (v >= -(1 << (W - 1))) & (v < (1 << (W - 1)))
                        fits32 = (v >= -(1 << (AW - 1))) & (v < (1 << (AW - 1)))
                        bad.append(Mux(f(op, "space"), ~fits32, ~fits16))
                        checks.append(Mux(f(op, "space"), acc_ok, sp_ok))
                        parts.append(Mux(f(op, "space"), acc_parts[0], sp_parts[0]))
                        m.d.comb += unit_vec.eq(1)
                    bad_terms[op] = Cat(*bad).any()
                    if checks:
                        checks_of[op] = Cat(*checks).all()
                    if parts:
                        acc_bits = Const(0, nsp + nacc + 1)
                        for p in parts:
                            acc_bits = acc_bits | p
                        parts_of[op] = acc_bits

        # the opcode's legality and the fields' tests depend on ``ir`` alone: staged too
        # the fields' tests of each opcode, registered (in READ) with the opcode's match, then
        # their OR (in OPERANDS): no selection by the opcode after the tests
        bad_regs = [staged((opcode == op) & term, f"bad_{op.name.lower()}")
                    for op, term in bad_terms.items()]
        st_legal = staged(legal, "legal")
        st_bad_field = staged(Cat(*bad_regs).any(), "bad_field")
        # CHECK combines registers with an AND-OR over the opcode's one-hot match (registered in
        # READ), not a multiplexer selected by the opcode's bits: in a routed SoC the path from
        # `ir` through the opcode's decoding, the selection of its range checks and the error
        # priority to `x_fail` was the critical one (10 LUT levels, 13.8 ns on a 2x2 SoC).
        is_op = {op: staged(opcode == op, f"is_{op.name.lower()}")
                 for op in set(checks_of) | set(parts_of) | set(conflict_of) | set(overlap_of)}
        range_bad = Cat(*[is_op[op] & ~ok for op, ok in checks_of.items()]).any()
        conflict = Cat(*[is_op[op] & c for op, c in conflict_of.items()]).any()
        overlap = Cat(*[is_op[op] & c for op, c in overlap_of.items()]).any()
        m.d.comb += banks.eq(Cat(*[Cat(*[is_op[op] & p[b] for op, p in parts_of.items()]).any()
                                   for b in range(len(banks))]))
        is_mem = staged((opcode == Op.LDW) | (opcode == Op.STW) | (opcode == Op.SELOUT), "is_mem")
        # the DMA checker's fault is right in COMPARE (``dma_fault``'s timing): registered there
        dma_fault_seen = compared(self.dma_fault != 0, "dma_fault") & is_op[Op.DMA]
        with m.If(~st_legal):
            m.d.comb += err.eq(Error.ILLEGAL_OPCODE)
        with m.Elif(st_bad_field):
            m.d.comb += err.eq(Error.BAD_FIELD)
        with m.Elif(dma_fault_seen):
            m.d.comb += err.eq(Error.DMA_FAULT)
        with m.Elif(range_bad & is_mem):
            m.d.comb += err.eq(Error.MEM_RANGE)
        with m.Elif(range_bad):
            m.d.comb += err.eq(Error.SP_RANGE)
        with m.Elif(conflict):
            m.d.comb += err.eq(Error.BANK_CONFLICT)
        with m.Elif(overlap):
            m.d.comb += err.eq(Error.ROW_OVERLAP)
        any_err = ~st_legal | st_bad_field | dma_fault_seen | range_bad | conflict | overlap

        # ---------------- state ------------------------------------------------------------------
        pc = Signal(32)
        m.d.comb += self.pc.eq(pc)
        # registered: the DMA checker (outside) reads it in CHECK, the DMA at issue
        m.d.sync += self.dma_addr.eq(reg(Op.DMA, "rm") + f(Op.DMA, "mem_off"))
        m.d.comb += self.sel_arg.eq(staged(Mux(opcode == Op.SELFEED, reg(Op.SELFEED, "rid"),
                                               reg(Op.SELOUT, "rm") + f(Op.SELOUT, "mem_off")),
                                           "sel_arg"))
        # the scalar instructions' result, written at issue
        alu = Signal(32)
        with m.Switch(opcode):
            with m.Case(Op.SETI):
                m.d.comb += alu.eq(f(Op.SETI, "imm"))
            with m.Case(Op.ADDI):
                m.d.comb += alu.eq(reg(Op.ADDI, "rs") + f(Op.ADDI, "imm"))
            with m.Case(Op.ADD):
                m.d.comb += alu.eq(reg(Op.ADD, "rs1") + reg(Op.ADD, "rs2"))
            with m.Case(Op.SUB):
                m.d.comb += alu.eq(reg(Op.SUB, "rs1") - reg(Op.SUB, "rs2"))
        alu = staged(alu, "alu")

        # BR's condition: the difference of the operands in OPERANDS, the comparisons in
        # COMPARE (from its borrow, sign and zero test): one carry chain per stage
        a, b = reg(Op.BR, "rs1"), reg(Op.BR, "rs2")
        diff = staged((a - b)[:33], "br_diff")      # bit 32: the borrow, a < b unsigned
        a_neg, b_neg = staged(a[31], "br_a_neg"), staged(b[31], "br_b_neg")
        eq, ltu = diff[:32] == 0, diff[32]
        lt = Mux(a_neg != b_neg, a_neg, diff[31])   # same signs: no overflow
        take_now = Signal()
        with m.Switch(f(Op.BR, "cond")):
            with m.Case(Cond.ALWAYS):
                m.d.comb += take_now.eq(1)
            with m.Case(Cond.EQ):
                m.d.comb += take_now.eq(eq)
            with m.Case(Cond.NE):
                m.d.comb += take_now.eq(~eq)
            with m.Case(Cond.LT):
                m.d.comb += take_now.eq(lt)
            with m.Case(Cond.GE):
                m.d.comb += take_now.eq(~lt)
            with m.Case(Cond.LTU):
                m.d.comb += take_now.eq(ltu)
            with m.Case(Cond.GEU):
                m.d.comb += take_now.eq(~ltu)
        take = compared(take_now, "take")

        x_err = Signal(8)          # error of the instruction in ISSUE
        x_banks = Signal(nsp + nacc + 1)
        x_unit = Signal(len(Unit))  # one-hot DMA, GEMM, VEC, SEL
        x_need = Signal(len(Unit))  # the units that must be idle for it to issue
        x_halt, x_mem, x_seed, x_scalar = Signal(), Signal(), Signal(), Signal()
        x_fail = Signal()           # x_err != 0
        x_hold = Signal(len(Unit))  # the units whose last instruction holds one of its banks
        x_next = Signal(32)         # the pc after it (BR's target if taken)
        fetch_err = Signal()
        busy_masks = [Signal(nsp + nacc + 1, name=f"banks_{u.name.lower()}") for u in Unit]
        unit_busy = Cat(self.dma_busy, self.gemm_busy, self.vec_busy, self.sel_busy)
        all_idle = unit_busy == 0

        running = Signal()
        m.d.comb += self.running.eq(running)
        with m.If(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # The watchdog: ``left`` counts the budget down from ``start``; ``expired`` is registered,
        # high from the cycle ``cycles == budget`` on (a down-counter and a zero test of its
        # upper bits, no comparison with the 64-bit cycle counter).
        wd_on, left, expired = self.wd_on, self.wd_left, self.wd_expired
        with m.If(running):                 # wraps after 0: ``expired`` is already set then
            m.d.sync += left.eq(left - 1)
        with m.If(running & wd_on & self._expiring(left)):
            m.d.sync += expired.eq(1)

        # Register writes, a cycle after the instruction issues (SETI/ADDI/ADD/SUB, their result
        # staged in OPERANDS) or its load is acknowledged (LDW): the next instruction reads its
        # operands in READ, two cycles after FETCH. r0 stays 0.
        scalar = (Op.SETI, Op.ADDI, Op.ADD, Op.SUB, Op.LDW)
        assert len({isa.field_slices(op)["rd"] for op in scalar}) == 1    # one ``rd`` field
        is_scalar = Signal()
        with m.Switch(opcode):
            with m.Case(*scalar[:-1]):
                m.d.comb += is_scalar.eq(1)
        wb_en, wb_idx, wb_val = Signal(), Signal(3), Signal(32)
        # loaded every cycle (no enable): what ``wb_en`` writes is the value of the cycle it set
        m.d.sync += [wb_en.eq(0), wb_idx.eq(field(ir, Op.SETI, "rd")),
                     wb_val.eq(Mux(self.in_state["MEM"], self.m_rdata, alu))]
        with m.If(wb_en):
            with m.Switch(wb_idx):
                for i in range(1, isa.NUM_REGS):
                    with m.Case(i):
                        m.d.sync += regs[i].eq(wb_val)

        # The start strobes are registers, high the cycle after the issue (ISSUE_LATENCY): no
        # combinational path runs from a unit's busy through the scoreboard back into a unit.
        # `ir`, `dma_addr` and `sel_arg` still hold then (the next DECODE is a cycle later).
        assert ISSUE_LATENCY == 1, "the start strobes are one register after the issue"
        starts = (self.dma_start, self.gemm_start, self.vec_start, self.sel_start)
        m.d.sync += [s.eq(0) for s in starts]

        def finish(code):
            m.d.sync += [running.eq(0), self.done.eq(1), self.error.eq(code)]
            m.next = "IDLE"

        with m.FSM() as fsm:
            in_state = {name: fsm.ongoing(name) for name in self.STATES}   # fixes the encoding
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(self.entry), running.eq(1), self.done.eq(0),
                                 self.error.eq(0), self.cycles.eq(0), self.stall.eq(0),
                                 self.insns.eq(0),
                                 wd_on.eq(self.budget != 0), left.eq(self.budget),
                                 expired.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += self.f_addr.eq(pc >> insn_shift)
                m.d.sync += fetch_err.eq((pc[:insn_shift] != 0)
                                         | (pc >= soc.mem_words - (isa.INSN_WORDS - 1)))
                m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += ir.eq(self.f_data)
                m.next = "READ"
            with m.State("READ"):
                m.next = "OPERANDS"
            with m.State("OPERANDS"):
                m.next = "COMPARE"
            with m.State("COMPARE"):
                m.next = "CHECK"
            with m.State("CHECK"):
                # what ISSUE needs, decoded from the opcode here so that ISSUE only combines
                # registers with the units' busy signals
                need = Signal(len(Unit))    # units that must be idle before it issues
                with m.Switch(opcode):
                    with m.Case(Op.HALT):
                        m.d.comb += need.eq(-1)
                    with m.Case(Op.FENCE):
                        m.d.comb += need.eq(f(Op.FENCE, "mask"))
                    with m.Case(Op.LDW, Op.STW):
                        m.d.comb += need.eq(1 << Unit.DMA)
                    with m.Case(Op.SEED):
                        m.d.comb += need.eq(1 << Unit.VEC)
                    with m.Default():
                        m.d.comb += need.eq(Cat(unit_dma, unit_gemm, unit_vec, unit_sel))
                code = Mux(fetch_err, Error.FETCH_RANGE, err)
                m.d.sync += [
                    x_err.eq(code),
                    x_fail.eq(fetch_err | any_err),
                    x_banks.eq(banks),
                    x_hold.eq(self._holds(banks, busy_masks)),
                    x_unit.eq(Cat(unit_dma, unit_gemm, unit_vec, unit_sel)),
                    x_need.eq(need),
                    x_halt.eq(opcode == Op.HALT),
                    x_mem.eq((opcode == Op.LDW) | (opcode == Op.STW)),
                    x_seed.eq(opcode == Op.SEED),
                    x_scalar.eq(is_scalar),
                    x_next.eq(Mux((opcode == Op.BR) & take, f(Op.BR, "target"),
                                  pc + isa.INSN_WORDS)),
                ]
                m.next = "ISSUE"
            with m.State("ISSUE"):
                unit_wait, bank_wait = self._hazards(x_need, x_hold, unit_busy)
                with m.If(x_fail | expired):
                    with m.If(all_idle):
                        finish(Mux(x_fail, x_err, Error.WATCHDOG))
                    with m.Else():
                        m.d.sync += self.stall.eq(self.stall + 1)
                with m.Elif(unit_wait | bank_wait):
                    m.d.sync += self.stall.eq(self.stall + 1)
                with m.Elif(x_halt):
                    m.d.sync += self.insns.eq(self.insns + 1)
                    finish(Error.NONE)
                with m.Elif(x_mem):
                    m.d.sync += self.insns.eq(self.insns + 1)
                    m.next = "MEM"
                with m.Else():
                    m.d.sync += [pc.eq(x_next), self.insns.eq(self.insns + 1)]
                    m.next = "FETCH"
                    m.d.comb += [self.seed_stb.eq(x_seed), self.seed.eq(f(Op.SEED, "seed"))]
                    m.d.sync += wb_en.eq(x_scalar)
                    m.d.sync += [
                        self.dma_start.eq(x_unit[Unit.DMA]),
                        self.gemm_start.eq(x_unit[Unit.GEMM]),
                        self.vec_start.eq(x_unit[Unit.VEC]),
                        self.sel_start.eq(x_unit[Unit.SEL]),
                    ]
                    for u in Unit:
                        with m.If(x_unit[u]):
                            m.d.sync += busy_masks[u].eq(x_banks)
            with m.State("MEM"):
                is_st = opcode == Op.STW
                m.d.comb += [
                    self.m_req.eq(1), self.m_we.eq(is_st),
                    self.m_addr.eq(mem_addr),
                    self.m_wdata.eq(reg(Op.STW, "rt")),
                ]
                with m.If(self.m_ack):
                    with m.If(~is_st):
                        m.d.sync += wb_en.eq(1)
                    m.d.sync += pc.eq(x_next)
                    m.next = "FETCH"
        m.d.comb += [self.in_state[name].eq(v) for name, v in in_state.items()]
        return m

    @staticmethod
    def _holds(banks, busy_masks):
        """The scoreboard's bank sets, in CHECK: a bit per unit whose last instruction
        (``busy_masks[u]``, its banks) uses one of ``banks`` (no instruction issues between
        CHECK and ISSUE, so the sets hold still)."""
        return Cat(*[(banks & busy_masks[u]) != 0 for u in Unit])

    @staticmethod
    def _hazards(x_need, x_hold, unit_busy):
        """The scoreboard, in ISSUE: ``(unit_wait, bank_wait)``. ``unit_wait``: a unit the
        instruction needs idle (``x_need``: its own unit; FENCE's mask; every unit for HALT; the
        DMA for LDW/STW; the vector unit for SEED) is busy; ``bank_wait``: a busy unit holds one
        of its banks (``x_hold``, from :meth:`_holds`)."""
        return (x_need & unit_busy) != 0, (x_hold & unit_busy) != 0

    @staticmethod
    def _expiring(left):
        """The watchdog expires next cycle: ``left``, the budget less the cycles run, is 1 (or 0,
        the cycle after, when the flag is already set)."""
        return left[1:] == 0


