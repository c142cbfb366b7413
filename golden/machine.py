"""The golden instruction-level model of the accelerator: the specification of the sequencer.

:class:`Machine` executes a program (``spec.isa`` encoding) on a memory image with exactly the
RTL's semantics and counts cycles with the RTL's timing rules under the deterministic memory model.
Instructions are executed in program order; because the hardware never lets two concurrently
running operations share a scratchpad bank (see ``docs/isa.md``), program order gives the same
final state as the concurrent hardware, while the timing model tracks the concurrency exactly.
"""

from dataclasses import dataclass, replace

import torch

from spec import isa
from spec.isa import Op, Unit, Error, Cond
from spec.params import check_int
from spec.soc import check_soc
from spec.timing import (DMA_OVERHEAD, FETCH_CYCLES, GEMM_OVERHEAD, ISSUE_LATENCY, REQ_LATENCY,
                         SEL_BUSY_LATENCY, SGD_LATENCY, VEC_READ_STAGES, bus_latency,
                         memop_cycles, word_bus_latency)
from . import fixedpoint as fx

__all__ = ["Machine", "Timing", "ExecResult", "selout_last_write"]


class Timing:
    """The sequencer's timing rules and each unit's operation duration (deterministic memory),
    from the constants of :mod:`spec.timing`.

    An instruction whose fetch starts in cycle ``t`` may issue from cycle ``t + FETCH_CYCLES``;
    an LDW/STW holds the sequencer :func:`~spec.timing.memop_cycles` more cycles after it issues
    (``2 + latency``, where ``latency`` is :func:`~spec.timing.word_bus_latency`: main memory's
    latency plus the bus arbiter's cycle, which every bus master's latency below includes too,
    plus the cycle of a word master's skid buffer, which SELOUT's includes too).
    An instruction issues on the first cycle ≥ that at which its unit is free and no busy unit
    uses one of its banks; the next fetch starts the cycle after issue. A unit takes an operation
    issued at cycle ``t`` at ``t + ISSUE_LATENCY`` (the sequencer's start strobes are registers),
    is busy for ``duration`` cycles and free again at ``t + ISSUE_LATENCY + 1 + duration``.

    Durations: DMA ``golden.dma.cycles + DMA_OVERHEAD`` (on ``Machine.bus_soc``: the SoC with
    the bus latency); GEMM the array schedule's total
    + ``GEMM_OVERHEAD`` (read stages before the array, write stages after); REQ/RELUB
    ``rows + VEC_READ_STAGES + REQ_LATENCY``, SGD ``rows + VEC_READ_STAGES + SGD_LATENCY`` (one
    row per cycle after the read stages: the scratchpads' late read ports), FILL ``rows + 1`` (it
    reads nothing); SMX ``softmax_cycles(classes, samples) + VEC_READ_STAGES`` (the softmax unit
    takes the group of samples with overlapping phases; the first row's read stages add their
    cycles).

    Selection (``SocConfig.selector``: ``C`` classes, ``P``): SELCLR ``C + 1`` (a strobe, then
    :func:`golden.selection.clear_cycles`); SELFEED :func:`golden.selection.selfeed_cycles`
    (data-dependent: one probability per cycle through the top-P lists, then each entry's
    inserter cycles, :meth:`golden.selection.StreamingSelector.entry_cycles`, from the selection
    as it stands; the run computes it when it executes the SELFEED: ``Machine.sel_feed_cycles``);
    SELOUT :func:`selout_last_write` ``+ latency`` (the read-out and the engine's writes modelled
    cycle by cycle, then the last write's acknowledgement: the bus latency). Each of the three
    lasts ``SEL_BUSY_LATENCY`` more: the engine's ``busy`` is a register.
    """

    def duration(self, m, op, f):
        """Cycles the unit of instruction ``op`` (fields ``f``) is busy on machine ``m``."""
        c = m.soc.config.array
        if op is Op.DMA:
            from . import dma as gdma
            return gdma.cycles(m.dma_descriptor(f), m.bus_soc) + DMA_OVERHEAD
        if op is Op.GEMM:
            from . import array as garr
            tiles = [f["k"]] * (f["mt"] * f["nt"])
            return garr.schedule(tiles, c.rows, c.cols).total_cycles + GEMM_OVERHEAD
        if op is Op.SMX:
            from . import softmax as gsm
            return gsm.softmax_cycles(f["classes"], f["samples"]) + VEC_READ_STAGES
        if op in (Op.REQ, Op.RELUB):
            return f["rows"] + VEC_READ_STAGES + REQ_LATENCY
        if op is Op.SGD:
            return f["rows"] + VEC_READ_STAGES + SGD_LATENCY
        if op is Op.FILL:
            return f["rows"] + 1
        if op in (Op.SELCLR, Op.SELFEED, Op.SELOUT):
            return self._selection_work(m, op) + SEL_BUSY_LATENCY
        raise AssertionError(op)

    @staticmethod
    def _selection_work(m, op):
        """Cycles of a selection instruction's work on machine ``m``, before the engine's
        ``busy`` register falls."""
        from . import selection as gsel
        sel = m.soc.selector
        if op is Op.SELCLR:
            return gsel.clear_cycles(sel.classes) + 1
        if op is Op.SELFEED:
            return m.sel_feed_cycles
        counts = m.selector.result().counts
        words = isa.sel_record_words(sel, m.soc.config.array.operand_width)
        return selout_last_write(counts, words) + word_bus_latency(m.soc.mem_latency)


def selout_last_write(counts, record_words):
    """The cycle, counted from SELOUT's issue, of its last main-memory write (deterministic
    memory: every write is taken at once), for per-class selection ``counts`` and
    ``record_words`` words per record.

    A cycle-level model of the two machines involved. The selector's read-out
    (:class:`rtl.topk.TopKSelector`, modelled by :class:`golden.selection.Readout`) is strobed
    at issue + 1 and reads from issue + 2. The selection engine's writer
    (:class:`rtl.sel_engine.SelEngine`), from issue + 2, writes one word per cycle while it has
    one: a class's count word, then each record's words (the record leaves the read-out's FIFO
    with its last); an empty class's count word when the FIFO's head is of a later class, or
    once the selector has finished.
    """
    from .selection import Readout
    classes = len(counts)
    ro = Readout(counts)
    wcls, part, t, last_write = 0, 0, 2, None
    while wcls != classes:
        record, pop = ro.head, False
        if record is not None or not ro.busy:
            last_write = t
            if record is None or record[0] != wcls:      # an empty class's count word
                wcls += 1
            elif part == record_words:                   # the record's last word: it leaves
                pop = True
                part = 0 if record[1] else 1
                wcls += record[1]
            else:
                part += 1
        ro.step(pop)
        t += 1
    return last_write


@dataclass
class ExecResult:
    """What a run ended with."""
    error: Error
    pc: int
    cycles: int
    instructions: int
    dma_fault: int = 0


_MASK32 = 0xFFFF_FFFF
#: Main memory as a resource in the hazard rule: DMA, LDW/STW and SELOUT use it, so each waits
#: for a running one of the others (program order of main-memory accesses is kept).
_MAIN_MEMORY = ("mem", 0)
_SEL_OPS = (Op.SELCLR, Op.SELFEED, Op.SELOUT)


def _s32(v):
    v &= _MASK32
    return v - (1 << 32) if v >> 31 else v


class Machine:
    """The golden accelerator: memories, registers, and a program executor with a cycle model.

    Parameters
    ----------
    soc : SocConfig
        Default :data:`spec.soc.DEFAULT_SOC`.

    Attributes
    ----------
    mem : torch.Tensor
        Main memory, ``int64`` values ``0 .. 2**word_width - 1`` (``SocConfig.word_width``:
        16-bit words).
    sp, acc : torch.Tensor
        Scratchpads, ``(rows, lanes)`` ``int64``, signed 16-bit and signed 32-bit values.
    regs : list of int
        ``r0..r7`` as unsigned 32-bit values.
    rng : golden.fixedpoint.LaneGenerators
        The stochastic-rounding generators of REQ and SGD, one per lane (after reset as after
        ``SEED 1``; ``SEED s`` reloads them from ``s``).
    counters : dict
        ``cycles``, ``busy_dma``, ``busy_gemm``, ``busy_vec``, ``busy_sel``, ``stall``,
        ``sat_req``, ``sat_sgd``.
    selector : golden.selection.StreamingSelector or None
        The selection unit's state (``SocConfig.selector``); it persists across programs, as
        the hardware's does, until SELCLR.
    sel_feed_cycles : int
        The duration of the last SELFEED executed (it depends on the selection it met).
    """

    def __init__(self, soc=None):
        self.soc = c = check_soc(soc, "Machine")
        # the DMA's cycle model on main memory as the DMA sees it: behind the bus arbiter
        self.bus_soc = replace(c, mem_latency=bus_latency(c.mem_latency))
        self._word_mask = (1 << c.word_width) - 1
        self.mem = torch.zeros(c.mem_words, dtype=torch.int64)
        self.sp = torch.zeros(c.sp_rows, c.lanes, dtype=torch.int64)
        self.acc = torch.zeros(c.acc_rows, c.lanes, dtype=torch.int64)
        self.regs = [0] * isa.NUM_REGS
        self.rng = fx.LaneGenerators(1, c.lanes)
        self.counters = dict(cycles=0, busy_dma=0, busy_gemm=0, busy_vec=0, busy_sel=0, stall=0,
                             sat_req=0, sat_sgd=0)
        self.pc = 0
        self.error = Error.NONE
        self.dma_fault = 0
        self.timing = Timing()
        self._busy = {u: 0 for u in Unit}
        self.selector = None
        self.sel_feed_cycles = 0
        if c.selector is not None:
            from .selection import StreamingSelector
            s = c.selector
            self.selector = StreamingSelector(s.classes, s.k, s.p)

    # --- host-side access ------------------------------------------------------------------
    def write_words(self, addr, words):
        words = torch.as_tensor(words, dtype=torch.int64).flatten() & self._word_mask
        if addr < 0 or addr + words.numel() > self.soc.mem_words:
            raise ValueError(f"Write of {words.numel()} words at {addr} is outside main memory")
        self.mem[addr:addr + words.numel()] = words

    def read_words(self, addr, n):
        if addr < 0 or addr + n > self.soc.mem_words:
            raise ValueError(f"Read of {n} words at {addr} is outside main memory")
        return self.mem[addr:addr + n].clone()

    def load_program(self, addr, program):
        """Store a list of 128-bit instructions at word address ``addr``."""
        words = [w for insn in program for w in isa.to_words(insn)]
        self.write_words(addr, words)

    # --- validation helpers ----------------------------------------------------------------
    def _rows_ok(self, space_rows, start, n):
        return n >= 1 and 0 <= start and start + n <= space_rows

    def _sp_banks(self, start, n):
        d = self.soc.sp_depth
        return {("sp", b) for b in range(start // d, (start + n - 1) // d + 1)}

    def _acc_banks(self, start, n):
        d = self.soc.acc_depth
        return {("acc", b) for b in range(start // d, (start + n - 1) // d + 1)}

    # --- decode-time checks: unit, banks used, or an Error ----------------------------------
    def _check(self, op, f):
        """Return ``(unit, banks)`` for a legal instruction, or raise ``_Fault(error)``."""
        c = self.soc
        R, C, L = c.config.array.rows, c.config.array.cols, c.lanes
        sp_rows, acc_rows = c.sp_rows, c.acc_rows

        def need(cond, err=Error.BAD_FIELD):
            if not cond:
                raise _Fault(err)

        def sp_range(start, n):
            need(self._rows_ok(sp_rows, start, n), Error.SP_RANGE)
            return self._sp_banks(start, n)

        def acc_range(start, n):
            need(self._rows_ok(acc_rows, start, n), Error.SP_RANGE)
            return self._acc_banks(start, n)

        if op in (Op.LDW, Op.STW):
            addr = (self._reg(f["rs"]) + f["imm"]) & _MASK32
            need(addr + 1 < c.mem_words, Error.MEM_RANGE)
            return None, {_MAIN_MEMORY}
        if op in (Op.SELCLR, Op.SELFEED, Op.SELOUT):
            sel = c.selector
            need(sel is not None, Error.ILLEGAL_OPCODE)
            if op is Op.SELCLR:
                return Unit.SEL, set()
            if op is Op.SELFEED:
                need(1 <= f["samples"] <= L)
                return Unit.SEL, sp_range(f["prob_row"], sel.classes)
            addr = (self._reg(f["rm"]) + f["mem_off"]) & _MASK32
            need(addr + isa.sel_out_max_words(sel, c.config.array.operand_width) <= c.mem_words,
                 Error.MEM_RANGE)
            return Unit.SEL, {_MAIN_MEMORY}
        if op in (Op.HALT, Op.SETI, Op.ADDI, Op.ADD, Op.SUB, Op.SEED):
            if op is Op.SEED:
                need(f["seed"] != 0)
            return None, set()
        if op is Op.FENCE:
            return None, set()
        if op is Op.BR:
            need(f["cond"] <= max(Cond))
            need(f["target"] % isa.INSN_WORDS == 0)
            return None, set()
        if op is Op.DMA:
            from . import dma as gdma
            desc = self.dma_descriptor(f)
            fault = gdma.check(desc, c)
            if fault:
                self.dma_fault = fault
                raise _Fault(Error.DMA_FAULT)
            n = desc.sp_rows
            banks = (sp_range if f["space"] == 0 else acc_range)(f["sp_row"], n)
            return Unit.DMA, banks | {_MAIN_MEMORY}
        if op is Op.GEMM:
            # Ranges are the bounding ranges of all panels (what the decoder checks).
            k, mt, nt = f["k"], f["mt"], f["nt"]
            need(k >= 1 and mt >= 1 and nt >= 1)
            a_banks = sp_range(f["a_row"], (mt - 1) * f["a_ps"] + k)
            b_banks = sp_range(f["b_row"], (nt - 1) * f["b_ps"] + k)
            c_banks = acc_range(f["c_row"], (nt - 1) * f["c_ps"] + mt * R)
            need(not (a_banks & b_banks), Error.BANK_CONFLICT)
            return Unit.GEMM, a_banks | b_banks | c_banks
        if op is Op.REQ:
            need(1 <= f["lanes"] <= L and f["shift"] <= 32)
            banks = acc_range(f["src"], f["rows"]) | sp_range(f["dst"], f["rows"])
            if f["mask_en"]:
                mb = sp_range(f["mask_row"], f["rows"])
                need(not (mb & sp_range(f["dst"], f["rows"])), Error.BANK_CONFLICT)
                banks |= mb
            return Unit.VEC, banks
        if op is Op.RELUB:
            need(1 <= f["lanes"] <= L)
            gb, mb = sp_range(f["g_row"], f["rows"]), sp_range(f["mask_row"], f["rows"])
            db = sp_range(f["dst"], f["rows"])
            need(not (gb & mb), Error.BANK_CONFLICT)
            # the engine reads row t of both sources a fixed number of cycles before it writes
            # row t: a destination starting inside a source after its first row would be read
            # back after it is written (docs/vector_units.md)
            for src in ("g_row", "mask_row"):
                need(not isa.writes_ahead(f[src], f["dst"], f["rows"]), Error.ROW_OVERLAP)
            return Unit.VEC, gb | mb | db
        if op is Op.SMX:
            need(1 <= f["samples"] <= L and f["classes"] >= 1)
            need(f["z_frac"] < c.config.array.operand_width)
            zb = sp_range(f["z_row"], f["classes"])
            banks = zb | sp_range(f["dst"], f["classes"])
            if f["mode"] == 1:
                tb = sp_range(f["t_row"], f["classes"])
                need(not (zb & tb), Error.BANK_CONFLICT)
                banks |= tb
            return Unit.VEC, banks
        if op is Op.SGD:
            need(1 <= f["lanes"] <= L and f["lr_shift"] <= 32)
            return Unit.VEC, sp_range(f["w_row"], f["rows"]) | acc_range(f["g_row"], f["rows"])
        if op is Op.FILL:
            w = c.config.array.operand_width if f["space"] == 0 else c.config.array.acc_width
            need(-(1 << (w - 1)) <= f["value"] < (1 << (w - 1)))
            rng = sp_range if f["space"] == 0 else acc_range
            return Unit.VEC, rng(f["dst"], f["rows"])
        raise _Fault(Error.ILLEGAL_OPCODE)     # pragma: no cover — every Op is handled above

    # --- effects, in program order -----------------------------------------------------------
    def _reg(self, i):
        return 0 if i == 0 else self.regs[i]

    def _set_reg(self, i, v):
        if i != 0:
            self.regs[i] = v & _MASK32

    def _mem32_addr(self, f):
        return (self._reg(f["rs"]) + f["imm"]) & _MASK32

    def dma_descriptor(self, f):
        """The :class:`golden.dma.Descriptor` of a DMA instruction's fields ``f`` (its address
        from the registers as they are now)."""
        from . import dma as gdma
        return gdma.Descriptor(
            direction=f["direction"], space=f["space"], transpose=f["transpose"],
            elem_words=f["elem_words"],
            mem_addr=(self._reg(f["rm"]) + f["mem_off"]) & _MASK32,
            sp_row=f["sp_row"], rows=f["rows"], cols=f["cols"], stride=f["stride"])

    def _execute(self, op, f):
        """Apply one legal instruction's effect; return the new pc or None (next)."""
        c = self.soc
        R, C, L = c.config.array.rows, c.config.array.cols, c.lanes
        W, AW = c.config.array.operand_width, c.config.array.acc_width
        rounding = lambda bit: "stochastic" if bit else "nearest-even"
        if op is Op.SETI:
            self._set_reg(f["rd"], f["imm"])
        elif op is Op.ADDI:
            self._set_reg(f["rd"], self._reg(f["rs"]) + f["imm"])
        elif op is Op.ADD:
            self._set_reg(f["rd"], self._reg(f["rs1"]) + self._reg(f["rs2"]))
        elif op is Op.SUB:
            self._set_reg(f["rd"], self._reg(f["rs1"]) - self._reg(f["rs2"]))
        elif op is Op.LDW:
            a = self._mem32_addr(f)
            self._set_reg(f["rd"], int(self.mem[a]) | (int(self.mem[a + 1]) << c.word_width))
        elif op is Op.STW:
            a = self._mem32_addr(f)
            v = self._reg(f["rt"])
            self.mem[a] = v & self._word_mask
            self.mem[a + 1] = v >> c.word_width
        elif op is Op.SEED:
            self.rng = fx.LaneGenerators(f["seed"], c.lanes)
        elif op is Op.BR:
            a, b = self._reg(f["rs1"]), self._reg(f["rs2"])
            sa, sb = _s32(a), _s32(b)
            take = {Cond.ALWAYS: True, Cond.EQ: a == b, Cond.NE: a != b, Cond.LT: sa < sb,
                    Cond.GE: sa >= sb, Cond.LTU: a < b, Cond.GEU: a >= b}[Cond(f["cond"])]
            if take:
                return f["target"]
        elif op is Op.DMA:
            from . import dma as gdma
            gdma.execute(self.dma_descriptor(f), self.mem, self.acc if f["space"] else self.sp, c)
        elif op is Op.GEMM:
            k = f["k"]
            for j in range(f["nt"]):
                b = self.sp[f["b_row"] + j * f["b_ps"]:][:k, :C]
                for i in range(f["mt"]):
                    a = self.sp[f["a_row"] + i * f["a_ps"]:][:k, :R]
                    r0 = f["c_row"] + j * f["c_ps"] + i * R
                    old = self.acc[r0:r0 + R]
                    prod = fx.int_gemm(a.T, b, AW, old[:, :C] if f["accumulate"] else None)
                    new = old.clone() if f["accumulate"] else torch.zeros_like(old)
                    new[:, :C] = prod
                    self.acc[r0:r0 + R] = new
        elif op is Op.REQ:
            n, ln = f["rows"], f["lanes"]
            x = self.acc[f["src"]:f["src"] + n, :ln]
            y, mask, nsat = fx.requantize_act(x, f["shift"], W, relu=bool(f["relu"]),
                                              rounding=rounding(f["rounding"]), rng=self.rng)
            self.counters["sat_req"] += nsat
            out = torch.zeros(n, L, dtype=torch.int64)
            out[:, :ln] = y
            self.sp[f["dst"]:f["dst"] + n] = out
            if f["mask_en"]:
                out = torch.zeros(n, L, dtype=torch.int64)
                out[:, :ln] = mask
                self.sp[f["mask_row"]:f["mask_row"] + n] = out
        elif op is Op.RELUB:
            n, ln = f["rows"], f["lanes"]
            g = self.sp[f["g_row"]:f["g_row"] + n, :ln]
            m = self.sp[f["mask_row"]:f["mask_row"] + n, :ln]
            out = torch.zeros(n, L, dtype=torch.int64)
            out[:, :ln] = fx.relu_backward(g, m)
            self.sp[f["dst"]:f["dst"] + n] = out
        elif op is Op.SMX:
            from . import softmax as gsm
            cl, s = f["classes"], f["samples"]
            z = self.sp[f["z_row"]:f["z_row"] + cl, :s].T          # (samples, classes)
            fm = c.config.formats
            inv_temp = f["inv_temp"]
            if f["mode"] == 0:
                out = gsm.softmax_probs(z, z_frac=f["z_frac"], prob_frac=fm.prob_frac,
                                        width=W, inv_temp=inv_temp)
            else:
                t = self.sp[f["t_row"]:f["t_row"] + cl, :s].T
                out = gsm.softmax_xent_grad(z, t, z_frac=f["z_frac"], prob_frac=fm.prob_frac,
                                            grad_frac=fm.grad_frac, width=W, inv_temp=inv_temp,
                                            grad_shift=f["grad_shift"])
            self.sp[f["dst"]:f["dst"] + cl, :s] = out.T
        elif op is Op.SGD:
            n, ln = f["rows"], f["lanes"]
            w = self.sp[f["w_row"]:f["w_row"] + n, :ln]
            g = self.acc[f["g_row"]:f["g_row"] + n, :ln]
            new, nsat = fx.sgd_update(w, g, W, f["lr_shift"], f["lr_mul"], f["wd_mul"],
                                      rounding(f["rounding"]), self.rng)
            self.counters["sat_sgd"] += nsat
            self.sp[f["w_row"]:f["w_row"] + n, :ln] = new
        elif op is Op.FILL:
            mem = self.sp if f["space"] == 0 else self.acc
            mem[f["dst"]:f["dst"] + f["rows"]] = f["value"]
        elif op is Op.SELCLR:
            self.selector.clear()
        elif op is Op.SELFEED:
            sel = c.selector
            rows = self.sp[f["prob_row"]:f["prob_row"] + sel.classes, :f["samples"]].T.tolist()
            base, id_mask = self._reg(f["rid"]), (1 << sel.id_width) - 1
            costs = []
            for s, row in enumerate(rows):
                costs += self.selector.push_costs((base + s) & id_mask, row)
            from .selection import selfeed_cycles
            self.sel_feed_cycles = selfeed_cycles(costs, f["samples"], sel.classes, sel.p)
        elif op is Op.SELOUT:
            sel = c.selector
            words = isa.sel_out_pack(self.selector.result().per_class, sel, W)
            a = (self._reg(f["rm"]) + f["mem_off"]) & _MASK32
            self.mem[a:a + len(words)] = torch.tensor(words, dtype=torch.int64)
        return None


    # --- timing ------------------------------------------------------------------------------
    def _duration(self, op, f):
        """Cycles a unit is busy with one operation (deterministic memory)."""
        return self.timing.duration(self, op, f)

    # --- the run loop ------------------------------------------------------------------------
    def run(self, entry=0, max_instructions=10_000_000, max_cycles=None, budget=0):
        """Execute the program at word address ``entry`` until HALT or an error.

        ``budget`` is the watchdog's cycle budget (:attr:`spec.csr.Csr.BUDGET`; 0: none): an
        instruction that passed its checks but would issue in a cycle ``≥ budget`` (cycles
        counted from the program's first fetch, as ``CYCLES`` counts them) is not issued; the
        program halts with ``Error.WATCHDOG`` at that instruction, detected in cycle
        ``max(t_ready, budget)`` and ending, as every error does, once the running units are
        idle. So a program halts normally if and only if it takes at most ``budget`` cycles.
        A fetch or check error of an instruction is reported before the watchdog's.

        The run is stopped (``RuntimeError``) when it has issued ``max_instructions``
        instructions or, with ``max_cycles``, when the next instruction would issue after
        cycle ``max_cycles``: a program that loops forever ends.

        Returns
        -------
        ExecResult
            The error code (``Error.NONE`` after HALT), the pc of the last instruction (the
            faulting one on error), the cycle count (start to done, as the RTL's cycle counter
            reads it) and the number of instructions issued.
        """
        check_int(budget, "Cycle budget")
        if not 0 <= budget < 1 << 32:
            raise ValueError(f"Cycle budget must be in 0..2**32-1, not {budget!r}")
        # counters restart with every program, as the CSRs do
        self._busy = {u: 0 for u in Unit}
        self.counters.update(sat_req=0, sat_sgd=0, stall=0)
        free = {u: 0 for u in Unit}             # first cycle each unit may take a new operation
        used = {u: set() for u in Unit}         # banks of each unit's last operation
        t, pc, count = 0, entry, 0
        self.error, self.dma_fault = Error.NONE, 0

        stall = 0

        def stop(error, t_detect, pc):
            t_end = max([t_detect] + list(free.values()))
            self.counters["stall"] = stall + t_end - t_detect
            self.error, self.pc = error, pc
            self._account(t_end + 1, free, used)
            return ExecResult(error, pc, t_end + 1, count, self.dma_fault)

        while count < max_instructions:
            if max_cycles is not None and t > max_cycles:
                raise RuntimeError(f"Program did not halt within {max_cycles} cycles")
            if pc % isa.INSN_WORDS or pc + isa.INSN_WORDS > self.soc.mem_words:
                return stop(Error.FETCH_RANGE, t + FETCH_CYCLES, pc)
            word = isa.from_words(self.mem[pc:pc + isa.INSN_WORDS].tolist())
            t_ready = t + FETCH_CYCLES
            if self.soc.selector is None and (word & 0xFF) in _SEL_OPS:
                return stop(Error.ILLEGAL_OPCODE, t_ready, pc)   # no selection unit
            try:
                op, f = isa.decode(word)
            except ValueError as e:
                return stop(e.args[1], t_ready, pc)
            try:
                unit, banks = self._check(op, f)
            except _Fault as e:
                return stop(e.error, t_ready, pc)
            t_issue = t_ready
            if unit is not None:
                t_issue = max(t_issue, free[unit])
            for u in Unit:
                if u is not unit and banks & used[u]:
                    t_issue = max(t_issue, free[u])
            if op is Op.FENCE:
                t_issue = max([t_issue] + [free[u] for u in Unit if f["mask"] >> u & 1])
            elif op in (Op.LDW, Op.STW):
                t_issue = max(t_issue, free[Unit.DMA])
            elif op is Op.SEED:
                t_issue = max(t_issue, free[Unit.VEC])
            elif op is Op.HALT:
                t_issue = max([t_issue] + list(free.values()))
            if budget and t_issue >= budget:          # the watchdog: waits count as stall
                t_detect = max(t_ready, budget)
                stall += t_detect - t_ready
                return stop(Error.WATCHDOG, t_detect, pc)
            if op is Op.HALT:
                count += 1
                self.pc = pc
                self.counters["stall"] = stall + t_issue - t_ready
                self._account(t_issue + 1, free, used)
                return ExecResult(Error.NONE, pc, t_issue + 1, count)
            try:
                new_pc = self._execute(op, f)
            except _Fault as e:
                return stop(e.error, t_ready, pc)
            count += 1
            stall += t_issue - t_ready
            if unit is not None:
                d = self._duration(op, f)
                free[unit] = t_issue + ISSUE_LATENCY + 1 + d
                used[unit] = banks
                self._busy[unit] += d
            pc = new_pc if new_pc is not None else pc + isa.INSN_WORDS
            t = t_issue + 1
            if op in (Op.LDW, Op.STW):
                t += memop_cycles(word_bus_latency(self.soc.mem_latency))
        raise RuntimeError(f"Program did not halt within {max_instructions} instructions")

    def _account(self, cycles, free, used):
        self.counters["cycles"] = cycles
        for u in Unit:
            self.counters[f"busy_{u.name.lower()}"] = self._busy[u]

class _Fault(Exception):
    def __init__(self, error):
        super().__init__(error)
        self.error = error
