"""The cross-sectional PBO: is the combination best on some series still good on the others?

With S series (sorted by symbol, interval) and N combinations, every split of the series
into an in-sample set of ⌊S/2⌋ and an out-of-sample set of the rest, in
``itertools.combinations`` order. A combination's score on a set is the mean of its M
over the set's series where M is defined (undefined everywhere: the worst score). The
in-sample best has the highest score (lowest for drawdowns and fees: M is negated),
ties to the lowest index; its out-of-sample rank r among the N (ascending, ties averaged)
gives ω = r/(N+1) and λ = ln(ω/(1−ω)). PBO is the share of splits with λ ≤ 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import ASCENDING


@dataclass(frozen=True)
class CrossSeriesPBO:
    pbo: float
    splits: tuple[tuple[int, ...], ...]  # each split's in-sample series (row indices of M)
    best: np.ndarray  # the in-sample best combination per split
    oos_rank: np.ndarray  # its out-of-sample rank among the N (ascending, ties averaged)
    logits: np.ndarray  # λ per split


def _scores(M: np.ndarray, rows: list[int]) -> np.ndarray:
    sub = M[rows]
    defined = np.isfinite(sub)
    count = defined.sum(axis=0)
    total = np.where(defined, sub, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), -np.inf)


def cross_series_pbo(M: np.ndarray, metric: str) -> CrossSeriesPBO:
    """``M``: series × combination values of the rank metric (NaN where undefined)."""
    X = -np.asarray(M, dtype=np.float64) if metric in ASCENDING else np.asarray(M, dtype=np.float64)
    S, N = X.shape
    splits = tuple(itertools.combinations(range(S), S // 2))
    best = np.empty(len(splits), dtype=np.int64)
    ranks = np.empty(len(splits))
    logits = np.empty(len(splits))
    for j, inside in enumerate(splits):
        outside = [s for s in range(S) if s not in inside]
        is_score, oos_score = _scores(X, list(inside)), _scores(X, outside)
        n_star = int(np.argmax(is_score))  # the first of equal maxima: the lowest index
        r = float(pd.Series(oos_score).rank(method="average").to_numpy()[n_star])
        w = r / (N + 1)
        best[j], ranks[j], logits[j] = n_star, r, math.log(w / (1 - w))
    pbo = float(np.mean(logits <= 0)) if len(splits) else float("nan")
    return CrossSeriesPBO(pbo, splits, best, ranks, logits)
