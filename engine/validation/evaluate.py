"""Every validation figure from the sweep's per-combination columns.

The same function runs after a local sweep and in Batch ``reduce`` (on the shards'
concatenated columns), so both produce the same figures bit for bit. The only
simulations it runs are walk-forward's test windows, one per fold, through the
injected ``simulate_test(combination, window)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..candles import Candles
from ..metrics import SHARPE_TESTS, compute_metrics
from ..result import RunResult
from ..timeutil import periods_per_year
from ..trade import Trade
from .columns import ValidationColumns
from .cscv import BlockStats, CscvResult, cscv
from .plan import ValidationPlan
from .rank_stats import spearman
from .sharpe_stats import Deflated, deflated_sharpe, moments_from_sums
from .trials import count_effective, distinct, duplicate_of
from .walk_forward import choose, efficiency, stitch
from .windows import Fold, Window

SimulateTest = Callable[[int, Window], RunResult]


@dataclass(frozen=True)
class HoldoutOutcome:
    window: Window
    metric: str  # the rank_by metric both rankings use
    spearman: float | None  # of the in-sample and out-of-sample values (ranks, ties averaged)


@dataclass(frozen=True)
class FoldOutcome:
    fold: Fold
    combination: int  # chosen on the train window
    in_sample: float | None  # its rank_by value there
    in_sample_cagr: float | None
    result: RunResult  # its run on the test window


@dataclass(frozen=True)
class WalkForwardOutcome:
    folds: tuple[FoldOutcome, ...]
    equity: np.ndarray  # stitched out-of-sample equity, 1 + Σ test bars
    times: np.ndarray  # open time (ms) of each equity point: first test open, then each test bar's close
    benchmark: np.ndarray  # buy and hold over the same points
    trades: list[Trade]
    metrics: dict  # the full metric set on the stitched equity
    efficiency: float | None


@dataclass(frozen=True)
class ValidationOutcome:
    plan: ValidationPlan
    rank_by: str
    deflated: Deflated  # psr, dsr per combination; V, N, SR0
    cscv: CscvResult | None
    holdout: HoldoutOutcome | None
    walk_forward: WalkForwardOutcome | None
    duplicate_of: np.ndarray | None = None  # per combination, the lowest index with the same returns
    distinct_trials: int | None = None  # distinct return series (the DSR's N unless ``trials`` is set)
    effective_trials: int | None = None  # clusters of correlated series (engine.validation.trials)


def evaluate(plan: ValidationPlan, cols: ValidationColumns, candles: Candles, *, rank_by: str,
             in_sample_rank: np.ndarray | None, trials: int | None, capital: float,
             simulate_test: SimulateTest, fingerprint: np.ndarray | None = None,
             returns_of: Callable[[int], np.ndarray] | None = None) -> ValidationOutcome:
    """``in_sample_rank``: the sweep's ``rank_by`` column in grid order (None for psr/dsr).
    ``fingerprint``: more per-combination columns that identify a return series (the metrics);
    ``returns_of(g)``: combination g's in-sample bar returns, for the effective trials."""
    cols_fp = cols.to_frame().to_numpy(np.float64)
    fp = cols_fp if fingerprint is None else np.column_stack([cols_fp, np.asarray(fingerprint, np.float64)])
    dup = duplicate_of(fp)
    heads = distinct(dup)
    keep = dup == np.arange(len(dup))
    eff = None if returns_of is None else count_effective(heads, returns_of)
    trials = len(heads) if trials is None else trials
    deflated = deflated_sharpe(_moments(plan.T, cols.power_sums), trials, keep=keep)
    result = None
    if plan.blocks is not None:
        result = cscv(BlockStats(np.diff(plan.block_edges), cols.block_r, cols.block_r2))
    holdout = None
    if plan.holdout is not None:
        is_values = rank_values(rank_by, in_sample_rank, cols.power_sums, plan.T, trials)
        oos_values = rank_values(rank_by, cols.holdout_rank, cols.holdout_power_sums, len(plan.holdout), trials)
        holdout = HoldoutOutcome(plan.holdout, rank_by, spearman(is_values, oos_values))
    wf = _walk_forward(plan, cols, candles, rank_by, trials, capital, simulate_test) if plan.folds else None
    return ValidationOutcome(plan, rank_by, deflated, result, holdout, wf, dup, len(heads), eff)


def rank_values(rank_by: str, values: np.ndarray | None, power_sums: np.ndarray, T: int,
                trials: int | None) -> np.ndarray:
    """The ``rank_by`` value of every combination on a window: the sweep's metric column,
    or PSR/DSR from the window's power sums (DSR needs every combination: V)."""
    if rank_by in SHARPE_TESTS:
        d = deflated_sharpe(_moments(T, power_sums), trials)
        return d.psr if rank_by == "psr" else d.dsr
    return np.asarray(values, dtype=np.float64)


def _moments(T: int, power_sums: np.ndarray):
    ps = np.asarray(power_sums, dtype=np.float64)
    return moments_from_sums(np.full(len(ps), T), ps[:, 0], ps[:, 1], ps[:, 2], ps[:, 3])


def _walk_forward(plan: ValidationPlan, cols: ValidationColumns, candles: Candles, rank_by: str,
                  trials: int | None, capital: float, simulate_test: SimulateTest) -> WalkForwardOutcome:
    folds = []
    for f, fold in enumerate(plan.folds):
        values = rank_values(rank_by, cols.fold_rank[f], cols.fold_power_sums[f], len(fold.train), trials)
        g = choose(values, rank_by)
        folds.append(FoldOutcome(fold, g, _opt(values[g]), _opt(cols.fold_cagr[f][g]),
                                 simulate_test(g, fold.test)))
    equity, trades = stitch([fo.result.equity for fo in folds], [fo.result.trades for fo in folds], capital)
    bars = np.concatenate([np.arange(fo.fold.test.a, fo.fold.test.b) for fo in folds])
    a0, last = int(bars[0]), int(bars[-1])
    in_position = sum(int(round(fo.result.metrics["exposure"] * len(fo.fold.test))) for fo in folds)
    metrics = compute_metrics(equity, trades, periods_per_year=periods_per_year(candles.interval_ms),
                              close_first=float(candles.close[a0]), close_last=float(candles.close[last]),
                              bars_in_position=in_position)
    times = np.concatenate([[candles.open_time[a0]], candles.open_time[bars] + candles.interval_ms])
    benchmark = np.concatenate([[capital], capital * candles.close[bars] / candles.close[a0]])
    eff = efficiency(metrics["cagr"], [fo.in_sample_cagr for fo in folds])
    return WalkForwardOutcome(tuple(folds), equity, times, benchmark, trades, metrics, eff)


def _opt(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
