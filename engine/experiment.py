"""One experiment end to end: config, then data, then the expanded grid, then the sweep, then the report."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .candles import Candles
from .config import Config
from .cpus import available_cpus
from .data.source import load_data
from .data.spec import DataSpec
from .errors import ResourceError
from .fast.announce import announce as announce_compiles
from .report.index import write_index
from .report.run_folder import (PartialRunFolder, disk_full_error, estimate_run_folder_bytes, is_disk_full,
                                trade_lines_in_report, write_run_folder)
from .report.writer import ChartPool
from .run_id import new_run_id
from .sweep import SweepResult, prepare, run_sweep
from .validation.evaluate import ValidationOutcome
from .validation.finish import finish
from .validation.plan import resolve as resolve_validation

Progress = Callable[[float], None]


class RunObserver:
    """What a run tells its caller as it goes; every step is optional (override what you show)."""

    def data_loaded(self, candles: Candles) -> None:
        """The candles are loaded and checked."""

    def compiling(self) -> None:
        """numba has started compiling the kernels (its disk cache held no usable copy)."""

    def compiled(self, seconds: float) -> None:
        """Compilation (announced by :meth:`compiling`) is over."""

    def compile_started(self, what: str, why: str) -> None:
        """Something starts compiling, before the sweep or during it: ``what`` (e.g. "trend_rsi's
        rule (the rule, long entry scan)") and ``why`` (e.g. "its rule changed")."""

    def compile_finished(self, what: str, seconds: float) -> None:
        """The compile announced by :meth:`compile_started` is over."""

    def sweep_started(self, total: int) -> Progress | None:
        """The sweep of ``total`` combinations starts now; return a progress callback or None."""
        return None

    def sweep_finished(self, seconds: float) -> None:
        """The sweep is over (``seconds`` counts the sweep alone)."""

    def writing_soon(self, needed_bytes: int) -> None:
        """Nothing is written yet; the run folder will take at least ``needed_bytes`` (raise to refuse)."""

    def report_started(self, run_dir: Path) -> None:
        """The run folder is being written (into a hidden partial folder renamed to ``run_dir`` when complete)."""

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
    validation: ValidationOutcome | None = None  # with a ``validation`` config section


def run_experiment(cfg: Config, spec: DataSpec, out_root: Path, *, engine: str = "fast", workers: int | None = None,
                   run_id: str | None = None, candles: Candles | None = None,
                   observer: RunObserver | None = None) -> ExperimentResult:
    """Load, sweep, then write ``out_root/<run_id>/`` through a hidden partial folder renamed into place when
    complete (``engine.report.run_folder.PartialRunFolder``)."""
    obs = observer or RunObserver()
    with announce_compiles(obs.compile_started, obs.compile_finished):
        return _run(cfg, spec, out_root, engine, workers, run_id, candles, obs)


def _run(cfg: Config, spec: DataSpec, out_root: Path, engine: str, workers: int | None, run_id: str | None,
         candles: Candles | None, obs: RunObserver) -> ExperimentResult:
    t0 = time.perf_counter()
    # PNG charts render on worker processes forked now, before numba starts its threads.
    pool = ChartPool(workers or cfg.workers or available_cpus()) if cfg.report.png else nullcontext(None)
    with pool as charts:
        candles = candles if candles is not None else load_data(spec)
        obs.data_loaded(candles)
        t_load = time.perf_counter()
        if cfg.validation is not None:  # windows against the data: a one-line error before the sweep
            resolve_validation(cfg.validation, len(candles), candles.interval_ms)
        compiled = prepare(cfg, engine=engine, on_compile=obs.compiling)
        t_compile = time.perf_counter()
        if compiled:
            obs.compiled(t_compile - t_load)
        progress = obs.sweep_started(len(cfg.grid))
        result = run_sweep(cfg, candles, engine=engine, workers=workers, progress=progress)
        summary, outcome = result.summary, None
        if result.plan is not None:
            summary, outcome = finish(cfg, candles, summary, result.plan, result.validation, engine=engine)
        t_sweep = time.perf_counter()
        obs.sweep_finished(t_sweep - t_compile)
        obs.writing_soon(estimate_run_folder_bytes(len(cfg.grid), cfg.report.top_k, len(cfg.grid.sweeps),
                                                   trade_lines_in_report(result.summary, cfg.report.top_k),
                                                   png=cfg.report.png))
        timings = {"load_s": round(t_load - t0, 3), "compile_s": round(t_compile - t_load, 3),
                   "sweep_s": round(t_sweep - t_compile, 3)}
        partial = None
        try:
            partial = PartialRunFolder.create(out_root, run_id or new_run_id(cfg.name))
            obs.report_started(out_root / partial.run_id)
            folder = write_run_folder(partial.path, cfg, summary, candles, run_id=partial.run_id,
                                      engine=engine, notices=result.notices, timings=timings, charts=charts,
                                      outcome=outcome)
            run_dir = partial.publish(folder.manifest)
        except BaseException as exc:
            if charts is not None:
                charts.close()  # no worker may still be writing into a folder that is given up
            if partial is not None:
                partial.release()
            if is_disk_full(exc) and partial is not None:
                raise disk_full_error(partial, exc) from None
            if is_disk_full(exc):
                raise ResourceError(f"{out_root}: {getattr(exc, 'strerror', None) or exc}; free some space "
                                    "and run again") from None
            raise
    try:
        write_index(out_root)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise ResourceError(f"{out_root}: run {run_dir.name} is complete, but index.html could not be updated "
                            f"({(exc.strerror or str(exc)).lower()}); the next run refreshes it") from None
    obs.report_finished(time.perf_counter() - t_sweep)
    return ExperimentResult(run_dir, folder.ranked, candles, result, folder.manifest["timings"], folder.manifest,
                            outcome)
