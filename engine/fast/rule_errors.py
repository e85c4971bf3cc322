"""A rule that raises inside the fast path, caught.

A rule runs inside a ``cfunc`` called by the compiled loop. Numba cannot pass an exception
up through it: it reports the exception as "unraisable" (``sys.unraisablehook``) and the
call returns 0. The compiled loop takes a tight loop's 0 (a bar before the one it started on)
as that signal and stops the combination, marking it (``state.RAISED``), so a raising rule
cannot send it back to bar 0 forever. :func:`watch` installs a hook that records each such
exception for the duration of a kernel call, and raises :class:`RuleRaised` once the call
returns, so a run stops instead of finishing on wrong signals. The caller names the strategy and finds the bar
(``engine.sweep``).

Records are kept per thread: a report re-simulates its top combinations on several threads at once
(``engine.pipeline``), and an exception belongs to the block of the thread whose kernel call raised
it, so the error names that thread's combination. A parallel sweep's rule runs on numba's worker
threads, which open no block: what they raise goes to the one thread with an open block (to every
such thread's innermost block if several have one).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

_lock = threading.RLock()
_previous = None


class _Block:
    __slots__ = ("seen", "ignore")

    def __init__(self, ignore: bool):
        self.seen: list[BaseException] = []
        self.ignore = ignore


#: per thread (its ident): its open blocks, innermost last
_blocks: dict[int, list[_Block]] = {}


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
        with _lock:
            own = _blocks.get(threading.get_ident())
            for stack in [own] if own else [s for s in _blocks.values() if s]:
                stack[-1].seen.append(args.exc_value)
    elif _previous is not None:
        _previous(args)


@contextmanager
def watch(ignore: bool = False):
    """Record the exceptions rules raise in kernel calls made in this block (by this thread, or by
    numba's workers for it); raise RuleRaised after it (``ignore``: drop them, as a compile check on
    made-up candles does; so does any block of this thread enclosing one that ignores)."""
    global _previous
    me = threading.get_ident()
    block = _Block(ignore)
    with _lock:
        if not any(_blocks.values()):
            _previous, sys.unraisablehook = sys.unraisablehook, _hook
        stack = _blocks.setdefault(me, [])
        drop = ignore or any(b.ignore for b in stack)
        stack.append(block)
    try:
        yield
    finally:
        with _lock:
            stack.remove(block)  # by identity (_Block has no __eq__)
            if not stack:
                del _blocks[me]
            if not _blocks:
                sys.unraisablehook, _previous = _previous, None
    if block.seen and not drop:
        raise RuleRaised(block.seen[0])
