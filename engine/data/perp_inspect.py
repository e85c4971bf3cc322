"""``data inspect`` of a perp symbol's funding table: events, range, and its funding intervals (each
change of interval named), with the gaps longer than two intervals as problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError
from ..timeutil import format_time
from .funding_table import HOUR_MS, funding_symbols, read_funding


@dataclass(frozen=True)
class FundingReport:
    source: str
    symbol: str
    rows: int
    first: int | None
    last: int | None
    intervals: list[tuple[int, int]]  # (time, hours) at the first event and at each change
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        span = f"{format_time(self.first)} .. {format_time(self.last)} UTC" if self.rows else "none"
        hours = sorted({h for _, h in self.intervals})
        every = lambda h: f"{h}h" if h else "unknown (a lone event)"  # noqa: E731
        out = [f"{self.source} (um funding): {self.symbol}",
               f"  events:   {self.rows}",
               f"  range:    {span}",
               f"  funding intervals: {', '.join(every(h) for h in hours) or 'none'}"]
        out += [f"    from {format_time(t)} UTC: every {every(h)}" for t, h in self.intervals]
        out.append(f"  problems: {len(self.problems) or 'none'}")
        out += [f"    - {p}" for p in self.problems]
        return out


def _report(root: str, symbol: str, session: Any) -> FundingReport:
    try:
        df = read_funding(root, symbol, session=session)
    except DataError as exc:
        return FundingReport(root, symbol, 0, None, None, [], [str(exc)])
    t = df["funding_time"].to_numpy(dtype=np.int64)
    h = df["interval_hours"].to_numpy(dtype=np.int64)
    changes = [(int(t[i]), int(h[i])) for i in range(len(t)) if i == 0 or h[i] != h[i - 1]]
    problems = []
    if len(t) > 1:
        gap = np.diff(t) > 2 * HOUR_MS * np.maximum(h[:-1], h[1:])
        for i in np.flatnonzero(gap)[:5]:
            problems.append(f"no funding event from {format_time(int(t[i]))} to {format_time(int(t[i + 1]))} "
                            f"(more than 2 intervals of {int(max(h[i], h[i + 1]))}h)")
    return FundingReport(root, symbol, len(t), int(t[0]) if len(t) else None, int(t[-1]) if len(t) else None,
                         changes, problems)


def inspect_funding(root: str, session: Any = None) -> list[FundingReport]:
    try:
        symbols = funding_symbols(root, session=session)
    except DataError:
        return []
    return [_report(root, s, session) for s in symbols]
