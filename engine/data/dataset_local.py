"""The local backend of the candle dataset: a folder of month partitions, one ``part-0.parquet`` each.

An upsert first writes every new partition file beside its target (:mod:`engine.data.local_write`),
then renames them all into place, oldest month first, holding the series folder's lock
exclusively; readers hold it shared (:mod:`engine.data.folder_lock`). A reader therefore sees
one committed version of the series, never a mix of old and new months.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..candles import time_filter
from ..errors import DataError
from ..storage_layout import local_outages_path, month_partition, series_prefix
from .local_write import is_temp_file, staged
from .checks import validate_frame
from .dataset_schema import (SCHEMA, STORED_COLUMNS, UpsertResult, check_schema, merge_frames, month_key,
                             month_overlaps, normalise_frame, parse_month, partition_value)
from .folder_lock import series_folder_lock

PART_FILE = "part-0.parquet"


def partition_values(folder: Path, key: str) -> list[str]:
    if not folder.is_dir():
        return []
    out = [v for e in os.scandir(folder) if e.is_dir() and (v := partition_value(e.name, key)) is not None]
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


def read_parquet_file(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    df = _read_table(path, columns).to_pandas()
    return normalise_frame(df, str(path)) if columns is None else df


def _read_partition(folder: Path) -> pd.DataFrame:
    return merge_frames(*(read_parquet_file(p) for p in partition_files(folder)))


def _stage_partition(folder: Path, df: pd.DataFrame) -> Path:
    """The partition's new file, written and fsynced beside it under a temporary name."""
    table = pa.Table.from_pandas(df[list(STORED_COLUMNS)], schema=SCHEMA, preserve_index=False)
    with staged(folder / PART_FILE) as (fh, tmp):
        pq.write_table(table, fh, compression="snappy")
    return tmp


def _commit_partition(folder: Path, tmp: Path) -> None:
    os.replace(tmp, folder / PART_FILE)
    # Files left by a sync or an older writer are now merged into part-0: drop them.
    for other in partition_files(folder):
        if other.name != PART_FILE:
            other.unlink(missing_ok=True)


def _series_folder(root: str | Path, symbol: str, interval: str) -> Path:
    return Path(root) / series_prefix(symbol, interval)


def series_names(root: str) -> list[tuple[str, str]]:
    """Every (symbol, interval) folder pair of the dataset, sorted."""
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{root}: no such folder")
    return [(s, i) for s in partition_values(base, "symbol") for i in partition_values(base / f"symbol={s}", "interval")]


def read(root: str, symbol: str, interval: str, start: int | None, end: int | None) -> pd.DataFrame | None:
    """The series' candles in ``[start, end)`` from the month partitions that range touches; None when the
    dataset has no such series."""
    series = _series_folder(root, symbol, interval)
    if not series.is_dir():
        return None
    with series_folder_lock(series, exclusive=False):
        files = [f for y, m, folder in local_partitions(root, symbol, interval) if month_overlaps(y, m, start, end)
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
    return time_filter(merge_frames(frame), start, end)


def last_open_time(root: str, symbol: str, interval: str) -> int | None:
    series = _series_folder(root, symbol, interval)
    if not series.is_dir():
        return None
    with series_folder_lock(series, exclusive=False):
        for _, _, folder in reversed(local_partitions(root, symbol, interval)):
            times = [read_parquet_file(p, ["open_time"])["open_time"] for p in partition_files(folder)]
            times = [t for t in times if len(t)]
            if times:
                return int(max(int(t.max()) for t in times))
    return None


def open_times(root: str, symbol: str, interval: str, start: int | None, end: int | None) -> np.ndarray:
    series = _series_folder(root, symbol, interval)
    if not series.is_dir():
        return np.zeros(0, dtype=np.int64)
    with series_folder_lock(series, exclusive=False):
        times = [read_parquet_file(p, ["open_time"])["open_time"].to_numpy(dtype=np.int64)
                 for y, m, folder in local_partitions(root, symbol, interval) if month_overlaps(y, m, start, end)
                 for p in partition_files(folder)]
    return np.concatenate(times) if times else np.zeros(0, dtype=np.int64)


def tidy(root: str, symbol: str, interval: str) -> list[str]:
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


def upsert(root: str, symbol: str, interval: str, df: pd.DataFrame) -> UpsertResult:
    base = Path(root)
    keys = month_key(df["open_time"].to_numpy())
    added, written, staged_files = 0, [], []
    try:
        for key in np.unique(keys):
            part = df.loc[keys == key]
            rel = month_partition(symbol, interval, int(part["open_time"].iloc[0]))
            folder = base / rel
            old = _read_partition(folder)
            merged = merge_frames(old, part)
            validate_frame(merged, str(folder))
            staged_files.append((folder, _stage_partition(folder, merged)))
            added += len(merged) - len(old)
            written.append(rel)
        # Oldest month first: the watermark (newest partition) must never run ahead of
        # an older month that an interruption left unwritten.
        with series_folder_lock(_series_folder(base, symbol, interval), exclusive=True):
            while staged_files:
                _commit_partition(*staged_files[0])
                staged_files.pop(0)
    finally:
        for _, tmp in staged_files:
            tmp.unlink(missing_ok=True)
    return UpsertResult(added, written)
