"""Readers of a local series and the commit step of its writer exclude each other.

A reader holds a shared ``flock`` on the series folder (``<root>/symbol=S/interval=I/``)
while it lists and reads the partitions; a writer prepares every new partition file
first and then, holding the lock exclusively, only renames them into place. A reader
therefore sees the series as it was before an upsert or after it, never a mix, and
waits at most for a few renames. The lock is on the folder itself: nothing is created,
so it works on a read-only dataset. It is not the writers' series lock
(:mod:`engine.data.series_lock`), which writers hold for a whole command.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import DataError

READ_WAIT_S = 60.0      # a reader waits this long for a commit to finish
COMMIT_WAIT_S = 300.0   # a writer waits this long for the readers to finish


@contextmanager
def series_folder_lock(folder: Path, *, exclusive: bool, wait: float | None = None) -> Iterator[None]:
    """Hold the folder's lock, shared or exclusive, for the block; DataError after ``wait`` seconds."""
    wait = (COMMIT_WAIT_S if exclusive else READ_WAIT_S) if wait is None else wait
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise DataError(f"{folder}: cannot open the series folder ({exc.strerror or exc})") from None
    try:
        _take(fd, folder, exclusive, wait)
        yield
    finally:
        os.close(fd)  # releases the lock


def _take(fd: int, folder: Path, exclusive: bool, wait: float) -> None:
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    give_up = time.monotonic() + max(0.0, wait)
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, mode)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataError(f"{folder}: cannot lock the series folder ({exc.strerror or exc}); "
                                "the dataset's file system must support file locks") from None
        if time.monotonic() >= give_up:
            if exclusive:
                raise DataError(f"{folder}: readers kept the series busy for {wait:g} s; nothing was "
                                "replaced; try again")
            raise DataError(f"{folder}: a writer has been replacing this series' partitions for {wait:g} s; "
                            "try again when it has finished")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
