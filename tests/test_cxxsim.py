"""The compiled simulator (sim/compiled) against Amaranth's Python simulator on the same design.

The test design has a bit of everything the SoC will have: a counter with enable and a limit flag
(run-until), a signed multiply-accumulate in a submodule (signed values, an internal signal the
optimiser removes), a memory with a write port, a synchronous and an asynchronous read port
(backdoor access), a combinational output and a 100-bit register (the wide-value path).
Compiled models are cached (``~/.cache/apprentice/cxxsim`` or ``$APPRENTICE_CXXSIM_CACHE``), so
only the first run pays the compile (≈ 10 s of CPU). The models here are CXXRTL's (every named
signal readable); ``tests/test_soc_cxxsim.py`` runs both engines on the SoC.
"""

import random
import re
import time

import numpy as np
import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from sim.compiled import CxxSim, CxxSimBuildError, CxxSimError, default_cache_dir
from tests.simutil import run_sim

pytestmark = pytest.mark.xdist_group("cxxsim")   # one worker builds (or loads) the model once

WIDE = 100
DEPTH = 24        # not a power of two: addresses 24..31 are out of range


class Mac(wiring.Component):
    """``acc`` accumulates ``a * b`` (``clear``: restart from the product) when ``en``; memory
    ``last`` keeps the low 16 bits of the latest product per ``a % 4``."""
    a: In(signed(16))
    b: In(signed(16))
    en: In(1)
    clear: In(1)
    acc: Out(signed(40))

    def elaborate(self, platform):
        m = Module()
        prod = Signal(signed(32), name="prod")          # combinational: optimised out by CXXRTL
        m.d.comb += prod.eq(self.a * self.b)
        with m.If(self.en & self.clear):
            m.d.sync += self.acc.eq(prod)
        with m.Elif(self.en):
            m.d.sync += self.acc.eq(self.acc + prod)
        m.submodules.last = last = memory.Memory(shape=16, depth=4, init=[])
        wp = last.write_port()
        m.d.comb += [wp.addr.eq(self.a[:2]), wp.data.eq(prod[:16]), wp.en.eq(self.en)]
        return m


class SampleDesign(wiring.Component):
    a: In(signed(16))
    b: In(signed(16))
    mac_en: In(1)
    clear: In(1)
    count_en: In(1)
    limit: In(12)
    we: In(1)
    waddr: In(5)
    wdata: In(signed(18))
    raddr: In(5)

    acc: Out(signed(40))
    count: Out(12)
    at_limit: Out(1)
    rdata: Out(signed(18))        # synchronous read port
    adata: Out(signed(18))        # asynchronous read port
    mix: Out(signed(20))          # combinational: a + count - b
    pair: Out(data.StructLayout({"lo": 4, "hi": signed(4)}))   # count's low byte, as fields
    wide: Out(WIDE)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = Mac()
        m.d.comb += [mac.a.eq(self.a), mac.b.eq(self.b), mac.en.eq(self.mac_en),
                     mac.clear.eq(self.clear), self.acc.eq(mac.acc)]

        with m.If(self.count_en):
            m.d.sync += self.count.eq(self.count + 1)
        m.d.comb += self.at_limit.eq(self.count == self.limit)
        m.d.comb += self.mix.eq(self.a + self.count - self.b)
        m.d.comb += self.pair.eq(self.count[:8])

        m.submodules.mem = mem = memory.Memory(shape=signed(18), depth=DEPTH,
                                               init=[-5, 7, -(1 << 17), (1 << 17) - 1])
        wp = mem.write_port()
        rp = mem.read_port()
        ap = mem.read_port(domain="comb")
        m.d.comb += [wp.addr.eq(self.waddr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                     rp.addr.eq(self.raddr), self.rdata.eq(rp.data),
                     ap.addr.eq(self.raddr), self.adata.eq(ap.data)]

        # A 100-bit register: rotate left, xor the low bits of count and acc into the bottom.
        shift = Signal(WIDE, name="shift", init=(1 << 99) | 0xACE1)
        m.d.sync += shift.eq(Cat(shift[WIDE - 1] ^ self.count[0] ^ self.acc[0],
                                 shift[:WIDE - 1]))
        m.d.comb += self.wide.eq(shift)
        return m


INPUTS = ("a", "b", "mac_en", "clear", "count_en", "limit", "we", "waddr", "wdata", "raddr")
OUTPUTS = ("acc", "count", "at_limit", "rdata", "adata", "mix")


def random_stimulus(seed, n):
    """Per input, ``n`` random values; edge values (most negative, all ones) are frequent."""
    rng = random.Random(seed)

    def operand():
        return rng.choice([-(1 << 15), (1 << 15) - 1, 0, -1, rng.randint(-(1 << 15), (1 << 15) - 1)])

    return {
        "a": [operand() for _ in range(n)],
        "b": [operand() for _ in range(n)],
        "mac_en": [int(rng.random() < 0.8) for _ in range(n)],
        "clear": [int(rng.random() < 0.1) for _ in range(n)],
        "count_en": [int(rng.random() < 0.7) for _ in range(n)],
        "limit": [rng.randrange(1 << 12) for _ in range(n)],
        "we": [int(rng.random() < 0.5) for _ in range(n)],
        "waddr": [rng.randrange(32) for _ in range(n)],        # 24..31: out of range, dropped
        "wdata": [rng.choice([-(1 << 17), (1 << 17) - 1, rng.randint(-(1 << 17), (1 << 17) - 1)])
                  for _ in range(n)],
        "raddr": [rng.randrange(32) for _ in range(n)],         # out of range reads too
    }


def pysim_trace(stimulus, n):
    """Amaranth's simulator: per cycle, set the inputs, tick, record the outputs (and ``wide``)."""
    dut = SampleDesign()
    trace, wide = [], []

    async def tb(ctx):
        for i in range(n):
            for name in INPUTS:
                ctx.set(getattr(dut, name), stimulus[name][i])
            await ctx.tick()
            trace.append([ctx.get(getattr(dut, name)) for name in OUTPUTS])
            wide.append(ctx.get(dut.wide))

    run_sim(dut, tb)
    return np.array(trace, dtype=np.int64), wide


@pytest.fixture(scope="module")
def design():
    return SampleDesign()


@pytest.fixture(scope="module")
def sim(design):
    """The compiled model, from the cache after the first run ever."""
    with CxxSim(design, name="cxxsim_test", expose=["mac.prod"], progress=False,
                simulator="cxxrtl") as sim:
        yield sim


@pytest.fixture
def fresh(sim):
    """The shared model brought to a known state: reset, inputs zero, memory re-initialised."""
    for name in INPUTS:
        sim.set(name, 0)
    sim.reset()
    sim.memory("mem").write(0, [-5, 7, -(1 << 17), (1 << 17) - 1] + [0] * (DEPTH - 4))
    sim.memory("mac.last").write(0, [0] * 4)
    return sim


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_run_matches_pysim_cycle_by_cycle(fresh, design, seed):
    n = 300
    stimulus = random_stimulus(seed, n)
    expected, expected_wide = pysim_trace(stimulus, n)
    sim = fresh                 # reset + memory re-initialised: the power-on state again
    start = sim.cycle
    got = sim.run(n, [(getattr(design, k), stimulus[k]) for k in INPUTS],
                  [getattr(design, k) for k in OUTPUTS])
    assert sim.cycle == start + n
    for i in range(n):
        assert got[i].tolist() == expected[i].tolist(), \
            f"seed {seed}: cycle {i}: {dict(zip(OUTPUTS, got[i]))} != " \
            f"{dict(zip(OUTPUTS, expected[i]))}"
    assert sim.get(design.wide) == expected_wide[-1], f"seed {seed}"


def test_step_get_set_match_pysim(fresh, design):
    """The same comparison through Python-side set/step/get (and the wide path every cycle)."""
    n, seed = 120, 7
    stimulus = random_stimulus(seed, n)
    expected, expected_wide = pysim_trace(stimulus, n)
    sim = fresh
    for i in range(n):
        for name in INPUTS:
            sim.set(name, stimulus[name][i])
        sim.step()
        got = [sim.get(name) for name in OUTPUTS]
        assert got == expected[i].tolist(), f"seed {seed}: cycle {i}"
        assert sim.get("wide") == expected_wide[i], f"seed {seed}: cycle {i}"


def test_combinational_settles_after_set(fresh):
    sim = fresh
    sim.set("a", -(1 << 15))
    sim.set("b", (1 << 15) - 1)
    assert sim.get("mix") == -(1 << 15) - ((1 << 15) - 1)       # no clock edge needed
    assert sim.get("mac.prod") == -(1 << 15) * ((1 << 15) - 1)   # exposed internal signal
    assert sim.item("mac.prod").on_demand is False
    assert sim.item("mac prod") is sim.item("mac.prod")
    sim.set("raddr", 3)
    assert sim.get("adata") == (1 << 17) - 1                     # asynchronous read port


def test_signed_and_wide_values(fresh):
    sim = fresh
    sim.set("a", -1)
    assert sim.get("a") == -1
    assert sim.get("a", signed=False) == 0xFFFF
    value = (1 << 99) | (1 << 64) | 0xDEADBEEF_CAFEF00D
    sim.set("shift", value)                  # a register: its current value is overwritten
    assert sim.get("wide") == value
    sim.set("count_en", 0)
    sim.set("mac_en", 0)
    sim.step()
    rotated = ((value << 1) | (value >> 99)) & ((1 << WIDE) - 1)
    assert sim.get("wide") == rotated        # count and acc are 0: nothing xored in
    with pytest.raises(ValueError, match=r"does not fit 'a' \(16 bits\)"):
        sim.set("a", 1 << 16)
    with pytest.raises(ValueError, match=r"does not fit 'a' \(16 bits\)"):
        sim.set("a", -(1 << 16))


def test_memory_backdoor(fresh):
    sim = fresh
    mem = sim.memory("mem")
    assert (mem.width, mem.depth, len(mem)) == (18, DEPTH, DEPTH)
    assert mem.read(0, 4, signed=True).tolist() == [-5, 7, -(1 << 17), (1 << 17) - 1]
    assert mem.read(0, 1).tolist() == [(1 << 18) - 5]               # unsigned by default

    rng = np.random.default_rng(11)
    values = rng.integers(-(1 << 17), 1 << 17, DEPTH)
    mem.write(0, values)                                            # bulk, numpy
    assert mem.read(signed=True).tolist() == values.tolist()
    mem[5] = -(1 << 17)                                             # one row, Python int
    assert mem[5] == 1 << 17                                        # raw bits
    # The design sees backdoor writes: the sync read port after an edge, async at once.
    sim.set("raddr", 5)
    assert sim.get("adata") == -(1 << 17)
    sim.step()
    assert sim.get("rdata") == -(1 << 17)
    # ... and the backdoor sees the design's writes.
    sim.set("we", 1)
    sim.set("waddr", 23)
    sim.set("wdata", -1234)
    sim.step()
    sim.set("we", 0)
    assert mem.read(23, 1, signed=True).tolist() == [-1234]
    assert mem.read(DEPTH, 0).tolist() == []

    with pytest.raises(IndexError, match=r"Rows 20\.\.24 out of range for memory 'mem' of "
                                         r"depth 24"):
        mem.read(20, 5)
    with pytest.raises(IndexError, match=r"out of range"):
        mem.write(DEPTH - 1, [1, 2])
    with pytest.raises(ValueError, match=r"do not fit memory 'mem' \(18 bits\)"):
        mem.write(0, np.array([1 << 18]))
    with pytest.raises(ValueError, match=r"Values do not fit memory 'mem' \(18 bits\)"):
        mem.write(0, [-(1 << 17) - 1])
    with pytest.raises(TypeError, match=r"Value of 'mem' must be an integer, not 'x'"):
        mem.write(0, ["x"])
    with pytest.raises(CxxSimError, match=r"'count' is a signal, not a memory"):
        sim.memory("count")
    with pytest.raises(CxxSimError, match=r"'mem' is a memory; use CxxSim.memory\(\)"):
        sim.get("mem")


def test_hierarchy_and_view_fields(fresh, design):
    sim = fresh
    last = sim.memory("mac.last")                 # a memory in a submodule
    assert (last.width, last.depth) == (16, 4)
    sim.set("mac_en", 1)
    sim.set("a", 6)                               # row 6 % 4 = 2
    sim.set("b", -7)
    sim.step()
    assert last.read(signed=True).tolist() == [0, 0, -42, 0]
    sim.set("mac_en", 0)
    sim.set("count_en", 1)
    sim.step(0x9B)                                # count 0x9B: lo 0xB, hi 0x9 = -7 as signed(4)
    assert sim.get("pair.lo") == 0xB
    assert sim.get("pair.hi", signed=True) == -7   # fields have no shape here: say signed=
    assert sim.get(design.pair) == 0x9B            # the view as a whole


def test_run_until(fresh):
    sim = fresh
    sim.set("limit", 40)
    sim.set("count_en", 1)
    start = sim.cycle
    assert sim.run_until("at_limit", 1000) == 40          # count 0 → 40
    assert sim.cycle == start + 40 and sim.get("count") == 40
    assert sim.run_until("at_limit", 1000) == 0           # already true: no cycle
    sim.set("limit", 39)                                  # passed: runs to the wrap-around
    assert sim.run_until("at_limit", 10) == 10
    assert sim.get("count") == 50
    assert sim.run_until("at_limit", 10_000) == (1 << 12) - 50 + 39     # wraps at 4096
    assert sim.get("count") == 39
    with pytest.raises(CxxSimError, match=r"run_until needs a 1-bit signal; 'count' has 12 bits"):
        sim.run_until("count", 5)


def test_long_runs_go_in_chunks(fresh, monkeypatch):
    import sim.compiled.sim
    monkeypatch.setattr(sim.compiled.sim, "_CHUNK", 7)
    sim = fresh
    sim.set("count_en", 1)
    sim.step(30)
    assert sim.get("count") == 30
    sim.set("limit", 30 + 23)
    assert sim.run_until("at_limit", 100) == 23       # stops inside the 4th chunk
    assert sim.run_until("at_limit", 100) == 0
    sim.set("limit", 0)
    assert sim.run_until("at_limit", 21) == 21        # whole chunks, condition never met
    assert sim.get("count") == 53 + 21


def test_reset(fresh):
    sim = fresh
    sim.set("count_en", 1)
    sim.step(5)
    assert sim.get("count") == 5
    sim.reset(3)
    assert sim.get("count") == 0
    assert sim.get("rst") == 0
    with pytest.raises(ValueError, match=r"Cycle count must be a non-negative integer, not -1"):
        sim.step(-1)
    with pytest.raises(TypeError, match=r"Cycle count must be a non-negative integer, not 1.5"):
        sim.reset(1.5)


def _parse_vcd(text):
    """``({name: ident}, {ident: [(time, value)]})`` of a flat-enough VCD."""
    header, _, body = text.partition("$enddefinitions $end")
    idents = {}
    scope = []
    for line in header.splitlines():
        words = line.split()
        if words[:1] == ["$scope"]:
            scope.append(words[2])
        elif words[:1] == ["$upscope"]:
            scope.pop()
        elif words[:1] == ["$var"]:
            idents[" ".join(scope + [words[4]])] = words[3]
    changes, now = {}, None
    for line in body.split("\n"):
        if not line:
            continue
        if line.startswith("#"):
            now = int(line[1:])
        elif line[0] == "b":
            value, ident = line[1:].split()
            changes.setdefault(ident, []).append((now, int(value, 2)))
        else:
            changes.setdefault(line[1:], []).append((now, int(line[0])))
    return header, idents, changes


def test_vcd_window(fresh, tmp_path):
    sim = fresh
    sim.set("count_en", 1)
    sim.step(3)
    path = tmp_path / "window.vcd"
    first = sim.cycle
    with sim.vcd(path):
        sim.step(4)
    sim.step(10)                                    # outside the window: not recorded
    header, idents, changes = _parse_vcd(path.read_text())
    assert "$timescale 1 ns $end" in header
    assert re.search(r"\$var reg 12 \S+ count \$end", header)
    assert re.search(r"\$scope module mac \$end", header)
    assert "mem" not in idents                      # memories are left out
    times = [t for c in changes.values() for t, _ in c]
    assert min(times) == 10 * first and max(times) == 10 * (first + 4)
    # count: its value when the window opened, then +1 at every rising edge (10·c + 5).
    edges = [10 * first] + [10 * (first + i) + 5 for i in range(4)]
    assert changes[idents["count"]] == [(t, 3 + i) for i, t in enumerate(edges)]
    # the clock: high at the rising edge, low at the end of each cycle.
    clk = changes[idents["clk"]]
    assert clk[0] == (10 * first, 0) and clk[1:3] == [(10 * first + 5, 1), (10 * first + 10, 0)]
    # a combinational output changes with the register, at the rising edge.
    assert [t for t, _ in changes[idents["mix"]]] == edges
    with pytest.raises(CxxSimError, match=r"wrong state"):
        sim.vcd_stop()


def test_names_and_errors(sim, design):
    assert {"a", "count", "mac acc", "mac prod", "mem", "mac last", "shift", "clk", "rst",
            "pair", "pair.hi"} <= set(sim.names)
    assert "mac.acc" in sim and "mac.last" in sim and "pair.lo" in sim and "nope" not in sim
    assert sim.item(design.acc).name == "acc" and sim.item(design.acc).signed
    assert sim.item("mem").memory
    with pytest.raises(CxxSimError, match=r"Signal 'nope' is not in the compiled model"):
        sim.get("nope")
    with pytest.raises(CxxSimError, match=r"is not a signal of the simulated design"):
        sim.get(Signal(name="stranger"))
    with pytest.raises(CxxSimError, match=r"'mix' is not writable"):
        sim.set("mix", 1)
    with pytest.raises(CxxSimError, match=r"'count' is not a top-level input"):
        sim.run(1, {"count": [0]})
    with pytest.raises(CxxSimError, match=r"'wide' has 100 bits; run\(\) handles at most 64"):
        sim.run(1, outputs=["wide"])
    with pytest.raises(ValueError, match=r"Inputs of 'a' must be 3 values, not shape \(2,\)"):
        sim.run(3, {"a": [1, 2]})
    with pytest.raises(ValueError, match=r"Inputs of 'a' do not fit 16 bits"):
        sim.run(1, {"a": [1 << 16]})
    with pytest.raises(TypeError, match=r"Signal must be a Signal, a value-castable or a name, "
                                        r"not 3"):
        sim.get(3)


class Bare:
    """Elaboratable by duck typing, not a component (and not must-use, unlike Elaboratable)."""
    def elaborate(self, platform):
        return Module()


def test_constructor_checks(design, tmp_path):
    with pytest.raises(TypeError, match=r"Design must be an elaboratable, not 'x'"):
        CxxSim("x")
    with pytest.raises(TypeError, match=r"Design is not a wiring.Component: pass its "
                                        r"top-level `ports=`"):
        CxxSim(Bare())
    with pytest.raises(TypeError, match=r"Clock name must be a string or None, not 1"):
        CxxSim(design, clock=1)
    with pytest.raises(TypeError, match=r"Reset name must be a string or None, not 1"):
        CxxSim(design, reset=1)
    with pytest.raises(ValueError, match=r"A model without a clock has no reset either: pass "
                                         r"reset=None, not 'rst'"):
        CxxSim(design, clock=None)
    with pytest.raises(ValueError, match=r"Design name must be letters, digits, '_', '\.' or "
                                         r"'-', not 'a b'"):
        CxxSim(design, name="a b")
    with pytest.raises(TypeError, match=r"Progress must be a bool or a callable, not 3"):
        CxxSim(design, progress=3)
    with pytest.raises(TypeError, match=r"Signal to expose must be a Signal or a name, not 3"):
        CxxSim(design, expose=[3])
    with pytest.raises(CxxSimBuildError, match=r"Cannot expose 'nope': the design has no signal"):
        CxxSim(design, expose=["nope"], cache_dir=tmp_path)
    with pytest.raises(CxxSimError, match=r"Clock 'nope' is not in the compiled model"):
        CxxSim(design, name="cxxsim_test", expose=["mac.prod"], clock="nope", progress=False,
               simulator="cxxrtl")
    with pytest.raises(CxxSimError, match=r"the clock must be a 1-bit top-level input"):
        CxxSim(design, name="cxxsim_test", expose=["mac.prod"], clock="count", progress=False,
               simulator="cxxrtl")


class Undriven(wiring.Component):
    """An output that nothing drives: without a direction, Amaranth would make it an input."""
    o: Out(4)
    i: In(1)

    def elaborate(self, platform):
        return Module()


def test_undriven_output_is_a_clear_error(tmp_path):
    with pytest.raises(CxxSimBuildError, match=r"Port 'o' of the design is an output in its "
                                               r"signature but an input of the design"):
        CxxSim(Undriven(), cache_dir=tmp_path, progress=False)


class Multiplier(Elaboratable):
    """Not a component (ports passed by hand), no clock: ``y = a * b``, ``c = y[8:]``."""
    def __init__(self):
        self.a = Signal(signed(12), name="a")
        self.b = Signal(signed(12), name="b")
        self.y = Signal(signed(24), name="y")
        self.c = Signal(16, name="c")

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.y.eq(self.a * self.b), self.c.eq(self.y[8:])]
        return m


def test_combinational_design_with_ports():
    dut = Multiplier()
    with CxxSim(dut, ports=[dut.a, dut.b, dut.y, dut.c], clock=None, reset=None,
                progress=False, simulator="cxxrtl") as sim:
        rng = random.Random(5)
        for _ in range(50):
            a, b = rng.randint(-2048, 2047), rng.randint(-2048, 2047)
            sim.set(dut.a, a)
            sim.set(dut.b, b)
            assert sim.get(dut.y) == a * b, f"{a} * {b}"
            assert sim.get(dut.c) == ((a * b) >> 8) & 0xFFFF, f"{a} * {b}"
        sim.set(dut.a, -2048)
        sim.set(dut.b, -2048)
        assert sim.get(dut.y) == 1 << 22
        with pytest.raises(CxxSimError, match=r"The model has no clock \(it was built with "
                                              r"clock=None\)"):
            sim.step()


def test_cache_hit_does_not_recompile(sim, design):
    messages = []
    start = time.perf_counter()
    with CxxSim(design, name="cxxsim_test", expose=["mac.prod"], progress=messages.append,
                simulator="cxxrtl") as again:
        seconds = time.perf_counter() - start
        assert again.build_info.cached and again.build_info.compile_seconds == 0
        assert again.build_info.key == sim.build_info.key
        assert again.build_info.library == sim.build_info.library
        assert again.build_info.library.parent.parent == default_cache_dir()
        again.set("count_en", 1)
        again.step(7)
        assert again.get("count") == 7        # an independent model from the same library
    assert not any("compiling" in m for m in messages), messages
    assert any("using the cached build" in m for m in messages), messages
    assert seconds < 10, f"a cache hit took {seconds:.1f} s"   # a compile takes ≥ 10 s here


def test_missing_compiler_is_a_clear_error(design, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent")
    with pytest.raises(CxxSimBuildError, match=r"C\+\+ compiler '/nonexistent' not found.*"
                                               r"--backend pysim"):
        CxxSim(design, cache_dir=tmp_path, progress=False, simulator="cxxrtl")
    assert list(tmp_path.iterdir()) == []


def test_failed_compile_is_a_clear_error_and_caches_nothing(design, tmp_path):
    with pytest.raises(CxxSimBuildError, match=r"(?s)Compiling the C\+\+ model of sampledesign "
                                               r"failed.*no_such_header\.h.*--backend pysim"):
        CxxSim(design, cache_dir=tmp_path, cxx=["g++", "-include", "no_such_header.h"],
               progress=False, simulator="cxxrtl")
    assert list(tmp_path.iterdir()) == []


def test_broken_flag_is_a_clear_error_and_caches_nothing(design, tmp_path):
    with pytest.raises(CxxSimBuildError, match=r"(?s)Compiling the C\+\+ model of sampledesign "
                                               r"failed.*--no-such-flag.*--backend pysim"):
        CxxSim(design, cache_dir=tmp_path, cxxflags=("-O0", "--no-such-flag"), progress=False,
               simulator="cxxrtl")
    assert list(tmp_path.iterdir()) == []


def test_bad_cxxrtl_option_is_a_clear_error(design, tmp_path):
    with pytest.raises(CxxSimBuildError, match=r"(?s)Yosys failed to generate C\+\+.*"
                                               r"--backend pysim"):
        CxxSim(design, cache_dir=tmp_path, cxxrtl_options=("-O6", "-nosuchoption"),
               progress=False, simulator="cxxrtl")
    assert list(tmp_path.iterdir()) == []


# The systolic array: compiled model vs the Python driver vs golden ------------------------------

def test_array_tiles_match_pysim_and_golden():
    import torch

    from golden.array import gemm_tile
    from rtl.array import SystolicArray
    from sim.array import simulate_tiles
    from sim.compiled.array import array_model, run_tiles

    rows, cols = 3, 4                       # not square: a transposed lane would show
    array = SystolicArray(rows, cols)
    w = array.operand_width
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    with array_model(array, progress=False, simulator="cxxrtl") as sim:
        for seed, bubble_rate in ((1, 0.0), (2, 0.3)):
            g = torch.Generator().manual_seed(seed)
            tiles = []
            for k in (1, 5, 2, 9, 4):       # short tiles exercise the spacing bubbles
                a = torch.randint(lo, hi + 1, (rows, k), generator=g)
                b = torch.randint(lo, hi + 1, (k, cols), generator=g)
                a[0, 0], b[0, 0] = lo, lo   # most negative × most negative
                tiles.append((a, b))
            expected = simulate_tiles(array, tiles, bubble_rate=bubble_rate, seed=seed)
            got = run_tiles(sim, array, tiles, bubble_rate=bubble_rate, seed=seed)
            assert got.outputs == expected.outputs, f"seed {seed}"
            assert len(got.results) == len(tiles), f"seed {seed}"
            for j, ((a, b), tile) in enumerate(zip(tiles, got.results)):
                assert torch.equal(tile, gemm_tile(a, b, array.acc_width)), f"seed {seed} tile {j}"


# One default engine; the harness's C functions for C code that drives a model ------------------

def test_one_default_simulator():
    import inspect

    from sim.compiled import DEFAULT_SIMULATOR, SIMULATORS
    from sim.compiled.serial import SerialSocSim
    from sim.compiled.soc import SocSim, run_program, shared_model
    assert DEFAULT_SIMULATOR == "verilator" and DEFAULT_SIMULATOR in SIMULATORS
    for driver in (CxxSim, SocSim, SerialSocSim, shared_model, run_program):
        assert inspect.signature(driver).parameters["simulator"].default == DEFAULT_SIMULATOR, \
            driver


def test_library_and_handle(fresh):
    # what the simulated serial port (uart_port.cc) calls: the harness's cs_* on the model
    import ctypes
    fresh.set("count_en", 1)
    cycle = fresh.cycle
    assert fresh.library.cs_step(fresh.handle, 3) == 0
    value = ctypes.c_uint64()
    assert fresh.library.cs_get64(fresh.handle, fresh.item("count").id, ctypes.byref(value)) == 0
    assert value.value == fresh.get("count") == 3 and fresh.cycle == cycle + 3
