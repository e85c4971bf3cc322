"""Writes a run's files: config, summary, per-combination JSON and trades, PNG charts.

Layout of a run folder (``engine.report.run_folder`` adds report.html and manifest.json)::

    config.yaml          the config as run
    summary.csv          one row per combination, ranked (also summary.parquet above 10,000 rows)
    runs/<id>.json       params, metrics, trades, fingerprints (every combination up to 1,000; else top-K)
    trades/<id>.csv      the trade list of each top-K combination, ISO UTC times
    plots/               equity and drawdown PNGs for the top-K, a parameter heatmap per strategy

Everything but manifest.json (and the run id, time and timings in report.html) is
byte-identical for the same config and data.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from .. import __version__
from ..candles import Candles
from ..child_process import bind_to_parent
from ..cpus import available_cpus
from ..metrics import METRICS
from ..position_rules import RULE_COLUMNS
from ..result import RunResult
from ..strategies import get_strategy
from ..validation.config import SUMMARY_COLUMNS
from .trades_csv import write_trades_csv

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
        "rank": None if pd.isna(row["rank"]) else int(row["rank"]),
        "rank_by": ctx.rank_by,
        "metrics": {m: _clean(result.metrics[m]) for m in METRICS},
        **({"validation": {c: _clean(row[c]) for c in SUMMARY_COLUMNS if c in row}}
           if any(c in row for c in SUMMARY_COLUMNS) else {}),
        "trades": [t.as_json() for t in result.trades],
        "data_fingerprint": ctx.data_fingerprint,
        "config_hash": ctx.config_hash,
        "engine_version": __version__,
    }


# One encoder for every trade line: json.dumps with an option builds a new one per call.
# Compact separators: trade lines are most of a run folder's bytes.
_ONE_LINE = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def write_json(path: Path, doc: dict) -> None:
    """Indented, except one compact line per trade (a run can hold thousands)."""
    trades = doc.get("trades")
    if not trades:
        path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        return
    head = json.dumps({k: v for k, v in doc.items() if k != "trades"}, indent=1, allow_nan=False)
    lines = ",\n".join("  " + _ONE_LINE(t) for t in trades)
    path.write_text(f'{head[:-2]},\n "trades": [\n{lines}\n ]\n}}\n')


def param_columns(summary: pd.DataFrame) -> list[str]:
    fixed = {"rank", "combination", "strategy_id", "strategy", *RULE_COLUMNS, *METRICS, *SUMMARY_COLUMNS}
    return [c for c in summary.columns if c not in fixed]


def write_summary(out: Path, ranked: pd.DataFrame) -> None:
    ranked.to_csv(out / "summary.csv", index=False, lineterminator="\n")
    if len(ranked) > PARQUET_LIMIT:
        ranked.to_parquet(out / "summary.parquet", index=False)


def is_top(rank, top_k: int) -> bool:
    return not pd.isna(rank) and int(rank) <= top_k


def config_text(ctx: RunContext) -> str:
    return yaml.safe_dump(ctx.config_raw, sort_keys=False)


def write_report(out: Path, ranked: pd.DataFrame, candles: Candles, ctx: RunContext,
                 detail: Callable[[int], RunResult], *, charts: "ChartPool | None" = None,
                 on_top: Callable[[dict, RunResult], None] | None = None) -> None:
    """Write the files of ``ranked`` (see :func:`engine.report.ranking.rank`) under ``out``.

    With a ``charts`` pool, PNG charts go to ``plots/`` too: each is independent, so
    they render on the pool's worker processes while this process re-simulates the top
    combinations and writes their JSON and trades. ``on_top(row, result)`` receives each
    top-K combination, best first.
    """
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "trades").mkdir(exist_ok=True)
    (out / "config.yaml").write_text(config_text(ctx))
    write_summary(out, ranked)
    rows = ranked if len(ranked) <= JSON_ALL_LIMIT else ranked[ranked["rank"].notna()].head(ctx.top_k)
    if charts is not None:
        (out / "plots").mkdir(exist_ok=True)
        for chart in _heatmaps(out / "plots", ranked, ctx.rank_by):
            charts.submit(chart)
        # E[0] is the capital at the first open; E[i] the equity at the close of bar i-1.
        times = np.concatenate([[candles.open_time[0]], candles.open_time + candles.interval_ms])
        bench = np.concatenate([[ctx.capital], candles.close / candles.close[0] * ctx.capital])
    for row in rows.to_dict("records"):
        result = detail(int(row["combination"]))
        if is_top(row["rank"], ctx.top_k):
            if charts is not None:
                stem = f"{int(row['rank']):03d}_{row['strategy_id']}"
                title = f"#{int(row['rank'])} {row['strategy_id']}"
                charts.submit(("plot_equity", out / "plots" / f"equity_{stem}.png",
                               (times, result.equity, bench), {"title": title}))
                charts.submit(("plot_drawdown", out / "plots" / f"drawdown_{stem}.png", (times, result.equity),
                               {"title": f"{title} drawdown"}))
            write_trades_csv(out / "trades" / f"{row['strategy_id']}.csv", result.trades)
            if on_top is not None:
                on_top(row, result)
        params = list(get_strategy(row["strategy"]).param_specs())
        write_json(out / "runs" / f"{row['strategy_id']}.json", run_document(row, params, result, ctx))


def _draw(chart) -> None:
    """``chart`` = (function, path, args, kwargs); the function is in ``plots``, or named
    ``module.function`` for another module of this package (``validation_plots.plot_logits``)."""
    import importlib

    name, path, args, kwargs = chart
    module, _, function = name.rpartition(".")
    getattr(importlib.import_module(f"{__package__}.{module or 'plots'}"), function)(path, *args, **kwargs)


def _warm_worker(parent_pid: int) -> None:
    bind_to_parent(parent_pid)
    from . import plots

    plots.warm_up()


def _ping() -> None:
    return None


class ChartPool:
    """Renders charts on worker processes (or inline with one worker); raises any failure on exit.

    Open it early: its workers are forked at once and import matplotlib while this
    process is still sweeping (forking before numba starts its thread pool is also the
    safe order). It never starts more workers than there are CPUs to run them, and its
    workers die with this process, whatever kills it.
    """

    def __init__(self, workers: int):
        self.pool = None
        self.workers = workers = max(1, min(workers, available_cpus()))
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_warm_worker,
                                            initargs=(os.getpid(),))
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

    def close(self) -> None:
        """Drop the charts not started, wait for those being drawn, stop the workers. Idempotent."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.futures = []

    def __enter__(self) -> "ChartPool":
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self.close()


def swept_axes(ranked: pd.DataFrame) -> dict[str, list[str]]:
    """Per strategy (sorted by name), the columns taking more than one value: its parameters in
    declaration order, then the other settings (stop_loss, ...) in summary order."""
    ids = {"rank", "combination", "strategy_id", "strategy", *METRICS, *SUMMARY_COLUMNS}
    out = {}
    for name, group in ranked.groupby("strategy", sort=True):
        params = list(get_strategy(name).param_specs())
        others = [c for c in group.columns if c not in ids and c not in params]
        out[str(name)] = [c for c in params + others if c in group and group[c].nunique(dropna=False) > 1]
    return out


def _heatmaps(folder: Path, ranked: pd.DataFrame, metric: str) -> list:
    charts = []
    for name, cols in swept_axes(ranked).items():
        group = ranked[ranked["strategy"] == name]
        if len(cols) >= 2:
            x, y = cols[0], cols[1]
            charts.append(("plot_heatmap", folder / f"heatmap_{name}_{x}_x_{y}.png", (group[[x, y, metric]],),
                           {"x": x, "y": y, "value": metric, "title": f"{name}: {metric} by {x} × {y}"}))
    return charts
