"""A perp symbol's funding files: the data.binance.vision monthly archive
(``data/futures/um/monthly/fundingRate/SYM/SYM-fundingRate-YYYY-MM.zip``, CSV columns ``calc_time,
funding_interval_hours, last_funding_rate``) and local files in that layout or as REST rows (JSON).

The kline kinds (trade and mark) use :mod:`engine.data.backfill` with ``market="um"``; this module
adds the funding archive, :func:`backfill_funding`, and the reader ``data build --kind funding`` uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import DataError
from ..timeutil import check_range
from .backfill import VISION_MARKETS, VisionFile, VisionSource, plan_months, read_vision_zip, verify_checksum
from .candle_file import check_input_size, check_regular_file, read_csv
from .funding_fetch import parse_funding
from .funding_table import normalise_funding, upsert_funding
from .series_lock import DEFAULT_WAIT_S, hold_table

ARCHIVE_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")


@dataclass(frozen=True)
class FundingBackfillResult:
    files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: int = 0


def funding_vision_file(symbol: str, month: str) -> VisionFile:
    return VisionFile(month, f"data/{VISION_MARKETS['um']}/monthly/fundingRate/{symbol}/"
                             f"{symbol}-fundingRate-{month}.zip")


def read_funding_csv(source: Any, name: str, max_bytes: int | None = None) -> pd.DataFrame:
    """An archive CSV (header ``calc_time,funding_interval_hours,last_funding_rate``) as table rows."""
    raw = read_csv(source, name, dtype=str, max_bytes=max_bytes)
    cols = [str(c).strip().lower() for c in raw.columns]
    if cols != list(ARCHIVE_COLUMNS):
        raise DataError(f"{name}: columns {', '.join(cols)}; expected {', '.join(ARCHIVE_COLUMNS)} "
                        "(a Binance fundingRate file)")
    raw.columns = list(ARCHIVE_COLUMNS)
    return normalise_funding(pd.DataFrame({"funding_time": raw["calc_time"], "funding_rate": raw["last_funding_rate"],
                                           "interval_hours": raw["funding_interval_hours"]}), name)


def read_funding_zip(name: str, data: bytes) -> pd.DataFrame:
    return read_vision_zip(name, data, read_funding_csv)


def read_funding_file(path: str | Path, max_bytes: int | None = None) -> pd.DataFrame:
    """A local funding file: the archive's CSV (plain, .zip or .gz) or a JSON array of REST rows."""
    p = check_regular_file(path)
    check_input_size(p, max_bytes)
    if p.suffix == ".json":
        try:
            rows = json.loads(p.read_text())
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: not a JSON file of funding rates ({exc})") from None
        return parse_funding(rows, str(p))
    if p.suffix == ".zip":
        return read_funding_zip(p.name, p.read_bytes())
    return read_funding_csv(p, str(p), max_bytes)


def backfill_funding(root: str, symbol: str, start: int, end: int, *, vision: VisionSource,
                     progress: Callable[[str], None] | None = None, session: Any = None,
                     lock_wait: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None
                     ) -> FundingBackfillResult:
    """Merge the monthly funding zips covering ``[start, end)`` into the symbol's table at ``root``, each
    checked against its .CHECKSUM before it is read; the table's lock is held while merging."""
    check_range(start, end, "backfill funding")
    files, missing, frames = [], [], []
    for lo, hi in plan_months(start, end):
        vf = funding_vision_file(symbol, lo.strftime("%Y-%m"))
        data = vision.get(vf.path)
        if progress is not None:
            progress(vf.name)
        if data is None:
            missing.append(vf.name)
            continue
        verify_checksum(vf.name, data, vision.get(vf.path + ".CHECKSUM"))
        df = read_funding_zip(vf.name, data)
        t = df["funding_time"].to_numpy(dtype=np.int64)
        frames.append(df.loc[(t >= int(lo.timestamp() * 1000)) & (t < int(hi.timestamp() * 1000))])
        files.append(vf.name)
    added = 0
    frames = [f for f in frames if len(f)]
    if frames:
        with hold_table(root, symbol, wait=lock_wait, on_wait=on_wait, command="data backfill", session=session):
            added = upsert_funding(root, symbol, pd.concat(frames, ignore_index=True), session=session)
    return FundingBackfillResult(files, missing, added)


def build_funding(inputs: list[str | Path], root: str, symbol: str, *, session: Any = None,
                  lock_wait: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None,
                  max_bytes: int | None = None) -> tuple[int, int, pd.DataFrame]:
    """Merge local funding files (a later file wins on equal times) into the symbol's table at ``root``;
    every file is read and checked before the lock is taken. (rows read, rows new, the rows read)."""
    if not inputs:
        raise DataError("build: no input files")
    for p in inputs:
        check_input_size(check_regular_file(p), max_bytes)
    frames = [read_funding_file(p, max_bytes) for p in inputs]
    df = normalise_funding(pd.concat(frames, ignore_index=True), " + ".join(map(str, inputs)))
    if not len(df):
        raise DataError(f"build: no funding events in {' + '.join(map(str, inputs))}")
    with hold_table(root, symbol, wait=lock_wait, on_wait=on_wait, command="data build", session=session):
        added = upsert_funding(root, symbol, df, session=session)
    return len(df), added, df
