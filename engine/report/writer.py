"""Writes a run's folder: summary, per-combination JSON, plots, manifest.

Layout of ``<out>/<run_id>/``::

    manifest.json        run id, time, engine version, config hash, data fingerprint, timings
    config.yaml          the config as run
    summary.csv          one row per combination, ranked (also summary.parquet above 10,000 rows)
    runs/<id>.json       params, metrics, trades, fingerprints (every combination up to 1,000; else top-K)
    plots/               equity and drawdown PNGs for the top-K, a parameter heatmap per strategy

Everything but manifest.json is byte-identical for the same config and data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from .. import __version__
from ..candles import Candles
from ..metrics import METRICS
from ..reference.engine import RunResult
from ..strategies import get_strategy
from .ranking import rank

JSON_ALL_LIMIT = 1_000
PARQUET_LIMIT = 10_000


@dataclass(frozen=True)
class RunContext:
    config_hash: str
    data_fingerprint: str
    config_raw: dict
    rank_by: str
    top_k: int
    capital: float


def _clean(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) or math.isinf(v) else float(v)
    return v


def run_document(row: pd.Series, param_names: list[str], result: RunResult, ctx: RunContext) -> dict:
    return {
        "strategy_id": row["strategy_id"],
        "strategy": row["strategy"],
        "params": {p: _clean(row[p]) for p in param_names},
        "stop_loss": _clean(row["stop_loss"]),
        "rank": int(row["rank"]),
        "rank_by": ctx.rank_by,
        "metrics": {m: _clean(result.metrics[m]) for m in METRICS},
        "trades": [{k: _clean(v) for k, v in t.as_json().items()} for t in result.trades],
        "data_fingerprint": ctx.data_fingerprint,
        "config_hash": ctx.config_hash,
        "engine_version": __version__,
    }


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")


def param_columns(summary: pd.DataFrame) -> list[str]:
    fixed = {"rank", "combination", "strategy_id", "strategy", "stop_loss", *METRICS}
    return [c for c in summary.columns if c not in fixed]


def write_summary(out: Path, ranked: pd.DataFrame) -> None:
    ranked.to_csv(out / "summary.csv", index=False, lineterminator="\n")
    if len(ranked) > PARQUET_LIMIT:
        ranked.to_parquet(out / "summary.parquet", index=False)


def write_report(out: Path, summary: pd.DataFrame, candles: Candles, ctx: RunContext,
                 detail: Callable[[int], RunResult], *, progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Rank ``summary`` and write everything under ``out`` (which must be new). Returns the ranked frame."""
    from . import plots

    ranked = rank(summary, ctx.rank_by)
    (out / "runs").mkdir(parents=True)
    (out / "plots").mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(ctx.config_raw, sort_keys=False))
    write_summary(out, ranked)
    every = len(ranked) <= JSON_ALL_LIMIT
    rows = ranked if every else ranked.head(ctx.top_k)
    capital = ctx.capital
    # E[0] is the capital at the first open; E[i] the equity at the close of bar i-1.
    times = np.concatenate([[candles.open_time[0]], candles.open_time + candles.interval_ms])
    bench = np.concatenate([[capital], candles.close / candles.close[0] * capital])
    for _, row in rows.iterrows():
        result = detail(int(row["combination"]))
        params = list(get_strategy(row["strategy"]).param_specs())
        write_json(out / "runs" / f"{row['strategy_id']}.json", run_document(row, params, result, ctx))
        if row["rank"] <= ctx.top_k:
            stem = f"{int(row['rank']):03d}_{row['strategy_id']}"
            title = f"#{int(row['rank'])} {row['strategy_id']}"
            plots.plot_equity(out / "plots" / f"equity_{stem}.png", times, result.equity, bench, title=title)
            plots.plot_drawdown(out / "plots" / f"drawdown_{stem}.png", times, result.equity,
                                title=f"{title} drawdown")
        if progress:
            progress(1)
    _heatmaps(out / "plots", ranked, ctx.rank_by)
    return ranked


def _heatmaps(folder: Path, ranked: pd.DataFrame, metric: str) -> None:
    from . import plots

    for name, group in ranked.groupby("strategy", sort=True):
        cols = [p for p in get_strategy(name).param_specs() if p in group and group[p].nunique() > 1]
        if group["stop_loss"].nunique(dropna=False) > 1:
            cols.append("stop_loss")
        if len(cols) >= 2:
            x, y = cols[0], cols[1]
            plots.plot_heatmap(folder / f"heatmap_{name}_{x}_x_{y}.png", group[[x, y, metric]], x=x, y=y,
                               value=metric, title=f"{name}: {metric} by {x} × {y}")
