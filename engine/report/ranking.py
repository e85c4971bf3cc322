"""Ranking combinations by a metric, best first, undefined values last, ties in grid order."""

from __future__ import annotations

import pandas as pd

#: Metrics where smaller is better.
ASCENDING = frozenset({"max_drawdown", "max_drawdown_abs", "max_drawdown_duration", "total_fees"})


def rank(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    ranked = summary.sort_values([metric, "combination"], ascending=[metric in ASCENDING, True],
                                 na_position="last", kind="mergesort").reset_index(drop=True)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked
