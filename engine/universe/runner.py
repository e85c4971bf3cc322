"""A universe run: every combination on every series, through the one run pipeline.

Each series is loaded once, before any sweep, so a missing or too-short series ends the run
with one line before work starts. Each series' sweep and validation figures are the
pipeline's own stages on a config narrowed to that series, so a universe row equals the
single-series run's summary row. What is kept per series is its summary (O(combinations))
and its validation outcome; candles are kept for the detail runs of the universe's top K.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

import pandas as pd

from ..candles import Candles
from ..config import Config
from ..config.universe_checks import MIN_CROSS_SERIES
from ..data.source import load_data
from ..errors import ConfigError, DataError, UserError
from ..grid import Grid
from ..perp.inputs import check_perp_run
from ..pipeline import RunInputs, run_stages, stages
from ..ranking import rank
from ..result import RunResult
from ..sweep import Progress, run_detail
from ..validation.evaluate import ValidationOutcome
from ..validation.plan import resolve as resolve_validation
from .aggregate import by_series_frame, grid_columns, metric_matrix, top_of, universe_summary
from .cross_pbo import CrossSeriesPBO, cross_series_pbo
from .series import Series, resolve_universe

#: a series needs this many bars in range (one return)
MIN_BARS = 2


@dataclass(frozen=True)
class SeriesRun:
    series: Series
    candles: Candles
    summary: pd.DataFrame  # grid order, as a single-series run's
    ranked: pd.DataFrame  # the series' own ranking (its validation's top)
    outcome: ValidationOutcome | None
    notices: tuple[str, ...]

    @property
    def view(self) -> Candles:
        """The bars its metrics come from (the in-sample window under validation)."""
        o = self.outcome
        return self.candles if o is None else self.candles.slice(0, o.plan.in_sample.b)


@dataclass(frozen=True)
class UniverseResults:
    cfg: Config
    grid: Grid
    engine: str
    runs: tuple[SeriesRun, ...]  # sorted by (symbol, interval)
    by_series: pd.DataFrame  # summary_by_series.csv
    ranked: pd.DataFrame  # the universe's summary.csv, best first
    top: tuple[int, ...]
    details: Mapping[tuple[str, int], RunResult]  # (series key, combination) -> detail run of the top K
    cross: CrossSeriesPBO | None
    timings: Mapping[str, float]

    @property
    def rank_key(self) -> str:
        return f"{self.cfg.report.rank_by}_{self.cfg.report.aggregate}"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(r.series.key for r in self.runs)


def series_config(cfg: Config, series: Series) -> Config:
    """The config narrowed to one series: what a single-series run of it would use."""
    return replace(cfg, data=series.spec)


def load_universe(cfg: Config, spec) -> tuple[tuple[Series, ...], tuple[Candles, ...]]:
    """Resolve and load every series, checking each against the config; one-line errors before any work."""
    series = resolve_universe(spec)
    if cfg.validation is not None and cfg.validation.cross_series and len(series) < MIN_CROSS_SERIES:
        raise ConfigError(f"validation.cross_series: the universe has {len(series)} series; the cross-sectional "
                          f"PBO needs at least {MIN_CROSS_SERIES}")
    loaded = []
    for s in series:
        try:
            candles = load_data(s.spec)
        except UserError as exc:
            raise type(exc)(f"{s.key}: {exc}") from None
        if len(candles) < MIN_BARS:
            raise DataError(f"{s.key}: {len(candles)} bar(s) in range; a series needs at least {MIN_BARS}")
        try:
            if cfg.validation is not None:
                resolve_validation(cfg.validation, len(candles), candles.interval_ms, cfg.limits.max_folds)
            if cfg.perp is not None:  # per series: its brackets, liquidation basis and funding coverage
                check_perp_run(cfg.perp, candles)
        except UserError as exc:
            raise type(exc)(f"{s.key}: {_without_symbol(str(exc), s.symbol)}") from None
        loaded.append(candles)
    return series, tuple(loaded)


def _without_symbol(message: str, symbol: str) -> str:
    """A series check's message without its own ``SYMBOL: `` lead, which the series key already names."""
    return message[len(symbol) + 2:] if message.startswith(f"{symbol}: ") else message


def run_universe(cfg: Config, grid: Grid, series: tuple[Series, ...], candles: tuple[Candles, ...], *,
                 engine: str = "fast", workers: int | None = None, progress: Progress | None = None,
                 on_series: Callable[[Series, Candles], None] | None = None) -> UniverseResults:
    """Sweep and validate every series, aggregate, rank, and run the top K on every series in detail."""
    runs = []
    for s, c in zip(series, candles):
        if on_series is not None:
            on_series(s, c)
        state = run_stages(RunInputs(series_config(cfg, s), grid, c, engine, workers), stages("sweep", "validate"),
                           started=lambda name: progress if name == "sweep" else None)
        ranked = rank(state.summary, cfg.report.rank_by, cfg.report.min_trades)
        runs.append(SeriesRun(s, c, state.summary, ranked, state.outcome, tuple(state.sweep.notices)))
    return finish_universe(cfg, grid, tuple(runs), engine=engine)


def finish_universe(cfg: Config, grid: Grid, runs: tuple[SeriesRun, ...], *, engine: str) -> UniverseResults:
    """Aggregate, rank and detail a universe from its series' summaries (a local run, or Batch reduce)."""
    rank_by, aggregate = cfg.report.rank_by, cfg.report.aggregate
    by_series = by_series_frame([(r.series.symbol, r.series.interval) for r in runs], [r.summary for r in runs])
    ranked = universe_summary(by_series, grid_columns(runs[0].summary), len(runs), rank_by, aggregate,
                              perp=cfg.perp is not None)
    top = tuple(top_of(ranked, f"{rank_by}_{aggregate}", cfg.report.top_k))
    details = {}
    for r in runs:
        for g in top:
            sw, k = grid.locate(g)
            details[(r.series.key, g)] = run_detail(series_config(cfg, r.series), sw, k, r.view, engine=engine)
    cross = None
    if cfg.validation is not None and cfg.validation.cross_series:
        cross = cross_series_pbo(metric_matrix(by_series, rank_by, len(runs)), rank_by)
    return UniverseResults(cfg, grid, engine, runs, by_series, ranked, top, details, cross, {})
