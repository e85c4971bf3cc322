"""The sweep: every combination of a grid on one series, on either engine, in grid order.

The fast path evaluates each strategy's combinations in one streaming pass on
numba threads. The reference engine runs one job per combination in a forked
multiprocessing pool: each worker inherits the config, the expanded grid and the
candles, and receives only combination indices. Results come back in grid order
whatever the worker count. With a ``validation`` section the sweep also returns
each combination's validation sums (``engine.validation.columns``).

``run_detail`` simulates one combination with its equity curve and trades; ``prepare``
compiles (or loads from numba's cache) what a sweep will run before it starts.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .candles import Candles
from .child_process import bind_to_parent
from .config import Config
from .cpus import available_cpus
from .errors import StrategyError
from .grid import Grid, StrategySweep, build_grid
from .metrics import METRICS, OOS_METRICS, SHARPE_TESTS
from .perp.inputs import inputs_for
from .position_rules import RULE_COLUMNS
from .reference.engine import BacktestingEngine
from .result import BLOCK_R, BLOCK_R2, POWER_SUMS, RunResult
from .validation.accumulate import block_sums, power_sums
from .validation.columns import ValidationColumns, concat
from .validation.plan import ValidationPlan, resolve
from .validation.windows import Window

ENGINES = ("fast", "reference")
Progress = Callable[[float], None]


@dataclass(frozen=True)
class SweepResult:
    summary: pd.DataFrame  # one row per combination, in grid order
    grid: Grid
    notices: tuple[str, ...]  # anything the run should tell its user
    #: with a ``validation`` section: its windows, and per-combination inputs to its figures (rows as summary's)
    plan: ValidationPlan | None = None
    validation: ValidationColumns | None = None


def run_sweep(cfg: Config, candles: Candles, *, grid: Grid | None = None, engine: str = "fast",
              workers: int | None = None, indices: np.ndarray | None = None,
              progress: Progress | None = None) -> SweepResult:
    """Evaluate the combinations ``indices`` of ``grid`` (global positions; default all; the grid of
    ``cfg`` when not given).

    With a ``validation`` section the metrics are the in-sample window's (docs/semantics.md,
    "Windows"), the summary gains the holdout's ``oos_*`` columns, and the result carries the
    per-combination sums every validation figure is computed from."""
    grid = build_grid(cfg) if grid is None else grid
    total = len(grid)
    wanted = np.arange(total) if indices is None else np.asarray(indices, dtype=np.int64)
    workers = min(workers or cfg.workers or available_cpus(), available_cpus())
    plan = None if cfg.validation is None else resolve(cfg.validation, len(candles), candles.interval_ms,
                                                       cfg.limits.max_folds)
    frames, parts, notices = [], [], []
    offset = 0
    for sw in grid:
        local = wanted[(wanted >= offset) & (wanted < offset + len(sw))] - offset
        if len(local):
            if plan is not None:
                cols, part = _validated(cfg, grid, plan, sw, offset, local, candles, engine, workers, progress)
                parts.append(part)
            elif engine == "fast":
                cols = _fast(sw, local, candles, cfg, workers, progress)
            else:
                cols = _reference(cfg, grid, offset, local, candles, workers, progress)
            frames.append(_frame(sw, local, offset, cols))
        offset += len(sw)
    summary = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    columns = None
    if plan is not None:
        columns = concat(parts) if parts else None
    return SweepResult(summary, grid, tuple(notices), plan, columns)


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
    for c in OOS_METRICS:
        if c in cols:
            data[c] = cols[c]
    return pd.DataFrame(data)


def _fast(sw, local, candles, cfg, workers, progress) -> dict[str, np.ndarray]:
    import numba

    from .fast import runner

    numba.set_num_threads(max(1, min(workers, numba.config.NUMBA_NUM_THREADS)))
    with _rule_errors(cfg, sw, local, candles):
        return runner.sweep(sw, candles, cfg.execution, indices=local, progress=progress,
                            perp=inputs_for(cfg.perp, candles))


@contextmanager
def _rule_errors(cfg: Config, sw: StrategySweep, indices, candles: Candles, window: Window | None = None):
    """A rule that raised on the fast path, reported as the reference engine reports it: the
    strategy, the error and the bar (found by re-running the first combinations there)."""
    from .fast.rule_errors import RuleRaised

    try:
        yield
    except RuleRaised as raised:
        first = [] if raised.combination is None else [raised.combination]
        for i in first + [i for i in np.asarray(indices).tolist()[:8] if i not in first]:
            try:
                reference_run(cfg, sw, int(i), candles, window)
            except StrategyError as exc:  # --debug shows the user's frame
                raise StrategyError(str(exc)) from exc.__cause__
        where = "" if raised.bar is None else f" at bar {raised.bar} or after"
        raise StrategyError(f"strategy {sw.strategy.name} raised {raised}{where} on the fast path") from None


# --- reference engine pool ------------------------------------------------
_worker: dict = {}


def _init_worker(cfg: Config, grid: Grid, candles: Candles, parent_pid: int | None = None) -> None:
    # A forked child inherits the objects; nothing is pickled or parsed again.
    if parent_pid is not None:
        bind_to_parent(parent_pid)
    _worker.update(cfg=cfg, grid=grid, candles=candles)


def reference_run(cfg: Config, sw: StrategySweep, i: int, candles: Candles, window: Window | None = None,
                  test: bool = False) -> RunResult:
    span = None if window is None else (window.a, window.b)
    return BacktestingEngine(candles, sw.instance(i), cfg.execution, sw.rules(i),
                             inputs_for(cfg.perp, candles)).run(span, test)


def _job(g: int) -> dict:
    sw, i = _worker["grid"].locate(g)
    return reference_run(_worker["cfg"], sw, i, _worker["candles"]).metrics


def _pool_map(cfg: Config, grid: Grid, candles: Candles, workers: int, fn: Callable, jobs: list,
              progress: Progress | None) -> list:
    """``fn`` over ``jobs`` in a forked pool (in this process with one worker), in order."""
    if workers <= 1 or len(jobs) == 1:
        _init_worker(cfg, grid, candles)
        results = []
        for job in jobs:
            results.append(fn(job))
            if progress:
                progress(1)
        return results
    import multiprocessing as mp

    with mp.get_context("fork").Pool(min(workers, len(jobs)), _init_worker, (cfg, grid, candles, os.getpid())) as pool:
        results = []
        for res in pool.imap(fn, jobs, chunksize=max(1, len(jobs) // (workers * 8))):
            results.append(res)
            if progress:
                progress(1)
    return results


def _metric_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    return {m: np.array([math.nan if r[m] is None else r[m] for r in rows]) for m in METRICS}


def _reference(cfg, grid, offset, local, candles, workers, progress) -> dict[str, np.ndarray]:
    return _metric_columns(_pool_map(cfg, grid, candles, workers, _job, [int(i) + offset for i in local], progress))


def prepare(cfg: Config, *, engine: str = "fast", on_compile: Callable[[], None] | None = None,
            grid: Grid | None = None) -> bool:
    """Compile, or load from the disk cache, what the sweep of ``cfg`` (over ``grid``, default its
    own) and its detail runs will call, so that the sweep itself starts computing at once. Each
    compile is announced as it starts through ``engine.fast.announce`` (the caller installs the
    listener).

    ``on_compile`` is called once, when the first compile starts: only when the cache holds no
    usable copy (the first run on a machine, or after an edit of a rule or an indicator).
    Returns whether anything was compiled."""
    if engine != "fast":
        return False
    from .fast import runner
    from .fast.announce import announce

    fired = []

    def started(what: str, why: str) -> None:
        if not fired:
            fired.append(what)
            if on_compile is not None:
                on_compile()

    with announce(started):
        for sw in (build_grid(cfg) if grid is None else grid):
            runner.prepare(sw, moments=cfg.validation is not None, validated=cfg.validation is not None,
                           perp=cfg.perp is not None)
    return bool(fired)


def run_detail(cfg: Config, sw: StrategySweep, i: int, candles: Candles, *, engine: str = "fast",
               window: Window | None = None, test: bool = False) -> RunResult:
    """Equity curve and trades of one combination, on the chosen engine (on ``window``: a
    test window if ``test``)."""
    if engine == "fast":
        from .fast import runner

        span = None if window is None else (window.a, window.b)
        with _rule_errors(cfg, sw, [i], candles, window):
            return runner.detail(sw, i, candles, cfg.execution, window=span, test=test,
                                 perp=inputs_for(cfg.perp, candles))
    return reference_run(cfg, sw, i, candles, window, test)


# --- validated sweeps (docs/semantics.md, "Windows") -------------------------------------------------
def _validated(cfg: Config, grid: Grid, plan: ValidationPlan, sw: StrategySweep, offset: int, local: np.ndarray,
               candles: Candles, engine: str, workers: int, progress: Progress | None):
    """Metric columns on the in-sample window (plus ``oos_*``) and the validation sums of ``local``."""
    rank_by = cfg.report.rank_by
    windows = [plan.in_sample] + ([plan.holdout] if plan.holdout else []) + [f.train for f in plan.folds]
    work = sum(len(w) for w in windows)

    def part(w: Window):  # each window's share of the progress bar
        return None if progress is None else (lambda x: progress(x * len(w) / work))

    if engine == "fast":
        import numba

        from .fast import runner

        numba.set_num_threads(max(1, min(workers, numba.config.NUMBA_NUM_THREADS)))

        def run(w: Window, test: bool = False, blocks: np.ndarray | None = None) -> dict[str, np.ndarray]:
            with _rule_errors(cfg, sw, local, candles, w):
                return runner.sweep(sw, candles, cfg.execution, indices=local, progress=part(w),
                                    window=(w.a, w.b), test=test, moments=True, block_edges=blocks,
                                    perp=inputs_for(cfg.perp, candles))
    else:
        def run(w: Window, test: bool = False, blocks: np.ndarray | None = None) -> dict[str, np.ndarray]:
            return _reference_window(cfg, grid, offset, local, candles, workers, part(w), w, test, blocks)

    main = run(plan.in_sample, blocks=plan.block_edges)
    cols = {m: main[m] for m in METRICS}
    ps, br, br2 = main[POWER_SUMS], main.get(BLOCK_R), main.get(BLOCK_R2)
    hps = hrank = None
    if plan.holdout is not None:
        oos = run(plan.holdout, test=True)
        cols.update({c: oos[m] for c, m in OOS_METRICS.items()})
        hps = oos[POWER_SUMS]
        hrank = np.full(len(local), np.nan) if rank_by in SHARPE_TESTS else oos[rank_by].astype(np.float64)
    fps, frank, fcagr = [], [], []
    for fold in plan.folds:
        train = run(fold.train)
        fps.append(train[POWER_SUMS])
        frank.append(np.full(len(local), np.nan) if rank_by in SHARPE_TESTS else train[rank_by].astype(np.float64))
        fcagr.append(train["cagr"])
    stack = (lambda xs: np.stack(xs)) if plan.folds else (lambda xs: None)
    return cols, ValidationColumns(power_sums=ps, block_r=br, block_r2=br2, holdout_power_sums=hps,
                                   holdout_rank=hrank, fold_power_sums=stack(fps), fold_rank=stack(frank),
                                   fold_cagr=stack(fcagr))


def _window_job(args: tuple) -> tuple[dict, np.ndarray, np.ndarray | None, np.ndarray | None]:
    g, w, test, blocks = args
    sw, i = _worker["grid"].locate(g)
    res = reference_run(_worker["cfg"], sw, i, _worker["candles"], w, test)
    br = br2 = None
    if blocks is not None:
        br, br2 = block_sums(res.equity, blocks)
    return res.metrics, power_sums(res.equity), br, br2


def _reference_window(cfg, grid, offset, local, candles, workers, progress, w: Window, test: bool,
                      blocks: np.ndarray | None) -> dict[str, np.ndarray]:
    """The reference engine on one window: metrics and the sums from each equity curve."""
    jobs = [(int(i) + offset, w, test, blocks) for i in local]
    results = _pool_map(cfg, grid, candles, workers, _window_job, jobs, progress)
    cols = _metric_columns([r[0] for r in results])
    cols[POWER_SUMS] = np.array([r[1] for r in results])
    if blocks is not None:
        cols[BLOCK_R] = np.array([r[2] for r in results])
        cols[BLOCK_R2] = np.array([r[3] for r in results])
    return cols
