"""One run on one series, stage by stage: sweep, validation figures, ranking, detail runs.

A run is the sequence :data:`STAGES`, each a named function from the run's state to the
next state. :func:`run_pipeline` runs them and hands back :class:`RunResults`: every
figure, the ranked summary, and the top combinations' equity curves and trades, so the
report writer (``engine.report``) writes files and simulates nothing.

``backtest run`` runs every stage (``engine.experiment``). Batch ``reduce`` starts from
the shards' sweep (:func:`finish_run`), so both produce the same results from the same
sweep. A caller may run its own sequence: a stage is data (``Stage(name, run)``).

Stages:

* ``sweep``: every combination (``engine.sweep.run_sweep``), with the validation sums;
* ``validate``: the validation figures (``engine.validation.evaluate``) and the summary's
  ``psr``/``dsr`` columns; walk-forward's test windows are simulated here;
* ``rank``: the summary ranked by ``report.rank_by`` (``engine.ranking``);
* ``detail``: the top K re-simulated with their equity curves and trades on the bars the
  summary's metrics come from, and, with ``report.runs: all``, every other combination's
  trades.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, NamedTuple

import numpy as np
import pandas as pd

from .candles import Candles
from .config import Config
from .cpus import available_cpus
from .grid import Grid
from .metrics import METRICS, OOS_METRICS, SHARPE_TESTS
from .ranking import rank, top_combinations
from .result import RunResult
from .sweep import Progress, SweepResult, run_detail, run_sweep
from .validation.evaluate import ValidationOutcome, evaluate
from .validation.trials import duplicate_of, first_of_groups
from .validation.windows import Window


@dataclass(frozen=True)
class RunInputs:
    """What a run is of: a config, its expanded grid, the candles, the engine and its workers."""

    cfg: Config
    grid: Grid
    candles: Candles
    engine: str = "fast"
    workers: int | None = None


@dataclass(frozen=True)
class RunState:
    """The run so far: each stage fills in its part."""

    inputs: RunInputs
    sweep: SweepResult | None = None
    summary: pd.DataFrame | None = None  # grid order; with validation, psr and dsr added
    outcome: ValidationOutcome | None = None
    ranked: pd.DataFrame | None = None
    details: Mapping[int, RunResult] = field(default_factory=dict)
    top: tuple[int, ...] = ()  # the top K combinations, best first
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds per stage run
    holdout_details: Mapping[int, RunResult] = field(default_factory=dict)  # the top K on the holdout

    def results(self) -> "RunResults":
        """The finished run (every stage has run)."""
        i = self.inputs
        return RunResults(cfg=i.cfg, grid=i.grid, candles=i.candles, view=_view(i.candles, self.outcome),
                          engine=i.engine, summary=self.summary, ranked=self.ranked,
                          notices=self.sweep.notices if self.sweep is not None else (), outcome=self.outcome,
                          details=dict(self.details), top=self.top, timings=dict(self.timings),
                          holdout_details=dict(self.holdout_details))


@dataclass(frozen=True)
class RunResults:
    """A finished run, everything its report needs."""

    cfg: Config
    grid: Grid
    candles: Candles  # the whole series
    view: Candles  # the bars the summary's metrics come from (the in-sample window under validation)
    engine: str
    summary: pd.DataFrame  # grid order
    ranked: pd.DataFrame  # best first, with a rank column
    notices: tuple[str, ...]
    outcome: ValidationOutcome | None
    details: Mapping[int, RunResult]  # combination -> detail run; the top K's keep their equity curves
    top: tuple[int, ...]  # the top K combinations, best first
    timings: Mapping[str, float]  # seconds per stage
    #: the top K's runs on the holdout (a test window: flat at its start, closed at its end), for the charts
    holdout_details: Mapping[int, RunResult] = field(default_factory=dict)

    def param_names(self, strategy: str) -> tuple[str, ...]:
        """The parameters of the strategy named ``strategy``, as the sweep declared them."""
        return next(sw.param_names for sw in self.grid if sw.strategy.name == strategy)


class Stage(NamedTuple):
    name: str
    run: Callable[[RunState, Progress | None], RunState]


def _sweep(state: RunState, progress: Progress | None) -> RunState:
    i = state.inputs
    return replace(state, sweep=run_sweep(i.cfg, i.candles, grid=i.grid, engine=i.engine, workers=i.workers,
                                          progress=progress))


def _validate(state: RunState, progress: Progress | None) -> RunState:
    sweep = state.sweep
    if sweep.plan is None:
        summary = sweep.summary.copy()
        if len(summary):
            summary["duplicate_of"] = duplicate_of(summary[list(METRICS)].to_numpy(np.float64))
        return replace(state, summary=summary)
    summary, outcome = validation_figures(state.inputs, sweep)
    return replace(state, summary=summary, outcome=outcome)


def _rank(state: RunState, progress: Progress | None) -> RunState:
    report = state.inputs.cfg.report
    ranked = rank(state.summary, report.rank_by, report.min_trades)
    return replace(state, ranked=ranked, top=tuple(top_combinations(first_of_groups(ranked), report.top_k)))


def _details(i: RunInputs, combinations, candles: Candles, **window) -> list[RunResult]:
    """The re-simulations of ``combinations``, in order. On the fast path the first of each strategy
    runs alone (it may load or compile that strategy's code), the rest on threads (the loop releases
    the GIL: ten 1M-candle re-simulations were half of a report's time)."""
    def one(g: int) -> RunResult:
        sw, k = i.grid.locate(g)
        return run_detail(i.cfg, sw, k, candles, engine=i.engine, **window)

    threads = min(len(combinations), i.workers or i.cfg.workers or available_cpus(), available_cpus())
    if i.engine != "fast" or threads < 2:
        return [one(g) for g in combinations]
    firsts = {}
    for g in combinations:
        firsts.setdefault(i.grid.locate(g)[0].strategy.name, g)
    done = {g: one(g) for g in firsts.values()}
    rest = [g for g in combinations if g not in done]
    with ThreadPoolExecutor(threads) as pool:
        done.update(zip(rest, pool.map(one, rest)))
    return [done[g] for g in combinations]


def _detail(state: RunState, progress: Progress | None) -> RunState:
    i = state.inputs
    view = _view(i.candles, state.outcome)
    details = dict(zip(state.top, _details(i, state.top, view)))
    if i.cfg.report.runs == "all":  # every other combination's trades, for its runs/<id>.json
        rest = [g for g in state.ranked["combination"].to_numpy(np.int64).tolist() if g not in details]
        for g, res in zip(rest, _details(i, rest, view)):
            details[g] = RunResult(np.empty(0), res.trades, res.metrics)  # its equity curve is not drawn
    holdout = state.outcome.plan.holdout if state.outcome is not None else None
    oos: dict[int, RunResult] = {}
    if holdout is not None:  # the charts go on past the cut
        oos = dict(zip(state.top, _details(i, state.top, i.candles, window=holdout, test=True)))
    return replace(state, details=details, holdout_details=oos)


STAGES: tuple[Stage, ...] = (Stage("sweep", _sweep), Stage("validate", _validate), Stage("rank", _rank),
                             Stage("detail", _detail))

OnStage = Callable[[str], "Progress | None"]
Done = Callable[[str, float], None]


def stages(*names: str) -> tuple[Stage, ...]:
    """The stages of :data:`STAGES` with these names, in pipeline order."""
    unknown = set(names) - {s.name for s in STAGES}
    if unknown:
        raise ValueError(f"no stage {sorted(unknown)[0]!r}; the stages are {', '.join(s.name for s in STAGES)}")
    return tuple(s for s in STAGES if s.name in names)


def run_stages(inputs: RunInputs, todo: tuple[Stage, ...] = STAGES, *, state: RunState | None = None,
               started: OnStage | None = None, finished: Done | None = None) -> RunState:
    """Run ``todo`` from ``state`` (default: nothing done yet). ``started(name)`` is told as each stage
    starts and may return a progress callback for it; ``finished(name, seconds)`` as each ends."""
    state = state or RunState(inputs)
    for stage in todo:
        progress = started(stage.name) if started is not None else None
        t0 = time.perf_counter()
        state = stage.run(state, progress)
        seconds = round(time.perf_counter() - t0, 3)
        state = replace(state, timings={**state.timings, stage.name: seconds})
        if finished is not None:
            finished(stage.name, seconds)
    return state


def run_pipeline(inputs: RunInputs, **hooks) -> RunResults:
    """Every stage: a finished run."""
    return run_stages(inputs, STAGES, **hooks).results()


def finish_run(inputs: RunInputs, sweep: SweepResult, **hooks) -> RunResults:
    """Every stage after the sweep, from a sweep computed elsewhere (Batch shards)."""
    after = tuple(s for s in STAGES if s.name != "sweep")
    return run_stages(inputs, after, state=RunState(inputs, sweep=sweep), **hooks).results()


def validation_figures(inputs: RunInputs, sweep: SweepResult) -> tuple[pd.DataFrame, ValidationOutcome]:
    """Every validation figure of a validated sweep, and its summary with ``psr`` and ``dsr`` added
    (the validation columns last, in one order, however the rows were assembled)."""
    cfg, grid, candles, summary, plan = inputs.cfg, inputs.grid, inputs.candles, sweep.summary, sweep.plan
    rank_by = cfg.report.rank_by

    def simulate_test(g: int, window: Window) -> RunResult:
        sw, i = grid.locate(g)
        return run_detail(cfg, sw, i, candles, engine=inputs.engine, window=window, test=True)

    combos = summary["combination"].to_numpy()
    if not np.array_equal(combos, np.arange(len(combos))):
        raise ValueError("validation needs the summary of the whole grid, in grid order")
    view = candles.slice(0, plan.in_sample.b)

    def returns_of(g: int) -> np.ndarray:
        sw, i = grid.locate(g)
        e = run_detail(cfg, sw, i, view, engine=inputs.engine).equity
        prev = e[:-1]
        # after a liquidation or ruin the equity is 0: nothing is left to return, so 0 (not inf or nan)
        return np.divide(np.diff(e), prev, out=np.zeros(len(prev)), where=prev != 0)

    in_sample = None if rank_by in SHARPE_TESTS else summary[rank_by].to_numpy(np.float64)
    outcome = evaluate(plan, sweep.validation, candles, rank_by=rank_by, in_sample_rank=in_sample,
                       trials=plan.trials, capital=cfg.execution.capital, simulate_test=simulate_test,
                       fingerprint=summary[list(METRICS)].to_numpy(np.float64), returns_of=returns_of)
    out = summary[[c for c in summary.columns if c not in OOS_METRICS and c not in SHARPE_TESTS]].copy()
    for c in OOS_METRICS:
        if c in summary:
            out[c] = summary[c]
    out["psr"] = outcome.deflated.psr
    out["dsr"] = outcome.deflated.dsr
    out["duplicate_of"] = outcome.duplicate_of
    return out, outcome


def _view(candles: Candles, outcome: ValidationOutcome | None) -> Candles:
    """The bars the summary's metrics come from: a run on [0, cut) is a run on those bars alone."""
    return candles if outcome is None else candles.slice(0, outcome.plan.in_sample.b)
