"""The one writer of a run folder, shared by ``backtest run`` and the Batch ``reduce`` step.

It takes a finished run (``engine.pipeline.RunResults``: ranked summary, figures, the top
combinations' detail runs) and writes every file (``engine.report.writer``), the
validation files, the interactive ``report.html`` (``engine.report.html``) and, last,
``manifest.json``: its presence means the folder is complete. It simulates nothing.
Every file goes under the one folder the caller gives, so the caller decides where that
folder lives (a partial folder published by ``engine.run_store``, an upload, ...).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..candles import Candles
from ..jsonio import write_json
from ..pipeline import RunResults
from ..ranking import ranked_rows
from ..result import RunResult
from ..run_store import MANIFEST
from ..strategies import strategy_path
from ..timeutil import format_time, periods_per_year, utc_now_iso
from . import validation as vr
from .charts import ChartPool
from .html import REPORT, TopCombination, build_payload, write_html_report
from .labels import Swept, label_of, swept_of
from .perp_header import perp_header
from .writer import RunContext, config_text, swept_axes, write_files


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


def best_of(ranked: pd.DataFrame, rank_by: str, names: Swept | None = None) -> dict | None:
    """The combination ranked first, with its rank metric (None when nothing is ranked) and, given
    ``names`` (per strategy, its swept columns), its short label."""
    top = ranked_rows(ranked)
    if not len(top):
        return None
    row = top.iloc[0]
    value = row[rank_by]
    return {"strategy_id": str(row["strategy_id"]), "metric": rank_by,
            **({"label": label_of(row, names)} if names is not None else {}),
            "value": None if pd.isna(value) else float(value),
            "n_trades": None if pd.isna(row["n_trades"]) else int(row["n_trades"])}


def _header(res: RunResults, data: dict) -> dict:
    cfg, ex = res.cfg, res.cfg.execution
    return {
        "experiment": cfg.name,
        "engine": res.engine,
        "engine_version": __version__,
        "config_hash": cfg.digest(),
        "data": data,
        "execution": {"capital": ex.capital, "commission": ex.commission, "slippage": ex.slippage, "fill": ex.fill},
        "risk": {"stop_loss": list(cfg.stop_loss), "take_profit": list(cfg.take_profit),
                 "trailing_stop": list(cfg.trailing_stop), "max_bars": list(cfg.max_bars)},
        "portfolio": {"direction": list(cfg.direction), "size": list(cfg.size)},
        "strategies": [sw.strategy.name for sw in res.grid],
        "combinations": len(res.grid),
        "filtered_by_constraints": res.grid.filtered,
        "rank_by": cfg.report.rank_by,
        "min_trades": cfg.report.min_trades,
        "ranked": int(res.ranked["rank"].notna().sum()),
        "top_k": cfg.report.top_k,
        "notices": list(res.notices),
        "perp": perp_header(cfg, res.candles),
    }


def _write_validation(out: Path, res: RunResults, pool: ChartPool | None) -> dict:
    """validation.json, walk_forward.csv and (with report.png) the charts; returns the report.html section."""
    outcome, ranked, names = res.outcome, res.ranked, swept_of(res.grid)
    write_json(out / vr.VALIDATION_JSON, vr.document(outcome, ranked, res.candles,
                                                     holdout_fraction=res.cfg.validation.holdout, names=names))
    folds_frame = None
    if outcome.walk_forward is not None:
        folds_frame = vr.walk_forward_frame(outcome, res.grid, res.candles)
        folds_frame.to_csv(out / vr.WALK_FORWARD_CSV, index=False, lineterminator="\n")
    if pool is not None:
        (out / "plots").mkdir(exist_ok=True)
        for chart in vr.charts(outcome, out / "plots", ranked):
            pool.submit(chart)
    return vr.html_section(outcome, ranked, folds_frame, names=names, per_year=periods_per_year(res.candles.interval_ms))


def whole_series(in_sample: RunResult, holdout: RunResult | None, capital: float) -> RunResult:
    """The equity to draw: in sample, then (with a holdout) the holdout run's equity scaled to go on from
    where the in-sample run ended. Trades and metrics stay the in-sample run's."""
    if holdout is None:
        return in_sample
    scale = in_sample.equity[-1] / capital
    return RunResult(np.concatenate([in_sample.equity, holdout.equity[1:] * scale]), in_sample.trades,
                     in_sample.metrics)


def _compact(section: dict) -> dict:
    """What the manifest keeps of a report.html section: everything but chart data."""
    return {k: v for k, v in section.items() if k != "charts"}


def write_run_folder(out: Path, res: RunResults, *, run_id: str, timings: dict | None = None,
                     extra: dict | None = None, charts: ChartPool | None = None, workers: int = 1,
                     validation: dict | None = None) -> RunFolder:
    """Write the report of the finished run ``res`` into the folder ``out`` (created if missing).

    PNG charts (``report.png``) render on ``charts`` if given, else on a pool of ``workers``.
    ``validation``: a report.html section of the caller's own (``engine.report.html``'s extension
    point), used when the run has no ``validation`` config section. ``timings`` go into the page's
    run element and the manifest; ``extra`` into the manifest.
    """
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cfg = res.cfg
    created_at = utc_now_iso()
    data = data_summary(res.candles)
    ctx = RunContext(cfg.digest(), data["fingerprint"], cfg.raw, cfg.report.rank_by, cfg.report.top_k,
                     cfg.execution.capital)
    ranked = res.ranked
    if not cfg.report.png:
        pool_cm = nullcontext(None)
    else:
        pool_cm = nullcontext(charts) if charts is not None else ChartPool(workers)
    with pool_cm as pool:
        write_files(out, res, ctx, charts=pool)
        if res.outcome is not None:
            validation = _write_validation(out, res, pool)
        t_html = time.perf_counter()
        top = [TopCombination(row, res.param_names(row["strategy"]),
                              whole_series(res.details[g], res.holdout_details.get(g), cfg.execution.capital))
               for row in ranked[ranked["combination"].isin(res.top)].to_dict("records")
               for g in [int(row["combination"])]]
        cut = len(res.view) if res.holdout_details else None  # the charts cover the holdout too, shaded
        payload = build_payload(header=_header(res, data), ranked=ranked, swept=swept_axes(res),
                                candles=res.candles if cut else res.view, capital=cfg.execution.capital, top=top,
                                rank_by=cfg.report.rank_by, config_text=config_text(cfg.raw), validation=validation,
                                cut=cut, names=swept_of(res.grid))
        del top[:]  # the equity curves are no longer needed
        write_html_report(out, payload, {"run_id": run_id, "created_at": created_at, "timings": dict(timings or {})})
        t_html = time.perf_counter() - t_html
        if pool is not None:
            pool.wait()
    manifest = {
        "run_id": run_id,
        "created_at": created_at,
        "experiment": cfg.name,
        "engine": res.engine,
        "engine_version": __version__,
        "config_hash": ctx.config_hash,
        "data": data,
        "strategies": {sw.strategy.name: strategy_path(sw.strategy) for sw in res.grid},
        "combinations": len(res.grid),
        "filtered_by_constraints": res.grid.filtered,
        "rank_by": cfg.report.rank_by,
        "min_trades": cfg.report.min_trades,
        "ranked": int(ranked["rank"].notna().sum()),
        "best": best_of(ranked, cfg.report.rank_by, swept_of(res.grid)),
        "report": REPORT,
        "runs": cfg.report.runs,
        "notices": list(res.notices),
        **({"validation": _compact(validation)} if validation is not None else {}),
        **(extra or {}),
        "timings": {**(timings or {}), "report_s": round(time.perf_counter() - t0, 3),
                    "report_html_s": round(t_html, 3)},
    }
    write_json(out / MANIFEST, manifest)
    return RunFolder(out, ranked, manifest)
