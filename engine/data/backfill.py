"""Bulk history from data.binance.vision kline zips (a base URL or a local mirror folder).

Each month comes from its monthly zip (cut to the range), or, when that is not
published yet (the current month), from the daily zips. Every zip is checked against its
``.CHECKSUM`` (SHA-256) before it is read; a mismatch stops the backfill naming
the file. Each month is merged into the dataset as soon as it is read.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import DataError, UserError
from ..timeutil import check_range
from .candle_file import MAX_INPUT_BYTES, too_large
from .dataset import check_series, upsert_candles
from .dataset_schema import merge_frames
from .http_get import HttpResponse
from .http_retry import Deadline, RetryPolicy, get_with_retries
from .kline_csv import read_kline_csv
from .series_lock import DEFAULT_WAIT_S, hold_series

VISION_URL = "https://data.binance.vision"


@dataclass(frozen=True)
class BackfillResult:
    files: list[str] = field(default_factory=list)     # zips read and merged
    missing: list[str] = field(default_factory=list)   # zips not found at the source
    added: int = 0
    partitions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VisionFile:
    label: str   # YYYY-MM or YYYY-MM-DD
    path: str    # relative to the source root, like the real site

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


#: Where each market's files live on the site, and each kind of kline series' folder.
VISION_MARKETS = {"spot": "spot", "um": "futures/um"}
VISION_KINDS = {"klines": "klines", "mark": "markPriceKlines"}


def vision_file(symbol: str, interval: str, label: str, market: str = "spot", kind: str = "klines") -> VisionFile:
    period = "monthly" if label.count("-") == 1 else "daily"
    return VisionFile(label, f"data/{VISION_MARKETS[market]}/{period}/{VISION_KINDS[kind]}/{symbol}/{interval}/"
                             f"{symbol}-{interval}-{label}.zip")


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def plan_months(start: int, end: int) -> list[tuple[datetime, datetime]]:
    """The part of ``[start, end)`` in each month it touches, as (start, end) datetimes."""
    out = []
    d = _utc(start).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while _ms(d) < end:
        nxt = d.replace(year=d.year + (d.month == 12), month=d.month % 12 + 1)
        out.append((_utc(max(_ms(d), start)), _utc(min(_ms(nxt), end))))
        d = nxt
    return out


def _days(lo: datetime, hi: datetime) -> list[str]:
    d = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    while d < hi:
        out.append(d.strftime("%Y-%m-%d"))
        d += timedelta(days=1)
    return out


class VisionSource:
    """Reads files by their site-relative path from a base URL or a local folder."""

    def __init__(self, source: str, *, retries: int = 4, timeout: float = 120.0, max_retry_after: float = 120.0,
                 deadline: Deadline | None = None, sleep: Callable[[float], None] = time.sleep):
        self.source = source
        self.is_url = source.startswith(("http://", "https://"))
        self.policy = RetryPolicy(retries=retries, backoff=1.0, max_backoff=30.0, max_retry_after=max_retry_after,
                                  request_timeout=timeout)
        self.deadline, self.sleep = deadline, sleep
        if not self.is_url:
            base = Path(source)
            if not base.is_dir():
                raise UserError(f"{source}: backfill source is neither an http(s) URL nor a folder")
            # Accept the mirror root (holding data/) or its data/ folder itself.
            self.folder = base.parent if base.name == "data" and not (base / "data").is_dir() else base

    def get(self, rel: str) -> bytes | None:
        """The file's bytes, or None when the source does not have it."""
        if not self.is_url:
            p = self.folder / rel
            if not p.is_file():
                return None
            try:
                return p.read_bytes()
            except OSError as exc:
                raise DataError(f"{p}: cannot be read ({exc.strerror or exc})") from None
        url = f"{self.source.rstrip('/')}/{rel}"

        def accept(resp: HttpResponse) -> bytes | None:
            if resp.status == 200:
                return resp.body
            if resp.status == 404:
                return None
            raise UserError(f"GET {url}: HTTP {resp.status}")

        return get_with_retries(url, accept, policy=self.policy, sleep=self.sleep, deadline=self.deadline)


def verify_checksum(name: str, data: bytes, checksum: bytes | None) -> None:
    """Raise DataError naming the file unless its SHA-256 matches the ``<sha256>  <name>`` line."""
    if checksum is None:
        raise DataError(f"{name}: no {name}.CHECKSUM beside it; file refused")
    parts = checksum.decode("utf-8", "replace").split()
    if not parts or len(parts[0]) != 64:
        raise DataError(f"{name}: unreadable {name}.CHECKSUM; file refused")
    if len(parts) > 1 and parts[1].lstrip("*") != name:
        raise DataError(f"{name}: its .CHECKSUM is for {parts[1]}; file refused")
    got = hashlib.sha256(data).hexdigest()
    if got != parts[0].lower():
        raise DataError(f"{name}: SHA-256 {got} does not match its .CHECKSUM ({parts[0]}); file refused")


def read_vision_zip(name: str, data: bytes, reader: Callable[[Any, str], pd.DataFrame] = read_kline_csv
                    ) -> pd.DataFrame:
    """The one CSV inside a data.binance.vision zip, read by ``reader(stream, name)`` (klines by default)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = [m for m in z.infolist() if m.filename.lower().endswith(".csv")]
            if len(members) != 1:
                raise DataError(f"{name}: expected one CSV inside, found {len(members)}")
            if members[0].file_size > MAX_INPUT_BYTES:
                raise too_large(name, MAX_INPUT_BYTES, members[0].file_size)
            with z.open(members[0]) as fh:
                return reader(fh, name)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{name}: not a valid zip ({exc})") from None


def backfill(root: str, symbol: str, interval: str, start: int, end: int, *, source: str = VISION_URL,
             market: str = "spot", kind: str = "klines", progress: Callable[[str], None] | None = None,
             vision: VisionSource | None = None, session: Any = None, lock_wait: float = DEFAULT_WAIT_S,
             on_wait: Callable[[str], None] | None = None) -> BackfillResult:
    """Merge the kline zips covering ``[start, end)`` (ms) into the dataset at ``root`` (folder or s3://).

    ``market``/``kind``: which files (spot klines; um trade ``klines`` or ``mark`` klines); ``root`` is
    that kind's root (:func:`engine.storage_layout.kind_root`).

    The series lock is taken before the first month is merged and held to the end.
    """
    check_series(symbol, interval, "backfill")  # the names become paths at the source and in the dataset
    check_range(start, end, "backfill")
    vision = vision or VisionSource(source)
    files, missing, partitions, added = [], [], [], 0

    def load(vf: VisionFile) -> pd.DataFrame | None:
        data = vision.get(vf.path)
        if progress is not None:
            progress(vf.name)
        if data is None:
            return None
        verify_checksum(vf.name, data, vision.get(vf.path + ".CHECKSUM"))
        files.append(vf.name)
        return read_vision_zip(vf.name, data)

    lock = None
    with ExitStack() as held:  # the lock, once there is something to write
        for lo, hi in plan_months(start, end):
            monthly = vision_file(symbol, interval, lo.strftime("%Y-%m"), market, kind)
            month = load(monthly)
            frames = [month] if month is not None else []
            if month is None:
                absent = []
                for day in _days(lo, hi):
                    vf = vision_file(symbol, interval, day, market, kind)
                    df = load(vf)
                    if df is None:
                        absent.append(vf.name)
                    else:
                        frames.append(df)
                # A month with no file at all is reported once, by its monthly zip.
                missing += absent if frames else [monthly.name]
            if not frames:
                continue
            df = merge_frames(*frames)
            t = df["open_time"].to_numpy(dtype=np.int64)
            df = df.loc[(t >= _ms(lo)) & (t < _ms(hi))]
            if len(df):
                if lock is None:
                    lock = held.enter_context(hold_series(root, symbol, interval, wait=lock_wait, on_wait=on_wait,
                                                          command="data backfill", session=session))
                lock.check()
                result = upsert_candles(root, symbol, interval, df, session=session)
                added += result.added
                partitions += result.partitions
    return BackfillResult(files, missing, added, partitions)

