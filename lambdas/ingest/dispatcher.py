"""The ingest dispatcher: started by the schedules, it hands out one unit of work per series.

Event: the schedule rule's constant input, ``{"task": "ingest"|"repair", "series": [...]}``
(units.py). Every 15 minutes the ``ingest`` schedule, once a day the ``repair`` schedule.

Per invocation:

1. Read the watermark index (one Scan, index.py) and each market's 418/451 marker (blocked.py).
2. Send one SQS message per configured unit, youngest watermark first (a caught-up series is
   seconds of work, a catch-up minutes, so the quick ones are not queued behind it). A unit is
   *not* sent when:
   * its market's host refused us (418 "blocked until", 451 "geo-blocked"): metric
     ``BlockedSkips`` / ``GeoBlocked``, one log line; no worker runs, nothing fails;
   * its previous message for this task is still outstanding (sent, not yet reported done,
     and younger than OUTSTANDING_SECONDS, the longest a message can live before it is done or
     dead-lettered): one unit in flight per series, so a slow catch-up never piles up messages;
   * it reached the DLQ within the last hour: a poisoned series is retried once an hour, not
     every 15 minutes.
3. Lag: each unit's watermark age (lag.py) -> ``OldestWatermarkAgeSeconds`` (the one lag
   alarm's metric) and ``LaggingSeries`` (how many are above the alarm threshold).
4. Digest: one message to the alarm topic naming each lagging or dead-lettered series with its
   watermark, age, status and last error; each series at most once an hour (``digest_ms``).

Log line ``ingest_dispatch``: task, units, dispatched, skipped (outstanding, quarantined,
blocked), oldest (unit, age), lagging (up to 20 names), digest (names sent), duration_ms, with
the metrics as EMF fields.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.data.binance import INTERVAL_MS

from . import blocked, index, runtime
from .lag import DIGEST_EVERY_MS, describe_age, watermark_age_ms
from .units import TASK_INGEST, UnitError, WorkUnit, parse_schedule

QUARANTINE_MS = 3_600_000      # a unit that reached the DLQ is sent again after this long
DIGEST_MAX_SERIES = 200        # series named in one digest message (the rest in the next dispatch)
SEND_BATCH = 10                # SQS SendMessageBatch limit


def unit_age_ms(unit: WorkUnit, item: dict[str, Any] | None, now_ms: int) -> int:
    """A unit's watermark age; a unit never reported counts from its first dispatch."""
    item = item or {}
    iv = INTERVAL_MS.get(unit.interval or "", 0)
    return watermark_age_ms(item.get("watermark_ms"), iv, now_ms, since_ms=item.get("first_sent_ms"))


def outstanding(item: dict[str, Any] | None, task: str, now_ms: int, ttl_ms: int) -> bool:
    item = item or {}
    sent = item.get(f"{task}_sent_ms")
    return sent is not None and sent > item.get(f"{task}_done_ms", -1) and now_ms - sent < ttl_ms


def quarantined(item: dict[str, Any] | None, now_ms: int) -> bool:
    dead = (item or {}).get("dead_lettered_ms")
    return dead is not None and now_ms - dead < QUARANTINE_MS


def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    request_id = getattr(context, "aws_request_id", None) or f"local-{uuid.uuid4()}"
    try:
        cfg = runtime.settings(dispatcher=True)
        task, units = parse_schedule(event)
    except (runtime.SettingsError, UnitError) as exc:
        runtime.log("ERROR", "ingest_config_error", request_id=request_id, error=str(exc))
        raise
    now = runtime.now_ms()
    ddb, sqs, s3 = runtime.client("dynamodb"), runtime.client("sqs"), runtime.client("s3")
    items = index.scan(ddb, cfg.index_table)
    markers = {m: blocked.read(s3, cfg.bucket, m, cfg.base_url_for(m), now) for m in sorted({u.market for u in units})}
    ages = {u: unit_age_ms(u, items.get(u.key), now) for u in units}

    send, skipped = [], {"outstanding": 0, "quarantined": 0, "blocked": 0}
    for u in sorted(units, key=lambda u: (ages[u], u)):
        item = items.get(u.key)
        if markers[u.market] is not None:
            skipped["blocked"] += 1
        elif outstanding(item, task, now, cfg.outstanding_ms):
            skipped["outstanding"] += 1
        elif quarantined(item, now):
            skipped["quarantined"] += 1
        else:
            send.append(u)
    sent = _send(sqs, ddb, cfg, task, send, now)

    oldest = max(units, key=lambda u: (ages[u], u))
    lagging = [u for u in units if ages[u] > cfg.lag_alarm_ms]
    named = _digest(ddb, cfg, units, items, ages, now) if task == TASK_INGEST else []
    metrics: dict[str, float] = {"OldestWatermarkAgeSeconds": round(ages[oldest] / 1000, 3),
                                 "LaggingSeries": len(lagging), "UnitsDispatched": len(sent)}
    for m in markers.values():
        if m is not None:
            metrics[m.metric] = 1
    summary = {"request_id": request_id, "task": task, "units": len(units), "dispatched": len(sent),
               "skipped": skipped, "oldest": oldest.label, "oldest_age_s": round(ages[oldest] / 1000, 3),
               "lagging": [u.label for u in lagging[:20]], "digest": [u.label for u in named],
               "blocked": {m: {"kind": k.kind, "until_utc": runtime.utc(k.until_ms)} for m, k in markers.items() if k},
               "duration_ms": int((time.monotonic() - started) * 1000)}
    runtime.log("WARNING" if lagging or skipped["blocked"] else "INFO", "ingest_dispatch", **summary,
                **runtime.emf(**metrics))
    return summary


def _send(sqs: Any, ddb: Any, cfg: runtime.Settings, task: str, units: list[WorkUnit], now: int) -> list[WorkUnit]:
    """SendMessageBatch in tens; each unit sent is then marked in the index (a failed mark only
    means a duplicate message later, which the series lease absorbs)."""
    sent: list[WorkUnit] = []
    for i in range(0, len(units), SEND_BATCH):
        batch = units[i:i + SEND_BATCH]
        answer = sqs.send_message_batch(QueueUrl=cfg.queue_url, Entries=[
            {"Id": str(n), "MessageBody": u.message(task, now)} for n, u in enumerate(batch)])
        for f in answer.get("Failed", []):
            runtime.log("ERROR", "ingest_send_failed", unit=batch[int(f["Id"])].label, code=f.get("Code"),
                        error=f.get("Message"))
        sent += [batch[int(s["Id"])] for s in answer.get("Successful", [])]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda u: index.mark_sent(ddb, cfg.index_table, u, task, now), sent))
    return sent


def _digest(ddb: Any, cfg: runtime.Settings, units: list[WorkUnit], items: dict[str, dict], ages: dict,
            now: int) -> list[WorkUnit]:
    """Name the lagging and dead-lettered series on the alarm topic, each at most once an hour."""
    if not cfg.alarm_topic_arn:
        return []

    def due(u: WorkUnit) -> bool:
        item = items.get(u.key) or {}
        troubled = ages[u] > cfg.lag_alarm_ms or quarantined(item, now)
        return troubled and now - item.get("digest_ms", -DIGEST_EVERY_MS) >= DIGEST_EVERY_MS

    named = sorted((u for u in units if due(u)), key=lambda u: (-ages[u], u))[:DIGEST_MAX_SERIES]
    if not named:
        return []
    lines = [_describe(u, items.get(u.key) or {}, ages[u]) for u in named]
    subject = f"Backtest ingest: {len(named)} series lagging"
    body = (f"{len(named)} series are behind by more than {cfg.lag_alarm_ms // 60_000} minutes or reached "
            f"the dead-letter queue (each named at most once an hour):\n\n" + "\n".join(lines) + "\n")
    runtime.client("sns").publish(TopicArn=cfg.alarm_topic_arn, Subject=subject, Message=body)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda u: index.mark_digest(ddb, cfg.index_table, u, now), named))
    return named


def _describe(u: WorkUnit, item: dict[str, Any], age_ms: int) -> str:
    wm = item.get("watermark_ms")
    if u.kind == "funding":
        stored = f"complete up to {runtime.utc(wm)} UTC" if wm is not None else "nothing stored yet"
    else:
        stored = f"newest stored candle opened {runtime.utc(wm)} UTC" if wm is not None else "nothing stored yet"
    parts = [f"- {u.label}: {describe_age(u.kind, age_ms, item.get('funding_interval_h'))}", stored,
             f"last run: {item.get('status', 'none yet')}"]
    if item.get("failures"):
        parts.append(f"{item['failures']} failure(s) in a row")
    if item.get("dead_lettered_ms"):
        parts.append(f"dead-lettered {runtime.utc(item['dead_lettered_ms'])} UTC")
    if item.get("error"):
        parts.append(f"error: {item['error'][:300]}")
    return "; ".join(parts)
