"""``python -m firmware COMMAND``: the host-side entry point (``make demo`` runs ``ssl``).

Each command lives in its own module, which provides ``add_arguments(parser)`` and ``run(args)``
(returning the process exit status); add a command by adding it to :data:`COMMANDS`.
"""

import argparse
import sys

from firmware import demo, ssl

#: Command name → (module, one-line help).
COMMANDS = {
    "demo": (demo, "multiply random int16 matrices on the simulated systolic array, "
                   "check against the golden model"),
    "ssl": (ssl, "the semi-supervised pipeline (teacher-label, select, student-train, "
                 "finetune, evaluate) on the accelerator"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m firmware",
                                     description="Apprentice host firmware.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
