"""Strategy base class: typed parameters, named indicators, one signal rule bound by name.

A strategy is written once and runs on both engines:

* typed class attributes are its parameters (``short_window: int = 10``);
* ``indicators`` maps a name to an indicator (``engine.indicators``: a built-in or a user
  definition), whose arguments are numbers or parameter names and whose inputs are prices,
  derived prices, other indicators or the names of other declared indicators
  (``{"rsi": RSI("rsi_period"), "fast": SMA("n"), "fast_prev": Lag("fast", 1)}``); each
  distinct indicator is computed once per sweep;
* ``signal`` is a numba ``@njit`` function whose argument *names* say what it
  reads: bar prices (``open high low close volume``), declared indicators,
  parameters (integers stay integers) and, for a rule that needs it, the
  position view (``position entry_price bars_held unrealised_return
  best_price``). It returns a bitwise OR of ``ENTER_LONG``, ``EXIT_LONG``,
  ``ENTER_SHORT``, ``EXIT_SHORT`` (``engine.signals``) and is called only once
  every indicator it reads is valid.

``binding()`` checks all of this when the strategy is loaded (``get_strategy``),
so a misspelt name is a one-line config error, never a failure mid-run.
"""

from __future__ import annotations

import difflib
import inspect
import math
import sys
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ..errors import ConfigError
from ..indicators import PRICES as INPUT_PRICES
from ..indicators import Indicator, derived_prices
from ..indicators.protocol import MAX_INT_ARGUMENT

PRICES = ("open", "high", "low", "close", "volume")
#: the position view: +1 long / -1 short / 0 flat, the entry fill, t - entry bar,
#: position*(close - entry_price)/entry_price, and the best price since the entry
#: (highest high of a long, lowest low of a short, the entry fill included)
POSITION_FIELDS = ("position", "entry_price", "bars_held", "unrealised_return", "best_price")


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


@dataclass(frozen=True)
class Binding:
    """How a rule's arguments are fed, checked once per strategy class."""

    rule: Any  # the numba dispatcher
    arguments: tuple[tuple[str, str], ...]  # (source, name) in signature order; source: price|indicator|param|position
    indicators: tuple[str, ...]  # the declared indicators the rule reads, in declaration order
    params: tuple[str, ...]  # the parameters the rule reads, in signature order

    @property
    def position_fields(self) -> frozenset[str]:
        return frozenset(n for s, n in self.arguments if s == "position")

    @property
    def stateful(self) -> bool:
        return bool(self.position_fields)


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Strategy:
    name: ClassVar[str] = ""
    signal: ClassVar[Any] = None
    indicators: ClassVar[dict[str, Indicator]] = {}
    bounds: ClassVar[dict[str, Bound]] = {}
    constraints: ClassVar[tuple[Constraint, ...]] = ()

    def __init__(self, **params: Any):
        specs = self.param_specs()
        unknown = sorted(set(params) - set(specs))
        if unknown:
            raise ConfigError(f"strategies.{self.name}.{unknown[0]}: unknown parameter"
                              f"{did_you_mean(unknown[0], specs)} (expected one of {', '.join(specs)})")
        for pname, (ptype, default) in specs.items():
            value = params.get(pname, default)
            setattr(self, pname, coerce_param(self.name, pname, ptype, value, self.bounds.get(pname)))

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
        reserved = {a for a in vars(Strategy) if not a.startswith("_")}
        for klass in reversed(cls.__mro__):
            for pname in getattr(klass, "__annotations__", {}):
                hint = hints.get(pname)
                if typing.get_origin(hint) is ClassVar or hint is ClassVar or pname.startswith("_"):
                    continue
                if klass is not Strategy and pname in reserved:
                    raise ConfigError(f"strategies.{cls.name or cls.__name__}: parameter {pname!r} is a reserved "
                                      f"attribute of Strategy ({', '.join(sorted(reserved))}); rename the parameter")
                specs[pname] = (hint, getattr(cls, pname))
        return specs

    @property
    def params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.param_specs()}

    def violated_constraint(self) -> Constraint | None:
        return next((c for c in self.constraints if not c.check(self)), None)

    def indicator_specs(self) -> dict[str, Indicator]:
        """This combination's concrete indicators, by declared name."""
        params = self.params
        return {k: spec.resolve(params, self.indicators) for k, spec in self.indicators.items()}

    @classmethod
    def indicator_parameters(cls, name: str) -> tuple[str, ...]:
        """The parameters declared indicator ``name`` reads, through the indicators it names too."""
        memo = cls.__dict__.get("_indicator_parameters")
        if memo is None:
            memo = {n: cls._parameters_of(n) for n in cls.indicators}
            cls._indicator_parameters = memo
        return memo[name]

    @classmethod
    def _parameters_of(cls, name: str) -> tuple[str, ...]:
        out: list[str] = []
        todo, seen = [name], set()
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            ind = cls.indicators[n]
            out += [p for p in ind.parameters if p not in out]
            todo += [r for r in ind.references() if r in cls.indicators]
        return tuple(out)

    @classmethod
    def resolve_indicator(cls, name: str, params: dict[str, Any]) -> Indicator:
        """Declared indicator ``name`` made concrete with parameter values ``params``."""
        specs = cls.param_specs()
        values = {p: specs[p][0](v) for p, v in params.items()}
        return cls.indicators[name].resolve(values, cls.indicators)

    @classmethod
    def binding(cls) -> Binding:
        """The rule's arguments matched to prices, indicators, parameters and the position view.

        Raises ConfigError (one line, with a suggestion) for a rule that is not ``@njit``,
        an argument that names nothing, a declared indicator the rule does not read, or an
        indicator argument that names no parameter of the right type.
        """
        cached = cls.__dict__.get("_binding")
        if cached is None:
            cached = cls._bind()
            cls._binding = cached
        return cached

    @classmethod
    def _bind(cls) -> Binding:
        where = f"strategies.{cls.name or cls.__name__}"
        rule = cls.signal
        py = getattr(rule, "py_func", None)
        if rule is None or py is None or not hasattr(rule, "compile"):
            raise ConfigError(f"{where}: `signal` must be a numba @njit function, got {rule!r}")
        if getattr(sys.modules.get(py.__module__), py.__qualname__, None) is not rule:
            raise ConfigError(f"{where}: rule {py.__qualname__} must be defined at the top level of its module "
                              "(the compiled kernel imports it by name)")
        specs = cls.param_specs()
        if not isinstance(cls.indicators, dict):
            raise ConfigError(f"{where}: `indicators` must be a dict of name -> indicator")
        derived = derived_prices()
        for iname, ind in cls.indicators.items():
            if not isinstance(ind, Indicator):
                raise ConfigError(f"{where}: indicator {iname!r} is {ind!r}, not an engine.indicators indicator")
            if iname in derived:
                raise ConfigError(f"{where}: indicator name {iname!r} is a derived price; rename the indicator")
            for definition, arg, spec, value in ind.arguments():
                if not isinstance(value, str):
                    continue
                if value not in specs:
                    raise ConfigError(f"{where}: indicator {iname!r} reads parameter {value!r}, which is not "
                                      f"declared{did_you_mean(value, specs)}")
                ptype = specs[value][0]
                if ptype is bool or (spec.type is int and ptype is not int) or ptype not in (int, float):
                    raise ConfigError(f"{where}: indicator {iname!r} needs an integer {arg} for "
                                      f"{definition.name}, but parameter {value!r} is "
                                      f"{getattr(ptype, '__name__', ptype)}")
            for ref in ind.references():
                if ref not in cls.indicators:
                    raise ConfigError(f"{where}: indicator {iname!r} reads {ref!r}, which is not a price "
                                      f"({', '.join(INPUT_PRICES)}), a derived price ({', '.join(derived)}) or "
                                      f"a declared indicator{did_you_mean(ref, [*cls.indicators, *derived])}")
        def visit(name: str, path: tuple[str, ...]) -> None:
            for ref in cls.indicators[name].references():
                if ref in path:
                    raise ConfigError(f"{where}: indicator {ref!r} reads itself through {' -> '.join(path + (ref,))}")
                visit(ref, path + (ref,))
        for iname in cls.indicators:
            visit(iname, (iname,))
        sources: dict[str, str] = {}
        labels = {"price": "a price", "position": "a position field", "indicator": "an indicator",
                  "param": "a parameter"}
        for source, names in (("price", PRICES), ("position", POSITION_FIELDS), ("indicator", cls.indicators),
                              ("param", specs)):
            for n in names:
                if n in sources:
                    raise ConfigError(f"{where}: {n!r} is both {labels[sources[n]]} and {labels[source]}; "
                                      "rename one")
                sources[n] = source
        try:
            sig = inspect.signature(py)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: cannot read the signature of rule {py.__name__} ({exc})") from None
        arguments = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY) or p.default is not p.empty:
                raise ConfigError(f"{where}: rule {py.__name__} argument {p.name!r} must be a plain positional "
                                  "argument without a default")
            if p.name not in sources:
                raise ConfigError(f"{where}: rule {py.__name__} reads {p.name!r}, which is not a price, "
                                  f"indicator, parameter or position field{did_you_mean(p.name, sources)}")
            arguments.append((sources[p.name], p.name))
            if sources[p.name] == "param" and specs[p.name][0] not in (int, float, bool):
                raise ConfigError(f"{where}: rule {py.__name__} reads parameter {p.name!r} of type "
                                  f"{getattr(specs[p.name][0], '__name__', specs[p.name][0])}; a rule takes "
                                  "int, float or bool parameters")
        read = {n for _, n in arguments}
        used = read | {r for ind in cls.indicators.values() for r in ind.references()}
        unread = [n for n in cls.indicators if n not in used]
        if unread:
            raise ConfigError(f"{where}: indicator {unread[0]!r} is declared but rule {py.__name__} does not "
                              "read it (nor does another indicator); add it to the rule's arguments or remove it")
        return Binding(rule, tuple(arguments), tuple(n for n in cls.indicators if n in read),
                       tuple(n for s, n in arguments if s == "param"))


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
            hint = " (write true or false: yes/no/on/off are not booleans here)" if isinstance(value, str) \
                and value.strip().lower() in ("yes", "no", "on", "off", "y", "n") else ""
            raise ConfigError(f"{key}: expected true or false, got {value!r}{hint}")
    if bound is not None and not bound.allows(value):
        raise ConfigError(f"{key}: {value!r} is out of range; expected {bound}")
    return value


def check_indicator_arguments(cls: type[Strategy], axes: dict[str, list[Any]]) -> None:
    """A parameter used as an indicator's argument must respect its lower bound (a period is at
    least 1, a band's multiplier at least 0), for every value the grid gives it."""
    for iname, ind in cls.indicators.items():
        for definition, arg, spec, value in ind.arguments():
            if not isinstance(value, str):
                continue
            if spec.type is int:
                big = [v for v in axes[value] if v > MAX_INT_ARGUMENT]
                if big:
                    raise ConfigError(f"strategies.{cls.name}.{value}: {big[0]!r} is out of range; indicator "
                                      f"{iname!r} takes {definition.name} {arg} <= {MAX_INT_ARGUMENT:,}")
            if spec.low is None:
                continue
            bad = [v for v in axes[value] if v < spec.low]
            if bad:
                raise ConfigError(f"strategies.{cls.name}.{value}: {bad[0]!r} is out of range; indicator {iname!r} "
                                  f"needs {definition.name} {arg} >= {spec.low:g}")
