"""The indicator protocol: one definition per indicator, run by both engines.

A definition is an ``@njit`` *step function* and what the engines must know about it::

    step(state, t, *inputs, *params) -> float

* ``state`` is a float64 array of ``state`` slots, all 0.0 before the first step, carried
  from bar to bar (the step reads and writes it);
* ``t`` is the indicator's own bar index: 0 on the first bar on which every input has a value;
* each input is the input series as this indicator sees it: ``x[t]`` is this bar's value and
  ``x[t - k]`` the value k bars earlier, for k up to ``lookback`` and only once ``t >= k``;
* the parameters follow, integers as ``int`` and the rest as ``float``, in declared order.

``valid`` is the first own bar with a value (the indicator is NaN before it); ``state``,
``valid`` and ``lookback`` are numbers or functions of the parameters. The reference engine
calls the step's Python function candle by candle; the fast path compiles one chunk loop per
definition with the step inlined. Both therefore do the same floating-point operations in the
same order, and see bit-identical values.

Inputs are named: a raw price (``open high low close volume``), a derived price (``typical``,
``hl2``, ``ohlc4``: definitions themselves), another indicator, or, inside a strategy, the name
of one of its declared indicators. An indicator's clock starts on the first bar on which all its
inputs are valid, so ``EMA(10, input=RSI(14))`` is seeded with the RSI's first value.

Arguments may be numbers or the names of strategy parameters (a *template*);
:meth:`Indicator.resolve` turns a template into a concrete indicator for one combination.
"""

from __future__ import annotations

import difflib
import inspect
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Union

#: the raw price series every input may name
PRICES = ("open", "high", "low", "close", "volume")


#: The largest integer argument an indicator takes (a period, a lag): beyond it the fast path's
#: state and warm-up arithmetic leave the kernels' range; 10^8 bars is 190 years of 1-minute candles.
MAX_INT_ARGUMENT = 100_000_000


class Param(NamedTuple):
    """A definition's parameter: ``int`` or ``float``, with an inclusive lower bound (and, for an
    ``int``, at most :data:`MAX_INT_ARGUMENT`)."""

    type: type
    low: float | None = None


Count = Union[int, Callable[..., int]]


@dataclass(frozen=True, eq=False)
class Definition:
    """One indicator: its step function and what both engines must know about it. Calling a
    definition (``SMA(20)``, ``EMA(input="typical", period="n")``) makes an :class:`Indicator`."""

    name: str
    step: Any  # the @njit dispatcher (numba's, or engine.indicators.jit's for the built-ins)
    inputs: tuple[tuple[str, str | None], ...]  # (slot name, default source or None)
    params: tuple[tuple[str, Param], ...]
    state: Count = 0
    valid: Count = 0
    lookback: Count = 0
    order: tuple[str, ...] = ()  # positional argument order (default: params, then inputs)
    doc: str = field(default="", compare=False)

    def __post_init__(self):
        if not self.order:
            object.__setattr__(self, "order", tuple(n for n, _ in self.params) + tuple(n for n, _ in self.inputs))

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.params)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.inputs)

    def count(self, what: str, args: tuple) -> int:
        """``state``, ``valid`` or ``lookback`` for concrete ``args``."""
        value = getattr(self, what)
        n = value(*args) if callable(value) else value
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"indicator {self.name}: {what} must be a whole number >= 0, got {n!r} for {args}")
        return n

    def __call__(self, *args, **kwargs) -> "Indicator":
        names = self.order
        if len(args) > len(names):
            raise ValueError(f"{self.name} takes at most {len(names)} positional argument(s) ({', '.join(names)}), "
                             f"got {len(args)}")
        given = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                raise ValueError(f"{self.name} has no argument {key!r}{_suggest(key, names)} "
                                 f"(its arguments: {', '.join(names)})")
            if key in given:
                raise ValueError(f"{self.name} got {key!r} twice")
            given[key] = value
        params = []
        for pname, spec in self.params:
            if pname not in given:
                raise ValueError(f"{self.name} needs its {pname!r} argument")
            params.append(_check_arg(self.name, pname, spec, given[pname]))
        inputs = []
        for iname, default in self.inputs:
            source = given.get(iname, default)
            if source is None:
                raise ValueError(f"{self.name} needs its {iname!r} input")
            if not isinstance(source, (str, Indicator)):
                raise ValueError(f"{self.name} {iname}: an input is a price name, a derived price, an indicator or "
                                 f"the name of a declared indicator, got {source!r}")
            inputs.append(source)
        return Indicator(self, tuple(inputs), tuple(params))

    def __repr__(self) -> str:
        return f"<indicator definition {self.name}>"


def _suggest(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_arg(kind: str, name: str, spec: Param, value):
    """A number (checked and coerced) or a parameter name (kept, checked when bound)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{kind} {name} must be a number or a parameter name, got {value!r}")
    if spec.type is int:
        if value != int(value):
            raise ValueError(f"{kind} {name} must be an integer, got {value!r}")
        value = int(value)
        if value > MAX_INT_ARGUMENT:
            raise ValueError(f"{kind} {name} must be at most {MAX_INT_ARGUMENT:,}, got {value!r}")
    else:
        value = float(value)
    if spec.low is not None and value < spec.low:
        raise ValueError(f"{kind} {name} must be >= {spec.low:g}, got {value!r}")
    return value


@dataclass(frozen=True)
class Indicator:
    """An indicator in use: a definition, its input sources and its arguments. Concrete when
    every argument is a number and every input a raw price or a concrete indicator."""

    definition: Definition
    inputs: tuple  # str (price, derived price or declared indicator name) or Indicator
    args: tuple  # numbers, or parameter names in a template

    @property
    def kind(self) -> str:
        return self.definition.name

    @property
    def template(self) -> bool:
        """Reads a strategy parameter or a declared indicator by name (directly or in an input)."""
        return bool(self.parameters) or any(
            (isinstance(s, str) and s not in PRICES) or (isinstance(s, Indicator) and s.template)
            for s in self.inputs)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The strategy parameters this indicator reads, its inputs' included."""
        out: list[str] = []
        for s in self.inputs:
            if isinstance(s, Indicator):
                out += s.parameters
        out += [a for a in self.args if isinstance(a, str)]
        return tuple(dict.fromkeys(out))

    def arguments(self):
        """(definition, argument name, Param, value) of this indicator and of its inputs, recursively."""
        for (name, spec), value in zip(self.definition.params, self.args):
            yield self.definition, name, spec, value
        for s in self.inputs:
            if isinstance(s, Indicator):
                yield from s.arguments()

    def references(self) -> tuple[str, ...]:
        """Input names that are neither prices nor derived prices: declared indicators, resolved by name."""
        out = []
        for s in self.inputs:
            if isinstance(s, Indicator):
                out += s.references()
            elif s not in PRICES and s not in derived_prices():
                out.append(s)
        return tuple(out)

    def resolve(self, params: Mapping[str, Any] | None = None,
                named: Mapping[str, "Indicator"] | None = None) -> "Indicator":
        """The concrete indicator: parameter names replaced by ``params`` values, derived prices and
        declared-indicator names (``named``, themselves resolved by this call) replaced by indicators."""
        return self._resolve(params or {}, named or {}, ())

    def _resolve(self, params, named, path) -> "Indicator":
        args = tuple(_check_arg(self.kind, n, spec, params[a]) if isinstance(a, str) else a
                     for (n, spec), a in zip(self.definition.params, self.args))
        inputs = []
        for s in self.inputs:
            if isinstance(s, Indicator):
                inputs.append(s._resolve(params, named, path))
            elif s in PRICES:
                inputs.append(s)
            elif s in derived_prices():
                inputs.append(derived_prices()[s])
            elif s in named:
                if s in path:
                    raise ValueError(f"indicator {s!r} reads itself through {' -> '.join(path + (s,))}")
                inputs.append(named[s]._resolve(params, named, path + (s,)))
            else:
                raise ValueError(f"{self.kind}: input {s!r} is not a price ({', '.join(PRICES)}), a derived "
                                 f"price ({', '.join(derived_prices())}) or a declared indicator"
                                 f"{_suggest(s, [*PRICES, *derived_prices(), *named])}")
        return Indicator(self.definition, tuple(inputs), args)

    # --- concrete indicators only ---------------------------------------------------------------

    @property
    def start(self) -> int:
        """First bar on which every input has a value: the indicator's own bar 0."""
        return max((s.valid_from for s in self.inputs if isinstance(s, Indicator)), default=0)

    @property
    def valid_from(self) -> int:
        """First bar index with a value."""
        return self.start + self.definition.count("valid", self.args)

    @property
    def lookback(self) -> int:
        return self.definition.count("lookback", self.args)

    @property
    def state_size(self) -> int:
        return self.definition.count("state", self.args)

    @property
    def period(self) -> int:
        return int(self.args[0])

    def nodes(self) -> list["Indicator"]:
        """This indicator and every indicator it reads, inputs first (a topological order)."""
        out: list[Indicator] = []
        for s in self.inputs:
            if isinstance(s, Indicator):
                out += [x for x in s.nodes() if x not in out]
        return out + [self]

    def __str__(self) -> str:
        parts = [str(a) for a in self.args]
        for (name, default), s in zip(self.definition.inputs, self.inputs):
            if s != default:
                parts.append(f"{name}={s}")
        return f"{self.kind}({', '.join(parts)})"


def indicator(name: str, step, *, inputs: Mapping[str, str | None], params: Mapping[str, Param | type],
              state: Count = 0, valid: Count = 0, lookback: Count = 0, order: tuple[str, ...] = ()) -> Definition:
    """Define an indicator (see the module docstring). ``inputs`` maps each input's name to its
    default source (None: required); ``params`` maps each parameter to ``int`` (a period, >= 1),
    ``float`` or a :class:`Param`. The step's signature must be ``(state, t, *inputs, *params)``.

    Raises ValueError for a step that is not ``@njit``, is not at the top level of its module
    (the fast path imports it by name), or whose arguments do not match."""
    specs = tuple((p, s if isinstance(s, Param) else Param(s, 1 if s is int else None)) for p, s in params.items())
    for p, s in specs:
        if s.type not in (int, float):
            raise ValueError(f"indicator {name}: parameter {p!r} must be int or float, got {s.type!r}")
    py = getattr(step, "py_func", None)
    if py is None or not hasattr(step, "compile"):
        raise ValueError(f"indicator {name}: the step must be a numba @njit function, got {step!r}")
    if getattr(sys.modules.get(py.__module__), py.__qualname__, None) is not step:
        raise ValueError(f"indicator {name}: step {py.__qualname__} must be defined at the top level of its module "
                         "(the compiled fast path imports it by name)")
    want = ["state", "t", *inputs, *(p for p, _ in specs)]
    got = list(inspect.signature(py).parameters)
    if len(got) != len(want):
        raise ValueError(f"indicator {name}: step {py.__name__}({', '.join(got)}) must take (state, t, then the "
                         f"inputs {', '.join(inputs) or '(none)'}, then the parameters "
                         f"{', '.join(p for p, _ in specs) or '(none)'})")
    return Definition(name, step, tuple(inputs.items()), specs, state, valid, lookback, tuple(order))


_DERIVED: dict[str, Indicator] = {}


def derived_prices() -> dict[str, Indicator]:
    """Derived price names (``typical``...) to their indicators; ``engine.indicators.builtin`` fills it."""
    return _DERIVED


def register_derived(name: str, node: Indicator) -> None:
    if name in PRICES:
        raise ValueError(f"{name!r} is a raw price")
    _DERIVED[name] = node
