"""The ingest worker: an SQS-triggered Lambda that runs one unit of work per message.

The event source mapping delivers batches of one message (``batchSize`` 1) with at most
``ingestConcurrency`` invocations at once (``maximumConcurrency``). Each record is one unit:
``{"task", "market", "kind", "symbol", "interval", "sent_ms"}`` (units.py). The answer is a
partial-batch response, ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}``: a
failed unit alone becomes visible again after the queue's visibility timeout and is retried,
and after ``MAX_RECEIVES`` attempts SQS moves it, alone, to the dead-letter queue. Nothing of
one unit waits for another.

Per unit:

1. A stored 418 "blocked until" or 451 "geo-blocked" for the unit's market (blocked.py):
   skip Binance, status ``blocked`` / ``geo_blocked``, metric ``BlockedSkips`` / ``GeoBlocked``.
   Not a failure: nothing is retried and nothing reaches the DLQ.
2. Otherwise run it (klines_unit.py): ``ingest`` the tail or ``repair`` interior gaps, under
   the series lease. A 418/451 answer stores the marker and ends the unit as in 1.
3. Report while still holding the lease: one ``ingest_unit`` log line and the unit's item in
   the watermark index (index.py). A failure on the last attempt (the message's
   ``ApproximateReceiveCount`` reached MAX_RECEIVES) is recorded as dead-lettered and counted
   in ``DeadLettered``: SQS does not count redrive moves in the DLQ's own metrics.

Logging contract: one JSON object per line. ``ingest_unit``: request_id, message_id, task,
market, kind, symbol, interval, status (caught_up | max_pages | out_of_time | locked | blocked
| geo_blocked | error | no_gaps | repaired), receive_count, candles_added, pages, raw_keys,
requests, used_weight (last X-MBX-USED-WEIGHT-1M), watermark_before/after (ms, and *_utc),
duration_ms; repair adds gaps_before, gaps_repaired, gaps_remaining, outages_found; a
failure adds error_type, error (and http_status for 418/451). ``ingest_bad_message`` for a
message that is not a unit (it fails and reaches the DLQ after its attempts).
``ingest_config_error`` for a bad environment.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from engine.data.klines import BinanceBlocked

from . import blocked, index, runtime
from .funding_unit import FundingUnit
from .klines_unit import Budget, KlinesUnit
from .units import TASK_REPAIR, UnitError, parse_message

NO_CONTEXT_MS = 15 * 60_000     # time budget when called without a Lambda context (local runs)

#: The runner of each (market, kind).
RUNNERS = {("spot", "klines"): KlinesUnit, ("um", "klines"): KlinesUnit, ("um", "mark"): KlinesUnit,
           ("um", "funding"): FundingUnit}


def _remaining(context: Any):
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return lambda: int(context.get_remaining_time_in_millis())
    deadline = time.monotonic() + NO_CONTEXT_MS / 1000
    return lambda: int((deadline - time.monotonic()) * 1000)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS event source with ReportBatchItemFailures)."""
    request_id = getattr(context, "aws_request_id", None) or f"local-{uuid.uuid4()}"
    try:
        cfg = runtime.settings()
    except runtime.SettingsError as exc:
        runtime.log("ERROR", "ingest_config_error", request_id=request_id, error=str(exc))
        raise
    records = event.get("Records", []) if isinstance(event, dict) else []
    failures = [{"itemIdentifier": r.get("messageId")} for r in records
                if not _one(cfg, r, context, request_id)]
    return {"batchItemFailures": failures}


def _one(cfg: runtime.Settings, record: dict[str, Any], context: Any, request_id: str) -> bool:
    """Run one record's unit; False when it failed (SQS retries it)."""
    message_id = record.get("messageId")
    try:
        receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        receives = 1
    try:
        task, unit, _ = parse_message(record.get("body", ""))
    except UnitError as exc:
        runtime.log("ERROR", "ingest_bad_message", request_id=request_id, message_id=message_id,
                    receive_count=receives, error=str(exc),
                    **runtime.emf(SeriesFailures=1, **({"DeadLettered": 1} if receives >= cfg.max_receives else {})))
        return False
    base = {"request_id": request_id, "message_id": message_id, "task": task, "market": unit.market,
            "kind": unit.kind, "symbol": unit.symbol, "interval": unit.interval, "receive_count": receives}
    ddb = runtime.client("dynamodb")
    s3 = runtime.client("s3", runtime.s3_endpoint())
    marker = blocked.read(s3, cfg.bucket, unit.market, cfg.base_url_for(unit.market), runtime.now_ms())
    if marker is not None:
        index.record_run(ddb, cfg.index_table, unit, task, status=marker.status, now_ms=runtime.now_ms())
        runtime.log("WARNING", "ingest_unit", **base, status=marker.status, candles_added=0, watermark_before=None,
                    watermark_after=None, pages=0, raw_keys=0, requests=0, used_weight=None, duration_ms=0,
                    watermark_before_utc=None, watermark_after_utc=None, blocked_until=marker.until_ms,
                    blocked_until_utc=runtime.utc(marker.until_ms), http_status=marker.http_status,
                    **runtime.emf(**{marker.metric: 1}))
        return True

    runner = RUNNERS[(unit.market, unit.kind)](cfg, unit, task, request_id=request_id, context=context,
                                               budget=Budget(_remaining(context), cfg.max_pages_per_run))
    outcome = {"ok": True}

    def report(rec: dict[str, Any], error: BaseException | None, held: bool) -> None:
        now = runtime.now_ms()
        metrics: dict[str, float] = {"CandlesAdded": rec.get("candles_added", 0)}
        extra: dict[str, Any] = {}
        watermark = rec.get("watermark_after") if held else None
        if isinstance(error, BinanceBlocked):
            m = blocked.store(s3, cfg.bucket, unit.market, cfg.base_url_for(unit.market), error.status, error.retry_after, now,
                              request_id, str(error))
            rec["status"] = m.status
            metrics[m.metric] = 1
            extra.update(http_status=error.status, error=str(error), blocked_until=m.until_ms,
                         blocked_until_utc=runtime.utc(m.until_ms))
        elif error is not None:
            rec["status"] = "error"
            outcome["ok"] = False
            metrics["SeriesFailures"] = 1
            if receives >= cfg.max_receives:
                metrics["DeadLettered"] = 1
            extra.update(error_type=type(error).__name__, error=str(error))
        gaps = None
        if task == TASK_REPAIR and error is None and "gaps_remaining" in rec:
            gaps = (rec["gaps_repaired"], rec["gaps_remaining"])
            metrics.update(GapsRepaired=gaps[0], GapsRemaining=gaps[1])
        index.record_run(ddb, cfg.index_table, unit, task, status=rec["status"], now_ms=now, watermark_ms=watermark,
                         error=extra.get("error") if not outcome["ok"] else None,
                         dead_lettered="DeadLettered" in metrics, gaps=gaps,
                         final=outcome["ok"] or receives >= cfg.max_receives,
                         funding_interval_h=rec.get("funding_interval_h"))
        level = "ERROR" if not outcome["ok"] else ("WARNING" if "http_status" in extra else "INFO")
        runtime.log(level, "ingest_unit", **base, **rec, **extra,
                    watermark_before_utc=runtime.utc(rec.get("watermark_before")),
                    watermark_after_utc=runtime.utc(rec.get("watermark_after")), **runtime.emf(**metrics))

    try:
        runner.run(report)
    except BinanceBlocked:
        return True  # remembered in the marker; not the unit's failure
    except Exception:  # noqa: BLE001 - reported above; SQS retries the unit
        return False
    return outcome["ok"]
