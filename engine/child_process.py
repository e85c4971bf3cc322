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
printing a traceback.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


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
