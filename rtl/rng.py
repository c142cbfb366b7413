"""The stochastic-rounding generator: xorshift32, several consecutive draws per cycle."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spec.params import check_positive_int

__all__ = ["RNG_WIDTH", "RngSignature", "Xorshift32Lanes", "xorshift32_matrix"]


#: Width of the generator's state and of each draw.
RNG_WIDTH = 32

_MASK = (1 << RNG_WIDTH) - 1


def _step(x):
    # Same as golden.fixedpoint.Xorshift32.step (golden is the specification; rtl does not
    # import it at elaboration so that the generated logic stands on its own).
    x ^= (x << 13) & _MASK
    x ^= x >> 17
    x ^= (x << 5) & _MASK
    return x


def xorshift32_matrix(steps):
    """The generator's ``steps``-step map as a GF(2) matrix.

    Returns a list of 32 integers, one per output bit: bit ``b`` of row ``j`` is set when state bit
    ``b`` enters (by XOR) bit ``j`` of the state ``steps`` steps later.
    """
    cols = []
    for b in range(RNG_WIDTH):
        x = 1 << b
        for _ in range(steps):
            x = _step(x)
        cols.append(x)
    return [sum(((cols[b] >> j) & 1) << b for b in range(RNG_WIDTH)) for j in range(RNG_WIDTH)]


def _xor_tree(terms):
    """The XOR of ``terms`` as a balanced tree (log-depth before synthesis restructures it)."""
    while len(terms) > 1:
        terms = [terms[i] ^ terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class RngSignature(wiring.Signature):
    """How a vector unit consumes draws: the consumer's side of a :class:`Xorshift32Lanes` port.

    Members
    -------
    draws : In(32).array(lanes)
        The next ``lanes`` draws of the generator: ``draws[i]`` is the draw ``i + 1`` steps after
        the current state. Combinational from the state; they change only after an advance or a
        seed load.
    advance : Out(range(lanes + 1))
        Draws consumed this cycle: the generator's state moves on by ``advance`` steps at the
        clock edge. A consumer drives 0 when it takes nothing.

    Parameters
    ----------
    lanes : int
        Draws per cycle.
    """

    def __init__(self, lanes):
        check_positive_int(lanes, "Generator lanes")
        self._lanes = lanes
        super().__init__({
            "draws": In(RNG_WIDTH).array(lanes),
            "advance": Out(range(lanes + 1)),
        })

    @property
    def lanes(self):
        return self._lanes

    def __eq__(self, other):
        return type(other) is RngSignature and other.lanes == self.lanes

    def __repr__(self):
        return f"RngSignature({self.lanes})"


class Xorshift32Lanes(wiring.Component):
    """The accelerator's xorshift32 generator, ``lanes`` consecutive draws per cycle.

    Bit-exact with :class:`golden.fixedpoint.Xorshift32`: the generator is linear over GF(2), so
    the draw ``k`` steps ahead of the state is a fixed XOR network of the state bits (the
    ``k``-th power of the step matrix, :func:`xorshift32_matrix`). Each cycle the block presents
    the next ``lanes`` draws on ``port.draws`` combinationally from its state register and, at the
    clock edge, moves its state on by ``port.advance`` steps (0..``lanes``): the new state is the
    last draw taken. The sequence of draws a consumer sees is therefore golden's sequence whatever
    the number taken per cycle.

    One generator is shared by the requantizer and the SGD unit (in program order); the unit that
    is running drives ``advance``, the others drive 0 (the vector engine ORs them).

    Loading: ``seed_stb`` loads ``seed`` at the clock edge and wins over ``advance`` in the same
    cycle. The state must never be zero (zero is the generator's fixed point): the sequencer
    rejects a zero seed. The reset state is 1 (golden's default seed).

    Parameters
    ----------
    lanes : int
        Draws presented per cycle (the vector units' lane count).

    Members
    -------
    port : In(RngSignature(lanes))
        Draws out, ``advance`` in (see :class:`RngSignature`).
    seed : In(32)
        State to load.
    seed_stb : In(1)
        Load ``seed`` at this clock edge.
    state : Out(32)
        The current state (the last draw taken), e.g. to save and restore it.

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
            "state": Out(RNG_WIDTH, init=1),
        })

    @property
    def lanes(self):
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        state = self.state
        for k in range(1, self._lanes + 1):
            rows = xorshift32_matrix(k)
            # Column form: the XOR of the matrix's column b for every state bit b that is set.
            # After constant folding each draw bit is the XOR of its taps, as a per-bit parity
            # of the state would be (the same LUTs on ECP5), but a compiled simulation evaluates
            # 32 word operations per draw instead of 32 single-bit parities (+7 % for the SoC on
            # Verilator, docs/simulation.md).
            terms = []
            for b in range(RNG_WIDTH):
                col = sum(1 << j for j, row in enumerate(rows) if (row >> b) & 1)
                if col:
                    terms.append(Mux(state[b], col, 0))
            draw = Signal(RNG_WIDTH, name=f"draw_{k}")
            m.d.comb += [draw.eq(_xor_tree(terms)), self.port.draws[k - 1].eq(draw)]

        # The state after n steps is draw n (n = 0: unchanged).
        nxt = state
        for n in range(1, self._lanes + 1):
            nxt = Mux(self.port.advance == n, self.port.draws[n - 1], nxt)
        with m.If(self.seed_stb):
            m.d.sync += state.eq(self.seed)
        with m.Else():
            m.d.sync += state.eq(nxt)
        return m
