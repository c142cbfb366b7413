"""Scratchpad access ports of the execution units (engine side).

A unit reads a scratchpad row by driving ``addr`` with ``en`` high; the row is on ``data`` in the
next cycle. It writes a row by driving ``addr``, ``data`` and a per-lane write-enable mask ``en``
(lane ``l`` is written when ``en[l]``). The SoC routes each port to the bank its address falls in;
the sequencer guarantees that no two running units use the same bank.
"""

from amaranth.hdl import signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["row_layout", "ReadPortSignature", "WritePortSignature"]


def row_layout(width, lanes):
    """A scratchpad row: ``lanes`` signed ``width``-bit elements."""
    return data.ArrayLayout(signed(width), lanes)


class ReadPortSignature(wiring.Signature):
    """Engine side of a scratchpad read port: ``addr``, ``en`` out; ``data`` in (next cycle)."""

    def __init__(self, rows, width, lanes):
        super().__init__({
            "addr": Out(range(rows)),
            "en": Out(1),
            "data": In(row_layout(width, lanes)),
        })


class WritePortSignature(wiring.Signature):
    """Engine side of a scratchpad write port: ``addr``, ``data`` and a per-lane ``en`` out."""

    def __init__(self, rows, width, lanes):
        super().__init__({
            "addr": Out(range(rows)),
            "en": Out(lanes),
            "data": Out(row_layout(width, lanes)),
        })
