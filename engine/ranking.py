"""Ranking combinations by a metric, best first, undefined values last, ties in grid order.

A combination with fewer than ``min_trades`` closed trades is left unranked: it keeps
its summary row, after every ranked one, with an empty rank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import ASCENDING


def rank(summary: pd.DataFrame, metric: str, min_trades: int = 0) -> pd.DataFrame:
    """``summary`` sorted best first with a ``rank`` column (nullable integers: empty when unranked)."""
    ordered = summary.sort_values([metric, "combination"], ascending=[metric in ASCENDING, True],
                                  na_position="last", kind="mergesort")
    if min_trades > 0 and len(ordered):
        eligible = ordered["n_trades"].fillna(0).to_numpy() >= min_trades
        ordered = pd.concat([ordered[eligible], ordered[~eligible]])
        ranks = np.where(np.arange(len(ordered)) < eligible.sum(), np.arange(1, len(ordered) + 1), 0)
        column = pd.array(ranks, dtype="Int64")
        column[ranks == 0] = pd.NA
    else:
        column = pd.array(np.arange(1, len(ordered) + 1), dtype="Int64")
    ranked = ordered.reset_index(drop=True)
    ranked.insert(0, "rank", column)
    return ranked


def ranked_rows(ranked: pd.DataFrame) -> pd.DataFrame:
    """The rows that carry a rank."""
    return ranked[ranked["rank"].notna()]


def top_combinations(ranked: pd.DataFrame, k: int) -> list[int]:
    """The grid indices of the ``k`` best ranked combinations, best first."""
    return [int(c) for c in ranked_rows(ranked)["combination"].head(k)]
