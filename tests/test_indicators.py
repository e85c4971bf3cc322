"""Indicators: the reference engine's candle-by-candle steps and the fast path's chunk loops are
bit-identical, and both match an independent computation (pandas, or a direct loop written here)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.candles import Candles
from engine.fast.runner import indicators as fast_indicators
from numba import njit

from engine.indicators import (ATR, EMA, MACD, ROC, RSI, SMA, BollingerLower, BollingerMiddle, BollingerUpper,
                               Feed, Highest, KeltnerLower, KeltnerMiddle, KeltnerUpper, Lag, Lowest, MACDSignal,
                               StdDev, indicator)

# Seven SMAs interleaved with other kinds: the fast path runs an indicator four to a pass,
# so this covers a full group, a remainder and the order of rows.
SPECS = [SMA(1), SMA(2), SMA(5), SMA(30), SMA(3), SMA(11), SMA(40), EMA(1), EMA(2), EMA(9), EMA(50), RSI(2), RSI(5),
         RSI(14), Highest(1), Highest(3), Highest(20), Lowest(1), Lowest(4), Lowest(25), ATR(1), ATR(3), ATR(14),
         StdDev(1), StdDev(2), StdDev(20), BollingerUpper(5, 2.0), BollingerLower(5, 2.0), BollingerUpper(20, 1.5),
         BollingerLower(20, 0.0), MACD(3, 7), MACD(12, 26), MACD(9, 4), MACDSignal(12, 26, 9), MACDSignal(3, 7, 1),
         ROC(1), ROC(4), ROC(30)]


def _series(n, seed):
    """Random walk with flat stretches (repeated prices) and a spike: valid OHLC."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.01, n)
    steps[rng.random(n) < 0.25] = 0.0
    steps[n // 3: n // 3 + 15] = 0.0  # a long flat stretch
    close = 30_000 * np.exp(np.cumsum(steps))
    if n > 10:
        close[n // 2] *= 1.3  # a spike
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)) * (rng.random(n) < 0.7))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)) * (rng.random(n) < 0.7))
    return open_, high, low, close


def reference(spec, o, h, lo, c):
    feed = Feed([spec])
    return np.array([feed.update(*bar)[0] for bar in zip(o.tolist(), h.tolist(), lo.tolist(), c.tolist())])


def _candles(o, h, lo, c):
    n = len(c)
    return Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=np.ascontiguousarray(o, dtype=float),
                   high=np.ascontiguousarray(h, dtype=float), low=np.ascontiguousarray(lo, dtype=float),
                   close=np.ascontiguousarray(c, dtype=float), volume=np.ones(n), interval_ms=900_000)


def chunked(specs, h, lo, c, chunk):
    return fast_indicators(specs, _candles(c, h, lo, c), chunk=chunk)


def wilder_rsi(close, n):
    """Wilder's RSI by a direct loop: simple means of the first n gains/losses, then smoothing."""
    out = np.full(len(close), np.nan)
    diffs = np.diff(close)
    if len(diffs) < n:
        return out
    gains = [max(d, 0.0) for d in diffs]
    losses = [max(-d, 0.0) for d in diffs]
    g = sum(gains[:n]) / n
    ls = sum(losses[:n]) / n
    for t in range(n, len(close)):
        if t > n:
            g = (g * (n - 1) + gains[t - 1]) / n
            ls = (ls * (n - 1) + losses[t - 1]) / n
        out[t] = (50.0 if g == 0 else 100.0) if ls == 0 else 100 - 100 / (1 + g / ls)
    return out


def wilder(values, n):
    """Wilder's smoothing of values[1:] by a direct loop; NaN before bar n."""
    out = np.full(len(values), np.nan)
    if len(values) <= n:
        return out
    avg = sum(values[1:n + 1]) / n
    out[n] = avg
    for t in range(n + 1, len(values)):
        avg = (avg * (n - 1) + values[t]) / n
        out[t] = avg
    return out


def independent(spec, h, lo, c):
    a = spec.args
    close = pd.Series(c)
    if spec.kind in ("upper_band", "lower_band"):  # Bollinger: sma(n) +/- k * std(n)
        mid, width = (independent(x, h, lo, c) for x in spec.inputs)
        return mid + (1.0 if spec.kind == "upper_band" else -1.0) * a[0] * width
    n = a[0]
    if spec.kind == "sma":
        return close.rolling(n).mean().to_numpy()
    if spec.kind == "ema":
        e = close.ewm(span=n, adjust=False).mean().to_numpy().copy()
        e[:n - 1] = np.nan
        return e
    if spec.kind == "rsi":
        return wilder_rsi(c, n)
    if spec.kind == "atr":
        prev = close.shift(1)
        tr = pd.concat([pd.Series(h - lo), (pd.Series(h) - prev).abs(), (pd.Series(lo) - prev).abs()], axis=1).max(axis=1)
        return wilder(tr.to_numpy(), n)
    if spec.kind == "std":
        # numpy's std over each window (pandas' rolling variance is a running update, less exact)
        sd = np.full(len(c), np.nan)
        if len(c) >= n:
            sd[n - 1:] = np.std(np.lib.stride_tricks.sliding_window_view(c, n), axis=1)
        return sd
    if spec.kind in ("macd", "macd_signal"):
        line = close.ewm(span=a[0], adjust=False).mean() - close.ewm(span=a[1], adjust=False).mean()
        out = line.ewm(span=a[2], adjust=False).mean().to_numpy() if spec.kind == "macd_signal" else line.to_numpy()
        out = out.copy()
        out[:spec.valid_from] = np.nan
        return out
    if spec.kind == "roc":
        return (close / close.shift(n) - 1.0).to_numpy()
    src = pd.Series(h if spec.kind == "highest" else lo)
    roll = src.rolling(n).max() if spec.kind == "highest" else src.rolling(n).min()
    return roll.shift(1).to_numpy()


def assert_bit_identical(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    na, nb = np.isnan(a), np.isnan(b)
    np.testing.assert_array_equal(na, nb)
    np.testing.assert_array_equal(a[~na].view(np.int64), b[~nb].view(np.int64))


@pytest.fixture(scope="module", params=[(400, 1), (400, 2), (37, 3)], ids=["n400a", "n400b", "n37"])
def data(request):
    n, seed = request.param
    o, h, lo, c = _series(n, seed)
    ref = np.array([reference(s, o, h, lo, c) for s in SPECS])
    return o, h, lo, c, ref


def test_fast_in_one_chunk_is_bit_identical_to_reference(data):
    o, h, lo, c, ref = data
    assert_bit_identical(chunked(SPECS, h, lo, c, len(c)), ref)


@pytest.mark.parametrize("chunk", [1, 2, 7, 16, 64, 1000])
def test_fast_chunked_is_bit_identical_to_reference(data, chunk):
    o, h, lo, c, ref = data
    assert_bit_identical(chunked(SPECS, h, lo, c, chunk), ref)


def test_blocks_compute_only_what_their_combinations_read():
    """A thread block computes the indicators its combinations' rules read and their inputs, no more."""
    from engine.fast.plan import blocks

    nodes = [SMA(2), SMA(3), StdDev(3), BollingerUpper(3, 1.0), EMA(4)]
    index = {n: q for q, n in enumerate(nodes)}
    slots = np.array([[index[SMA(2)]], [index[SMA(2)]], [index[BollingerUpper(3, 1.0)]], [index[EMA(4)]]])
    lo, hi, need = blocks(slots, nodes, threads=2, per_thread=1, minimum=1)
    assert lo.tolist() == [0, 2] and hi.tolist() == [2, 4]
    assert need == [[index[SMA(2)]], sorted([index[SMA(3)], index[StdDev(3)], index[BollingerUpper(3, 1.0)],
                                             index[EMA(4)]])]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_matches_independent_computation(data, spec):
    o, h, lo, c, ref = data
    got = ref[SPECS.index(spec)]
    want = independent(spec, h, lo, c)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    # a flat window's deviation is rounding noise either way: agree to rounding at price scale
    atol = 1e-12 * float(np.max(c)) if spec.kind in ("std", "bb_upper", "bb_lower") else 0
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-9, atol=atol)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_nan_exactly_before_valid_from(data, spec):
    o, h, lo, c, ref = data
    got = ref[SPECS.index(spec)]
    v = min(spec.valid_from, len(c))
    assert np.isnan(got[:v]).all()
    assert not np.isnan(got[v:]).any()


def test_valid_from():
    assert [SMA(5).valid_from, EMA(5).valid_from, RSI(5).valid_from, Highest(5).valid_from,
            Lowest(5).valid_from] == [4, 4, 5, 5, 5]
    assert [ATR(5).valid_from, StdDev(5).valid_from, BollingerUpper(5, 2).valid_from, ROC(5).valid_from,
            MACD(12, 26).valid_from, MACD(26, 12).valid_from, MACDSignal(12, 26, 9).valid_from] == \
        [5, 4, 4, 5, 25, 25, 33]


def test_short_series_is_all_nan():
    o, h, lo, c = _series(4, 9)
    specs = [SMA(5), EMA(5), RSI(4), Highest(4), Lowest(6), ATR(4), StdDev(5), BollingerUpper(5, 1.0), MACD(2, 5),
             MACDSignal(2, 3, 3), ROC(4)]
    out = chunked(specs, h, lo, c, 4)
    assert np.isnan(out).all()
    for k, s in enumerate(specs):
        assert np.isnan(reference(s, o, h, lo, c)).all()
    assert_bit_identical(chunked(specs, h, lo, c, 3), out)


def test_hand_computed_values():
    c = np.array([10.0, 11.0, 12.0, 11.0, 13.0])
    h = c + 1
    lo = c - 1
    o = c.copy()
    nan = np.nan
    np.testing.assert_allclose(reference(SMA(3), o, h, lo, c), [nan, nan, 11.0, 34 / 3, 12.0])
    # alpha = 2/(3+1) = 0.5: 10, 10.5, 11.25, 11.125, 12.0625; valid from bar 2
    np.testing.assert_allclose(reference(EMA(3), o, h, lo, c), [nan, nan, 11.25, 11.125, 12.0625])
    # RSI(2): changes +1, +1, -1, +2. bar 2: gain 1, loss 0 -> 100; bar 3: gain (1*1+0)/2 = 0.5,
    # loss (0*1+1)/2 = 0.5 -> 50; bar 4: gain (0.5+2)/2 = 1.25, loss 0.25 -> 100 - 100/6
    np.testing.assert_allclose(reference(RSI(2), o, h, lo, c), [nan, nan, 100.0, 50.0, 100 - 100 / 6])
    # highest(2) of the two bars before: bar 2 -> max(11, 12) = 12, bar 3 -> 13, bar 4 -> 13
    np.testing.assert_allclose(reference(Highest(2), o, h, lo, c), [nan, nan, 12.0, 13.0, 13.0])
    np.testing.assert_allclose(reference(Lowest(2), o, h, lo, c), [nan, nan, 9.0, 10.0, 10.0])
    flat = np.full(5, 7.0)
    np.testing.assert_allclose(reference(RSI(2), flat, flat, flat, flat), [nan, nan, 50.0, 50.0, 50.0])


def test_new_indicators_hand_computed():
    c = np.array([10.0, 11.0, 12.0, 11.0, 13.0])
    h = np.array([10.5, 12.0, 12.5, 12.0, 13.5])
    lo = np.array([9.5, 10.0, 11.5, 10.0, 11.0])
    o = c.copy()
    nan = np.nan
    # true ranges from bar 1: max(h-l, |h-pc|, |l-pc|): bar 1 max(2, 2, 0) = 2; bar 2 max(1, 1.5, 0.5) = 1.5;
    # bar 3 max(2, 0, 2) = 2; bar 4 max(2.5, 2.5, 0) = 2.5. ATR(2): bar 2 (2+1.5)/2 = 1.75;
    # bar 3 (1.75*1 + 2)/2 = 1.875; bar 4 (1.875 + 2.5)/2 = 2.1875
    np.testing.assert_allclose(reference(ATR(2), o, h, lo, c), [nan, nan, 1.75, 1.875, 2.1875])
    # std(3), population: bar 2 of (10, 11, 12): sqrt(2/3); bar 3 (11, 12, 11): mean 34/3,
    # deviations -1/3, 2/3, -1/3: sqrt((1+4+1)/9/3) = sqrt(2/9); bar 4 (12, 11, 13): sqrt(2/3)
    sd = [nan, nan, math.sqrt(2 / 3), math.sqrt(2 / 9), math.sqrt(2 / 3)]
    np.testing.assert_allclose(reference(StdDev(3), o, h, lo, c), sd)
    mid = [nan, nan, 11.0, 34 / 3, 12.0]
    np.testing.assert_allclose(reference(BollingerUpper(3, 2.0), o, h, lo, c), np.add(mid, np.multiply(2, sd)))
    np.testing.assert_allclose(reference(BollingerLower(3, 2.0), o, h, lo, c), np.subtract(mid, np.multiply(2, sd)))
    assert BollingerMiddle(3) == SMA(3)
    # roc(2): bar 2 12/10 - 1 = 0.2; bar 3 11/11 - 1 = 0; bar 4 13/12 - 1
    np.testing.assert_allclose(reference(ROC(2), o, h, lo, c), [nan, nan, 0.2, 0.0, 13 / 12 - 1], atol=1e-15)
    # macd(1, 3): ema(1) is the close; ema(3) as in test_hand_computed_values: 10, 10.5, 11.25, 11.125, 12.0625.
    # line: 0, 0.5, 0.75, -0.125, 0.9375, valid from bar 2
    np.testing.assert_allclose(reference(MACD(1, 3), o, h, lo, c), [nan, nan, 0.75, -0.125, 0.9375])
    # signal ema(2) (alpha 2/3) of the line seeded at bar 0: 0, 1/3, 0.6111.., 0.1204.., 0.6651..; valid from 3
    s1 = 2 / 3 * 0.5
    s2 = 2 / 3 * 0.75 + s1 / 3
    s3 = 2 / 3 * -0.125 + s2 / 3
    s4 = 2 / 3 * 0.9375 + s3 / 3
    np.testing.assert_allclose(reference(MACDSignal(1, 3, 2), o, h, lo, c), [nan, nan, nan, s3, s4])
    assert s1 > 0 and s2 > 0


def _naive_extreme(src, n, is_max):
    out = np.full(len(src), np.nan)
    for t in range(n, len(src)):
        window = src[t - n:t]
        out[t] = max(window) if is_max else min(window)
    return out


@pytest.mark.parametrize("shape", ["falling", "rising", "zigzag", "flat", "random"])
@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_rolling_extremes_match_a_naive_scan(shape, n):
    """The monotone deque in both engines against the obvious O(n)-per-bar scan, on inputs
    that stress it (monotone runs evict at every bar or never; ties; a zigzag)."""
    m = 300
    x = np.arange(m, dtype=float)
    src = {"falling": 1000 - x, "rising": x, "zigzag": np.where(x % 4 < 2, x, -x) + 500, "flat": np.full(m, 7.0),
           "random": np.round(np.random.default_rng(n).normal(100, 5, m))}[shape]
    for spec, is_max in ((Highest(n), True), (Lowest(n), False)):
        want = _naive_extreme(src, n, is_max)
        ref = reference(spec, src, src, src, src)
        np.testing.assert_array_equal(ref, want)
        np.testing.assert_array_equal(chunked([spec], src, src, src, 13)[0], want)


def test_rolling_extremes_are_amortised_constant_on_a_monotone_series():
    """Highest(1000) over a 1M-bar falling series: each bar enters and leaves the deque once, so
    the deque operations (state slot 2) are at most 2 per bar in both engines. (The rescanning
    algorithm this replaced did ~1000 comparisons per bar on such a series.)"""
    n = 1_000_000
    falling = np.linspace(2e6, 1e6, n)
    for spec in (Highest(1000), Lowest(1000)):
        src = falling if spec.kind == "highest" else falling[::-1].copy()
        out, (state,) = fast_indicators([spec], _candles(src, src, src, src), states=True)
        ops = state[2]
        assert n // 2 <= ops <= 2 * n, ops  # every bar leaves once: ~n evictions
        t = np.arange(1000, n, 77_777)
        np.testing.assert_array_equal(out[0, t], src[t - 1000])
    feed = Feed([Highest(1000)])
    for x in falling[:200_000].tolist():
        feed.update(x, x, x, x)
    ops = feed.nodes[0].state[2]
    assert 200_000 // 2 <= ops <= 2 * 200_000


def test_indicator_spec_validation():
    with pytest.raises(ValueError, match="not a price"):
        SMA(3, input="vwap").resolve()
    with pytest.raises(ValueError):
        SMA(0)
    with pytest.raises(ValueError):
        SMA(2.5)
    with pytest.raises(ValueError):
        BollingerUpper(20, -1.0)
    with pytest.raises(ValueError, match="needs its 'slow' argument"):
        MACD(12)  # the second period is missing
    with pytest.raises(ValueError, match="did you mean 'period'"):
        SMA(perod=3)
    assert str(EMA(7)) == "ema(7)" and SMA(3) == SMA(period=3)
    assert BollingerUpper(20, 2) == BollingerUpper(20, 2.0)


def test_templates_resolve_parameter_names():
    t = BollingerUpper("period", "k")
    assert t.template and t.parameters == ("period", "k")
    assert t.resolve({"period": 20, "k": 2}) == BollingerUpper(20, 2.0)
    assert MACDSignal("f", 26, "g").resolve({"f": 12, "g": 9}) == MACDSignal(12, 26, 9)
    assert not SMA(5).template and SMA(5).resolve({}) == SMA(5)


# --- derived prices, Lag, Keltner, indicators of indicators, user definitions ------------------------


def test_derived_prices_lag_and_keltner_hand_computed():
    o = np.array([10.0, 10.0, 11.0, 12.0, 11.0])
    h = np.array([10.5, 12.0, 12.5, 12.0, 13.5])
    lo = np.array([9.5, 10.0, 11.5, 10.0, 11.0])
    c = np.array([10.0, 11.0, 12.0, 11.0, 13.0])
    nan = np.nan
    typical = [(10.5 + 9.5 + 10.0) / 3, (12 + 10 + 11) / 3, (12.5 + 11.5 + 12) / 3, (12 + 10 + 11) / 3, (13.5 + 11 + 13) / 3]
    assert typical == [10.0, 11.0, 12.0, 11.0, 12.5]
    np.testing.assert_array_equal(reference(SMA(1, input="typical"), o, h, lo, c), typical)
    np.testing.assert_array_equal(reference(SMA(1, input="hl2"), o, h, lo, c), [10.0, 11.0, 12.0, 11.0, 12.25])
    # ohlc4, bar 4: (11 + 13.5 + 11 + 13)/4 = 12.125
    np.testing.assert_array_equal(reference(SMA(1, input="ohlc4"), o, h, lo, c)[4], 12.125)
    # Lag(close, 2): bar t is close[t - 2], valid from bar 2
    np.testing.assert_array_equal(reference(Lag("close", 2), o, h, lo, c), [nan, nan, 10.0, 11.0, 12.0])
    # Lag(SMA(2), 1): SMA(2) = nan, 10.5, 11.5, 11.5, 12 (valid from 1), lagged one bar: valid from 2
    np.testing.assert_array_equal(reference(Lag(SMA(2), 1), o, h, lo, c), [nan, nan, 10.5, 11.5, 11.5])
    # Keltner(2, k=1): EMA(2) of typical (alpha 2/3): 10, 10 + 2/3*(11-10) = 32/3, then
    # 2/3*12 + 1/3*32/3 = 104/9, 2/3*11 + 1/3*104/9 = 302/27, 2/3*12.5 + 1/3*302/27 = 977/81; valid from 1.
    # ATR(2) as in test_new_indicators_hand_computed: valid from 2: 1.75, 1.875, 2.1875. The bands are
    # valid from max(1, 2) = 2.
    mid = [nan, 32 / 3, 104 / 9, 302 / 27, 977 / 81]
    np.testing.assert_allclose(reference(KeltnerMiddle(2), o, h, lo, c), mid, rtol=1e-15)
    atr = [nan, nan, 1.75, 1.875, 2.1875]
    np.testing.assert_allclose(reference(KeltnerUpper(2, 1.0), o, h, lo, c), np.add(mid, atr), rtol=1e-15)
    np.testing.assert_allclose(reference(KeltnerLower(2, 2.0), o, h, lo, c), np.subtract(mid, np.multiply(2, atr)),
                               rtol=1e-15)
    for spec in (SMA(1, input="typical"), Lag(SMA(2), 1), KeltnerUpper(2, 1.0), KeltnerLower(2, 2.0, 1)):
        spec = spec.resolve()
        assert_bit_identical(chunked([spec], h, lo, c, 2)[0], reference(spec, o, h, lo, c))


def test_an_indicator_of_an_indicator_starts_where_its_input_is_valid():
    """EMA(2) of RSI(2): the RSI is valid from bar 2, so the EMA is seeded with the RSI at bar 2 and
    valid from bar 2 + 1 = 3."""
    c = np.array([10.0, 11.0, 12.0, 11.0, 13.0])
    nan = np.nan
    # RSI(2) (test_hand_computed_values): nan, nan, 100, 50, 100 - 100/6 = 250/3
    rsi = [nan, nan, 100.0, 50.0, 250 / 3]
    np.testing.assert_allclose(reference(RSI(2), c, c, c, c), rsi)
    spec = EMA(2, input=RSI(2))
    assert (spec.start, spec.valid_from) == (2, 3)
    # seeded at bar 2 with 100; bar 3: 2/3*50 + 1/3*100 = 200/3; bar 4: 2/3*250/3 + 1/3*200/3 = 700/9
    np.testing.assert_allclose(reference(spec, c, c, c, c), [nan, nan, nan, 200 / 3, 700 / 9], rtol=1e-15)
    assert_bit_identical(chunked([spec], c, c, c, 1)[0], reference(spec, c, c, c, c))


@njit
def range_step(state, t, high, low, period):
    """Highest high minus lowest low of the last ``period`` bars, this one included (a user definition)."""
    hi, lw = high[t], low[t]
    for i in range(max(0, t - period + 1), t):
        hi = max(hi, high[i])
        lw = min(lw, low[i])
    state[0] += 1.0  # bars seen: the state is carried from bar to bar
    return hi - lw + 0.0 * state[0]


RangeWidth = indicator("test_range", range_step, inputs={"high": "high", "low": "low"}, params={"period": int},
                       state=1, valid=lambda period: period - 1, lookback=lambda period: period - 1)


@njit
def peek_step(state, t, x, k):
    return x[t - k] if t >= k else np.nan


TooFarBack = indicator("test_peek", peek_step, inputs={"input": "close"}, params={"k": int}, lookback=1)


def test_a_user_definition_hand_computed_on_both_engines():
    h = np.array([10.5, 12.0, 12.5, 12.0, 13.5])
    lo = np.array([9.5, 10.0, 11.5, 10.0, 11.0])
    c = np.array([10.0, 11.0, 12.0, 11.0, 13.0])
    # width of the last 2 bars: bar 1 max(10.5, 12) - min(9.5, 10) = 2.5; bar 2 12.5 - 10 = 2.5;
    # bar 3 12.5 - 10 = 2.5; bar 4 13.5 - 10 = 3.5
    want = [np.nan, 2.5, 2.5, 2.5, 3.5]
    np.testing.assert_array_equal(reference(RangeWidth(2), c, h, lo, c), want)
    for chunk in (1, 2, 5):
        np.testing.assert_array_equal(chunked([RangeWidth(2)], h, lo, c, chunk)[0], want)
    assert str(RangeWidth(2, low="close")) == "test_range(2, low=close)"


def test_reading_beyond_the_declared_lookback_is_an_error_on_the_reference_engine():
    """The fast path keeps only `lookback` earlier values of an input, so the reference engine
    refuses a step that reads further back (rather than agreeing with itself only)."""
    c = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(reference(TooFarBack(1), c, c, c, c), [np.nan, 1.0, 2.0, 3.0, 4.0])
    with pytest.raises(IndexError, match="test_peek read an input more than its lookback of 1 bars back"):
        reference(TooFarBack(2), c, c, c, c)


def test_a_definition_is_checked_when_it_is_made():
    @njit
    def local_step(state, t, x, period):
        return x[t]

    with pytest.raises(ValueError, match="must be defined at the top level of its module"):
        indicator("local", local_step, inputs={"input": "close"}, params={"period": int})
    with pytest.raises(ValueError, match="must take"):
        indicator("bad", range_step, inputs={"input": "close"}, params={"period": int})
    with pytest.raises(ValueError, match="must be a numba @njit function"):
        indicator("plain", range_step.py_func, inputs={"high": "high", "low": "low"}, params={"period": int})
