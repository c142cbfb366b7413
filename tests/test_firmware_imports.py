"""The host firmware stays light: importing it, its command line, and running on the golden and
board backends never import Amaranth, the RTL or the simulators (``rtl``, ``sim``); only the
backends that simulate the RTL (``pysim``, ``rtl-sim``) and ``python -m firmware demo`` do, when
they run. Each check runs in a fresh interpreter."""

import subprocess
import sys

import pytest

HEAVY = ("amaranth", "rtl", "sim")

CHECK = """
import sys
{code}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print(heavy)
sys.exit(1 if heavy else 0)
"""


def _heavy_modules(code):
    out = subprocess.run([sys.executable, "-c", CHECK.format(code=code, heavy=HEAVY)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("code", [
    "import firmware, firmware.ssl, firmware.pipeline, firmware.__main__",
    "import firmware.standalone, firmware.board, firmware.bringup, firmware.teacher_program",
    # the command line's help
    "from firmware.__main__ import main\ntry:\n    main(['ssl', '--help'])\nexcept SystemExit:\n"
    "    pass",
])
def test_imports_are_light(code):
    assert _heavy_modules(code) == "[]"


def test_golden_backend_is_light():
    code = """
import numpy as np
import torch
from firmware import Accelerator
acc = Accelerator("golden")
acc.matmul(np.ones((4, 4), dtype=np.int64), np.ones((4, 4), dtype=np.int64))
net = acc.mlp((8, 8, 10), batch=8, select=True)
X, y = torch.rand(16, 8), torch.arange(16) % 10
net.fit(X, y, steps=2)
net.label_select(X)
net.evaluate(X, y)
"""
    assert _heavy_modules(code) == "[]"


def test_board_backend_is_light():
    # the board backend made by name, as `--backend board` makes it (no board attached: the
    # failure to open the port is the end of the path)
    code = """
from firmware.accelerator import BACKENDS
try:
    BACKENDS["board"](None, port="/dev/null/no-such-port")
except Exception:
    pass
"""
    assert _heavy_modules(code) == "[]"


def test_golden_pipeline_is_light():
    # a whole (short) pipeline on the golden backend, board clock and report included
    code = """
from firmware.pipeline import DEFAULT_RECIPE, prepare_data, run_pipeline, format_table
res = run_pipeline(prepare_data(), recipe=DEFAULT_RECIPE.scaled(0.005), progress=False,
                   float_pipeline=False)
format_table(res)
"""
    assert _heavy_modules(code) == "[]"
