"""Binance refusing this IP, remembered per market so that no run asks again until it may.

* **HTTP 418** (banned for exceeding rate limits): "blocked until" now + the answer's
  Retry-After (else :data:`BAN_DEFAULT_S`). Binance lengthens repeat bans, so nobody asks
  before then.
* **HTTP 451** (restricted location, e.g. a US address): "geo-blocked". It does not end by
  itself; runs skip Binance for :data:`GEO_RECHECK_S`, then one run asks again (and stores
  the marker again if still refused), so a fixed setup (another region, another base URL)
  recovers without a redeploy and a refused one costs one request an hour, not a DLQ flood.

The marker lives at ``storage_layout.blocked_key(market)`` (spot: ``locks/binance-blocked.json``)
and names the base URL it applies to: a redeploy to another endpoint is not held back by it.
Neither is an error of a series: the unit ends "blocked" or "geo_blocked", is not retried and
never reaches the DLQ; the metrics ``BlockedSkips`` and ``GeoBlocked`` carry one alarm each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine import storage_layout
from engine.timeutil import format_time

from . import runtime

BAN_DEFAULT_S = 900        # a 418 without Retry-After blocks one schedule slot
GEO_RECHECK_S = 3600       # a 451 is asked again after an hour
KIND_BANNED, KIND_GEO = "banned", "geo-blocked"


@dataclass(frozen=True)
class Marker:
    kind: str             # banned | geo-blocked
    until_ms: int
    http_status: int
    base_url: str

    @property
    def status(self) -> str:
        """The unit status a skip reports."""
        return "geo_blocked" if self.kind == KIND_GEO else "blocked"

    @property
    def metric(self) -> str:
        return "GeoBlocked" if self.kind == KIND_GEO else "BlockedSkips"


def _missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code in ("NoSuchKey", "404")


def read(s3: Any, bucket: str, market: str, base_url: str, now_ms: int) -> Marker | None:
    """The market's marker if it still applies (unexpired, same base URL), else None."""
    try:
        body = s3.get_object(Bucket=bucket, Key=storage_layout.blocked_key(market))["Body"].read()
    except Exception as exc:  # noqa: BLE001 - no marker (or unreadable): go ahead
        if not _missing(exc):
            runtime.log("WARNING", "ingest_blocked_unreadable", market=market, error=str(exc))
        return None
    try:
        doc = json.loads(body)
        marker = Marker(str(doc.get("kind") or KIND_BANNED), int(doc["blocked_until"]), int(doc["http_status"]),
                        str(doc.get("base_url") or base_url))
    except (ValueError, TypeError, KeyError):
        return None
    if marker.until_ms <= now_ms or marker.base_url.rstrip("/") != base_url.rstrip("/"):
        return None
    return marker


def store(s3: Any, bucket: str, market: str, base_url: str, status: int, retry_after: float | None,
          now_ms: int, set_by: str, error: str) -> Marker:
    """Remember a 418 or 451 for the market's host; returns the marker (also when the write failed)."""
    if status == 451:
        marker = Marker(KIND_GEO, now_ms + GEO_RECHECK_S * 1000, 451, base_url)
    else:
        seconds = retry_after if retry_after else BAN_DEFAULT_S
        marker = Marker(KIND_BANNED, int(now_ms + seconds * 1000), status, base_url)
    body = {"kind": marker.kind, "blocked_until": marker.until_ms, "blocked_until_utc": format_time(marker.until_ms),
            "http_status": status, "retry_after_s": retry_after, "base_url": base_url, "set_by": set_by,
            "error": error}
    try:
        s3.put_object(Bucket=bucket, Key=storage_layout.blocked_key(market), Body=json.dumps(body).encode(),
                      ContentType="application/json")
    except Exception as exc:  # noqa: BLE001 - the refusal is still reported
        runtime.log("ERROR", "ingest_blocked_store_failed", market=market, error=str(exc))
    return marker
