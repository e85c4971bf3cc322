"""Worker processes that never outlive their parent and leave Ctrl-C to it.

A forked pool worker whose parent is killed (SIGKILL, SIGTERM, the OOM killer) is
re-parented and keeps running: an orphan holding memory and, for a chart worker, a
file in a run folder. ``bind_to_parent`` is called first in every worker's
initializer: on Linux the kernel sends the worker SIGKILL when the process that
forked it ends (``prctl(PR_SET_PDEATHSIG)``), and a parent that died before the call
is caught by comparing the parent pid. (The signal follows the *thread* that forked
the worker: pools are created from the main thread.)

Ctrl-C reaches every process of the terminal's process group; a worker ignores it, so
only the parent reacts (one line, then it stops its pool) instead of every worker
printing a traceback. The parent counts each one (:func:`count_interrupts`): numpy and
pandas clear an exception raised inside some of their callbacks (a dtype comparison while
a CSV is written, ...), a KeyboardInterrupt included, so a Ctrl-C landing there would
otherwise be lost and the run go on to publish its folder (``engine.run_store`` checks).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
_interrupts = 0  # SIGINTs this process took (with count_interrupts)


def count_interrupts() -> None:
    """From now on, count each SIGINT, then raise KeyboardInterrupt as Python's own handler does
    (when that is the handler, in the main thread; otherwise nothing changes)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _count)


def _count(signum, frame) -> None:
    global _interrupts
    _interrupts += 1
    raise KeyboardInterrupt


def interrupts() -> int:
    """The SIGINTs counted so far, including any whose KeyboardInterrupt a library swallowed."""
    return _interrupts


def bind_to_parent(parent_pid: int) -> None:
    """In a forked pool worker: ignore SIGINT, and die with ``parent_pid``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)


def exit_with_parent(parent_pid: int) -> None:
    """In a forked child of ``parent_pid``: arrange to be killed when it dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the pid check below still applies
            pass
    if os.getppid() != parent_pid:
        os._exit(0)
