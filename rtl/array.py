"""The systolic MAC array: output-stationary, signed operands, wrapping wide accumulators."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec.params import ACC_WIDTH, OPERAND_WIDTH, ArrayConfig
from .dsp import MAX_OPERAND_WIDTH, PRODUCT_LATENCY, registered_product

__all__ = ["SystolicArray"]


#: The control bits that travel with each step through the PEs.
_Step = data.StructLayout({"valid": 1, "first": 1, "last": 1})

#: Registers in front of the control chain: the PE's fabric product register is
#: ``PRODUCT_LATENCY + 1`` edges after its operands enter the multiplier, the control chain's
#: register one edge after them.
CTRL_DELAY = PRODUCT_LATENCY


class SystolicArray(wiring.Component):
    """An output-stationary ``rows`` × ``cols`` array of multiply-accumulate processing elements.

    A *tile* computes ``C[rows×cols] = A[rows×K] · B[K×cols]`` with signed
    ``operand_width``-bit operands and a signed ``acc_width``-bit accumulator per PE that
    **wraps** (two's complement modulo ``2**acc_width``), bit-exact with
    :func:`golden.array.gemm_tile`. The cycle timing is exactly :mod:`golden.array`'s cycle model.

    Input. Each cycle the array accepts one *step* ``k`` of a tile — column ``k`` of ``A`` and row
    ``k`` of ``B`` — when ``i_valid`` is high. There is no ``ready``: the array always accepts, and a
    cycle with ``i_valid`` low is a bubble, allowed anywhere (inside a tile or between tiles).
    ``i_first`` marks step 0 (the PEs start a fresh sum), ``i_last`` marks step ``K-1``
    (``K = 1``: both). Every tile must begin with ``i_first``.

    Dataflow. West lane ``r`` is delayed by ``r`` cycles and north lane ``c`` by ``c`` cycles
    (skew registers); operands then move one PE east (``A``) or south (``B``) per cycle through
    each PE's operand registers, so ``A[r][k]`` and ``B[k][c]`` meet in PE ``(r, c)``. ``valid``,
    ``first`` and ``last`` travel with the data (``pe_{r}_{c}_step``: south along column 0, then
    east along each row, starting :data:`CTRL_DELAY` cycles after the step so that they reach a
    PE with its product), so bubbles cost nothing but their cycle. Each PE has: operand registers
    (``pe_{r}_{c}_a``/``_b``, which pass the operands on), a multiplier with its own operand,
    pipeline and product registers (:func:`rtl.dsp.registered_product`, ``pe_{r}_{c}_mul``: a
    ``MULT18X18D`` with its registers on the ECP5, the same registers in the fabric for operands
    wider than 18 bits), a fabric product register (``pe_{r}_{c}_prod``: the route from the DSP
    block is a cycle of its own) and the accumulator (``pe_{r}_{c}_acc``). On a tile's last step
    the final sum goes to the PE's result register
    (``pe_{r}_{c}_result``) in the same cycle the accumulator restarts, so consecutive tiles need
    no bubble between them.

    Output. The result registers of row ``r`` are read out through one ``rows``:1 multiplexer per
    column into registered output ports, one row per cycle, rows ``0 .. rows-1`` in order, row ``r``
    of a tile whose last step was presented in cycle ``L`` in cycle ``L + cols + 3 + r``
    (:func:`spec.timing.output_latency`). There is no output back-pressure: the consumer must
    take one row in every cycle ``o_valid`` is high.

    Spacing rule. The last steps of consecutive tiles must be at least ``max(rows, cols)`` cycles
    apart (:func:`spec.timing.tile_spacing`): otherwise a tile's results would be overwritten
    before they are read out, or two tiles' rows would collide. The producer keeps to it by inserting
    bubbles before a short tile's last step; tiles with ``K >= max(rows, cols)`` run back to back.
    Violating it gives undefined results.

    Parameters
    ----------
    rows, cols : int
        Number of PE rows and columns.
    operand_width : int
        Width of the signed operands (≥ 2); default :data:`spec.params.OPERAND_WIDTH`.
    acc_width : int
        Width of the signed accumulators (≥ ``2 * operand_width``); default
        :data:`spec.params.ACC_WIDTH`.

    Members
    -------
    i_valid : In(1)
        A step is presented this cycle.
    i_first : In(1)
        The step is the first of a tile.
    i_last : In(1)
        The step is the last of a tile.
    i_a : In(signed(operand_width)).array(rows)
        Column ``k`` of ``A``: ``A[r][k]`` on lane ``r``.
    i_b : In(signed(operand_width)).array(cols)
        Row ``k`` of ``B``: ``B[k][c]`` on lane ``c``.
    o_valid : Out(1)
        A result row is presented this cycle.
    o_row : Out(range(rows))
        Index of the presented row within its tile.
    o_last : Out(1)
        The presented row is the tile's last (``o_row == rows - 1``).
    o_c : Out(signed(acc_width)).array(cols)
        The presented row, ``C[o_row][c]`` on lane ``c``; meaningful only while ``o_valid``.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If ``rows`` or ``cols`` is not positive, ``operand_width < 2`` or
        ``acc_width < 2 * operand_width``.
    """

    def __init__(self, rows, cols, *, operand_width=OPERAND_WIDTH, acc_width=ACC_WIDTH):
        # ArrayConfig validates every parameter (one place for the checks and their messages).
        self._config = ArrayConfig(rows=rows, cols=cols, operand_width=operand_width,
                                   acc_width=acc_width)
        super().__init__({
            "i_valid": In(1),
            "i_first": In(1),
            "i_last": In(1),
            "i_a": In(signed(operand_width)).array(rows),
            "i_b": In(signed(operand_width)).array(cols),
            "o_valid": Out(1),
            "o_row": Out(range(rows)),
            "o_last": Out(1),
            "o_c": Out(signed(acc_width)).array(cols),
        })

    @classmethod
    def from_config(cls, config):
        """An array of the shape and widths of ``config`` (an :class:`~spec.params.ArrayConfig`)."""
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"Array configuration must be an ArrayConfig, not {config!r}")
        return cls(config.rows, config.cols, operand_width=config.operand_width,
                   acc_width=config.acc_width)

    @property
    def config(self):
        """The array's :class:`~spec.params.ArrayConfig`."""
        return self._config

    @property
    def rows(self):
        return self._config.rows

    @property
    def cols(self):
        return self._config.cols

    @property
    def operand_width(self):
        return self._config.operand_width

    @property
    def acc_width(self):
        return self._config.acc_width

    def _product(self, m, name, a, b, platform):
        """``a · b`` after PRODUCT_LATENCY edges: a DSP block's registered multiplier
        (:func:`rtl.dsp.registered_product`) for operands it takes, the same three registers in
        the fabric for wider ones."""
        if self.operand_width <= MAX_OPERAND_WIDTH:
            return registered_product(m, name, a, b, en=1, platform=platform)
        assert PRODUCT_LATENCY == 3         # operands, pipeline, product
        a_q = Signal.like(a, name=f"{name}_a")
        b_q = Signal.like(b, name=f"{name}_b")
        pipe = Signal((a * b).shape(), name=f"{name}_pipe")
        product = Signal((a * b).shape(), name=f"{name}_p")
        m.d.sync += [a_q.eq(a), b_q.eq(b), pipe.eq(a_q * b_q), product.eq(pipe)]
        return product

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        opd, acc = signed(self.operand_width), signed(self.acc_width)
        prod = signed(2 * self.operand_width)

        def skew(lane, delay, name):
            for d in range(delay):
                reg = Signal.like(lane, name=f"{name}_{d}")
                m.d.sync += reg.eq(lane)
                lane = reg
            return lane

        west = [skew(self.i_a[r], r, f"skew_a_{r}") for r in range(rows)]
        north = [skew(self.i_b[c], c, f"skew_b_{c}") for c in range(cols)]

        # The step's control bits reach PE (r, c) when its product does: they move south along
        # column 0, then east along each row, a PE per cycle as the operands do, but start
        # CTRL_DELAY cycles later (the product is PRODUCT_LATENCY + 1 edges after the PE's
        # operand registers' inputs, the control chain's first register one edge after them).
        step_in = Cat(self.i_valid, self.i_first, self.i_last)
        for d in range(CTRL_DELAY):
            reg = Signal(_Step, name=f"ctrl_delay_{d}")
            m.d.sync += reg.eq(step_in)
            step_in = reg

        # Per PE: operand registers (a, b: they carry the operands on to the next PEs), the
        # multiplier with its own operand, pipeline and product registers (rtl/dsp.py: in the DSP
        # block on the ECP5), a fabric product register (the route from the DSP block is a cycle
        # of its own), the accumulator and the result register.
        a_reg, b_reg, ctrl, result = {}, {}, {}, {}
        done = []                       # per row: the last column finishes a tile this cycle
        for r in range(rows):
            for c in range(cols):
                pe = f"pe_{r}_{c}"
                a = a_reg[r, c] = Signal(opd, name=f"{pe}_a")
                b = b_reg[r, c] = Signal(opd, name=f"{pe}_b")
                a_in = a_reg[r, c - 1] if c > 0 else west[r]
                b_in = b_reg[r - 1, c] if r > 0 else north[c]
                m.d.sync += [a.eq(a_in), b.eq(b_in)]

                step = ctrl[r, c] = Signal(_Step, name=f"{pe}_step")
                m.d.sync += step.eq(ctrl[r, c - 1] if c > 0 else
                                    ctrl[r - 1, c] if r > 0 else step_in)

                product = self._product(m, f"{pe}_mul", a_in, b_in, platform)
                p = Signal(prod, name=f"{pe}_prod")
                m.d.sync += p.eq(product)

                s = Signal(acc, name=f"{pe}_acc")
                res = result[r, c] = Signal(acc, name=f"{pe}_result")
                total = Mux(step.first, p, s + p)       # truncated to acc_width: wrapping
                with m.If(step.valid):
                    m.d.sync += s.eq(total)
                    with m.If(step.last):
                        m.d.sync += res.eq(total)
                if c == cols - 1:
                    done.append(step.valid & step.last)

        # Read-out. Row r's `done` strobe comes one cycle after row r-1's (the `last` step moves
        # south along column 0); with the spacing rule kept, at most one is high per cycle, so a
        # one-hot to binary encoder gives the row, registered before it selects the row in every
        # column's rows:1 mux.
        sel_valid = Signal(name="readout_valid")
        sel_row = Signal(range(rows), name="readout_row")
        sel_last = Signal(name="readout_last")
        row_bits = [Cat(*[done[r] for r in range(rows) if (r >> i) & 1]).any()
                    for i in range(len(sel_row))]
        m.d.sync += [
            sel_valid.eq(Cat(*done).any()),
            sel_row.eq(Cat(*row_bits)),
            sel_last.eq(done[rows - 1]),
        ]
        m.d.sync += [
            self.o_valid.eq(sel_valid),
            self.o_row.eq(sel_row),
            self.o_last.eq(sel_last),
        ]
        for c in range(cols):
            column = Array(result[r, c] for r in range(rows))
            m.d.sync += self.o_c[c].eq(column[sel_row] if rows > 1 else column[0])
        return m
