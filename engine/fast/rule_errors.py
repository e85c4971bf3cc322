"""A rule that raises inside the fast path, caught.

A rule runs inside a ``cfunc`` called by the compiled loop. Numba cannot pass an exception
up through it: it reports the exception as "unraisable" (``sys.unraisablehook``) and the
call returns 0. The compiled loop takes a tight loop's 0 (a bar before the one it started on)
as that signal and stops the combination, marking it (``state.RAISED``), so a raising rule
cannot send it back to bar 0 forever. :func:`watch` installs a hook that records each such
exception for the duration of a kernel call, and raises :class:`RuleRaised` once the call
returns, so a run stops instead of finishing on wrong signals. The caller names the strategy and finds the bar
(``engine.sweep``).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_seen: list[BaseException] = []
_previous = None
_ignoring = 0  # enclosing blocks that drop what they see


class RuleRaised(Exception):
    """A rule raised inside a kernel call; ``error`` is the first exception seen."""

    def __init__(self, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        #: the combination whose tight loop caught it and the bar that loop started on, when known
        self.combination: int | None = None
        self.bar: int | None = None


def _hook(args) -> None:
    if args.exc_value is not None and "numba" in repr(args.object):
        _seen.append(args.exc_value)
    elif _previous is not None:
        _previous(args)


@contextmanager
def watch(ignore: bool = False):
    """Record the exceptions rules raise in kernel calls made in this block; raise RuleRaised
    after it (``ignore``: drop them, as a compile check on made-up candles does)."""
    global _depth, _previous, _ignoring
    with _lock:
        if _depth == 0:
            _previous, sys.unraisablehook = sys.unraisablehook, _hook
            _seen.clear()
        _depth += 1
        _ignoring += ignore
        start = len(_seen)
    try:
        yield
    finally:
        with _lock:
            mine = _seen[start:]
            del _seen[start:]
            drop = _ignoring > 0
            _ignoring -= ignore
            _depth -= 1
            if _depth == 0:
                sys.unraisablehook, _previous = _previous, None
    if mine and not drop:
        raise RuleRaised(mine[0])
