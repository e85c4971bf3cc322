"""The in-memory candle series every engine runs on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .timeutil import ms_to_interval

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
    symbol: str = "BTCUSDT"
    source: str = ""
    gaps: "GapReport | None" = field(default=None)

    def __len__(self) -> int:
        return len(self.open_time)

    @property
    def interval(self) -> str:
        return ms_to_interval(self.interval_ms)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, interval_ms: int | None = None, symbol: str = "BTCUSDT",
                   source: str = "") -> "Candles":
        """Build from a frame that already passed :func:`engine.validation.validate_frame`."""
        from .validation import gap_report, infer_interval_ms

        t = np.ascontiguousarray(df["open_time"].to_numpy(dtype=np.int64))
        iv = interval_ms or infer_interval_ms(t)
        cols = {c: np.ascontiguousarray(df[c].to_numpy(dtype=np.float64)) for c in CANDLE_COLUMNS[1:]}
        return cls(open_time=t, interval_ms=iv, symbol=symbol, source=source,
                   gaps=gap_report(t, iv), **cols)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({c: getattr(self, c) for c in CANDLE_COLUMNS})

    def slice(self, start: int, stop: int) -> "Candles":
        from .validation import gap_report

        t = self.open_time[start:stop]
        return Candles(t, self.open[start:stop], self.high[start:stop], self.low[start:stop],
                       self.close[start:stop], self.volume[start:stop], self.interval_ms,
                       self.symbol, self.source, gap_report(t, self.interval_ms))

    def fingerprint(self) -> str:
        """SHA-256 of the exact arrays the engine sees (times, OHLCV)."""
        import hashlib

        h = hashlib.sha256()
        for c in CANDLE_COLUMNS:
            h.update(np.ascontiguousarray(getattr(self, c)).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class GapReport:
    count: int
    largest_ms: int
    largest_at: int | None  # open time of the first candle after the largest gap
    missing_bars: int

    def describe(self, interval_ms: int) -> str:
        from .timeutil import format_time

        if self.count == 0:
            return "no gaps"
        return (f"{self.count} gap(s), {self.missing_bars} missing bar(s); largest "
                f"{self.largest_ms // interval_ms - 1} bar(s) before {format_time(self.largest_at)}")
