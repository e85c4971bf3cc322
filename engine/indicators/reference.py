"""Indicators on the reference engine: each definition's step, as plain Python, candle by candle.

A step's ``@njit`` helpers are swapped for their Python functions too (:func:`pure`), so the
whole step runs as the readable Python it is written in, on Python floats. The fast path
compiles the same code, so both do the same floating-point operations in the same order.

Inputs reach a step as lists that grow by one value per bar, indexed by the indicator's own
bar: ``x[t]`` is the newest value, reading ahead (``x[t + 1]``) raises IndexError, and a value
further back than ``lookback`` is an :class:`Expired` that raises when used.
"""

from __future__ import annotations

import math
import types
from typing import Sequence

from .protocol import PRICES, Indicator

_PURE: dict[types.FunctionType, types.FunctionType] = {}


class _Module:
    """A module seen by a pure function: its @njit attributes are pure functions too."""

    def __init__(self, module: types.ModuleType):
        self._module = module

    def __getattr__(self, name):
        value = getattr(self._module, name)
        return pure(value) if hasattr(value, "py_func") else value


def pure(fn):
    """The Python function of ``fn`` (an @njit dispatcher or a function) with every @njit function
    it reaches through its globals replaced by a pure one, recursively."""
    py = getattr(fn, "py_func", fn)
    if not isinstance(py, types.FunctionType):
        return py
    done = _PURE.get(py)
    if done is not None:
        return done
    scope = dict(py.__globals__)
    clone = types.FunctionType(py.__code__, scope, py.__name__, py.__defaults__, py.__closure__)
    clone.__qualname__, clone.__module__ = py.__qualname__, py.__module__
    _PURE[py] = clone
    for name, value in list(scope.items()):
        if hasattr(value, "py_func"):
            scope[name] = pure(value)
        elif isinstance(value, types.ModuleType) and name in _names(py.__code__):
            scope[name] = _Module(value)
    return clone


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


class Expired:
    """What an input holds for a bar further back than the step's ``lookback``: any use of it
    raises, because the fast path keeps only ``lookback`` earlier values between time chunks."""

    __slots__ = ("owner", "k")

    def __init__(self, owner: Indicator, k: int):
        self.owner, self.k = owner, k

    def _refuse(self, *_):
        raise IndexError(f"indicator {self.owner.definition.name} read an input more than its lookback of "
                         f"{self.owner.lookback} bars back; declare a larger lookback")

    __float__ = __int__ = __index__ = __bool__ = __neg__ = __abs__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = __ne__ = __pow__ = __rpow__ = __mod__ = _refuse
    __hash__ = None


class State(list):
    """A step's state: float slots, as the fast path's float64 array holds them."""

    def __setitem__(self, i, value):
        super().__setitem__(i, float(value))


class _Node:
    __slots__ = ("spec", "step", "state", "start", "valid", "inputs", "feeds", "args", "value", "lookback",
                 "expired")

    def __init__(self, spec: Indicator):
        self.spec = spec
        self.step = pure(spec.definition.step)
        self.state = State([0.0] * spec.state_size)
        self.start, self.valid, self.args, self.lookback = spec.start, spec.valid_from, spec.args, spec.lookback
        # each input as the step sees it: a list growing by one value a bar, indexed by the step's own t
        self.inputs: list[list] = [[] for _ in spec.inputs]
        self.feeds: list = list(spec.inputs)  # the input sources (linked by Feed)
        self.expired = Expired(spec, self.lookback)
        self.value = math.nan


class Feed:
    """Every indicator ``specs`` reads, updated candle by candle; each distinct indicator once."""

    def __init__(self, specs: Sequence[Indicator]):
        specs = [spec.resolve() for spec in specs]  # derived prices become indicators
        order: list[Indicator] = []
        for spec in specs:
            order += [n for n in spec.nodes() if n not in order]
        nodes = {spec: _Node(spec) for spec in order}
        for node in nodes.values():
            # (the step's list, the price's index or -1, the input indicator or None)
            node.feeds = [(series, PRICES.index(s), None) if isinstance(s, str) else (series, -1, nodes[s])
                          for series, s in zip(node.inputs, node.feeds)]
        self.nodes = list(nodes.values())
        self._out = [nodes[s] for s in specs]
        self.t = 0

    def update(self, o: float, h: float, lo: float, c: float, v: float = math.nan) -> list[float]:
        """Advance by one candle; the values of ``specs`` at its close (NaN before valid)."""
        t = self.t
        prices = (o, h, lo, c, v)
        for node in self.nodes:
            start = node.start
            if t < start:
                continue  # value stays NaN
            own = t - start
            gone = own - node.lookback - 1  # the value that just left the step's reach
            for series, price, source in node.feeds:
                series.append(prices[price] if source is None else source.value)
                if gone >= 0:
                    series[gone] = node.expired
            x = node.step(node.state, own, *node.inputs, *node.args)
            node.value = float(x) if t >= node.valid else math.nan
        self.t = t + 1
        return [node.value for node in self._out]


def series(spec: Indicator, o, h, lo, c, v=None) -> list[float]:
    """``spec`` over whole price series, candle by candle (tests, notebooks)."""
    feed = Feed([spec])
    v = [math.nan] * len(c) if v is None else v
    return [feed.update(*bar)[0] for bar in zip(o, h, lo, c, v)]
