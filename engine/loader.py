"""One loader for every candle layout the project reads.

* CSV with a header (``Timestamp,Open,High,Low,Close,Volume``; names matched
  case-insensitively), optionally zipped or gzipped;
* headerless 12-column Binance kline CSV (REST rows and data.binance.vision);
* one Parquet file, or a hive-partitioned Parquet folder
  (``symbol=…/interval=…/year=…/month=…``), locally or on ``s3://``.

Timestamps in s, ms or µs are normalised to ms. Everything is validated before
it is returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .candles import CANDLE_COLUMNS, Candles, time_filter
from .data.dataset_io import read_candle_dataset
from .errors import DataError
from .storage_layout import is_s3_uri
from .timeutil import interval_to_ms, to_milliseconds
from .candle_checks import validate_frame

KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
                 "trades", "taker_buy_base_volume", "taker_buy_quote_volume", "ignore")
_TIME_NAMES = ("open_time", "opentime", "open time", "timestamp", "time", "date", "datetime")


def load_candles(path: str | Path, *, symbol: str | None = None, interval: str | None = None,
                 start: int | None = None, end: int | None = None) -> Candles:
    """Load, normalise, validate and filter to ``start <= open_time < end`` (ms)."""
    source = str(path)
    if is_s3_uri(source) or Path(source).is_dir():
        df, symbol = _read_dataset(source, symbol, interval, start, end)
    else:
        p = Path(source)
        if not p.exists():
            raise DataError(f"{source}: no such file or folder")
        df = _read_parquet_file(p) if p.suffix == ".parquet" else _read_csv(p)
        validate_frame(df, source)
        df = time_filter(df, start, end)
    validate_frame(df, source)
    iv = interval_to_ms(interval) if interval else None
    candles = Candles.from_frame(df, interval_ms=iv, symbol=symbol or "BTCUSDT", source=source)
    return candles


def _numeric(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Coerce to the canonical dtypes; a non-number is reported by row."""
    out = pd.DataFrame(index=df.index)
    raw_t = df["open_time"]
    if raw_t.dtype == object or pd.api.types.is_string_dtype(raw_t):
        num = pd.to_numeric(raw_t, errors="coerce")
        if num.isna().any() and not raw_t.isna().all():
            # Not epoch numbers: accept ISO date-times, which carry their own unit.
            try:
                num = pd.to_datetime(raw_t, utc=True).astype("int64") // 1_000_000
            except (ValueError, TypeError):
                i = int(np.flatnonzero(num.isna().to_numpy())[0])
                raise DataError(f"{source}: row {i + 1}: time {raw_t.iloc[i]!r} is not a timestamp") from None
        raw_t = num
    elif pd.api.types.is_datetime64_any_dtype(raw_t):
        raw_t = raw_t.dt.tz_localize("UTC") if raw_t.dt.tz is None else raw_t
        raw_t = raw_t.astype("int64") // 1_000_000  # ns -> ms
    if raw_t.isna().any():
        i = int(np.flatnonzero(raw_t.isna().to_numpy())[0])
        raise DataError(f"{source}: row {i + 1}: open_time is missing")
    t = raw_t.to_numpy()
    out["open_time"] = to_milliseconds(t if t.dtype.kind in "iu" else t.astype(np.float64).astype(np.int64))
    for col in CANDLE_COLUMNS[1:]:
        v = pd.to_numeric(df[col], errors="coerce")
        bad = v.isna() & df[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: row {i + 1}: {col}={df[col].iloc[i]!r} is not a number")
        out[col] = v.astype(np.float64)
    return out


def _first_line(path: Path) -> str:
    try:
        head = pd.read_csv(path, header=None, nrows=1, dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    return str(head.iloc[0, 0])


def _read_csv(path: Path) -> pd.DataFrame:
    first = _first_line(path)
    try:
        float(first)
        headerless = True
    except ValueError:
        headerless = False
    # Read with native dtypes first (fast); only a file with a non-number in it is
    # re-read as text so the error can name the row.
    raw = _read_csv_as(path, headerless, None)
    if not all(pd.api.types.is_numeric_dtype(raw[c]) for c in raw.columns[:6]):
        raw = _read_csv_as(path, headerless, str)
    if not headerless:
        raw = _rename_columns(raw, str(path))
    return _numeric(raw, str(path))


def _read_csv_as(path: Path, headerless: bool, dtype) -> pd.DataFrame:
    try:
        if headerless:
            raw = pd.read_csv(path, header=None, dtype=dtype)
            if raw.shape[1] not in (6, 12):
                raise DataError(f"{path}: headerless CSV has {raw.shape[1]} columns; expected 12 "
                                "(Binance kline) or 6 (time, open, high, low, close, volume)")
            raw.columns = list(KLINE_COLUMNS[: raw.shape[1]])
        else:
            raw = pd.read_csv(path, dtype=dtype)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from None
    return raw


def _rename_columns(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    lower = {str(c).strip().lower(): c for c in raw.columns}
    mapping = {}
    time_col = next((lower[n] for n in _TIME_NAMES if n in lower), None)
    if time_col is not None:
        mapping[time_col] = "open_time"
    for col in CANDLE_COLUMNS[1:]:
        if col in lower:
            mapping[lower[col]] = col
    missing = [c for c in CANDLE_COLUMNS if c not in mapping.values()]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; found "
                        f"{', '.join(map(str, raw.columns))}; expected Timestamp,Open,High,Low,Close,Volume")
    return raw.rename(columns=mapping)[list(CANDLE_COLUMNS)]


def _read_parquet_file(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    raw = _rename_columns(table.to_pandas(), str(path))
    return _numeric(raw, str(path))


def _read_dataset(root: str, symbol: str | None, interval: str | None, start: int | None,
                  end: int | None) -> tuple[pd.DataFrame, str | None]:
    """Read only the partitions the symbol/interval/time filter needs."""
    df, symbol = read_candle_dataset(root, symbol=symbol, interval=interval, start=start, end=end)
    df = _numeric(_rename_columns(df, root), root)
    return time_filter(df.sort_values("open_time", kind="stable").reset_index(drop=True), start, end), symbol
