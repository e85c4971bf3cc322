"""The names of the fast path's compiled units: each carries a hash of everything compiled into it.

A unit's name hashes its generated source, the kernel modules compiled into every unit, the numba
version, and the source of its rule or step and of every ``@njit`` function they call (found
through their globals and closures, recursively), with the plain constants they read (numba
freezes globals at compile time). Editing any of them names a new unit: a fresh compile, never a
stale cached one.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import types
from pathlib import Path

import numba

from ..indicators import Definition
from ..strategies import Strategy
from . import indicator_unit, rule_unit

_HERE = Path(__file__).resolve().parent
#: modules compiled into every unit (their text is part of every unit's name)
KERNEL_FILES = [_HERE / "loop.py", _HERE / "account.py", _HERE / "native.py", _HERE / "state.py",
                _HERE / "rule_unit.py", _HERE / "indicator_unit.py", _HERE.parent / "signals.py"]


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


_kernel_digest: str | None = None


def _kernel_text() -> str:
    global _kernel_digest
    if _kernel_digest is None:
        h = hashlib.sha256(numba.__version__.encode())
        for path in KERNEL_FILES:
            h.update(path.read_bytes())
        _kernel_digest = h.hexdigest()
    return _kernel_digest


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join([_kernel_text(), *parts]).encode()).hexdigest()[:16]


def safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def loop_name() -> str:
    return f"bt_loop_{_digest('loop')}"


def rule_unit_name(strategy: type[Strategy], source: str | None = None) -> str:
    """The rule unit's module name: the strategy's name and a hash of everything compiled into it."""
    source = rule_unit.source(strategy) if source is None else source
    return f"bt_rule_{safe(strategy.name)}_{_digest(source, *dependency_sources(strategy.binding().rule))}"


def indicator_unit_name(d: Definition, source: str | None = None) -> str:
    source = indicator_unit.source(d) if source is None else source
    return f"bt_ind_{safe(d.name)}_{_digest(source, *dependency_sources(d.step))}"
