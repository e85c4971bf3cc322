"""Scheduled candle ingest: Binance klines -> raw/ JSON batches and candles/ Parquet, on S3.

A thin layer over ``engine.data``: the paging loop is :func:`engine.data.fetch.fetch_candles`'s,
the closed-candle rule, retries and rate limits :class:`engine.data.klines.KlinesClient`'s, the
watermark and the deduplicating month-partition upsert ``engine.data.dataset``'s, the series
lease :mod:`engine.data.series_lock`'s. This module only reads the environment, budgets pages
and time, archives each batch, honours a 418 ban, logs and publishes metrics.

Per invocation: if an earlier invocation was banned (HTTP 418), its "blocked until" is in
``s3://BUCKET/locks/binance-blocked.json`` (storage_layout.BLOCKED_KEY); until then every
invocation skips Binance entirely (log line ``ingest_blocked_skip`` and the metric
``BlockedSkips``): Binance lengthens repeat bans, and more requests would do that.

Per configured symbol x interval, in the order SYMBOLS x INTERVALS:

1. Take the series lease (:mod:`engine.data.series_lock`, at storage_layout.series_lock_key:
   ``locks/symbol=S/interval=I.json``, the same lease ``backtest data fetch/backfill/build``
   take on S3). Held by another writer: skip the series (status ``locked``).
2. Fetch with ``engine.data.fetch.fetch_candles`` in its tail mode: from just after the
   newest open time already in ``s3://BUCKET/CANDLES_PREFIX`` (no separate state), or from
   HISTORY_START when nothing is stored yet (catch-up). Before each page the budget stops
   the series if the page budget is spent (MAX_PAGES_PER_RUN per invocation, shared fairly:
   a series may use ceil(pages left / series left), unused pages pass on) or if less than
   the safety margin of Lambda time remains: max(30 s, 2 x the slowest page so far), from
   ``context.get_remaining_time_in_millis()``. A retry back-off that would eat into the
   margin also stops the series (as "out_of_time", not an error).
3. Each page is committed before the next is requested: the batch goes to
   ``raw/symbol=S/interval=I/<first_open>-<last_open>.json`` (storage_layout.raw_batch_key,
   so a repeat overwrites the same object), then it is upserted into its month
   partition(s) (dedupe on open_time). A timeout loses at most the page in flight.

Raw batch format (normalised, NOT Binance's bytes): ``{"symbol", "interval", "source",
"columns": [open_time, open, high, low, close, volume, close_time, quote_volume, trades,
taker_buy_base_volume, taker_buy_quote_volume], "rows": [[...], ...]}`` -- Binance's field
order without the unused 12th field, times/trades as integers, prices and volumes as
JSON numbers (the decimal strings parsed to float64; they round-trip exactly), closed
candles only. Same window -> same key and byte-identical body.

Logging contract: one JSON object per line on stdout (CloudWatch Logs Insights parses
the fields). Every line has ``level``, ``event``, ``request_id``.
- ``ingest_series`` (one per symbol/interval): symbol, interval, status (caught_up |
  max_pages | out_of_time | locked | blocked | error), candles_added, watermark_before,
  watermark_after (ms or null, plus *_utc text), pages, requests, raw_keys, used_weight
  (last X-MBX-USED-WEIGHT-1M seen), duration_ms. It is also a CloudWatch Embedded Metric
  Format record (no API call): namespace ``Backtest/Ingest``, metric
  ``WatermarkAgeSeconds`` (Seconds) with dimensions ``Symbol`` and ``Interval`` -- the
  seconds from the close of the newest stored candle (HISTORY_START when none is
  stored) to the end of the invocation; a caught-up 15m series reads about 60-960 s.
  Left out only when the watermark could not be read.
- ``ingest_summary`` (one per invocation): series, candles_added, pages, requests,
  used_weight, complete (every series caught up), failed, event_time, remaining_ms,
  duration_ms, blocked_until (ms or null).
- ``ingest_blocked_skip`` (WARNING, only while blocked): blocked_until, blocked_until_utc,
  http_status; an EMF record of ``BlockedSkips`` = 1 (Count, no dimensions).
- ``ingest_error`` (level ERROR): symbol, interval, error_type, error, http_status for
  a ban. ``ingest_config_error`` for a bad environment.

Errors: HTTP 418/451 (ban / restricted location) is IP-wide, so the invocation stops at
once -- later series are NOT attempted (more requests lengthen a 418 ban) -- logs, and
raises: the invocation fails, Lambda retries it (bounded) and then it goes to the DLQ.
A 418 also stores "blocked until" (now + its Retry-After, else BLOCK_DEFAULT_S), so the
retries and the scheduled runs skip until then. Any other failure of a series (Binance
error after the client's retries, bad page, S3) is logged and the remaining series are
still attempted; the invocation then raises :class:`IngestFailed`. What was committed
before a failure stays. On success the handler returns the JSON-serialisable summary.

Concurrency: reserved concurrency is optional; overlapping invocations are safe because
of the series lease. It expires at the holder's Lambda deadline + 60 s, after which
another writer takes it over, so a killed invocation blocks no one for long. An
interrupted write leaves at worst a month partition with two files (new written before
old deleted); the next holder merges them.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import awswrangler as wr
import boto3

from engine import storage_layout
from engine.data.dataset import last_open_time, tidy_series
from engine.data.s3_errors import s3_error_code
from engine.data.fetch import FetchResult, FetchStopped, fetch_candles
from engine.data.binance import INTERVALS, KEPT_FIELDS, is_symbol
from engine.data.klines import DEFAULT_BASE_URL, BinanceBlocked, KlinesClient
from engine.data.series_lock import S3Lease
from engine.errors import UserError
from engine.timeutil import format_time, interval_to_ms, parse_time

MIN_MARGIN_MS = 30_000          # never start a page with less Lambda time left than this
PAGE_MARGIN_FACTOR = 2          # ... nor with less than this many times the slowest page so far
HTTP_TIMEOUT_S = 10.0           # one Binance request, whole response (the client retries on timeouts)
LOCK_GRACE_MS = 60_000          # a lease outlives its holder's deadline by this much
NO_CONTEXT_MS = 15 * 60_000     # time budget when called without a Lambda context (local runs)
BLOCK_DEFAULT_S = 900           # a 418 without Retry-After blocks this long (one schedule slot)
DEFAULT_MAX_PAGES = 200
RAW_COLUMNS = KEPT_FIELDS       # Binance's 12 fields without "ignore"
METRIC_NAMESPACE = "Backtest/Ingest"

#: The klines client's sleep between retries (tests replace it; the Lambda really waits).
SLEEP = time.sleep
#: Wall clock (seconds) for leases, "blocked until" and watermark ages (tests replace it).
CLOCK = time.time


class SettingsError(UserError):
    """The Lambda's environment variables are missing or invalid."""


class IngestFailed(RuntimeError):
    """One or more series failed (other series were still attempted); the invocation fails."""


# --------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    bucket: str
    candles_prefix: str
    raw_prefix: str
    symbols: tuple[str, ...]
    intervals: tuple[str, ...]
    history_start: int   # ms
    base_url: str
    max_pages_per_run: int

    @property
    def candles_root(self) -> str:
        return storage_layout.s3_uri(self.bucket, self.candles_prefix)

    def raw_key(self, symbol: str, interval: str, first_open: int, last_open: int) -> str:
        """storage_layout.raw_batch_key, re-rooted at RAW_PREFIX (the same unless the env overrides it)."""
        key = storage_layout.raw_batch_key(symbol, interval, first_open, last_open)
        return self.raw_prefix + key[len(storage_layout.RAW_PREFIX):]


def _prefix(value: str | None, default: str, name: str, problems: list[str]) -> str:
    text = (value if value is not None else default).strip()
    if not text or text.startswith("/") or "://" in text:
        problems.append(f"{name}={value!r} must be a relative key prefix like {default!r}")
        return default
    return text if text.endswith("/") else text + "/"


def _items(env: Mapping[str, str], name: str, problems: list[str]) -> tuple[str, ...]:
    items = tuple(s.strip() for s in env.get(name, "").split(",") if s.strip())
    if not items:
        problems.append(f"{name} is not set (comma-separated list)")
    return items


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Read and check the environment; every problem is named in one SettingsError."""
    problems: list[str] = []
    bucket = env.get("BUCKET_NAME", "").strip()
    if not bucket:
        problems.append("BUCKET_NAME is not set (the dataset bucket's name)")
    elif "/" in bucket or ":" in bucket:
        problems.append(f"BUCKET_NAME={bucket!r} must be a bare bucket name, not a URI or path")
    symbols = _items(env, "SYMBOLS", problems)
    for s in symbols:
        if not is_symbol(s):
            problems.append(f"SYMBOLS: {s!r} is not a Binance symbol like BTCUSDT")
    intervals = _items(env, "INTERVALS", problems)
    for i in intervals:
        if i not in INTERVALS:
            problems.append(f"INTERVALS: {i!r} is not a Binance kline interval ({', '.join(INTERVALS)})")
    history_start = 0
    if not env.get("HISTORY_START", "").strip():
        problems.append("HISTORY_START is not set (ISO date like 2017-08-17, or epoch ms)")
    else:
        try:
            history_start = parse_time(env["HISTORY_START"])
        except UserError as exc:
            problems.append(f"HISTORY_START: {exc}")
    base_url = env.get("BINANCE_BASE_URL", "").strip() or DEFAULT_BASE_URL
    if not base_url.startswith(("https://", "http://")):
        problems.append(f"BINANCE_BASE_URL={base_url!r} must be an http(s) URL")
    max_pages = DEFAULT_MAX_PAGES
    raw_pages = env.get("MAX_PAGES_PER_RUN", "").strip()
    if raw_pages:
        try:
            max_pages = int(raw_pages)
            if max_pages < 1:
                raise ValueError
        except ValueError:
            problems.append(f"MAX_PAGES_PER_RUN={raw_pages!r} must be a whole number >= 1")
    candles_prefix = _prefix(env.get("CANDLES_PREFIX"), storage_layout.CANDLES_PREFIX, "CANDLES_PREFIX", problems)
    raw_prefix = _prefix(env.get("RAW_PREFIX"), storage_layout.RAW_PREFIX, "RAW_PREFIX", problems)
    if problems:
        raise SettingsError("ingest Lambda environment: " + "; ".join(problems))
    return Settings(bucket, candles_prefix, raw_prefix, symbols, intervals, history_start, base_url.rstrip("/"),
                    max_pages)


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The environment, parsed once per execution environment (an error is not cached)."""
    return parse_settings(os.environ)


# --------------------------------------------------------------------------- logging

def log(level: str, event: str, **fields: Any) -> None:
    """One JSON object on one stdout line (one write, so overlapping threads do not interleave)."""
    sys.stdout.write(json.dumps({"level": level, "event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def _utc(ms: int | None) -> str | None:
    return None if ms is None else format_time(ms)


def emf(metrics: Mapping[str, tuple[float, str]], dimensions: Mapping[str, str]) -> dict[str, Any]:
    """CloudWatch Embedded Metric Format fields for a log line: ``{name: (value, unit)}`` under
    METRIC_NAMESPACE with one dimension set (empty: no dimensions)."""
    return {"_aws": {"Timestamp": int(CLOCK() * 1000),
                     "CloudWatchMetrics": [{"Namespace": METRIC_NAMESPACE, "Dimensions": [list(dimensions)],
                                            "Metrics": [{"Name": n, "Unit": u} for n, (_, u) in metrics.items()]}]},
            **dimensions, **{n: v for n, (v, _) in metrics.items()}}


# --------------------------------------------------------------------------- AWS clients

_local = threading.local()


def _aws() -> tuple[Any, Any]:
    """A boto3 session and S3 client, reused by warm invocations (model loading costs ~0.5 s).

    Per thread, because sessions are not thread-safe (the Lambda has one thread; tests overlap
    invocations in threads). Raw objects and locks go to the S3 endpoint awswrangler uses.
    """
    endpoint = wr.config.s3_endpoint_url
    cached = getattr(_local, "aws", None)
    if cached is None or cached[0] != endpoint:
        session = boto3.Session()
        _local.aws = cached = (endpoint, session, session.client("s3", endpoint_url=endpoint))
    return cached[1], cached[2]


# --------------------------------------------------------------------------- one invocation

class _Invocation:
    def __init__(self, cfg: Settings, context: Any, event: Any):
        self.cfg = cfg
        self.context = context
        self.event = event if isinstance(event, dict) else {}
        self.request_id = getattr(context, "aws_request_id", None) or f"local-{uuid.uuid4()}"
        self.started = time.monotonic()
        self._deadline_no_context = self.started + NO_CONTEXT_MS / 1000
        self.session, self.s3 = _aws()
        self.client = KlinesClient(cfg.base_url, sleep=self._sleep, timeout=HTTP_TIMEOUT_S, clock=CLOCK)
        self.slowest_page_ms = 0
        self._page_started_ms = 0
        self.blocked: BinanceBlocked | None = None
        self.blocked_until: int | None = None

    # ---- time budget

    def remaining_ms(self) -> int:
        if self.context is not None and hasattr(self.context, "get_remaining_time_in_millis"):
            return int(self.context.get_remaining_time_in_millis())
        return int((self._deadline_no_context - time.monotonic()) * 1000)

    def margin_ms(self) -> int:
        return max(MIN_MARGIN_MS, PAGE_MARGIN_FACTOR * self.slowest_page_ms)

    def _sleep(self, seconds: float) -> None:
        if self.remaining_ms() - seconds * 1000 < self.margin_ms():
            raise FetchStopped("out_of_time")  # a back-off that would run into the margin
        SLEEP(seconds)

    def _budget(self, allowance: int):
        def before_page(pages: int) -> str | None:
            if pages >= allowance:
                return "max_pages"
            self._page_started_ms = self.remaining_ms()
            if self._page_started_ms < self.margin_ms():
                return "out_of_time"
            return None
        return before_page

    def _page_done(self, rec: dict[str, Any], rows: int) -> None:
        """After a page is committed: its time, and the series record kept current (an error may follow)."""
        self.slowest_page_ms = max(self.slowest_page_ms, self._page_started_ms - self.remaining_ms())
        rec["pages"] += 1
        rec["candles_added"] += rows
        rec["watermark_after"] = rec.pop("_pending", rec["watermark_after"])

    def _lease(self, symbol: str, interval: str) -> S3Lease:
        return S3Lease(self.s3, self.cfg.bucket, storage_layout.series_lock_key(symbol, interval),
                       owner=self.request_id, command="ingest Lambda", clock=CLOCK,
                       ttl_ms=lambda: max(0, self.remaining_ms()) + LOCK_GRACE_MS,
                       extra={"function": getattr(self.context, "function_name", None)})

    # ---- the 418 ban

    def read_blocked(self) -> dict | None:
        """The stored ban, if it is still running."""
        try:
            body = self.s3.get_object(Bucket=self.cfg.bucket, Key=storage_layout.BLOCKED_KEY)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - no ban stored (or unreadable): go ahead
            if s3_error_code(exc) not in ("NoSuchKey", "404"):
                log("WARNING", "ingest_blocked_unreadable", request_id=self.request_id, error=str(exc))
            return None
        try:
            ban = json.loads(body)
            until = int(ban["blocked_until"])
        except (ValueError, TypeError, KeyError):
            return None
        return ban if until > CLOCK() * 1000 else None

    def store_blocked(self, exc: BinanceBlocked) -> None:
        seconds = exc.retry_after if exc.retry_after else BLOCK_DEFAULT_S
        until = int(CLOCK() * 1000 + seconds * 1000)
        self.blocked_until = until
        body = {"blocked_until": until, "blocked_until_utc": format_time(until), "http_status": exc.status,
                "retry_after_s": exc.retry_after, "set_by": self.request_id, "error": str(exc)}
        try:
            self.s3.put_object(Bucket=self.cfg.bucket, Key=storage_layout.BLOCKED_KEY,
                               Body=json.dumps(body).encode(), ContentType="application/json")
        except Exception as exc2:  # noqa: BLE001 - the ban itself is still reported and raised
            log("ERROR", "ingest_blocked_store_failed", request_id=self.request_id, error=str(exc2))

    # ---- raw batch

    def write_raw(self, symbol: str, interval: str, page: Any) -> str:
        t = page["open_time"]
        key = self.cfg.raw_key(symbol, interval, int(t.iloc[0]), int(t.iloc[-1]))
        columns = [page[c].tolist() for c in RAW_COLUMNS]  # per column: ints stay ints
        body = json.dumps({"symbol": symbol, "interval": interval, "source": self.cfg.base_url,
                           "columns": list(RAW_COLUMNS), "rows": [list(r) for r in zip(*columns)]},
                          separators=(",", ":")).encode()
        self.s3.put_object(Bucket=self.cfg.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    # ---- one series

    def ingest_series(self, symbol: str, interval: str, page_allowance: int, *,
                      skip: str | None = None) -> dict[str, Any]:
        started, requests_before = time.monotonic(), self.client.requests
        rec: dict[str, Any] = {"symbol": symbol, "interval": interval, "status": None, "candles_added": 0,
                               "watermark_before": None, "watermark_after": None, "pages": 0, "raw_keys": 0}
        watermark_known = False
        try:
            if skip is None and page_allowance < 1:
                skip = "max_pages"
            if skip is None and self.remaining_ms() < self.margin_ms():
                skip = "out_of_time"
            lease = self._lease(symbol, interval) if skip is None else None
            if lease is not None and not lease.try_acquire():
                skip = "locked"
            if skip is not None:
                rec["status"] = skip
                rec["watermark_before"] = rec["watermark_after"] = last_open_time(
                    self.cfg.candles_root, symbol, interval, session=self.session)
                watermark_known = True
                return rec
            try:
                tidy_series(self.cfg.candles_root, symbol, interval, session=self.session)
                result = fetch_candles(
                    self.cfg.candles_root, symbol, interval, self.cfg.history_start, client=self.client,
                    session=self.session, cover=False, lock=lease, budget=self._budget(page_allowance),
                    progress=lambda rows: self._page_done(rec, rows),
                    before_commit=lambda page: self._archive(symbol, interval, page, rec))
            finally:
                lease.release()
            self._fill(rec, result)
            watermark_known = True
        except BinanceBlocked as exc:  # IP-wide: run() stops here and raises it
            if exc.status == 418:
                self.store_blocked(exc)
            self._error(rec, exc, http_status=exc.status)
            self.blocked = exc
        except Exception as exc:  # noqa: BLE001 -- logged, other series still attempted, then raised
            self._error(rec, exc)
        finally:
            rec["watermark_before_utc"] = _utc(rec["watermark_before"])
            rec["watermark_after_utc"] = _utc(rec["watermark_after"])
            rec["requests"] = self.client.requests - requests_before
            rec["used_weight"] = self.client.used_weight
            rec["duration_ms"] = int((time.monotonic() - started) * 1000)
            rec.pop("_pending", None)
            metric = self._watermark_age(rec, interval) if watermark_known or rec["watermark_after"] else {}
            log("ERROR" if rec["status"] == "error" else "INFO", "ingest_series", request_id=self.request_id,
                **rec, **metric)
        return rec

    def _archive(self, symbol: str, interval: str, page: Any, rec: dict[str, Any]) -> None:
        self.write_raw(symbol, interval, page)
        rec["raw_keys"] += 1
        rec["_pending"] = int(page["open_time"].iloc[-1])

    def _fill(self, rec: dict[str, Any], result: FetchResult) -> None:
        rec["status"] = result.stopped or "caught_up"
        rec["candles_added"] = result.added
        rec["pages"] = result.pages
        rec["watermark_before"] = result.watermark_before
        rec["watermark_after"] = result.watermark_after

    def _watermark_age(self, rec: dict[str, Any], interval: str) -> dict[str, Any]:
        wm = rec["watermark_after"]
        newest_close = wm + interval_to_ms(interval) if wm is not None else self.cfg.history_start
        age = max(0.0, round(CLOCK() - newest_close / 1000, 3))
        return emf({"WatermarkAgeSeconds": (age, "Seconds")}, {"Symbol": rec["symbol"], "Interval": interval})

    def _error(self, rec: dict[str, Any], exc: BaseException, **extra: Any) -> None:
        rec["status"] = "error"
        rec["error"] = str(exc)
        log("ERROR", "ingest_error", request_id=self.request_id, symbol=rec["symbol"], interval=rec["interval"],
            error_type=type(exc).__name__, error=str(exc), **extra)

    # ---- all series

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        series = [(s, i) for s in cfg.symbols for i in cfg.intervals]
        records: list[dict[str, Any]] = []
        ban = self.read_blocked()
        if ban is not None:
            self.blocked_until = int(ban["blocked_until"])
            log("WARNING", "ingest_blocked_skip", request_id=self.request_id, blocked_until=self.blocked_until,
                blocked_until_utc=_utc(self.blocked_until), http_status=ban.get("http_status"),
                **emf({"BlockedSkips": (1, "Count")}, {}))
            for symbol, interval in series:
                records.append(self.ingest_series(symbol, interval, 0, skip="blocked"))
        else:
            pages_left = cfg.max_pages_per_run
            for n, (symbol, interval) in enumerate(series):
                allowance = math.ceil(pages_left / (len(series) - n))
                records.append(self.ingest_series(symbol, interval, allowance))
                pages_left -= records[-1]["pages"]
                if self.blocked is not None:
                    break
        summary = self.summary(records, len(series))
        log("ERROR" if summary["failed"] else "INFO", "ingest_summary", **summary)
        if self.blocked is not None:
            raise self.blocked
        if summary["failed"]:
            raise IngestFailed(f"{len(summary['failed'])} of {len(series)} series failed: "
                               + "; ".join(f"{f['symbol']} {f['interval']}: {f['error']}" for f in summary["failed"]))
        return summary

    def summary(self, records: list[dict[str, Any]], n_series: int) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "event_time": self.event.get("time"),
            "series": [{k: r.get(k) for k in ("symbol", "interval", "status", "candles_added", "pages",
                                               "watermark_before", "watermark_after")} for r in records],
            "candles_added": sum(r["candles_added"] for r in records),
            "pages": sum(r["pages"] for r in records),
            "requests": self.client.requests,
            "used_weight": self.client.used_weight,
            "complete": len(records) == n_series and all(r["status"] == "caught_up" for r in records),
            "failed": [{"symbol": r["symbol"], "interval": r["interval"], "error": r.get("error")}
                       for r in records if r["status"] == "error"],
            "blocked_until": self.blocked_until,
            "remaining_ms": self.remaining_ms(),
            "duration_ms": int((time.monotonic() - self.started) * 1000),
        }


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge scheduled event; the event's content is only logged)."""
    try:
        cfg = settings()
    except SettingsError as exc:
        log("ERROR", "ingest_config_error", request_id=getattr(context, "aws_request_id", None), error=str(exc))
        raise
    return _Invocation(cfg, context, event).run()
