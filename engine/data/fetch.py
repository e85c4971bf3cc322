"""Download closed klines so the dataset covers ``[start, end)`` (end None: up to now).

Under the series lock, the stored open times of the range are read (the open_time
column only) and every missing range is asked for once: the head before the first
stored candle, each interior gap and the tail after the last, less the ranges the
exchange already confirmed empty (:mod:`engine.data.outages`). Ranges close together
share a request (one page holds 1,000 candles), and only candles not yet stored are
written. Each page is committed (atomic partition replace) before the next is
requested, so an interruption loses at most the page in flight; a re-run asks only
for what is still missing. Parts of a range the exchange answered without a candle,
although it had candles after them, are recorded as outages.

``cover=False`` asks only for the tail after the newest stored candle (the watermark):
the ingest Lambda's mode, which reads one partition instead of the whole range.
A ``budget`` called before each page may stop the fetch early (the Lambda's page and
time budget), as may :class:`FetchStopped` raised by the client's sleep; what was
committed stays and the result says why it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..candles import GapReport, gap_report
from ..errors import UserError
from ..timeutil import check_range, format_time, interval_to_ms
from .dataset import check_series, last_open_time, stored_open_times, upsert_candles
from .klines import KlinesClient
from .outages import Missing, confirmed_empty, missing_ranges, read_outages, record_outages, unexplained_gaps
from .series_lock import DEFAULT_WAIT_S, SeriesLock, hold_series


class FetchStopped(Exception):
    """Raised by a budget or a sleep to end a fetch early, keeping what was committed."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FetchResult:
    symbol: str
    interval: str
    added: int                    # candles new to the dataset
    requested_from: int | None    # first open time asked for (None: nothing was missing)
    first: int | None             # first and last open time received
    last: int | None
    requests: int                 # HTTP requests sent
    gaps: GapReport               # unexplained holes left in the range (outages excluded)
    pages: int = 0                # pages with closed candles received
    ranges: int = 0               # missing ranges asked for
    head_filled: int = 0          # candles added before the first one stored until now
    outages_found: list[tuple[int, int]] = field(default_factory=list)  # newly confirmed empty
    watermark_before: int | None = None
    watermark_after: int | None = None
    stopped: str | None = None    # why a budget ended it early, else None


def resume_point(watermark: int | None, start: int) -> int:
    """Where a tail fetch starts: ``start``, or just after the newest stored candle if that is later."""
    return start if watermark is None else max(start, watermark + 1)


def plan_requests(missing: list[Missing], interval_ms: int, page_limit: int = 1000
                  ) -> list[tuple[int, int | None, list[Missing]]]:
    """Group missing ranges that fit in one page together: (lo, hi, the ranges it covers)."""
    span = page_limit * interval_ms
    plan: list[tuple[int, int | None, list[Missing]]] = []
    for m in missing:
        if plan and plan[-1][1] is not None and m.lo - plan[-1][0] < span and (
                m.hi is None or m.hi - plan[-1][0] <= span):
            lo, _, parts = plan[-1]
            plan[-1] = (lo, m.hi, parts + [m])
        else:
            plan.append((m.lo, m.hi, [m]))
    return plan


def _inside(t: np.ndarray, parts: list[Missing]) -> np.ndarray:
    keep = np.zeros(len(t), dtype=bool)
    for m in parts:
        keep |= (t >= m.lo) & (t < m.hi if m.hi is not None else True)
    return keep


def fetch_candles(root: str, symbol: str, interval: str, start: int, end: int | None = None, *,
                  client: KlinesClient | None = None, session: Any = None, cover: bool = True,
                  progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None,
                  budget: Callable[[int], str | None] | None = None,
                  before_commit: Callable[[pd.DataFrame], None] | None = None,
                  lock: SeriesLock | None = None, lock_wait: float = DEFAULT_WAIT_S,
                  on_wait: Callable[[str], None] | None = None) -> FetchResult:
    """Make the dataset at ``root`` hold every closed candle of ``[start, end)`` the exchange has.

    Takes the series lock (waiting up to ``lock_wait`` s, telling ``on_wait``) unless the caller
    passes the ``lock`` it holds. ``total(n)`` is told the expected number of candles,
    ``progress(n)`` each committed page, ``before_commit(page)`` sees each page before it is
    stored. On an error, what was committed stays and the message says so.
    """
    check_series(symbol, interval, "fetch")
    iv = interval_to_ms(interval)
    check_range(start, end, "fetch")
    client = client or KlinesClient()
    with hold_series(root, symbol, interval, wait=lock_wait, on_wait=on_wait, command="data fetch",
                     session=session, lock=lock) as held:
        return _Fetch(root, symbol, interval, iv, client, session, held).run(
            start, end, cover, progress, total, budget, before_commit)


class _Fetch:
    def __init__(self, root: str, symbol: str, interval: str, iv: int, client: KlinesClient, session: Any,
                 lock: SeriesLock):
        self.root, self.symbol, self.interval, self.iv = root, symbol, interval, iv
        self.client, self.session, self.lock = client, session, lock
        self.added = self.pages = self.head_filled = 0
        self.first: int | None = None
        self.last: int | None = None
        self.found: list[tuple[int, int]] = []

    def run(self, start, end, cover, progress, total, budget, before_commit) -> FetchResult:
        symbol, interval, iv, session = self.symbol, self.interval, self.iv, self.session
        requests_before = self.client.requests
        watermark = last_open_time(self.root, symbol, interval, session=session)
        known: list[tuple[int, int]] = []
        if cover:
            known = read_outages(self.root, symbol, interval, session=session)
            stored = stored_open_times(self.root, symbol, interval, start=start, end=end, session=session)
            missing = missing_ranges(stored, start, end, iv, known)
            first_stored = int(stored[0]) if len(stored) else None
        else:
            cursor = resume_point(watermark, start)
            missing = [Missing(cursor, end, False)] if end is None or cursor < end else []
            first_stored = None
        plan = plan_requests(missing, iv, self.client.page_limit)
        if total is not None:
            tail = [m for m in missing if m.hi is None]
            expected = sum(-(-(m.hi - m.lo) // iv) for m in missing if m.hi is not None)
            if tail:
                expected += max(0, (self.client.now_ms() - tail[0].lo) // iv)
            total(expected)
        stopped = None
        received_all: list[np.ndarray] = [np.array([watermark], dtype=np.int64)] if watermark is not None else []
        try:
            for lo, hi, parts in plan:
                received = self._request(lo, hi, parts, first_stored, progress, budget, before_commit)
                received_all.append(received)
                self.found += confirmed_empty(parts, received, iv)
        except FetchStopped as stop:
            stopped = stop.reason
        except UserError as exc:
            kept = (f"kept the {self.added} new candle(s) stored before it (up to {format_time(self.last)})"
                    if self.added else "no new candles were stored")
            try:
                self._record(known)
            except UserError:
                pass  # the first error is the one to report
            exc.args = (f"{exc}; {kept}",)
            raise
        known = self._record(known)
        if cover:
            after = stored_open_times(self.root, symbol, interval, start=start, end=end, session=session)
            gaps = unexplained_gaps(after, iv, known)
        else:
            t = np.concatenate(received_all) if received_all else np.zeros(0, np.int64)
            gaps = gap_report(np.unique(t), iv) if len(t) else GapReport(0, 0, None, 0)
        wm_after = max((x for x in (watermark, self.last) if x is not None), default=None)
        return FetchResult(symbol, interval, self.added, plan[0][0] if plan else None, self.first, self.last,
                           self.client.requests - requests_before, gaps, self.pages, len(plan), self.head_filled,
                           self.found, watermark, wm_after, stopped)

    def _request(self, lo, hi, parts, first_stored, progress, budget, before_commit) -> np.ndarray:
        received: list[np.ndarray] = []
        pages = self.client.iter_klines(self.symbol, self.interval, lo, hi)
        try:
            while True:
                if budget is not None:
                    reason = budget(self.pages)
                    if reason:
                        raise FetchStopped(reason)
                page = next(pages, None)
                if page is None:
                    break
                t = page["open_time"].to_numpy(dtype=np.int64)
                received.append(t)
                new = page.loc[_inside(t, parts)].reset_index(drop=True)
                if len(new):
                    self.lock.check()
                    if before_commit is not None:
                        before_commit(new)
                    result = upsert_candles(self.root, self.symbol, self.interval, new, session=self.session)
                    nt = new["open_time"].to_numpy(dtype=np.int64)
                    self.added += result.added
                    if first_stored is not None:
                        self.head_filled += int((nt < first_stored).sum())
                    self.first = int(nt[0]) if self.first is None else min(self.first, int(nt[0]))
                    self.last = int(nt[-1]) if self.last is None else max(self.last, int(nt[-1]))
                self.pages += 1
                if progress is not None:
                    progress(len(new))
                if len(page) < self.client.page_limit or (hi is not None and int(t[-1]) + self.iv >= hi):
                    break  # the client's last page: no need to ask the budget for another
        finally:
            pages.close()
        return np.concatenate(received) if received else np.zeros(0, dtype=np.int64)

    def _record(self, known: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if not self.found:
            return known
        self.lock.check()
        return record_outages(self.root, self.symbol, self.interval, self.found, session=self.session)
