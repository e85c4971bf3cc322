"""A perp symbol's series beside its trade klines: mark klines aligned to the bars, and the
funding events. Carried by ``engine.candles.Candles.perp``; a slice of the candles slices the
mark arrays and keeps every event (they are placed on bars by open time, P3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class PerpData:
    mark_open: np.ndarray  # per bar; NaN where no mark kline opens at the bar's open time
    mark_high: np.ndarray
    mark_low: np.ndarray
    funding_time: np.ndarray  # int64 ms UTC, increasing
    funding_rate: np.ndarray
    funding_mark: np.ndarray  # the event's mark price; NaN when not given
    interval_hours: np.ndarray  # int64: the funding interval in force at each event

    @property
    def has_mark(self) -> bool:
        return bool(np.isfinite(self.mark_low).any())

    def slice(self, start: int, stop: int) -> "PerpData":
        return PerpData(self.mark_open[start:stop], self.mark_high[start:stop], self.mark_low[start:stop],
                        self.funding_time, self.funding_rate, self.funding_mark, self.interval_hours)

    def fingerprint_arrays(self) -> tuple[np.ndarray, ...]:
        return (self.mark_open, self.mark_high, self.mark_low, self.funding_time, self.funding_rate,
                self.funding_mark, self.interval_hours)


def align_marks(open_time: np.ndarray, mark_time: np.ndarray, *cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each mark column placed on the trade bars by open time (NaN where a bar has none)."""
    idx = np.searchsorted(mark_time, open_time)
    idx_c = np.minimum(idx, max(len(mark_time) - 1, 0))
    hit = (idx < len(mark_time)) & (mark_time[idx_c] == open_time) if len(mark_time) else np.zeros(len(open_time),
                                                                                                   bool)
    out = []
    for c in cols:
        a = np.full(len(open_time), np.nan)
        if len(mark_time):
            a[hit] = c[idx_c[hit]]
        out.append(a)
    return tuple(out)
