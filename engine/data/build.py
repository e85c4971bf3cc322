"""Build (or extend) a candle dataset from raw candle files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..candles import GapReport, gap_report, infer_interval_ms
from ..errors import DataError
from ..timeutil import interval_to_ms, ms_to_interval
from .candle_file import check_input_size, check_regular_file, read_csv
from .checks import grid_problem, validate_frame
from .dataset import check_series, upsert_candles
from .dataset_schema import merge_frames, normalise_frame
from .kline_csv import is_kline_header, is_kline_row, read_kline_csv
from .loader import load_candles
from .series_lock import DEFAULT_WAIT_S, hold_series


@dataclass(frozen=True)
class BuildResult:
    rows: int                  # candles read from the inputs, after removing duplicates
    added: int                 # candles new to the dataset
    first: int
    last: int
    gaps: GapReport            # holes in the input series
    partitions: list[str] = field(default_factory=list)


def read_candle_file(path: str | Path, max_bytes: int | None = None, interval: str | None = None) -> pd.DataFrame:
    """Any file engine.data.loader reads, as stored columns; 12-column Binance CSVs keep their extra fields.
    ``interval`` names the file's interval (a file of one candle has no spacing to read it from)."""
    p = check_regular_file(path)
    check_input_size(p, max_bytes)
    first = None if p.suffix == ".parquet" else read_csv(p, nrows=1, header=None, dtype=str, max_bytes=max_bytes)
    if first is not None and (is_kline_row(first) or is_kline_header(first)):
        df = read_kline_csv(p, str(p), max_bytes)
        validate_frame(df, str(p))
        return df
    return normalise_frame(load_candles(p, max_bytes=max_bytes, fallback_interval=interval).to_frame(), str(p))


def build_dataset(inputs: list[str | Path], root: str, symbol: str, interval: str, *,
                  session: Any = None, lock_wait: float = DEFAULT_WAIT_S,
                  on_wait: Callable[[str], None] | None = None, max_bytes: int | None = None) -> BuildResult:
    """Merge the inputs (a later file wins on equal open times) into the dataset at ``root``.

    Every input is read and checked before the series lock is taken and anything is written.
    """
    if not inputs:
        raise DataError("build: no input files")
    check_series(symbol, interval, "build")
    iv = interval_to_ms(interval)
    for p in inputs:  # every file's size before any is read
        check_input_size(check_regular_file(p), max_bytes)
    df = merge_frames(*(read_candle_file(p, max_bytes, interval) for p in inputs))
    validate_frame(df, " + ".join(map(str, inputs)))
    t = df["open_time"].to_numpy()
    step = infer_interval_ms(t)
    if len(t) > 1 and step != iv:
        raise DataError(f"build: the input bars are {ms_to_interval(step)} apart but --interval is {interval}")
    off = grid_problem(t, iv, interval)
    if off:
        raise DataError(f"build: {off}; nothing was written")
    with hold_series(root, symbol, interval, wait=lock_wait, on_wait=on_wait, command="data build",
                     session=session):
        result = upsert_candles(root, symbol, interval, df, session=session)
    return BuildResult(len(df), result.added, int(t[0]), int(t[-1]), gap_report(t, iv), result.partitions)
