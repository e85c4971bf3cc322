"""What both ingest functions share: their environment, JSON log lines, metrics, clocks and AWS clients.

No pandas or awswrangler here: the dispatcher imports this module and stays light.

Metrics are CloudWatch Embedded Metric Format fields on a log line (no API call), in the
namespace ``Backtest/Ingest`` and without dimensions, so their number does not grow with the
number of series (see :data:`METRICS`). Per-series figures are fields of the log lines only.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from engine.errors import UserError
from engine.timeutil import format_time, parse_time

METRIC_NAMESPACE = "Backtest/Ingest"
#: Every custom metric the ingest publishes (none has a dimension): name -> unit.
METRICS = {
    "OldestWatermarkAgeSeconds": "Seconds",  # dispatcher: the oldest series' watermark age (lag.py)
    "LaggingSeries": "Count",                # dispatcher: series whose age is above the alarm threshold
    "UnitsDispatched": "Count",              # dispatcher: messages sent this run
    "SeriesFailures": "Count",               # worker: a unit failed (retried by SQS)
    "DeadLettered": "Count",                 # worker: a unit failed its last attempt and goes to the DLQ
    "BlockedSkips": "Count",                 # both: skipped because of a 418 "blocked until"
    "GeoBlocked": "Count",                   # both: skipped, or answered, because of a 451 "geo-blocked"
    "GapsRepaired": "Count",                 # worker (repair): interior gaps filled or confirmed empty
    "GapsRemaining": "Count",                # worker (repair): interior gaps still unexplained afterwards
    "CandlesAdded": "Count",                 # worker: candles new to the dataset
}
DEFAULT_MAX_PAGES = 200
DEFAULT_MAX_RECEIVES = 3

#: Wall clock in seconds (tests replace it with a simulated one).
CLOCK: Callable[[], float] = time.time
#: The klines client's sleep between retries (tests replace it; the Lambda really waits).
SLEEP: Callable[[float], None] = time.sleep


class SettingsError(UserError):
    """The function's environment variables are missing or invalid."""


@dataclass(frozen=True)
class Settings:
    bucket: str
    index_table: str
    history_start: int        # ms
    base_url: str             # the spot market's Binance endpoint
    max_pages_per_run: int = DEFAULT_MAX_PAGES
    max_receives: int = DEFAULT_MAX_RECEIVES
    queue_url: str = ""       # dispatcher: where units go
    alarm_topic_arn: str = ""  # dispatcher: where the lag digest goes ("" = nowhere)
    lag_alarm_ms: int = 600_000
    outstanding_ms: int = 3_600_000  # dispatcher: a sent unit not reported done is still in flight this long
    fapi_base_url: str = "https://fapi.binance.com"  # the USDⓈ-M market's endpoint

    def base_url_for(self, market: str) -> str:
        """The Binance endpoint of a market (its 418/451 marker names it)."""
        return self.fapi_base_url if market == "um" else self.base_url


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
        if value < minimum:
            raise ValueError
        return value
    except ValueError:
        problems.append(f"{name}={raw!r} must be a whole number >= {minimum}")
        return default


def parse_settings(env: Mapping[str, str], *, dispatcher: bool = False) -> Settings:
    """Read and check the environment; every problem is named in one SettingsError."""
    problems: list[str] = []
    bucket = env.get("BUCKET_NAME", "").strip()
    if not bucket:
        problems.append("BUCKET_NAME is not set (the dataset bucket's name)")
    elif "/" in bucket or ":" in bucket:
        problems.append(f"BUCKET_NAME={bucket!r} must be a bare bucket name, not a URI or path")
    table = env.get("INDEX_TABLE", "").strip()
    if not table:
        problems.append("INDEX_TABLE is not set (the watermark index table's name)")
    history_start = 0
    if not env.get("HISTORY_START", "").strip():
        problems.append("HISTORY_START is not set (ISO date like 2017-08-17, or epoch ms)")
    else:
        try:
            history_start = parse_time(env["HISTORY_START"])
        except UserError as exc:
            problems.append(f"HISTORY_START: {exc}")
    base_url = env.get("BINANCE_BASE_URL", "").strip() or "https://data-api.binance.vision"
    if not base_url.startswith(("https://", "http://")):
        problems.append(f"BINANCE_BASE_URL={base_url!r} must be an http(s) URL")
    fapi_url = env.get("BINANCE_FAPI_BASE_URL", "").strip() or "https://fapi.binance.com"
    if not fapi_url.startswith(("https://", "http://")):
        problems.append(f"BINANCE_FAPI_BASE_URL={fapi_url!r} must be an http(s) URL")
    max_pages = _int(env, "MAX_PAGES_PER_RUN", DEFAULT_MAX_PAGES, 1, problems)
    max_receives = _int(env, "MAX_RECEIVES", DEFAULT_MAX_RECEIVES, 1, problems)
    lag_alarm_s = _int(env, "LAG_ALARM_SECONDS", 600, 60, problems)
    outstanding_s = _int(env, "OUTSTANDING_SECONDS", 3600, 60, problems)
    queue_url = env.get("QUEUE_URL", "").strip()
    if dispatcher and not queue_url:
        problems.append("QUEUE_URL is not set (the work queue's URL)")
    if problems:
        raise SettingsError("ingest environment: " + "; ".join(problems))
    return Settings(bucket, table, history_start, base_url.rstrip("/"), max_pages, max_receives, queue_url,
                    env.get("ALARM_TOPIC_ARN", "").strip(), lag_alarm_s * 1000, outstanding_s * 1000,
                    fapi_url.rstrip("/"))


@functools.lru_cache(maxsize=2)
def settings(dispatcher: bool = False) -> Settings:
    """The environment, parsed once per execution environment (an error is not cached)."""
    return parse_settings(os.environ, dispatcher=dispatcher)


# --------------------------------------------------------------------------- logging and metrics

def log(level: str, event: str, **fields: Any) -> None:
    """One JSON object on one stdout line (one write, so overlapping threads do not interleave)."""
    sys.stdout.write(json.dumps({"level": level, "event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def utc(ms: int | None) -> str | None:
    return None if ms is None else format_time(ms)


def now_ms() -> int:
    return int(CLOCK() * 1000)


def emf(**values: float) -> dict[str, Any]:
    """Embedded Metric Format fields for a log line: each ``name=value`` of :data:`METRICS`, no dimensions."""
    unknown = set(values) - set(METRICS)
    if unknown:
        raise ValueError(f"not an ingest metric: {sorted(unknown)}")
    return {"_aws": {"Timestamp": now_ms(),
                     "CloudWatchMetrics": [{"Namespace": METRIC_NAMESPACE, "Dimensions": [[]],
                                            "Metrics": [{"Name": n, "Unit": METRICS[n]} for n in values]}]},
            **values}


# --------------------------------------------------------------------------- AWS clients

_local = threading.local()


def client(service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client per thread and service, reused by warm invocations (model loading costs ~0.5 s).

    Per thread, because sessions are not thread-safe (the Lambda has one thread; tests run
    workers in threads)."""
    import boto3

    cache = _local.__dict__.setdefault("clients", {})
    key = (service, endpoint_url)
    if key not in cache:
        cache[key] = session().client(service, endpoint_url=endpoint_url)
    return cache[key]


def s3_endpoint() -> str | None:
    """The S3 endpoint awswrangler uses (tests point it at moto); only the worker imports awswrangler."""
    import awswrangler as wr

    return wr.config.s3_endpoint_url


def session() -> Any:
    """This thread's boto3 session, made once (not a new one per call: each costs ~6 ms of CPU)."""
    import boto3

    if "session" not in _local.__dict__:
        _local.session = boto3.Session()
    return _local.session


def reset_clients() -> None:
    """Forget this thread's cached clients (tests point them at a new endpoint)."""
    _local.__dict__.clear()
