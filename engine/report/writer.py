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
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from .. import __version__
from ..candles import Candles
from ..metrics import METRICS
from ..position_rules import RULE_COLUMNS
from ..result import RunResult
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
    if v is pd.NA:
        return None
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
        **{rule: _clean(row[rule]) for rule in RULE_COLUMNS},
        "rank": int(row["rank"]),
        "rank_by": ctx.rank_by,
        "metrics": {m: _clean(result.metrics[m]) for m in METRICS},
        "trades": [t.as_json() for t in result.trades],
        "data_fingerprint": ctx.data_fingerprint,
        "config_hash": ctx.config_hash,
        "engine_version": __version__,
    }


# One encoder for every trade line: json.dumps with an option builds a new one per call.
_ONE_LINE = json.JSONEncoder(allow_nan=False).encode


def write_json(path: Path, doc: dict) -> None:
    """Indented, except one line per trade (a run can hold thousands)."""
    trades = doc.get("trades")
    if not trades:
        path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        return
    head = json.dumps({k: v for k, v in doc.items() if k != "trades"}, indent=1, allow_nan=False)
    lines = ",\n".join("  " + _ONE_LINE(t) for t in trades)
    path.write_text(f'{head[:-2]},\n "trades": [\n{lines}\n ]\n}}\n')


def param_columns(summary: pd.DataFrame) -> list[str]:
    fixed = {"rank", "combination", "strategy_id", "strategy", *RULE_COLUMNS, *METRICS}
    return [c for c in summary.columns if c not in fixed]


def write_summary(out: Path, ranked: pd.DataFrame) -> None:
    ranked.to_csv(out / "summary.csv", index=False, lineterminator="\n")
    if len(ranked) > PARQUET_LIMIT:
        ranked.to_parquet(out / "summary.parquet", index=False)


def write_report(out: Path, summary: pd.DataFrame, candles: Candles, ctx: RunContext,
                 detail: Callable[[int], RunResult], *, workers: int = 1,
                 charts: "ChartPool | None" = None) -> pd.DataFrame:
    """Rank ``summary`` and write everything under ``out`` (which must be new). Returns the ranked frame.

    Charts are the slowest part of a small sweep and each is independent, so with
    ``workers`` > 1 (or a ``charts`` pool opened earlier) they render on worker
    processes while this process re-simulates the top combinations and writes their JSON.
    """
    ranked = rank(summary, ctx.rank_by)
    (out / "runs").mkdir(parents=True)
    (out / "plots").mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(ctx.config_raw, sort_keys=False))
    write_summary(out, ranked)
    rows = ranked if len(ranked) <= JSON_ALL_LIMIT else ranked.head(ctx.top_k)
    # E[0] is the capital at the first open; E[i] the equity at the close of bar i-1.
    times = np.concatenate([[candles.open_time[0]], candles.open_time + candles.interval_ms])
    bench = np.concatenate([[ctx.capital], candles.close / candles.close[0] * ctx.capital])
    with (nullcontext(charts) if charts is not None else ChartPool(workers)) as charts:
        for chart in _heatmaps(out / "plots", ranked, ctx.rank_by):
            charts.submit(chart)
        for row in rows.to_dict("records"):
            result = detail(int(row["combination"]))
            if row["rank"] <= ctx.top_k:
                stem = f"{int(row['rank']):03d}_{row['strategy_id']}"
                title = f"#{int(row['rank'])} {row['strategy_id']}"
                charts.submit(("plot_equity", out / "plots" / f"equity_{stem}.png",
                               (times, result.equity, bench), {"title": title}))
                charts.submit(("plot_drawdown", out / "plots" / f"drawdown_{stem}.png", (times, result.equity),
                               {"title": f"{title} drawdown"}))
            params = list(get_strategy(row["strategy"]).param_specs())
            write_json(out / "runs" / f"{row['strategy_id']}.json", run_document(row, params, result, ctx))
    return ranked


def _draw(chart) -> None:
    from . import plots

    name, path, args, kwargs = chart
    getattr(plots, name)(path, *args, **kwargs)


def _warm_worker() -> None:
    from . import plots

    plots.warm_up()


def _ping() -> None:
    return None


class ChartPool:
    """Renders charts on worker processes (or inline with one worker); raises any failure on exit.

    Open it early: its workers are forked at once and import matplotlib while this
    process is still sweeping (forking before numba starts its thread pool is also the
    safe order).
    """

    def __init__(self, workers: int):
        self.pool = None
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_warm_worker)
            for _ in range(workers):
                self.pool.submit(_ping)
        self.futures = []

    def submit(self, chart) -> None:
        if self.pool is None:
            _draw(chart)
        else:
            self.futures.append(self.pool.submit(_draw, chart))

    def wait(self) -> None:
        """Block until every chart submitted so far is drawn; raise the first failure."""
        futures, self.futures = self.futures, []
        for future in futures:
            future.result()

    def __enter__(self) -> "ChartPool":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            try:
                self.wait()
            finally:
                self.pool.shutdown(cancel_futures=True)


def _heatmaps(folder: Path, ranked: pd.DataFrame, metric: str) -> list:
    charts = []
    for name, group in ranked.groupby("strategy", sort=True):
        cols = [p for p in get_strategy(name).param_specs() if p in group and group[p].nunique() > 1]
        if group["stop_loss"].nunique(dropna=False) > 1:
            cols.append("stop_loss")
        if len(cols) >= 2:
            x, y = cols[0], cols[1]
            charts.append(("plot_heatmap", folder / f"heatmap_{name}_{x}_x_{y}.png", (group[[x, y, metric]],),
                           {"x": x, "y": y, "value": metric, "title": f"{name}: {metric} by {x} × {y}"}))
    return charts
