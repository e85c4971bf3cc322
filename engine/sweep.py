"""Grid runner: config -> strategy factory -> job builder -> engine, in a stable order.

The fast path evaluates each strategy's combinations in one streaming pass on
numba threads. The reference engine runs one job per combination in a forked
multiprocessing pool: each worker inherits the config (with its expanded grid)
and the candles, and receives only combination indices. Results come back in
grid order whatever the worker count.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .candles import Candles
from .child_process import bind_to_parent
from .config import Config
from .cpus import available_cpus
from .grid import Grid, StrategySweep
from .metrics import METRICS
from .position_rules import RULE_COLUMNS
from .reference.engine import BacktestingEngine
from .result import RunResult

ENGINES = ("fast", "reference")
Progress = Callable[[float], None]


@dataclass(frozen=True)
class SweepResult:
    summary: pd.DataFrame  # one row per combination, in grid order
    grid: Grid
    notices: tuple[str, ...]  # anything the run should tell its user


def run_sweep(cfg: Config, candles: Candles, *, engine: str = "fast", workers: int | None = None,
              indices: np.ndarray | None = None, progress: Progress | None = None) -> SweepResult:
    """Evaluate the combinations ``indices`` of ``cfg.grid`` (global positions; default all)."""
    total = len(cfg.grid)
    wanted = np.arange(total) if indices is None else np.asarray(indices, dtype=np.int64)
    workers = min(workers or cfg.workers or available_cpus(), available_cpus())
    frames, notices = [], []
    offset = 0
    for sw in cfg.grid:
        local = wanted[(wanted >= offset) & (wanted < offset + len(sw))] - offset
        if len(local):
            if engine == "fast":
                cols = _fast(sw, local, candles, cfg, workers, progress)
            else:
                cols = _reference(cfg, offset, local, candles, workers, progress)
            frames.append(_frame(sw, local, offset, cols))
        offset += len(sw)
    summary = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return SweepResult(summary, cfg.grid, tuple(notices))


def _frame(sw: StrategySweep, local: np.ndarray, offset: int, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    data: dict[str, object] = {
        "combination": local + offset,
        "strategy_id": [sw.strategy_id(int(i)) for i in local],
        "strategy": sw.strategy.name,
    }
    for p in sw.param_names:
        data[p] = sw.columns[p][local]
    for p in RULE_COLUMNS:
        data[p] = sw.columns[p][local]
    bars = data["max_bars"]  # whole bars, blank where there is no limit
    data["max_bars"] = pd.arrays.IntegerArray(np.nan_to_num(bars).astype(np.int64), np.isnan(bars))
    for m in METRICS:
        data[m] = cols[m]
    return pd.DataFrame(data)


def _fast(sw, local, candles, cfg, workers, progress) -> dict[str, np.ndarray]:
    import numba

    from .fast import runner

    numba.set_num_threads(max(1, min(workers, numba.config.NUMBA_NUM_THREADS)))
    return runner.sweep(sw, candles, cfg.execution, indices=local, progress=progress)


# --- reference engine pool ------------------------------------------------
_worker: dict = {}


def _init_worker(cfg: Config, candles: Candles, parent_pid: int | None = None) -> None:
    # A forked child inherits both objects; nothing is pickled or parsed again.
    if parent_pid is not None:
        bind_to_parent(parent_pid)
    _worker.update(cfg=cfg, candles=candles)


def reference_run(cfg: Config, sw: StrategySweep, i: int, candles: Candles) -> RunResult:
    return BacktestingEngine(candles, sw.instance(i), cfg.execution, sw.rules(i)).run()


def _job(g: int) -> dict:
    sw, i = _worker["cfg"].grid.locate(g)
    return reference_run(_worker["cfg"], sw, i, _worker["candles"]).metrics


def _reference(cfg, offset, local, candles, workers, progress) -> dict[str, np.ndarray]:
    jobs = [int(i) + offset for i in local]
    if workers <= 1 or len(jobs) == 1:
        _init_worker(cfg, candles)
        results = []
        for g in jobs:
            results.append(_job(g))
            if progress:
                progress(1)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(workers, len(jobs)), _init_worker, (cfg, candles, os.getpid())) as pool:
            results = []
            for res in pool.imap(_job, jobs, chunksize=max(1, len(jobs) // (workers * 8))):
                results.append(res)
                if progress:
                    progress(1)
    return {m: np.array([math.nan if r[m] is None else r[m] for r in results]) for m in METRICS}


#: Synthetic candles a warm-up runs on: enough for the kernels' every code path to be compiled.
PREPARE_BARS = 300


def _first_compile_listener(callback: Callable[[], None] | None):
    """A numba event listener that calls ``callback`` once, when numba starts compiling
    anything (loading a kernel from its disk cache is not compiling)."""
    from numba.core import event

    class FirstCompile(event.Listener):
        fired = False

        def on_start(self, _event) -> None:
            if not self.fired:
                self.fired = True
                if callback is not None:
                    callback()

        def on_end(self, _event) -> None:
            pass

    return FirstCompile()


def prepare(cfg: Config, *, engine: str = "fast", on_compile: Callable[[], None] | None = None) -> bool:
    """Compile, or load from numba's disk cache, what the sweep of ``cfg`` will run, on a few
    synthetic candles, so that the sweep itself starts computing at once.

    ``on_compile`` is called once, at the moment numba starts compiling: only when its
    cache holds no usable copy (the first run on a machine, or after an edit of a rule).
    Returns whether anything was compiled.
    """
    from numba.core import event

    from .synthetic import generate_candles

    candles = generate_candles(PREPARE_BARS, seed=1)
    watch = _first_compile_listener(on_compile)
    with event.install_listener("numba:compile", watch):
        for sw in cfg.grid:
            if engine == "fast":
                from .fast import runner

                runner.sweep(sw, candles, cfg.execution, indices=np.arange(1))
                runner.detail(sw, 0, candles, cfg.execution)
            else:
                reference_run(cfg, sw, 0, candles)
    return watch.fired


def run_detail(cfg: Config, sw: StrategySweep, i: int, candles: Candles, *, engine: str = "fast") -> RunResult:
    """Equity curve and trades of one combination, on the chosen engine."""
    if engine == "fast":
        from .fast import runner

        return runner.detail(sw, i, candles, cfg.execution)
    return reference_run(cfg, sw, i, candles)
