"""Binance spot klines over REST: paging, closed candles only, rate limits, retries.

HTTP is the standard library's (urllib), so the ingest Lambda needs no extra
package; the retry loop is :mod:`engine.data.http_retry`'s. Sleep and clock are
injectable so tests never wait.

"Now" for the closed-candle rule is the earlier of the ``Date`` header of the same
klines response and the local clock. The header is stamped when that body was
produced (a cache or proxy keeps it), costs no request weight, has whole-second
resolution and is truncated; taking the earlier of the two clocks means a server
(or proxy) clock running ahead never makes an open candle look closed, and a
local clock running ahead does not either. A candle that closed within the last
second is left for the next run, never an open one kept. When the header is
missing or unreadable the client asks ``/api/v3/time``.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from ..errors import DataError, UserError
from ..timeutil import format_time, interval_to_ms
from .http_get import HttpResponse
from .http_retry import Deadline, Retry, RetryPolicy, get_with_retries, retry_after
from .binance import FLOAT_FIELDS, KLINE_FIELDS

DEFAULT_BASE_URL = "https://data-api.binance.vision"
KLINES_PATH = "/api/v3/klines"
TIME_PATH = "/api/v3/time"
PAGE_LIMIT = 1000
KLINES_WEIGHT = 2
TIME_WEIGHT = 1
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
#: USDⓈ-M futures REST (``--market um``): trade klines and mark-price klines page at 1,500 rows,
#: funding rates at 1,000 (paged by startTime).
FAPI_BASE_URL = "https://fapi.binance.com"
FAPI_PATHS = {"klines": "/fapi/v1/klines", "mark": "/fapi/v1/markPriceKlines"}
FAPI_TIME_PATH = "/fapi/v1/time"
FAPI_PAGE_LIMIT = 1500
FAPI_KLINES_WEIGHT = 10  # limit 1,000 .. 1,500
# Above SOFT of the limit requests are spread over the rest of the minute; HARD is
# never crossed, leaving headroom for anything else sharing the IP.
_SOFT_SHARE, _HARD_SHARE = 0.5, 0.9


class BinanceError(UserError):
    """Binance refused the request (an error JSON, a 4xx) or kept failing."""


class BinanceBlocked(BinanceError):
    """HTTP 418 (IP banned) or 451 (restricted location): stop at once, never retry.

    ``retry_after`` is the ban's length in seconds when the answer says so.
    """

    def __init__(self, message: str, status: int, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class BadPageError(DataError):
    """A 200 answer whose rows are not valid klines."""


def parse_klines(rows: Any, source: str) -> pd.DataFrame:
    """Validate and parse 12-field kline rows: times int64 ms, prices/volumes float64."""
    if not isinstance(rows, list):
        raise BadPageError(f"{source}: expected a JSON array of klines, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(KLINE_FIELDS):
            n = len(row) if isinstance(row, list) else type(row).__name__
            raise BadPageError(f"{source}: row {i + 1} has {n} fields; expected {len(KLINE_FIELDS)}")
    cols = list(zip(*rows)) if rows else [()] * len(KLINE_FIELDS)
    raw = dict(zip(KLINE_FIELDS, cols))
    try:
        df = pd.DataFrame({c: np.asarray(raw[c], dtype=np.float64 if c in FLOAT_FIELDS else np.int64)
                           for c in KLINE_FIELDS[:-1]})
    except (TypeError, ValueError) as exc:
        raise BadPageError(f"{source}: a field is not a number ({exc})") from None
    t = df["open_time"].to_numpy()
    bad = np.flatnonzero(np.diff(t) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise BadPageError(f"{source}: row {i + 1} ({format_time(t[i])}): open time not after the row before")
    return df


class KlinesClient:
    """Pages through ``GET /api/v3/klines``; one client per base URL.

    ``requests`` counts HTTP requests sent, ``used_weight`` is the last
    ``X-MBX-USED-WEIGHT-1M`` seen. ``timeout`` bounds each request (whole response),
    ``max_retry_after`` the longest ``Retry-After`` obeyed, ``deadline`` the whole command.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, weight_limit: int = 6000, max_retries: int = 5,
                 backoff: float = 1.0, max_backoff: float = 60.0, timeout: float = 30.0,
                 max_retry_after: float = 120.0, deadline: Deadline | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 klines_path: str = KLINES_PATH, time_path: str = TIME_PATH, page_limit: int = PAGE_LIMIT,
                 klines_weight: int = KLINES_WEIGHT):
        self.base_url = base_url.rstrip("/")
        self.klines_path, self.time_path = klines_path, time_path
        self.page_limit, self.klines_weight = page_limit, klines_weight
        self.weight_limit = weight_limit
        self.policy = RetryPolicy(retries=max_retries, backoff=backoff, max_backoff=max_backoff,
                                  max_retry_after=max_retry_after, request_timeout=timeout)
        self.deadline = deadline
        self.sleep = sleep
        self.clock = clock
        self.requests = 0
        self.used_weight = 0
        self._server_ms: int | None = None
        self._server_seen_at = 0.0

    # ---------------------------------------------------------------- paging

    def iter_klines(self, symbol: str, interval: str, start: int, end: int | None = None) -> Iterator[pd.DataFrame]:
        """Closed candles with ``start <= open_time < end`` (``end`` None: up to now), one frame per page.

        A page with no closed candle yields nothing; the generator ends at the open candle,
        the present or ``end``.
        """
        interval_to_ms(interval)  # reject a malformed interval before any request
        cursor = int(start)
        while end is None or cursor < end:
            params: dict[str, Any] = {"symbol": symbol, "interval": interval, "startTime": cursor,
                                      "limit": self.page_limit}
            if end is not None:
                params["endTime"] = int(end) - 1  # Binance's endTime is inclusive
            rows, headers = self._get_json(self.klines_path, params, self.klines_weight)
            source = self._describe(self.klines_path, params)
            page = parse_klines(rows, source)
            t = page["open_time"].to_numpy()
            if len(t) and (t[0] < cursor or (end is not None and t[-1] >= end)):
                raise BadPageError(f"{source}: answer holds open times outside the requested range")
            now = self.closed_before(headers)
            closed = page.loc[page["close_time"].to_numpy() < now].reset_index(drop=True)
            if len(closed):
                yield closed
            if len(closed) < len(page) or len(rows) < self.page_limit:
                return  # reached the open candle, the present, or the end
            cursor = int(t[-1]) + 1

    def fetch(self, symbol: str, interval: str, start: int, end: int | None = None) -> pd.DataFrame:
        pages = list(self.iter_klines(symbol, interval, start, end))
        return pd.concat(pages, ignore_index=True) if pages else parse_klines([], "no klines")

    def server_time(self) -> int:
        data, _ = self._get_json(self.time_path, {}, TIME_WEIGHT)
        try:
            return int(data["serverTime"])
        except (TypeError, KeyError, ValueError):
            raise BinanceError(f"{self.base_url}{self.time_path}: unexpected answer {str(data)[:80]!r}") from None

    def closed_before(self, headers: Message | None) -> int:
        """"Now" for the closed-candle rule: the earlier of the answer's Date (or the server time)
        and the local clock."""
        server = _header_time(headers)
        if server is None:
            server = self.server_time()
        return min(server, int(self.clock() * 1000))

    # ---------------------------------------------------------------- HTTP

    def _describe(self, path: str, params: dict[str, Any]) -> str:
        q = urllib.parse.urlencode(params)
        return f"GET {self.base_url}{path}" + (f"?{q}" if q else "")

    def _get_json(self, path: str, params: dict[str, Any], weight: int) -> tuple[Any, Message]:
        what = self._describe(path, params)

        def before() -> None:
            self._pace(weight)
            self.requests += 1

        def accept(resp: HttpResponse) -> tuple[Any, Message]:
            if resp.status == 200:
                try:
                    return json.loads(resp.body), resp.headers
                except (ValueError, UnicodeDecodeError):
                    raise Retry("truncated or invalid JSON") from None
            if resp.status in (418, 451):
                raise BinanceBlocked(self._blocked_message(resp), resp.status, retry_after(resp.headers))
            raise BinanceError(self._error_message(resp, what))

        return get_with_retries(what[len("GET "):], accept, policy=self.policy, sleep=self.sleep,
                                headers={"Accept": "application/json"}, deadline=self.deadline,
                                observe=self._note, before=before, what=what, error=BinanceError)

    def _note(self, resp: HttpResponse) -> None:
        used = resp.headers.get(WEIGHT_HEADER) if resp.headers is not None else None
        if used is not None:
            try:
                self.used_weight = int(used)
            except ValueError:
                pass
        server = _header_time(resp.headers)
        if server is not None:
            self._server_ms, self._server_seen_at = server, self.clock()

    def _pace(self, weight: int) -> None:
        """Slow down as the minute's weight fills up; wait for the next minute before the limit."""
        used, limit = self.used_weight, self.weight_limit
        if used < limit * _SOFT_SHARE:
            return
        left = self._window_seconds_left()
        hard = limit * _HARD_SHARE
        if used + weight > hard:
            self.sleep(left + 1.0)
            self.used_weight = 0
            return
        self.sleep(left / max(1, int((hard - used) // weight)))

    def now_ms(self) -> int:
        """Best guess of the server's time: the last Date header seen plus the time since, else the clock."""
        if self._server_ms is None:
            return int(self.clock() * 1000)
        return int(self._server_ms + (self.clock() - self._server_seen_at) * 1000)

    def _window_seconds_left(self) -> float:
        if self._server_ms is None:
            return 60.0
        return max(0.0, 60.0 - (self.now_ms() / 1000.0) % 60.0)

    def _blocked_message(self, resp: HttpResponse) -> str:
        if resp.status == 418:
            ra = retry_after(resp.headers)
            until = f" for {int(ra)} s" if ra else ""
            return (f"HTTP 418 from {self.base_url}: this IP address is banned by Binance{until} "
                    "for exceeding rate limits; stopped without retrying")
        return (f"HTTP 451 from {self.base_url}: Binance refuses service from this restricted location; "
                "use a base URL you may reach (--base-url); stopped without retrying")

    def _error_message(self, resp: HttpResponse, what: str) -> str:
        try:
            data = json.loads(resp.body)
            return f"Binance error {data['code']}: {data['msg']} (HTTP {resp.status}, {what})"
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            text = " ".join(resp.body[:120].decode("utf-8", "replace").split())
            return f"HTTP {resp.status} from {what}" + (f": {text}" if text else "")


def fapi_client(kind: str, base_url: str = FAPI_BASE_URL, **options: Any) -> KlinesClient:
    """A client of USDⓈ-M trade klines (``kind`` klines) or mark-price klines (``mark``)."""
    return KlinesClient(base_url, klines_path=FAPI_PATHS[kind], time_path=FAPI_TIME_PATH,
                        page_limit=FAPI_PAGE_LIMIT, klines_weight=FAPI_KLINES_WEIGHT, **options)


def _header_time(headers: Message | None) -> int | None:
    value = headers.get("Date") if headers is not None else None
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp() * 1000)
    except (TypeError, ValueError, IndexError):
        return None
