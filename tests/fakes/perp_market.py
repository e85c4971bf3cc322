"""A perp symbol's truth (trade klines, mark klines, funding every 4h then 1h) and the fakes over it:
a fake USDⓈ-M REST server (``/fapi/v1/klines``, ``markPriceKlines``, ``fundingRate``, ``time``; real
HTTP on 127.0.0.1) and data.binance.vision zips in the futures archive layout."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from engine.timeutil import interval_to_ms

from .candles import kline_row, synthetic_klines
from .local_server import FakeClock, LocalServer, send_json

HOUR = 3_600_000
KLINE_LIMITS = (500, 1500)     # default, cap: /fapi/v1/klines and markPriceKlines
FUNDING_LIMITS = (100, 1000)   # /fapi/v1/fundingRate


def perp_truth(start_ms: int, n: int, interval: str = "15m", seed: int = 3) -> dict[str, pd.DataFrame]:
    """Trade klines, mark klines (the trade prices × 1.0002, no volume) and funding events: every 4h over
    the first half of the range, every 1h after (an interval change), with a mark price."""
    trade = synthetic_klines(start_ms, n, interval, seed)
    mark = trade.copy()
    for c in ("open", "high", "low", "close"):
        mark[c] = np.round(trade[c] * 1.0002, 2)
    for c in ("volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume"):
        mark[c] = 0.0
    mark["trades"] = 0
    end = start_ms + n * interval_to_ms(interval)
    mid = start_ms + (end - start_ms) // 2 // (4 * HOUR) * (4 * HOUR)
    t4 = np.arange(start_ms, mid, 4 * HOUR, dtype=np.int64)
    t1 = np.arange(mid, end, HOUR, dtype=np.int64)
    t = np.concatenate([t4, t1])
    k = np.arange(len(t))
    rate = np.round(0.0001 + 0.0002 * np.sin(k / 5.0), 8)
    idx = np.minimum((t - start_ms) // interval_to_ms(interval), n - 1)
    funding = pd.DataFrame({"funding_time": t, "funding_rate": rate,
                            "mark_price": trade["open"].to_numpy()[idx] * 1.0002,
                            "interval_hours": np.concatenate([np.full(len(t4), 4), np.full(len(t1), 1)])})
    funding["mark_price"] = np.round(funding["mark_price"], 8)
    return {"klines": trade, "mark": mark, "funding": funding}


# --------------------------------------------------------------------------- files

def kline_csv(frame: pd.DataFrame, header: bool = True) -> str:
    head = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
            "taker_buy_quote_volume,ignore\n") if header else ""
    return head + "".join(",".join(str(x) for x in kline_row(r)) + "\n" for r in frame.itertuples(index=False))


def funding_csv(frame: pd.DataFrame) -> str:
    """The archive's CSV: calc_time, funding_interval_hours, last_funding_rate."""
    return "calc_time,funding_interval_hours,last_funding_rate\n" + "".join(
        f"{int(r.funding_time)},{int(r.interval_hours)},{r.funding_rate:.8f}\n" for r in frame.itertuples())


def _zip(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, text)
    return buf.getvalue()


def _month_of(t: np.ndarray) -> np.ndarray:
    return pd.to_datetime(t, unit="ms", utc=True).strftime("%Y-%m").to_numpy()


def build_um_archive(root: Path, truth: dict[str, pd.DataFrame], symbol: str = "BTCUSDT", interval: str = "15m",
                     bad_checksum: set[str] = frozenset()) -> list[str]:
    """Monthly zips (+ .CHECKSUM) of the three series under ``root/data/futures/um/monthly/``; a zip named in
    ``bad_checksum`` gets a wrong checksum. Returns the zips' names."""
    names = []
    base = root / "data" / "futures" / "um" / "monthly"

    def put(rel: str, name: str, text: str) -> None:
        data = _zip(name.replace(".zip", ".csv"), text)
        folder = base / rel
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        digest = hashlib.sha256(data + (b"x" if name in bad_checksum else b"")).hexdigest()
        (folder / f"{name}.CHECKSUM").write_text(f"{digest}  {name}\n")
        names.append(name)

    for kind, folder in (("klines", "klines"), ("mark", "markPriceKlines")):
        df = truth[kind]
        months = _month_of(df["open_time"].to_numpy())
        for m in sorted(set(months)):
            put(f"{folder}/{symbol}/{interval}", f"{symbol}-{interval}-{m}.zip", kline_csv(df.loc[months == m]))
    f = truth["funding"]
    months = _month_of(f["funding_time"].to_numpy())
    for m in sorted(set(months)):
        put(f"fundingRate/{symbol}", f"{symbol}-fundingRate-{m}.zip", funding_csv(f.loc[months == m]))
    return names


# --------------------------------------------------------------------------- REST

class FakeFapi(FakeClock, LocalServer):
    """The three USDⓈ-M endpoints over one symbol's truth; every candle closed before ``now_ms``.
    ``fail_after[path] = k``: requests to ``path`` after its k-th answer 400 (a hard error, to test resuming)."""

    def __init__(self, truth: dict[str, pd.DataFrame], *, symbol: str = "BTCUSDT", interval: str = "15m",
                 now_ms: int | None = None):
        self.truth, self.symbol, self.interval = truth, symbol, interval
        t = truth["klines"]["open_time"].to_numpy()
        self.now_ms = int(now_ms if now_ms is not None else t[-1] + 2 * interval_to_ms(interval))
        self.log: list[dict] = []
        self.fail_after: dict[str, int] = {}
        self.lock = threading.RLock()

    def start(self) -> "FakeFapi":
        self._serve(_handler(self))
        return self

    def requests(self, path: str) -> list[dict]:
        return [e for e in self.log if e["path"] == path]

    def klines(self, kind: str, q: dict[str, str]) -> list[list]:
        df = self.truth[kind]
        limit = min(int(q.get("limit", KLINE_LIMITS[0])), KLINE_LIMITS[1])
        t = df["open_time"].to_numpy()
        keep = t <= self.now_ms  # the candle still open is sent too (the client keeps closed ones)
        if "startTime" in q:
            keep &= t >= int(q["startTime"])
        if "endTime" in q:
            keep &= t <= int(q["endTime"])
        idx = np.flatnonzero(keep)[:limit]
        return [kline_row(r) for r in df.iloc[idx].itertuples(index=False)]

    def funding(self, q: dict[str, str]) -> list[dict]:
        f = self.truth["funding"]
        limit = min(int(q.get("limit", FUNDING_LIMITS[0])), FUNDING_LIMITS[1])
        t = f["funding_time"].to_numpy()
        keep = t <= self.now_ms
        if "startTime" in q:
            keep &= t >= int(q["startTime"])
        if "endTime" in q:
            keep &= t <= int(q["endTime"])
        idx = np.flatnonzero(keep)[:limit]
        return [{"symbol": self.symbol, "fundingTime": int(f["funding_time"].iat[i]),
                 "fundingRate": f"{f['funding_rate'].iat[i]:.8f}", "markPrice": f"{f['mark_price'].iat[i]:.8f}"}
                for i in idx]


def _handler(fake: FakeFapi):
    paths = {"/fapi/v1/klines": "klines", "/fapi/v1/markPriceKlines": "mark", "/fapi/v1/fundingRate": "funding"}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_response(self, code, message=None):
            self.send_response_only(code, message)
            self.send_header("Date", formatdate(fake.now_ms / 1000.0, usegmt=True))

        def _send(self, status: int, payload) -> None:
            send_json(self, status, json.dumps(payload).encode())

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            with fake.lock:
                entry = {"path": url.path, "params": q}
                fake.log.append(entry)
                if url.path == "/fapi/v1/time":
                    return self._send(200, {"serverTime": fake.now_ms})
                kind = paths.get(url.path)
                if kind is None:
                    return self._send(404, {"code": -1, "msg": "Not found."})
                done = sum(1 for e in fake.log if e["path"] == url.path and e.get("rows") is not None)
                if url.path in fake.fail_after and done >= fake.fail_after[url.path]:
                    return self._send(400, {"code": -1003, "msg": "scripted failure"})
                if q.get("symbol") != fake.symbol or (kind != "funding" and q.get("interval") != fake.interval):
                    return self._send(400, {"code": -1121, "msg": "Invalid symbol."})
                rows = fake.funding(q) if kind == "funding" else fake.klines(kind, q)
                entry["rows"] = len(rows)
            return self._send(200, rows)

    return Handler
