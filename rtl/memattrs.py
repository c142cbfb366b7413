"""Attributes that the RTL puts on its memories for synthesis.

:data:`COLLISION_FREE` marks an :class:`amaranth.lib.memory.Memory` whose design guarantees
that a read's word is never used when, in the cycle the read is issued, a write port writes the
same address (``attrs={COLLISION_FREE: 1}``). Amaranth's RTLIL backend always asks for the old
word on such a collision (``COLLISION_X_MASK = 0`` on every ``$memrd_v2``), and a block RAM with
separate read and write ports does not give it, so Yosys adds a bypass register and a multiplexer
after the block RAM's output to emulate it. :func:`rtl.build.mark_collision_free` rewrites the
RTLIL before Yosys reads it: every read port of a marked memory gets an all-ones collision mask
("the word is undefined on a collision"), and the emulation disappears. Simulation is unchanged:
the marked memory behaves as before wherever its word is used. ``docs/memory.md`` has the rule.
"""

__all__ = ["COLLISION_FREE"]

#: The attribute (an RTLIL identifier: no dots) on a memory whose reads never collide with a
#: write to the same address in a way that matters.
COLLISION_FREE = "apprentice_collision_free"
