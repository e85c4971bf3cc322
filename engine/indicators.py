"""Indicator specifications and their readable, incremental reference form.

The compiled fast path (``engine.fast.indicators``) computes the same values
with the same floating-point operations in the same order, so both engines see
bit-identical indicators and therefore take identical decisions, ties included.

Each indicator is NaN until it is valid:

================  ==========================================================  ===============
kind              definition                                                  valid from
================  ==========================================================  ===============
sma(n)            running sum of the last n closes, divided by n              bar n-1
ema(n)            alpha = 2/(n+1), seeded with the first close                bar n-1
rsi(n)            Wilder: simple mean of the first n changes, then            bar n
                  avg = (avg*(n-1) + x)/n; 100 - 100/(1 + gain/loss)
highest(n)        max(high) over the n bars before this one                   bar n
lowest(n)         min(low) over the n bars before this one                    bar n
atr(n)            Wilder: true range from bar 1 on, simple mean of the first  bar n
                  n, then atr = (atr*(n-1) + tr)/n
std(n)            population standard deviation of the last n closes,         bar n-1
                  two-pass: m = sum/n, sqrt(sum((x - m)^2)/n)
bb_upper(n, k)    sma(n) + k*std(n)                                           bar n-1
bb_lower(n, k)    sma(n) - k*std(n)                                           bar n-1
macd(f, s)        ema(f) - ema(s), both seeded with the first close           bar max(f,s)-1
macd_signal(f,    ema(g) of the macd line, seeded with its first value        bar max(f,s)+g-2
  s, g)
roc(n)            close/close[n bars ago] - 1 (a fraction)                    bar n
================  ==========================================================  ===============

A strategy declares its indicators by name with *templates*: an argument may be
a number or the name of one of the strategy's parameters (``RSI("rsi_period")``);
``Indicator.resolve`` turns a template into a concrete indicator for one
combination.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

#: kind -> the names of its arguments; a name ending in "k" is a float multiplier, the rest are periods
ARGS: dict[str, tuple[str, ...]] = {
    "sma": ("n",), "ema": ("n",), "rsi": ("n",), "highest": ("n",), "lowest": ("n",), "atr": ("n",),
    "std": ("n",), "bb_upper": ("n", "k"), "bb_lower": ("n", "k"), "macd": ("fast", "slow"),
    "macd_signal": ("fast", "slow", "signal"), "roc": ("n",),
}
KINDS = tuple(ARGS)


def is_multiplier(arg_name: str) -> bool:
    return arg_name == "k"


@dataclass(frozen=True, order=True)
class Indicator:
    kind: str
    args: tuple  # numbers, or parameter names in a template

    def __post_init__(self):
        if self.kind not in ARGS:
            raise ValueError(f"unknown indicator kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        names = ARGS[self.kind]
        if len(self.args) != len(names):
            raise ValueError(f"{self.kind} takes {len(names)} argument(s) ({', '.join(names)}), got {self.args!r}")
        for name, a in zip(names, self.args):
            if isinstance(a, str):
                continue
            if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a):
                raise ValueError(f"{self.kind} {name} must be a number or a parameter name, got {a!r}")
            if is_multiplier(name):
                if a < 0:
                    raise ValueError(f"{self.kind} {name} must be >= 0, got {a!r}")
            elif a != int(a) or a < 1:
                raise ValueError(f"{self.kind} {name} must be an integer of at least 1, got {a!r}")

    @property
    def template(self) -> bool:
        return any(isinstance(a, str) for a in self.args)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The strategy parameters this template reads."""
        return tuple(a for a in self.args if isinstance(a, str))

    def resolve(self, params: Mapping[str, Any]) -> "Indicator":
        """The concrete indicator with parameter names replaced by ``params`` values."""
        if not self.template:
            return self
        return _spec(self.kind, *(params[a] if isinstance(a, str) else a for a in self.args))

    @property
    def period(self) -> int:
        return int(self.args[0])

    @property
    def valid_from(self) -> int:
        """First bar index at which the value is defined (of a concrete indicator)."""
        a = self.args
        if self.kind in ("sma", "ema", "std", "bb_upper", "bb_lower"):
            return a[0] - 1
        if self.kind == "macd":
            return max(a[0], a[1]) - 1
        if self.kind == "macd_signal":
            return max(a[0], a[1]) + a[2] - 2
        return a[0]

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(map(str, self.args))})"


def _spec(kind: str, *args) -> Indicator:
    """A checked indicator with periods as ints and multipliers as floats (names kept as given)."""
    Indicator(kind, tuple(args))  # validates
    return Indicator(kind, tuple(a if isinstance(a, str) else float(a) if is_multiplier(n) else int(a)
                                 for n, a in zip(ARGS[kind], args)))


# Constructors read like the indicators' names. Each argument is a number or a parameter name.
def SMA(n) -> Indicator:  # noqa: N802
    return _spec("sma", n)


def EMA(n) -> Indicator:  # noqa: N802
    return _spec("ema", n)


def RSI(n) -> Indicator:  # noqa: N802
    return _spec("rsi", n)


def Highest(n) -> Indicator:  # noqa: N802
    return _spec("highest", n)


def Lowest(n) -> Indicator:  # noqa: N802
    return _spec("lowest", n)


def ATR(n) -> Indicator:  # noqa: N802
    return _spec("atr", n)


def StdDev(n) -> Indicator:  # noqa: N802
    return _spec("std", n)


def BollingerMiddle(n) -> Indicator:  # noqa: N802
    return _spec("sma", n)


def BollingerUpper(n, k) -> Indicator:  # noqa: N802
    return _spec("bb_upper", n, k)


def BollingerLower(n, k) -> Indicator:  # noqa: N802
    return _spec("bb_lower", n, k)


def MACD(fast, slow) -> Indicator:  # noqa: N802
    return _spec("macd", fast, slow)


def MACDSignal(fast, slow, signal) -> Indicator:  # noqa: N802
    return _spec("macd_signal", fast, slow, signal)


def ROC(n) -> Indicator:  # noqa: N802
    return _spec("roc", n)


# --- the incremental reference calculators -------------------------------------------------


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
        self.alpha, self.value, self.count, self.n = 2.0 / (n + 1.0), math.nan, 0, n

    def step(self, x: float) -> float:
        self.value = x if self.count == 0 else self.alpha * x + (1.0 - self.alpha) * self.value
        self.count += 1
        return self.value

    def update(self, o, h, lo, c) -> float:
        v = self.step(c)
        return v if self.count >= self.n else math.nan


class _Wilder:
    """Wilder's smoothing of a series that starts at bar 1: a simple mean of the first n
    values (valid at bar n), then avg = (avg*(n-1) + x)/n."""

    def __init__(self, n: int):
        self.n, self.avg = n, 0.0

    def add(self, count: int, x: float) -> None:
        n = self.n
        if count < n:
            self.avg += x
        elif count == n:
            self.avg = (self.avg + x) / n
        else:
            self.avg = (self.avg * (n - 1) + x) / n


class _Rsi:
    def __init__(self, n: int):
        self.n, self.prev, self.count = n, math.nan, 0
        self.gain, self.loss = _Wilder(n), _Wilder(n)

    def update(self, o, h, lo, c) -> float:
        if self.count > 0:
            change = c - self.prev
            self.gain.add(self.count, change if change > 0.0 else 0.0)
            self.loss.add(self.count, -change if change < 0.0 else 0.0)
        self.prev = c
        self.count += 1
        if self.count <= self.n:
            return math.nan
        return rsi_value(self.gain.avg, self.loss.avg)


def rsi_value(gain: float, loss: float) -> float:
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


class _Atr:
    def __init__(self, n: int):
        self.n, self.prev, self.count, self.atr = n, math.nan, 0, _Wilder(n)

    def update(self, o, h, lo, c) -> float:
        if self.count > 0:
            pc = self.prev
            self.atr.add(self.count, max(h - lo, max(abs(h - pc), abs(lo - pc))))
        self.prev = c
        self.count += 1
        return self.atr.avg if self.count > self.n else math.nan


def window_std(values) -> float:
    """Population standard deviation, two-pass, summing in window order."""
    s = 0.0
    for x in values:
        s += x
    m = s / len(values)
    q = 0.0
    for x in values:
        q += (x - m) * (x - m)
    return math.sqrt(q / len(values))


class _Std:
    def __init__(self, n: int):
        self.n, self.window = n, deque(maxlen=n)

    def update(self, o, h, lo, c) -> float:
        self.window.append(c)
        return window_std(self.window) if len(self.window) == self.n else math.nan


class _Band:
    def __init__(self, n: int, k: float, sign: float):
        self.sma, self.std, self.k, self.sign = _Sma(n), _Std(n), k, sign

    def update(self, o, h, lo, c) -> float:
        m = self.sma.update(o, h, lo, c)
        sd = self.std.update(o, h, lo, c)
        if math.isnan(m):
            return math.nan
        return m + self.k * sd if self.sign > 0 else m - self.k * sd


class _Macd:
    def __init__(self, fast: int, slow: int, signal: int = 0):
        self.fast, self.slow, self.signal = _Ema(fast), _Ema(slow), _Ema(signal) if signal else None
        self.valid = max(fast, slow) - 1 + (signal - 1 if signal else 0)
        self.count = 0

    def update(self, o, h, lo, c) -> float:
        line = self.fast.step(c) - self.slow.step(c)
        value = self.signal.step(line) if self.signal is not None else line
        self.count += 1
        return value if self.count > self.valid else math.nan


class _Roc:
    def __init__(self, n: int):
        self.n, self.window = n, deque(maxlen=n + 1)

    def update(self, o, h, lo, c) -> float:
        self.window.append(c)
        return c / self.window[0] - 1.0 if len(self.window) == self.n + 1 else math.nan


class _Extreme:
    """Max (or min) of the n bars before this one with a monotone deque: each bar enters and
    leaves it once, so a bar costs amortised O(1) whatever the trend. ``ops`` counts the
    deque tests (the algorithm's work), which a test checks is linear."""

    def __init__(self, n: int, use_high: bool):
        self.n, self.use_high, self.dq, self.t, self.ops = n, use_high, deque(), 0, 0

    def update(self, o, h, lo, c) -> float:
        t, dq = self.t, self.dq
        while dq and dq[0][0] < t - self.n:  # left the window
            dq.popleft()
            self.ops += 1
        value = dq[0][1] if t >= self.n else math.nan
        x = h if self.use_high else lo
        # drop the values the new one dominates: they can never be the extreme again
        while dq and (dq[-1][1] <= x if self.use_high else dq[-1][1] >= x):
            dq.pop()
            self.ops += 1
        dq.append((t, x))
        self.t += 1
        return value


def incremental(spec: Indicator):
    """A fresh per-candle calculator for a concrete ``spec`` with an ``update(o, h, l, c)`` method."""
    a = spec.args
    kind = spec.kind
    if kind == "sma":
        return _Sma(a[0])
    if kind == "ema":
        return _Ema(a[0])
    if kind == "rsi":
        return _Rsi(a[0])
    if kind in ("highest", "lowest"):
        return _Extreme(a[0], kind == "highest")
    if kind == "atr":
        return _Atr(a[0])
    if kind == "std":
        return _Std(a[0])
    if kind in ("bb_upper", "bb_lower"):
        return _Band(a[0], a[1], 1.0 if kind == "bb_upper" else -1.0)
    if kind == "macd":
        return _Macd(a[0], a[1])
    if kind == "macd_signal":
        return _Macd(a[0], a[1], a[2])
    return _Roc(a[0])
