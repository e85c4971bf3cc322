"""The one reader of Binance kline CSVs (12 columns, as in data.binance.vision zips and REST rows)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pandas as pd

from ..errors import DataError
from .candle_file import read_csv
from .dataset_schema import normalise_frame
from .binance import KLINE_FIELDS


def read_kline_csv(source: str | Path | IO[bytes], name: str, max_bytes: int | None = None) -> pd.DataFrame:
    """Headerless 12-column kline CSV (a header row, as in futures files, is skipped) as stored columns.

    Timestamps in ms or µs (spot files from 2025-01-01 on) come back as ms.
    """
    raw = read_csv(source, name, header=None, dtype=str, max_bytes=max_bytes)
    if raw.shape[1] != len(KLINE_FIELDS):
        raise DataError(f"{name}: {raw.shape[1]} columns; expected {len(KLINE_FIELDS)} (Binance kline CSV)")
    if len(raw) and not str(raw.iloc[0, 0]).strip().isdigit():
        raw = raw.iloc[1:]
    raw.columns = list(KLINE_FIELDS)
    return normalise_frame(raw.drop(columns="ignore").reset_index(drop=True), name)


def is_kline_row(first_row: pd.DataFrame) -> bool:
    """Is this first row (read with ``header=None, dtype=str``) a 12-field numeric kline?"""
    return first_row.shape[1] == len(KLINE_FIELDS) and str(first_row.iloc[0, 0]).strip().isdigit()


def is_kline_header(first_row: pd.DataFrame) -> bool:
    """Is it the header futures kline files start with (``open_time,open,high,…,ignore``, 12 fields)?"""
    return first_row.shape[1] == len(KLINE_FIELDS) and str(first_row.iloc[0, 0]).strip().lower() == "open_time"
