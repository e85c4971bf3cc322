"""Worker processes that never outlive their parent.

A forked pool worker whose parent is killed (SIGKILL, SIGTERM, the OOM killer) is
re-parented and keeps running: an orphan holding memory and, for a chart worker, a
file in a run folder. ``exit_with_parent`` is called first in every worker's
initializer: on Linux the kernel sends the worker SIGKILL when the process that
forked it ends (``prctl(PR_SET_PDEATHSIG)``), and a parent that died before the call
is caught by comparing the parent pid. (The signal follows the *thread* that forked
the worker: pools are created from the main thread.)
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


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
