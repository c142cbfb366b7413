"""``python -m firmware COMMAND``: the host-side entry point (``make demo`` runs ``ssl``).

Each command lives in its own module, which provides ``add_arguments(parser)`` and ``run(args)``
(returning the process exit status); add a command by adding it to :data:`COMMANDS`. A bad
argument is one line ``error: …`` on stderr and exit status 2 (:mod:`spec.cli`), and so is a
serial port that cannot be opened (:exc:`firmware.transport.SerialPortError`).
"""

import sys

from firmware import demo, ssl
from firmware.transport import SerialPortError
from spec.cli import ArgumentParser

#: Command name → (module, one-line help).
COMMANDS = {
    "demo": (demo, "multiply random int16 matrices on the simulated systolic array, "
                   "check against the golden model"),
    "ssl": (ssl, "the semi-supervised pipeline (teacher-label, select, student-train, "
                 "finetune, evaluate) on the accelerator"),
}


def main(argv=None):
    parser = ArgumentParser(prog="python -m firmware", description="Apprentice host firmware.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except SerialPortError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
