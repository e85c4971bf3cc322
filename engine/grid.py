"""Job builder: a config's strategy grids expanded into combinations, in a stable order.

The grid is expanded once, when the config is parsed (``Config.grid``), and carried
from there through the sweep, the workers and the report.

Order: strategies as in the config; within one, the Cartesian product of the
declared parameters (declaration order, values as given, last parameter
fastest) and then ``risk.stop_loss``. Combinations that break a declared
constraint are filtered out. Constraints are evaluated once, on NumPy columns
holding every combination, so they must use operators (``<``, ``&``, ``|``), not
``and``/``or``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import ConfigError
from .strategies import Strategy, get_strategy
from .strategies.base import coerce_param


@dataclass(frozen=True, eq=False)
class StrategySweep:
    strategy: type[Strategy]
    columns: dict[str, np.ndarray]  # every parameter, plus "stop_loss" (NaN = no stop)
    swept: tuple[str, ...]  # the columns with more than one value
    filtered: int

    def __len__(self) -> int:
        return len(self.columns["stop_loss"])

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c != "stop_loss")

    def params(self, i: int) -> dict[str, Any]:
        specs = self.strategy.param_specs()
        return {p: specs[p][0](self.columns[p][i].item()) for p in self.param_names}

    def stop_loss(self, i: int) -> float | None:
        v = float(self.columns["stop_loss"][i])
        return None if math.isnan(v) else v

    def instance(self, i: int) -> Strategy:
        """A strategy object without re-validation (the values were validated once)."""
        obj = self.strategy.__new__(self.strategy)
        obj.__dict__.update(self.params(i))
        return obj

    def strategy_id(self, i: int) -> str:
        parts = [self.strategy.name]
        for c in self.swept:
            v = self.columns[c][i].item()
            parts.append(f"{c}={'none' if isinstance(v, float) and math.isnan(v) else v}")
        return "_".join(parts)


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


def expand_grid(strategies: Sequence, stop_loss: Sequence[float | None]) -> Grid:
    """Expand ``strategies`` (config ``StrategyGrid``s) crossed with the stop-loss values."""
    sweeps = []
    for grid in strategies:
        cls = get_strategy(grid.name)
        specs = cls.param_specs()
        given = grid.as_dict()
        axes: dict[str, list[Any]] = {}
        for pname, (ptype, default) in specs.items():
            bound = cls.bounds.get(pname)
            axes[pname] = [coerce_param(cls.name, pname, ptype, v, bound) for v in given.get(pname, [default])]
        axes["stop_loss"] = [math.nan if s is None else s for s in stop_loss]
        shape = [len(v) for v in axes.values()]
        total = math.prod(shape)
        idx = np.indices(shape).reshape(len(shape), total) if total else np.zeros((len(shape), 0), int)
        columns = {}
        for k, (pname, vals) in enumerate(axes.items()):
            dtype = np.int64 if pname != "stop_loss" and specs[pname][0] is int else np.float64
            columns[pname] = np.asarray(vals, dtype=dtype)[idx[k]]
        mask = np.ones(total, dtype=bool)
        view = SimpleNamespace(**columns)
        for c in cls.constraints:
            try:
                ok = np.asarray(c.check(view), dtype=bool)
            except ValueError as exc:
                raise ConfigError(f"strategies.{cls.name}: constraint {c.description!r} must use array "
                                  f"operators (&, |) ({exc})") from None
            mask &= np.broadcast_to(ok, mask.shape)
        if not mask.any():
            broken = ", ".join(c.description for c in cls.constraints)
            raise ConfigError(f"strategies.{cls.name}: no valid combination; every one breaks {broken}")
        columns = {k: np.ascontiguousarray(v[mask]) for k, v in columns.items()}
        swept = tuple(k for k, v in axes.items() if len(v) > 1)
        sweeps.append(StrategySweep(cls, columns, swept, int(total - mask.sum())))
    return Grid(tuple(sweeps))
