"""Apprentice's main-memory bus: a request stream and an in-order response stream.

The protocol (``docs/memory.md`` gives the rationale):

* Two :mod:`amaranth.lib.stream` channels, each with ``valid``/``ready``: the master drives
  **requests** ``req`` (payload ``addr``, ``we``, ``wdata``), the slave drives **responses**
  ``rsp`` (payload: the read data, ``data_width`` bits).
* A transfer happens on a channel in a cycle where both ``valid`` and ``ready`` are high. Once
  ``valid`` is high it stays high, with a stable payload, until the transfer; ``valid`` never
  waits for ``ready``. ``ready`` may rise and fall freely and may depend combinationally on the
  same channel's ``valid`` and on the other channel's ``ready``; a master must not make
  ``rsp.ready`` depend combinationally on ``req.ready``.
* **Every request gets exactly one response**, reads and writes alike; responses come back in
  request order. A read's response carries the word; a write's response is an acknowledgement
  whose data is unspecified. A write is performed (visible to every later request) by the time its
  acknowledgement is transferred.
* Any number of requests may be in flight: the slave limits them by withholding ``req.ready``.
* Addresses are word addresses. A slave ignores writes outside its map and answers reads outside
  it with unspecified data (masters check their addresses; the DMA does before any access).
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.params import check_positive_int

__all__ = ["request_layout", "BusSignature"]


def request_layout(addr_width, data_width):
    """The request payload: ``addr`` (word address), ``we`` (1 = write), ``wdata``."""
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "we": unsigned(1),
        "wdata": unsigned(data_width),
    })


class BusSignature(wiring.Signature):
    """Signature of the main-memory bus, from the master's side.

    Parameters
    ----------
    addr_width : int
        Width of word addresses (≥ 1).
    data_width : int
        Width of a word (≥ 1).

    Members
    -------
    req : ``Out(stream.Signature(request_layout(addr_width, data_width)))``
        Requests, master to slave.
    rsp : ``In(stream.Signature(data_width))``
        Responses in request order, slave to master: read data, or a write acknowledgement.

    Raises
    ------
    TypeError
        If a width is not an integer.
    ValueError
        If a width is not positive.
    """

    def __init__(self, addr_width, data_width):
        check_positive_int(addr_width, "Bus address width")
        check_positive_int(data_width, "Bus data width")
        self._addr_width = addr_width
        self._data_width = data_width
        super().__init__({
            "req": Out(stream.Signature(request_layout(addr_width, data_width))),
            "rsp": In(stream.Signature(unsigned(data_width))),
        })

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    def __eq__(self, other):
        other = other.flip() if isinstance(other, wiring.FlippedSignature) else other
        return (type(other) is BusSignature and self.addr_width == other.addr_width and
                self.data_width == other.data_width)

    def __hash__(self):
        return hash((BusSignature, self._addr_width, self._data_width))

    def __repr__(self):
        return f"BusSignature(addr_width={self._addr_width}, data_width={self._data_width})"
