"""Indicators: the reference incremental form and the fast chunked kernels are bit-identical,
and both match an independent computation (pandas, or a direct loop written here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.fast.indicators import compute_chunk, compute_full, new_state
from engine.indicators import EMA, RSI, SMA, Highest, Indicator, Lowest, incremental

# Seven SMAs interleaved with other kinds: the fast path runs SMAs four to a pass,
# so this covers a full group, a remainder and the order of rows.
SPECS = [SMA(1), SMA(2), SMA(5), SMA(30), SMA(3), SMA(11), SMA(40), EMA(1), EMA(2), EMA(9), EMA(50), RSI(2), RSI(5), RSI(14),
         Highest(1), Highest(3), Highest(20), Lowest(1), Lowest(4), Lowest(25)]


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
    kinds = np.array([s.code for s in specs], dtype=np.int64)
    periods = np.array([s.period for s in specs], dtype=np.int64)
    state = new_state(specs)
    out = np.empty((len(specs), n))
    need = np.ones(len(specs), dtype=np.bool_) if need is None else need
    block = np.full((len(specs), chunk), -1.0)
    for t0 in range(0, n, chunk):
        t1 = min(n, t0 + chunk)
        compute_chunk(kinds, periods, state, need, h, lo, c, t0, t1, block)
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


def independent(spec, h, lo, c):
    n = spec.period
    if spec.kind == "sma":
        return pd.Series(c).rolling(n).mean().to_numpy()
    if spec.kind == "ema":
        e = pd.Series(c).ewm(span=n, adjust=False).mean().to_numpy().copy()
        e[:n - 1] = np.nan
        return e
    if spec.kind == "rsi":
        return wilder_rsi(c, n)
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
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-9, atol=0)


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


def test_short_series_is_all_nan():
    o, h, lo, c = _series(4, 9)
    specs = [SMA(5), EMA(5), RSI(4), Highest(4), Lowest(6)]
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


def test_indicator_spec_validation():
    with pytest.raises(ValueError):
        Indicator("vwap", 3)
    with pytest.raises(ValueError):
        SMA(0)
    assert str(EMA(7)) == "ema(7)" and SMA(3) == Indicator("sma", 3)
