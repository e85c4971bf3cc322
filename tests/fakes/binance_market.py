"""A fake Binance spot REST server for many series at once (real HTTP on 127.0.0.1, ephemeral port).

The one-series :class:`fakes.binance_server.FakeBinance` stands in for one symbol; the ingest
fan-out needs a market: a truth array of klines per (symbol, interval) and one settable clock.
Same semantics as the one-series fake (``limit`` default 500 and cap 1000, ``startTime`` /
``endTime`` inclusive on open time, the current candle returned still open, the
``X-MBX-USED-WEIGHT-1M`` and ``Date`` headers, error JSON for an unknown symbol), plus:

* ``fail[symbol] = status`` answers every klines request of that symbol with 400 (an error JSON)
  or 500;
* ``slow[symbol] = hook`` calls ``hook(entry)`` before answering a request of that symbol,
  outside the server's lock, so it holds up that request only (other requests are answered);
* ``refuse = 418 | 451`` answers every klines request with that status (a 418 with Retry-After
  ``ban_retry_after``);
* ``outages[(symbol, interval)] = [(lo, hi), ...]`` leaves those open times out of the answers
  (an exchange outage: the candles never existed).
"""

from __future__ import annotations

import json
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from engine.timeutil import interval_to_ms

from .binance_server import INVALID_SYMBOL, RESTRICTED
from .candles import kline_row
from .local_server import FakeClock, LocalServer, send_json


class _Series:
    def __init__(self, klines: pd.DataFrame, interval: str):
        self.klines = klines.reset_index(drop=True)
        self.iv = interval_to_ms(interval)
        self.t = self.klines["open_time"].to_numpy(dtype=np.int64)
        self.rows = [kline_row(r) for r in self.klines.itertuples(index=False)]


class FakeBinanceMarket(FakeClock, LocalServer):
    def __init__(self, series: dict[tuple[str, str], pd.DataFrame], *, now_ms: int, weight_limit: int = 6000):
        self.series = {key: _Series(k, key[1]) for key, k in series.items()}
        self.now_ms = int(now_ms)
        self.weight_limit = weight_limit
        self.fail: dict[str, int] = {}
        self.slow: dict[str, object] = {}
        self.refuse: int | None = None
        self.ban_retry_after = 1200  # seconds, the Retry-After of a 418
        self.outages: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self.log: list[dict] = []
        self._weight: dict[int, int] = {}
        self.lock = threading.RLock()

    def start(self) -> "FakeBinanceMarket":
        self._serve(_handler(self))
        return self

    # ------------------------------------------------------------ control

    def truth(self, symbol: str, interval: str) -> pd.DataFrame:
        """The candles closed at the fake's current time (outages left out)."""
        s = self.series[(symbol, interval)]
        keep = s.klines["close_time"].to_numpy() < self.now_ms
        for lo, hi in self.outages.get((symbol, interval), []):
            keep &= ~((s.t >= lo) & (s.t < hi))
        return s.klines.loc[keep].reset_index(drop=True)

    def requests_for(self, symbol: str, interval: str | None = None) -> list[dict]:
        return [e for e in self.log if e["params"].get("symbol") == symbol
                and (interval is None or e["params"].get("interval") == interval)]

    # ------------------------------------------------------------ semantics

    def used_weight(self) -> int:
        return self._weight.get(self.now_ms // 60_000, 0)

    def select(self, key: tuple[str, str], q: dict[str, str]) -> list[list]:
        s = self.series[key]
        limit = min(int(q.get("limit", 500)), 1000)
        keep = s.t <= self.now_ms
        for lo, hi in self.outages.get(key, []):
            keep &= ~((s.t >= lo) & (s.t < hi))
        if "startTime" in q:
            keep &= s.t >= int(q["startTime"])
        if "endTime" in q:
            keep &= s.t <= int(q["endTime"])
        idx = np.flatnonzero(keep)
        idx = idx[:limit] if "startTime" in q else idx[-limit:]
        rows = [list(s.rows[i]) for i in idx]
        if len(idx) and s.klines["close_time"].iat[idx[-1]] >= self.now_ms:
            r = s.klines.iloc[int(idx[-1])].copy()  # still open: partial volume, close = open
            frac = (self.now_ms - r.open_time) / s.iv
            r.close = r.open
            for k in ("volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume"):
                r[k] = round(r[k] * frac, 4)
            r.trades = int(r.trades * frac)
            rows[-1] = kline_row(r)
        return rows


def _handler(fake: FakeBinanceMarket):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_response(self, code, message=None):
            self.send_response_only(code, message)
            self.send_header("Server", "fake-binance-market")
            self.send_header("Date", formatdate(fake.now_ms / 1000.0, usegmt=True))

        def _send(self, status: int, payload, headers: dict | None = None) -> None:
            send_json(self, status, json.dumps(payload).encode(),
                      {"X-MBX-USED-WEIGHT-1M": fake.used_weight(), **(headers or {})})

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            entry = {"path": url.path, "params": q, "status": None}
            hook = fake.slow.get(q.get("symbol", ""))
            if hook is not None and url.path == "/api/v3/klines":
                hook(entry)  # holds up this request only
            with fake.lock:
                entry["now_ms"] = fake.now_ms
                fake.log.append(entry)
                if url.path == "/api/v3/time":
                    entry["status"] = 200
                    return self._send(200, {"serverTime": fake.now_ms})
                if url.path != "/api/v3/klines":
                    entry["status"] = 404
                    return self._send(404, {"code": -1, "msg": "Not found."})
                minute = fake.now_ms // 60_000
                fake._weight[minute] = fake._weight.get(minute, 0) + 2
                status = fake.refuse or fake.fail.get(q.get("symbol", ""))
                key = (q.get("symbol"), q.get("interval"))
                if status is None and key not in fake.series:
                    status = 400
                entry["status"] = status or 200
                if status == 451:
                    return self._send(451, RESTRICTED)
                if status == 418:
                    return self._send(418, {"code": -1003, "msg": "Way too many requests; IP banned."},
                                      {"Retry-After": fake.ban_retry_after})
                if status == 500:
                    return self._send(500, {"code": -1000, "msg": "An unknown error occurred."})
                if status == 400:
                    return self._send(400, INVALID_SYMBOL)
                rows = fake.select(key, q)
                entry["returned"] = (rows[0][0], rows[-1][0], len(rows)) if rows else (None, None, 0)
            return self._send(200, rows)

    return Handler
