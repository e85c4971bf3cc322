"""Where a ``data.market: um`` run's series come from, when not synthetic: a dataset's perp series.

The trade klines are read from the dataset's um klines root, the mark klines (the same symbol and
interval) from its mark root, and the symbol's funding table; all three roots come from
:func:`engine.storage_layout.kind_root`. A candle file, or a dataset with no perp series (a spot
dataset), is refused in one line before any work.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..candles import Candles
from ..errors import DataError
from ..perp.series import PerpData, align_marks
from ..storage_layout import is_s3_uri, kind_root
from ..timeutil import ms_to_interval
from .dataset import list_series, read_candle_dataset
from .funding_table import read_funding
from .loader import load_candles
from .spec import DataSpec


def _perp_series(root: str) -> list[tuple[str, str]]:
    try:
        return list_series(root)
    except DataError:
        return []  # no such folder


def load_perp(spec: DataSpec, start: int | None, end: int | None) -> Candles:
    """Trade klines carrying their mark klines and the funding table (``Candles.perp``)."""
    source = spec.source
    if not (is_s3_uri(source) or Path(source).is_dir()):
        raise DataError(f"data.market: um, but {source} is a candle file: it holds spot candles, no mark klines or funding; "
                        "a perp run needs a perp dataset (backtest data build/fetch/backfill --market um) "
                        "or source: synthetic")
    klines_root = kind_root(source, "um", "klines")
    if not _perp_series(klines_root):
        raise DataError(f"data.market: um, but {source} holds spot candles only, no perp series (um/ trade klines, mark klines, funding); "
                        "a perp run needs "
                        "a perp dataset (backtest data build/fetch/backfill --market um) or source: synthetic")
    candles = load_candles(klines_root, symbol=spec.symbol, interval=spec.interval, start=start, end=end,
                           max_bytes=spec.max_input_bytes)
    interval = ms_to_interval(candles.interval_ms)
    mark_root = kind_root(source, "um", "mark")
    mark_open = mark_high = mark_low = np.full(len(candles), np.nan)
    if (candles.symbol, interval) in _perp_series(mark_root):
        mk, _ = read_candle_dataset(mark_root, symbol=candles.symbol, interval=interval, start=start, end=end)
        if len(mk):
            mark_open, mark_high, mark_low = align_marks(
                candles.open_time, mk["open_time"].to_numpy(dtype=np.int64), mk["open"].to_numpy(),
                mk["high"].to_numpy(), mk["low"].to_numpy())
    funding = read_funding(kind_root(source, "um", "funding"), candles.symbol)
    if funding is None:
        t = np.zeros(0, np.int64)
        rate = mark = np.zeros(0)
        hours = np.zeros(0, np.int64)
    else:
        t = funding["funding_time"].to_numpy(dtype=np.int64)
        rate = funding["funding_rate"].to_numpy(dtype=np.float64)
        mark = funding["mark_price"].to_numpy(dtype=np.float64)
        hours = funding["interval_hours"].to_numpy(dtype=np.int64)
    perp = PerpData(mark_open, mark_high, mark_low, t, rate, mark, hours)
    return dataclasses.replace(candles, perp=perp, source=f"{source} (um)")

