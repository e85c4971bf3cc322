"""Memory a sweep needs, estimated from the grid's size before anything is allocated.

A sweep's memory grows with candles plus combinations, never their product (the
fast path streams every combination over shared time chunks). The per-combination
part is what a grid's size can make unbounded, so the config parser counts the
combinations (the product of every axis's length, before expansion) and refuses a
grid above ``limits.max_combinations`` with this estimate, before the grid exists.

Bytes per combination, by where they live:

* grid columns: one int64/float64 per axis in the expanded grid, plus the index
  array it is built from (2 words per axis);
* kernel state (``engine/fast/state.py``): 32 float and 13 integer state words (the perp
  account included), 4 indicator slots, 4 rule parameters, 5 float and 4 integer
  position-rule words and a start bar (63 words);
* summary rows: every metric, the combination index, the strategy name and id
  columns, in three copies at the peak (metric arrays, the frame, the ranked frame);
  the parameter columns, again in three copies; the strategy id string (~100 bytes).

Measured on this machine before the position rules (``ma_crossover``, 5 axes, 400
candles, fast path through ranking and ``summary.csv``): 1,104 bytes per combination at
500,000 combinations and 981 at 2,000,000, where this estimate gave 1,196. With the six
position-rule columns (10 axes) it gave 1,484; with leverage (11 axes), the perp state
and the two perp metrics it gives 1,668, so the default limit is 3,500,000 (5.8 GB).
"""

from __future__ import annotations

from .metrics import METRICS

WORD = 8
GRID_WORDS_PER_AXIS = 2
KERNEL_STATE_WORDS = 32 + 13 + 4 + 4 + 5 + 4 + 1
SUMMARY_COPIES = 3
STRATEGY_ID_BYTES = 100

#: Default of ``limits.max_combinations``: about 6 GB for a four-parameter strategy and the
#: six position rules, a quarter of this 24 GB machine, leaving room for the candles,
#: indicators and charts.
DEFAULT_MAX_COMBINATIONS = 3_500_000
#: Highest value ``limits.max_combinations`` accepts.
MAX_COMBINATIONS_CEILING = 1_000_000_000
#: Default of ``limits.max_folds``: walk-forward folds a run may plan (each is a sweep on its train
#: window, and each keeps 6 words per combination), and the highest value it accepts.
DEFAULT_MAX_FOLDS = 1_000
MAX_FOLDS_CEILING = 100_000


def bytes_per_combination(n_axes: int) -> int:
    """Peak bytes one combination of a strategy with ``n_axes`` axes (the position rules included) costs."""
    summary_words = (len(METRICS) + 3 + n_axes) * SUMMARY_COPIES
    return WORD * (GRID_WORDS_PER_AXIS * n_axes + KERNEL_STATE_WORDS + summary_words) + STRATEGY_ID_BYTES


def estimate_bytes(combinations: int, n_axes: int) -> int:
    return combinations * bytes_per_combination(n_axes)


#: validation's words per combination: the power sums and the holdout's columns and a second metric
#: set while it runs (40); per CSCV block, its two sums, the snapshots and the transposed copies (6);
#: per walk-forward fold, its power sums, rank value and CAGR (6)
VALIDATION_WORDS, WORDS_PER_BLOCK, WORDS_PER_FOLD = 40, 6, 6
#: per CSCV split: n*, its two Sharpe ratios, the rank counts, rank, ω and λ
WORDS_PER_SPLIT = 8


def validation_bytes(combinations: int, blocks: int | None, splits: int, folds: int) -> int:
    """Peak bytes validation adds to a sweep of ``combinations`` (``blocks``: S when CSCV is on,
    ``splits`` the splits it uses; ``folds`` walk-forward folds)."""
    per = VALIDATION_WORDS + WORDS_PER_BLOCK * (blocks or 0) + WORDS_PER_FOLD * folds
    return WORD * (combinations * per + WORDS_PER_SPLIT * splits)


def human_bytes(n: int | float) -> str:
    if n >= 10**18:
        return "more than 1,000,000 TB"
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
