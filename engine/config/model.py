"""What a config means, once checked: frozen dataclasses, and nothing that reads, parses or expands.

``engine.config.schema`` lists every key with its type, range and default;
``engine.config.parse`` turns a YAML document into these objects; the caller of the
config expands its grid (``engine.grid.build_grid``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..data.spec import DataSpec
from ..errors import ConfigError
from ..execution import Execution
from ..perp.config import PerpConfig
from ..grid_budget import DEFAULT_MAX_COMBINATIONS, DEFAULT_MAX_FOLDS
from ..position_rules import RULE_COLUMNS
from ..timeutil import ms_to_interval

#: ``report.runs``: which combinations get a ``runs/<id>.json`` file (params, metrics, trades)
RUNS_CHOICES = ("top", "all", "none")
#: ``report.aggregate``: what a universe run ranks by, over the series (``engine.universe.aggregate``)
AGGREGATES = ("median", "mean", "min")


@dataclass(frozen=True)
class LimitsConfig:
    """Resource guards: a grid above ``max_combinations`` is refused before it is built; a walk-forward
    of more than ``max_folds`` folds once the data's length is known, before the sweep."""

    max_combinations: int = DEFAULT_MAX_COMBINATIONS
    max_folds: int = DEFAULT_MAX_FOLDS


@dataclass(frozen=True)
class ReportConfig:
    top_k: int = 10
    rank_by: str = "sharpe"
    #: combinations with fewer closed trades are left unranked (they keep their summary row)
    min_trades: int = 1
    #: also draw PNG charts into plots/ (report.html has interactive ones either way)
    png: bool = False
    #: per-combination JSON: the top K (default), every combination, or none
    runs: str = "top"
    #: a universe run ranks by this aggregate of ``rank_by`` over its series
    aggregate: str = "median"


@dataclass(frozen=True)
class StrategyGrid:
    """One strategy of the config: the key it was given by (a built-in's short name or
    ``package.module:ClassName``), the import path it resolved to, and the values given for
    each parameter (scalars become 1-tuples)."""

    name: str  # the key as written in the config
    values: tuple[tuple[str, tuple[Any, ...]], ...]
    path: str = ""  # ``package.module:ClassName``, the strategy's key everywhere

    def as_dict(self) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self.values}


# --- the optional validation section --------------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """A window length: a bar count, or a duration in milliseconds (``text`` as written)."""

    text: str
    bars: int | None = None
    ms: int | None = None

    def to_bars(self, interval_ms: int, key: str) -> int:
        if self.bars is not None:
            return self.bars
        if self.ms % interval_ms:
            raise ConfigError(f"{key}: {self.text} is not a whole number of bars of {ms_to_interval(interval_ms)}")
        return self.ms // interval_ms


@dataclass(frozen=True)
class WalkForwardConfig:
    train: Span
    test: Span
    step: Span  # the test length unless given
    anchored: bool = False


@dataclass(frozen=True)
class CscvConfig:
    blocks: int = 16


@dataclass(frozen=True)
class ValidationConfig:
    holdout: float | None = None
    walk_forward: WalkForwardConfig | None = None
    cscv: CscvConfig | None = None
    trials: int | None = None
    #: a universe run: the cross-sectional PBO over splits of its series
    cross_series: bool = False


# --- the whole config ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    name: str = "experiment"
    data: DataSpec = field(default_factory=DataSpec)  # the data section is what the data layer loads
    execution: Execution = field(default_factory=Execution)
    # position rules: each a tuple of the values to sweep (one value: not swept; None: the rule is off)
    stop_loss: tuple[float | None, ...] = (None,)
    take_profit: tuple[float | None, ...] = (None,)
    trailing_stop: tuple[float | None, ...] = (None,)
    max_bars: tuple[int | None, ...] = (None,)
    direction: tuple[str, ...] = ("long",)
    size: tuple[float, ...] = (1.0,)
    leverage: tuple[float, ...] = (1.0,)
    strategies: tuple[StrategyGrid, ...] = ()
    workers: int | None = None
    report: ReportConfig = field(default_factory=ReportConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    validation: ValidationConfig | None = None
    #: data.market: um: the perp section (its defaults when absent); None for spot
    perp: PerpConfig | None = None
    #: the document as written (overrides included): what the run folder's config.yaml holds
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    #: the keys (``section.key``) that took their default because the document did not give them
    defaults: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def rules(self) -> dict[str, tuple[Any, ...]]:
        """The position rules to sweep, by grid column (``engine.position_rules.RULE_COLUMNS``)."""
        return {c: getattr(self, c) for c in RULE_COLUMNS}

    def digest(self) -> str:
        """SHA-256 of the canonical config (key order and formatting do not matter)."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()
