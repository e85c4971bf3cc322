"""Funding rates over REST (``GET /fapi/v1/fundingRate``: ``limit`` ≤ 1000, paged by ``startTime``)
into a symbol's funding table (:mod:`engine.data.funding_table`).

HTTP, retries, deadlines and the 418/451 stop are :class:`engine.data.klines.KlinesClient`'s. Under
the table's lock, the range before the first stored event and after the last one are asked for
(a re-run resumes after the newest event); each page is committed before the next is requested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from ..errors import UserError
from ..timeutil import check_range, format_time
from .funding_table import read_funding, upsert_funding
from .klines import FAPI_BASE_URL, FAPI_TIME_PATH, BadPageError, KlinesClient
from .series_lock import DEFAULT_WAIT_S, SeriesLock, hold_table

FUNDING_PATH = "/fapi/v1/fundingRate"
FUNDING_PAGE_LIMIT = 1000
FUNDING_WEIGHT = 1


def parse_funding(rows: Any, source: str) -> pd.DataFrame:
    """REST funding rows (``symbol, fundingTime, fundingRate, markPrice``) as table rows; the interval is
    left unknown (0) for :func:`engine.data.funding_table.fill_intervals`."""
    if not isinstance(rows, list):
        raise BadPageError(f"{source}: expected a JSON array of funding rates, got {type(rows).__name__}")
    t, rate, mark = [], [], []
    for i, row in enumerate(rows):
        try:
            t.append(int(row["fundingTime"]))
            rate.append(float(row["fundingRate"]))
            m = row.get("markPrice")
            mark.append(float(m) if m not in (None, "") else np.nan)
        except (TypeError, KeyError, ValueError, AttributeError):
            raise BadPageError(f"{source}: row {i + 1} is not a funding rate "
                               "(fundingTime, fundingRate, markPrice)") from None
    tt = np.asarray(t, dtype=np.int64)
    bad = np.flatnonzero(np.diff(tt) <= 0)
    if bad.size:
        raise BadPageError(f"{source}: row {int(bad[0]) + 2}: funding time not after the row before")
    return pd.DataFrame({"funding_time": tt, "funding_rate": np.asarray(rate, dtype=np.float64),
                         "mark_price": np.asarray(mark, dtype=np.float64),
                         "interval_hours": np.zeros(len(tt), np.int64)})


class FundingClient(KlinesClient):
    """Pages through ``/fapi/v1/fundingRate``; ``requests``/``used_weight`` as the klines client's."""

    def __init__(self, base_url: str = FAPI_BASE_URL, **options: Any):
        super().__init__(base_url, time_path=FAPI_TIME_PATH, **options)

    def iter_funding(self, symbol: str, start: int, end: int | None = None) -> Iterator[pd.DataFrame]:
        cursor = int(start)
        while end is None or cursor < end:
            params: dict[str, Any] = {"symbol": symbol, "startTime": cursor, "limit": FUNDING_PAGE_LIMIT}
            if end is not None:
                params["endTime"] = int(end) - 1
            rows, _ = self._get_json(FUNDING_PATH, params, FUNDING_WEIGHT)
            source = self._describe(FUNDING_PATH, params)
            page = parse_funding(rows, source)
            t = page["funding_time"].to_numpy()
            if len(t) and (t[0] < cursor or (end is not None and t[-1] >= end)):
                raise BadPageError(f"{source}: answer holds funding times outside the requested range")
            if len(page):
                yield page
            if len(rows) < FUNDING_PAGE_LIMIT:
                return
            cursor = int(t[-1]) + 1


@dataclass(frozen=True)
class FundingFetchResult:
    symbol: str
    added: int
    first: int | None      # first and last funding time received
    last: int | None
    requests: int
    pages: int
    stopped: str | None = None  # why ``budget`` ended it early, else None


def fetch_funding(root: str, symbol: str, start: int, end: int | None = None, *,
                  client: FundingClient | None = None, session: Any = None, lock: SeriesLock | None = None,
                  lock_wait: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None,
                  budget: Callable[[int], str | None] | None = None) -> FundingFetchResult:
    """Make the table at ``root`` hold the symbol's funding events of ``[start, end)`` before its first and
    after its last stored one. ``budget(pages)`` may stop it between pages (returns the reason)."""
    check_range(start, end, "fetch funding")
    client = client or FundingClient()
    before = client.requests
    added, pages, first, last = 0, 0, None, None
    with hold_table(root, symbol, wait=lock_wait, on_wait=on_wait, command="data fetch", session=session,
                    lock=lock) as held:
        stored = read_funding(root, symbol, session=session)
        ranges: list[tuple[int, int | None]] = [(start, end)]
        if stored is not None and len(stored):
            lo, hi = int(stored["funding_time"].iloc[0]), int(stored["funding_time"].iloc[-1])
            ranges = ([(start, min(lo, end) if end is not None else lo)] if start < lo else []) + (
                [(max(start, hi + 1), end)] if end is None or hi + 1 < end else [])
        try:
            for a, b in ranges:
                if b is not None and a >= b:
                    continue
                answers = client.iter_funding(symbol, a, b)
                while True:
                    reason = budget(pages) if budget is not None else None
                    if reason:
                        answers.close()
                        return FundingFetchResult(symbol, added, first, last, client.requests - before, pages, reason)
                    page = next(answers, None)
                    if page is None:
                        break
                    held.check()
                    added += upsert_funding(root, symbol, page, session=session)
                    t = page["funding_time"].to_numpy()
                    first = int(t[0]) if first is None else min(first, int(t[0]))
                    last = int(t[-1]) if last is None else max(last, int(t[-1]))
                    pages += 1
        except UserError as exc:
            kept = f"kept the {added} new event(s) stored before it" if added else "no new events were stored"
            exc.args = (f"{exc}; {kept}" + (f" (up to {format_time(last)})" if last else ""),)
            raise
    return FundingFetchResult(symbol, added, first, last, client.requests - before, pages)
