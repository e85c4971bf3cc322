"""Incremental, resumable download of closed klines into the candle dataset.

Each page is committed to the dataset (atomic partition replace) before the
next is requested, so an interruption loses at most the page in flight and a
re-run resumes after the newest stored candle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..candles import GapReport
from ..errors import UserError
from ..timeutil import format_time, interval_to_ms
from ..candles import gap_report
from .dataset_io import last_open_time, upsert_candles
from .klines import KlinesClient


@dataclass(frozen=True)
class FetchResult:
    symbol: str
    interval: str
    added: int               # candles new to the dataset
    requested_from: int      # first open time asked for (after the stored watermark)
    first: int | None        # first and last open time received
    last: int | None
    requests: int            # HTTP requests sent
    gaps: GapReport          # holes among the received candles (and after the old watermark)


def resume_point(watermark: int | None, start: int) -> int:
    """Where a fetch starts: ``start``, or just after the newest stored candle if that is later."""
    return start if watermark is None else max(start, watermark + 1)


def fetch_candles(root: str, symbol: str, interval: str, start: int, end: int | None = None, *,
                  progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None,
                  client: KlinesClient | None = None, session: Any = None) -> FetchResult:
    """Download closed candles of ``[start, end)`` (end None: up to now) not yet stored under ``root``.

    ``total(n)`` is told the expected number of candles, ``progress(n)`` each committed page.
    On an error, what was committed stays and the message says so.
    """
    iv = interval_to_ms(interval)
    client = client or KlinesClient()
    requests_before = client.requests
    watermark = last_open_time(root, symbol, interval, session=session)
    cursor = resume_point(watermark, start)
    if total is not None and end is not None:
        total(max(0, (end - cursor) // iv))
    added, first, last = 0, None, None
    times = [np.array([watermark], dtype=np.int64)] if watermark is not None else []
    try:
        for page in client.iter_klines(symbol, interval, cursor, end):
            result = upsert_candles(root, symbol, interval, page, session=session)
            added += result.added
            t = page["open_time"].to_numpy(dtype=np.int64)
            first = int(t[0]) if first is None else first
            last = int(t[-1])
            times.append(t)
            if total is not None and end is None and first == int(t[0]):
                total(max(0, (client.now_ms() - cursor) // iv))  # the server's clock is known now
            if progress is not None:
                progress(len(page))
    except UserError as exc:
        kept = (f"kept the {added} new candle(s) stored before it (up to {format_time(last)})"
                if added else "no new candles were stored")
        exc.args = (f"{exc}; {kept}",)
        raise
    gaps = gap_report(np.concatenate(times), iv) if times else GapReport(0, 0, None, 0)
    return FetchResult(symbol, interval, added, cursor, first, last, client.requests - requests_before, gaps)
