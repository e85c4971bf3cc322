"""The built-in indicators, each one definition on the protocol of ``engine.indicators.protocol``.

Definitions (docs/semantics.md, "Strategies and indicators"); NaN before "valid from":

================  ===============================================================  ==============
indicator         definition (x: its input, close by default)                      valid from
================  ===============================================================  ==============
SMA(n)            running sum of the last n values, divided by n                   bar n-1
EMA(n)            alpha = 2/(n+1), seeded with the first value                     bar n-1
RSI(n)            Wilder: simple mean of the first n changes, then                 bar n
                  avg = (avg*(n-1) + x)/n; 100 - 100/(1 + gain/loss)
Highest(n)        max of x (high) over the n bars before this one                  bar n
Lowest(n)         min of x (low) over the n bars before this one                   bar n
ATR(n)            Wilder's average of the true range from bar 1 on                 bar n
StdDev(n)         population standard deviation of the last n values, two-pass    bar n-1
Bollinger*(n, k)  SMA(n) +/- k*StdDev(n); the middle band is SMA(n)                bar n-1
MACD(f, s)        EMA(f) - EMA(s), both seeded with the first value                bar max(f,s)-1
MACDSignal(f,s,g) EMA(g) of the MACD line, seeded with its first value             bar max(f,s)+g-2
ROC(n)            x/x[n bars ago] - 1 (a fraction)                                 bar n
Lag(x, k)         x, k bars ago                                                    k bars after x
Keltner*(n, k)    EMA(n) of the typical price +/- k*ATR(m) (m = n unless given)    bar max(n-1, m)
typical, hl2,     (high + low + close)/3, (high + low)/2, (open + high + low +     bar 0
ohlc4             close)/4: derived prices, usable as any input
================  ===============================================================  ==============

Valid-from bars are for inputs valid from bar 0; an indicator of an indicator starts where its
input becomes valid. A new built-in is one definition here (its step, state, valid, lookback),
a hand-computed test and a row in docs/semantics.md: both engines run it from this definition.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import njit
from .protocol import Indicator, Param, indicator, register_derived

PERIOD = Param(int, 1)
MULTIPLIER = Param(float, 0.0)


@njit(nogil=True, inline="always")
def wilder(avg, t, n, x):
    """Wilder's smoothing of a series that starts at bar 1: a simple mean of the first n values
    (at bar n), then avg = (avg*(n-1) + x)/n. Bars before n accumulate the sum."""
    if t < n:
        return avg + x
    if t == n:
        return (avg + x) / n
    return (avg * (n - 1) + x) / n


@njit(nogil=True, inline="always")
def rsi_value(gain, loss):
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


@njit(nogil=True, inline="always")
def window_std(x, t, n):
    """Population standard deviation of x[t-n+1..t], two-pass, summing in window order."""
    s = 0.0
    for i in range(t - n + 1, t + 1):
        s += x[i]
    m = s / n
    q = 0.0
    for i in range(t - n + 1, t + 1):
        q += (x[i] - m) * (x[i] - m)
    return math.sqrt(q / n)


# --- steps -------------------------------------------------------------------------------------


@njit(nogil=True)
def sma_step(state, t, x, period):
    s = state[0] + x[t]
    if t >= period:
        s -= x[t - period]
    state[0] = s
    return s / period


@njit(nogil=True)
def ema_step(state, t, x, period):
    if t == 0:
        e = x[0]
    else:
        alpha = 2.0 / (period + 1.0)
        e = alpha * x[t] + (1.0 - alpha) * state[0]
    state[0] = e
    return e


@njit(nogil=True)
def rsi_step(state, t, x, period):
    if t > 0:
        change = x[t] - x[t - 1]
        state[0] = wilder(state[0], t, period, change if change > 0.0 else 0.0)
        state[1] = wilder(state[1], t, period, -change if change < 0.0 else 0.0)
    return rsi_value(state[0], state[1])


@njit(nogil=True, inline="always")
def extreme(state, t, x, n, is_max):
    """Max (min) of x over the n bars before t: a monotone deque of bar indices in a ring of n+1
    slots (state[3:]); each bar enters and leaves once, amortised O(1) per bar. state[0] is the
    deque's head, state[1] its length, state[2] counts its operations (a test checks the work is
    linear)."""
    cap = n + 1
    head, length, ops = int(state[0]), int(state[1]), state[2]
    while length > 0 and state[3 + head] < t - n:  # left the window
        head = head + 1 if head + 1 < cap else 0
        length -= 1
        ops += 1.0
    value = x[int(state[3 + head])] if length > 0 else np.nan
    v = x[t]
    while length > 0:  # drop what v dominates: it can never be the extreme again
        back = head + length - 1
        if back >= cap:
            back -= cap
        y = x[int(state[3 + back])]
        if (y <= v) if is_max else (y >= v):
            length -= 1
            ops += 1.0
        else:
            break
    slot = head + length
    if slot >= cap:
        slot -= cap
    state[3 + slot] = t
    state[0], state[1], state[2] = head, length + 1, ops
    return value


@njit(nogil=True)
def highest_step(state, t, x, period):
    return extreme(state, t, x, period, True)


@njit(nogil=True)
def lowest_step(state, t, x, period):
    return extreme(state, t, x, period, False)


@njit(nogil=True)
def atr_step(state, t, high, low, close, period):
    if t > 0:
        pc = close[t - 1]
        hi, lw = high[t], low[t]
        state[0] = wilder(state[0], t, period, max(hi - lw, max(abs(hi - pc), abs(lw - pc))))
    return state[0]


@njit(nogil=True)
def std_step(state, t, x, period):
    if t < period - 1:
        return np.nan
    return window_std(x, t, period)


@njit(nogil=True)
def upper_band_step(state, t, middle, width, k):
    return middle[t] + k * width[t]


@njit(nogil=True)
def lower_band_step(state, t, middle, width, k):
    return middle[t] - k * width[t]


@njit(nogil=True)
def macd_step(state, t, x, fast, slow):
    if t == 0:
        e1 = x[0]
        e2 = x[0]
    else:
        a1, a2 = 2.0 / (fast + 1.0), 2.0 / (slow + 1.0)
        e1 = a1 * x[t] + (1.0 - a1) * state[0]
        e2 = a2 * x[t] + (1.0 - a2) * state[1]
    state[0], state[1] = e1, e2
    return e1 - e2


@njit(nogil=True)
def macd_signal_step(state, t, x, fast, slow, signal):
    line = macd_step(state, t, x, fast, slow)
    if t == 0:
        g = line
    else:
        a3 = 2.0 / (signal + 1.0)
        g = a3 * line + (1.0 - a3) * state[2]
    state[2] = g
    return g


@njit(nogil=True)
def roc_step(state, t, x, period):
    if t < period:
        return np.nan
    return x[t] / x[t - period] - 1.0


@njit(nogil=True)
def lag_step(state, t, x, k):
    if t < k:
        return np.nan
    return x[t - k]


@njit(nogil=True)
def typical_step(state, t, high, low, close):
    return (high[t] + low[t] + close[t]) / 3.0


@njit(nogil=True)
def hl2_step(state, t, high, low):
    return (high[t] + low[t]) / 2.0


@njit(nogil=True)
def ohlc4_step(state, t, open, high, low, close):  # noqa: A002 - the price's name
    return (open[t] + high[t] + low[t] + close[t]) / 4.0


# --- definitions -------------------------------------------------------------------------------

SMA = indicator("sma", sma_step, inputs={"input": "close"}, params={"period": PERIOD}, state=1,
                valid=lambda period: period - 1, lookback=lambda period: period)
EMA = indicator("ema", ema_step, inputs={"input": "close"}, params={"period": PERIOD}, state=1,
                valid=lambda period: period - 1)
RSI = indicator("rsi", rsi_step, inputs={"input": "close"}, params={"period": PERIOD}, state=2,
                valid=lambda period: period, lookback=1)
Highest = indicator("highest", highest_step, inputs={"input": "high"}, params={"period": PERIOD},
                    state=lambda period: period + 4, valid=lambda period: period, lookback=lambda period: period)
Lowest = indicator("lowest", lowest_step, inputs={"input": "low"}, params={"period": PERIOD},
                   state=lambda period: period + 4, valid=lambda period: period, lookback=lambda period: period)
ATR = indicator("atr", atr_step, inputs={"high": "high", "low": "low", "close": "close"}, params={"period": PERIOD},
                state=1, valid=lambda period: period, lookback=1, order=("period", "high", "low", "close"))
StdDev = indicator("std", std_step, inputs={"input": "close"}, params={"period": PERIOD},
                   valid=lambda period: period - 1, lookback=lambda period: period - 1)
UpperBand = indicator("upper_band", upper_band_step, inputs={"middle": None, "width": None},
                      params={"k": MULTIPLIER}, order=("middle", "width", "k"))
LowerBand = indicator("lower_band", lower_band_step, inputs={"middle": None, "width": None},
                      params={"k": MULTIPLIER}, order=("middle", "width", "k"))
MACD = indicator("macd", macd_step, inputs={"input": "close"}, params={"fast": PERIOD, "slow": PERIOD}, state=2,
                 valid=lambda fast, slow: max(fast, slow) - 1)
MACDSignal = indicator("macd_signal", macd_signal_step, inputs={"input": "close"},
                       params={"fast": PERIOD, "slow": PERIOD, "signal": PERIOD}, state=3,
                       valid=lambda fast, slow, signal: max(fast, slow) + signal - 2)
ROC = indicator("roc", roc_step, inputs={"input": "close"}, params={"period": PERIOD},
                valid=lambda period: period, lookback=lambda period: period)
Lag = indicator("lag", lag_step, inputs={"input": None}, params={"k": PERIOD}, valid=lambda k: k,
                lookback=lambda k: k, order=("input", "k"))
Typical = indicator("typical", typical_step, inputs={"high": "high", "low": "low", "close": "close"}, params={})
HL2 = indicator("hl2", hl2_step, inputs={"high": "high", "low": "low"}, params={})
OHLC4 = indicator("ohlc4", ohlc4_step, inputs={"open": "open", "high": "high", "low": "low", "close": "close"},
                  params={})

register_derived("typical", Typical())
register_derived("hl2", HL2())
register_derived("ohlc4", OHLC4())


# --- built-ins composed of the definitions above ------------------------------------------------


def StdDevOf(period, input="close") -> Indicator:  # noqa: N802,A002 - reads like the indicators
    return StdDev(period, input=input)


def BollingerMiddle(period, input="close") -> Indicator:  # noqa: N802,A002
    return SMA(period, input=input)


def BollingerUpper(period, k, input="close") -> Indicator:  # noqa: N802,A002
    return UpperBand(SMA(period, input=input), StdDev(period, input=input), k)


def BollingerLower(period, k, input="close") -> Indicator:  # noqa: N802,A002
    return LowerBand(SMA(period, input=input), StdDev(period, input=input), k)


def KeltnerMiddle(period) -> Indicator:  # noqa: N802
    """EMA(period) of the typical price (high + low + close)/3."""
    return EMA(period, input="typical")


def KeltnerUpper(period, k, atr_period=None) -> Indicator:  # noqa: N802
    """The Keltner channel's upper band: EMA(period) of the typical price + k*ATR(atr_period)."""
    return UpperBand(KeltnerMiddle(period), ATR(period if atr_period is None else atr_period), k)


def KeltnerLower(period, k, atr_period=None) -> Indicator:  # noqa: N802
    """The Keltner channel's lower band: EMA(period) of the typical price - k*ATR(atr_period)."""
    return LowerBand(KeltnerMiddle(period), ATR(period if atr_period is None else atr_period), k)


DEFINITIONS = (SMA, EMA, RSI, Highest, Lowest, ATR, StdDev, UpperBand, LowerBand, MACD, MACDSignal, ROC, Lag,
               Typical, HL2, OHLC4)
