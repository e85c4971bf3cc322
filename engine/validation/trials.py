"""An honest count of trials: duplicate return series, and the effective number of trials.

* ``duplicate_of``: combinations with identical bar returns (e.g. ``stop_loss: 0.02`` and no stop
  under ``trailing_stop: 0.02``) are one trial. Each combination's fingerprint (its metrics and,
  under validation, the power sums of its in-sample returns, its CSCV block sums, its holdout and
  fold sums) is compared exactly; identical returns give identical fingerprints, computed by the
  same deterministic operations. Each row points at the lowest index with the same fingerprint.
* ``effective_trials``: the distinct series grouped by the correlation of their in-sample bar
  returns, by leader clustering in grid order: a series joins the first leader it correlates with
  at ρ ≥ ``CLUSTER_RHO`` (0.8), otherwise it leads a new cluster. The count of clusters is the
  number of trials that are not near-copies of each other. Series with zero variance form one
  cluster of their own. Series longer than ``POINTS`` (2,000) bars are correlated on their
  returns summed over 2,000 contiguous blocks (as ``numpy.array_split`` cuts them): the cost stays
  bounded, and the correlation of block sums tracks that of the bar returns.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

CLUSTER_RHO = 0.8
#: above this many distinct series, effective_trials is not computed (each needs its returns simulated)
MAX_CLUSTERED = 500
#: longer series are correlated on their returns summed over this many contiguous blocks of bars
POINTS = 2_000


def duplicate_of(fingerprint: np.ndarray) -> np.ndarray:
    """For each row of ``fingerprint`` (C, k), the lowest row index with bit-identical values."""
    f = np.ascontiguousarray(np.asarray(fingerprint, dtype=np.float64))
    f = np.where(np.isnan(f), np.nan, f + 0.0)  # one NaN and one zero for every spelling of them
    first: dict[bytes, int] = {}
    out = np.empty(len(f), dtype=np.int64)
    for i, row in enumerate(f):
        out[i] = first.setdefault(row.tobytes(), i)
    return out


def distinct(dup: np.ndarray) -> np.ndarray:
    """The indices that head their group (``duplicate_of[i] == i``)."""
    return np.flatnonzero(np.asarray(dup) == np.arange(len(dup)))


def effective_trials(series: Iterable[np.ndarray], rho: float = CLUSTER_RHO) -> int:
    """Leader clustering of return series by Pearson correlation (see the module's doc)."""
    leaders: np.ndarray | None = None  # (capacity, T): the leaders' standardised series, one row each
    k = 0
    flat = False
    for r in series:
        d = np.asarray(r, dtype=np.float64)
        if len(d) > POINTS:  # sums over POINTS contiguous blocks of bars (numpy.array_split's)
            d = np.add.reduceat(d, np.cumsum([0] + [len(b) for b in np.array_split(d, POINTS)[:-1]]))
        d = d - d.mean()
        norm = float(np.sqrt(d @ d))
        if not norm > 0:
            flat = True
            continue
        z = d / norm
        if k and float((leaders[:k] * z).sum(axis=1).max()) >= rho:  # no BLAS: its threads fight the sweep's
            continue
        if leaders is None or k == len(leaders):
            grown = np.empty((max(8, 2 * k), len(z)))
            if k:
                grown[:k] = leaders[:k]
            leaders = grown
        leaders[k] = z
        k += 1
    return k + int(flat)


def count_effective(heads: np.ndarray, returns_of: Callable[[int], np.ndarray]) -> int | None:
    """``effective_trials`` of the distinct combinations ``heads``; None above MAX_CLUSTERED."""
    if len(heads) > MAX_CLUSTERED:
        return None
    return effective_trials(returns_of(int(g)) for g in heads)


def first_of_groups(ranked):
    """The rows of a summary frame that head their group of identical returns (all rows without
    a ``duplicate_of`` column)."""
    if "duplicate_of" not in ranked:
        return ranked
    return ranked[ranked["duplicate_of"].to_numpy() == ranked["combination"].to_numpy()]
