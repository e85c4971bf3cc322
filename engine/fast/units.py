"""Compiled units of the fast path: generated once, named after everything compiled into them
(``engine.fast.unit_names``), compiled on first use, cached on disk, announced while they compile
(``engine.fast.announce``).

Three kinds of unit (the README's "The fast path" says why):

* the loop (``engine.fast.loop``): one per machine, for every strategy;
* a rule unit per strategy (``engine.fast.rule_unit``): its rule on one bar and its tight loops;
* an indicator unit per definition (``engine.fast.indicator_unit``): its step in a chunk loop.

Each is a real module file whose name carries a hash of everything compiled into it, so an edit
produces a new file and therefore a fresh compilation, never a stale cached one.

A unit's functions compile when a sweep first needs them (a long-only sweep never compiles the
short side), under a file lock, so two processes that need the same function compile it once.
Before it compiles, the listeners installed with ``engine.fast.announce.announce`` hear what
compiles and why.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import re
import sys
import tempfile
import types
from pathlib import Path
from typing import Callable, Iterator

import numba
import numpy as np
from numba.core.ccallback import CFunc
from numba.core.sigutils import normalize_signature

from ..indicators import Definition
from ..strategies import Strategy
from . import indicator_unit, native, rule_unit
from ..filenames import create_temp_beside
from .announce import compiling
from .unit_names import indicator_unit_name, loop_name, rule_unit_name, safe

_HERE = Path(__file__).resolve().parent
CFUNC_OPTIONS = {"error_model": "numpy", "nogil": True, "_nrt": False}

_modules: dict[str, types.ModuleType] = {}
_cfuncs: dict[tuple[str, str], CFunc] = {}
_compiled_loop: set[tuple] = set()


# --- files ------------------------------------------------------------------------------------


def kernel_dir() -> Path:
    """Generated units live beside numba's cache (NUMBA_CACHE_DIR when set), else in ~/.cache.

    When that folder cannot be written (a foreign uid, a read-only home), a temp folder private
    to this uid: generated code is imported, so a folder another user controls is never used.
    """

    def writable(path: Path, mode: int = 0o777) -> bool:
        try:
            path.mkdir(mode=mode, parents=True, exist_ok=True)
            probe = path / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
            return True
        except OSError:
            return False

    home = Path(os.path.expanduser("~"))  # stays "~" when the uid has no home
    base = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else home / ".cache" / "backtest-engine"
    shared = base / "kernels"
    if shared.is_absolute() and writable(shared):
        return shared
    private = Path(tempfile.gettempdir()) / f"backtest-engine-kernels-{os.getuid()}"
    if writable(private, 0o700) and private.stat().st_uid == os.getuid():
        return private
    raise OSError(f"no writable folder for generated kernels: {shared} nor {private}")


#: versions of one unit kept: an edit loop writes a new one per edit; the oldest go
KEEP_VERSIONS = 8


def _module(name: str, source: str) -> types.ModuleType:
    """Import the generated module ``name`` (writing it first if missing)."""
    module = _modules.get(name)
    if module is not None:
        return module
    path = kernel_dir() / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = create_temp_beside(path)  # an unguessable name, O_EXCL | O_NOFOLLOW: never a planted link
        try:
            with os.fdopen(fd, "w") as f:
                f.write(source)
            os.replace(tmp, path)  # atomic: concurrent processes never import a half-written file
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _prune(name)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _modules[name] = module
    return module


def _prune(name: str) -> None:
    """Remove the oldest versions of unit ``name`` (same prefix, another hash) beyond KEEP_VERSIONS,
    with their compiled code. A process still running one has it in memory already."""
    versions = sorted((p for p in _versions(name.rsplit("_", 1)[0] + "_") if p.stem != name),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    for old in versions[KEEP_VERSIONS - 1:]:
        for f in [old, old.with_suffix(".lock"), *_cache_files(old.stem)]:
            with contextlib.suppress(OSError):
                f.unlink()


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """One process at a time compiles a unit; the others then load what it cached."""
    with open(kernel_dir() / f"{name}.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _versions(prefix: str) -> list[Path]:
    """The generated versions of one unit (``prefix`` and a 16-digit hash)."""
    pattern = re.compile(re.escape(prefix) + "[0-9a-f]{16}")
    return [p for p in kernel_dir().glob(f"{prefix}*.py") if pattern.fullmatch(p.stem)]


def _others(prefix: str, name: str) -> bool:
    """Another version of this unit was generated before (so this one is an edit)."""
    return any(p.stem != name for p in _versions(prefix))


# --- cfuncs -----------------------------------------------------------------------------------


def _in_cache(cache, sig, target_context) -> bool:
    """Whether numba's disk cache holds ``sig`` (the lookup its load does, without loading)."""
    try:
        target_context.refresh()
        key = cache._index_key(sig, target_context.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - an unreadable index is simply a miss
        return False


def _cfuncs_of(module: types.ModuleType, wanted: dict[str, object], what: str, why: Callable[[], str]) -> dict:
    """Addresses of ``module``'s functions ``wanted`` (name -> C signature), compiled when missing."""
    if all((module.__name__, fn) in _cfuncs for fn in wanted):
        return {fn: _cfuncs[module.__name__, fn].address for fn in wanted}
    todo = {}
    for fn, sig in wanted.items():
        if (module.__name__, fn) not in _cfuncs:
            cf = CFunc(getattr(module, fn), normalize_signature(sig), locals={}, options=dict(CFUNC_OPTIONS))
            cf.enable_caching()
            todo[fn] = cf
    if todo:
        missing = [fn for fn, cf in todo.items()
                   if not _in_cache(cf._cache, cf._sig, cf._targetdescr.target_context)]
        # nothing to compile: load without the lock (an image's read-only cache has no lock files)
        scope = contextlib.ExitStack()
        if missing:
            scope.enter_context(compiling(f"{what} ({', '.join(_LABELS.get(f, f) for f in missing)})", why()))
            scope.enter_context(_lock(module.__name__))
        with scope:
            for fn, cf in todo.items():
                cf.compile()  # loads what another process compiled while this one waited for the lock
                _cfuncs[module.__name__, fn] = cf
    return {fn: _cfuncs[module.__name__, fn].address for fn in wanted}


_LABELS = {"bar": "rule", "scan_long": "long scan", "scan_short": "short scan", "scan_both": "two-sided scan",
           "chunk1": "one at a time", "chunk4": "four at a time"}
for _side in ("long", "short"):
    for _both, _b in (("", ""), ("_both", "two-sided ")):
        for _perp, _p in (("", ""), ("_perp", "perp ")):
            _LABELS[f"hold_{_side}{_both}{_perp}"] = f"{_b}{_p}{_side} hold"
            _LABELS[f"hold_{_side}{_both}{_perp}_m"] = f"{_b}{_p}{_side} hold with moment sums"

_unit_modules: dict[object, types.ModuleType] = {}


def _rule_module(strategy: type[Strategy]) -> types.ModuleType:
    key = (strategy, strategy.binding().rule)
    module = _unit_modules.get(key)
    if module is None:
        source = rule_unit.source(strategy)
        module = _unit_modules[key] = _module(rule_unit_name(strategy, source), source)
    return module


def _indicator_module(d: Definition) -> types.ModuleType:
    module = _unit_modules.get(d)
    if module is None:
        source = indicator_unit.source(d)
        module = _unit_modules[d] = _module(indicator_unit_name(d, source), source)
    return module


def rule_functions(strategy: type[Strategy], names: list[str]) -> dict[str, int]:
    """Addresses of the rule unit's functions ``names`` (``bar``, ``scan_long``, ...) for ``strategy``."""
    module = _rule_module(strategy)
    name = module.__name__
    prefix = f"bt_rule_{safe(strategy.name)}_"
    sigs = {n: (native.BAR_SIG if n == "bar" else native.SCAN_SIG if n.startswith("scan") else native.HOLD_SIG)
            for n in names}

    def why() -> str:
        return "its rule changed" if _others(prefix, name) and not _seen_before(name) else \
            "first use on this machine" if not _seen_before(name) else "first use of this variant"
    return _cfuncs_of(module, sigs, f"{strategy.name}'s rule", why)


def indicator_functions(d: Definition, names: list[str]) -> dict[str, int]:
    """Addresses of the indicator unit's chunk functions ``names`` (``chunk1``, ``chunk4``) for ``d``."""
    module = _indicator_module(d)
    name = module.__name__
    prefix = f"bt_ind_{safe(d.name)}_"

    def why() -> str:
        return "its step changed" if _others(prefix, name) and not _seen_before(name) else \
            "first use on this machine" if not _seen_before(name) else "first use of this variant"
    return _cfuncs_of(module, {n: native.CHUNK_SIG for n in names}, f"indicator {d.name}", why)


def _seen_before(name: str) -> bool:
    """Some function of unit ``name`` was compiled here before (its numba cache has an index)."""
    return any((p.name.startswith(f"{name}.") and p.suffix == ".nbi") for p in _cache_files(name))


def _cache_files(name: str) -> list[Path]:
    from numba.core.caching import _CacheLocator

    folder = Path(_CacheLocator.get_suitable_cache_subpath(str(kernel_dir() / f"{name}.py")))
    roots = [Path(numba.config.CACHE_DIR) / folder] if numba.config.CACHE_DIR else []
    roots.append(kernel_dir() / "__pycache__")
    out = []
    for root in roots:
        if root.is_dir():
            out += [p for p in root.iterdir() if p.name.startswith(f"{name}.")]
    return out


# --- the loop ---------------------------------------------------------------------------------


def loop() -> types.ModuleType:
    """The compiled loop's module (generated from ``engine/fast/loop.py``)."""
    return _module(loop_name(), (_HERE / "loop.py").read_text())


def _kind(a) -> object:
    """What numba's type of ``a`` depends on, cheaply (a cache key, not a type)."""
    if isinstance(a, np.ndarray):
        f = a.flags
        return a.dtype.char, a.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned
    return type(a)


def compiled_loop(fn_name: str, *args):
    """The loop's ``fn_name`` (``sweep_block`` or ``run_detail``) compiled for the types of ``args``
    (announced, and under the lock, when numba's cache does not hold it). Called with those
    ``args`` when ``fn_name`` is ``run_detail``; otherwise returned for the caller to call."""
    module = loop()
    disp = getattr(module, fn_name)
    key = (module.__name__, fn_name, tuple(_kind(a) for a in args))
    if key not in _compiled_loop:
        sig = tuple(map(numba.typeof, args))
        if sig not in disp.overloads:
            scope = contextlib.ExitStack()
            if not _in_cache(disp._cache, sig, disp.targetctx):
                scope.enter_context(compiling(
                    "the fast path's loop" + {"run_detail": " for single runs",
                                              "run_indicators": " for indicator values"}.get(fn_name, ""),
                    "first run on this machine, or the engine changed"))
                scope.enter_context(_lock(module.__name__))
            with scope:
                disp.compile(sig)
        _compiled_loop.add(key)
    if fn_name != "sweep_block":
        return disp(*args)
    return disp
