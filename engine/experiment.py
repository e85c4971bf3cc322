"""One experiment end to end: the data, the compile, the run pipeline, the run folder, the index.

``backtest run`` calls :func:`run_experiment`. The run itself is ``engine.pipeline``'s
(sweep, validation figures, ranking, detail runs); its report is ``engine.report``'s;
where the folder lands and how it is published is ``engine.run_store``'s.
"""

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
from .perp.inputs import check_perp_run
from .data.spec import DataSpec
from .errors import ResourceError
from .fast.announce import announce as announce_compiles
from .grid import Grid, build_grid
from .pipeline import STAGES, RunInputs, RunResults, run_stages, stages
from .report.charts import ChartPool
from .report.index import write_index
from .report.run_folder import write_run_folder
from .report.size import estimate_run_folder_bytes, trade_lines_in_report
from .run_id import new_run_id
from .run_store import is_disk_full, store_run
from .sweep import prepare
from .validation.evaluate import ValidationOutcome
from .validation.plan import resolve as resolve_validation

Progress = Callable[[float], None]
#: the pipeline stages the "sweep" step of a run covers (its timing and progress bar)...
SWEEP_STAGES = stages("sweep", "validate")
#: ...and those run while the report is written (ranking and the top combinations' detail runs)
REPORT_STAGES = tuple(s for s in STAGES if s not in SWEEP_STAGES)


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
        """The sweep is over (``seconds`` counts the sweep and the validation figures)."""

    def writing_soon(self, needed_bytes: int) -> None:
        """Nothing is written yet; the run folder will take at least ``needed_bytes`` (raise to refuse)."""

    def report_started(self, run_dir: Path) -> None:
        """The run folder is being written (into a hidden partial folder renamed to ``run_dir`` when complete)."""

    def report_finished(self, seconds: float) -> None:
        """The run folder is complete."""


@dataclass(frozen=True)
class ExperimentResult:
    run_dir: Path
    results: RunResults  # the ranked summary, every figure, the detail runs
    timings: dict
    manifest: dict

    @property
    def ranked(self) -> pd.DataFrame:
        return self.results.ranked

    @property
    def validation(self) -> ValidationOutcome | None:
        """The figures of a ``validation`` config section."""
        return self.results.outcome


def run_experiment(cfg: Config, spec: DataSpec, out_root: Path, *, engine: str = "fast", workers: int | None = None,
                   run_id: str | None = None, candles: Candles | None = None, grid: Grid | None = None,
                   observer: RunObserver | None = None) -> ExperimentResult:
    """Load, compile, run the pipeline, then write and publish ``out_root/<run_id>/``.

    ``grid``: the config's expanded grid (expanded here when not given)."""
    obs = observer or RunObserver()
    grid = build_grid(cfg) if grid is None else grid
    with announce_compiles(obs.compile_started, obs.compile_finished):
        return _run(cfg, spec, out_root, engine, workers, run_id, candles, grid, obs)


def _run(cfg: Config, spec: DataSpec, out_root: Path, engine: str, workers: int | None, run_id: str | None,
         candles: Candles | None, grid: Grid, obs: RunObserver) -> ExperimentResult:
    t0 = time.perf_counter()
    # PNG charts render on worker processes forked now, before numba starts its threads.
    pool = ChartPool(workers or cfg.workers or available_cpus()) if cfg.report.png else nullcontext(None)
    with pool as charts:
        candles = candles if candles is not None else load_data(spec)
        obs.data_loaded(candles)
        t_load = time.perf_counter()
        if cfg.validation is not None:  # windows against the data: a one-line error before the sweep
            resolve_validation(cfg.validation, len(candles), candles.interval_ms, cfg.limits.max_folds)
        if cfg.perp is not None:  # brackets, liquidation basis, funding coverage: one line, before the sweep
            check_perp_run(cfg.perp, candles)
        compiled = prepare(cfg, engine=engine, on_compile=obs.compiling, grid=grid)
        t_compile = time.perf_counter()
        if compiled:
            obs.compiled(t_compile - t_load)
        inputs = RunInputs(cfg, grid, candles, engine, workers)
        state = run_stages(inputs, SWEEP_STAGES,
                           started=lambda name: obs.sweep_started(len(grid)) if name == "sweep" else None)
        t_swept = time.perf_counter()
        obs.sweep_finished(t_swept - t_compile)
        obs.writing_soon(estimate_run_folder_bytes(
            len(grid), cfg.report.top_k, len(grid.sweeps),
            trade_lines_in_report(state.summary, cfg.report.top_k, cfg.report.runs), png=cfg.report.png,
            runs=cfg.report.runs))
        timings = {"load_s": round(t_load - t0, 3), "compile_s": round(t_compile - t_load, 3),
                   "sweep_s": round(t_swept - t_compile, 3)}
        done: list[RunResults] = []

        def write(path: Path, rid: str):
            # the remaining stages (ranking, detail runs) belong to the report's time, as the user sees it
            done.append(run_stages(inputs, REPORT_STAGES, state=state).results())
            return write_run_folder(path, done[0], run_id=rid, timings=timings, charts=charts,
                                    extra={"stage_timings": dict(done[0].timings)})

        run_dir, folder = store_run(out_root, run_id or new_run_id(cfg.name), write, started=obs.report_started,
                                    abandon=charts.close if charts is not None else None)
    refresh_index(out_root, run_dir)
    obs.report_finished(time.perf_counter() - t_swept)
    return ExperimentResult(run_dir, done[0], folder.manifest["timings"], folder.manifest)


def refresh_index(out_root: Path, run_dir: Path) -> None:
    """Rebuild ``out_root/index.html`` after ``run_dir`` is published; a full disk is one ResourceError."""
    try:
        write_index(out_root)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise ResourceError(f"{out_root}: run {run_dir.name} is complete, but index.html could not be updated "
                            f"({(exc.strerror or str(exc)).lower()}); the next run refreshes it") from None
