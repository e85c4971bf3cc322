"""Opening a candle file safely: its type is checked before it is opened, and every way a
CSV (plain, .gz or .zip) can fail to read becomes one DataError naming the file."""

from __future__ import annotations

import gzip
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular_file(path: str | Path) -> Path:
    """``path`` if it is a readable regular file; otherwise DataError.

    The type comes from ``stat`` (which never blocks), so a FIFO or a device is refused
    without being opened: opening a FIFO waits for a writer, and /dev/zero never ends.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file or folder") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise DataError(f"{path}: is {kind}, not a candle file")
    try:
        with open(p, "rb"):
            pass
    except PermissionError:
        raise DataError(f"{path}: permission denied (the file is not readable)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return p


#: What reading a damaged CSV, gzip or zip can raise from inside pandas.
READ_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, EOFError,
               zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, OSError)


def describe_read_error(path: str | Path, exc: BaseException, what: str = "CSV") -> DataError:
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, pd.errors.EmptyDataError):
        return DataError(f"{path}: file is empty")
    if isinstance(exc, PermissionError):
        return DataError(f"{path}: permission denied")
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile)):
        return DataError(f"{path}: truncated or corrupt compressed file ({first})")
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"{path}: not a text {what} (bytes that are not UTF-8)")
    return DataError(f"{path}: not a readable {what} ({first})")


def read_csv(source: Any, name: str | None = None, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` on a checked file (or an open binary stream called ``name``);
    any failure is one DataError naming it."""
    try:
        return pd.read_csv(source, **kwargs)
    except READ_ERRORS as exc:
        raise describe_read_error(name or source, exc) from None
