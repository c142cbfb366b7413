"""A small assembler for Apprentice programs: instructions by name, labels, branch targets.

Example::

    p = Assembler(base=0)
    p.seti(rd=1, imm=10)
    p.label("loop")
    p.addi(rd=1, rs=1, imm=-1)
    p.br(cond=Cond.NE, rs1=1, rs2=0, target="loop")
    p.halt()
    words = p.words()          # 16-bit words to store at `base`
"""

from types import MappingProxyType

from spec import isa
from spec.isa import Op

__all__ = ["Assembler"]


class Assembler:
    """Builds a program; branch ``target`` may name a label (resolved by :meth:`assemble`).

    Parameters
    ----------
    base : int
        Word address the program will be stored at (a multiple of 8).
    """

    def __init__(self, base=0):
        if not isinstance(base, int) or base < 0 or base % isa.INSN_WORDS:
            raise ValueError(f"Program base must be a non-negative multiple of "
                             f"{isa.INSN_WORDS}, not {base!r}")
        self.base = base
        self._insns = []          # (op, fields)
        self._labels = {}

    @property
    def labels(self):
        """The labels defined so far: name → word address (read-only)."""
        return MappingProxyType(self._labels)

    def __len__(self):
        return len(self._insns)

    @property
    def here(self):
        """Word address of the next instruction."""
        return self.base + isa.INSN_WORDS * len(self._insns)

    def label(self, name):
        if name in self._labels:
            raise ValueError(f"Label {name!r} is defined twice")
        self._labels[name] = self.here
        return self.here

    def emit(self, op, **fields):
        op = Op(op)
        # encode now (with a placeholder target) so that field errors point at the caller
        probe = dict(fields)
        if isinstance(probe.get("target"), str):
            probe["target"] = 0
        isa.encode(op, **probe)
        self._insns.append((op, fields))
        return self

    def __getattr__(self, name):
        try:
            op = Op[name.upper()]
        except KeyError:
            raise AttributeError(name) from None
        return lambda **fields: self.emit(op, **fields)

    @property
    def instructions(self):
        """The instructions so far, ``(op, fields)`` in program order (a copy)."""
        return [(op, dict(fields)) for op, fields in self._insns]

    def rebased(self, base):
        """A copy of this program to be stored at word address ``base``: the same instructions,
        its labels moved with it (a branch to a label follows; a numeric target stays).

        Raises
        ------
        ValueError
            If ``base`` is not a non-negative multiple of ``INSN_WORDS``.
        """
        other = Assembler(base)
        for op, fields in self._insns:
            other.emit(op, **fields)
        other._labels = {name: addr - self.base + base for name, addr in self._labels.items()}
        return other

    def assemble(self):
        """The program as a list of 128-bit instruction words."""
        out = []
        for op, fields in self._insns:
            fields = dict(fields)
            if isinstance(fields.get("target"), str):
                name = fields["target"]
                if name not in self._labels:
                    raise ValueError(f"Undefined label {name!r}")
                fields["target"] = self._labels[name]
            out.append(isa.encode(op, **fields))
        return out

    def words(self):
        """The program as 16-bit memory words (8 per instruction)."""
        return [w for insn in self.assemble() for w in isa.to_words(insn)]
