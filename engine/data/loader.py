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

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..candles import CANDLE_COLUMNS, Candles, infer_interval_ms, time_filter
from ..errors import DataError, UserError
from ..storage_layout import is_s3_uri
from ..timeutil import MAX_TIME_MS, MIN_TIME_MS, check_range, format_time, interval_to_ms, ms_to_interval, \
    to_milliseconds
from .candle_file import check_input_size, check_regular_file, read_csv
from .checks import validate_frame
from .dataset import read_candle_dataset, resolve_series
from .kline_csv import is_kline_row, read_kline_csv

#: A headerless 6-column CSV: the first six kline fields.
SIX_COLUMNS = CANDLE_COLUMNS
_TIME_NAMES = ("open_time", "opentime", "open time", "timestamp", "time", "date", "datetime")
#: Binance's file names: ``BTCUSDT-15m-2024-11.zip``, ``ETHUSDT-5m-spot-2024-08-22_2024-10-30.csv``.
_BINANCE_NAME = re.compile(r"^([A-Z0-9]{2,20})-(\d+[smhdwM])-")
UNKNOWN_SYMBOL = "unknown"


def name_identity(path: str | Path) -> tuple[str | None, str | None]:
    """(symbol, interval) from a Binance-style file name, else (None, None)."""
    m = _BINANCE_NAME.match(Path(str(path)).name)
    return (m.group(1), m.group(2)) if m else (None, None)


def load_candles(path: str | Path, *, symbol: str | None = None, interval: str | None = None,
                 start: int | None = None, end: int | None = None, max_bytes: int | None = None,
                 fallback_interval: str | None = None) -> Candles:
    """Load, normalise, validate and filter to ``start <= open_time < end`` (ms).

    The symbol is the dataset's partition, else the one in a Binance-style file name
    (``ETHUSDT-5m-…``), else ``symbol``, else "unknown"; a file name and ``symbol`` that
    disagree are an error. ``interval`` (and a file name's interval) must match the
    candles' real spacing: it names the data, it never overrides it. A single candle has no
    spacing: its interval is ``interval``, else a file or folder name's, else ``fallback_interval``
    (what a caller such as ``data build --interval`` knows), else it is refused. A file may hold at
    most ``max_bytes`` once decompressed (:data:`engine.data.candle_file.MAX_INPUT_BYTES` by default).
    """
    source = str(path)
    check_range(start, end, f"{source}: data.start/data.end")
    if is_s3_uri(source) or Path(source).is_dir():
        df, symbol, folder_interval = _read_dataset(source, symbol, interval, start, end)
        validate_frame(df, source)
        iv = _checked_interval(df["open_time"].to_numpy(), interval, folder_interval, source, "the dataset folder",
                               fallback_interval)
    else:
        p = check_regular_file(source)
        check_input_size(p, max_bytes)
        named_symbol, named_interval = name_identity(p)
        if named_symbol and symbol and named_symbol != symbol:
            raise DataError(f"{source}: the file name says {named_symbol} but data.symbol is {symbol}")
        symbol = named_symbol or symbol
        df = _read_parquet_file(p) if p.suffix == ".parquet" else _read_csv(p, max_bytes)
        validate_frame(df, source)
        # The whole file's spacing, before the time filter: a range may hold a single candle.
        iv = _checked_interval(df["open_time"].to_numpy(), interval, named_interval, source, "the file name",
                               fallback_interval)
        df = time_filter(df, start, end)
        validate_frame(df, source)
    return Candles.from_frame(df, interval_ms=iv, symbol=symbol or UNKNOWN_SYMBOL, source=source)


def _checked_interval(t: np.ndarray, given: str | None, named: str | None, source: str, namer: str,
                      fallback: str | None = None) -> int:
    """The candles' interval in ms: ``given`` (data.interval), else the one ``named`` by ``namer`` (a file or
    folder name), else their spacing; each given one is checked against the spacing. One candle has no
    spacing: without a given or named interval it is refused, not guessed."""
    iv = interval_to_ms(given) if given else None
    try:
        named_ms = interval_to_ms(named) if named else None
    except UserError:
        named_ms = None  # "1M" (calendar month) has no fixed length
    if len(t) < 2:
        if iv is None and named_ms is None:
            if fallback:
                return interval_to_ms(fallback)
            raise DataError(f"{source}: one candle, so its interval cannot be read from the data; set "
                            "data.interval in the config (or --interval on backtest data inspect)")
        return iv if iv is not None else named_ms
    real = infer_interval_ms(t)
    if iv is not None and iv != real:
        raise DataError(f"{source}: data.interval is {given} but the candles are {_spacing(real)} apart; "
                        "fix data.interval (or leave it out: it is read from the data)")
    if named_ms is not None and named_ms != real:
        raise DataError(f"{source}: {namer} says {named} but the candles are {_spacing(real)} apart")
    return real


def _spacing(ms: int) -> str:
    try:
        return ms_to_interval(ms)
    except UserError:
        return f"{ms} ms"


def _times(raw_t: pd.Series, source: str) -> np.ndarray:
    """The time column as int64 ms: epoch numbers in any unit, ISO text, or datetimes; 1970..2100 only."""
    if raw_t.dtype == object or pd.api.types.is_string_dtype(raw_t):
        num = pd.to_numeric(raw_t, errors="coerce")
        if num.isna().any() and not raw_t.isna().all():
            # Not epoch numbers: accept ISO date-times, which carry their own unit.
            try:
                dt = pd.to_datetime(raw_t, utc=True, format="ISO8601")
            except (ValueError, TypeError, OverflowError):
                bad = num.isna().to_numpy()
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{source}: row {i + 1}: time {raw_t.iloc[i]!r} is not a timestamp") from None
            return _ms_in_range(_datetime_ms(dt), source)
        raw_t = num
    elif pd.api.types.is_datetime64_any_dtype(raw_t):
        return _ms_in_range(_datetime_ms(raw_t), source)
    if raw_t.isna().any():
        i = int(np.flatnonzero(raw_t.isna().to_numpy())[0])
        raise DataError(f"{source}: row {i + 1}: open_time is missing")
    t = raw_t.to_numpy()
    if t.dtype.kind == "f":
        frac = np.flatnonzero(t != np.floor(t))
        if frac.size:
            i = int(frac[0])
            raise DataError(f"{source}: row {i + 1}: time {t[i]!r} is not a whole number")
    return to_milliseconds(t, f"{source}: open_time")


def _datetime_ms(dt: pd.Series) -> np.ndarray:
    dt = dt.dt.tz_localize("UTC") if dt.dt.tz is None else dt
    if dt.isna().any():
        return np.full(len(dt), -1, dtype=np.int64)
    return dt.dt.as_unit("ms").astype("int64").to_numpy()


def _ms_in_range(t: np.ndarray, source: str) -> np.ndarray:
    bad = np.flatnonzero((t < MIN_TIME_MS) | (t >= MAX_TIME_MS))
    if bad.size:
        i = int(bad[0])
        when = format_time(int(t[i])) if t[i] != -1 else "missing"
        raise DataError(f"{source}: row {i + 1}: time {when} is outside 1970-01-01 .. 2100-01-01")
    return t


def _numeric(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Coerce to the canonical dtypes; a non-number is reported by row."""
    out = pd.DataFrame(index=df.index)
    out["open_time"] = _times(df["open_time"], source)
    for col in CANDLE_COLUMNS[1:]:
        v = pd.to_numeric(df[col], errors="coerce")
        bad = v.isna() & df[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: row {i + 1}: {col}={df[col].iloc[i]!r} is not a number")
        out[col] = v.astype(np.float64)
    return out


def _read_csv(path: Path, max_bytes: int | None) -> pd.DataFrame:
    head = read_csv(path, header=None, nrows=1, dtype=str, max_bytes=max_bytes)
    if is_kline_row(head):
        return read_kline_csv(path, str(path), max_bytes)[list(CANDLE_COLUMNS)]
    try:
        float(str(head.iloc[0, 0]))
        headerless = True
    except ValueError:
        headerless = False
    # Read with native dtypes first (fast); only a file with a non-number in it is
    # re-read as text so the error can name the row.
    raw = _read_csv_as(path, headerless, None, max_bytes)
    if not all(pd.api.types.is_numeric_dtype(raw[c]) for c in raw.columns[:6]):
        raw = _read_csv_as(path, headerless, str, max_bytes)
    if not headerless:
        raw = _rename_columns(raw, str(path))
    return _numeric(raw, str(path))


def _read_csv_as(path: Path, headerless: bool, dtype, max_bytes: int | None) -> pd.DataFrame:
    if headerless:
        raw = read_csv(path, header=None, dtype=dtype, max_bytes=max_bytes)
        if raw.shape[1] != len(SIX_COLUMNS):
            raise DataError(f"{path}: headerless CSV has {raw.shape[1]} columns; expected 12 "
                            "(Binance kline) or 6 (time, open, high, low, close, volume)")
        raw.columns = list(SIX_COLUMNS)
        return raw
    return read_csv(path, dtype=dtype, max_bytes=max_bytes)


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
                  end: int | None) -> tuple[pd.DataFrame, str, str]:
    """Read only the partitions the symbol/interval/time filter needs: (frame, symbol, the folder's interval)."""
    if symbol is None or interval is None:
        symbol, interval = resolve_series(root, symbol, interval)
    folder_interval = interval
    df, symbol = read_candle_dataset(root, symbol=symbol, interval=folder_interval, start=start, end=end)
    df = _numeric(_rename_columns(df, root), root)
    df = time_filter(df.sort_values("open_time", kind="stable").reset_index(drop=True), start, end)
    return df, symbol, folder_interval
