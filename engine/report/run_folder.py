"""The one writer of a run folder, shared by ``backtest run`` and the Batch ``reduce`` step.

It ranks the summary, re-simulates what the report needs, writes every file
(``engine.report.writer``) and writes ``manifest.json`` last: its presence means
the folder is complete.
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
from ..sweep import run_detail
from ..timeutil import format_time
from .writer import ChartPool, RunContext, write_report

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


def write_run_folder(out: Path, cfg: Config, summary: pd.DataFrame, candles: Candles, *, run_id: str,
                     engine: str = "fast", notices: tuple[str, ...] = (), timings: dict | None = None,
                     extra: dict | None = None, charts: ChartPool | None = None, workers: int = 1) -> RunFolder:
    """Write the report of ``summary`` (one row per combination of ``cfg.grid``) into ``out``."""
    t0 = time.perf_counter()
    ctx = RunContext(cfg.digest(), candles.fingerprint(), cfg.raw, cfg.report.rank_by, cfg.report.top_k,
                     cfg.execution.capital)

    def detail(g: int):
        sw, i = cfg.grid.locate(g)
        return run_detail(cfg, sw, i, candles, engine=engine)

    with (nullcontext(charts) if charts is not None else ChartPool(workers)) as pool:
        ranked = write_report(out, summary, candles, ctx, detail, charts=pool)
        pool.wait()
    manifest = {
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "experiment": cfg.name,
        "engine": engine,
        "engine_version": __version__,
        "config_hash": ctx.config_hash,
        "data": data_summary(candles),
        "combinations": len(cfg.grid),
        "filtered_by_constraints": cfg.grid.filtered,
        "rank_by": cfg.report.rank_by,
        "notices": list(notices),
        **(extra or {}),
        "timings": {**(timings or {}), "report_s": round(time.perf_counter() - t0, 3)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return RunFolder(out, ranked, manifest)
