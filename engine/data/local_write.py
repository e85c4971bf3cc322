"""Local writes: files that appear whole, in a destination folder that exists.

A file is written as a temporary file made with ``O_EXCL`` under an unpredictable name in the
target's own folder (``engine.filenames.create_temp_beside``; 0666 less the umask, as any file),
written through its descriptor, fsynced, then renamed over the target.

No step opens a path an attacker could plant beforehand: a symlink at the target's name is
replaced by the rename, never followed, and the temporary name cannot be guessed. The
temporary names start with "." and end with ".tmp" (:func:`is_temp_file`), so readers skip
them and a writer holding the series lock clears those an interrupted writer left.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import UserError
from ..filenames import create_temp_beside


def is_temp_file(name: str) -> bool:
    """A writer's temporary file (``.<name>.<random>.tmp``): never data, litter once its writer is gone."""
    return name.startswith(".") and name.endswith(".tmp")


@contextmanager
def staged(target: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """A new temporary file beside ``target``: yields (binary file, its path). It is fsynced and closed
    when the block ends; the caller renames it (:func:`os.replace`). An exception removes it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp_beside(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh, tmp
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data``: readers see the old file or the new one, never part of it."""
    with staged(target) as (fh, tmp):
        fh.write(data)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_folder(path: Path, what: str) -> Path:
    """``path`` as an existing folder (created if missing); one UserError naming ``what`` otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot create the folder ({(exc.strerror or str(exc)).lower()})") from None
    if not path.is_dir():
        raise UserError(f"{what} {path}: is a file or device, not a folder")
    return path
