"""Running the SoC in Amaranth's Python simulator: load an image, start a program, read back.

The slow but dependency-free backend (``pysim``) of the firmware's device interface and the
reference the compiled simulator is compared with.
"""

from amaranth.sim import Simulator

from spec.csr import Csr
from rtl.soc import Soc

__all__ = ["SocRun", "run_program"]


class SocRun(dict):
    """Results of :func:`run_program`: ``mem``, ``sp``, ``acc`` (lists), ``csr`` ({Csr: value}),
    ``cycles`` (simulated clock cycles from start to done)."""


async def csr_write(ctx, dut, addr, value):
    ctx.set(dut.csr_addr, addr)
    ctx.set(dut.csr_wdata, value)
    ctx.set(dut.csr_we, 1)
    await ctx.tick()
    ctx.set(dut.csr_we, 0)


async def csr_read(ctx, dut, addr):
    ctx.set(dut.csr_addr, addr)
    ctx.set(dut.csr_re, 1)
    await ctx.tick()
    ctx.set(dut.csr_re, 0)
    return ctx.get(dut.csr_rdata)


def run_program(soc, image, entry=0, *, stall_rate=0, seed=1, max_cycles=200_000,
                read_back=True, programs=None, budget=None):
    """Run the program at ``entry`` on a fresh SoC whose main memory holds ``image``.

    ``programs``: optional list of further entries run one after the other without reset
    (results are of the last one; each run's CSRs are in ``runs``). ``budget``: the watchdog's
    cycle budget, written to ``Csr.BUDGET`` before the first start (``None``: not written).
    """
    dut = Soc(soc, stall_rate=stall_rate, seed=seed, mem_init=list(image))
    out = SocRun()
    entries = [entry] + list(programs or [])

    async def tb(ctx):
        runs = []
        if budget is not None:
            await csr_write(ctx, dut, Csr.BUDGET, budget)
        for e in entries:
            await csr_write(ctx, dut, Csr.ENTRY, e)
            await csr_write(ctx, dut, Csr.CTRL, 1)
            n = 0
            while not ctx.get(dut.done):
                await ctx.tick()
                n += 1
                if n > max_cycles:
                    raise TimeoutError(f"SoC did not halt within {max_cycles} cycles")
            csr = {c: await csr_read(ctx, dut, c) for c in Csr}
            runs.append(csr)
        out["runs"] = runs
        out["csr"] = runs[-1]
        if read_back:
            mm, ms = dut.mainmem, dut.memsys
            out["mem"] = [ctx.get(mm.word(i)) for i in range(soc.mem_words)]
            out["sp"] = [list(ctx.get(ms.sp.cell(r))) for r in range(soc.sp_rows)]
            out["acc"] = [list(ctx.get(ms.acc.cell(r))) for r in range(soc.acc_rows)]

    async def watch_fetch(ctx):
        # main memory is declared collision-free (rtl/mainmem.py): a fetch of a line the bus
        # writes in the same cycle reads undefined words on the board
        async for _, _, hit in ctx.tick().sample(dut.fetch_collision):
            if hit:
                raise RuntimeError("The program stores into the instruction line it is fetching "
                                   "(outside the cycle model; the board reads undefined words)")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.add_process(watch_fetch)
    sim.run()
    return out
