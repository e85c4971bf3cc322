"""What a candle file or dataset holds: rows, time range, interval, gaps and problems."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..candles import GapReport, gap_report, infer_interval_ms
from ..errors import DataError
from ..storage_layout import is_s3_uri
from ..timeutil import format_time, interval_to_ms, ms_to_interval
from ..storage_layout import kind_root, series_prefix
from .binance import INTERVAL_MS, series_problem
from .checks import grid_problem, validate_frame
from .dataset import list_series, read_candle_dataset
from .dataset_local import local_partitions, partition_files, read_parquet_file
from .dataset_s3 import s3_root
from .folder_lock import series_folder_lock
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
    interval = interval or ms_to_interval(iv)
    gaps = unexplained_gaps(t, iv, list(outages)) if outages else gap_report(t, iv)
    off = grid_problem(t, iv, interval)
    return SeriesReport(source, symbol, interval, len(t), int(t[0]) if len(t) else None,
                        int(t[-1]) if len(t) else None, gaps, problems + ([off] if off else []), list(outages))


def _outages(root: str, symbol: str, interval: str, problems: list[str], session: Any = None) -> list:
    try:
        return read_outages(root, symbol, interval, session=session)
    except DataError as exc:
        problems.append(str(exc))
        return []


def _inspect_local_series(root: Path, symbol: str, interval: str) -> SeriesReport:
    frames, problems = [], []
    with series_folder_lock(root / series_prefix(symbol, interval), exclusive=False):  # one committed version
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


def _inspect_s3_series(root: str, symbol: str, interval: str, session: Any) -> SeriesReport:
    try:
        df, _ = read_candle_dataset(root, symbol=symbol, interval=interval, session=session)
        validate_frame(df, f"{root} {symbol} {interval}")
    except DataError as exc:
        return _report(root, symbol, interval, merge_frames(), [str(exc)])
    problems: list[str] = []
    outages = _outages(root, symbol, interval, problems, session)
    return _report(root, symbol, interval, df, problems, outages)


def _bad_names(root: str, symbol: str, interval: str) -> SeriesReport:
    """A series folder whose names are not a Binance symbol and interval: reported, never read."""
    problem = series_problem(symbol, interval)
    iv = interval if interval in INTERVAL_MS else None
    return SeriesReport(root, symbol, iv or "?", 0, None, None, GapReport(0, 0, None, 0),
                        [f"{root}: folder symbol={symbol}/interval={interval}: {problem}; not read"])


def _series_of(root: str, session: Any, optional: bool) -> list[tuple[str, str]]:
    if not optional:
        return list_series(root, session=session)
    try:
        return list_series(root, session=session)
    except DataError:
        return []  # a perp root that does not exist


def _inspect_root(root: str, s3: bool, session: Any, label: str | None = None) -> list[SeriesReport]:
    """The series of one root; ``label`` names a perp kind's root, which may be absent."""
    reports = [_bad_names(root, s, i) if series_problem(s, i) else
               _inspect_s3_series(root, s, i, session) if s3 else _inspect_local_series(Path(root), s, i)
               for s, i in _series_of(root, session, label is not None)]
    return [dataclasses.replace(r, source=f"{r.source} ({label})") for r in reports] if label else reports


def inspect_path(path: str, *, session: Any = None, interval: str | None = None,
                 max_bytes: int | None = None) -> list[Any]:
    """One report per series (a dataset's perp series too: trade and mark klines, funding tables). A single
    file that fails validation raises DataError (one line); so does one candle with no ``interval`` to say
    how long it is."""
    if is_s3_uri(path) or Path(path).is_dir():
        from .perp_inspect import inspect_funding

        s3 = is_s3_uri(path)
        root, session = (s3_root(path), session_or_default(session)) if s3 else (path, None)
        reports: list[Any] = _inspect_root(root, s3, session)
        reports += _inspect_root(kind_root(root, "um", "klines"), s3, session, "um trade klines")
        reports += _inspect_root(kind_root(root, "um", "mark"), s3, session, "um mark klines")
        reports += inspect_funding(kind_root(root, "um", "funding"), session)
        if not reports:
            raise DataError(f"{path}: no symbol=…/interval=… {'partitions' if s3 else 'folders'}; "
                            "not a candles dataset")
        return reports
    candles = load_candles(path, interval=interval, max_bytes=max_bytes)
    return [_report(str(path), None, candles.interval, candles.to_frame(), [])]
