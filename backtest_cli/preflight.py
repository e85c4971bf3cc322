"""Checks on where a command will write, made before any long work starts.

Each failure is a ``UserError`` (one line, exit 2) that names the path, the problem
and the fix.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path

from engine.errors import ResourceError, UserError
from engine.grid_budget import human_bytes


def check_output_root(path: Path, label: str = "--out") -> Path:
    """``path`` exists (or is created) as a folder this process can write in; returns it. ``label`` names the
    argument in the messages."""
    path = Path(path)
    st = _stat(path, label)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        kind = "a file" if stat.S_ISREG(st.st_mode) else "a device or other special file"
        raise UserError(f"{label} {path}: is {kind}, not a folder; give {label} a folder (it is created if missing)")
    if st is None:
        for ancestor in path.parents:
            found = _stat(ancestor, label)
            if found is not None:
                if not stat.S_ISDIR(found.st_mode):
                    raise UserError(f"{label} {path}: {ancestor} is a file, not a folder; give {label} a path under a "
                                    "folder")
                break
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{label} {path}: cannot create the folder ({_reason(exc)}); give {label} a folder you can "
                            "write to") from None
    try:  # a real write: permissions, read-only mounts, ACLs and full inode tables all show here
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(not_writable(path, exc, label)) from None
    return path


def not_writable(path: Path, exc: OSError, label: str = "--out") -> str:
    """The one line for a results folder this process cannot write in. A permission problem names
    the uid and the usual fix for a container volume (whose host folder belongs to someone else)."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        uid, gid = os.getuid(), os.getgid()
        return (f"{label} {path}: not writable ({_reason(exc)}) by uid {uid}, gid {gid}; give {label} a folder this "
                f"user can write to (a container volume: run with --user \"$(id -u):$(id -g)\", or chown {uid} "
                "the host folder)")
    return f"{label} {path}: not writable ({_reason(exc)}); give {label} a folder you can write to"


def _stat(path: Path, label: str = "--out") -> os.stat_result | None:
    """``path``'s status, None if nothing is there; any other failure (a name too long, a loop) is the user's."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise UserError(f"{label} {path}: {_reason(exc)}; give {label} a folder you can write to") from None


def check_free_space(path: Path, needed: int) -> None:
    """Refuse when the filesystem holding ``path`` has less free space than ``needed`` bytes (a lower bound)."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return  # cannot tell: the write itself reports a full disk
    if free < needed:
        raise ResourceError(f"--out {path}: {human_bytes(free)} free, but the run folder needs at least "
                            f"{human_bytes(needed)}; free some space or give --out a folder on another disk")


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower() if exc.errno is not None else str(exc)


def cpu_clamp(requested: int, available: int) -> tuple[int, str | None]:
    """``requested`` workers capped at ``available`` CPUs, with the notice to print when capped."""
    if requested <= available:
        return requested, None
    return available, (f"{requested} workers requested but only {available} CPU(s) are available; "
                       f"using {available}")

