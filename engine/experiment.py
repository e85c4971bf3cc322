"""One experiment end to end: config, then data, then the expanded grid, then the sweep, then the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .candles import Candles
from .config import Config
from .cpus import available_cpus
from .datasource import DataSpec, load_data
from .errors import ResourceError
from .report.run_folder import (PartialRunFolder, default_run_id, disk_full_error, estimate_run_folder_bytes,
                                is_disk_full, trade_lines_in_report, write_run_folder)
from .report.writer import ChartPool
from .sweep import SweepResult, run_sweep

Progress = Callable[[float], None]


@dataclass(frozen=True)
class ExperimentResult:
    run_dir: Path
    ranked: pd.DataFrame
    candles: Candles
    sweep: SweepResult
    timings: dict


def run_experiment(cfg: Config, spec: DataSpec, out_root: Path, *, engine: str = "fast", workers: int | None = None,
                   run_id: str | None = None, candles: Candles | None = None,
                   on_sweep_start: Callable[[int, Candles], Progress | None] | None = None,
                   on_write_start: Callable[[int], None] | None = None) -> ExperimentResult:
    """Load, sweep, then write ``out_root/<run_id>/`` through a hidden partial folder renamed into place when
    complete. ``on_write_start`` gets a lower bound of the folder's size in bytes before anything is written."""
    t0 = time.perf_counter()
    with ChartPool(workers or cfg.workers or available_cpus()) as charts:
        candles = candles if candles is not None else load_data(spec)
        t_load = time.perf_counter()
        progress = on_sweep_start(len(cfg.grid), candles) if on_sweep_start else None
        result = run_sweep(cfg, candles, engine=engine, workers=workers, progress=progress)
        t_sweep = time.perf_counter()
        if on_write_start:
            on_write_start(estimate_run_folder_bytes(len(cfg.grid), cfg.report.top_k, len(cfg.grid.sweeps),
                                                     trade_lines_in_report(result.summary, cfg.report.top_k)))
        timings = {"load_s": round(t_load - t0, 3), "sweep_s": round(t_sweep - t_load, 3)}
        partial = None
        try:
            partial = PartialRunFolder.create(out_root, run_id or default_run_id(cfg))
            folder = write_run_folder(partial.path, cfg, result.summary, candles, run_id=partial.run_id,
                                      engine=engine, notices=result.notices, timings=timings, charts=charts)
            run_dir = partial.publish(folder.manifest)
        except BaseException as exc:
            charts.close()  # no worker may still be writing into a folder that is given up
            if partial is not None:
                partial.release()
            if is_disk_full(exc) and partial is not None:
                raise disk_full_error(partial, exc) from None
            if is_disk_full(exc):
                raise ResourceError(f"{out_root}: {getattr(exc, 'strerror', None) or exc}; free some space "
                                    "and run again") from None
            raise
    return ExperimentResult(run_dir, folder.ranked, candles, result, folder.manifest["timings"])
