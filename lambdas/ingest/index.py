"""The watermark index: one small DynamoDB item per unit of work, the ingest's own bookkeeping.

Workers write what they found (watermark, status, gaps) while they still hold the series
lease, so reports of one series land in the order its writers ran; the dispatcher writes when
it sent a unit and when it last named it in a digest, and reads the whole table with one
Scan (a few hundred items of ~300 bytes). The data in S3 stays the truth: the index is
derived from it and rebuilt by the next run of each unit if lost.

Item (key ``unit`` = :attr:`WorkUnit.key`, e.g. ``spot#klines#BTCUSDT#15m``)::

    market, kind, symbol, interval         the unit
    watermark_ms                           open time of the newest stored candle (lease holders only)
    status, error, failures, updated_ms    the last run: its outcome, consecutive failures, when
    ingest_sent_ms, ingest_done_ms         dispatch bookkeeping per task (likewise repair_*)
    first_sent_ms                          when the dispatcher first sent the unit
    gaps_remaining, gaps_repaired, repaired_ms   the last repair pass
    dead_lettered_ms                       a unit whose last attempt failed (it is in the DLQ)
    digest_ms                              when a digest last named it
    funding_interval_h                     funding units: the newest stored event's interval (hours)
"""

from __future__ import annotations

from typing import Any, Iterable

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from .units import WorkUnit

_ser, _de = TypeSerializer(), TypeDeserializer()


def _item(raw: dict[str, Any]) -> dict[str, Any]:
    out = {k: _de.deserialize(v) for k, v in raw.items()}
    return {k: (int(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, (bool, float)) else v)
            for k, v in out.items()}


def scan(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    """Every item, by unit key (consistent, paginated)."""
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for raw in page.get("Items", []):
            item = _item(raw)
            items[item["unit"]] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _update(ddb: Any, table: str, unit: WorkUnit, sets: dict[str, Any], *, removes: Iterable[str] = (),
            if_not_exists: dict[str, Any] | None = None, add_failure: bool | None = None) -> None:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    parts = []
    base = {"market": unit.market, "kind": unit.kind, "symbol": unit.symbol}
    if unit.interval is not None:
        base["interval"] = unit.interval
    for i, (k, v) in enumerate({**base, **sets}.items()):
        names[f"#s{i}"] = k
        values[f":s{i}"] = _ser.serialize(v)
        parts.append(f"#s{i} = :s{i}")
    for i, (k, v) in enumerate((if_not_exists or {}).items()):
        names[f"#n{i}"] = k
        values[f":n{i}"] = _ser.serialize(v)
        parts.append(f"#n{i} = if_not_exists(#n{i}, :n{i})")
    if add_failure is not None:
        names["#f"] = "failures"
        if add_failure:
            values[":zero"], values[":one"] = _ser.serialize(0), _ser.serialize(1)
            parts.append("#f = if_not_exists(#f, :zero) + :one")
        else:
            values[":zero"] = _ser.serialize(0)
            parts.append("#f = :zero")
    expression = "SET " + ", ".join(parts)
    removes = [r for r in removes if r not in sets]
    if removes:
        for i, r in enumerate(removes):
            names[f"#r{i}"] = r
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
    ddb.update_item(TableName=table, Key={"unit": _ser.serialize(unit.key)}, UpdateExpression=expression,
                    ExpressionAttributeNames=names, ExpressionAttributeValues=values)


def record_run(ddb: Any, table: str, unit: WorkUnit, task: str, *, status: str, now_ms: int,
               watermark_ms: int | None = None, error: str | None = None, dead_lettered: bool = False,
               gaps: tuple[int, int] | None = None, final: bool = True,
               funding_interval_h: int | None = None) -> None:
    """A worker's report of one unit. ``watermark_ms`` only from a run that held the series lease;
    ``gaps`` = (repaired, remaining) from a repair pass; ``final`` False for a failure SQS will
    retry (its message is still outstanding)."""
    sets: dict[str, Any] = {"status": status, "updated_ms": now_ms}
    if final:
        sets[f"{task}_done_ms"] = now_ms
    if watermark_ms is not None:
        sets["watermark_ms"] = int(watermark_ms)
    if funding_interval_h:
        sets["funding_interval_h"] = int(funding_interval_h)
    if error is not None:
        sets["error"] = error[:1000]
    if dead_lettered:
        sets["dead_lettered_ms"] = now_ms
    if gaps is not None:
        sets.update(gaps_repaired=int(gaps[0]), gaps_remaining=int(gaps[1]), repaired_ms=now_ms)
    _update(ddb, table, unit, sets, removes=() if error is not None else ("error",),
            add_failure=error is not None)


def mark_sent(ddb: Any, table: str, unit: WorkUnit, task: str, now_ms: int) -> None:
    _update(ddb, table, unit, {f"{task}_sent_ms": now_ms}, if_not_exists={"first_sent_ms": now_ms})


def mark_digest(ddb: Any, table: str, unit: WorkUnit, now_ms: int) -> None:
    _update(ddb, table, unit, {"digest_ms": now_ms})
