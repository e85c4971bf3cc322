"""``summary_by_series`` and the cross-series aggregates and ranking: pure functions over frames.

The rules (docs/semantics.md, "Universe sweeps"): for the rank metric M, over the series
where M is defined, ``M_median``, ``M_mean``, ``M_min``, ``M_max``, ``M_std`` (ddof 1, two
series or more); ``profitable_share`` over every series; ``series``, the count where M is
defined; ``rank_mean``, the mean of the combination's within-series rank (1 best, ties
averaged, drawdowns and fees lowest first). The ranking is by ``report.aggregate`` of M,
undefined last, ties to the lower combination index. Under ``data.market: um`` the summary also
sums ``total_funding`` and ``n_liquidations`` over the series, as it sums ``n_trades``.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import ASCENDING, METRICS, OOS_METRICS, SHARPE_TESTS, VALIDATION_COLUMNS

#: the columns that name a row of summary_by_series.csv, before its metrics
KEY_COLUMNS = ("combination", "strategy_id", "symbol", "interval")
#: perp figures summed over the series (data.market: um), beside n_trades
PERP_SUMS = ("total_funding", "n_liquidations")
#: what each aggregate of M is called in the universe summary (``M`` replaced by the metric)
STATS = ("median", "mean", "min", "max", "std")
SUMMARY_BY_SERIES_CSV = "summary_by_series.csv"


def by_series_frame(keys: Sequence[tuple[str, str]], summaries: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per (series, combination), series in the order given, combinations in grid order:
    ``combination, strategy_id, symbol, interval``, every metric, then the validation columns present."""
    frames = []
    for (symbol, interval), summary in zip(keys, summaries):
        f = pd.DataFrame({"combination": summary["combination"].to_numpy(), "strategy_id": summary["strategy_id"]
                          .to_numpy(), "symbol": symbol, "interval": interval})
        for c in (*METRICS, *OOS_METRICS, *SHARPE_TESTS):
            if c in summary:
                f[c] = summary[c].to_numpy()
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def metric_matrix(by_series: pd.DataFrame, metric: str, n_series: int) -> np.ndarray:
    """M as a series × combination array (NaN where undefined), from series-major rows."""
    values = pd.to_numeric(by_series[metric], errors="coerce").to_numpy(np.float64)
    return values.reshape(n_series, -1)


def within_series_ranks(M: np.ndarray, metric: str) -> np.ndarray:
    """Each series' ranks of the combinations where M is defined: 1 best, ties averaged (NaN elsewhere)."""
    ascending = metric in ASCENDING
    return np.vstack([pd.Series(row).rank(method="average", ascending=ascending, na_option="keep").to_numpy()
                      for row in M]) if len(M) else M


def aggregates(M: np.ndarray, total_return: np.ndarray, n_trades: np.ndarray, metric: str) -> pd.DataFrame:
    """The aggregate columns, one row per combination (grid order)."""
    defined = np.isfinite(M)
    count = defined.sum(axis=0)
    masked = np.where(defined, M, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a combination undefined on every series: NaN
            out = {f"{metric}_median": np.nanmedian(masked, axis=0), f"{metric}_mean": np.nanmean(masked, axis=0),
                   f"{metric}_min": np.nanmin(masked, axis=0), f"{metric}_max": np.nanmax(masked, axis=0)}
            std = np.nanstd(masked, axis=0, ddof=1)
            out[f"{metric}_std"] = np.where(count >= 2, std, np.nan)
            out["profitable_share"] = (total_return > 0).mean(axis=0)
            out["series"] = count
            out["rank_mean"] = np.nanmean(within_series_ranks(M, metric), axis=0)
    out["n_trades"] = np.nansum(n_trades, axis=0).astype(np.int64)
    return pd.DataFrame(out)


def universe_summary(by_series: pd.DataFrame, grid_columns: pd.DataFrame, n_series: int, metric: str,
                     aggregate: str, *, perp: bool = False) -> pd.DataFrame:
    """The universe's ``summary.csv``: ranked, with a ``rank`` column (1 best), one row per combination.

    ``grid_columns``: combination, strategy_id, strategy and the parameter and rule columns, grid order."""
    M = metric_matrix(by_series, metric, n_series)
    tr = metric_matrix(by_series, "total_return", n_series)
    nt = metric_matrix(by_series, "n_trades", n_series)
    agg = aggregates(M, tr, nt, metric)
    if perp:
        for c in PERP_SUMS:
            total = np.nansum(metric_matrix(by_series, c, n_series), axis=0)
            agg[c] = total.astype(np.int64) if c == "n_liquidations" else total
    frame = pd.concat([grid_columns.reset_index(drop=True), agg], axis=1)
    return rank_universe(frame, f"{metric}_{aggregate}", metric in ASCENDING)


def rank_universe(frame: pd.DataFrame, key: str, ascending: bool) -> pd.DataFrame:
    ordered = frame.sort_values([key, "combination"], ascending=[ascending, True], na_position="last",
                                kind="mergesort").reset_index(drop=True)
    ordered.insert(0, "rank", np.arange(1, len(ordered) + 1))
    return ordered


def grid_columns(summary: pd.DataFrame) -> pd.DataFrame:
    """A single series' summary without its figures: what names each combination."""
    figures = set(METRICS) | set(VALIDATION_COLUMNS)
    return summary[[c for c in summary.columns if c not in figures]].reset_index(drop=True)


def top_of(ranked: pd.DataFrame, key: str, k: int) -> list[int]:
    """The ``k`` best combinations whose aggregate is defined, best first."""
    rows = ranked[ranked[key].notna()]
    return [int(c) for c in rows["combination"].head(k)]
