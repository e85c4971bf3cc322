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

from engine.data.fetch import FetchStopped
from engine.data.funding_fetch import FundingClient, fetch_funding
from engine.data.funding_table import read_funding

from . import runtime
from .klines_unit import SeriesUnit, finish
from .units import WorkUnit


class FundingUnit(SeriesUnit):
    def __init__(self, cfg: runtime.Settings, unit: WorkUnit, task: str, **kw: Any):
        super().__init__(cfg, unit, task, **kw)
        self.client = FundingClient(cfg.fapi_base_url, **self.client_options)

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
            after = read_funding(self.root, self.unit.symbol, session=self.session) if result.added else before
            if after is not None and len(after) and int(after["interval_hours"].iloc[-1]) > 0:
                rec["funding_interval_h"] = int(after["interval_hours"].iloc[-1])  # the digest's unit of lag
            return rec
        except Exception as exc:  # noqa: BLE001 - reported, then raised again
            error = exc
            raise
        finally:
            finish(rec, self.client, requests_before, started, report, error, lease)
