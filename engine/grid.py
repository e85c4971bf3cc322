"""A config's strategy grids expanded into combinations, in a stable order.

The config's caller expands the grid once (:func:`build_grid`) and carries it through
the sweep, the workers and the report; the config itself holds only the values given.

Order: strategies as in the config; within one, the Cartesian product of the
declared parameters (declaration order, values as given, last parameter
fastest) and then the position rules (``portfolio.direction``,
``portfolio.size``, ``risk.stop_loss``, ``risk.take_profit``,
``risk.trailing_stop``, ``risk.max_bars``). Combinations that break a declared
constraint are filtered out. Constraints are evaluated once, on NumPy columns
holding every combination, so they must use operators (``<``, ``&``, ``|``), not
``and``/``or``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .errors import ConfigError
from .naming import short_names, value_text
from .position_rules import RULE_COLUMNS, PositionRules
from .strategies import Strategy, get_strategy
from .strategies.base import check_indicator_arguments, coerce_param


@dataclass(frozen=True, eq=False)
class StrategySweep:
    strategy: type[Strategy]
    #: every parameter, then the position rules (RULE_COLUMNS): "direction" holds strings,
    #: the other rules NaN where the rule is off (max_bars too, as a float column)
    columns: dict[str, np.ndarray]
    swept: tuple[str, ...]  # the columns with more than one value
    filtered: int

    def __len__(self) -> int:
        return len(self.columns["stop_loss"])

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in RULE_COLUMNS)

    def params(self, i: int) -> dict[str, Any]:
        specs = self.strategy.param_specs()
        return {p: specs[p][0](self.columns[p][i].item()) for p in self.param_names}

    def _optional(self, column: str, i: int) -> float | None:
        v = float(self.columns[column][i])
        return None if math.isnan(v) else v

    def stop_loss(self, i: int) -> float | None:
        return self._optional("stop_loss", i)

    def rules(self, i: int) -> PositionRules:
        max_bars = self._optional("max_bars", i)
        return PositionRules(direction=str(self.columns["direction"][i]), size=float(self.columns["size"][i]),
                             stop_loss=self.stop_loss(i), take_profit=self._optional("take_profit", i),
                             trailing_stop=self._optional("trailing_stop", i),
                             max_bars=None if max_bars is None else int(max_bars),
                             leverage=float(self.columns["leverage"][i]))

    def instance(self, i: int) -> Strategy:
        """A strategy object without re-validation (the values were validated once)."""
        obj = self.strategy.__new__(self.strategy)
        obj.__dict__.update(self.params(i))
        return obj

    def strategy_id(self, i: int) -> str:
        """The strategy and its swept values under short names, file-safe: ``ma_crossover_short=25_long=70``
        (``engine.naming``; the label ``ma_crossover(short=25, long=70)`` uses the same names)."""
        parts = [self.strategy.name]
        for c, name in zip(self.swept, self._short):
            v = self.columns[c][i].item()
            if c == "max_bars" and not math.isnan(v):
                v = int(v)
            parts.append(f"{name}={value_text(v)}")
        return "_".join(parts)

    @cached_property
    def _short(self) -> list[str]:
        return short_names(self.swept)


@dataclass(frozen=True, eq=False)
class Grid:
    """Every combination of a config: its strategy sweeps in order, global indices across them."""

    sweeps: tuple[StrategySweep, ...]

    def __len__(self) -> int:
        return sum(len(s) for s in self.sweeps)

    def __iter__(self) -> Iterator[StrategySweep]:
        return iter(self.sweeps)

    @property
    def filtered(self) -> int:
        return sum(s.filtered for s in self.sweeps)

    def locate(self, g: int) -> tuple[StrategySweep, int]:
        """The sweep and local index of global combination ``g``."""
        for sw in self.sweeps:
            if g < len(sw):
                return sw, g
            g -= len(sw)
        raise IndexError(g)

    def combinations(self) -> Iterator[tuple[int, StrategySweep, int]]:
        """(global index, sweep, index within sweep) in the stable order."""
        g = 0
        for sw in self.sweeps:
            for i in range(len(sw)):
                yield g, sw, i
                g += 1


def build_grid(cfg) -> Grid:
    """Every combination of ``cfg`` (an ``engine.config.Config``): its strategies crossed with its position
    rules. Raises ConfigError for a value a strategy refuses or a grid whose combinations all break a constraint."""
    return expand_grid(cfg.strategies, cfg.rules)


def expand_grid(strategies: Sequence, rules: Mapping[str, Sequence[Any]]) -> Grid:
    """Expand ``strategies`` (config ``StrategyGrid``s) crossed with the position ``rules``
    (RULE_COLUMNS -> values; None means the rule is off)."""
    sweeps = []
    for grid in strategies:
        cls = get_strategy(grid.path or grid.name)
        specs = cls.param_specs()
        given = grid.as_dict()
        axes: dict[str, list[Any]] = {}
        for pname, (ptype, default) in specs.items():
            bound = cls.bounds.get(pname)
            axes[pname] = [coerce_param(cls.name, pname, ptype, v, bound) for v in given.get(pname, [default])]
        check_indicator_arguments(cls, axes)
        for column in RULE_COLUMNS:
            axes[column] = [math.nan if v is None else v for v in rules.get(column, (_DEFAULT_RULES[column],))]
        shape = [len(v) for v in axes.values()]
        total = math.prod(shape)
        idx = np.indices(shape).reshape(len(shape), total) if total else np.zeros((len(shape), 0), int)
        columns = {}
        for k, (pname, vals) in enumerate(axes.items()):
            columns[pname] = np.asarray(vals, dtype=_dtype(specs[pname][0] if pname in specs else pname))[idx[k]]
        mask = np.ones(total, dtype=bool)
        view = SimpleNamespace(**columns)
        for c in cls.constraints:
            try:
                ok = np.asarray(c.check(view), dtype=bool)
            except ValueError as exc:
                raise ConfigError(f"strategies.{cls.name}: constraint {c.description!r} must use array "
                                  f"operators (&, |) ({exc})") from exc
            except Exception as exc:  # the user's code: one line naming the strategy and the constraint
                raise ConfigError(f"strategies.{cls.name}: constraint {c.description!r} raised "
                                  f"{type(exc).__name__}: {exc}") from exc
            mask &= np.broadcast_to(ok, mask.shape)
        if not mask.any():
            broken = ", ".join(c.description for c in cls.constraints)
            raise ConfigError(f"strategies.{cls.name}: no valid combination; every one breaks {broken}")
        columns = {k: np.ascontiguousarray(v[mask]) for k, v in columns.items()}
        swept = tuple(k for k, v in axes.items() if len(v) > 1)
        sweeps.append(StrategySweep(cls, columns, swept, int(total - mask.sum())))
    return Grid(tuple(sweeps))


_DEFAULT_RULES = {f.name: f.default for f in fields(PositionRules)}


def _dtype(kind) -> type:
    if kind is int:
        return np.int64
    if kind is bool:
        return np.bool_
    if kind == "direction":
        return np.str_
    return np.float64
