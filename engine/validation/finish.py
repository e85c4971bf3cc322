"""After the sweep: every validation figure, and the summary's ``psr`` and ``dsr`` columns.

The one place both ``backtest run`` and Batch ``reduce`` turn a validated sweep's
per-combination sums into figures, so the two produce the same files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..candles import Candles
from ..config import Config
from ..sweep import run_detail
from .columns import ValidationColumns
from .config import RANK_METRICS, SUMMARY_COLUMNS
from .evaluate import ValidationOutcome, evaluate
from .plan import ValidationPlan
from .windows import Window


def finish(cfg: Config, candles: Candles, summary: pd.DataFrame, plan: ValidationPlan, cols: ValidationColumns, *,
           engine: str = "fast") -> tuple[pd.DataFrame, ValidationOutcome]:
    """``summary`` (grid order, as ``cols``) with ``psr`` and ``dsr`` added, and the outcome."""
    rank_by = cfg.report.rank_by

    def simulate_test(g: int, window: Window):
        sw, i = cfg.grid.locate(g)
        return run_detail(cfg, sw, i, candles, engine=engine, window=window, test=True)

    combos = summary["combination"].to_numpy()
    if not np.array_equal(combos, np.arange(len(combos))):
        raise ValueError("validation needs the summary of the whole grid, in grid order")
    in_sample = None if rank_by in RANK_METRICS else summary[rank_by].to_numpy(np.float64)
    outcome = evaluate(plan, cols, candles, rank_by=rank_by, in_sample_rank=in_sample, trials=plan.trials,
                       capital=cfg.execution.capital, simulate_test=simulate_test)
    # the validation columns last, in one order, however the rows were assembled (shards)
    out = summary[[c for c in summary.columns if c not in SUMMARY_COLUMNS]].copy()
    for c in SUMMARY_COLUMNS[:-2]:
        if c in summary:
            out[c] = summary[c]
    out["psr"] = outcome.deflated.psr
    out["dsr"] = outcome.deflated.dsr
    return out, outcome
