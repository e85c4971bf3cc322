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
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..candles import CANDLE_COLUMNS, time_filter
from ..errors import DataError
from ..storage_layout import PARTITION_COLUMNS, is_s3_uri, month_partition, series_prefix
from ..timeutil import to_milliseconds
from ..candle_checks import validate_frame

PART_FILE = "part-0.parquet"
#: Extra Binance kline fields kept when known (null otherwise).
EXTRA_COLUMNS = ("close_time", "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume")
STORED_COLUMNS = CANDLE_COLUMNS + EXTRA_COLUMNS
_INT_EXTRAS = ("close_time", "trades")
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
            cols[c] = to_milliseconds(v.to_numpy(dtype=np.int64))
        elif c in _INT_EXTRAS:
            v = v.astype("Int64")
            known = v.notna().to_numpy()
            ints = v.to_numpy(dtype=np.int64, na_value=0)
            if c == "close_time":
                ints = to_milliseconds(ints)
            cols[c] = pd.arrays.IntegerArray(ints, ~known)
        else:
            cols[c] = v.to_numpy(dtype=np.float64)
    return pd.DataFrame(cols)


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
            try:
                out.append((int(y), int(m), base / f"year={y}" / f"month={m}"))
            except ValueError:
                raise DataError(f"{base}: bad partition folder year={y}/month={m}") from None
    return sorted(out)


def partition_files(folder: Path) -> list[Path]:
    """Data files of a partition; hidden temp files of an interrupted write are ignored."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix == ".parquet" and not p.name.startswith((".", "_")) and p.is_file())


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.ParquetFile(path).read(columns=columns)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


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
    frame = normalise_frame(pa.concat_tables(tables, promote_options="permissive").to_pandas(), root) \
        if tables else None
    return time_filter(merge_frames(frame), start, end), symbol


def _last_open_time_local(root: str, symbol: str, interval: str) -> int | None:
    for _, _, folder in reversed(local_partitions(root, symbol, interval)):
        times = [read_parquet_file(p, ["open_time"])["open_time"] for p in partition_files(folder)]
        times = [t for t in times if len(t)]
        if times:
            return int(max(int(t.max()) for t in times))
    return None


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


def s3_partition_values(prefix: str, key: str, session: Any) -> list[str]:
    import awswrangler as wr

    out = []
    for d in wr.s3.list_directories(prefix, boto3_session=session):
        v = _partition_value(d.rstrip("/").rsplit("/", 1)[-1], key)
        if v is not None:
            out.append(v)
    return sorted(out)


def _s3_months(root: str, symbol: str, interval: str, session: Any) -> list[tuple[int, int]]:
    base = root + series_prefix(symbol, interval)
    return sorted((int(y), int(m)) for y in s3_partition_values(base, "year", session)
                  for m in s3_partition_values(f"{base}year={y}/", "month", session))


def _s3_read_months(root: str, symbol: str, interval: str, months: set[tuple[int, int]] | None,
                    start: int | None, end: int | None, session: Any,
                    columns: list[str] | None = None) -> pd.DataFrame:
    import awswrangler as wr

    def wanted(p: dict[str, str]) -> bool:
        y, m = int(p["year"]), int(p["month"])
        if months is not None and (y, m) not in months:
            return False
        return p.get("symbol") == symbol and p.get("interval") == interval and month_overlaps(y, m, start, end)

    try:
        df = wr.s3.read_parquet(path=root + series_prefix(symbol, interval), path_root=root, dataset=True,
                                partition_filter=wanted, columns=columns, boto3_session=session)
    except wr.exceptions.NoFilesFound:
        df = pd.DataFrame({c: [] for c in (columns or STORED_COLUMNS)})
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
    for y, m in reversed(_s3_months(root, symbol, interval, session)):
        df = _s3_read_months(root, symbol, interval, {(y, m)}, None, None, session, columns=["open_time"])
        if len(df):
            return int(df["open_time"].max())
    return None


def _upsert_s3(root: str, symbol: str, interval: str, df: pd.DataFrame, session: Any) -> UpsertResult:
    import awswrangler as wr

    root = s3_root(root)
    keys = month_key(df["open_time"].to_numpy())
    months = {(int(k) // 100, int(k) % 100) for k in np.unique(keys)}
    old = _s3_read_months(root, symbol, interval, months, None, None, session)
    old_keys = month_key(old["open_time"].to_numpy())
    parts, added, written = [], 0, []
    for key in np.unique(keys):
        rel = month_partition(symbol, interval, int(df.loc[keys == key, "open_time"].iloc[0]))
        prev = old.loc[old_keys == key]
        merged = merge_frames(prev, df.loc[keys == key])
        validate_frame(merged, root + rel)
        added += len(merged) - len(prev)
        written.append(rel)
        parts.append(merged.assign(symbol=symbol, interval=interval, year=f"{key // 100:04d}",
                                   month=f"{key % 100:02d}"))
    out = pd.concat(parts, ignore_index=True)
    with warnings.catch_warnings():
        # awswrangler 3.17 still passes inplace= to pandas 3, which warns on every partition.
        warnings.filterwarnings("ignore", message="The inplace keyword", module="awswrangler")
        wr.s3.to_parquet(out, path=root, dataset=True, mode="overwrite_partitions", index=False,
                         partition_cols=list(PARTITION_COLUMNS), compression="snappy", boto3_session=session)
    return UpsertResult(added, written)


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

    Each partition is replaced whole: locally atomically (temp file + os.replace), on S3 with
    awswrangler ``overwrite_partitions``. Nothing already stored is lost or duplicated.
    """
    df = merge_frames(normalise_frame(frame, "new candles"))
    if len(df) == 0:
        return UpsertResult(0, [])
    if is_s3_uri(root):
        return _upsert_s3(str(root), symbol, interval, df, session)
    return _upsert_local(str(root), symbol, interval, df)
