"""The in-memory candle series every engine runs on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .timeutil import format_time, ms_to_interval

#: Columns of a candle frame, in order. ``open_time`` is UTC epoch milliseconds.
CANDLE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")


@dataclass(frozen=True, eq=False)
class Candles:
    """Contiguous float64 OHLCV arrays plus int64 millisecond open times."""

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    interval_ms: int
    symbol: str = "unknown"  # never guessed: a dataset partition, a Binance file name or data.symbol
    source: str = ""
    gaps: "GapReport | None" = field(default=None)
    #: a perp symbol's mark klines and funding (``engine.perp.series.PerpData``); None for spot
    perp: Any = field(default=None)

    def __len__(self) -> int:
        return len(self.open_time)

    @property
    def interval(self) -> str:
        return ms_to_interval(self.interval_ms)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, interval_ms: int | None = None, symbol: str = "unknown",
                   source: str = "") -> "Candles":
        """Build from a frame that already passed :func:`engine.data.checks.validate_frame`."""
        # One layout for every loader (C-contiguous, writeable): pandas and Arrow hand out read-only
        # views, and numba compiles (and caches) a separate kernel for each array layout.
        t = np.require(df["open_time"].to_numpy(dtype=np.int64), requirements="CW")
        iv = interval_ms or infer_interval_ms(t)
        cols = {c: np.require(df[c].to_numpy(dtype=np.float64), requirements="CW") for c in CANDLE_COLUMNS[1:]}
        return cls(open_time=t, interval_ms=iv, symbol=symbol, source=source,
                   gaps=gap_report(t, iv), **cols)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({c: getattr(self, c) for c in CANDLE_COLUMNS})

    def slice(self, start: int, stop: int) -> "Candles":
        t = self.open_time[start:stop]
        return Candles(t, self.open[start:stop], self.high[start:stop], self.low[start:stop],
                       self.close[start:stop], self.volume[start:stop], self.interval_ms,
                       self.symbol, self.source, gap_report(t, self.interval_ms),
                       None if self.perp is None else self.perp.slice(start, stop))

    def fingerprint(self) -> str:
        """SHA-256 of the exact arrays the engine sees (times, OHLCV)."""
        import hashlib

        h = hashlib.sha256()
        for c in CANDLE_COLUMNS:
            h.update(np.ascontiguousarray(getattr(self, c)).tobytes())
        for a in () if self.perp is None else self.perp.fingerprint_arrays():
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class GapReport:
    count: int
    largest_ms: int
    largest_at: int | None  # open time of the first candle after the largest gap
    missing_bars: int

    def describe(self, interval_ms: int) -> str:
        if self.count == 0:
            return "no gaps"
        return (f"{self.count} gap(s), {self.missing_bars} missing bar(s); largest "
                f"{self.largest_ms // interval_ms - 1} bar(s) before {format_time(self.largest_at)}")


def infer_interval_ms(open_time: np.ndarray) -> int:
    """The bar length: the most common step between consecutive open times."""
    if len(open_time) < 2:
        return 60_000
    steps, counts = np.unique(np.diff(open_time), return_counts=True)
    return int(steps[np.argmax(counts)])


def gap_report(open_time: np.ndarray, interval_ms: int) -> GapReport:
    """Count holes in the series. Gaps are reported, never filled."""
    if len(open_time) < 2:
        return GapReport(0, 0, None, 0)
    d = np.diff(open_time)
    gaps = np.flatnonzero(d > interval_ms)
    if gaps.size == 0:
        return GapReport(0, 0, None, 0)
    j = int(gaps[np.argmax(d[gaps])])
    missing = int(((d[gaps] // interval_ms) - 1).sum())
    return GapReport(int(gaps.size), int(d[j]), int(open_time[j + 1]), missing)


def time_filter(df: pd.DataFrame, start: int | None, end: int | None) -> pd.DataFrame:
    """Rows with ``start <= open_time < end`` (either bound may be None)."""
    if start is None and end is None:
        return df
    t = df["open_time"].to_numpy()
    keep = np.ones(len(df), dtype=bool)
    if start is not None:
        keep &= t >= start
    if end is not None:
        keep &= t < end
    return df.loc[keep].reset_index(drop=True)
