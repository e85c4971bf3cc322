"""One experiment end to end: config, then data, then the expanded grid, then the sweep, then the report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from .candles import Candles
from .config import Config
from .datasource import DataSpec, load_data
from .report.run_folder import write_run_folder
from .report.writer import ChartPool
from .sweep import SweepResult, run_sweep
from .validation.plan import resolve as resolve_validation

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


def run_experiment(cfg: Config, spec: DataSpec, out_root: Path, *, engine: str = "fast", workers: int | None = None,
                   run_id: str | None = None, candles: Candles | None = None,
                   on_sweep_start: Callable[[int, Candles], Progress | None] | None = None) -> ExperimentResult:
    t0 = time.perf_counter()
    with ChartPool(workers or cfg.workers or os.cpu_count() or 1) as charts:
        candles = candles if candles is not None else load_data(spec)
        t_load = time.perf_counter()
        if cfg.validation is not None:  # windows against the data: a one-line error before the sweep
            resolve_validation(cfg.validation, len(candles), candles.interval_ms)
        progress = on_sweep_start(len(cfg.grid), candles) if on_sweep_start else None
        result = run_sweep(cfg, candles, engine=engine, workers=workers, progress=progress)
        t_sweep = time.perf_counter()
        run_dir = new_run_dir(out_root, cfg, run_id)
        timings = {"load_s": round(t_load - t0, 3), "sweep_s": round(t_sweep - t_load, 3)}
        folder = write_run_folder(run_dir, cfg, result.summary, candles, run_id=run_dir.name, engine=engine,
                                  notices=result.notices, timings=timings, charts=charts)
    return ExperimentResult(run_dir, folder.ranked, candles, result, folder.manifest["timings"])
