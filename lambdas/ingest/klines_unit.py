"""One unit of klines (spot trade klines; um trade or mark klines), one task: the tail (``ingest``) or the interior gaps (``repair``).

A thin layer over ``engine.data``: the paging loop is :func:`engine.data.fetch.fetch_candles`'s,
the closed-candle rule, retries and rate limits :class:`engine.data.klines.KlinesClient`'s, the
watermark and the deduplicating month-partition upsert ``engine.data.dataset``'s, the series
lease :mod:`engine.data.series_lock`'s, gaps and confirmed-empty ranges
:mod:`engine.data.outages`'. This module budgets pages and time, archives each batch to
``raw/``, and reports.

**ingest**: take the series lease (held by another writer: status ``locked``, nothing done:
the next slot comes in 15 minutes); fetch in tail mode from just after the newest stored open
time (or HISTORY_START: catch-up), at most MAX_PAGES_PER_RUN pages and while more than the
safety margin of Lambda time is left: max(30 s, 2 × the slowest page so far). Each page goes to
``raw/symbol=S/interval=I/<first_open>-<last_open>.json`` (a repeat overwrites the same
object) and is then upserted into its month partition(s): a timeout loses at most the page in
flight.

**repair**: take the lease, waiting up to :data:`REPAIR_LOCK_WAIT_S` (the tail run holds it for
seconds); read the stored open times and the ranges already confirmed empty in ``meta/``; if
interior gaps remain, fetch exactly them (:func:`fetch_candles` with ``cover=True`` over the
stored range: confirmed-empty ranges are skipped and new ones recorded), under the same page and
time budget. ``GapsRepaired`` = gaps before − gaps after; ``GapsRemaining`` = gaps after.

A um unit reads ``/fapi/v1/klines`` or ``/fapi/v1/markPriceKlines`` (pages of 1,500) and writes the
kind's root (``um/candles/``, ``um/mark/``), its raw batches under ``um/raw/`` (mark: ``um/raw/mark/``)
and its own lease (storage_layout.lock_key_for_root).

Raw batch format (normalised, not Binance's bytes): ``{"symbol", "interval", "source",
"columns": [open_time, open, high, low, close, volume, close_time, quote_volume, trades,
taker_buy_base_volume, taker_buy_quote_volume], "rows": [[...], ...]}``, closed candles only;
same window -> same key and byte-identical body.
"""

from __future__ import annotations

import json
import time
from typing import Any

from engine import storage_layout
from engine.data.binance import KEPT_FIELDS
from engine.data.dataset import stored_open_times, tidy_series
from engine.data.fetch import FetchResult, FetchStopped, fetch_candles
from engine.data.klines import KlinesClient, fapi_client
from engine.data.outages import read_outages, unexplained_gaps
from engine.data.series_lock import S3Lease, SeriesLocked, acquire
from engine.timeutil import interval_to_ms

from . import runtime
from .units import TASK_REPAIR, WorkUnit

MIN_MARGIN_MS = 30_000          # never start a page with less Lambda time left than this
PAGE_MARGIN_FACTOR = 2          # ... nor with less than this many times the slowest page so far
HTTP_TIMEOUT_S = 10.0           # one Binance request, whole response (the client retries on timeouts)
LOCK_GRACE_MS = 60_000          # a lease outlives its holder's deadline by this much
REPAIR_LOCK_WAIT_S = 60.0       # a repair waits this long for a tail run to finish
RAW_COLUMNS = KEPT_FIELDS       # Binance's 12 fields without "ignore"


class Budget:
    """The Lambda's time left (``context.get_remaining_time_in_millis``) and a page allowance."""

    def __init__(self, remaining_ms, max_pages: int):
        self.remaining_ms = remaining_ms
        self.max_pages = max_pages
        self.slowest_page_ms = 0
        self._page_started_ms = 0

    def margin_ms(self) -> int:
        return max(MIN_MARGIN_MS, PAGE_MARGIN_FACTOR * self.slowest_page_ms)

    def sleep(self, seconds: float) -> None:
        """The klines client's sleep: a back-off that would run into the margin stops the unit instead."""
        if self.remaining_ms() - seconds * 1000 < self.margin_ms():
            raise FetchStopped("out_of_time")
        runtime.SLEEP(seconds)

    def before_page(self, pages: int) -> str | None:
        if pages >= self.max_pages:
            return "max_pages"
        self._page_started_ms = self.remaining_ms()
        if self._page_started_ms < self.margin_ms():
            return "out_of_time"
        return None

    def page_done(self) -> None:
        self.slowest_page_ms = max(self.slowest_page_ms, self._page_started_ms - self.remaining_ms())


def finish(rec: dict[str, Any], client: KlinesClient, requests_before: int, started: float, report,
           error: BaseException | None, lease: S3Lease | None) -> None:
    """A unit's last step, whatever happened: its request count and duration, ``report`` while the lease
    (if taken) is still held, then the lease released."""
    rec["requests"] = client.requests - requests_before
    rec["used_weight"] = client.used_weight
    rec["duration_ms"] = int((time.monotonic() - started) * 1000)
    try:
        report(rec, error, lease is not None)
    finally:
        if lease is not None:
            lease.release()


class SeriesUnit:
    """What every unit shares: its S3 root (the kind's, under the market prefix), its record, and the
    lease (storage_layout.lock_key_for_root) it holds while it writes."""

    def __init__(self, cfg: runtime.Settings, unit: WorkUnit, task: str, *, request_id: str, context: Any,
                 budget: Budget):
        self.cfg, self.unit, self.task = cfg, unit, task
        self.request_id, self.context, self.budget = request_id, context, budget
        self.s3 = runtime.client("s3", runtime.s3_endpoint())
        self.session = runtime.session()
        self.root_key = storage_layout.market_prefix(unit.market) + storage_layout.KIND_DIRS[unit.kind]
        self.root = storage_layout.s3_uri(cfg.bucket, self.root_key)
        self.client_options = dict(sleep=budget.sleep, timeout=HTTP_TIMEOUT_S, clock=runtime.CLOCK)
        self.rec: dict[str, Any] = {"status": None, "candles_added": 0, "watermark_before": None,
                                    "watermark_after": None, "pages": 0, "raw_keys": 0}

    def lease(self) -> S3Lease:
        u = self.unit
        key = storage_layout.lock_key_for_root(self.root_key, u.symbol, u.interval)
        return S3Lease(self.s3, self.cfg.bucket, key, owner=self.request_id, command=f"ingest worker ({self.task})",
                       clock=runtime.CLOCK, ttl_ms=lambda: max(0, self.budget.remaining_ms()) + LOCK_GRACE_MS,
                       extra={"function": getattr(self.context, "function_name", None)})


class KlinesUnit(SeriesUnit):
    """Runs one klines unit; ``run()`` returns the record the worker logs and indexes."""

    def __init__(self, cfg: runtime.Settings, unit: WorkUnit, task: str, **kw: Any):
        super().__init__(cfg, unit, task, **kw)
        self.client = (fapi_client(unit.kind, cfg.fapi_base_url, **self.client_options) if unit.market == "um"
                       else KlinesClient(cfg.base_url, **self.client_options))
        self.iv = interval_to_ms(unit.interval)
        self.held = False  # the record's watermark is the truth only while the lease is held

    # ---- raw batches

    def write_raw(self, page: Any) -> str:
        u, t = self.unit, page["open_time"]
        key = storage_layout.market_prefix(u.market) + storage_layout.raw_batch_key(
            u.symbol, u.interval, int(t.iloc[0]), int(t.iloc[-1]), u.kind)
        columns = [page[c].tolist() for c in RAW_COLUMNS]  # per column: ints stay ints
        body = json.dumps({"symbol": u.symbol, "interval": u.interval, "source": self.cfg.base_url,
                           "columns": list(RAW_COLUMNS), "rows": [list(r) for r in zip(*columns)]},
                          separators=(",", ":")).encode()
        self.s3.put_object(Bucket=self.cfg.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    def _archive(self, page: Any) -> None:
        self.write_raw(page)
        self.rec["raw_keys"] += 1
        self.rec["_pending"] = int(page["open_time"].iloc[-1])

    def _page_done(self, rows: int) -> None:
        """After a page is committed: its time, and the record kept current (an error may follow)."""
        self.budget.page_done()
        self.rec["pages"] += 1
        self.rec["candles_added"] += rows
        self.rec["watermark_after"] = self.rec.pop("_pending", self.rec["watermark_after"])

    def _fetch(self, lease: S3Lease, start: int, end: int | None, cover: bool) -> FetchResult:
        u = self.unit
        return fetch_candles(self.root, u.symbol, u.interval, start, end, client=self.client, session=self.session,
                             cover=cover, lock=lease, budget=self.budget.before_page, progress=self._page_done,
                             before_commit=self._archive)

    # ---- the tasks

    def run(self, report) -> dict[str, Any]:
        """Run the task and call ``report(rec, error, held)`` once, while the lease is still held when
        it was taken (so the index hears of one series' runs in the order they wrote).

        ``error`` is the exception that ended the unit (a BinanceBlocked for 418/451), or None; it is
        raised again after the report. ``rec`` keeps what was committed before it."""
        started, requests_before = time.monotonic(), self.client.requests
        u, rec = self.unit, self.rec
        lease, error = None, None
        try:
            if self.budget.remaining_ms() < self.budget.margin_ms():
                rec["status"] = "out_of_time"
                return rec
            candidate = self.lease()
            if self.task == TASK_REPAIR:
                try:
                    acquire(candidate, wait=REPAIR_LOCK_WAIT_S)
                    lease = candidate
                except SeriesLocked:
                    rec["status"] = "locked"
            elif candidate.try_acquire():
                lease = candidate
            else:
                rec["status"] = "locked"
            if lease is None:
                return rec
            tidy_series(self.root, u.symbol, u.interval, session=self.session)
            if self.task == TASK_REPAIR:
                self._repair(lease)
            else:
                result = self._fetch(lease, self.cfg.history_start, None, cover=False)
                rec.update(status=result.stopped or "caught_up", candles_added=result.added, pages=result.pages,
                           watermark_before=result.watermark_before, watermark_after=result.watermark_after)
            return rec
        except Exception as exc:  # noqa: BLE001 - reported, then raised again
            error = exc
            raise
        finally:
            rec.pop("_pending", None)
            finish(rec, self.client, requests_before, started, report, error, lease)

    def _repair(self, lease: S3Lease) -> None:
        u, rec, iv = self.unit, self.rec, self.iv
        known = read_outages(self.root, u.symbol, u.interval, session=self.session, client=self.s3)
        stored = stored_open_times(self.root, u.symbol, u.interval, session=self.session)
        rec["watermark_before"] = rec["watermark_after"] = int(stored[-1]) if len(stored) else None
        before = unexplained_gaps(stored, iv, known)
        rec.update(gaps_before=before.count, gaps_remaining=before.count, gaps_repaired=0, outages_found=0)
        if before.count == 0:
            rec["status"] = "no_gaps"
            return
        result = self._fetch(lease, int(stored[0]), int(stored[-1]) + iv, cover=True)
        rec.update(status=result.stopped or "repaired", candles_added=result.added, pages=result.pages,
                   gaps_remaining=result.gaps.count, gaps_repaired=before.count - result.gaps.count,
                   outages_found=len(result.outages_found))
