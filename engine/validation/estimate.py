"""What validation adds to a run's memory, from the config alone (before any data is read)."""

from __future__ import annotations

from dataclasses import dataclass

from ..grid_budget import validation_bytes
from ..timeutil import interval_to_ms
from .cscv import MAX_SPLITS, split_count
from .plan import resolve


@dataclass(frozen=True)
class ValidationEstimate:
    bytes: int
    folds: int  # walk-forward folds counted (0 without walk-forward)
    exact: bool  # the data's length is known before it is read: else ``folds`` is ``limits.max_folds``


def validation_estimate(cfg, combinations: int) -> ValidationEstimate:
    """Exact when the data's length is known from the config (synthetic data, whole range; too many folds
    is then refused here, as a run would), else an upper bound at ``limits.max_folds`` folds."""
    v, spec = cfg.validation, cfg.data
    blocks = v.cscv.blocks if v.cscv is not None else None
    splits = min(split_count(blocks), MAX_SPLITS) if blocks else 0
    if spec.source == "synthetic" and not spec.is_universe and spec.start is None and spec.end is None:
        plan = resolve(v, spec.synthetic_bars, interval_to_ms(spec.interval or "15m"), cfg.limits.max_folds)
        folds = len(plan.folds) if v.walk_forward is not None else 0
        return ValidationEstimate(validation_bytes(combinations, blocks, splits, len(plan.folds)), folds, True)
    folds = cfg.limits.max_folds if v.walk_forward is not None else 0
    return ValidationEstimate(validation_bytes(combinations, blocks, splits, folds), folds, False)
