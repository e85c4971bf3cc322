"""Writes a run's files from its finished results: config, summary, per-combination JSON, trades, PNG charts.

Layout of a run folder (``engine.report.run_folder`` adds report.html and manifest.json)::

    config.yaml          the config as run
    summary.csv          every combination, ranked (also summary.parquet above 10,000 rows)
    runs/<id>.json       params, metrics, fingerprints and the name of its trades file: report.runs = top
                         (the top K, default), all (every combination) or none
    trades/<id>.csv      the trade list of each top-K combination and of each combination with a
                         runs/<id>.json, ISO UTC times (the one copy of the trades: a run's JSON names
                         its file, ``trades_csv``, rather than repeating them)
    plots/               with report.png: equity and drawdown PNGs for the top K, a heatmap per strategy

Nothing here simulates: the detail runs come with the results (``engine.pipeline``).
Everything but manifest.json (and the run id, time and timings in report.html) is
byte-identical for the same config and data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import yaml

from .. import __version__
from ..filenames import file_name
from ..jsonio import clean, write_json
from ..metrics import METRICS, VALIDATION_COLUMNS
from ..pipeline import RunResults
from ..position_rules import RULE_COLUMNS
from ..result import RunResult
from .charts import ChartPool, heatmaps
from .labels import label_of, swept_of
from .trades_csv import write_trades_csv

PARQUET_LIMIT = 10_000


@dataclass(frozen=True)
class RunContext:
    config_hash: str
    data_fingerprint: str
    config_raw: dict
    rank_by: str
    top_k: int
    capital: float


def trades_path(strategy_id: str) -> str:
    """A combination's trades file, relative to the run folder (``runs/<id>.json`` holds it as ``trades_csv``)."""
    return f"trades/{file_name(strategy_id)}.csv"


def run_document(row: dict, param_names: tuple[str, ...], result: RunResult, ctx: RunContext) -> dict:
    return {
        "strategy_id": row["strategy_id"],
        "strategy": row["strategy"],
        "params": {p: clean(row[p]) for p in param_names},
        **{rule: clean(row[rule]) for rule in RULE_COLUMNS},
        "rank": None if pd.isna(row["rank"]) else int(row["rank"]),
        "rank_by": ctx.rank_by,
        "metrics": {m: clean(result.metrics[m]) for m in METRICS},
        **({"validation": {c: clean(row[c]) for c in VALIDATION_COLUMNS if c in row}}
           if any(c in row for c in VALIDATION_COLUMNS) else {}),
        "trades_csv": trades_path(row["strategy_id"]),
        "trade_rows": len(result.trades),  # the file's lines after its header (an open trade included)
        "data_fingerprint": ctx.data_fingerprint,
        "config_hash": ctx.config_hash,
        "engine_version": __version__,
    }


def write_summary(out: Path, ranked: pd.DataFrame) -> None:
    ranked.to_csv(out / "summary.csv", index=False, lineterminator="\n")
    if len(ranked) > PARQUET_LIMIT:
        ranked.to_parquet(out / "summary.parquet", index=False)


def config_text(raw: dict) -> str:
    return yaml.safe_dump(raw, sort_keys=False)


def json_combinations(results: RunResults) -> list[int]:
    """The combinations that get a ``runs/<id>.json``, in ranked order (``report.runs``)."""
    runs = results.cfg.report.runs
    if runs == "none":
        return []
    if runs == "top":
        return list(results.top)
    return results.ranked["combination"].to_numpy(np.int64).tolist()


def write_files(out: Path, results: RunResults, ctx: RunContext, *, charts: ChartPool | None = None) -> None:
    """Write the files of ``results`` under ``out`` (see the module docstring).

    With a ``charts`` pool, PNG charts go to ``plots/`` too: each is independent, so they
    render on the pool's worker processes while this process writes JSON and trades.
    """
    ranked = results.ranked
    (out / "config.yaml").write_text(config_text(ctx.config_raw))
    write_summary(out, ranked)
    rows = {int(r["combination"]): r for r in _rows(ranked, set(json_combinations(results)) | set(results.top))}
    (out / "trades").mkdir(exist_ok=True)
    if charts is not None:
        _submit_charts(out / "plots", results, ctx, rows, charts)
    wanted = json_combinations(results)
    for g in dict.fromkeys([*results.top, *wanted]):
        write_trades_csv(out / trades_path(rows[g]["strategy_id"]), results.details[g].trades)
    if results.cfg.report.runs != "none":
        (out / "runs").mkdir(exist_ok=True)
    for g in wanted:
        row = rows[g]
        doc = run_document(row, results.param_names(row["strategy"]), results.details[g], ctx)
        write_json(out / "runs" / f"{file_name(row['strategy_id'])}.json", doc)


def _rows(ranked: pd.DataFrame, wanted: set[int]) -> list[dict]:
    if not wanted:
        return []
    return ranked[ranked["combination"].isin(wanted)].to_dict("records")


def _submit_charts(folder: Path, results: RunResults, ctx: RunContext, rows: Mapping[int, dict],
                   charts: ChartPool) -> None:
    folder.mkdir(exist_ok=True)
    for chart in heatmaps(folder, results.ranked, ctx.rank_by, swept_axes(results)):
        charts.submit(chart)
    candles = results.view
    # E[0] is the capital at the first open; E[i] the equity at the close of bar i-1.
    times = np.concatenate([[candles.open_time[0]], candles.open_time + candles.interval_ms])
    bench = np.concatenate([[ctx.capital], candles.close / candles.close[0] * ctx.capital])
    names = swept_of(results.grid)
    for g in results.top:
        row, equity = rows[g], results.details[g].equity
        stem = f"{int(row['rank']):03d}_{file_name(row['strategy_id'])}"
        title = f"#{int(row['rank'])} {label_of(row, names)}"
        charts.submit(("plot_equity", folder / f"equity_{stem}.png", (times, equity, bench), {"title": title}))
        charts.submit(("plot_drawdown", folder / f"drawdown_{stem}.png", (times, equity),
                       {"title": f"{title} drawdown"}))


def swept_axes(results: RunResults) -> dict[str, list[str]]:
    """Per strategy (sorted by name), the columns taking more than one value: its parameters in
    declaration order (as the sweep declared them), then the other settings (stop_loss, ...) in
    summary order."""
    ranked = results.ranked
    ids = {"rank", "combination", "strategy_id", "strategy", "duplicate_of", *METRICS, *VALIDATION_COLUMNS}
    out = {}
    for name, group in ranked.groupby("strategy", sort=True):
        params = list(results.param_names(str(name)))
        others = [c for c in group.columns if c not in ids and c not in params]
        out[str(name)] = [c for c in params + others if c in group and group[c].nunique(dropna=False) > 1]
    return out
