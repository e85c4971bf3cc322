"""Long series reduced for display in the HTML report.

A chart has at most a couple of thousand pixel columns, so series longer than
``MAX_POINTS`` are cut into equal buckets of ``k`` consecutive points. Candles
become one candle per bucket (first open, highest high, lowest low, last close, the
first bar's open time); a line such as equity keeps, per bucket, its lowest, highest
and last value, so the drawn envelope is that of every point. Trade markers are
never reduced: they are drawn at their exact times and prices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Series up to this length are shown point for point.
MAX_POINTS = 2_000


def drawdown(equity: np.ndarray) -> np.ndarray:
    """``1 - E / cummax(E)`` as a fraction (0 at a new high)."""
    e = np.asarray(equity, dtype=np.float64)
    peak = np.fmax.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, 1.0 - e / peak, 0.0)


def bucket_size(n: int, max_points: int = MAX_POINTS) -> int:
    """Points per bucket: 1 up to ``max_points``, else the smallest k giving at most ``max_points`` buckets."""
    return 1 if n <= max_points else -(-n // max_points)


def _starts(n: int, k: int) -> np.ndarray:
    return np.arange(0, n, k, dtype=np.int64)


class Ohlc(NamedTuple):
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


def ohlc_buckets(time: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, k: int) -> Ohlc:
    """One candle per ``k`` bars: the first bar's time and open, the highest high, lowest low and last close."""
    n = len(time)
    if k <= 1 or n == 0:
        return Ohlc(np.asarray(time), np.asarray(o), np.asarray(h), np.asarray(lo), np.asarray(c))
    starts = _starts(n, k)
    ends = np.minimum(starts + k, n) - 1
    return Ohlc(np.asarray(time)[starts], np.asarray(o)[starts], np.maximum.reduceat(h, starts),
                np.minimum.reduceat(lo, starts), np.asarray(c)[ends])


class Band(NamedTuple):
    low: np.ndarray
    high: np.ndarray
    last: np.ndarray


def band_buckets(values: np.ndarray, k: int) -> Band:
    """Per bucket of ``k`` points: the lowest, highest and last value (NaN ignored unless all are NaN)."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if k <= 1 or n == 0:
        return Band(v, v, v)
    starts = _starts(n, k)
    ends = np.minimum(starts + k, n) - 1
    with np.errstate(invalid="ignore"):
        low = np.fmin.reduceat(v, starts)
        high = np.fmax.reduceat(v, starts)
    return Band(low, high, v[ends])


def bucket_times(time: np.ndarray, k: int) -> np.ndarray:
    """The time of each bucket's last point (a line's value is drawn where it was reached last)."""
    t = np.asarray(time)
    n = len(t)
    if k <= 1 or n == 0:
        return t
    return t[np.minimum(_starts(n, k) + k, n) - 1]


#: Buckets a long curve is reduced to for drawing (each keeps up to 4 points).
ENVELOPE_BUCKETS = 2_000


def envelope_indices(n: int, y: np.ndarray, buckets: int = ENVELOPE_BUCKETS) -> np.ndarray:
    """Indices to draw: all of them for short curves, else per bucket the first, lowest,
    highest and last point (in time order), which preserves the drawn envelope."""
    if n <= 4 * buckets:
        return np.arange(n)
    k = -(-n // buckets)
    rows = -(-n // k)
    pad = rows * k - n
    yy = y if pad == 0 else np.concatenate([y, np.full(pad, y[-1])])
    finite = np.isfinite(yy)
    if not finite.all():                            # gaps (NaN) must stay visible
        return np.unique(np.concatenate([np.arange(0, n, max(1, k // 4)), np.flatnonzero(~np.isfinite(y)), [n - 1]]))
    grid = yy.reshape(rows, k)
    base = np.arange(rows) * k
    idx = np.concatenate([base, base + grid.argmin(axis=1), base + grid.argmax(axis=1),
                          np.minimum(base + k - 1, n - 1), [n - 1]])
    return np.unique(np.minimum(idx, n - 1))
