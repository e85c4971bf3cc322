"""Checks ``backtest run`` makes before any work, so a bad path fails in a second, not after the sweep."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from engine.errors import UserError


def check_output_root(path: Path) -> None:
    """The results folder exists or can be created, is a folder, and this user can write into it.

    Raises :class:`UserError` with one line that names the folder and the fix.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"results folder {path}: it is a file, not a folder; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A real write: os.access() answers for the real uid and ignores read-only mounts and ACLs.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise UserError(_unwritable(path, exc)) from None


def _unwritable(path: Path, exc: OSError) -> str:
    where = f"results folder {path}"
    if exc.errno == errno.EROFS:
        return f"{where} is on a read-only file system; mount it read-write (e.g. -v \"$PWD/results:/app/results\")"
    if exc.errno in (errno.EACCES, errno.EPERM):
        who = f"uid {os.getuid()}, gid {os.getgid()}"
        return (f"{where} is not writable by this user ({who}); give it write access, e.g. run the container "
                f"with --user \"$(id -u):$(id -g)\", or `chown {os.getuid()}` the host folder")
    if exc.errno == errno.ENOTDIR:
        return f"{where}: a parent of it is a file, not a folder; choose another --out"
    return f"{where} cannot be written: {exc.strerror or exc}"
