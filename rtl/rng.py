"""The stochastic-rounding generators: one xorshift32 per lane, all seeded from the one seed."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spec.params import check_positive_int
from spec.rng import LANE_SEED_STRIDE, RNG_WIDTH, lane_seed

__all__ = ["RNG_WIDTH", "RngSignature", "Xorshift32Lanes", "xorshift32_step"]


_MASK = (1 << RNG_WIDTH) - 1


def _step(x):
    # Same as golden.fixedpoint.Xorshift32.step (golden is the specification; rtl does not
    # import it, so that the generated logic stands on its own).
    x ^= (x << 13) & _MASK
    x ^= x >> 17
    x ^= (x << 5) & _MASK
    return x


def xorshift32_step(value):
    """One xorshift32 step of a 32-bit Amaranth value, as 32 XORs of state bits.

    The step is linear over GF(2): output bit ``j`` is the XOR of the state bits ``b`` whose unit
    vector's successor has bit ``j`` set (a few taps per bit)."""
    taps = [[b for b in range(RNG_WIDTH) if (_step(1 << b) >> j) & 1] for j in range(RNG_WIDTH)]
    bits = []
    for j in range(RNG_WIDTH):
        bit = value[taps[j][0]]
        for b in taps[j][1:]:
            bit = bit ^ value[b]
        bits.append(bit)
    return Cat(*bits)


class RngSignature(wiring.Signature):
    """How a vector unit consumes draws: the consumer's side of a :class:`Xorshift32Lanes` port.

    Members
    -------
    draws : In(32).array(lanes)
        Each lane's next draw: ``draws[l]`` is generator ``l``'s. Registered; they change only
        after an advance of the lane or a seed load.
    advance : Out(lanes)
        Lanes whose draw is consumed this cycle: generator ``l`` moves on one step at the clock
        edge when bit ``l`` is set. A consumer drives 0 when it takes nothing.

    Parameters
    ----------
    lanes : int
        Number of lanes (generators).
    """

    def __init__(self, lanes):
        check_positive_int(lanes, "Generator lanes")
        self._lanes = lanes
        super().__init__({
            "draws": In(RNG_WIDTH).array(lanes),
            "advance": Out(lanes),
        })

    @property
    def lanes(self):
        return self._lanes

    def __eq__(self, other):
        return type(other) is RngSignature and other.lanes == self.lanes

    def __repr__(self):
        return f"RngSignature({self.lanes})"


class Xorshift32Lanes(wiring.Component):
    """The accelerator's stochastic-rounding generators: an xorshift32 per lane.

    Bit-exact with :class:`golden.fixedpoint.LaneGenerators`: lane ``l`` is an independent
    xorshift32 whose state starts at :func:`spec.rng.lane_seed` ``(seed, l)``. Each lane's
    register holds its generator's *next draw* (the state one step ahead of golden's), so the
    draws on ``port.draws`` come straight from flip-flops; advancing a lane replaces its draw by
    the draw's successor (one step, a few XORs per bit).

    Loading: ``seed_stb`` loads the lanes from ``seed`` at the clock edge and wins over
    ``advance`` in the same cycle. Lane ``l`` loads ``step(seed ^ C_l)`` (``C_l = l ·
    LANE_SEED_STRIDE``), which is ``step(seed) ^ step(C_l)``: one step network shared by all
    lanes and a constant per lane; when ``seed == C_l`` (the lane's state would be zero)
    it loads ``step(1)``. The sequencer rejects a zero seed. The reset state is that of seed 1.

    Parameters
    ----------
    lanes : int
        Number of lanes (generators).

    Members
    -------
    port : In(RngSignature(lanes))
        Draws out, ``advance`` in (see :class:`RngSignature`).
    seed : In(32)
        The seed to load.
    seed_stb : In(1)
        Load ``seed`` at this clock edge.

    Raises
    ------
    TypeError
        If ``lanes`` is not an integer.
    ValueError
        If ``lanes`` is not positive.
    """

    def __init__(self, lanes):
        check_positive_int(lanes, "Generator lanes")
        self._lanes = lanes
        super().__init__({
            "port": In(RngSignature(lanes)),
            "seed": In(RNG_WIDTH),
            "seed_stb": In(1),
        })

    @property
    def lanes(self):
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        seed_step = Signal(RNG_WIDTH, name="seed_step")
        m.d.comb += seed_step.eq(xorshift32_step(self.seed))
        for l in range(self._lanes):
            c = (l * LANE_SEED_STRIDE) & _MASK
            draw = Signal(RNG_WIDTH, name=f"draw_{l}", init=_step(lane_seed(1, l)))
            m.d.comb += self.port.draws[l].eq(draw)
            with m.If(self.seed_stb):
                if c == 0:
                    m.d.sync += draw.eq(seed_step)
                else:
                    m.d.sync += draw.eq(Mux(self.seed == c, _step(1), seed_step ^ _step(c)))
            with m.Elif(self.port.advance[l]):
                m.d.sync += draw.eq(xorshift32_step(draw))
        return m
