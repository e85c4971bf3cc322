"""Property test: the compiled fast path reproduces the reference engine exactly.

Random OHLC series (random walks with flat stretches, gaps through the stop,
spikes, prices rounded to a tick so ties happen, lengths from 1 to ~400 bars), a
random built-in strategy with random parameters, fill mode, slippage,
commission and stop-loss. The reference ``BacktestingEngine``, the fast
``detail`` run and the fast ``sweep`` (default chunk, and chunk 7 so state is
carried across many chunk boundaries) must give the same trades, equity curve
and metrics: bars and exit reasons equal, numbers to 1e-9 relative, None where
the other is None.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.candles import Candles
from engine.config import parse_config
from engine.fast import runner
from engine.execution import Execution
from engine.metrics import INT_METRICS
from engine.reference import BacktestingEngine

CAPITAL = 100_000.0
REL = 1e-9


# --- generators ---------------------------------------------------------------------------------


@st.composite
def ohlc(draw) -> Candles:
    bucket = draw(st.integers(0, 9))  # 20 % very short, 30 % medium, 50 % long
    n = draw(st.integers(1, 5) if bucket < 2 else st.integers(6, 60) if bucket < 5 else st.integers(61, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    vol = draw(st.sampled_from([0.003, 0.01, 0.03]))
    p_flat = draw(st.sampled_from([0.0, 0.05, 0.2]))  # chance a flat stretch starts
    p_gap = draw(st.sampled_from([0.0, 0.02, 0.1]))  # chance of an open far below the previous close
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
        if u < p_gap:
            op = prev * (1 - rng.uniform(0.05, 0.4))
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
    name = draw(st.sampled_from(["ma_crossover", "rsi_reversion", "donchian_breakout"]))
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
    else:
        params = {"entry_window": draw(st.integers(1, 10)), "exit_window": draw(st.integers(1, 10))}
        grid = {"entry_window": [params["entry_window"], params["entry_window"] + 2],
                "exit_window": [params["exit_window"]]}
    return name, params, grid


costs = st.one_of(st.just(0.0), st.floats(0.0, 0.01, allow_nan=False))
stops = st.one_of(st.none(), st.floats(0.001, 0.2, allow_nan=False))


# --- comparisons --------------------------------------------------------------------------------


def _close(a, b, what):
    assert math.isclose(a, b, rel_tol=REL, abs_tol=0.0) or a == b, f"{what}: {a!r} != {b!r}"


def assert_same_trades(ref, fast):
    assert len(ref) == len(fast), f"trade count {len(ref)} != {len(fast)}\n{ref}\n{fast}"
    for k, (a, b) in enumerate(zip(ref, fast)):
        assert (a.entry_bar, a.exit_bar, a.exit_reason, a.entry_time, a.exit_time) == \
               (b.entry_bar, b.exit_bar, b.exit_reason, b.entry_time, b.exit_time), f"trade {k}: {a} != {b}"
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


@settings(max_examples=600, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(candles=ohlc(), strat=strategy_grid(), fill=st.sampled_from(["close", "next_open"]), slippage=costs,
       commission=costs, stop_loss=stops)
def test_fast_path_matches_reference(candles, strat, fill, slippage, commission, stop_loss):
    name, params, grid = strat
    other_stop = 0.05 if stop_loss is None else None
    cfg = parse_config({
        "strategies": {name: grid},
        "risk": {"stop_loss": [stop_loss, other_stop]},
        "execution": {"commission": commission, "slippage": slippage, "fill": fill},
    })
    (sw,) = cfg.grid
    matches = [i for i in range(len(sw)) if sw.params(i) == params and sw.stop_loss(i) == stop_loss]
    assert len(matches) == 1
    i = matches[0]

    ex = Execution(CAPITAL, slippage, commission, fill)
    ref = BacktestingEngine(candles, sw.strategy(**params), ex, stop_loss=stop_loss).run()
    det = runner.detail(sw, i, candles, ex)

    event(f"bars: {'1-5' if len(candles) <= 5 else '6-60' if len(candles) <= 60 else '61-400'}")
    event(f"closed trades: {min(ref.metrics['n_trades'], 3)}{'+' if ref.metrics['n_trades'] >= 3 else ''}")
    for reason in ("stop", "open"):
        if any(t.exit_reason == reason for t in ref.trades):
            event(f"has {reason} exit")
    if any(t.exit_reason == "stop" and t.exit_price == candles.open[t.exit_bar] * (1 - slippage)
           for t in ref.trades):
        event("stop gapped through at the open")
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


@pytest.mark.parametrize("name", ["ma_crossover", "rsi_reversion", "donchian_breakout"])
def test_whole_grid_matches_reference_on_one_series(name):
    """Every combination of a grid, not just one, on a fixed 400-bar series."""
    grids = {
        "ma_crossover": {"short_window": [2, 4], "long_window": [6, 12], "ema_period": [5, 20],
                         "momentum_spread": [0.0, 0.001]},
        "rsi_reversion": {"rsi_period": [3, 7], "oversold": [30.0, 45.0], "overbought": [55.0, 70.0]},
        "donchian_breakout": {"entry_window": [2, 5, 9], "exit_window": [2, 6]},
    }
    rng = np.random.default_rng(7)
    n = 400
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), 2)
    close[100:120] = close[99]
    open_ = np.concatenate([[close[0]], close[:-1]])
    open_[200] = close[199] * 0.85  # a gap through any stop
    high = np.maximum(open_, close) + np.round(np.abs(rng.normal(0, 0.4, n)), 2)
    low = np.minimum(open_, close) - np.round(np.abs(rng.normal(0, 0.4, n)), 2)
    high[100:120] = low[100:120] = open_[100:120] = close[99]
    candles = Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=open_, high=high, low=low,
                      close=close, volume=np.ones(n), interval_ms=900_000)
    for fill in ("close", "next_open"):
        cfg = parse_config({"strategies": {name: grids[name]}, "risk": {"stop_loss": [None, 0.01, 0.05]},
                            "execution": {"commission": 0.001, "slippage": 0.0005, "fill": fill}})
        (sw,) = cfg.grid
        ex = Execution(CAPITAL, 0.0005, 0.001, fill)
        cols = runner.sweep(sw, candles, ex, chunk=64)
        for i in range(len(sw)):
            ref = BacktestingEngine(candles, sw.strategy(**sw.params(i)), ex, stop_loss=sw.stop_loss(i)).run()
            det = runner.detail(sw, i, candles, ex)
            assert_same_trades(ref.trades, det.trades)
            assert_same_metrics(ref.metrics, det.metrics, f"{fill} {i} detail")
            assert_same_metrics(ref.metrics, row(cols, i), f"{fill} {i} sweep")
