"""Indicators: the reference incremental form and the fast chunked kernels are bit-identical,
and both match an independent computation (pandas, or a direct loop written here)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.fast.indicators import OPS, compute_chunk, compute_full, encode, new_state
from engine.indicators import (ATR, EMA, MACD, ROC, RSI, SMA, BollingerLower, BollingerMiddle, BollingerUpper,
                               Highest, Indicator, Lowest, MACDSignal, StdDev, incremental)

# Seven SMAs interleaved with other kinds: the fast path runs SMAs four to a pass,
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
    calc = incremental(spec)
    return np.array([calc.update(*bar) for bar in zip(o.tolist(), h.tolist(), lo.tolist(), c.tolist())])


def chunked(specs, h, lo, c, chunk, need=None):
    n = len(c)
    e = encode(specs)
    state = new_state(specs)
    ring = np.zeros(e.ring_size, dtype=np.int64)
    out = np.empty((len(specs), n))
    need = np.ones(len(specs), dtype=np.bool_) if need is None else need
    block = np.full((len(specs), chunk), -1.0)
    for t0 in range(0, n, chunk):
        t1 = min(n, t0 + chunk)
        compute_chunk(e.kinds, e.periods, e.mult, e.ring_off, state, ring, need, h, lo, c, t0, t1, block)
        out[:, t0:t1] = block[:, :t1 - t0]
    return out


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
    n = a[0]
    close = pd.Series(c)
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
    if spec.kind in ("std", "bb_upper", "bb_lower"):
        # numpy's std over each window (pandas' rolling variance is a running update, less exact)
        sd = np.full(len(c), np.nan)
        if len(c) >= n:
            sd[n - 1:] = np.std(np.lib.stride_tricks.sliding_window_view(c, n), axis=1)
        if spec.kind == "std":
            return sd
        sign = 1.0 if spec.kind == "bb_upper" else -1.0
        return close.rolling(n).mean().to_numpy() + sign * a[1] * sd
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


def test_fast_full_is_bit_identical_to_reference(data):
    o, h, lo, c, ref = data
    assert_bit_identical(compute_full(SPECS, h, lo, c), ref)


@pytest.mark.parametrize("chunk", [1, 2, 7, 16, 64, 1000])
def test_fast_chunked_is_bit_identical_to_reference(data, chunk):
    o, h, lo, c, ref = data
    assert_bit_identical(chunked(SPECS, h, lo, c, chunk), ref)


def test_only_needed_rows_are_computed(data):
    o, h, lo, c, ref = data
    need = np.array([k % 3 != 1 for k in range(len(SPECS))])
    got = chunked(SPECS, h, lo, c, 16, need)
    assert_bit_identical(got[need], ref[need])
    assert (got[~need] == -1.0).all()  # rows nobody needs are left as they were


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
    out = compute_full(specs, h, lo, c)
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
    the deque operations are at most 2 per bar in both engines. (The rescanning algorithm this
    replaced did ~1000 comparisons per bar on such a series.)"""
    n = 1_000_000
    falling = np.linspace(2e6, 1e6, n)
    for spec in (Highest(1000), Lowest(1000)):
        src = falling if spec.kind == "highest" else falling[::-1].copy()
        e = encode([spec])
        state = new_state([spec])
        out = np.empty((1, n))
        compute_chunk(e.kinds, e.periods, e.mult, e.ring_off, state, np.zeros(e.ring_size, dtype=np.int64),
                      np.ones(1, dtype=np.bool_), src, src, src, 0, n, out)
        ops = state[0, OPS]
        assert n // 2 <= ops <= 2 * n, ops  # every bar leaves once: ~n evictions
        t = np.arange(1000, n, 77_777)
        np.testing.assert_array_equal(out[0, t], src[t - 1000] if spec.kind == "highest" else src[t - 1000])
    calc = incremental(Highest(1000))
    for x in falling.tolist():
        calc.update(x, x, x, x)
    assert n // 2 <= calc.ops <= 2 * n


def test_indicator_spec_validation():
    with pytest.raises(ValueError):
        Indicator("vwap", (3,))
    with pytest.raises(ValueError):
        SMA(0)
    with pytest.raises(ValueError):
        SMA(2.5)
    with pytest.raises(ValueError):
        BollingerUpper(20, -1.0)
    with pytest.raises(ValueError):
        Indicator("macd", (12,))  # the second period is missing
    assert str(EMA(7)) == "ema(7)" and SMA(3) == Indicator("sma", (3,))
    assert BollingerUpper(20, 2) == Indicator("bb_upper", (20, 2.0))


def test_templates_resolve_parameter_names():
    t = BollingerUpper("period", "k")
    assert t.template and t.parameters == ("period", "k")
    assert t.resolve({"period": 20, "k": 2}) == BollingerUpper(20, 2.0)
    assert MACDSignal("f", 26, "g").resolve({"f": 12, "g": 9}) == MACDSignal(12, 26, 9)
    assert not SMA(5).template and SMA(5).resolve({}) == SMA(5)
