"""Indicator specifications and their readable, incremental reference form.

The compiled fast path (``engine.fast.indicators``) computes the same values
with the same floating-point operations in the same order, so both engines see
bit-identical indicators and therefore take identical decisions, ties included.

Each indicator is NaN until it is valid:

==========  ======================================================  ===========
kind        definition                                              valid from
==========  ======================================================  ===========
sma(n)      running sum of the last n closes, divided by n          bar n-1
ema(n)      alpha = 2/(n+1), seeded with the first close            bar n-1
rsi(n)      Wilder: simple mean of the first n changes, then        bar n
            avg = (avg*(n-1) + x)/n; 100 - 100/(1 + gain/loss)
highest(n)  max(high) over the n bars before this one               bar n
lowest(n)   min(low) over the n bars before this one                bar n
==========  ======================================================  ===========
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

KINDS = ("sma", "ema", "rsi", "highest", "lowest")


@dataclass(frozen=True, order=True)
class Indicator:
    kind: str
    period: int

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown indicator kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.period < 1:
            raise ValueError(f"{self.kind} period must be at least 1, got {self.period}")

    @property
    def code(self) -> int:
        return KINDS.index(self.kind)

    @property
    def valid_from(self) -> int:
        """First bar index at which the value is defined."""
        return self.period - 1 if self.kind in ("sma", "ema") else self.period

    def __str__(self) -> str:
        return f"{self.kind}({self.period})"


def SMA(n: int) -> Indicator:  # noqa: N802 - reads like the indicator's name
    return Indicator("sma", int(n))


def EMA(n: int) -> Indicator:  # noqa: N802
    return Indicator("ema", int(n))


def RSI(n: int) -> Indicator:  # noqa: N802
    return Indicator("rsi", int(n))


def Highest(n: int) -> Indicator:  # noqa: N802
    return Indicator("highest", int(n))


def Lowest(n: int) -> Indicator:  # noqa: N802
    return Indicator("lowest", int(n))


class _Sma:
    def __init__(self, n: int):
        self.n, self.window, self.total = n, deque(), 0.0

    def update(self, o, h, lo, c) -> float:
        self.total += c
        self.window.append(c)
        if len(self.window) > self.n:
            self.total -= self.window.popleft()
        return self.total / self.n if len(self.window) == self.n else math.nan


class _Ema:
    def __init__(self, n: int):
        self.n, self.alpha, self.value, self.count = n, 2.0 / (n + 1.0), math.nan, 0

    def update(self, o, h, lo, c) -> float:
        if self.count == 0:
            self.value = c
        else:
            self.value = self.alpha * c + (1.0 - self.alpha) * self.value
        self.count += 1
        return self.value if self.count >= self.n else math.nan


class _Rsi:
    def __init__(self, n: int):
        self.n, self.prev, self.count = n, math.nan, 0
        self.gain = self.loss = 0.0

    def update(self, o, h, lo, c) -> float:
        n = self.n
        if self.count > 0:
            change = c - self.prev
            g = change if change > 0.0 else 0.0
            ls = -change if change < 0.0 else 0.0
            if self.count < n:
                self.gain += g
                self.loss += ls
            elif self.count == n:
                self.gain = (self.gain + g) / n
                self.loss = (self.loss + ls) / n
            else:
                self.gain = (self.gain * (n - 1) + g) / n
                self.loss = (self.loss * (n - 1) + ls) / n
        self.prev = c
        self.count += 1
        if self.count <= n:
            return math.nan
        return rsi_value(self.gain, self.loss)


def rsi_value(gain: float, loss: float) -> float:
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


class _Extreme:
    def __init__(self, n: int, use_high: bool):
        self.n, self.use_high, self.window = n, use_high, deque()

    def update(self, o, h, lo, c) -> float:
        value = math.nan
        if len(self.window) == self.n:
            value = max(self.window) if self.use_high else min(self.window)
            self.window.popleft()
        self.window.append(h if self.use_high else lo)
        return value


def incremental(spec: Indicator):
    """A fresh per-candle calculator for ``spec`` with an ``update(o, h, l, c)`` method."""
    if spec.kind == "sma":
        return _Sma(spec.period)
    if spec.kind == "ema":
        return _Ema(spec.period)
    if spec.kind == "rsi":
        return _Rsi(spec.period)
    return _Extreme(spec.period, spec.kind == "highest")
