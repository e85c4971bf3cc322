"""Intervals, timestamp units and UTC parsing."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np

from .errors import UserError

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_INTERVAL_RE = re.compile(r"^(\d+)([smhdw])$")
MS_PER_YEAR = 365 * 86_400_000


def interval_to_ms(interval: str) -> int:
    """``"15m"`` -> 900000. Binance's ``1M`` (calendar month) has no fixed length."""
    m = _INTERVAL_RE.match(str(interval))
    if not m or int(m.group(1)) == 0:
        raise UserError(f"interval {interval!r}: expected a number and one of s, m, h, d, w, like '15m'")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def ms_to_interval(ms: int) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    raise UserError(f"bar length of {ms} ms is not a whole number of seconds")


def periods_per_year(interval_ms: int) -> float:
    """Bars per 365-day year: 35,040 for 15m."""
    return MS_PER_YEAR / interval_ms


def to_milliseconds(values: np.ndarray) -> np.ndarray:
    """Normalise epoch timestamps in s, ms or µs to int64 ms, detected from size.

    The cut-offs put any date between 1973 and 2286 in the right unit: seconds
    are below 1e11, milliseconds below 1e14, microseconds below 1e17.
    """
    t = np.asarray(values, dtype=np.int64)
    out = t.copy()
    sec = t < 100_000_000_000
    us = (t >= 100_000_000_000_000) & (t < 100_000_000_000_000_000)
    ns = t >= 100_000_000_000_000_000
    out[sec] = t[sec] * 1000
    out[us] = t[us] // 1000
    out[ns] = t[ns] // 1_000_000
    return out


def parse_time(value: str | int | datetime) -> int:
    """A config/CLI time (ISO date, ISO datetime, or epoch number) as UTC ms."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1000)
    if isinstance(value, (int, np.integer)):
        return int(to_milliseconds(np.array([value]))[0])
    text = str(value).strip()
    if text.isdigit():
        return int(to_milliseconds(np.array([int(text)]))[0])
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"time {value!r}: expected an ISO date like 2024-01-01 or epoch milliseconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def format_time(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
