"""Units of work of the ingest: what the dispatcher hands out and a worker does, one per message.

Standard library only: the CDK stack builds the schedules' input with it, the dispatcher reads
that input and writes messages with it, the worker reads the messages.

A unit is keyed by (market, kind, symbol, interval): spot trade klines (``spot``/``klines``);
USDⓈ-M perps ``um``/``klines``, ``um``/``mark`` and ``um``/``funding`` (funding has no interval),
each with its runner in the worker. A task says
what to do with a unit: ``ingest`` (the tail, every 15 minutes) or ``repair`` (interior gaps,
daily).

Schedule input (the EventBridge rule's constant JSON, at most 8,192 characters)::

    {"task": "ingest", "series": [{"market": "spot", "kind": "klines",
                                   "symbols": ["BTCUSDT", ...], "intervals": ["15m", ...]}]}

Work message (one SQS message per unit)::

    {"task": "ingest", "market": "spot", "kind": "klines", "symbol": "BTCUSDT", "interval": "15m",
     "sent_ms": 1704067260000}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from engine.data.binance import INTERVALS, is_symbol

TASK_INGEST = "ingest"
TASK_REPAIR = "repair"
TASKS = (TASK_INGEST, TASK_REPAIR)
#: The kinds of series each market has, and whether a kind has an interval.
KINDS: dict[str, dict[str, bool]] = {"spot": {"klines": True},
                                     "um": {"klines": True, "mark": True, "funding": False}}
#: EventBridge's limit on a target's constant input.
SCHEDULE_INPUT_LIMIT = 8192


class UnitError(ValueError):
    """A schedule input or a work message the ingest cannot act on; the message names the field."""


@dataclass(frozen=True, order=True)
class WorkUnit:
    market: str
    kind: str
    symbol: str
    interval: str | None

    def __post_init__(self) -> None:
        kinds = KINDS.get(self.market)
        if kinds is None:
            raise UnitError(f"market {self.market!r} is not one of {', '.join(KINDS)}")
        if self.kind not in kinds:
            raise UnitError(f"kind {self.kind!r} is not one of {self.market}'s: {', '.join(kinds)}")
        if not is_symbol(self.symbol):
            raise UnitError(f"symbol {self.symbol!r} is not a Binance symbol like BTCUSDT")
        if kinds[self.kind]:
            if self.interval not in INTERVALS:
                raise UnitError(f"interval {self.interval!r} is not a Binance kline interval")
        elif self.interval is not None:
            raise UnitError(f"{self.market} {self.kind} has no interval, got {self.interval!r}")

    @property
    def key(self) -> str:
        """The unit's key in the watermark index; it starts with the market (IAM conditions use that)."""
        return f"{self.market}#{self.kind}#{self.symbol}#{self.interval or '-'}"

    @property
    def label(self) -> str:
        return " ".join(x for x in (self.market, self.kind, self.symbol, self.interval) if x)

    def message(self, task: str, sent_ms: int) -> str:
        return json.dumps({"task": task, "market": self.market, "kind": self.kind, "symbol": self.symbol,
                           "interval": self.interval, "sent_ms": int(sent_ms)}, separators=(",", ":"))


def index_key_prefix(market: str) -> str:
    """Every index key of a market starts with this (the worker's IAM condition per market)."""
    return f"{market}#"


def parse_message(body: str) -> tuple[str, WorkUnit, int]:
    """(task, unit, sent_ms) of a work message; UnitError naming what is wrong."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError):
        raise UnitError(f"work message is not JSON: {str(body)[:80]!r}") from None
    if not isinstance(doc, dict):
        raise UnitError("work message is not a JSON object")
    task = doc.get("task")
    if task not in TASKS:
        raise UnitError(f"task {task!r} is not one of {', '.join(TASKS)}")
    try:
        unit = WorkUnit(doc.get("market"), doc.get("kind"), doc.get("symbol"), doc.get("interval"))
        sent = int(doc.get("sent_ms"))
    except (TypeError, ValueError) as exc:
        raise UnitError(f"work message: {exc}") from None
    return task, unit, sent


@dataclass(frozen=True)
class SeriesGroup:
    """Every symbol x interval of one market's kind (intervals empty for a kind without one)."""

    market: str
    kind: str
    symbols: tuple[str, ...]
    intervals: tuple[str, ...] = ()

    def units(self) -> list[WorkUnit]:
        if not KINDS.get(self.market, {}).get(self.kind, True):
            return [WorkUnit(self.market, self.kind, s, None) for s in self.symbols]
        return [WorkUnit(self.market, self.kind, s, i) for s in self.symbols for i in self.intervals]


def plan_units(groups: Iterable[SeriesGroup]) -> list[WorkUnit]:
    """Every unit of the groups, once each, in a stable order."""
    return sorted(set(u for g in groups for u in g.units()))


def schedule_input(task: str, groups: Iterable[SeriesGroup]) -> dict[str, Any]:
    """The constant input of a schedule rule; UnitError if it exceeds EventBridge's limit."""
    if task not in TASKS:
        raise UnitError(f"task {task!r} is not one of {', '.join(TASKS)}")
    groups = list(groups)
    plan_units(groups)  # validates every unit
    doc = {"task": task, "series": [{"market": g.market, "kind": g.kind, "symbols": list(g.symbols),
                                     **({"intervals": list(g.intervals)} if g.intervals else {})}
                                    for g in groups]}
    size = len(json.dumps(doc, separators=(",", ":")))
    if size > SCHEDULE_INPUT_LIMIT:
        raise UnitError(f"the series list is {size} characters as a schedule input; EventBridge allows "
                        f"{SCHEDULE_INPUT_LIMIT}: configure fewer symbols")
    return doc


def parse_schedule(event: Any) -> tuple[str, list[WorkUnit]]:
    """(task, units) of a schedule rule's input."""
    if not isinstance(event, dict):
        raise UnitError("dispatcher event is not a JSON object")
    task = event.get("task")
    if task not in TASKS:
        raise UnitError(f"dispatcher event: task {task!r} is not one of {', '.join(TASKS)}")
    series = event.get("series")
    if not isinstance(series, list) or not series:
        raise UnitError("dispatcher event: 'series' must be a non-empty list")
    groups = []
    for g in series:
        if not isinstance(g, dict) or not isinstance(g.get("symbols"), list):
            raise UnitError(f"dispatcher event: bad series group {str(g)[:80]!r}")
        groups.append(SeriesGroup(g.get("market"), g.get("kind"), tuple(g["symbols"]),
                                  tuple(g.get("intervals") or ())))
    return task, plan_units(groups)
