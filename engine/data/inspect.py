"""What a candle file or dataset holds: rows, time range, interval, gaps and problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..candles import GapReport, gap_report, infer_interval_ms
from ..errors import DataError
from ..storage_layout import is_s3_uri
from ..timeutil import format_time, interval_to_ms, ms_to_interval
from .checks import validate_frame
from .dataset import read_candle_dataset
from .dataset_local import local_partitions, partition_files, partition_values, read_parquet_file
from .dataset_s3 import partition_values as s3_partition_values, s3_root
from .dataset_schema import merge_frames, month_key
from .loader import load_candles
from .outages import bars, describe, read_outages, unexplained_gaps
from .s3_session import session_or_default


@dataclass(frozen=True)
class SeriesReport:
    source: str
    symbol: str | None
    interval: str
    rows: int
    first: int | None
    last: int | None
    gaps: GapReport                 # holes no recorded outage explains
    problems: list[str] = field(default_factory=list)
    outages: list[tuple[int, int]] = field(default_factory=list)  # ranges the exchange confirmed empty

    def lines(self) -> list[str]:
        iv = interval_to_ms(self.interval)
        name = f"{self.symbol} {self.interval}" if self.symbol else self.interval
        span = (f"{format_time(self.first)} .. {format_time(self.last)} UTC (open times)"
                if self.rows else "none")
        largest = (f"largest {self.gaps.largest_ms // iv - 1} missing bar(s) before {format_time(self.gaps.largest_at)}"
                   if self.gaps.count else "")
        out = [f"{self.source}: {name}",
               f"  rows:     {self.rows}",
               f"  range:    {span}",
               f"  interval: {self.interval}",
               f"  gaps:     {self.gaps.count}" + (f" ({self.gaps.missing_bars} missing bar(s); {largest})"
                                                    if self.gaps.count else "")]
        if self.outages:
            out.append(f"  outages:  {len(self.outages)} recorded, confirmed empty by the exchange "
                       f"({bars(self.outages, iv)} bar(s)): {describe(self.outages)}")
        out.append(f"  problems: {len(self.problems) or 'none'}")
        out += [f"    - {p}" for p in self.problems]
        return out


def _report(source: str, symbol: str | None, interval: str | None, df: pd.DataFrame,
            problems: list[str], outages: list[tuple[int, int]] = ()) -> SeriesReport:
    t = df["open_time"].to_numpy(dtype=np.int64)
    iv = interval_to_ms(interval) if interval else infer_interval_ms(t)
    gaps = unexplained_gaps(t, iv, list(outages)) if outages else gap_report(t, iv)
    return SeriesReport(source, symbol, interval or ms_to_interval(iv), len(t),
                        int(t[0]) if len(t) else None, int(t[-1]) if len(t) else None,
                        gaps, problems, list(outages))


def _outages(root: str, symbol: str, interval: str, problems: list[str], session: Any = None) -> list:
    try:
        return read_outages(root, symbol, interval, session=session)
    except DataError as exc:
        problems.append(str(exc))
        return []


def _inspect_local_series(root: Path, symbol: str, interval: str) -> SeriesReport:
    frames, problems = [], []
    for y, m, folder in local_partitions(root, symbol, interval):
        files = partition_files(folder)
        if not files:
            problems.append(f"{folder}: partition without a data file")
        for f in files:
            try:
                df = read_parquet_file(f)
                validate_frame(df, str(f))
            except DataError as exc:
                problems.append(str(exc))
                continue
            outside = int((month_key(df["open_time"].to_numpy()) != y * 100 + m).sum())
            if outside:
                problems.append(f"{f}: {outside} row(s) outside year={y:04d}/month={m:02d}")
            frames.append(df)
    n = sum(len(f) for f in frames)
    df = merge_frames(*frames)
    if len(df) < n:
        problems.append(f"{n - len(df)} duplicate open time(s) across files")
    outages = _outages(str(root), symbol, interval, problems)
    return _report(str(root), symbol, interval, df, problems, outages)


def inspect_path(path: str, *, session: Any = None) -> list[SeriesReport]:
    """One report per series. A single file that fails validation raises DataError (one line)."""
    if is_s3_uri(path):
        root, session = s3_root(path), session_or_default(session)
        reports = []
        for s in s3_partition_values(root, "symbol", session):
            for i in s3_partition_values(f"{root}symbol={s}/", "interval", session):
                try:
                    df, _ = read_candle_dataset(root, symbol=s, interval=i, session=session)
                    validate_frame(df, f"{root} {s} {i}")
                    problems: list[str] = []
                    outages = _outages(root, s, i, problems, session)
                    reports.append(_report(root, s, i, df, problems, outages))
                except DataError as exc:
                    reports.append(_report(root, s, i, merge_frames(), [str(exc)]))
        if not reports:
            raise DataError(f"{path}: no symbol=…/interval=… partitions; not a candles dataset")
        return reports
    p = Path(path)
    if p.is_dir():
        series = [(s, i) for s in partition_values(p, "symbol") for i in partition_values(p / f"symbol={s}", "interval")]
        if not series:
            raise DataError(f"{path}: no symbol=…/interval=… folders; not a candles dataset")
        return [_inspect_local_series(p, s, i) for s, i in series]
    candles = load_candles(p)
    return [_report(str(p), None, candles.interval, candles.to_frame(), [])]
