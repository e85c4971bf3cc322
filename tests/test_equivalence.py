"""Property test: the compiled fast path reproduces the reference engine exactly.

Random OHLC series (random walks with flat stretches, gaps through the levels,
spikes, prices rounded to a tick so ties happen, lengths from 1 to ~400 bars), a
random strategy with random parameters — the built-ins, a strategy reading
eight indicators, and a stateful rule that reads the position view — and
random position rules: direction, size, stop-loss, take-profit, trailing stop
and time limit, under both fill modes, with random slippage and commission.
The reference ``BacktestingEngine``, the fast ``detail`` run and the fast
``sweep`` (default chunk, and chunk 7 so state is carried across many chunk
boundaries) must give the same trades, equity curve and metrics: bars, sides
and exit reasons equal, numbers to 1e-9 relative, None where the other is None.

The fast path compiles one loop for every strategy and, per strategy, its rule's
tight loops (engine/fast/rule_unit.py); ``test_hold_loop_variants_agree`` checks that
the hold loops with and without the validation moment sums give the same metrics.

Strategies drawn include user indicators (a definition written here, on an input
series and a derived price, reading back ``lookback`` bars), indicators of
indicators, derived prices as inputs and ``Lag`` crossovers.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numba import njit

from conftest import examples
from engine.grid import build_grid
from engine.candles import Candles
from engine.config import parse_config
from engine.execution import Execution
from engine.fast import runner
from engine.indicators import (ATR, EMA, MACD, ROC, RSI, SMA, BollingerLower, BollingerUpper, KeltnerLower,
                               KeltnerUpper, Lag, MACDSignal, Param, StdDev, indicator)
from engine.metrics import INT_METRICS
from engine.reference import BacktestingEngine
from engine.strategies import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT, Strategy
from engine.validation.accumulate import block_sums, power_sums
from engine.validation.windows import block_edges

CAPITAL = 100_000.0
REL = 1e-9


@njit
def eight_signal(close, ema, atr, upper, lower, macd, macd_signal, roc, sd, threshold):
    code = 0
    calm = sd < 3.0 * atr
    if macd > macd_signal and close > ema and roc > threshold and close < upper and calm:
        code |= ENTER_LONG
    if macd < macd_signal and close < ema and roc < -threshold and close > lower and calm:
        code |= ENTER_SHORT
    if close > upper or macd < macd_signal:
        code |= EXIT_LONG
    if close < lower or macd > macd_signal:
        code |= EXIT_SHORT
    return code


class EightIndicators(Strategy):
    name = "test_eight_indicators"
    ema_period: int = 8
    atr_period: int = 5
    bb_period: int = 6
    bb_k: float = 1.5
    macd_fast: int = 3
    macd_slow: int = 7
    macd_signal_period: int = 4
    roc_period: int = 3
    threshold: float = 0.0

    indicators = {"ema": EMA("ema_period"), "atr": ATR("atr_period"), "upper": BollingerUpper("bb_period", "bb_k"),
                  "lower": BollingerLower("bb_period", "bb_k"), "macd": MACD("macd_fast", "macd_slow"),
                  "macd_signal": MACDSignal("macd_fast", "macd_slow", "macd_signal_period"),
                  "roc": ROC("roc_period"), "sd": StdDev("bb_period")}
    signal = staticmethod(eight_signal)


@njit
def stateful_signal(close, sma, atr, position, entry_price, bars_held, unrealised_return, best_price, gain, hold,
                    atr_mult):
    code = 0
    if close > sma:
        code |= ENTER_LONG
    if close < sma:
        code |= ENTER_SHORT
    if position != 0 and (unrealised_return >= gain or bars_held >= hold or close == entry_price):
        code |= EXIT_LONG | EXIT_SHORT
    if position == 1 and close < best_price - atr_mult * atr:
        code |= EXIT_LONG
    if position == -1 and close > best_price + atr_mult * atr:
        code |= EXIT_SHORT
    return code


class StatefulExit(Strategy):
    """Trend entries; exits after a gain, after `hold` bars, back at the entry price, or an ATR
    trailing exit from the best price since the entry."""

    name = "test_stateful_exit"
    sma_period: int = 5
    atr_period: int = 4
    gain: float = 0.02
    hold: int = 10
    atr_mult: float = 2.0

    indicators = {"sma": SMA("sma_period"), "atr": ATR("atr_period")}
    signal = staticmethod(stateful_signal)


@njit
def zscore_step(state, t, x, period):
    """A user indicator: the z-score of x over the last ``period`` values (two-pass), with its
    running sum in the state (reading back ``period`` bars to drop the value leaving it)."""
    s = state[0] + x[t]
    if t >= period:
        s -= x[t - period]
    state[0] = s
    if t < period - 1:
        return np.nan
    m = s / period
    q = 0.0
    for i in range(t - period + 1, t + 1):
        q += (x[i] - m) * (x[i] - m)
    sd = math.sqrt(q / period)
    return (x[t] - m) / sd if sd > 0.0 else 0.0


ZScore = indicator("test_zscore", zscore_step, inputs={"input": "close"}, params={"period": int}, state=1,
                   valid=lambda period: period - 1, lookback=lambda period: period)


@njit
def spread_step(state, t, a, b, scale):
    """A user indicator with two indicator inputs and a float parameter: (a - b) * scale."""
    return (a[t] - b[t]) * scale


Spread = indicator("test_spread", spread_step, inputs={"a": None, "b": None}, params={"scale": Param(float)},
                   order=("a", "b", "scale"))


@njit
def cross_signal(close, fast, slow, fast_prev, slow_prev, z, z_prev, band_hi, band_lo, spread, z_limit):
    """Crossovers written with Lag: enter long when the fast average crosses above the slow one on
    this bar, short on the cross below; exits on the z-score turning or a Keltner band."""
    code = 0
    if fast > slow and fast_prev <= slow_prev and z < z_limit:
        code |= ENTER_LONG
    if fast < slow and fast_prev >= slow_prev and z > -z_limit:
        code |= ENTER_SHORT
    if (z < z_prev and z > z_limit) or close > band_hi or spread < 0.0:
        code |= EXIT_LONG
    if (z > z_prev and z < -z_limit) or close < band_lo or spread > 0.0:
        code |= EXIT_SHORT
    return code


class UserIndicators(Strategy):
    """User definitions, indicators of indicators, derived prices as inputs and Lag crossovers."""

    name = "test_user_indicators"
    fast_n: int = 3
    slow_n: int = 8
    z_n: int = 5
    k_n: int = 6
    k_mult: float = 1.5
    scale: float = 1.0
    z_limit: float = 1.0

    indicators = {"fast": EMA("fast_n", input="typical"), "slow": SMA("slow_n", input="hl2"),
                  "fast_prev": Lag("fast", 1), "slow_prev": Lag("slow", 1),
                  "z": ZScore("z_n", input=RSI("fast_n")), "z_prev": Lag("z", 2),
                  "band_hi": KeltnerUpper("k_n", "k_mult"), "band_lo": KeltnerLower("k_n", "k_mult", "fast_n"),
                  "spread": Spread("fast", "slow", "scale")}
    signal = staticmethod(cross_signal)


# --- generators ---------------------------------------------------------------------------------


@st.composite
def ohlc(draw) -> Candles:
    bucket = draw(st.integers(0, 9))  # 20 % very short, 30 % medium, 50 % long
    n = draw(st.integers(1, 5) if bucket < 2 else st.integers(6, 60) if bucket < 5 else st.integers(61, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    vol = draw(st.sampled_from([0.003, 0.01, 0.03]))
    p_flat = draw(st.sampled_from([0.0, 0.05, 0.2]))  # chance a flat stretch starts
    p_gap = draw(st.sampled_from([0.0, 0.02, 0.1]))  # chance of an open far from the previous close
    p_spike = draw(st.sampled_from([0.0, 0.02, 0.1]))
    start = draw(st.sampled_from([5.0, 100.0, 30_000.0]))
    tick = start * draw(st.sampled_from([0.0, 1e-4, 1e-3]))  # rounding to a tick creates exact ties
    rng = np.random.default_rng(seed)
    o, h, lo, c = (np.empty(n) for _ in range(4))
    prev, flat_left = start, 0
    for t in range(n):
        if flat_left == 0 and rng.random() < p_flat:
            flat_left = int(rng.integers(1, 25))
        if flat_left > 0:  # identical prices, bar after bar
            flat_left -= 1
            o[t] = h[t] = lo[t] = c[t] = prev
            continue
        u = rng.random()
        if u < p_gap / 2:
            op = prev * (1 - rng.uniform(0.05, 0.4))
        elif u < p_gap:  # up: through a short's levels, and far enough to bust one
            op = prev * (1 + rng.uniform(0.05, 1.5))
        elif rng.random() < 0.5:
            op = prev
        else:
            op = prev * math.exp(rng.normal(0, vol / 4))
        cl = op * math.exp(rng.normal(0, vol))
        hi = max(op, cl) * (1 + abs(rng.normal(0, vol / 2)))
        low = min(op, cl) * (1 - min(0.5, abs(rng.normal(0, vol / 2))))
        if rng.random() < p_spike:
            if rng.random() < 0.5:
                hi *= 1 + rng.uniform(0.05, 0.5)
            else:
                low *= 1 - rng.uniform(0.05, 0.5)
            if rng.random() < 0.3:
                cl = hi if rng.random() < 0.5 else low
        if tick:
            op, hi, low, cl = (max(tick, round(x / tick) * tick) for x in (op, hi, low, cl))
        hi = max(hi, op, cl)
        low = min(low, op, cl)
        o[t], h[t], lo[t], c[t] = op, hi, low, cl
        prev = cl
    assert (lo > 0).all() and (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    return Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=o, high=h, low=lo, close=c,
                   volume=np.ones(n), interval_ms=900_000)


@st.composite
def strategy_grid(draw):
    """(strategy name, drawn params, a small grid of values per param that includes them)."""
    name = draw(st.sampled_from(["ma_crossover", "rsi_reversion", "donchian_breakout", "bollinger_reversion",
                                 "eight", "stateful", "user"]))
    if name == "ma_crossover":
        short = draw(st.integers(1, 6))
        long_ = draw(st.integers(short + 1, 14))
        params = {"short_window": short, "long_window": long_, "ema_period": draw(st.integers(1, 15)),
                  "momentum_spread": draw(st.sampled_from([0.0, 0.0001, 0.001, 0.003]))}
        grid = {"short_window": [short, short + 1], "long_window": [long_],
                "ema_period": [params["ema_period"], params["ema_period"] + 3],
                "momentum_spread": [params["momentum_spread"]]}
    elif name == "rsi_reversion":
        lo = draw(st.integers(5, 55))
        hi = draw(st.integers(lo + 1, 95))
        params = {"rsi_period": draw(st.integers(2, 10)), "oversold": float(lo), "overbought": float(hi)}
        grid = {"rsi_period": [params["rsi_period"], params["rsi_period"] + 2], "oversold": [float(lo)],
                "overbought": [float(hi), min(100.0, hi + 5.0)] if hi < 100 else [float(hi)]}
    elif name == "donchian_breakout":
        params = {"entry_window": draw(st.integers(1, 10)), "exit_window": draw(st.integers(1, 10))}
        grid = {"entry_window": [params["entry_window"], params["entry_window"] + 2],
                "exit_window": [params["exit_window"]]}
    elif name == "bollinger_reversion":
        params = {"bb_period": draw(st.integers(2, 12)), "bb_k": draw(st.sampled_from([0.5, 1.0, 2.0]))}
        grid = {"bb_period": [params["bb_period"], params["bb_period"] + 3], "bb_k": [params["bb_k"]]}
    elif name == "eight":
        name = f"{__name__}:EightIndicators"
        params = {"ema_period": draw(st.integers(1, 12)), "atr_period": draw(st.integers(1, 8)),
                  "bb_period": draw(st.integers(1, 10)), "bb_k": draw(st.sampled_from([0.0, 1.0, 2.5])),
                  "macd_fast": draw(st.integers(1, 6)), "macd_slow": draw(st.integers(2, 12)),
                  "macd_signal_period": draw(st.integers(1, 6)), "roc_period": draw(st.integers(1, 6)),
                  "threshold": draw(st.sampled_from([0.0, 0.001]))}
        grid = {k: [v] for k, v in params.items()}
        grid["ema_period"] = [params["ema_period"], params["ema_period"] + 1]
    elif name == "user":
        name = f"{__name__}:UserIndicators"
        params = {"fast_n": draw(st.integers(1, 5)), "slow_n": draw(st.integers(2, 10)), "z_n": draw(st.integers(1, 8)),
                  "k_n": draw(st.integers(1, 8)), "k_mult": draw(st.sampled_from([0.0, 1.0, 2.5])),
                  "scale": draw(st.sampled_from([1.0, -0.5])), "z_limit": draw(st.sampled_from([0.5, 1.5]))}
        grid = {k: [v] for k, v in params.items()}
        grid["slow_n"] = [params["slow_n"], params["slow_n"] + 2]
    else:
        name = f"{__name__}:StatefulExit"
        params = {"sma_period": draw(st.integers(1, 8)), "atr_period": draw(st.integers(1, 6)),
                  "gain": draw(st.sampled_from([0.001, 0.01, 0.05])), "hold": draw(st.integers(1, 15)),
                  "atr_mult": draw(st.sampled_from([0.5, 1.0, 3.0]))}
        grid = {k: [v] for k, v in params.items()}
        grid["hold"] = [params["hold"], params["hold"] + 4]
    return name, params, grid


costs = st.one_of(st.just(0.0), st.floats(0.0, 0.01, allow_nan=False))
stops = st.one_of(st.none(), st.floats(0.001, 0.2, allow_nan=False))
take_profits = st.one_of(st.none(), st.floats(0.001, 0.3, allow_nan=False))
trailing_stops = st.one_of(st.none(), st.floats(0.001, 0.3, allow_nan=False))
time_limits = st.one_of(st.none(), st.integers(1, 30))
sizes = st.sampled_from([1.0, 0.5, 0.37])
directions = st.sampled_from(["long", "short", "both"])


# --- comparisons --------------------------------------------------------------------------------


def _close(a, b, what):
    assert math.isclose(a, b, rel_tol=REL, abs_tol=0.0) or a == b, f"{what}: {a!r} != {b!r}"


def assert_same_trades(ref, fast):
    assert len(ref) == len(fast), f"trade count {len(ref)} != {len(fast)}\n{ref}\n{fast}"
    for k, (a, b) in enumerate(zip(ref, fast)):
        assert (a.entry_bar, a.exit_bar, a.exit_reason, a.direction, a.entry_time, a.exit_time) == \
               (b.entry_bar, b.exit_bar, b.exit_reason, b.direction, b.entry_time, b.exit_time), \
            f"trade {k}: {a} != {b}"
        for f in ("entry_price", "exit_price", "qty", "fees", "pnl", "ret"):
            _close(getattr(a, f), getattr(b, f), f"trade {k} {f}")


def assert_same_metrics(ref: dict, other: dict, label: str):
    assert set(ref) == set(other)
    for k, a in ref.items():
        b = other[k]
        assert (a is None) == (b is None), f"{label} {k}: {a!r} vs {b!r}"
        if a is None:
            continue
        if k in INT_METRICS:
            assert a == b, f"{label} {k}: {a!r} vs {b!r}"
        else:
            _close(a, b, f"{label} {k}")


def row(cols: dict, i: int) -> dict:
    out = {}
    for k, v in cols.items():
        x = v[i].item()
        out[k] = None if isinstance(x, float) and math.isnan(x) else x
    return out


# --- the property ---------------------------------------------------------------------------------


@settings(max_examples=examples(ci=600, local=200), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(candles=ohlc(), strat=strategy_grid(), fill=st.sampled_from(["close", "next_open"]), slippage=costs,
       commission=costs, stop_loss=stops, take_profit=take_profits, trailing_stop=trailing_stops,
       max_bars=time_limits, size=sizes, direction=directions)
def test_fast_path_matches_reference(candles, strat, fill, slippage, commission, stop_loss, take_profit,
                                     trailing_stop, max_bars, size, direction):
    name, params, grid = strat
    other_stop = 0.05 if stop_loss is None else None
    cfg = parse_config({
        "strategies": {name: grid},
        "portfolio": {"direction": direction, "size": size},
        "risk": {"stop_loss": [stop_loss, other_stop], "take_profit": take_profit, "trailing_stop": trailing_stop,
                 "max_bars": max_bars},
        "execution": {"commission": commission, "slippage": slippage, "fill": fill},
    })
    (sw,) = build_grid(cfg)
    matches = [i for i in range(len(sw)) if sw.params(i) == params and sw.stop_loss(i) == stop_loss]
    assert len(matches) == 1
    i = matches[0]
    rules = sw.rules(i)
    assert (rules.direction, rules.size, rules.take_profit, rules.trailing_stop, rules.max_bars) == \
        (direction, size, take_profit, trailing_stop, max_bars)

    ex = Execution(CAPITAL, slippage, commission, fill)
    ref = BacktestingEngine(candles, sw.strategy(**params), ex, rules).run()
    det = runner.detail(sw, i, candles, ex)

    event(f"bars: {'1-5' if len(candles) <= 5 else '6-60' if len(candles) <= 60 else '61-400'}")
    event(f"closed trades: {min(ref.metrics['n_trades'], 3)}{'+' if ref.metrics['n_trades'] >= 3 else ''}")
    for reason in ("stop", "trailing_stop", "take_profit", "time", "bust", "open"):
        if any(t.exit_reason == reason for t in ref.trades):
            event(f"has {reason} exit")
    if any(t.direction == "short" for t in ref.trades):
        event("has a short")
    if any(t.exit_reason in ("stop", "trailing_stop", "take_profit")
           and t.exit_price == candles.open[t.exit_bar] * (1 - slippage if t.direction == "long" else 1 + slippage)
           for t in ref.trades):
        event("a level gapped through at the open")
    assert_same_trades(ref.trades, det.trades)
    assert ref.equity.shape == det.equity.shape == (len(candles) + 1,)
    for t, (a, b) in enumerate(zip(ref.equity.tolist(), det.equity.tolist())):
        _close(a, b, f"equity[{t}]")
    assert_same_metrics(ref.metrics, det.metrics, "detail")

    whole = runner.sweep(sw, candles, ex)
    assert_same_metrics(ref.metrics, row(whole, i), "sweep")
    chunked = runner.sweep(sw, candles, ex, chunk=7)
    assert_same_metrics(ref.metrics, row(chunked, i), "sweep chunk=7")
    subset = runner.sweep(sw, candles, ex, indices=np.array([i]), chunk=13)
    assert_same_metrics(ref.metrics, row(subset, 0), "sweep indices=[i] chunk=13")
    # Every other combination of the grid streams to the same metrics in both chunkings.
    for j in range(len(sw)):
        assert_same_metrics(row(whole, j), row(chunked, j), f"combination {j} chunk=7 vs whole")


@settings(max_examples=examples(ci=250, local=100), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(candles=ohlc(), strat=strategy_grid(), fill=st.sampled_from(["close", "next_open"]), slippage=costs,
       commission=costs, stop_loss=stops, take_profit=take_profits, trailing_stop=trailing_stops,
       max_bars=time_limits, direction=directions, test=st.booleans(), data=st.data())
def test_windows_and_validation_sums_match_reference(candles, strat, fill, slippage, commission, stop_loss,
                                                     take_profit, trailing_stop, max_bars, direction, test, data):
    """docs/semantics.md, "Windows": a run on bars [a, b) (a train or a test window) is the same on
    both engines, and the fast path's streamed validation sums (Σr..Σr⁴, Σr and Σr² per CSCV
    block) equal the sums of the reference engine's equity curve."""
    name, params, grid = strat
    n = len(candles)
    a = data.draw(st.integers(0, n - 1), label="a")
    b = data.draw(st.integers(a + 1, n), label="b")
    T = b - a
    S = data.draw(st.sampled_from([s for s in (2, 4, 6) if 2 * s <= T] or [0]), label="blocks")
    edges = block_edges(T, S) if S else None
    cfg = parse_config({
        "strategies": {name: grid},
        "portfolio": {"direction": direction},
        "risk": {"stop_loss": stop_loss, "take_profit": take_profit, "trailing_stop": trailing_stop,
                 "max_bars": max_bars},
        "execution": {"commission": commission, "slippage": slippage, "fill": fill},
    })
    (sw,) = build_grid(cfg)
    (i,) = [i for i in range(len(sw)) if sw.params(i) == params]
    ex = Execution(CAPITAL, slippage, commission, fill)
    ref = BacktestingEngine(candles, sw.strategy(**params), ex, sw.rules(i)).run((a, b), test)
    det = runner.detail(sw, i, candles, ex, window=(a, b), test=test)
    event(f"window: {'whole' if (a, b) == (0, n) else 'inside'}, {'test' if test else 'train'}")
    if any(t.exit_reason == "window_end" for t in ref.trades):
        event("has window_end exit")
    if test:
        assert all(t.exit_reason != "open" for t in ref.trades)
    assert_same_trades(ref.trades, det.trades)
    assert ref.equity.shape == det.equity.shape == (T + 1,)
    for t, (x, y) in enumerate(zip(ref.equity.tolist(), det.equity.tolist())):
        _close(x, y, f"equity[{t}]")
    assert_same_metrics(ref.metrics, det.metrics, "detail")

    streamed = runner.sweep(sw, candles, ex, window=(a, b), test=test, moments=True,
                            block_edges=edges, chunk=5)
    assert_same_metrics(ref.metrics, row({m: streamed[m] for m in ref.metrics}, i), "sweep")
    for k, (x, y) in enumerate(zip(power_sums(ref.equity), streamed[runner.POWER_SUMS][i])):
        assert y == pytest.approx(x, rel=1e-9, abs=1e-15), f"power sum {k + 1}"
    if edges is not None:
        r1, r2 = block_sums(ref.equity, edges)
        np.testing.assert_allclose(streamed[runner.BLOCK_R][i], r1, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(streamed[runner.BLOCK_R2][i], r2, rtol=1e-9, atol=1e-15)


def _series(n=400, seed=7):
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), 2)
    close[100:120] = close[99]
    open_ = np.concatenate([[close[0]], close[:-1]])
    open_[200] = close[199] * 0.85  # a gap through any long's levels
    open_[300] = close[299] * 1.2  # and one through any short's
    high = np.maximum(open_, close) + np.round(np.abs(rng.normal(0, 0.4, n)), 2)
    low = np.minimum(open_, close) - np.round(np.abs(rng.normal(0, 0.4, n)), 2)
    high[100:120] = low[100:120] = open_[100:120] = close[99]
    return Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=open_, high=high, low=low,
                   close=close, volume=np.ones(n), interval_ms=900_000)


GRIDS = {
    "ma_crossover": {"short_window": [2, 4], "long_window": [6, 12], "ema_period": [5, 20],
                     "momentum_spread": [0.0, 0.001]},
    "rsi_reversion": {"rsi_period": [3, 7], "oversold": [30.0, 45.0], "overbought": [55.0, 70.0]},
    "donchian_breakout": {"entry_window": [2, 5, 9], "exit_window": [2, 6]},
    "bollinger_reversion": {"bb_period": [5, 10], "bb_k": [1.0, 2.0]},
}


@pytest.mark.parametrize("name", list(GRIDS))
def test_whole_grid_matches_reference_on_one_series(name):
    """Every combination of a grid, not just one, on a fixed 400-bar series, with the kernel
    the sweep picks itself."""
    candles = _series()
    for fill, rules in (("close", {"risk": {"stop_loss": [None, 0.01, 0.05]}}),
                        ("next_open", {"risk": {"stop_loss": [None, 0.02], "take_profit": [None, 0.03],
                                                "trailing_stop": 0.02, "max_bars": 40},
                                       "portfolio": {"direction": ["long", "both"], "size": 0.7}})):
        cfg = parse_config({"strategies": {name: GRIDS[name]}, **rules,
                            "execution": {"commission": 0.001, "slippage": 0.0005, "fill": fill}})
        (sw,) = build_grid(cfg)
        ex = Execution(CAPITAL, 0.0005, 0.001, fill)
        cols = runner.sweep(sw, candles, ex, chunk=64)
        for i in range(len(sw)):
            ref = BacktestingEngine(candles, sw.instance(i), ex, sw.rules(i)).run()
            det = runner.detail(sw, i, candles, ex)
            assert_same_trades(ref.trades, det.trades)
            assert_same_metrics(ref.metrics, det.metrics, f"{fill} {i} detail")
            assert_same_metrics(ref.metrics, row(cols, i), f"{fill} {i} sweep")


@pytest.mark.parametrize("rules", [
    {"risk": {"stop_loss": 0.02}},
    {"portfolio": {"direction": "short"}, "risk": {"stop_loss": 0.02}},
    {"risk": {"stop_loss": 0.02, "take_profit": 0.02, "max_bars": 25}},
    {"risk": {"stop_loss": 0.02, "trailing_stop": 0.015}, "portfolio": {"direction": "both", "size": 0.5}},
], ids=["default", "short", "tp-time", "trailing-both"])
def test_hold_loop_variants_agree(rules):
    """The hold loops with the validation moment sums compiled in give the same metrics as the
    plain ones a sweep without validation uses (the sums add to the state, nothing else)."""
    cfg = parse_config({"strategies": {"ma_crossover": GRIDS["ma_crossover"]}, **rules})
    (sw,) = build_grid(cfg)
    candles = _series(seed=11)
    for fill in ("close", "next_open"):
        ex = Execution(CAPITAL, 0.0005, 0.001, fill)
        plain = runner.sweep(sw, candles, ex)
        with_moments = runner.sweep(sw, candles, ex, moments=True)
        for i in range(len(sw)):
            assert_same_metrics(row(plain, i), row({m: with_moments[m] for m in plain}, i), f"{fill} combination {i}")


@pytest.mark.parametrize("name", list(GRIDS))
def test_whole_grid_on_windows_matches_reference(name):
    """Every combination of a grid on train and test windows of the fixed series, with the
    loops a validated sweep uses (moment sums on; test windows' last bar)."""
    candles = _series()
    ends = 0
    for fill, rules in (("close", {"risk": {"stop_loss": [None, 0.01]}}),
                        ("next_open", {"risk": {"stop_loss": [None, 0.02], "take_profit": [None, 0.03],
                                                "trailing_stop": 0.02, "max_bars": 40},
                                       "portfolio": {"direction": ["long", "both"], "size": 0.7}})):
        cfg = parse_config({"strategies": {name: GRIDS[name]}, **rules,
                            "execution": {"commission": 0.001, "slippage": 0.0005, "fill": fill}})
        (sw,) = build_grid(cfg)
        ex = Execution(CAPITAL, 0.0005, 0.001, fill)
        for (a, b), test in itertools.product([(37, 291), (20, 250)], (False, True)):
            edges = block_edges(b - a, 4)
            cols = runner.sweep(sw, candles, ex, chunk=64, window=(a, b), test=test,
                                moments=True, block_edges=edges)
            for i in range(len(sw)):
                ref = BacktestingEngine(candles, sw.instance(i), ex, sw.rules(i)).run((a, b), test)
                det = runner.detail(sw, i, candles, ex, window=(a, b), test=test)
                ends += sum(t.exit_reason == "window_end" for t in ref.trades)
                label = f"{fill} [{a}, {b}) {'test' if test else 'train'} {i}"
                assert_same_trades(ref.trades, det.trades)
                assert_same_metrics(ref.metrics, det.metrics, f"{label} detail")
                assert_same_metrics(ref.metrics, row({m: cols[m] for m in ref.metrics}, i), f"{label} sweep")
                np.testing.assert_allclose(cols[runner.POWER_SUMS][i], power_sums(ref.equity), rtol=1e-9, atol=1e-15)
                r1, r2 = block_sums(ref.equity, edges)
                np.testing.assert_allclose(cols[runner.BLOCK_R][i], r1, rtol=1e-9, atol=1e-13)
                np.testing.assert_allclose(cols[runner.BLOCK_R2][i], r2, rtol=1e-9, atol=1e-15)
    assert ends > 0, "no test window ended with an open position: the window_end rule went untested"
