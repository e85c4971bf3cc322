"""Funding events placed on bars (P3), and the coverage check a perp run makes before any work."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..timeutil import format_time
from .series import PerpData

HOUR_MS = 3_600_000


def event_bars(open_time: np.ndarray, interval_ms: int, times: np.ndarray) -> np.ndarray:
    """The bar each event applies at: the first bar with τ < open_t + Δ (the bar holding τ, or the
    first bar after a gap); len(open_time) when none."""
    return np.searchsorted(open_time + interval_ms, times, side="right")


def bar_funding(open_time: np.ndarray, close: np.ndarray, interval_ms: int, perp: PerpData) -> np.ndarray:
    """F_t = Σ mark_k·rate_k over bar t's events, in time order; a position receives −s·qty·F_t.

    mark_k: the mark kline's open of bar t, else the event's mark price, else close[t−1]. Events
    before the first bar's open or at bar 0 are dropped (no position is held before bar 0)."""
    n = len(open_time)
    out = np.zeros(n)
    if n == 0 or len(perp.funding_time) == 0:
        return out
    bars = event_bars(open_time, interval_ms, perp.funding_time)
    for k in range(len(bars)):
        t = int(bars[k])
        if t <= 0 or t >= n or perp.funding_time[k] < open_time[0]:
            continue
        mark = perp.mark_open[t]
        if not np.isfinite(mark):
            mark = perp.funding_mark[k]
            if not np.isfinite(mark):
                mark = close[t - 1]
        out[t] += mark * perp.funding_rate[k]
    return out


def check_coverage(open_time: np.ndarray, interval_ms: int, perp: PerpData, symbol: str) -> None:
    """A DataError when the funding table leaves a gap longer than 2 funding intervals inside the
    bars' range [first open, last open + Δ)."""
    if len(open_time) == 0:
        return
    lo, hi = int(open_time[0]), int(open_time[-1]) + interval_ms
    t, iv = perp.funding_time, perp.interval_hours
    hint = "; give perp.funding: false to run without funding"
    if len(t) == 0:
        raise DataError(f"{symbol}: no funding events; the run needs funding from {format_time(lo)} to "
                        f"{format_time(hi)}{hint}")
    inside = (t >= lo) & (t < hi)
    k0 = int(np.searchsorted(t, lo))  # first event at or after lo
    k1 = int(np.searchsorted(t, hi)) - 1  # last event before hi
    pts = np.concatenate([[lo], t[inside], [hi]])
    ivs = np.concatenate([[iv[min(k0, len(t) - 1)]], iv[inside], [iv[max(min(k1, len(t) - 1), 0)]]])
    gaps = np.diff(pts)
    allowed = 2 * HOUR_MS * np.maximum(ivs[:-1], ivs[1:])
    bad = np.flatnonzero(gaps > allowed)
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{symbol}: the funding table does not cover the run: no event from "
                        f"{format_time(int(pts[i]))} to {format_time(int(pts[i + 1]))} (more than 2 funding "
                        f"intervals of {int(max(ivs[i], ivs[i + 1]))}h){hint}")


def interval_changes(perp: PerpData) -> list[tuple[int, int]]:
    """(time, hours) at the first event and at each event where the funding interval changes."""
    out: list[tuple[int, int]] = []
    for t, h in zip(perp.funding_time.tolist(), perp.interval_hours.tolist()):
        if not out or out[-1][1] != h:
            out.append((int(t), int(h)))
    return out
