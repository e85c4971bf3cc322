"""Binance kline CSV (12 columns, as in data.binance.vision zips): parse to the stored columns."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pandas as pd

from ..errors import DataError
from .dataset_io import normalise_frame
from .klines import ROW_FIELDS


def read_kline_csv(source: str | Path | IO[bytes], name: str) -> pd.DataFrame:
    """Headerless 12-column kline CSV (a header row, as in futures files, is skipped).

    Timestamps in ms or µs (spot files from 2025-01-01 on) come back as ms.
    """
    try:
        raw = pd.read_csv(source, header=None, dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{name}: not a readable kline CSV ({str(exc).splitlines()[0]})") from None
    if raw.shape[1] != len(ROW_FIELDS):
        raise DataError(f"{name}: {raw.shape[1]} columns; expected {len(ROW_FIELDS)} (Binance kline CSV)")
    if len(raw) and not str(raw.iloc[0, 0]).strip().isdigit():
        raw = raw.iloc[1:]
    raw.columns = list(ROW_FIELDS)
    return normalise_frame(raw.drop(columns="ignore").reset_index(drop=True), name)


def is_kline_csv(path: Path) -> bool:
    """Headerless 12-column numeric rows (plain, .zip or .gz)?"""
    try:
        head = pd.read_csv(path, header=None, nrows=1, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError):
        return False
    return head.shape[1] == len(ROW_FIELDS) and str(head.iloc[0, 0]).strip().isdigit()
