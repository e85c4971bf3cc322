"""The candle dataset: Snappy Parquet, hive-partitioned by symbol/interval/year/month.

A dataset root is a local folder or ``s3://bucket/candles/``. Each month partition
(:func:`engine.storage_layout.month_partition`) holds one file, ``part-0.parquet``
locally; on S3 awswrangler names the file and ``overwrite_partitions`` replaces it.
The partition values live only in the folder names, never as columns in the files,
so pyarrow's hive discovery reads the root without conflicts.

awswrangler/boto3 are imported inside the S3 functions only: the ingest Lambda and
the local CLI must not pay for them.
"""

from __future__ import annotations

import os
import re
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..candles import CANDLE_COLUMNS, time_filter
from ..errors import DataError
from ..storage_layout import (PARTITION_COLUMNS, is_s3_uri, local_outages_path, month_partition,
                              series_prefix)
from ..timeutil import MAX_TIME_MS, MIN_TIME_MS, format_time, to_milliseconds
from ..candle_checks import validate_frame
from .binance import INT_FIELDS, KEPT_FIELDS

PART_FILE = "part-0.parquet"
#: Extra Binance kline fields kept when known (null otherwise).
EXTRA_COLUMNS = KEPT_FIELDS[len(CANDLE_COLUMNS):]
STORED_COLUMNS = KEPT_FIELDS
assert STORED_COLUMNS[:len(CANDLE_COLUMNS)] == CANDLE_COLUMNS
_INT_EXTRAS = tuple(c for c in EXTRA_COLUMNS if c in INT_FIELDS)
_YEAR_RE, _MONTH_RE = re.compile(r"^\d{4}$"), re.compile(r"^\d{2}$")
SCHEMA = pa.schema([
    pa.field("open_time", pa.int64(), nullable=False),
    *(pa.field(c, pa.float64(), nullable=False) for c in CANDLE_COLUMNS[1:]),
    pa.field("close_time", pa.int64()),
    pa.field("quote_volume", pa.float64()),
    pa.field("trades", pa.int64()),
    pa.field("taker_buy_base_volume", pa.float64()),
    pa.field("taker_buy_quote_volume", pa.float64()),
])


@dataclass(frozen=True)
class UpsertResult:
    added: int
    partitions: list[str] = field(default_factory=list)  # relative month folders written, oldest first


# --------------------------------------------------------------------------- frames

def normalise_frame(frame: pd.DataFrame, source: str = "candles") -> pd.DataFrame:
    """Canonical stored columns and dtypes; times in ms; unknown extras become null."""
    missing = [c for c in CANDLE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}")
    n = len(frame)
    cols: dict[str, Any] = {}
    for c in STORED_COLUMNS:
        if c not in frame.columns:
            cols[c] = (pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool)) if c in _INT_EXTRAS
                       else np.full(n, np.nan))
            continue
        try:
            v = pd.to_numeric(frame[c], errors="raise")
        except (ValueError, TypeError) as exc:
            raise DataError(f"{source}: column {c}: {exc}") from None
        if c == "open_time":
            if v.isna().any():
                raise DataError(f"{source}: open_time is missing in some rows")
            cols[c] = to_milliseconds(_int64(v, source, c), f"{source}: open_time")
        elif c in _INT_EXTRAS:
            v = v.astype("Int64")
            known = v.notna().to_numpy()
            ints = v.to_numpy(dtype=np.int64, na_value=0)
            if c == "close_time" and known.any():
                ints[known] = to_milliseconds(ints[known], f"{source}: close_time")
            cols[c] = pd.arrays.IntegerArray(ints, ~known)
        else:
            cols[c] = v.to_numpy(dtype=np.float64)
    return pd.DataFrame(cols)


def _int64(v: pd.Series, source: str, column: str) -> np.ndarray:
    """Whole numbers as int64; a fraction or a value beyond int64 is a DataError, not a silent cast."""
    if v.dtype.kind == "f":
        a = v.to_numpy(dtype=np.float64)
        if not np.isfinite(a).all() or (np.abs(a) >= 2.0 ** 63).any() or (a != np.floor(a)).any():
            i = int(np.flatnonzero(~np.isfinite(a) | (np.abs(a) >= 2.0 ** 63) | (a != np.floor(a)))[0])
            raise DataError(f"{source}: row {i + 1}: {column}={a[i]!r} is not a whole-number timestamp")
        return a.astype(np.int64)
    if v.dtype.kind not in "iu":
        raise DataError(f"{source}: {column} holds {v.dtype} values; expected whole-number timestamps")
    if v.dtype.kind == "u" and len(v) and int(v.max()) >= 2 ** 63:
        raise DataError(f"{source}: {column}: a timestamp is beyond 64-bit range")
    return v.to_numpy(dtype=np.int64)


def merge_frames(*frames: pd.DataFrame) -> pd.DataFrame:
    """Concatenate, drop duplicate open times (the later copy wins) and sort."""
    frames = tuple(f for f in frames if f is not None and len(f))
    if not frames:
        return normalise_frame(pd.DataFrame({c: [] for c in CANDLE_COLUMNS}))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    df = df.drop_duplicates(subset="open_time", keep="last")
    return df.sort_values("open_time", kind="stable").reset_index(drop=True)


def month_key(open_time_ms: np.ndarray) -> np.ndarray:
    """year*100+month for each time, vectorised (UTC)."""
    d = pd.to_datetime(open_time_ms, unit="ms", utc=True)
    return np.asarray(d.year * 100 + d.month, dtype=np.int64)


def _month_bounds(year: int, month: int) -> tuple[int, int]:
    lo = datetime(year, month, 1, tzinfo=timezone.utc)
    hi = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)


def month_overlaps(year: int, month: int, start: int | None, end: int | None) -> bool:
    """Does month (year, month) hold any time in ``[start, end)``?"""
    lo, hi = _month_bounds(year, month)
    return (start is None or hi > start) and (end is None or lo < end)


def parse_month(year: str, month: str, where: str) -> tuple[int, int]:
    """``year=YYYY/month=MM`` folder values as numbers; anything else (month=13, year=abc) is a DataError."""
    if _YEAR_RE.match(year) and _MONTH_RE.match(month):
        y, m = int(year), int(month)
        if 1970 <= y < 2100 and 1 <= m <= 12:
            return y, m
    raise DataError(f"{where}: bad partition folder year={year}/month={month} "
                    "(expected year=YYYY from 1970 to 2099 and month=01..12)")


def _partition_value(name: str, key: str) -> str | None:
    prefix = f"{key}="
    return name[len(prefix):] if name.startswith(prefix) else None


def _choose(values: list[str], wanted: str | None, key: str, where: str) -> str:
    if wanted is not None:
        if wanted not in values:
            found = ", ".join(values) if values else "none"
            raise DataError(f"{where}: no {key}={wanted} in the dataset (found: {found})")
        return wanted
    if not values:
        raise DataError(f"{where}: no {key}=… folders; not a candles dataset")
    if len(values) > 1:
        raise DataError(f"{where}: the dataset holds several {key}s ({', '.join(values)}); choose one with {key}")
    return values[0]


# --------------------------------------------------------------------------- local

def partition_values(folder: Path, key: str) -> list[str]:
    if not folder.is_dir():
        return []
    out = [v for e in os.scandir(folder) if e.is_dir() and (v := _partition_value(e.name, key)) is not None]
    return sorted(out)


def local_partitions(root: str | Path, symbol: str, interval: str) -> list[tuple[int, int, Path]]:
    """(year, month, folder) of every month partition of one series, oldest first."""
    base = Path(root) / series_prefix(symbol, interval)
    out = []
    for y in partition_values(base, "year"):
        for m in partition_values(base / f"year={y}", "month"):
            out.append((*parse_month(y, m, str(base)), base / f"year={y}" / f"month={m}"))
    return sorted(out)


def partition_files(folder: Path) -> list[Path]:
    """Data files of a partition; hidden temp files of an interrupted write are ignored."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix == ".parquet" and not p.name.startswith((".", "_")) and p.is_file())


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        table = pq.ParquetFile(path).read(columns=columns)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({(str(exc).splitlines() or [exc])[0]})") from None
    check_schema(table.schema, str(path))
    return table


def check_frame_dtypes(df: pd.DataFrame, source: str) -> None:
    """:func:`check_schema` for a frame read from S3."""
    for name in df.columns:
        if name in STORED_COLUMNS and not (pd.api.types.is_numeric_dtype(df[name]) and
                                           not pd.api.types.is_bool_dtype(df[name])):
            want = "a whole number (int64)" if name in INT_FIELDS else "a number (float64)"
            raise DataError(f"{source}: column {name} is {df[name].dtype}; expected {want}")


def check_schema(schema: pa.Schema, source: str) -> None:
    """A dataset file's columns must be numbers (strings for prices, say, are refused, not parsed)."""
    for name in schema.names:
        if name not in STORED_COLUMNS:
            continue
        t = schema.field(name).type
        ok = pa.types.is_integer(t) or pa.types.is_null(t) or (
            name not in INT_FIELDS and pa.types.is_floating(t))
        if not ok:
            want = "a whole number (int64)" if name in INT_FIELDS else "a number (float64)"
            raise DataError(f"{source}: column {name} is {t}; expected {want}")


def read_parquet_file(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    df = _read_table(path, columns).to_pandas()
    return normalise_frame(df, str(path)) if columns is None else df


def _read_local_partition(folder: Path) -> pd.DataFrame:
    return merge_frames(*(read_parquet_file(p) for p in partition_files(folder)))


def _write_local_partition(folder: Path, df: pd.DataFrame) -> None:
    """Temp file beside the target, fsync, then os.replace: readers see old or new, never half."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / PART_FILE
    tmp = folder / f".{PART_FILE}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        table = pa.Table.from_pandas(df[list(STORED_COLUMNS)], schema=SCHEMA, preserve_index=False)
        pq.write_table(table, tmp, compression="snappy")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Files left by a sync or an older writer are now merged into part-0: drop them.
    for other in partition_files(folder):
        if other.name != PART_FILE:
            other.unlink(missing_ok=True)


def _read_local(root: str, symbol: str | None, interval: str | None, start: int | None,
                end: int | None) -> tuple[pd.DataFrame, str]:
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{root}: no such folder")
    symbol = _choose(partition_values(base, "symbol"), symbol, "symbol", root)
    interval = _choose(partition_values(base / f"symbol={symbol}", "interval"), interval, "interval", root)
    files = [f for y, m, folder in local_partitions(base, symbol, interval) if month_overlaps(y, m, start, end)
             for f in partition_files(folder)]
    # One Arrow concatenation and one normalisation for all months: per-file pandas
    # conversion cost more than reading the files.
    tables = [_read_table(f) for f in files]
    frame = None
    if tables:
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"{root}: partition files disagree on column types ({str(exc).splitlines()[0]})") from None
        frame = normalise_frame(table.to_pandas(), root)
    return time_filter(merge_frames(frame), start, end), symbol


def _last_open_time_local(root: str, symbol: str, interval: str) -> int | None:
    for _, _, folder in reversed(local_partitions(root, symbol, interval)):
        times = [read_parquet_file(p, ["open_time"])["open_time"] for p in partition_files(folder)]
        times = [t for t in times if len(t)]
        if times:
            return int(max(int(t.max()) for t in times))
    return None


def _open_times_local(root: str, symbol: str, interval: str, start: int | None, end: int | None) -> np.ndarray:
    times = [read_parquet_file(p, ["open_time"])["open_time"].to_numpy(dtype=np.int64)
             for y, m, folder in local_partitions(root, symbol, interval) if month_overlaps(y, m, start, end)
             for p in partition_files(folder)]
    return np.concatenate(times) if times else np.zeros(0, dtype=np.int64)


def is_temp_file(name: str) -> bool:
    """A writer's temporary file (``.<name>.<...>.tmp``): never data, litter once its writer is gone."""
    return name.startswith(".") and name.endswith(".tmp")


def _tidy_local(root: str, symbol: str, interval: str) -> list[str]:
    """Remove the temporary files an interrupted writer of this series left behind."""
    removed = []
    for folder in (Path(root) / series_prefix(symbol, interval),
                   (Path(root) / local_outages_path(symbol, interval)).parent):
        if not folder.is_dir():
            continue
        for dirpath, _, names in os.walk(folder):
            for name in names:
                if is_temp_file(name):
                    (Path(dirpath) / name).unlink(missing_ok=True)
                    removed.append(str(Path(dirpath) / name))
    return removed


def _upsert_local(root: str, symbol: str, interval: str, df: pd.DataFrame) -> UpsertResult:
    base = Path(root)
    keys = month_key(df["open_time"].to_numpy())
    added, written = 0, []
    # Oldest month first: the watermark (newest partition) must never run ahead of
    # an older month that an interruption left unwritten.
    for key in np.unique(keys):
        part = df.loc[keys == key]
        rel = month_partition(symbol, interval, int(part["open_time"].iloc[0]))
        folder = base / rel
        old = _read_local_partition(folder)
        merged = merge_frames(old, part)
        validate_frame(merged, str(folder))
        _write_local_partition(folder, merged)
        added += len(merged) - len(old)
        written.append(rel)
    return UpsertResult(added, written)


# --------------------------------------------------------------------------- S3

def s3_root(root: str) -> str:
    return root if root.endswith("/") else root + "/"


def s3_error_code(exc: BaseException) -> str:
    """The error code of a botocore ClientError (``NoSuchKey``, ``PreconditionFailed``, ``404`` …), else ""."""
    response = getattr(exc, "response", None) or {}
    err = response.get("Error", {})
    return str(err.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def describe_s3_error(exc: BaseException) -> str | None:
    """A one-line reason for an S3/AWS failure, or None when ``exc`` is not one."""
    try:
        import botocore.exceptions as bx
    except ImportError:  # pragma: no cover - boto3 is a runtime dependency
        return None
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = s3_error_code(exc)
        known = {"NoSuchBucket": "no such bucket", "NoSuchKey": "no such key", "404": "not found",
                 "AccessDenied": "access denied", "403": "access denied", "AllAccessDisabled": "access denied",
                 "InvalidAccessKeyId": "the AWS access key is not valid",
                 "SignatureDoesNotMatch": "the AWS secret key does not match",
                 "ExpiredToken": "the AWS session token has expired", "InvalidBucketName": "invalid bucket name"}
        return known.get(code) or f"S3 error {code}: {err.get('Message') or exc}"
    if isinstance(exc, bx.NoCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return f"cannot reach S3 ({exc})"
    if isinstance(exc, bx.ParamValidationError):
        return f"invalid S3 location ({str(exc).splitlines()[0]})"
    if isinstance(exc, bx.BotoCoreError):
        return f"AWS error ({exc})"
    return None


@contextmanager
def s3_errors(uri: str) -> Iterator[None]:
    """Turn an S3 failure inside the block into one DataError naming ``uri``."""
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        reason = describe_s3_error(exc)
        if reason is None:
            raise
        raise DataError(f"{uri}: {reason}") from None


def s3_partition_values(prefix: str, key: str, session: Any) -> list[str]:
    import awswrangler as wr

    out = []
    with s3_errors(prefix):
        dirs = wr.s3.list_directories(prefix, boto3_session=session)
    for d in dirs:
        v = _partition_value(d.rstrip("/").rsplit("/", 1)[-1], key)
        if v is not None:
            out.append(v)
    return sorted(out)


def _s3_series_files(root: str, symbol: str, interval: str, session: Any) -> dict[tuple[int, int], list[str]]:
    """Every Parquet object of one series, by (year, month), from one listing; names in key order."""
    import awswrangler as wr

    base = root + series_prefix(symbol, interval)
    with s3_errors(base):
        paths = wr.s3.list_objects(base, suffix=".parquet", boto3_session=session)
    out: dict[tuple[int, int], list[str]] = {}
    for path in sorted(paths):
        *folders, name = path[len(base):].split("/")
        if name.startswith((".", "_")):
            continue
        parts = dict(f.split("=", 1) for f in folders if "=" in f)
        if len(folders) != 2 or set(parts) != {"year", "month"}:
            continue  # not in a month partition: not part of the series

        out.setdefault(parse_month(parts["year"], parts["month"], base), []).append(path)
    return out


def _s3_months(root: str, symbol: str, interval: str, session: Any) -> list[tuple[int, int]]:
    return sorted(_s3_series_files(root, symbol, interval, session))


def _s3_read_months(root: str, symbol: str, interval: str, months: set[tuple[int, int]] | None,
                    start: int | None, end: int | None, session: Any, columns: list[str] | None = None,
                    files: dict[tuple[int, int], list[str]] | None = None) -> pd.DataFrame:
    """The listed (or all) month partitions of one series overlapping [start, end).

    Files are read in key order; the writer names them by write time, so on equal
    open times a later file wins in :func:`merge_frames`.
    """
    import awswrangler as wr

    base = root + series_prefix(symbol, interval)
    files = files if files is not None else _s3_series_files(root, symbol, interval, session)
    paths = [p for (y, m), ps in sorted(files.items())
             if (months is None or (y, m) in months) and month_overlaps(y, m, start, end) for p in ps]
    if not paths:
        return pd.DataFrame({c: [] for c in (columns or STORED_COLUMNS)})
    try:
        df = wr.s3.read_parquet(paths, columns=columns, boto3_session=session)
    except Exception as exc:  # noqa: BLE001 - S3 failures and corrupt objects both become one line
        reason = describe_s3_error(exc)
        if reason is not None:
            raise DataError(f"{base}: {reason}") from None
        raise DataError(f"{base}: a partition file is not readable Parquet ({(str(exc).splitlines() or [exc])[0]})") \
            from None
    check_frame_dtypes(df, base)
    df = df.drop(columns=[c for c in PARTITION_COLUMNS if c in df.columns])
    return df if columns is not None else normalise_frame(df, root)


def _read_s3(root: str, symbol: str | None, interval: str | None, start: int | None, end: int | None,
             session: Any) -> tuple[pd.DataFrame, str]:
    root = s3_root(root)
    symbol = _choose(s3_partition_values(root, "symbol", session), symbol, "symbol", root)
    interval = _choose(s3_partition_values(f"{root}symbol={symbol}/", "interval", session), interval, "interval", root)
    df = _s3_read_months(root, symbol, interval, None, start, end, session)
    return time_filter(merge_frames(df), start, end), symbol


def _last_open_time_s3(root: str, symbol: str, interval: str, session: Any) -> int | None:
    root = s3_root(root)
    files = _s3_series_files(root, symbol, interval, session)
    for y, m in sorted(files, reverse=True):
        df = _s3_read_months(root, symbol, interval, {(y, m)}, None, None, session, columns=["open_time"],
                             files=files)
        if len(df):
            return int(df["open_time"].max())
    return None


def _s3_part_name() -> str:
    """A new partition file's name: sorts by write time (a later copy wins), unique per writer."""
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.snappy.parquet"


def _upsert_s3(root: str, symbol: str, interval: str, df: pd.DataFrame, session: Any) -> UpsertResult:
    """Per month: write the merged partition as a new object, then delete the ones it replaces.

    Never the other way round (awswrangler's ``overwrite_partitions`` deletes first): a kill
    between the two steps leaves both files, whose rows readers de-duplicate and the next
    writer merges, instead of a month with no file at all.
    """
    import awswrangler as wr

    root = s3_root(root)
    keys = month_key(df["open_time"].to_numpy())
    files = _s3_series_files(root, symbol, interval, session)
    added, written = 0, []
    for key in np.unique(keys):
        y, m = int(key) // 100, int(key) % 100
        prefix = f"{root}{series_prefix(symbol, interval)}year={y:04d}/month={m:02d}/"
        old_files = files.get((y, m), [])
        prev = merge_frames(_s3_read_months(root, symbol, interval, {(y, m)}, None, None, session, files=files))
        merged = merge_frames(prev, df.loc[keys == key])
        validate_frame(merged, prefix)
        table = merged[list(STORED_COLUMNS)]
        with s3_errors(prefix), warnings.catch_warnings():
            # awswrangler 3.17 still passes inplace= to pandas 3, which warns.
            warnings.filterwarnings("ignore", message="The inplace keyword", module="awswrangler")
            new = wr.s3.to_parquet(table, path=prefix + _s3_part_name(), index=False, compression="snappy",
                                   boto3_session=session)["paths"]
            stale = [p for p in old_files if p not in new]
            if stale:
                wr.s3.delete_objects(stale, boto3_session=session)
        added += len(merged) - len(prev)
        written.append(month_partition(symbol, interval, int(merged["open_time"].iloc[0])))
    return UpsertResult(added, written)


def _tidy_s3(root: str, symbol: str, interval: str, session: Any) -> list[str]:
    """Merge the month partitions an interrupted write left with more than one file."""
    root = s3_root(root)
    files = _s3_series_files(root, symbol, interval, session)
    fixed = []
    for (y, m), paths in sorted(files.items()):
        if len(paths) < 2:
            continue
        df = merge_frames(_s3_read_months(root, symbol, interval, {(y, m)}, None, None, session, files=files))
        if len(df):
            _upsert_s3(root, symbol, interval, df, session)
            fixed.append(paths[0].rsplit("/", 1)[0] + "/")
    return fixed


def _open_times_s3(root: str, symbol: str, interval: str, start: int | None, end: int | None,
                   session: Any) -> np.ndarray:
    root = s3_root(root)
    df = _s3_read_months(root, symbol, interval, None, start, end, session, columns=["open_time"])
    return np.asarray(df["open_time"], dtype=np.int64)


# --------------------------------------------------------------------------- public API

def read_candle_dataset(root: str, *, symbol: str | None = None, interval: str | None = None,
                        start: int | None = None, end: int | None = None,
                        session: Any = None) -> tuple[pd.DataFrame, str | None]:
    """Candles of one series with ``start <= open_time < end``, reading only the month partitions
    that range touches. Returns the frame (stored columns, sorted, unique times) and the symbol."""
    if is_s3_uri(root):
        return _read_s3(str(root), symbol, interval, start, end, session)
    return _read_local(str(root), symbol, interval, start, end)


def last_open_time(root: str, symbol: str, interval: str, *, session: Any = None) -> int | None:
    """The watermark: newest stored open time (ms) of the series, or None; reads the newest partition only."""
    if is_s3_uri(root):
        return _last_open_time_s3(str(root), symbol, interval, session)
    return _last_open_time_local(str(root), symbol, interval)


def upsert_candles(root: str, symbol: str, interval: str, frame: pd.DataFrame, *,
                   session: Any = None) -> UpsertResult:
    """Merge candles into their month partitions (dedupe on open_time, incoming wins, sort, validate).

    Each partition is replaced whole: locally atomically (temp file + os.replace), on S3 by a new
    object written before the old ones are deleted. Nothing already stored is lost or duplicated.
    Callers hold the series lock (:mod:`engine.data.series_lock`).
    """
    df = merge_frames(normalise_frame(frame, "new candles"))
    if len(df) == 0:
        return UpsertResult(0, [])
    if is_s3_uri(root):
        return _upsert_s3(str(root), symbol, interval, df, session)
    return _upsert_local(str(root), symbol, interval, df)


def stored_open_times(root: str, symbol: str, interval: str, *, start: int | None = None, end: int | None = None,
                      session: Any = None) -> np.ndarray:
    """Sorted unique open times (ms) stored for the series in ``[start, end)``; reads the open_time column only."""
    t = (_open_times_s3(str(root), symbol, interval, start, end, session) if is_s3_uri(root)
         else _open_times_local(str(root), symbol, interval, start, end))
    t = np.unique(t)
    if start is not None:
        t = t[t >= start]
    if end is not None:
        t = t[t < end]
    return t


def tidy_series(root: str, symbol: str, interval: str, *, session: Any = None) -> list[str]:
    """Clear what an interrupted write left (temp files locally, doubled partition files on S3).

    Only while holding the series lock: then no other writer's temp file can be in flight.
    """
    if is_s3_uri(root):
        return _tidy_s3(str(root), symbol, interval, session)
    return _tidy_local(str(root), symbol, interval)
