"""Walk-forward: choosing each fold's combination, stitching the test windows, efficiency.

Fold k ranks every combination on its train window by ``report.rank_by`` (ties to the
lowest combination index, undefined values last) and runs the best on its test
window. The stitched out-of-sample equity chains the folds' test returns from the
capital: fold k's equity curve, which starts at the capital, is scaled by the
stitched equity reached at the end of fold k-1 (its trades' quantities, fees and
pnl with it; prices and returns are unchanged).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..metrics import ASCENDING
from ..trade import Trade


def choose(values: np.ndarray, metric: str) -> int:
    """Index of the best value of ``metric`` (NaN = undefined, ranked last; ties: lowest index)."""
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    if not ok.any():
        return 0
    target = v[ok].min() if metric in ASCENDING else v[ok].max()
    return int(np.flatnonzero(v == target)[0])


def stitch(curves: Sequence[np.ndarray], trades: Sequence[Sequence[Trade]],
           capital: float) -> tuple[np.ndarray, list[Trade]]:
    """One equity curve (length 1 + Σ T_k) and trade list from the folds' test runs."""
    equity = [np.array([capital], dtype=np.float64)]
    out: list[Trade] = []
    level = float(capital)
    for curve, fold_trades in zip(curves, trades):
        scale = level / capital
        e = np.asarray(curve, dtype=np.float64)
        equity.append(e[1:] * scale)
        out.extend(t._replace(qty=t.qty * scale, fees=t.fees * scale, pnl=t.pnl * scale) for t in fold_trades)
        level = float(e[-1]) * scale
    return np.concatenate(equity), out


def efficiency(stitched_cagr: float | None, in_sample_cagrs: Sequence[float | None]) -> float | None:
    """Stitched out-of-sample CAGR / mean in-sample CAGR of the chosen combinations
    (None when a CAGR is undefined or the mean is ≤ 0: a ratio over a loss in sample says nothing)."""
    if stitched_cagr is None or not in_sample_cagrs or any(c is None or not math.isfinite(c)
                                                           for c in in_sample_cagrs):
        return None
    mean = float(np.mean(in_sample_cagrs))
    return float(stitched_cagr) / mean if mean > 0 else None


def efficiency_text(eff: float | None, in_sample_cagrs: Sequence[float | None]) -> str:
    """The efficiency as printed: the ratio, or why there is none."""
    if eff is not None:
        return f"{eff:.2f}"
    known = [c for c in in_sample_cagrs if c is not None and math.isfinite(c)]
    if known and len(known) == len(in_sample_cagrs) and float(np.mean(known)) <= 0:
        return "n/a (in-sample CAGR ≤ 0)"
    return "n/a"
