"""One unit of a perp symbol's funding table (``um``/``funding``), either task.

A thin layer over :func:`engine.data.funding_fetch.fetch_funding` (REST ``/fapi/v1/fundingRate``,
pages of 1,000 by startTime, committed page by page) under the table's lease
(``um/locks/funding/symbol=S.json``), with the klines units' page and time budget. ``ingest`` and
``repair`` do the same: fetch what is missing before the first stored event (from HISTORY_START)
and after the newest one.

Watermark: events come at irregular times (every 8h, 4h or 1h, changing), so the newest event's
time says nothing of lag. A run that reached the end of the answers records the server's time it
asked at: the table is known complete up to then. The dispatcher's age of a funding unit (no
interval) is therefore how long ago the table was last known complete, less the schedule period;
a healthy unit reads about a minute, like a klines series.
"""

from __future__ import annotations

import time
from typing import Any

from engine import storage_layout
from engine.data.fetch import FetchStopped
from engine.data.funding_fetch import FundingClient, fetch_funding
from engine.data.funding_table import read_funding
from engine.data.series_lock import S3Lease

from . import runtime
from .klines_unit import HTTP_TIMEOUT_S, LOCK_GRACE_MS, Budget
from .units import WorkUnit


class FundingUnit:
    def __init__(self, cfg: runtime.Settings, unit: WorkUnit, task: str, *, request_id: str, context: Any,
                 budget: Budget):
        self.cfg, self.unit, self.task = cfg, unit, task
        self.request_id, self.context, self.budget = request_id, context, budget
        self.s3 = runtime.client("s3", runtime.s3_endpoint())
        self.session = runtime.session()
        self.root_key = storage_layout.market_prefix(unit.market) + storage_layout.KIND_DIRS["funding"]
        self.root = storage_layout.s3_uri(cfg.bucket, self.root_key)
        self.client = FundingClient(cfg.fapi_base_url, sleep=budget.sleep, timeout=HTTP_TIMEOUT_S,
                                    clock=runtime.CLOCK)
        self.rec: dict[str, Any] = {"status": None, "candles_added": 0, "watermark_before": None,
                                    "watermark_after": None, "pages": 0, "raw_keys": 0}

    def lease(self) -> S3Lease:
        key = storage_layout.lock_key_for_root(self.root_key, self.unit.symbol, None)
        return S3Lease(self.s3, self.cfg.bucket, key, owner=self.request_id, command=f"ingest worker ({self.task})",
                       clock=runtime.CLOCK, ttl_ms=lambda: max(0, self.budget.remaining_ms()) + LOCK_GRACE_MS,
                       extra={"function": getattr(self.context, "function_name", None)})

    def _budget(self, pages: int) -> str | None:
        if pages:
            self.budget.page_done()
        return self.budget.before_page(pages)

    def run(self, report) -> dict[str, Any]:
        """As :meth:`KlinesUnit.run`: ``report(rec, error, held)`` once, while the lease is held."""
        started, requests_before = time.monotonic(), self.client.requests
        rec, lease, error = self.rec, None, None
        try:
            if self.budget.remaining_ms() < self.budget.margin_ms():
                rec["status"] = "out_of_time"
                return rec
            candidate = self.lease()
            if not candidate.try_acquire():
                rec["status"] = "locked"
                return rec
            lease = candidate
            asked_at = self.client.now_ms()
            before = read_funding(self.root, self.unit.symbol, session=self.session)
            rec["watermark_before"] = None if before is None or not len(before) else int(
                before["funding_time"].iloc[-1])
            try:
                result = fetch_funding(self.root, self.unit.symbol, self.cfg.history_start, None, client=self.client,
                                       session=self.session, lock=lease, budget=self._budget)
            except FetchStopped as stop:  # a back-off that would run into the time margin
                rec.update(status=stop.reason, watermark_after=rec["watermark_before"])
                return rec
            # complete up to the time asked at, unless the budget stopped it before the end
            done = asked_at if result.stopped is None else (result.last or rec["watermark_before"])
            rec.update(candles_added=result.added, pages=result.pages, status=result.stopped or "caught_up",
                       watermark_after=done)
            return rec
        except Exception as exc:  # noqa: BLE001 - reported, then raised again
            error = exc
            raise
        finally:
            rec["requests"] = self.client.requests - requests_before
            rec["used_weight"] = self.client.used_weight
            rec["duration_ms"] = int((time.monotonic() - started) * 1000)
            try:
                report(rec, error, lease is not None)
            finally:
                if lease is not None:
                    lease.release()
