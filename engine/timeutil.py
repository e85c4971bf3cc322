"""Intervals, timestamp units and UTC parsing."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np

from .errors import DataError, UserError

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


#: Every stored time is a date in [1970-01-01, 2100-01-01) UTC.
MIN_TIME_MS = 0
MAX_TIME_MS = 4_102_444_800_000
# The exclusive upper bound of each unit's plausible range, with its factor to ms
# (a factor below 1 divides): a value is read in the coarsest unit whose date is plausible.
_UNITS = (("s", MAX_TIME_MS // 1000, 1000), ("ms", MAX_TIME_MS, 1), ("µs", MAX_TIME_MS * 1000, -1000),
          ("ns", MAX_TIME_MS * 1_000_000, -1_000_000))


def to_milliseconds(values: np.ndarray, source: str = "timestamps") -> np.ndarray:
    """Normalise epoch timestamps in s, ms, µs or ns to int64 ms.

    Each value is read in the coarsest unit in which it is a date between 1970 and
    2100 (so 1.7e9 is seconds, 1.7e12 milliseconds, 1.7e15 microseconds). A value
    that is a plausible date in no unit -- negative (before 1970: a millisecond time
    before 1970 is never read as seconds) or too large -- raises :class:`DataError`.
    """
    t = np.asarray(values)
    if t.dtype.kind == "u" and len(t) and (t >= 2 ** 63).any():
        raise _no_unit(source, t, int(np.flatnonzero(t >= 2 ** 63)[0]))
    if t.dtype.kind == "f":
        if not np.isfinite(t).all():
            raise DataError(f"{source}: a timestamp is not a finite number")
        if (np.abs(t) >= 2.0 ** 63).any():
            i = int(np.flatnonzero(np.abs(t) >= 2.0 ** 63)[0])
            raise _no_unit(source, t, i)
    t = t.astype(np.int64)
    bad = np.flatnonzero((t < MIN_TIME_MS) | (t >= _UNITS[-1][1]))
    if bad.size:
        raise _no_unit(source, t, int(bad[0]))
    out = np.empty_like(t)
    done = np.zeros(len(t), dtype=bool)
    for _, limit, factor in _UNITS:
        sel = ~done & (t < limit)
        out[sel] = t[sel] * factor if factor > 0 else t[sel] // -factor
        done |= sel
    return out


def _no_unit(source: str, t: np.ndarray, i: int) -> "DataError":
    v = t[i].item() if hasattr(t[i], "item") else t[i]
    return DataError(f"{source}: timestamp {v!r} (row {i + 1}) is not a date between 1970 and 2100 "
                     "in seconds, milliseconds, microseconds or nanoseconds")


def check_time(ms: int, what: str) -> int:
    """``ms`` itself, or a UserError when it is not a date between 1970 and 2100."""
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise UserError(f"{what}: {format_time(ms) if -62_135_596_800_000 <= ms < 253_402_300_800_000 else ms} "
                        "is outside 1970-01-01 .. 2100-01-01")
    return ms


def check_range(start: int | None, end: int | None, what: str) -> None:
    """A UserError unless ``start < end`` (either may be None)."""
    if start is not None and end is not None and start >= end:
        raise UserError(f"{what}: the start ({format_time(start)}) is not before the end ({format_time(end)})")


def parse_time(value: str | int | datetime, what: str = "time") -> int:
    """A config/CLI time (ISO date, ISO datetime, or epoch number) as UTC ms, between 1970 and 2100."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return check_time(int(dt.timestamp() * 1000), f"{what} {value!r}")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _epoch(int(value), what)
    text = str(value).strip()
    if text.isdigit():
        return _epoch(int(text), what)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{what} {value!r}: expected an ISO date like 2024-01-01 or epoch milliseconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        ms = int(dt.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        raise UserError(f"{what} {value!r}: is outside 1970-01-01 .. 2100-01-01") from None
    return check_time(ms, f"{what} {value!r}")


def _epoch(n: int, what: str) -> int:
    if not 0 <= n < 2 ** 63:
        raise UserError(f"{what} {n}: is not a date between 1970 and 2100 in s, ms, µs or ns")
    try:
        return int(to_milliseconds(np.array([n], dtype=np.int64), f"{what} {n}")[0])
    except DataError as exc:
        raise UserError(str(exc)) from None


def format_time(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# --- ISO 8601 UTC: the one way run files write times -------------------------------------------------

def iso_times(ms) -> list[str]:
    """Epoch milliseconds as ISO 8601 UTC (``2024-01-29T08:45:00Z``): to the second, or to the
    millisecond for every value when one of them has a fraction of a second."""
    t = np.asarray(ms, dtype=np.int64)
    unit = "s" if not (t % 1000).any() else "ms"
    return [s + "Z" for s in np.datetime_as_string(t.astype("datetime64[ms]"), unit=unit).tolist()]


def iso_time(ms: int) -> str:
    """One time as :func:`iso_times` writes it."""
    return iso_times([int(ms)])[0]


def utc_now_iso() -> str:
    """Now, UTC, to the millisecond (``2025-03-21T14:05:02.123+00:00``): orders runs made in one second."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
