"""A perp symbol's funding table: one Parquet file per symbol (``storage_layout.funding_file``).

Columns: ``funding_time`` (int64 ms UTC, unique, increasing), ``funding_rate`` (float64),
``mark_price`` (float64, null when the source does not give it) and ``interval_hours`` (int64,
the funding interval in force at the event). Funding is a few rows a day, so the whole table is
read, merged and replaced in one write: locally a staged file renamed into place, on S3 one PUT
(a reader sees the old table or the new one). Writers hold the table's lock
(:func:`engine.data.series_lock.hold_table`).

The interval is never assumed to be 8h: the archive's ``funding_interval_hours`` is kept as given;
a REST row (which has none) takes the time since the event before it, in whole hours, and the
table's first event the time to the one after it (:func:`fill_intervals`); 0 means not known yet
(a lone event), which a run's coverage check treats as no coverage.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from ..storage_layout import funding_file, is_s3_uri, parse_s3_uri
from ..timeutil import to_milliseconds
from .local_write import write_atomic
from .s3_errors import s3_error_code, s3_errors

FUNDING_COLUMNS = ("funding_time", "funding_rate", "mark_price", "interval_hours")
FUNDING_SCHEMA = pa.schema([
    pa.field("funding_time", pa.int64(), nullable=False),
    pa.field("funding_rate", pa.float64(), nullable=False),
    pa.field("mark_price", pa.float64()),
    pa.field("interval_hours", pa.int64(), nullable=False),
])
HOUR_MS = 3_600_000
#: interval_hours 0 in a frame handed to :func:`normalise_funding`: not known yet (REST rows)
UNKNOWN_INTERVAL = 0


def empty_funding() -> pd.DataFrame:
    return pd.DataFrame({"funding_time": np.zeros(0, np.int64), "funding_rate": np.zeros(0),
                         "mark_price": np.zeros(0), "interval_hours": np.zeros(0, np.int64)})


def normalise_funding(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The table's columns and dtypes, sorted, one row per time (the later copy wins); DataError naming
    the row otherwise."""
    missing = [c for c in ("funding_time", "funding_rate") if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}")
    n = len(frame)
    try:
        t = pd.to_numeric(frame["funding_time"], errors="raise").to_numpy()
        rate = pd.to_numeric(frame["funding_rate"], errors="raise").to_numpy(dtype=np.float64)
        mark = (pd.to_numeric(frame["mark_price"], errors="coerce").to_numpy(dtype=np.float64)
                if "mark_price" in frame.columns else np.full(n, np.nan))
        hours = (pd.to_numeric(frame["interval_hours"], errors="raise").to_numpy(dtype=np.float64)
                 if "interval_hours" in frame.columns else np.zeros(n))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: a funding field is not a number ({exc})") from None
    if n and (not np.isfinite(t.astype(np.float64)).all() or (t != np.floor(t)).any()):
        raise DataError(f"{source}: funding_time must be whole-number timestamps")
    t = to_milliseconds(t.astype(np.int64), f"{source}: funding_time") if n else t.astype(np.int64)
    bad = np.flatnonzero(~np.isfinite(rate) | (np.abs(rate) >= 1.0))
    if bad.size:
        raise DataError(f"{source}: row {int(bad[0]) + 1}: funding rate {float(rate[bad[0]])!r} is not a rate in (-1, 1)")
    bad = np.flatnonzero(~np.isfinite(hours) | (hours < 0) | (hours > 24) | (hours != np.floor(hours)))
    if bad.size:
        raise DataError(f"{source}: row {int(bad[0]) + 1}: funding interval {float(hours[bad[0]])!r} h is not a whole "
                        "number of hours from 1 to 24")
    bad = np.flatnonzero(np.isfinite(mark) & (mark <= 0))
    if bad.size:
        raise DataError(f"{source}: row {int(bad[0]) + 1}: mark price {float(mark[bad[0]])!r} is not positive")
    df = pd.DataFrame({"funding_time": t, "funding_rate": rate, "mark_price": mark,
                       "interval_hours": hours.astype(np.int64)})
    df = df.drop_duplicates(subset="funding_time", keep="last")
    return df.sort_values("funding_time", kind="stable").reset_index(drop=True)


def fill_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """Unknown intervals (0) from the spacing: the hours since the event before, else to the event after.
    A lone REST event has no neighbour to measure: it stays 0 (unknown) until the next one is stored."""
    h = df["interval_hours"].to_numpy(dtype=np.int64).copy()
    unknown = h == UNKNOWN_INTERVAL
    if not unknown.any() or len(h) < 2:
        return df
    t = df["funding_time"].to_numpy(dtype=np.int64)
    gaps = np.rint(np.diff(t) / HOUR_MS).astype(np.int64)
    since = np.concatenate([[0], gaps])
    after = np.concatenate([gaps, [0]])
    h[unknown] = np.where(since[unknown] > 0, since[unknown], after[unknown])
    return df.assign(interval_hours=np.clip(h, 0, 24))


def _table_bytes(df: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(df[list(FUNDING_COLUMNS)], schema=FUNDING_SCHEMA, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue()


def _from_bytes(data: bytes, source: str) -> pd.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{source}: not a readable Parquet file ({(str(exc).splitlines() or [exc])[0]})") from None
    return normalise_funding(table.to_pandas(), source)


def _location(root: str, symbol: str) -> str:
    return str(root).rstrip("/") + "/" + funding_file(symbol)


def read_funding(root: str, symbol: str, *, session: Any = None) -> pd.DataFrame | None:
    """The symbol's funding table at ``root`` (a local folder or s3:// funding root), or None."""
    where = _location(root, symbol)
    if is_s3_uri(where):
        from .s3_session import s3_client

        bucket, key = parse_s3_uri(where)
        with s3_errors(where):
            try:
                data = s3_client(session).get_object(Bucket=bucket, Key=key)["Body"].read()
            except Exception as exc:
                if s3_error_code(exc) in ("NoSuchKey", "404"):
                    return None
                raise
        return _from_bytes(data, where)
    p = Path(where)
    if not p.is_file():
        return None
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    return _from_bytes(data, where)


def funding_symbols(root: str, *, session: Any = None) -> list[str]:
    """Symbols with a funding table at a local funding root (S3 roots: listed by prefix)."""
    if is_s3_uri(root):
        from .dataset_s3 import partition_values, s3_root

        return partition_values(s3_root(root), "symbol", session)
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(p.name[len("symbol="):] for p in base.iterdir()
                  if p.name.startswith("symbol=") and (p / "part-0.parquet").is_file())


def upsert_funding(root: str, symbol: str, frame: pd.DataFrame, *, session: Any = None) -> int:
    """Merge events into the table (the incoming row wins on an equal time); the number of new times.
    Callers hold the table's lock."""
    new = normalise_funding(frame, f"{symbol} funding")
    if not len(new):
        return 0
    old = read_funding(root, symbol, session=session)
    old = empty_funding() if old is None else old
    merged = normalise_funding(pd.concat([old, new], ignore_index=True), f"{symbol} funding")
    merged = fill_intervals(merged)
    added = len(merged) - len(old)
    data = _table_bytes(merged)
    where = _location(root, symbol)
    if is_s3_uri(where):
        from .s3_session import s3_client

        bucket, key = parse_s3_uri(where)
        with s3_errors(where):
            s3_client(session).put_object(Bucket=bucket, Key=key, Body=data)
    else:
        Path(where).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(where), data)
    return added
