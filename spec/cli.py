"""How the project's command lines refuse bad arguments: one line ``error: …`` on stderr, exit
status 2, before any work.

:class:`ArgumentParser` is :class:`argparse.ArgumentParser` whose errors are that one line (no
usage block; ``--help`` shows the usage); the parsers of its sub-commands are too. The ``type=``
functions below check a value while argparse parses it and raise
:exc:`argparse.ArgumentTypeError`, which argparse reports as
``error: argument --steps: must be a positive integer, not '0'``::

    from spec.cli import ArgumentParser, positive_int
    ap = ArgumentParser(prog="python -m benchmarks.firmware")
    ap.add_argument("--steps", type=positive_int, default=200)

Every command's document lists what it refuses in its "Errors" section.
"""

import argparse
import math
from pathlib import Path

from . import isa

__all__ = ["ArgumentParser", "positive_int", "non_negative_int", "int_range", "seed_int",
           "positive_float", "non_negative_float", "positive_int_list", "name_list",
           "existing_file", "SEED_MAX"]

#: The largest seed the command lines accept: the ``SEED`` instruction's field, 32 bits, seeds the
#: device's stochastic rounding (numpy's and PyTorch's generators and nextpnr take 32-bit seeds).
SEED_MAX = isa.LAYOUTS[isa.Op.SEED][0].max


class ArgumentParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` that reports a bad argument as one line
    ``error: <message>`` on stderr and exits with status 2."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None


def _float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def positive_int(text):
    """An integer ≥ 1 (a count)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def non_negative_int(text):
    """An integer ≥ 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}")
    return value


def int_range(low, high=None):
    """A ``type=`` for an integer in ``low..high`` (both included; ``high=None``: no limit)."""
    def parse(text):
        value = _int(text)
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"must be an integer of at least {low}, "
                                             f"not {text!r}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in {low}..{high}, not {text!r}")
        return value
    return parse


#: A seed: an integer in ``0..SEED_MAX``.
seed_int = int_range(0, SEED_MAX)


def positive_float(text):
    """A finite number > 0."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def non_negative_float(text):
    """A finite number ≥ 0."""
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, not {text!r}")
    return value


def positive_int_list(text):
    """Comma-separated positive integers (``"1,16,256"``) as a tuple."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, "
                                         f"not {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"must be positive integers, not {text!r}")
    return values


def name_list(choices, what="name"):
    """A ``type=`` for comma-separated names, each one of ``choices``, as a tuple (empty names
    are dropped; at least one is needed); ``what`` a name is, for the message."""
    choices = tuple(choices)

    def parse(text):
        names = tuple(name for name in text.split(",") if name)
        for name in names:
            if name not in choices:
                raise argparse.ArgumentTypeError(f"unknown {what} {name!r}; choose from "
                                                 f"{', '.join(choices)}")
        if not names:
            raise argparse.ArgumentTypeError(f"must name at least one {what} of "
                                             f"{', '.join(choices)}")
        return names
    return parse


def existing_file(text):
    """The path of a file that exists, as a :class:`~pathlib.Path`."""
    path = Path(text)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise argparse.ArgumentTypeError(f"file {text!r} {what}")
    return path
