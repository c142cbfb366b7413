"""Stream buffers at unit boundaries: a two-entry skid buffer with every handshake signal
registered, and a one-entry buffer that registers the ready path only."""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "ReadyBuffer"]


def _check_shape(shape, what):
    """Return ``shape`` if Amaranth can cast it to a shape; raise naming it if not."""
    if isinstance(shape, int) and not isinstance(shape, bool) and shape < 0:
        raise ValueError(f"{what} payload width must be a non-negative integer, not {shape!r}")
    if not isinstance(shape, bool):
        try:
            Shape.cast(shape)
            return shape
        except TypeError:
            pass
    raise TypeError(f"{what} payload shape must be a shape-castable object, not {shape!r}")


class _StreamBuffer(wiring.Component):
    """What both buffers share: a stream in (``i``) and out (``o``) of one payload shape, checked
    (``what`` names the buffer in the error)."""

    def __init__(self, payload_shape, what):
        self._payload_shape = _check_shape(payload_shape, what)
        super().__init__({
            "i": In(stream.Signature(payload_shape)),
            "o": Out(stream.Signature(payload_shape)),
        })

    @property
    def payload_shape(self):
        """The payload's shape, as given."""
        return self._payload_shape


class SkidBuffer(_StreamBuffer):
    """A stream register slice that cuts every combinational path between its two sides.

    Put one between two units and no signal crosses from one to the other without a register:
    ``o.valid`` and ``o.payload`` come from the *output entry* (a register), ``i.ready`` from the
    *skid entry*'s empty flag (a register). Neither depends combinationally on anything at the
    other side, so the producer's and the consumer's timing paths end at this buffer.

    Timing: a beat accepted on ``i`` in cycle *t* is offered on ``o`` from cycle *t + 1*
    (latency 1). With ``o.ready`` held high the buffer passes one beat per cycle with no bubble
    and the skid entry stays empty. When ``o`` stalls while a beat arrives, the beat waits in the
    skid entry and ``i.ready`` falls in the next cycle; when ``o`` takes the output entry, the
    skid entry moves into it in the same cycle (no bubble on ``o``) and ``i.ready`` rises again
    in the next cycle. The buffer holds at most two beats, keeps their order and never loses,
    duplicates or alters one (proven in ``tests/test_formal.py``, see ``docs/formal.md``).

    Parameters
    ----------
    payload_shape : shape-castable
        Shape of a beat's payload (``unsigned(16)``, a ``data.StructLayout``, ...).

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
        Beats from the producer; ``i.ready`` is a register (high when the skid entry is empty).
    o : ``Out(stream.Signature(payload_shape))``
        Beats to the consumer; ``o.valid`` and ``o.payload`` are registers (the output entry).
        Like every stream here, ``o`` keeps ``valid`` and ``payload`` until ``o.ready``.

    Attributes
    ----------
    skid_empty : Signal(1)
        The skid entry is empty (drives ``i.ready``). Read-only; for proofs and tests.
    skid_payload : Signal(payload_shape)
        The skid entry's beat, meaningful while ``skid_empty`` is low. Read-only; for proofs
        and tests.

    Raises
    ------
    TypeError
        If ``payload_shape`` is not a shape-castable object.
    ValueError
        If ``payload_shape`` is a negative width.
    """

    def __init__(self, payload_shape):
        super().__init__(payload_shape, "Skid buffer")
        self.skid_empty = Signal(init=1, name="skid_empty")
        self.skid_payload = Signal(payload_shape, name="skid_payload")

    def elaborate(self, platform):
        m = Module()
        take_in = self.i.valid & self.i.ready              # a beat enters this cycle
        out_free = ~self.o.valid | self.o.ready            # the output entry is free next cycle
        m.d.comb += self.i.ready.eq(self.skid_empty)
        with m.If(out_free):
            # The output entry loads the oldest beat: the skid entry's, else the incoming one.
            with m.If(~self.skid_empty):
                m.d.sync += [self.o.payload.eq(self.skid_payload), self.skid_empty.eq(1)]
            with m.Else():
                m.d.sync += self.o.payload.eq(self.i.payload)
            m.d.sync += self.o.valid.eq(~self.skid_empty | self.i.valid)
        with m.Elif(take_in):
            # The output entry is held: the incoming beat waits in the skid entry.
            m.d.sync += [self.skid_payload.eq(self.i.payload), self.skid_empty.eq(0)]
        return m


class ReadyBuffer(_StreamBuffer):
    """A one-entry stream buffer that registers the ready path only: ``i.ready`` is a register.

    Put one in front of a consumer whose ``ready`` is late (an arbiter's grant, say) when the
    producer's logic behind ``ready`` is wide: the producer then sees a register, and the
    consumer's ready ends at this buffer. Valid and payload pass through combinationally while
    the buffer is empty, so it adds no latency: a beat offered on ``i`` in cycle *t* is offered
    on ``o`` in cycle *t* too. If ``o`` does not take it then, the beat waits in the buffer's
    entry, ``i.ready`` falls in the next cycle and ``o`` offers the waiting beat until it is
    taken; ``i.ready`` rises in the cycle after. So the stream seen at ``o`` is the stream the
    producer would have offered the consumer directly (same beats, same cycles), but for
    ``i.ready`` the producer sees: it hands a beat over one cycle early when ``o`` stalls.

    Like :class:`SkidBuffer` it keeps order and never loses, duplicates or alters a beat (proven
    in ``tests/test_formal.py``), for a producer that keeps ``valid`` and ``payload`` until
    ``ready``, as every stream here does.

    Parameters
    ----------
    payload_shape : shape-castable
        Shape of a beat's payload.

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
        Beats from the producer; ``i.ready`` is a register (high when the entry is empty).
    o : ``Out(stream.Signature(payload_shape))``
        Beats to the consumer: the entry's beat if it holds one, else ``i``'s.

    Attributes
    ----------
    empty : Signal(1)
        The entry is empty (drives ``i.ready``). Read-only; for proofs and tests.
    held : Signal(payload_shape)
        The entry's beat, meaningful while ``empty`` is low. Read-only; for proofs and tests.

    Raises
    ------
    TypeError
        If ``payload_shape`` is not a shape-castable object.
    ValueError
        If ``payload_shape`` is a negative width.
    """

    def __init__(self, payload_shape):
        super().__init__(payload_shape, "Ready buffer")
        self.empty = Signal(init=1, name="empty")
        self.held = Signal(payload_shape, name="held")

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.i.ready.eq(self.empty),
            self.o.valid.eq(self.i.valid | ~self.empty),
            self.o.payload.eq(Mux(self.empty, self.i.payload, self.held)),
        ]
        # The entry follows the input while empty (its enable is a register, so `o.ready`
        # reaches only `empty`), and keeps its beat while full.
        with m.If(self.empty):
            m.d.sync += [self.held.eq(self.i.payload),
                         self.empty.eq(~(self.i.valid & ~self.o.ready))]
        with m.Elif(self.o.ready):
            m.d.sync += self.empty.eq(1)
        return m
