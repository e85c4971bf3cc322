"""``njit`` for the built-in steps and rules, deferring numba until something compiles.

``import numba`` costs about 0.35 s of CPU. The config layer reads the built-in indicators and
strategies (their parameters, inputs and bounds), so an ``@numba.njit`` at their import made every
``backtest`` start pay it, a refused config or a bad argument included. :func:`njit` keeps the
Python function (``py_func``, all the reference engine and the config checks read) and builds the
numba dispatcher on first use: a call, ``compile``, or numba typing it as a global of another
compiled function (the ``_numba_type_`` protocol). From then on it behaves as that dispatcher.

A user's own ``@numba.njit`` steps and rules are accepted as before; this is not part of the
protocol a user follows.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Callable


class LazyDispatcher:
    """A function to be compiled with numba ``njit(**options)`` when first needed."""

    def __init__(self, py_func: Callable, options: dict[str, Any]):
        self.py_func = py_func
        self._options = options
        self._dispatcher = None
        functools.update_wrapper(self, py_func)

    @property
    def dispatcher(self):
        """The numba dispatcher (numba imported, nothing compiled yet)."""
        if self._dispatcher is None:
            from numba import njit  # the deferred import this module exists for

            self._dispatcher = njit(**self._options)(self.py_func)
        return self._dispatcher

    @property
    def _numba_type_(self):  # numba types a global bound to this object as the dispatcher's type
        return self.dispatcher._numba_type_

    def compile(self, sig):
        return self.dispatcher.compile(sig)

    def __call__(self, *args, **kwargs):
        return self.dispatcher(*args, **kwargs)

    def __getattr__(self, name: str):  # overloads, signatures, ...: the dispatcher's
        if name.startswith("__") or name in ("_dispatcher", "_options", "py_func"):
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __reduce__(self):  # by reference, as numba pickles a module-level dispatcher
        return _lookup, (self.py_func.__module__, self.py_func.__qualname__)

    def __repr__(self) -> str:
        return f"<lazy njit {self.py_func.__module__}.{self.py_func.__qualname__}>"


def _lookup(module: str, qualname: str):
    return getattr(importlib.import_module(module), qualname)


def njit(*args, **options):
    """``@njit`` or ``@njit(**options)``, as numba's, compiled on first use."""
    if args and callable(args[0]) and not options:
        return LazyDispatcher(args[0], {})
    return lambda fn: LazyDispatcher(fn, options)
