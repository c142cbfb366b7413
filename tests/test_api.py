"""Every public module has an ``__all__`` that names only what the module defines (so
``from M import *`` works): a stale entry is an ``AttributeError`` for a user, found here
instead. A package whose ``__init__`` defines nothing (only a docstring) needs none."""

import importlib
import pkgutil
from types import ModuleType

import pytest

PACKAGES = ("spec", "golden", "rtl", "sim", "firmware", "platforms", "benchmarks")


def _modules():
    names = []
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(pkg.__path__, f"{package}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_modules_found():
    # the walk itself works: the packages and their sub-packages are there
    assert {"sim.compiled.verilator", "golden.fixedpoint", "firmware.bringup"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        defined = [n for n, v in vars(module).items()
                   if not n.startswith("_") and not isinstance(v, ModuleType)]
        assert hasattr(module, "__path__") and not defined, \
            f"{name} has no __all__ (it defines {defined})"
        exported = []
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not define: {missing}"
