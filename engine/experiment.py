"""One experiment end to end: load data, sweep, rank, write the run folder."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from . import __version__
from .candles import Candles
from .config import Config
from .datasource import DataSpec, load_data
from .report.writer import ChartPool, RunContext, write_report
from .sweep import SweepResult, combination_count, locate, run_detail, run_sweep
from .timeutil import format_time

Progress = Callable[[float], None]


@dataclass(frozen=True)
class ExperimentResult:
    run_dir: Path
    ranked: pd.DataFrame
    candles: Candles
    sweep: SweepResult
    timings: dict


def new_run_dir(out_root: Path, cfg: Config, run_id: str | None = None) -> Path:
    """A fresh folder; an existing run is never written into."""
    out_root.mkdir(parents=True, exist_ok=True)
    base = run_id or f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{cfg.digest()[:8]}"
    for k in range(1, 1000):
        path = out_root / (base if k == 1 else f"{base}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {out_root}")


def data_summary(c: Candles) -> dict:
    return {
        "source": c.source, "symbol": c.symbol, "interval": c.interval, "rows": len(c),
        "first_open_time": format_time(c.open_time[0]), "last_open_time": format_time(c.open_time[-1]),
        "gaps": c.gaps.count if c.gaps else 0,
        "gaps_detail": c.gaps.describe(c.interval_ms) if c.gaps else "no gaps",
        "fingerprint": c.fingerprint(),
    }


def run_experiment(cfg: Config, spec: DataSpec, out_root: Path, *, engine: str = "fast", workers: int | None = None,
                   run_id: str | None = None, candles: Candles | None = None,
                   on_sweep_start: Callable[[int, Candles], Progress | None] | None = None) -> ExperimentResult:
    t0 = time.perf_counter()
    with ChartPool(workers or cfg.workers or os.cpu_count() or 1) as charts:
        candles = candles if candles is not None else load_data(spec)
        t_load = time.perf_counter()
        from .grid import expand_grid

        total = combination_count(expand_grid(cfg))
        progress = on_sweep_start(total, candles) if on_sweep_start else None
        result = run_sweep(cfg, candles, engine=engine, workers=workers, data_spec=spec, progress=progress)
        t_sweep = time.perf_counter()
        run_dir = new_run_dir(out_root, cfg, run_id)
        ctx = RunContext(cfg.digest(), candles.fingerprint(), cfg.raw, cfg.report.rank_by, cfg.report.top_k,
                         cfg.capital)

        def detail(g: int):
            sw, i = locate(result.sweeps, g)
            return run_detail(cfg, sw, i, candles, engine=engine)

        ranked = write_report(run_dir, result.summary, candles, ctx, detail, charts=charts)
    t_report = time.perf_counter()
    timings = {"load_s": round(t_load - t0, 3), "sweep_s": round(t_sweep - t_load, 3),
               "report_s": round(t_report - t_sweep, 3)}
    manifest = {
        "run_id": run_dir.name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "experiment": cfg.name,
        "engine": engine,
        "engine_version": __version__,
        "config_hash": ctx.config_hash,
        "data": data_summary(candles),
        "combinations": total,
        "filtered_by_constraints": sum(s.filtered for s in result.sweeps),
        "rank_by": cfg.report.rank_by,
        "notices": list(result.notices),
        "timings": timings,
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return ExperimentResult(run_dir, ranked, candles, result, timings)
