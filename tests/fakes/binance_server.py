"""A fake Binance spot REST server (real HTTP on 127.0.0.1, ephemeral port).

Backed by a truth array of klines and a settable clock (ms). Implements the
semantics the client relies on: ``limit`` default 500 and cap 1000,
``startTime``/``endTime`` on open time (inclusive), chronological order, the
current candle returned still open (partial volume, close = open), the
``X-MBX-USED-WEIGHT-1M`` header (429 past the limit), a ``Date`` header from the
fake clock, and ``/api/v3/time``. Faults are scripted per klines request index.
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

from .candles import kline_row
from .local_server import FakeClock, LocalServer, send_json

FAULTS = ("429", "500", "503", "drop", "truncate", "cut", "418", "451", "bad_fields", "unsorted")
INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}
RESTRICTED = {"code": 0, "msg": "Service unavailable from a restricted location according to 'b. Eligibility' "
                                "in https://www.binance.com/en/terms."}


class FakeBinance(FakeClock, LocalServer):
    def __init__(self, klines: pd.DataFrame, *, symbol: str = "BTCUSDT", interval: str = "15m",
                 now_ms: int | None = None, weight_limit: int = 6000, date_header: bool = True):
        self.klines = klines.reset_index(drop=True)
        self.symbol, self.interval = symbol, interval
        self.iv = interval_to_ms(interval)
        self._t = self.klines["open_time"].to_numpy(dtype=np.int64)
        self._rows = [kline_row(r) for r in self.klines.itertuples(index=False)]
        # Default clock: half-way through the last candle, which is therefore still open.
        self.now_ms = int(now_ms if now_ms is not None else self._t[-1] + self.iv // 2)
        self.weight_limit = weight_limit
        self.date_header = date_header
        self.faults: dict[int, tuple[str, float]] = {}
        self.log: list[dict] = []  # every request: path, params, status, klines index
        self.sleeps: list[float] = []
        self.on_klines = None  # optional hook(index) called on every klines request
        self._klines_seen = 0
        self._weight: dict[int, int] = {}
        self.lock = threading.RLock()

    # ------------------------------------------------------------ control

    def start(self) -> "FakeBinance":
        self._serve(_handler(self))
        return self


    def client(self, **kw):
        """A KlinesClient on this fake whose sleep and clock are the fake's (tests never wait)."""
        from engine.data.klines import KlinesClient

        return KlinesClient(self.base_url, **{"sleep": self.advance, "clock": self.clock, **kw})

    def advance(self, seconds: float) -> None:
        """The client's injectable sleep: time passes on the fake clock, instantly."""
        with self.lock:
            self.sleeps.append(seconds)
            self.now_ms += int(round(seconds * 1000))

    def inject(self, kind: str, at: int | None = None, *, retry_after: float = 3) -> None:
        """Fail the klines request with index ``at`` (0-based; default: the next one)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self.lock:
            self.faults[self._klines_seen if at is None else at] = (kind, retry_after)

    def truth(self, start: int | None = None, end: int | None = None) -> pd.DataFrame:
        """Candles closed at the fake's current time, in ``[start, end)``."""
        k = self.klines
        keep = k["close_time"].to_numpy() < self.now_ms
        if start is not None:
            keep &= self._t >= start
        if end is not None:
            keep &= self._t < end
        return k.loc[keep].reset_index(drop=True)

    def klines_log(self, status: int | None = 200) -> list[dict]:
        return [e for e in self.log if e["path"] == "/api/v3/klines" and (status is None or e["status"] == status)]

    # ------------------------------------------------------------ semantics

    def used_weight(self) -> int:
        return self._weight.get(self.now_ms // 60_000, 0)

    def _charge(self, weight: int) -> int:
        minute = self.now_ms // 60_000
        self._weight[minute] = self._weight.get(minute, 0) + weight
        return self._weight[minute]

    def select(self, q: dict[str, str]) -> list[list]:
        limit = min(int(q.get("limit", 500)), 1000)
        visible = self._t <= self.now_ms
        lo = int(q["startTime"]) if "startTime" in q else None
        hi = int(q["endTime"]) if "endTime" in q else None
        keep = visible.copy()
        if lo is not None:
            keep &= self._t >= lo
        if hi is not None:
            keep &= self._t <= hi
        idx = np.flatnonzero(keep)
        idx = idx[:limit] if lo is not None else idx[-limit:]
        rows = [list(self._rows[i]) for i in idx]
        if len(idx) and self.klines["close_time"].iat[idx[-1]] >= self.now_ms:
            rows[-1] = self._open_row(int(idx[-1]))
        return rows

    def _open_row(self, i: int) -> list:
        """The current candle as Binance sends it before it closes: partial volume, close = open."""
        r = self.klines.iloc[i].copy()
        frac = (self.now_ms - r.open_time) / self.iv
        r.close = r.open
        for k in ("volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume"):
            r[k] = round(r[k] * frac, 4)
        r.trades = int(r.trades * frac)
        return kline_row(r)


def _handler(fake: FakeBinance):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def send_response(self, code, message=None):
            self.send_response_only(code, message)
            self.send_header("Server", "fake-binance")
            if fake.date_header:
                self.send_header("Date", formatdate(fake.now_ms / 1000.0, usegmt=True))

        def _send(self, status: int, payload, headers: dict | None = None, body: bytes | None = None,
                  length: int | None = None) -> None:
            data = body if body is not None else json.dumps(payload).encode()
            send_json(self, status, data, {"X-MBX-USED-WEIGHT-1M": fake.used_weight(), **(headers or {})}, length)

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            with fake.lock:
                entry = {"path": url.path, "params": q, "status": None, "now_ms": fake.now_ms}
                fake.log.append(entry)
                if url.path == "/api/v3/time":
                    fake._charge(1)
                    entry["status"] = 200
                    return self._send(200, {"serverTime": fake.now_ms})
                if url.path != "/api/v3/klines":
                    entry["status"] = 404
                    return self._send(404, {"code": -1, "msg": "Not found."})
                index = fake._klines_seen
                fake._klines_seen += 1
                entry["index"] = index
                if fake.on_klines is not None:
                    fake.on_klines(index)
                kind, retry_after = fake.faults.pop(index, (None, 0))
                used = fake._charge(2)
                if kind is None and used > fake.weight_limit:
                    kind, retry_after = "429", 60 - (fake.now_ms // 1000) % 60
                entry["fault"] = kind
                if kind == "drop":
                    entry["status"] = 0
                    self.close_connection = True
                    return None
                if kind in ("429", "418"):
                    entry["status"] = int(kind)
                    return self._send(int(kind), {"code": -1003, "msg": "Too many requests."},
                                      {"Retry-After": int(retry_after)})
                if kind == "451":
                    entry["status"] = 451
                    return self._send(451, RESTRICTED)
                if kind in ("500", "503"):
                    entry["status"] = int(kind)
                    return self._send(int(kind), None, body=b"<html>Internal error</html>")
                if q.get("symbol") != fake.symbol:
                    entry["status"] = 400
                    return self._send(400, INVALID_SYMBOL)
                if q.get("interval") != fake.interval:
                    entry["status"] = 400
                    return self._send(400, {"code": -1120, "msg": "Invalid interval."})
                rows = fake.select(q)
                entry["status"] = 200
                entry["returned"] = (rows[0][0], rows[-1][0], len(rows)) if rows else (None, None, 0)
            if kind == "bad_fields":
                rows = [r[:11] for r in rows]
            if kind == "unsorted":
                rows = rows[::-1]
            data = json.dumps(rows).encode()
            if kind == "truncate":  # a short body with a matching length: only JSON parsing notices
                return self._send(200, None, body=data[: len(data) // 2])
            if kind == "cut":  # the connection dies mid-body
                self._send(200, None, body=data[: len(data) // 2], length=len(data))
                self.close_connection = True
                return None
            return self._send(200, rows)

    return Handler
