"""The S3 backend of the candle dataset: ``s3://bucket/candles/`` through awswrangler.

A month partition is replaced by writing the merged partition as a new object, then
deleting the ones it replaces. awswrangler/boto3 are imported inside the functions: the
ingest Lambda and the local CLI must not pay for them at import.
"""

from __future__ import annotations

import time
import uuid
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..candles import time_filter
from ..errors import DataError
from ..storage_layout import PARTITION_COLUMNS, month_partition, series_prefix
from .checks import validate_frame
from .dataset_schema import (STORED_COLUMNS, UpsertResult, check_frame_dtypes, choose, merge_frames, month_key,
                             month_overlaps, normalise_frame, parse_month, partition_value)
from .s3_errors import describe_s3_error, s3_errors


def s3_root(root: str) -> str:
    return root if root.endswith("/") else root + "/"


def partition_values(prefix: str, key: str, session: Any) -> list[str]:
    import awswrangler as wr

    out = []
    with s3_errors(prefix):
        dirs = wr.s3.list_directories(prefix, boto3_session=session)
    for d in dirs:
        v = partition_value(d.rstrip("/").rsplit("/", 1)[-1], key)
        if v is not None:
            out.append(v)
    return sorted(out)


def series_files(root: str, symbol: str, interval: str, session: Any) -> dict[tuple[int, int], list[str]]:
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


def read_months(root: str, symbol: str, interval: str, months: set[tuple[int, int]] | None,
                start: int | None, end: int | None, session: Any, columns: list[str] | None = None,
                files: dict[tuple[int, int], list[str]] | None = None) -> pd.DataFrame:
    """The listed (or all) month partitions of one series overlapping [start, end).

    Files are read in key order; the writer names them by write time, so on equal
    open times a later file wins in :func:`merge_frames`.
    """
    import awswrangler as wr

    base = root + series_prefix(symbol, interval)
    files = files if files is not None else series_files(root, symbol, interval, session)
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


def read(root: str, symbol: str | None, interval: str | None, start: int | None, end: int | None,
         session: Any) -> tuple[pd.DataFrame, str]:
    root = s3_root(root)
    symbol = choose(partition_values(root, "symbol", session), symbol, "symbol", root)
    interval = choose(partition_values(f"{root}symbol={symbol}/", "interval", session), interval, "interval", root)
    df = read_months(root, symbol, interval, None, start, end, session)
    return time_filter(merge_frames(df), start, end), symbol


def last_open_time(root: str, symbol: str, interval: str, session: Any) -> int | None:
    root = s3_root(root)
    files = series_files(root, symbol, interval, session)
    for y, m in sorted(files, reverse=True):
        df = read_months(root, symbol, interval, {(y, m)}, None, None, session, columns=["open_time"], files=files)
        if len(df):
            return int(df["open_time"].max())
    return None


def _part_name() -> str:
    """A new partition file's name: sorts by write time (a later copy wins), unique per writer."""
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.snappy.parquet"


def upsert(root: str, symbol: str, interval: str, df: pd.DataFrame, session: Any) -> UpsertResult:
    """Per month: write the merged partition as a new object, then delete the ones it replaces.

    Never the other way round (awswrangler's ``overwrite_partitions`` deletes first): a kill
    between the two steps leaves both files, whose rows readers de-duplicate and the next
    writer merges, instead of a month with no file at all.
    """
    import awswrangler as wr

    root = s3_root(root)
    keys = month_key(df["open_time"].to_numpy())
    files = series_files(root, symbol, interval, session)
    added, written = 0, []
    for key in np.unique(keys):
        y, m = int(key) // 100, int(key) % 100
        prefix = f"{root}{series_prefix(symbol, interval)}year={y:04d}/month={m:02d}/"
        old_files = files.get((y, m), [])
        prev = merge_frames(read_months(root, symbol, interval, {(y, m)}, None, None, session, files=files))
        merged = merge_frames(prev, df.loc[keys == key])
        validate_frame(merged, prefix)
        table = merged[list(STORED_COLUMNS)]
        with s3_errors(prefix), warnings.catch_warnings():
            # awswrangler 3.17 still passes inplace= to pandas 3, which warns.
            warnings.filterwarnings("ignore", message="The inplace keyword", module="awswrangler")
            new = wr.s3.to_parquet(table, path=prefix + _part_name(), index=False, compression="snappy",
                                   boto3_session=session)["paths"]
            stale = [p for p in old_files if p not in new]
            if stale:
                wr.s3.delete_objects(stale, boto3_session=session)
        added += len(merged) - len(prev)
        written.append(month_partition(symbol, interval, int(merged["open_time"].iloc[0])))
    return UpsertResult(added, written)


def tidy(root: str, symbol: str, interval: str, session: Any) -> list[str]:
    """Merge the month partitions an interrupted write left with more than one file."""
    root = s3_root(root)
    files = series_files(root, symbol, interval, session)
    fixed = []
    for (y, m), paths in sorted(files.items()):
        if len(paths) < 2:
            continue
        df = merge_frames(read_months(root, symbol, interval, {(y, m)}, None, None, session, files=files))
        if len(df):
            upsert(root, symbol, interval, df, session)
            fixed.append(paths[0].rsplit("/", 1)[0] + "/")
    return fixed


def open_times(root: str, symbol: str, interval: str, start: int | None, end: int | None,
               session: Any) -> np.ndarray:
    root = s3_root(root)
    df = read_months(root, symbol, interval, None, start, end, session, columns=["open_time"])
    return np.asarray(df["open_time"], dtype=np.int64)
