"""Build (or extend) a candle dataset from raw candle files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..candles import GapReport
from ..errors import DataError
from ..timeutil import interval_to_ms, ms_to_interval
from ..candle_checks import validate_frame
from ..candles import gap_report, infer_interval_ms
from .dataset_io import merge_frames, normalise_frame, upsert_candles
from .kline_csv import is_kline_csv, read_kline_csv


@dataclass(frozen=True)
class BuildResult:
    rows: int                  # candles read from the inputs, after removing duplicates
    added: int                 # candles new to the dataset
    first: int
    last: int
    gaps: GapReport            # holes in the input series
    partitions: list[str] = field(default_factory=list)


def read_candle_file(path: str | Path) -> pd.DataFrame:
    """Any file engine.loader reads, as stored columns; 12-column Binance CSVs keep their extra fields."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    if p.suffix != ".parquet" and is_kline_csv(p):
        df = read_kline_csv(p, str(p))
        validate_frame(df, str(p))
        return df
    from ..loader import load_candles

    return normalise_frame(load_candles(p).to_frame(), str(p))


def build_dataset(inputs: list[str | Path], root: str, symbol: str, interval: str, *,
                  session: Any = None) -> BuildResult:
    """Merge the inputs (a later file wins on equal open times) into the dataset at ``root``."""
    if not inputs:
        raise DataError("build: no input files")
    iv = interval_to_ms(interval)
    df = merge_frames(*(read_candle_file(p) for p in inputs))
    validate_frame(df, " + ".join(map(str, inputs)))
    t = df["open_time"].to_numpy()
    step = infer_interval_ms(t)
    if len(t) > 1 and step != iv:
        raise DataError(f"build: the input bars are {ms_to_interval(step)} apart but --interval is {interval}")
    result = upsert_candles(root, symbol, interval, df, session=session)
    return BuildResult(len(df), result.added, int(t[0]), int(t[-1]), gap_report(t, iv), result.partitions)
