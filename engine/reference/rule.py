"""Feeds a strategy's rule on the reference engine: indicators updated candle by candle, arguments by name."""

from __future__ import annotations

import math

import numpy as np
from typing import NamedTuple

from ..errors import StrategyError
from ..indicators import Feed
from ..strategies import PRICES, Strategy
from ..timeutil import format_time


class PositionView(NamedTuple):
    """What a stateful rule sees at a bar's close (docs/semantics.md, "Position view")."""

    position: int  # +1 long, -1 short, 0 flat
    entry_price: float  # the entry fill; NaN while flat
    bars_held: int  # t - entry bar; 0 while flat
    unrealised_return: float  # position*(close - entry_price)/entry_price; NaN while flat
    best_price: float  # highest high (long) / lowest low (short) since the entry, the fill included; NaN while flat


FLAT = PositionView(0, math.nan, 0, math.nan, math.nan)


class RuleRunner:
    def __init__(self, strategy: Strategy):
        binding = type(strategy).binding()
        self.rule = binding.rule.py_func  # plain Python: a division by zero raises here
        specs = strategy.indicator_specs()
        read = [specs[name] for name in binding.indicators]
        self.feed = Feed(read)
        self.start = max((s.valid_from for s in read), default=0)
        params = [getattr(strategy, p) for p in binding.params]
        # every bar's values in one list: prices, indicators, parameters, the position view
        slots = {name: k for k, name in enumerate(PRICES)}
        slots.update({name: len(PRICES) + k for k, name in enumerate(binding.indicators)})
        base = len(slots)
        slots.update({name: base + k for k, name in enumerate(binding.params)})
        base = len(slots)
        slots.update({name: base + k for k, name in enumerate(PositionView._fields)})
        self.index = [slots[name] for _, name in binding.arguments]
        self.params = params
        self.name = type(strategy).name

    def step(self, candle, view: PositionView) -> int:
        """Advance the indicators by ``candle`` and return the rule's code at its close (0 before they are valid)."""
        o, h, lo, c, v = candle.open, candle.high, candle.low, candle.close, candle.volume
        values = self.feed.update(o, h, lo, c, v)
        if candle.index < self.start:
            return 0
        bar = [o, h, lo, c, v, *values, *self.params, *view]
        try:
            code = self.rule(*[bar[i] for i in self.index])
        except Exception as exc:  # the user's code: one line naming the strategy, the error and the bar
            raise StrategyError(f"strategy {self.name} raised {type(exc).__name__}: {exc} at bar {candle.index} "
                                f"({format_time(candle.open_time)})") from exc
        if isinstance(code, (bool, np.bool_)) or not isinstance(code, (int, np.integer)):
            raise StrategyError(f"strategy {self.name}: its rule returned {type(code).__name__} {code!r} at bar "
                                f"{candle.index}; a rule returns an integer, a bitwise OR of ENTER_LONG, EXIT_LONG, "
                                "ENTER_SHORT and EXIT_SHORT")
        return int(code)
