"""The ``validation`` section resolved against the loaded data: every window in bars.

:func:`resolve` runs right after the candles are loaded and before the sweep, so a
window longer than the data or a series too short for its blocks stops the run
with a one-line :class:`ConfigError` naming the key, before any long work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config.model import ValidationConfig
from ..errors import ConfigError
from ..grid_budget import DEFAULT_MAX_FOLDS
from .windows import MIN_TEST_BARS, Fold, Window, block_edges, fold_count, holdout_cut, plan_folds

#: every CSCV block needs this many returns (a Sharpe ratio needs two)
MIN_BLOCK_RETURNS = 2


@dataclass(frozen=True)
class ValidationPlan:
    n: int  # bars in the data
    in_sample: Window  # where the sweep is ranked (and PSR, DSR, PBO measured): [0, cut) or [0, n)
    holdout: Window | None  # [cut, n), a test window
    folds: tuple[Fold, ...]  # walk-forward; empty when not configured
    blocks: int | None  # S, when CSCV is on
    block_edges: np.ndarray | None  # S + 1 edges over the in-sample returns
    trials: int | None  # N for the deflated Sharpe when given
    walk_forward: tuple[int, int, int, bool] | None = None  # train, test, step (bars), anchored

    @property
    def T(self) -> int:
        """Returns in the in-sample window (one per bar)."""
        return len(self.in_sample)


def resolve(cfg: ValidationConfig, n: int, interval_ms: int, max_folds: int = DEFAULT_MAX_FOLDS) -> ValidationPlan:
    """Bar counts for every window of ``cfg`` on ``n`` bars of ``interval_ms`` (at most ``max_folds`` folds)."""
    in_sample, holdout = Window(0, n), None
    if cfg.holdout is not None:
        cut = holdout_cut(n, cfg.holdout)
        if cut < MIN_TEST_BARS or n - cut < MIN_TEST_BARS:
            raise ConfigError(f"validation.holdout: {cfg.holdout!r} of {n} bars leaves {cut} in sample and "
                              f"{n - cut} out of sample; each side needs at least {MIN_TEST_BARS}")
        in_sample, holdout = Window(0, cut), Window(cut, n)

    folds: tuple[Fold, ...] = ()
    spans = None
    wf = cfg.walk_forward
    if wf is not None:
        key = "validation.walk_forward"
        train = wf.train.to_bars(interval_ms, f"{key}.train")
        test = wf.test.to_bars(interval_ms, f"{key}.test")
        step = wf.step.to_bars(interval_ms, f"{key}.step")
        if train < 2:
            raise ConfigError(f"{key}.train: {wf.train.text} is {train} bar; a train window needs at least 2")
        if test < MIN_TEST_BARS:
            raise ConfigError(f"{key}.test: {wf.test.text} is {test} bar; a test window needs at least "
                              f"{MIN_TEST_BARS}")
        if step < test:
            raise ConfigError(f"{key}.step: {wf.step.text} ({step} bars) is shorter than test {wf.test.text} "
                              f"({test} bars); the test windows would overlap")
        if train + test > n:
            raise ConfigError(f"{key}: train {wf.train.text} ({train} bars) + test {wf.test.text} ({test} bars) "
                              f"is longer than the data ({n} bars)")
        count = fold_count(n, train, step)
        if count > max_folds:
            raise ConfigError(f"{key}: train {wf.train.text}, test {wf.test.text}, step {wf.step.text} make "
                              f"{count:,} folds on {n:,} bars, above limits.max_folds = {max_folds:,}; lengthen "
                              "the step or raise limits.max_folds")
        folds = plan_folds(n, train, test, step, wf.anchored)
        spans = (train, test, step, wf.anchored)

    blocks = edges = None
    if cfg.cscv is not None:
        blocks = cfg.cscv.blocks
        T = len(in_sample)
        if T < MIN_BLOCK_RETURNS * blocks:
            part = "in-sample part" if holdout is not None else "data"
            raise ConfigError(f"validation.cscv.blocks: {blocks} blocks need at least "
                              f"{MIN_BLOCK_RETURNS * blocks} returns ({MIN_BLOCK_RETURNS} per block); the {part} "
                              f"has {T}")
        edges = block_edges(T, blocks)
    return ValidationPlan(n=n, in_sample=in_sample, holdout=holdout, folds=folds, blocks=blocks,
                          block_edges=edges, trials=cfg.trials, walk_forward=spans)
