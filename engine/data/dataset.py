"""The candle dataset: Snappy Parquet, hive-partitioned by symbol/interval/year/month.

A dataset root is a local folder (:mod:`engine.data.dataset_local`) or
``s3://bucket/candles/`` (:mod:`engine.data.dataset_s3`); these functions choose the
backend. The schema and the rules both share are in :mod:`engine.data.dataset_schema`.
Writers hold the series lock (:mod:`engine.data.series_lock`); this module writes, never locks.
A reader sees one committed version of each series (docs/semantics.md, "Data").

Every series name given to or read from a dataset is a Binance symbol and interval
(:func:`engine.data.binance.series_problem`): they become folder names and S3 keys, so
nothing else may reach a path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..storage_layout import is_s3_uri
from . import dataset_local as local
from . import dataset_s3 as s3
from .binance import series_problem
from .dataset_schema import UpsertResult, choose, merge_frames, normalise_frame


def check_series(symbol: str, interval: str, where: str = "dataset") -> None:
    """DataError unless (symbol, interval) can name a stored series."""
    problem = series_problem(symbol, interval)
    if problem:
        raise DataError(f"{where}: {problem}")


def list_series(root: str, *, session: Any = None) -> list[tuple[str, str]]:
    """Every (symbol, interval) the dataset's folders name, sorted; names that are not a Binance
    symbol and interval are included (:func:`check_series` tells them apart)."""
    if is_s3_uri(root):
        return s3.series_names(str(root), session)
    return local.series_names(str(root))


def resolve_series(root: str, symbol: str | None = None, interval: str | None = None, *,
                   session: Any = None) -> tuple[str, str]:
    """The one series a read means: the named one, which must exist, else the only one there is."""
    names = list_series(root, session=session)
    symbol = choose(sorted({s for s, _ in names}), symbol, "symbol", str(root))
    interval = choose([i for s, i in names if s == symbol], interval, "interval", str(root))
    check_series(symbol, interval, f"{root}: folder symbol={symbol}/interval={interval}")
    return symbol, interval


def read_candle_dataset(root: str, *, symbol: str | None = None, interval: str | None = None,
                        start: int | None = None, end: int | None = None,
                        session: Any = None) -> tuple[pd.DataFrame, str]:
    """Candles of one series with ``start <= open_time < end``, reading only the month partitions
    that range touches. Returns the frame (stored columns, sorted, unique times) and the symbol."""
    if symbol is None or interval is None:
        symbol, interval = resolve_series(root, symbol, interval, session=session)
    check_series(symbol, interval, str(root))
    df = (s3.read(str(root), symbol, interval, start, end, session) if is_s3_uri(root)
          else local.read(str(root), symbol, interval, start, end))
    if df is None:  # no such series: say what there is
        resolve_series(root, symbol, interval, session=session)
        df = merge_frames()
    return df, symbol


def last_open_time(root: str, symbol: str, interval: str, *, session: Any = None) -> int | None:
    """The watermark: newest stored open time (ms) of the series, or None; reads the newest partition only."""
    check_series(symbol, interval, str(root))
    if is_s3_uri(root):
        return s3.last_open_time(str(root), symbol, interval, session)
    return local.last_open_time(str(root), symbol, interval)


def upsert_candles(root: str, symbol: str, interval: str, frame: pd.DataFrame, *,
                   session: Any = None) -> UpsertResult:
    """Merge candles into their month partitions (dedupe on open_time, incoming wins, sort, validate).

    One upsert is one committed version of the series: readers see all of it or none of it.
    Locally every new partition file is written first and then renamed into place; on S3 the
    new objects form one generation, written before the objects they replace are deleted.
    Nothing already stored is lost or duplicated. Callers hold the series lock
    (:mod:`engine.data.series_lock`).
    """
    check_series(symbol, interval, str(root))
    df = merge_frames(normalise_frame(frame, "new candles"))
    if len(df) == 0:
        return UpsertResult(0, [])
    if is_s3_uri(root):
        return s3.upsert(str(root), symbol, interval, df, session)
    return local.upsert(str(root), symbol, interval, df)


def stored_open_times(root: str, symbol: str, interval: str, *, start: int | None = None, end: int | None = None,
                      session: Any = None) -> np.ndarray:
    """Sorted unique open times (ms) stored for the series in ``[start, end)``; reads the open_time column only."""
    check_series(symbol, interval, str(root))
    t = (s3.open_times(str(root), symbol, interval, start, end, session) if is_s3_uri(root)
         else local.open_times(str(root), symbol, interval, start, end))
    t = np.unique(t)
    if start is not None:
        t = t[t >= start]
    if end is not None:
        t = t[t < end]
    return t


def tidy_series(root: str, symbol: str, interval: str, *, session: Any = None) -> list[str]:
    """Clear what an interrupted write left (temp files locally; an incomplete generation and doubled
    partition objects on S3).

    Only while holding the series lock: then no other writer's temp file can be in flight.
    """
    check_series(symbol, interval, str(root))
    if is_s3_uri(root):
        return s3.tidy(str(root), symbol, interval, session)
    return local.tidy(str(root), symbol, interval)
