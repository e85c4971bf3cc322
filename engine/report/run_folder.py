"""The one writer of a run folder, shared by ``backtest run`` and the Batch ``reduce`` step.

It ranks the summary, re-simulates what the report needs, writes every file
(``engine.report.writer``), the interactive ``report.html`` (``engine.report.html``)
and writes ``manifest.json`` last: its presence means the folder is complete.
Every file goes under the one folder the caller gives, so the caller decides where
that folder lives (a temporary folder renamed into place, an upload, ...).
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .. import __version__
from ..candles import Candles
from ..config import Config
from ..result import RunResult
from ..sweep import run_detail
from ..timeutil import format_time
from .html import REPORT, TopCombination, build_payload, write_html_report
from .ranking import rank, ranked_rows
from .writer import ChartPool, RunContext, config_text, swept_axes, write_report

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RunFolder:
    path: Path
    ranked: pd.DataFrame
    manifest: dict


def data_summary(c: Candles) -> dict:
    return {
        "source": c.source, "symbol": c.symbol, "interval": c.interval, "rows": len(c),
        "first_open_time": format_time(c.open_time[0]), "last_open_time": format_time(c.open_time[-1]),
        "gaps": c.gaps.count if c.gaps else 0,
        "gaps_detail": c.gaps.describe(c.interval_ms) if c.gaps else "no gaps",
        "fingerprint": c.fingerprint(),
    }


def best_of(ranked: pd.DataFrame, rank_by: str) -> dict | None:
    """The combination ranked first, with its rank metric (None when nothing is ranked)."""
    top = ranked_rows(ranked)
    if not len(top):
        return None
    row = top.iloc[0]
    value = row[rank_by]
    return {"strategy_id": str(row["strategy_id"]), "metric": rank_by,
            "value": None if pd.isna(value) else float(value),
            "n_trades": None if pd.isna(row["n_trades"]) else int(row["n_trades"])}


def _header(cfg: Config, data: dict, engine: str, ranked: pd.DataFrame, notices: tuple[str, ...]) -> dict:
    ex = cfg.execution
    return {
        "experiment": cfg.name,
        "engine": engine,
        "engine_version": __version__,
        "config_hash": cfg.digest(),
        "data": data,
        "execution": {"capital": ex.capital, "commission": ex.commission, "slippage": ex.slippage, "fill": ex.fill},
        "risk": {"stop_loss": list(cfg.stop_loss)},
        "strategies": [sw.strategy.name for sw in cfg.grid],
        "combinations": len(cfg.grid),
        "filtered_by_constraints": cfg.grid.filtered,
        "rank_by": cfg.report.rank_by,
        "min_trades": cfg.report.min_trades,
        "ranked": int(ranked["rank"].notna().sum()),
        "top_k": cfg.report.top_k,
        "notices": list(notices),
    }


def write_run_folder(out: Path, cfg: Config, summary: pd.DataFrame, candles: Candles, *, run_id: str,
                     engine: str = "fast", notices: tuple[str, ...] = (), timings: dict | None = None,
                     extra: dict | None = None, charts: ChartPool | None = None, workers: int = 1,
                     validation: dict | None = None) -> RunFolder:
    """Write the report of ``summary`` (one row per combination of ``cfg.grid``) into ``out``.

    PNG charts (``report.png``) render on ``charts`` if given, else on a pool of ``workers``.

    ``validation``: optional research-validation results, drawn as their own section of
    report.html (see :mod:`engine.report.html` for the shape) and kept in the manifest.
    """
    t0 = time.perf_counter()
    created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data = data_summary(candles)
    ctx = RunContext(cfg.digest(), data["fingerprint"], cfg.raw, cfg.report.rank_by, cfg.report.top_k,
                     cfg.execution.capital)
    ranked = rank(summary, cfg.report.rank_by, cfg.report.min_trades)
    top: list[TopCombination] = []

    def detail(g: int) -> RunResult:
        sw, i = cfg.grid.locate(g)
        return run_detail(cfg, sw, i, candles, engine=engine)

    def keep(row: dict, result: RunResult) -> None:
        sw, _ = cfg.grid.locate(int(row["combination"]))
        top.append(TopCombination(row, sw.param_names, result))

    if not cfg.report.png:
        pool_cm = nullcontext(None)
    else:
        pool_cm = nullcontext(charts) if charts is not None else ChartPool(workers)
    with pool_cm as pool:
        write_report(out, ranked, candles, ctx, detail, charts=pool, on_top=keep)
        t_html = time.perf_counter()
        payload = build_payload(header=_header(cfg, data, engine, ranked, notices), ranked=ranked,
                                swept=swept_axes(ranked), candles=candles, capital=cfg.execution.capital, top=top,
                                rank_by=cfg.report.rank_by, config_text=config_text(ctx), validation=validation)
        del top[:]  # the equity curves are no longer needed
        write_html_report(out, payload, {"run_id": run_id, "created_at": created_at, "timings": dict(timings or {})})
        t_html = time.perf_counter() - t_html
        if pool is not None:
            pool.wait()
    manifest = {
        "run_id": run_id,
        "created_at": created_at,
        "experiment": cfg.name,
        "engine": engine,
        "engine_version": __version__,
        "config_hash": ctx.config_hash,
        "data": data,
        "combinations": len(cfg.grid),
        "filtered_by_constraints": cfg.grid.filtered,
        "rank_by": cfg.report.rank_by,
        "min_trades": cfg.report.min_trades,
        "ranked": int(ranked["rank"].notna().sum()),
        "best": best_of(ranked, cfg.report.rank_by),
        "report": REPORT,
        "notices": list(notices),
        **({"validation": validation} if validation is not None else {}),
        **(extra or {}),
        "timings": {**(timings or {}), "report_s": round(time.perf_counter() - t0, 3),
                    "report_html_s": round(t_html, 3)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return RunFolder(out, ranked, manifest)
