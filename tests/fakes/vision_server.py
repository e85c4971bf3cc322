"""A fake data.binance.vision: a static file server over a tree of kline zips.

Layout and formats follow the real site: ``data/spot/monthly/klines/<S>/<I>/<S>-<I>-YYYY-MM.zip``
and ``data/spot/daily/klines/<S>/<I>/<S>-<I>-YYYY-MM-DD.zip``, each with a
``.zip.CHECKSUM`` holding ``<sha256>  <file name>``. The zipped CSV has no header;
spot files dated from 2025-01-01 on carry microsecond timestamps.
"""

from __future__ import annotations

import functools
import hashlib
import io
import zipfile
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import numpy as np
import pandas as pd

from .candles import kline_row
from .local_server import LocalServer

US_FROM_MS = int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)


def _period_bounds(label: str) -> tuple[int, int]:
    parts = [int(x) for x in label.split("-")]
    if len(parts) == 2:
        lo = datetime(parts[0], parts[1], 1, tzinfo=timezone.utc)
        hi = datetime(parts[0] + (parts[1] == 12), parts[1] % 12 + 1, 1, tzinfo=timezone.utc)
        return int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
    lo = int(datetime(*parts, tzinfo=timezone.utc).timestamp() * 1000)
    return lo, lo + 86_400_000


def zip_bytes(klines: pd.DataFrame, csv_name: str, microseconds: bool) -> bytes:
    lines = []
    for r in klines.itertuples(index=False):
        row = kline_row(r)
        if microseconds:
            row[0] = row[0] * 1000
            row[6] = row[6] * 1000 + 999
        lines.append(",".join(str(x) for x in row))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(csv_name, "\n".join(lines) + "\n")
    return buf.getvalue()


def vision_path(symbol: str, interval: str, label: str) -> str:
    kind = "monthly" if label.count("-") == 1 else "daily"
    return f"data/spot/{kind}/klines/{symbol}/{interval}/{symbol}-{interval}-{label}.zip"


def build_vision_tree(root: Path, klines: pd.DataFrame, *, symbol: str = "BTCUSDT", interval: str = "15m",
                      months: list[str] = (), days: list[str] = (), bad_checksum: set[str] = frozenset()) -> dict:
    """Write zips (+ .CHECKSUM) for the given ``YYYY-MM`` months and ``YYYY-MM-DD`` days.

    A file named in ``bad_checksum`` gets a CHECKSUM that does not match its bytes.
    Returns {file name: relative path}.
    """
    t = klines["open_time"].to_numpy(dtype=np.int64)
    written = {}
    for label in [*months, *days]:
        lo, hi = _period_bounds(label)
        rel = vision_path(symbol, interval, label)
        name = rel.rsplit("/", 1)[-1]
        data = zip_bytes(klines.loc[(t >= lo) & (t < hi)], name.replace(".zip", ".csv"), lo >= US_FROM_MS)
        digest = hashlib.sha256(data).hexdigest()
        if name in bad_checksum:
            digest = hashlib.sha256(data + b"tampered").hexdigest()
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        Path(f"{path}.CHECKSUM").write_text(f"{digest}  {name}\n")
        written[name] = rel
    return written


class VisionServer(LocalServer):
    """Serves a folder over HTTP on 127.0.0.1 (ephemeral port); logs requested paths."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[str] = []

    def start(self) -> "VisionServer":
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                return super().do_GET()

        self._serve(functools.partial(Handler, directory=str(self.root)))
        return self

