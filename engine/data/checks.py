"""Candle validation rules, applied before any backtest runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..candles import CANDLE_COLUMNS, PRICE_COLUMNS
from ..errors import DataError
from ..timeutil import format_time


def _where(df: pd.DataFrame, i: int) -> str:
    t = df["open_time"].iloc[i]
    when = format_time(int(t)) if pd.notna(t) else "time unknown"
    return f"row {i + 1} ({when})"


def validate_frame(df: pd.DataFrame, source: str) -> None:
    """Raise :class:`DataError` naming the source, first bad row and broken rule."""
    if len(df) == 0:
        raise DataError(f"{source}: no candles (empty file or nothing in the selected range)")
    for col in CANDLE_COLUMNS:
        bad = np.flatnonzero(df[col].isna().to_numpy())
        if bad.size:
            raise DataError(f"{source}: {_where(df, int(bad[0]))}: {col} is missing or NaN")
    for col in PRICE_COLUMNS:
        v = df[col].to_numpy()
        bad = np.flatnonzero(~np.isfinite(v) | (v <= 0))
        if bad.size:
            raise DataError(f"{source}: {_where(df, int(bad[0]))}: {col}={float(v[bad[0]])!r} must be a finite price above 0")
    vol = df["volume"].to_numpy()
    bad = np.flatnonzero(~np.isfinite(vol) | (vol < 0))
    if bad.size:
        raise DataError(f"{source}: {_where(df, int(bad[0]))}: volume={float(vol[bad[0]])!r} must be 0 or more")
    o, h, lo, c = (df[k].to_numpy() for k in PRICE_COLUMNS)
    bad = np.flatnonzero(h < lo)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{source}: {_where(df, i)}: high={float(h[i])!r} is below low={float(lo[i])!r}")
    bad = np.flatnonzero(h < np.maximum(o, c))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{source}: {_where(df, i)}: high={float(h[i])!r} is below max(open, close)")
    bad = np.flatnonzero(lo > np.minimum(o, c))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{source}: {_where(df, i)}: low={float(lo[i])!r} is above min(open, close)")
    t = df["open_time"].to_numpy(dtype=np.int64)
    d = np.diff(t)
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        rule = "duplicate timestamp" if d[i - 1] == 0 else "not sorted by time (earlier than the row before)"
        raise DataError(f"{source}: {_where(df, i)}: {rule}")


def off_grid(open_time: np.ndarray, interval_ms: int) -> tuple[int, int | None]:
    """How many open times are not a whole number of intervals after the first one, and the index of the
    first of them (None when all are on the grid). A gap is a whole number of bars; a shifted candle is not."""
    t = np.asarray(open_time, dtype=np.int64)
    if len(t) < 2:
        return 0, None
    bad = np.flatnonzero((t - t[0]) % interval_ms)
    return int(bad.size), (int(bad[0]) if bad.size else None)


def grid_problem(open_time: np.ndarray, interval_ms: int, interval: str) -> str | None:
    """The one line naming candles off the interval grid, or None."""
    count, first = off_grid(open_time, interval_ms)
    if not count:
        return None
    t = int(open_time[first])
    return (f"{count} open time(s) off the {interval} grid (not a whole number of {interval} bars after the first "
            f"candle at {format_time(int(open_time[0]))}); first at {format_time(t)}")
