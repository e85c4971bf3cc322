"""Where runs are kept: the results folder, its lock, the partial folders and the atomic publish.

A run is written into a hidden partial folder beside its destination
(:class:`PartialRunFolder`): ``<root>/.partial-<pid>-<run_id>/``, renamed to
``<root>/<run_id>/`` only once every file is written, so a folder under its run id
is always complete. A run that fails or is interrupted (Ctrl-C) removes its partial
folder; one that is killed, or finds the disk full, leaves only the partial folder, and
:func:`clean_partial_folders` removes those whose writer has ended, and never one whose
writer is alive. The writer holds an exclusive ``flock``
on a lock file beside its folder, ``<root>/.partial-lock-<pid>-<run_id>``, taken
before the folder exists: the kernel releases it when the process ends, however it
ends, so "the lock can be taken" means "the writer is gone", even if its pid has
been reused.

What is rebuilt from every run (``index.html``) is written under :func:`results_lock`,
an exclusive lock on the results folder itself, so two runs finishing at once both
end up listed.

This module knows files and folders only: what a run folder holds is
``engine.report``'s business.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from .child_process import interrupts
from .errors import ResourceError
from .jsonio import write_json_atomic
from .run_id import check_run_id

#: written last into a run folder: its presence means the folder is complete
MANIFEST = "manifest.json"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

T = TypeVar("T")


@contextmanager
def results_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on the results folder ``root`` (held until the block ends)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


PARTIAL_PREFIX = ".partial-"
LOCK_PREFIX = ".partial-lock-"
_PARTIAL = re.compile(r"^\.partial-(\d+)-(.+)$")
_LOCK = re.compile(r"^\.partial-lock-(\d+)-(.+)$")


class PartialRunFolder:
    """A run folder being written, hidden until ``publish`` renames it into place."""

    def __init__(self, root: Path, base: str, run_id: str, lock_fd: int) -> None:
        self.root, self.base, self.run_id, self._lock_fd = root, base, run_id, lock_fd
        self.path = root / f"{PARTIAL_PREFIX}{os.getpid()}-{run_id}"
        self.lock_path = root / f"{LOCK_PREFIX}{os.getpid()}-{run_id}"

    @classmethod
    def create(cls, root: Path, base: str) -> "PartialRunFolder":
        """Lock, then create, a partial folder for run ``base`` (or ``base-2``… if that name is taken)."""
        check_run_id(base)
        root.mkdir(parents=True, exist_ok=True)
        run_id = _free_name(root, base)
        lock_path = root / f"{LOCK_PREFIX}{os.getpid()}-{run_id}"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:  # a filesystem without locks: its partial folders are never cleaned
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
            os.write(fd, f"{os.getpid()}\n".encode())
            folder = cls(root, base, run_id, fd)
            folder.path.mkdir()
        except BaseException:
            os.close(fd)
            lock_path.unlink(missing_ok=True)
            raise
        return folder

    def publish(self, manifest: dict | None = None) -> Path:
        """Rename the finished folder to ``<root>/<run_id>``; if another run took that name meanwhile, to the
        next free ``<base>-k``, correcting ``manifest.json`` (and ``manifest``) first. Returns the final path."""
        for _ in range(1000):
            try:
                os.rename(self.path, self.root / self.run_id)  # fails on an existing non-empty folder or a file
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    raise
                self._rename_run(_free_name(self.root, self.base, own={self.path.name, self.lock_path.name}),
                                 manifest)
                continue
            self.path = self.root / self.run_id
            self.release()
            return self.path
        raise ResourceError(f"{self.root}: no free run folder name for {self.base}")

    def _rename_run(self, name: str, manifest: dict | None) -> None:
        """Take the name ``name`` instead: the lock file and manifest follow (the partial folder keeps its name)."""
        self.run_id = name
        path = self.path / MANIFEST
        if path.exists():
            doc = json.loads(path.read_text())
            doc["run_id"] = name
            write_json_atomic(path, doc)
        if manifest is not None:
            manifest["run_id"] = name

    def release(self) -> None:
        """Give up the folder: unlock it (a failed run's folder is then left for ``clean_partial_folders``)."""
        if self._lock_fd is not None:
            if not self.path.name.startswith(PARTIAL_PREFIX):  # published: the lock file has no folder to guard
                self.lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None


def _free_name(root: Path, base: str, own: set[str] = frozenset()) -> str:
    """``base``, or the first ``base-k`` that neither a finished run nor another partial folder uses."""
    taken = set()
    try:
        entries = os.listdir(root)
    except OSError:  # not listable: the rename in ``publish`` still refuses a taken name
        entries = []
    for entry in entries:
        if entry in own:
            continue
        m = _PARTIAL.match(entry) or _LOCK.match(entry)
        taken.add(m.group(2) if m else entry)
    for k in range(1, 1000):
        name = base if k == 1 else f"{base}-{k}"
        if name not in taken:
            return name
    raise ResourceError(f"{root}: no free run folder name {base}, {base}-2 … {base}-999")


def store_run(root: Path, base: str, write: Callable[[Path, str], T], *,
              started: Callable[[Path], None] | None = None, abandon: Callable[[], None] | None = None) -> tuple[Path, T]:
    """Write a run through a partial folder and publish it: ``write(folder, run_id)`` fills the folder and
    returns what it wrote (with a ``manifest`` dict, corrected if the run id changes at publication).

    ``started(final_path)`` is told where the run will land; ``abandon()`` runs when writing fails, before the
    partial folder is removed (stop whatever may still write into it). A full disk becomes one ResourceError
    naming what is left behind (the partial folder, for the next run to remove). Returns the published folder
    and ``write``'s result.
    """
    partial, ctrl_c = None, interrupts()
    try:
        partial = PartialRunFolder.create(root, base)
        if started is not None:
            started(root / partial.run_id)
        written = write(partial.path, partial.run_id)
        if interrupts() != ctrl_c:  # a Ctrl-C whose KeyboardInterrupt a library swallowed (engine.child_process)
            raise KeyboardInterrupt
        return partial.publish(getattr(written, "manifest", None)), written
    except BaseException as exc:
        if abandon is not None:
            abandon()
        if partial is not None:
            if not is_disk_full(exc):  # a failed or interrupted run leaves nothing, hidden or not
                shutil.rmtree(partial.path, ignore_errors=True)
                partial.lock_path.unlink(missing_ok=True)
            partial.release()
        if is_disk_full(exc) and partial is not None:
            raise disk_full_error(partial, exc) from None
        if is_disk_full(exc):
            raise ResourceError(f"{root}: {getattr(exc, 'strerror', None) or exc}; free some space "
                                "and run again") from None
        raise


@dataclass(frozen=True)
class StaleFolder:
    path: Path
    pid: int


def clean_partial_folders(root: Path) -> list[StaleFolder]:
    """Remove the partial folders under ``root`` whose writer has ended; return what was removed.

    A folder whose lock is held, or whose lock file is missing while its pid is alive
    (a writer between creating its lock and its folder), is left alone.
    """
    try:
        entries = os.listdir(root)
    except OSError:  # missing, not a folder, or not listable: nothing this run can clean
        return []
    removed = []
    for entry in sorted(entries):
        m = _PARTIAL.match(entry)
        if m and (root / entry).is_dir() and not (root / entry).is_symlink():
            lock = root / f"{LOCK_PREFIX}{m.group(1)}-{m.group(2)}"
            held = _take_lock(lock)
            if held is None and (lock.exists() or _pid_alive(int(m.group(1)))):
                continue
            try:
                shutil.rmtree(root / entry, ignore_errors=True)
                if not (root / entry).exists():
                    removed.append(StaleFolder(root / entry, int(m.group(1))))
            finally:
                _drop_lock(lock, held)
        elif _LOCK.match(entry) and not (root / _LOCK.sub(r".partial-\1-\2", entry)).exists():
            held = _take_lock(root / entry)  # a lock left without its folder
            if held is not None:
                _drop_lock(root / entry, held)
    return removed


def _take_lock(path: Path) -> int | None:
    """An fd holding ``path``'s lock, or None if it is held by a live process (or does not exist)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _drop_lock(path: Path, fd: int | None) -> None:
    if fd is not None:
        path.unlink(missing_ok=True)
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_disk_full(exc: BaseException) -> bool:
    """An error that means the filesystem (or the file size limit) has no room for what is being written."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return True
    text = str(exc)
    return isinstance(exc, OSError) and ("No space left on device" in text or "File too large" in text)


def disk_full_error(partial: PartialRunFolder, exc: BaseException) -> ResourceError:
    reason = getattr(exc, "strerror", None) or "no space left on device"
    return ResourceError(f"{partial.root}: {reason.lower()} while writing run {partial.run_id}; its incomplete "
                         f"folder {partial.path.name} is left there and the next run removes it; free some space "
                         "and run again")
