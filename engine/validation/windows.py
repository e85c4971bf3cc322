"""Bar windows ``[a, b)``: the holdout cut, walk-forward folds and CSCV blocks.

How a simulation behaves on a window is part of the execution contract
(docs/semantics.md, "Windows"); this module only decides where windows are.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

#: a test window needs this many bars (one return is no Sharpe ratio)
MIN_TEST_BARS = 2


@dataclass(frozen=True)
class Window:
    """Bars ``a`` to ``b - 1``; a simulation on it has ``b - a`` bar returns."""

    a: int
    b: int

    def __len__(self) -> int:
        return self.b - self.a


@dataclass(frozen=True)
class Fold:
    index: int
    train: Window
    test: Window


def holdout_cut(n: int, holdout: float) -> int:
    """``floor(n * (1 - holdout))``, exactly: the fraction is taken at its shortest
    decimal form (0.3 is 3/10, not the binary double just below it), so 100 bars
    with ``holdout: 0.3`` cut at 70, not 69."""
    return int(n * (1 - Fraction(repr(float(holdout)))) // 1)


def plan_folds(n: int, train: int, test: int, step: int, anchored: bool = False) -> tuple[Fold, ...]:
    """Walk-forward folds over ``n`` bars.

    Fold k trains on ``[s_k, s_k + train)`` (anchored: ``[0, k*step + train)``) with
    ``s_k = k * step`` and tests on the next ``test`` bars; the last test window is cut
    at the end of the data, and a fold whose test window would hold fewer than
    ``MIN_TEST_BARS`` bars is dropped (so are all after it).
    """
    if min(train, test, step) < 1:
        raise ValueError("train, test and step must be at least one bar")
    folds = []
    k = 0
    while True:
        train_end = k * step + train
        test_end = min(train_end + test, n)
        if test_end - train_end < MIN_TEST_BARS:
            break
        folds.append(Fold(k, Window(0 if anchored else k * step, train_end), Window(train_end, test_end)))
        k += 1
    return tuple(folds)


def fold_count(n: int, train: int, step: int) -> int:
    """How many folds :func:`plan_folds` makes (fold k exists while ``k*step + train + MIN_TEST_BARS <= n``),
    without making them."""
    return max(0, (n - train - MIN_TEST_BARS) // step + 1)


def block_edges(T: int, S: int) -> np.ndarray:
    """Edges of ``S`` contiguous blocks over ``T`` returns, as ``numpy.array_split`` makes
    them: the first ``T % S`` blocks hold one more. Block k is returns ``[e[k], e[k+1])``."""
    base, extra = divmod(T, S)
    sizes = np.full(S, base, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate(([0], np.cumsum(sizes)))
