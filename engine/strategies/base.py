"""Strategy base class: typed parameters, declared constraints, one signal rule.

A strategy is written once and runs on both engines:

* ``indicators()`` names the indicators it reads (at most four), built from
  ``engine.indicators``; each distinct one is computed once per sweep.
* ``signal`` is a numba ``@njit`` scalar function
  ``(open, high, low, close, v0, v1, v2, v3, p0, p1, p2, p3) -> int`` of the bar's
  prices, its indicator values (in ``indicators()`` order) and the parameters
  named in ``signal_params`` (in order). It returns ``ENTRY`` (1), ``EXIT`` (2),
  both, or 0. It is only called once every indicator is valid.
* The engines gate it: ENTRY acts only while flat, EXIT only while long.

A strategy that needs position state (bars held, entry price…) overrides
``on_candle`` instead and sets no ``signal``: it then runs on the reference
engine only, and ``backtest run`` says so and falls back.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, ClassVar

from ..errors import ConfigError
from ..indicators import Indicator, incremental

ENTRY = 1
EXIT = 2


class Action(IntEnum):
    HOLD = 0
    BUY = 1
    SELL = 2


@dataclass(frozen=True)
class Constraint:
    """A rule a parameter combination must satisfy; combinations breaking it are filtered out."""

    description: str
    check: Callable[[Any], bool]


@dataclass(frozen=True)
class Bound:
    """Allowed range of a parameter; a value outside it is a config error."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True

    def allows(self, v: float) -> bool:
        if self.low is not None and (v < self.low or (v == self.low and not self.low_inclusive)):
            return False
        return self.high is None or v <= self.high

    def __str__(self) -> str:
        lo = "" if self.low is None else f"{'>=' if self.low_inclusive else '>'} {self.low}"
        hi = "" if self.high is None else f"<= {self.high}"
        return " and ".join(x for x in (lo, hi) if x)


class Strategy:
    name: ClassVar[str] = ""
    signal: ClassVar[Any] = None
    signal_params: ClassVar[tuple[str, ...]] = ()
    bounds: ClassVar[dict[str, Bound]] = {}
    constraints: ClassVar[tuple[Constraint, ...]] = ()

    def __init__(self, **params: Any):
        specs = self.param_specs()
        unknown = sorted(set(params) - set(specs))
        if unknown:
            raise ConfigError(f"strategies.{self.name}: unknown parameter(s) {', '.join(unknown)}; "
                              f"expected {', '.join(specs)}")
        for pname, (ptype, default) in specs.items():
            value = params.get(pname, default)
            setattr(self, pname, coerce_param(self.name, pname, ptype, value, self.bounds.get(pname)))
        self._states: list = []

    @classmethod
    def param_specs(cls) -> dict[str, tuple[type, Any]]:
        """Declared parameters: typed class attributes, in declaration order."""
        cached = cls.__dict__.get("_param_specs")
        if cached is None:
            cached = cls._collect_param_specs()
            cls._param_specs = cached
        return cached

    @classmethod
    def _collect_param_specs(cls) -> dict[str, tuple[type, Any]]:
        hints = typing.get_type_hints(cls)
        specs: dict[str, tuple[type, Any]] = {}
        for klass in reversed(cls.__mro__):
            for pname in getattr(klass, "__annotations__", {}):
                hint = hints.get(pname)
                if typing.get_origin(hint) is ClassVar or hint is ClassVar or pname.startswith("_"):
                    continue
                specs[pname] = (hint, getattr(cls, pname))
        return specs

    @property
    def params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.param_specs()}

    def violated_constraint(self) -> Constraint | None:
        return next((c for c in self.constraints if not c.check(self)), None)

    @classmethod
    def fast_path(cls) -> bool:
        return cls.signal is not None

    def indicators(self) -> tuple[Indicator, ...]:
        return ()

    def signal_param_values(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, p)) for p in self.signal_params)

    # --- reference engine -------------------------------------------------
    def reset(self) -> None:
        self._states = [incremental(s) for s in self.indicators()]
        values = self.signal_param_values()
        self._params = values + (0.0,) * (4 - len(values))
        self._rule = self.signal.py_func if hasattr(self.signal, "py_func") else self.signal

    def on_candle(self, candle, in_position: bool) -> Action:
        """Decide at the close of ``candle`` (no lookahead): BUY, SELL or HOLD."""
        vals = [st.update(candle.open, candle.high, candle.low, candle.close) for st in self._states]
        if any(math.isnan(v) for v in vals):
            return Action.HOLD
        vals += [0.0] * (4 - len(vals))
        code = self._rule(candle.open, candle.high, candle.low, candle.close, *vals, *self._params)
        if not in_position and code & ENTRY:
            return Action.BUY
        if in_position and code & EXIT:
            return Action.SELL
        return Action.HOLD


def coerce_param(strategy: str, pname: str, ptype: type, value: Any, bound: Bound | None) -> Any:
    key = f"strategies.{strategy}.{pname}"
    if ptype is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        value = int(value)
    elif ptype is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif ptype is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if bound is not None and not bound.allows(value):
        raise ConfigError(f"{key}: {value!r} is out of range; expected {bound}")
    return value
