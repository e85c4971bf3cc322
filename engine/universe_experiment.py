"""A universe experiment end to end: the series, the compile, every series' sweep, the run folder, the index."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .data.spec import DataSpec
from .experiment import RunObserver, refresh_index
from .fast.announce import announce as announce_compiles
from .grid import Grid, build_grid
from .report.universe_folder import write_universe_folder
from .run_id import new_run_id
from .run_store import store_run
from .sweep import prepare
from .universe.runner import UniverseResults, finish_universe, load_universe, run_universe


@dataclass(frozen=True)
class UniverseExperiment:
    run_dir: Path
    results: UniverseResults
    timings: dict
    manifest: dict


def run_universe_experiment(cfg: Config, spec: DataSpec, out_root: Path, *, engine: str = "fast",
                            workers: int | None = None, run_id: str | None = None, grid: Grid | None = None,
                            observer: RunObserver | None = None) -> UniverseExperiment:
    obs = observer or RunObserver()
    grid = build_grid(cfg) if grid is None else grid
    with announce_compiles(obs.compile_started, obs.compile_finished):
        t0 = time.perf_counter()
        series, candles = load_universe(cfg, spec)
        for c in candles:
            obs.data_loaded(c)
        t_load = time.perf_counter()
        if prepare(cfg, engine=engine, on_compile=obs.compiling, grid=grid):
            obs.compiled(time.perf_counter() - t_load)
        t_compile = time.perf_counter()
        progress = obs.sweep_started(len(grid) * len(series))
        res = run_universe(cfg, grid, series, candles, engine=engine, workers=workers, progress=progress)
        t_swept = time.perf_counter()
        obs.sweep_finished(t_swept - t_compile)
        timings = {"load_s": round(t_load - t0, 3), "compile_s": round(t_compile - t_load, 3),
                   "sweep_s": round(t_swept - t_compile, 3)}
        run_dir, folder = store_run(out_root, run_id or new_run_id(cfg.name),
                                    lambda path, rid: write_universe_folder(path, res, run_id=rid, timings=timings),
                                    started=obs.report_started)
    refresh_index(out_root, run_dir)
    obs.report_finished(time.perf_counter() - t_swept)
    return UniverseExperiment(run_dir, res, folder.manifest["timings"], folder.manifest)


__all__ = ["UniverseExperiment", "run_universe_experiment", "finish_universe"]
