"""Every compile of the fast path announced as it starts: what compiles and why.

The units (``engine.fast.units``) announce their own compiles; any other numba function (the CSCV
passes of validation, a user's helper) is announced the moment numba starts compiling it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from numba.core import event

Listener = Callable[[str, str], None]
Finished = Callable[[str, float], None]
_listeners: list[tuple[Listener, Finished]] = []


@contextlib.contextmanager
def announce(started: Listener, finished: Finished = lambda what, s: None) -> Iterator[None]:
    """While inside, ``started(what, why)`` is called before anything compiles (``what``: e.g.
    "trend_rsi's rule (the rule, long entry scan)"; ``why``: e.g. "its rule changed") and
    ``finished(what, seconds)`` after: the units here, and any other numba function (the CSCV
    passes of validation, a user's helper) the moment numba starts compiling it."""
    _listeners.append((started, finished))
    if len(_listeners) == 1:
        event.register("numba:compile", _OTHERS)
    try:
        yield
    finally:
        _listeners.remove((started, finished))
        if not _listeners:
            event.unregister("numba:compile", _OTHERS)


_busy: list[str] = []  # the unit compiling now (numba's own events inside it are part of it)


@contextlib.contextmanager
def compiling(what: str, why: str) -> Iterator[None]:
    for started, _ in list(_listeners):
        started(what, why)
    t = time.perf_counter()
    _busy.append(what)
    try:
        yield
    finally:
        _busy.pop()
    for _, finished in list(_listeners):
        finished(what, time.perf_counter() - t)


class _OtherCompiles(event.Listener):
    """Announces a numba compile that no unit announced: the outermost function of each."""

    def __init__(self):
        self.depth, self.what, self.t = 0, None, 0.0

    def on_start(self, ev) -> None:
        self.depth += 1
        if self.depth == 1 and not _busy:
            py = getattr(ev.data.get("dispatcher"), "py_func", None)
            self.what = f"{getattr(py, '__module__', '?')}.{getattr(py, '__qualname__', '?')}"
            self.t = time.perf_counter()
            for started, _ in list(_listeners):
                started(self.what, "first run on this machine, or its code changed")

    def on_end(self, ev) -> None:
        self.depth -= 1
        if self.depth == 0 and self.what is not None:
            what, self.what = self.what, None
            for _, finished in list(_listeners):
                finished(what, time.perf_counter() - self.t)


_OTHERS = _OtherCompiles()
