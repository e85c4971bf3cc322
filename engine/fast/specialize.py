"""Per-strategy, per-feature copies of the kernel template, so numba can inline and disk-cache them.

``kernel.py`` is a template with three marked regions (see its docstring). A copy
binds the strategy's rule, sets the feature flags a sweep needs as compile-time
constants, and generates the code that feeds the rule its arguments by name.
A template without its markers is an error, never a kernel running the
placeholder rule.

The copy is a real file whose name carries a hash of its source, of the source
of the rule and of every ``@njit`` function the rule calls (found through its
globals and closure, recursively), of the plain constants they read (numba
freezes globals at compile time), and of the numba version: editing any of them
produces a new file and therefore a fresh compilation, never a stale cached kernel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
import types
from pathlib import Path
from typing import NamedTuple

import numba

from ..strategies import Strategy

_TEMPLATE = Path(__file__).with_name("kernel.py")
RULE_MARKER = "from engine.fast._placeholder_signal import signal_fn as _rule  # SPECIALISE: rule"
FEATURES_MARKER = ("SHORT, TAKE_PROFIT, TRAILING, MAX_BARS, BEST_TRACKED, MOMENTS, WINDOW_END = "
                   "True, True, True, True, True, True, True  # SPECIALISE: features")
BINDING_START = "# SPECIALISE: binding {"
BINDING_END = "# } SPECIALISE: binding"
_loaded: dict[tuple, types.ModuleType] = {}

_PRICE_EXPR = {"open": "o[t]", "high": "h[t]", "low": "lo[t]", "close": "c[t]", "volume": "v[t]"}
_POSITION_EXPR = {"position": "position", "entry_price": "entry_price", "bars_held": "bars_held",
                  "best_price": "best_price",
                  "unrealised_return": "(position * (c[t] - entry_price) / entry_price)"}


class Features(NamedTuple):
    """What a sweep uses; a feature that is off is compiled out."""

    short: bool = False
    take_profit: bool = False
    trailing: bool = False
    max_bars: bool = False
    best_price: bool = False  # the trailing stop or the rule reads the best price since the entry
    moments: bool = False  # accumulate Σr³ and Σr⁴ (validation: the deflated Sharpe)
    window_end: bool = False  # bar n-1 ends a test window (docs/semantics.md, "Windows")


ALL_FEATURES = Features(True, True, True, True, True)


class ParamSlot(NamedTuple):
    name: str
    array: str  # "f": float parameters, "i": integer and boolean ones
    column: int
    boolean: bool


def param_layout(strategy: type[Strategy]) -> list[ParamSlot]:
    """Where each parameter the rule reads sits in the runner's float or integer parameter array."""
    specs = strategy.param_specs()
    slots, nf, ni = [], 0, 0
    for name in strategy.binding().params:
        ptype = specs[name][0]
        if ptype is float:
            slots.append(ParamSlot(name, "f", nf, False))
            nf += 1
        else:
            slots.append(ParamSlot(name, "i", ni, ptype is bool))
            ni += 1
    return slots


def _tuple(items: list[str]) -> str:
    return "(" + "".join(f"{x}, " for x in items) + ")"


def binding_source(strategy: type[Strategy]) -> str:
    """The generated ``_views``, ``_params`` and ``_signal`` for ``strategy``'s rule."""
    b = strategy.binding()
    layout = {s.name: s for s in param_layout(strategy)}
    params = [f"{'fp' if s.array == 'f' else 'ip'}[j, {s.column}]" + (" != 0" if s.boolean else "")
              for s in layout.values()]
    args = []
    for source, name in b.arguments:
        if source == "price":
            args.append(_PRICE_EXPR[name])
        elif source == "indicator":
            args.append(f"V[{b.indicators.index(name)}][t - t0]")
        elif source == "param":
            args.append(f"P[{b.params.index(name)}]")
        else:
            args.append(_POSITION_EXPR[name])
    deco = '@njit(cache=True, nogil=True, error_model="numpy", inline="always")'
    return "\n".join([
        BINDING_START + "  (generated)",
        deco,
        "def _views(ind, slots, j):",
        f"    return {_tuple([f'ind[slots[j, {k}]]' for k in range(len(b.indicators))])}",
        "", "",
        deco,
        "def _params(fp, ip, j):",
        f"    return {_tuple(params)}",
        "", "",
        deco,
        "def _signal(t, t0, o, h, lo, c, v, V, P, position, entry_price, bars_held, best_price):",
        f"    return signal_fn({', '.join(args)})",
        BINDING_END,
    ])


def specialised_source(strategy: type[Strategy], features: Features, template: str | None = None) -> str:
    """The kernel copy's source. Raises RuntimeError if the template lost one of its markers."""
    template = _TEMPLATE.read_text() if template is None else template
    for marker in (RULE_MARKER, FEATURES_MARKER, BINDING_START, BINDING_END):
        if template.count(marker) != 1:
            raise RuntimeError(f"kernel template {_TEMPLATE}: marker {marker!r} is missing or repeated; "
                               "refusing to build a kernel that could run the placeholder rule")
    py = strategy.binding().rule.py_func
    source = template.replace(RULE_MARKER, f"from {py.__module__} import {py.__qualname__} as _rule  # specialised")
    flags = ", ".join(str(bool(f)) for f in features)
    source = source.replace(FEATURES_MARKER,
                            f"SHORT, TAKE_PROFIT, TRAILING, MAX_BARS, BEST_TRACKED, MOMENTS, WINDOW_END = {flags}"
                            "  # specialised")
    start, end = source.index(BINDING_START), source.index(BINDING_END) + len(BINDING_END)
    source = source[:start] + binding_source(strategy) + source[end:]
    if "_placeholder_signal" in source:
        raise RuntimeError("generated kernel still imports the placeholder rule")
    return source


def _is_constant(x) -> bool:
    if isinstance(x, (bool, int, float, complex, str, bytes, type(None))):
        return True
    return isinstance(x, tuple) and all(_is_constant(y) for y in x)


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def dependency_sources(fn) -> list[str]:
    """The source of ``fn`` (a Python function or an @njit dispatcher) and of every @njit
    function it reaches through its globals or closure, recursively, with the plain
    constants they read. Deterministic order."""
    out: list[str] = []
    seen: set[int] = set()

    def visit(f) -> None:
        f = getattr(f, "py_func", f)
        if not isinstance(f, types.FunctionType) or id(f) in seen:
            return
        seen.add(id(f))
        try:
            out.append(f"{f.__module__}.{f.__qualname__}\n{inspect.getsource(f)}")
        except (OSError, TypeError):
            out.append(f"{f.__module__}.{f.__qualname__}\n{f.__code__.co_code.hex()}")
        names = _names(f.__code__)
        scope = dict(f.__globals__)
        if f.__closure__:
            for name, cell in zip(f.__code__.co_freevars, f.__closure__):
                try:
                    scope[name] = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
        for name in sorted(names):
            if name not in scope:
                continue
            obj = scope[name]
            if isinstance(obj, types.ModuleType):  # mod.helper: follow the attributes the code names
                for attr in sorted(names):
                    member = getattr(obj, attr, None)
                    if hasattr(member, "py_func"):
                        visit(member)
            elif hasattr(obj, "py_func"):
                visit(obj)
            elif _is_constant(obj):
                out.append(f"{f.__module__}.{name} = {obj!r}")

    visit(fn)
    return out


def kernel_dir() -> Path:
    """Generated kernels live beside numba's cache (NUMBA_CACHE_DIR when set), else in ~/.cache.

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


def kernel_name(strategy: type[Strategy], features: Features, source: str | None = None) -> str:
    """The generated module's name: the strategy's name and a hash of everything compiled into it."""
    source = specialised_source(strategy, features) if source is None else source
    rule = strategy.binding().rule
    digest = hashlib.sha256("\0".join([source, *dependency_sources(rule), numba.__version__]).encode())
    return f"bt_kernel_{re.sub(r'[^0-9A-Za-z_]', '_', strategy.name)}_{digest.hexdigest()[:16]}"


def kernel_for(strategy: type[Strategy], features: Features = ALL_FEATURES) -> types.ModuleType:
    """The specialised kernel module for ``strategy`` with ``features`` (generated once, then imported)."""
    key = (strategy, strategy.binding().rule, features)
    if key in _loaded:
        return _loaded[key]
    source = specialised_source(strategy, features)
    name = kernel_name(strategy, features, source)
    path = kernel_dir() / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: concurrent workers never import a half-written file
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[key] = module
    return module
