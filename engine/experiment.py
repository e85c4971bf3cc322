"""One experiment end to end: config, then data, then the expanded grid, then the sweep, then the report."""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .candles import Candles
from .config import Config
from .datasource import DataSpec, load_data
from .report.index import write_index
from .report.run_folder import write_run_folder
from .report.writer import ChartPool
from .run_id import new_run_id
from .sweep import SweepResult, prepare, run_sweep

Progress = Callable[[float], None]


class RunObserver:
    """What a run tells its caller as it goes; every step is optional (override what you show)."""

    def data_loaded(self, candles: Candles) -> None:
        """The candles are loaded and checked."""

    def compiling(self) -> None:
        """numba has started compiling the kernels (its disk cache held no usable copy)."""

    def compiled(self, seconds: float) -> None:
        """Compilation (announced by :meth:`compiling`) is over."""

    def sweep_started(self, total: int) -> Progress | None:
        """The sweep of ``total`` combinations starts now; return a progress callback or None."""
        return None

    def sweep_finished(self, seconds: float) -> None:
        """The sweep is over (``seconds`` counts the sweep alone)."""

    def report_started(self, run_dir: Path) -> None:
        """The run folder is being written."""

    def report_finished(self, seconds: float) -> None:
        """The run folder is complete."""


@dataclass(frozen=True)
class ExperimentResult:
    run_dir: Path
    ranked: pd.DataFrame
    candles: Candles
    sweep: SweepResult
    timings: dict
    manifest: dict


def new_run_dir(out_root: Path, cfg: Config, run_id: str | None = None) -> Path:
    """A fresh folder named by ``run_id`` (default: experiment, UTC time, random suffix); an
    existing run is never written into (a given id that exists gets ``-2``, ``-3``...)."""
    out_root.mkdir(parents=True, exist_ok=True)
    base = run_id or new_run_id(cfg.name)
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
                   observer: RunObserver | None = None) -> ExperimentResult:
    obs = observer or RunObserver()
    t0 = time.perf_counter()
    # PNG charts render on worker processes forked now, before numba starts its threads.
    pool = ChartPool(workers or cfg.workers or os.cpu_count() or 1) if cfg.report.png else nullcontext(None)
    with pool as charts:
        candles = candles if candles is not None else load_data(spec)
        obs.data_loaded(candles)
        t_load = time.perf_counter()
        compiled = prepare(cfg, engine=engine, on_compile=obs.compiling)
        t_compile = time.perf_counter()
        if compiled:
            obs.compiled(t_compile - t_load)
        progress = obs.sweep_started(len(cfg.grid))
        result = run_sweep(cfg, candles, engine=engine, workers=workers, progress=progress)
        t_sweep = time.perf_counter()
        obs.sweep_finished(t_sweep - t_compile)
        run_dir = new_run_dir(out_root, cfg, run_id)
        timings = {"load_s": round(t_load - t0, 3), "compile_s": round(t_compile - t_load, 3),
                   "sweep_s": round(t_sweep - t_compile, 3)}
        obs.report_started(run_dir)
        folder = write_run_folder(run_dir, cfg, result.summary, candles, run_id=run_dir.name, engine=engine,
                                  notices=result.notices, timings=timings, charts=charts)
    write_index(out_root)
    obs.report_finished(time.perf_counter() - t_sweep)
    return ExperimentResult(run_dir, folder.ranked, candles, result, folder.manifest["timings"], folder.manifest)
