"""Scheduled candle ingest: Binance klines -> raw/ JSON batches and candles/ Parquet, on S3.

A thin layer over ``engine.data``: the paging, closed-candle rule, retries and rate
limits are :class:`engine.data.klines.KlinesClient`'s; the watermark and the
deduplicating month-partition upsert are ``engine.data.dataset_io``'s. This module
only reads the environment, budgets pages and time, archives each batch, logs, and
serialises concurrent invocations per series.

Per configured symbol x interval, in the order SYMBOLS x INTERVALS:

1. Take the series lock (below). Held by a live invocation: skip the series.
2. Watermark = newest open time already in ``s3://BUCKET/CANDLES_PREFIX`` (no separate
   state); nothing stored yet -> start at HISTORY_START (catch-up).
3. Fetch closed candles page by page (1000 per page). Before each page, stop if the
   page budget is spent (MAX_PAGES_PER_RUN per invocation, shared fairly: a series may
   use ceil(pages left / series left), unused pages pass on) or if less than the safety
   margin of Lambda time remains: max(30 s, 2 x the slowest page so far), measured with
   ``context.get_remaining_time_in_millis()``. A retry back-off that would eat into the
   margin also stops the series (as "out_of_time", not an error).
4. Each page is committed before the next is requested: the batch goes to
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
  max_pages | out_of_time | locked | error), candles_added, watermark_before,
  watermark_after (ms or null, plus *_utc text), pages, requests, raw_keys, used_weight
  (last X-MBX-USED-WEIGHT-1M seen), duration_ms.
- ``ingest_summary`` (one per invocation): series, candles_added, pages, requests,
  used_weight, complete (every series caught up), failed, event_time, remaining_ms,
  duration_ms.
- ``ingest_error`` (level ERROR): symbol, interval, error_type, error, http_status for
  a ban. ``ingest_config_error`` for a bad environment.

Errors: HTTP 418/451 (ban / restricted location) is IP-wide, so the invocation stops at
once -- later series are NOT attempted (more requests lengthen a 418 ban) -- logs, and
raises: the invocation fails, Lambda retries it (bounded) and then it goes to the DLQ.
Any other failure of a series (Binance error after the client's retries, bad page, S3)
is logged and the remaining series are still attempted; the invocation then raises
:class:`IngestFailed`. What was committed before a failure stays. On success the
handler returns the JSON-serialisable summary.

Concurrency: the stack reserves concurrency 1, but two overlapping invocations are
still safe. The watermark is read from S3 and every write is an idempotent upsert, yet
that alone is not enough: awswrangler's ``overwrite_partitions`` deletes a partition
before writing the new file, and each upsert is read-merge-write, so two writers of the
same month can drop each other's rows (a gap). Hence a per-series lease lock:
``CANDLES_PREFIX/_locks/<symbol>-<interval>.json``, created with a conditional PUT
(``If-None-Match: *``) and released with a conditional DELETE (``If-Match: <etag>``).
It expires at the holder's Lambda deadline + 60 s, after which another invocation takes
it over with ``If-Match`` on the stale lock's ETag. The second invocation skips a locked
series (status ``locked``); the holder ingests it. Remaining race: writers that do not
take this lock (e.g. ``backtest data fetch`` into the same S3 dataset) must not run at
the same time as the Lambda for the same series.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import awswrangler as wr
import boto3
from botocore.exceptions import ClientError

from engine import storage_layout
from engine.data.dataset_io import last_open_time, upsert_candles
from engine.data.fetch import resume_point
from engine.data.klines import DEFAULT_BASE_URL, PAGE_LIMIT, ROW_FIELDS, BinanceBlocked, KlinesClient
from engine.errors import UserError
from engine.timeutil import format_time, parse_time

MIN_MARGIN_MS = 30_000          # never start a page with less Lambda time left than this
PAGE_MARGIN_FACTOR = 2          # ... nor with less than this many times the slowest page so far
HTTP_TIMEOUT_S = 10.0           # one Binance request (the client retries on timeouts)
LOCK_GRACE_MS = 60_000          # a lock outlives its holder's deadline by this much
NO_CONTEXT_MS = 15 * 60_000     # time budget when called without a Lambda context (local runs)
DEFAULT_MAX_PAGES = 200
BINANCE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
RAW_COLUMNS = ROW_FIELDS[:-1]   # Binance's 12 fields without "ignore"
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")

#: The klines client's sleep between retries (tests replace it; the Lambda really waits).
SLEEP = time.sleep


class SettingsError(UserError):
    """The Lambda's environment variables are missing or invalid."""


class IngestFailed(RuntimeError):
    """One or more series failed (other series were still attempted); the invocation fails."""


class OutOfTime(Exception):
    """A retry back-off would run into the Lambda's safety margin."""


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

    def lock_key(self, symbol: str, interval: str) -> str:
        return f"{self.candles_prefix}_locks/{symbol}-{interval}.json"


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
        if not _SYMBOL_RE.match(s):
            problems.append(f"SYMBOLS: {s!r} is not a Binance symbol like BTCUSDT (upper-case letters and digits)")
    intervals = _items(env, "INTERVALS", problems)
    for i in intervals:
        if i not in BINANCE_INTERVALS:
            problems.append(f"INTERVALS: {i!r} is not a Binance kline interval ({', '.join(BINANCE_INTERVALS)})")
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


def _code(exc: ClientError) -> str:
    err = exc.response.get("Error", {})
    return str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


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
        self.client = KlinesClient(cfg.base_url, sleep=self._sleep, timeout=HTTP_TIMEOUT_S)
        self.slowest_page_ms = 0
        self.blocked: BinanceBlocked | None = None

    # ---- time budget

    def remaining_ms(self) -> int:
        if self.context is not None and hasattr(self.context, "get_remaining_time_in_millis"):
            return int(self.context.get_remaining_time_in_millis())
        return int((self._deadline_no_context - time.monotonic()) * 1000)

    def margin_ms(self) -> int:
        return max(MIN_MARGIN_MS, PAGE_MARGIN_FACTOR * self.slowest_page_ms)

    def _sleep(self, seconds: float) -> None:
        if self.remaining_ms() - seconds * 1000 < self.margin_ms():
            raise OutOfTime(f"a {seconds:.1f} s back-off would leave less than {self.margin_ms()} ms")
        SLEEP(seconds)

    # ---- series lock (conditional writes)

    def _lock_body(self) -> bytes:
        now = int(time.time() * 1000)
        return json.dumps({"owner": self.request_id, "function": getattr(self.context, "function_name", None),
                           "acquired_ms": now, "expires_ms": now + max(0, self.remaining_ms()) + LOCK_GRACE_MS}
                          ).encode()

    def acquire(self, key: str) -> str | None:
        """The lock's ETag, or None when a live invocation holds it."""
        bucket = self.cfg.bucket
        for _ in range(2):
            try:
                return self.s3.put_object(Bucket=bucket, Key=key, Body=self._lock_body(), IfNoneMatch="*",
                                          ContentType="application/json")["ETag"]
            except ClientError as exc:
                if _code(exc) not in _CONFLICT:
                    raise
            try:
                held = self.s3.get_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in ("NoSuchKey", "404"):
                    continue  # released meanwhile: try again
                raise
            try:
                expires = int(json.loads(held["Body"].read())["expires_ms"])
            except (ValueError, KeyError, TypeError):
                expires = 0  # unreadable: treat as stale
            if expires > time.time() * 1000:
                return None
            try:  # stale: take it over unless someone else just did
                return self.s3.put_object(Bucket=bucket, Key=key, Body=self._lock_body(), IfMatch=held["ETag"],
                                          ContentType="application/json")["ETag"]
            except ClientError as exc:
                if _code(exc) in _CONFLICT or _code(exc) in ("NoSuchKey", "404"):
                    return None
                raise
        return None

    def release(self, key: str, etag: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.cfg.bucket, Key=key, IfMatch=etag)
        except ClientError as exc:  # expired and taken over, or already gone: not ours to delete
            log("WARNING", "ingest_lock_release_failed", request_id=self.request_id, key=key, error=str(exc))

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

    def ingest_series(self, symbol: str, interval: str, page_allowance: int) -> dict[str, Any]:
        started, requests_before = time.monotonic(), self.client.requests
        rec: dict[str, Any] = {"symbol": symbol, "interval": interval, "status": None, "candles_added": 0,
                               "watermark_before": None, "watermark_after": None, "pages": 0, "raw_keys": 0}
        lock_key = self.cfg.lock_key(symbol, interval)
        try:
            if page_allowance < 1:
                rec["status"] = "max_pages"
                return rec
            if self.remaining_ms() < self.margin_ms():
                rec["status"] = "out_of_time"
                return rec
            etag = self.acquire(lock_key)
            if etag is None:
                rec["status"] = "locked"
                return rec
            try:
                self._pages(symbol, interval, page_allowance, rec)
            finally:
                self.release(lock_key, etag)
        except BinanceBlocked as exc:  # IP-wide: run() stops here and raises it
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
            log("ERROR" if rec["status"] == "error" else "INFO", "ingest_series", request_id=self.request_id, **rec)
        return rec

    def _pages(self, symbol: str, interval: str, allowance: int, rec: dict[str, Any]) -> None:
        watermark = last_open_time(self.cfg.candles_root, symbol, interval, session=self.session)
        rec["watermark_before"] = rec["watermark_after"] = watermark
        pages = self.client.iter_klines(symbol, interval, resume_point(watermark, self.cfg.history_start))
        try:
            while True:
                if rec["pages"] >= allowance:
                    rec["status"] = "max_pages"
                    return
                before = self.remaining_ms()
                if before < self.margin_ms():
                    rec["status"] = "out_of_time"
                    return
                try:
                    page = next(pages, None)
                except OutOfTime:
                    rec["status"] = "out_of_time"
                    return
                if page is None:
                    rec["status"] = "caught_up"
                    return
                self.write_raw(symbol, interval, page)
                result = upsert_candles(self.cfg.candles_root, symbol, interval, page, session=self.session)
                rec["raw_keys"] += 1
                rec["pages"] += 1
                rec["candles_added"] += result.added
                rec["watermark_after"] = int(page["open_time"].iloc[-1])  # pages only move forward
                self.slowest_page_ms = max(self.slowest_page_ms, before - self.remaining_ms())
                if len(page) < PAGE_LIMIT:  # a short page is the client's last: caught up, no extra request
                    rec["status"] = "caught_up"
                    return
        finally:
            pages.close()

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
