"""The candle dataset's schema and the frame rules both storage backends share.

A dataset holds one series per ``symbol=S/interval=I/`` folder, in month partitions
``year=YYYY/month=MM/`` (:func:`engine.storage_layout.month_partition`). The stored
columns are Binance's kline fields (:mod:`engine.data.binance`) but "ignore"; the
partition values live only in the folder names, never as columns in the files, so
pyarrow's hive discovery reads a root without conflicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..candles import CANDLE_COLUMNS
from ..errors import DataError
from ..timeutil import to_milliseconds
from .binance import INT_FIELDS, KEPT_FIELDS

STORED_COLUMNS = KEPT_FIELDS
#: Extra Binance kline fields kept when known (null otherwise).
EXTRA_COLUMNS = KEPT_FIELDS[len(CANDLE_COLUMNS):]
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


def partition_value(name: str, key: str) -> str | None:
    """``v`` of a folder named ``key=v``, else None."""
    prefix = f"{key}="
    return name[len(prefix):] if name.startswith(prefix) else None


def choose(values: list[str], wanted: str | None, key: str, where: str) -> str:
    """The one ``key`` value to read: the wanted one (which must exist), else the only one there is."""
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


def _expected(name: str) -> str:
    return "a whole number (int64)" if name in INT_FIELDS else "a number (float64)"


def check_schema(schema: pa.Schema, source: str) -> None:
    """A dataset file's columns must be numbers (strings for prices, say, are refused, not parsed)."""
    for name in schema.names:
        if name not in STORED_COLUMNS:
            continue
        t = schema.field(name).type
        ok = pa.types.is_integer(t) or pa.types.is_null(t) or (
            name not in INT_FIELDS and pa.types.is_floating(t))
        if not ok:
            raise DataError(f"{source}: column {name} is {t}; expected {_expected(name)}")
