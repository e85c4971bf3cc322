"""The candle dataset: Snappy Parquet, hive-partitioned by symbol/interval/year/month.

A dataset root is a local folder (:mod:`engine.data.dataset_local`) or
``s3://bucket/candles/`` (:mod:`engine.data.dataset_s3`); these functions choose the
backend. The schema and the rules both share are in :mod:`engine.data.dataset_schema`.
Writers hold the series lock (:mod:`engine.data.series_lock`); this module writes, never locks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..storage_layout import is_s3_uri
from . import dataset_local as local
from . import dataset_s3 as s3
from .dataset_schema import UpsertResult, merge_frames, normalise_frame


def read_candle_dataset(root: str, *, symbol: str | None = None, interval: str | None = None,
                        start: int | None = None, end: int | None = None,
                        session: Any = None) -> tuple[pd.DataFrame, str | None]:
    """Candles of one series with ``start <= open_time < end``, reading only the month partitions
    that range touches. Returns the frame (stored columns, sorted, unique times) and the symbol."""
    if is_s3_uri(root):
        return s3.read(str(root), symbol, interval, start, end, session)
    return local.read(str(root), symbol, interval, start, end)


def last_open_time(root: str, symbol: str, interval: str, *, session: Any = None) -> int | None:
    """The watermark: newest stored open time (ms) of the series, or None; reads the newest partition only."""
    if is_s3_uri(root):
        return s3.last_open_time(str(root), symbol, interval, session)
    return local.last_open_time(str(root), symbol, interval)


def upsert_candles(root: str, symbol: str, interval: str, frame: pd.DataFrame, *,
                   session: Any = None) -> UpsertResult:
    """Merge candles into their month partitions (dedupe on open_time, incoming wins, sort, validate).

    Each partition is replaced whole: locally atomically (temp file + os.replace), on S3 by a new
    object written before the old ones are deleted. Nothing already stored is lost or duplicated.
    Callers hold the series lock (:mod:`engine.data.series_lock`).
    """
    df = merge_frames(normalise_frame(frame, "new candles"))
    if len(df) == 0:
        return UpsertResult(0, [])
    if is_s3_uri(root):
        return s3.upsert(str(root), symbol, interval, df, session)
    return local.upsert(str(root), symbol, interval, df)


def stored_open_times(root: str, symbol: str, interval: str, *, start: int | None = None, end: int | None = None,
                      session: Any = None) -> np.ndarray:
    """Sorted unique open times (ms) stored for the series in ``[start, end)``; reads the open_time column only."""
    t = (s3.open_times(str(root), symbol, interval, start, end, session) if is_s3_uri(root)
         else local.open_times(str(root), symbol, interval, start, end))
    t = np.unique(t)
    if start is not None:
        t = t[t >= start]
    if end is not None:
        t = t[t < end]
    return t


def tidy_series(root: str, symbol: str, interval: str, *, session: Any = None) -> list[str]:
    """Clear what an interrupted write left (temp files locally, doubled partition files on S3).

    Only while holding the series lock: then no other writer's temp file can be in flight.
    """
    if is_s3_uri(root):
        return s3.tidy(str(root), symbol, interval, session)
    return local.tidy(str(root), symbol, interval)
