"""Opening a candle file safely: its type is checked before it is opened, its size is bounded,
and every way a CSV (plain, .gz or .zip) can fail to read becomes one DataError naming the file.

**The size bound.** A few MB of gzip or zip can expand to gigabytes of text, and pandas would
hold all of it. So a candle file may not hold more than ``max_bytes`` of text once decompressed
(:data:`MAX_INPUT_BYTES` unless the caller gives another, ``data.max_input_bytes`` in a
config): the size is checked before any parsing from what the file says of itself (a plain
file's length, a zip member's declared size, which :mod:`zipfile` never reads past, a gzip's
ISIZE field), and again while it streams, since a gzip's ISIZE is only the size modulo 4 GiB
and a file can hold several gzip members.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import struct
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import pandas as pd

from ..errors import DataError, ResourceError
from .spec import MAX_INPUT_BYTES
_OPENERS = ((".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open))
_COMPRESSED = (".zip", ".parquet", *(ext for ext, _ in _OPENERS))

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
_CORRUPT = (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, lzma.LZMAError)
READ_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError, *_CORRUPT)


class InputTooLarge(ResourceError):
    """A candle file decompresses to more text than its bound."""


def too_large(path: str | Path, limit: int, size: int | None = None, compressed: bool = True) -> InputTooLarge:
    """The one line: how much the file holds (``size``; None: more than the limit), the limit, how to raise it."""
    verb = "decompresses to" if compressed else "holds"
    what = f"{size:,} bytes, above the limit of {limit:,}" if size is not None else f"more than the limit of {limit:,}"
    return InputTooLarge(f"{path}: {verb} {what} bytes per candle file; if it is meant to be this large, raise "
                         "data.max_input_bytes in the config (or --max-input-bytes on backtest data)")


def declared_size(path: Path) -> int | None:
    """The size the file declares once decompressed: a plain file's length, a zip's members' sizes, a gzip's
    ISIZE (modulo 4 GiB), a Parquet file's uncompressed row groups; None when it cannot be read (the read
    then reports why)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                return sum(i.file_size for i in z.infolist() if not i.is_dir())
        if path.name.lower().endswith(".gz"):
            with open(path, "rb") as fh:
                fh.seek(-4, os.SEEK_END)
                return struct.unpack("<I", fh.read(4))[0]
        return path.stat().st_size
    except Exception:  # noqa: BLE001 - unreadable here is reported, with its reason, by the read itself
        return None


def check_input_size(path: Path, max_bytes: int | None = None) -> None:
    """Refuse, before any parsing, a file that declares more text than ``max_bytes``."""
    limit = MAX_INPUT_BYTES if max_bytes is None else max_bytes
    size = declared_size(path)
    if size is not None and size > limit:
        raise too_large(path, limit, size, compressed=path.name.lower().endswith(_COMPRESSED))


class _Bounded(io.RawIOBase):
    """A binary stream that raises :class:`InputTooLarge` once more than ``limit`` bytes came through."""

    def __init__(self, raw: IO[bytes], limit: int, name: str):
        self.raw, self.limit, self.name, self.count = raw, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer) if hasattr(self.raw, "readinto") else self._read_into(buffer)
        self.count += n
        if self.count > self.limit:
            raise too_large(self.name, self.limit)
        return n

    def _read_into(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@contextmanager
def open_text(path: Path, max_bytes: int | None = None) -> Iterator[IO[bytes]]:
    """The file's text as a bounded binary stream: a .gz or .zip (one CSV inside) decompressed."""
    limit = MAX_INPUT_BYTES if max_bytes is None else max_bytes
    lower = path.name.lower()
    try:
        if lower.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                members = [i for i in z.infolist() if not i.is_dir()]
                if len(members) != 1:
                    raise DataError(f"{path}: not a readable CSV (a zip must hold one file; this one holds "
                                    f"{len(members)})")
                with z.open(members[0]) as raw:
                    yield io.BufferedReader(_Bounded(raw, limit, str(path)))
                return
        opener = next((o for ext, o in _OPENERS if lower.endswith(ext)), open)
        with opener(path, "rb") as raw:
            yield io.BufferedReader(_Bounded(raw, limit, str(path)))
    except READ_ERRORS as exc:
        raise describe_read_error(path, exc) from None


def describe_read_error(path: str | Path, exc: BaseException, what: str = "CSV") -> DataError:
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, pd.errors.EmptyDataError):
        return DataError(f"{path}: file is empty")
    if isinstance(exc, PermissionError):
        return DataError(f"{path}: permission denied")
    if isinstance(exc, _CORRUPT):
        return DataError(f"{path}: truncated or corrupt compressed file ({first})")
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"{path}: not a text {what} (bytes that are not UTF-8)")
    return DataError(f"{path}: not a readable {what} ({first})")


def read_csv(source: Any, name: str | None = None, *, max_bytes: int | None = None, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` on a checked file (plain, .gz or .zip) or an open binary stream called ``name``,
    reading at most ``max_bytes`` of text (:data:`MAX_INPUT_BYTES`); any failure is one DataError naming it."""
    if isinstance(source, (str, Path)):
        with open_text(Path(source), max_bytes) as stream:
            return _parse(stream, name or str(source), kwargs)
    limit = MAX_INPUT_BYTES if max_bytes is None else max_bytes
    return _parse(io.BufferedReader(_Bounded(source, limit, name or str(source))), name or str(source), kwargs)


def _parse(stream: IO[bytes], name: str, kwargs: dict) -> pd.DataFrame:
    try:
        return pd.read_csv(stream, **kwargs)
    except READ_ERRORS as exc:
        raise describe_read_error(name, exc) from None
