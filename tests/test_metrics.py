"""compute_metrics on hand-built equity curves and trade lists, and the fast path's streamed metrics.

Expected values are worked out by hand (arithmetic written out) or with the
``statistics`` module, independently of ``engine.metrics``.
"""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pytest

from engine.grid import build_grid
from engine.candles import Candles
from engine.config import parse_config
from engine.fast import runner
from engine.execution import Execution
from engine.metrics import INT_METRICS, METRICS, compute_metrics
from engine.reference import BacktestingEngine
from engine.trade import Trade

P = 4.0  # a small "bars per year" keeps the arithmetic readable


def trade(pnl, ret, fees=0.0, entry_bar=0, exit_bar=1, reason="signal"):
    return Trade(entry_bar, exit_bar, entry_bar * 900_000, exit_bar * 900_000, 100.0, 100.0 * (1 + ret), 1.0, fees,
                 pnl, ret, reason)


def metrics(E, trades=(), *, ppy=P, close_first=50.0, close_last=60.0, bars_in_position=0):
    return compute_metrics(np.array(E, dtype=float), list(trades), periods_per_year=ppy, close_first=close_first,
                           close_last=close_last, bars_in_position=bars_in_position)


# --- every metric on one hand-built case -----------------------------------------------------

E1 = [100, 110, 99, 121, 110, 132]
TRADES1 = [
    trade(10, 0.10, fees=1.0, entry_bar=0, exit_bar=1),
    trade(-5, -0.05, fees=1.0, entry_bar=2, exit_bar=5, reason="stop"),
    trade(20, 0.20, fees=2.0, entry_bar=6, exit_bar=8),
    trade(7, 0.07, fees=0.5, entry_bar=9, exit_bar=10, reason="open"),  # still open at the end
]


@pytest.fixture(scope="module")
def m1():
    return metrics(E1, TRADES1, bars_in_position=3)


def test_return_based(m1):
    r = [110 / 100 - 1, 99 / 110 - 1, 121 / 99 - 1, 110 / 121 - 1, 132 / 110 - 1]  # T = 5
    mean = statistics.fmean(r)
    assert m1["sharpe"] == pytest.approx(mean / statistics.stdev(r) * math.sqrt(P), rel=1e-12)
    downside = math.sqrt(((99 / 110 - 1) ** 2 + (110 / 121 - 1) ** 2) / 5)
    assert m1["sortino"] == pytest.approx(mean / downside * math.sqrt(P), rel=1e-12)
    assert m1["total_return"] == pytest.approx(0.32, rel=1e-12)
    assert m1["pnl"] == pytest.approx(32.0, rel=1e-12)
    assert m1["final_equity"] == 132.0
    assert m1["cagr"] == pytest.approx(1.32 ** (4 / 5) - 1, rel=1e-12)


def test_drawdown(m1):
    # running peak 100, 110, 110, 121, 121, 132; drawdowns 0, 0, 11/110, 0, 11/121, 0
    assert m1["max_drawdown"] == pytest.approx(0.1, rel=1e-12)
    assert m1["max_drawdown_abs"] == pytest.approx(11.0, rel=1e-12)
    assert m1["max_drawdown_duration"] == 1
    assert m1["calmar"] == pytest.approx((1.32 ** 0.8 - 1) / 0.1, rel=1e-12)


def test_trade_statistics_leave_out_the_open_trade(m1):
    assert m1["n_trades"] == 3
    assert m1["win_rate"] == pytest.approx(2 / 3)
    assert m1["profit_factor"] == pytest.approx((10 + 20) / 5)
    assert m1["avg_trade_return"] == pytest.approx((0.10 - 0.05 + 0.20) / 3, rel=1e-12)
    assert m1["best_trade"] == 0.20
    assert m1["worst_trade"] == -0.05
    assert m1["expectancy"] == pytest.approx((10 - 5 + 20) / 3, rel=1e-12)
    assert m1["avg_bars_held"] == pytest.approx((1 + 3 + 2) / 3)


def test_exposure_fees_and_buy_and_hold(m1):
    assert m1["exposure"] == pytest.approx(3 / 5)
    assert m1["total_fees"] == pytest.approx(1.0 + 1.0 + 2.0 + 0.5)  # the open trade's entry fee too
    assert m1["buy_and_hold_return"] == pytest.approx(60 / 50 - 1)


def test_every_metric_is_reported(m1):
    assert set(m1) == set(METRICS)
    for k in INT_METRICS:
        assert isinstance(m1[k], int)


# --- drawdown details ----------------------------------------------------------------------------


def test_drawdown_that_never_recovers():
    m = metrics([100, 120, 90, 100, 110, 115])
    # peak 120 at E[1]; every later value is below it: 4 bars since the last maximum at the end
    assert m["max_drawdown_duration"] == 4
    assert m["max_drawdown"] == pytest.approx(30 / 120)
    assert m["max_drawdown_abs"] == pytest.approx(30.0)


def test_drawdown_that_recovers_exactly_to_the_peak():
    # E[3] == 120 == the running maximum: a new "last maximum", so the clock restarts there.
    m = metrics([100, 120, 90, 120, 100, 130])
    assert m["max_drawdown_duration"] == 1
    m = metrics([100, 120, 90, 95, 120, 110])
    assert m["max_drawdown_duration"] == 2  # E[2], E[3] below the peak of E[1]


def test_longest_duration_wins_even_if_shallower():
    m = metrics([100, 90, 95, 99, 98, 101, 50, 102])
    # below 100 for E[1..4] (4 bars), below 101 at E[6] only (1 bar)
    assert m["max_drawdown_duration"] == 4
    assert m["max_drawdown"] == pytest.approx(1 - 50 / 101)


def test_max_drawdown_abs_is_taken_where_the_fraction_peaks():
    m = metrics([100, 50, 1000, 600, 1000])
    # fractions 0.5 (abs 50) at E[1] and 0.4 (abs 400) at E[3]: the abs is 50, not 400
    assert m["max_drawdown"] == pytest.approx(0.5)
    assert m["max_drawdown_abs"] == pytest.approx(50.0)
    m = metrics([100, 50, 100, 200, 100])
    # 0.5 at E[1] (abs 50) and again at E[4] (abs 100): the first one counts
    assert m["max_drawdown_abs"] == pytest.approx(50.0)


# --- undefined values ------------------------------------------------------------------------------


def test_no_trades():
    m = metrics([100, 101, 100.5, 102])
    assert m["n_trades"] == 0
    for k in ("win_rate", "profit_factor", "avg_trade_return", "best_trade", "worst_trade", "expectancy",
              "avg_bars_held"):
        assert m[k] is None, k
    assert m["total_fees"] == 0.0


def test_only_an_open_trade_counts_as_no_trades():
    m = metrics([100, 101, 102], [trade(2, 0.02, fees=0.1, reason="open")], bars_in_position=2)
    assert m["n_trades"] == 0 and m["win_rate"] is None and m["expectancy"] is None
    assert m["total_fees"] == pytest.approx(0.1)
    assert m["exposure"] == 1.0


def test_flat_equity():
    m = metrics([100, 100, 100, 100])
    assert m["sharpe"] is None  # zero variance
    assert m["sortino"] is None  # no negative return
    assert m["calmar"] is None  # no drawdown
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_abs"] == 0.0 and m["max_drawdown_duration"] == 0
    assert m["total_return"] == 0.0 and m["cagr"] == 0.0 and m["exposure"] == 0.0


def test_constant_nonzero_returns_have_zero_variance():
    m = metrics([1, 2, 4, 8])  # r = 1, 1, 1 exactly
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None
    assert m["cagr"] == pytest.approx(8 ** (4 / 3) - 1)


def test_single_return():
    m = metrics([100, 90])  # T = 1: no sample standard deviation
    assert m["sharpe"] is None
    assert m["sortino"] == pytest.approx(-0.1 / 0.1 * math.sqrt(P))
    assert m["cagr"] == pytest.approx(0.9 ** 4 - 1)
    assert m["calmar"] == pytest.approx((0.9 ** 4 - 1) / 0.1)


def test_profit_factor_without_losing_trades():
    m = metrics([100, 105], [trade(5, 0.05), trade(0.0, 0.0)])
    assert m["profit_factor"] is None
    assert m["win_rate"] == 0.5  # a zero-pnl trade is not a win
    m = metrics([100, 100], [trade(0.0, 0.0)])
    assert m["profit_factor"] is None and m["win_rate"] == 0.0
    m = metrics([100, 95], [trade(-5, -0.05)])
    assert m["profit_factor"] == 0.0  # losses and no wins: 0 / 5


def test_overflowing_cagr_is_none():
    # 15-minute bars: P / T = 35,040 / 2; 2 ** 17,520 overflows a double
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and quietly: no RuntimeWarning
        m = metrics([100, 150, 200], ppy=35_040.0)
    assert m["cagr"] is None and m["calmar"] is None


def test_a_bust_leaves_return_based_metrics_undefined():
    # equity reaches -50 (a short covered above twice its entry) and stays there
    E = [100, 120, 90, -50, -50]
    m = metrics(E, [trade(-150, -1.5, entry_bar=0, exit_bar=2, reason="bust")])
    for k in ("sharpe", "sortino", "cagr", "calmar"):
        assert m[k] is None, k
    assert m["total_return"] == pytest.approx(-1.5)
    assert m["pnl"] == pytest.approx(-150.0)
    assert m["final_equity"] == -50.0
    assert m["max_drawdown"] == pytest.approx(1 + 50 / 120)  # above 1: more than everything was lost
    assert m["max_drawdown_abs"] == pytest.approx(170.0)
    assert m["max_drawdown_duration"] == 3
    assert m["n_trades"] == 1 and m["worst_trade"] == -1.5


def test_a_bust_to_exactly_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 in the returns after it: quietly undefined
        m = metrics([100, 80, 0, 0])
    assert m["sharpe"] is None and m["sortino"] is None and m["cagr"] is None
    assert m["total_return"] == -1.0 and m["max_drawdown"] == 1.0


# --- the fast path's streamed metrics equal the reference's --------------------------------------


def _walk(n, seed, *, flat_every=0):
    rng = np.random.default_rng(seed)
    steps = rng.standard_t(4, n) * 0.004
    if flat_every:
        steps[::flat_every] = 0.0
    close = 20_000 * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.002, (2, n))) * close
    high = np.maximum(open_, close) + spread[0]
    low = np.minimum(open_, close) - spread[1]
    return Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=open_, high=high, low=low, close=close,
                   volume=np.ones(n), interval_ms=900_000)


def assert_same_metrics(ref: dict, fast: dict, rel=1e-9):
    assert set(ref) == set(fast)
    for k in ref:
        a, b = ref[k], fast[k]
        assert (a is None) == (b is None), (k, a, b)
        if k in INT_METRICS:
            assert a == b, (k, a, b)
        elif a is not None:
            assert b == pytest.approx(a, rel=rel, abs=1e-12), (k, a, b)


SCENARIOS = {
    "ma_crossover_close": ({"ma_crossover": {"short_window": [3, 8], "long_window": [20, 40], "ema_period": [30],
                                             "momentum_spread": [0.0, 0.0005]}}, "close", [None, 0.01]),
    "rsi_next_open": ({"rsi_reversion": {"rsi_period": [6, 14], "oversold": [30, 40], "overbought": [60]}},
                      "next_open", [None, 0.005]),
    "donchian_next_open": ({"donchian_breakout": {"entry_window": [10, 30], "exit_window": [5]}},
                           "next_open", [0.02]),
    "never_trades": ({"ma_crossover": {"short_window": [5], "long_window": [10], "ema_period": [10],
                                       "momentum_spread": [0.5]}}, "close", [None]),
    "bollinger_both_exits": ({"bollinger_reversion": {"bb_period": [10, 20], "bb_k": [1.0, 2.0]}}, "next_open",
                             [None, 0.01], {"portfolio": {"direction": "both", "size": 0.8},
                                            "risk": {"take_profit": 0.01, "trailing_stop": 0.005, "max_bars": 30}}),
    "rsi_short_busts": ({"rsi_reversion": {"rsi_period": [3], "oversold": [20], "overbought": [55]}}, "close",
                        [None], {"portfolio": {"direction": "short"}}),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_streamed_metrics_equal_reference(name):
    strategies, fill, stops, *extra = SCENARIOS[name]
    rules = extra[0] if extra else {}
    cfg = parse_config({"strategies": strategies, **rules, "risk": {"stop_loss": stops, **rules.get("risk", {})},
                        "execution": {"commission": 0.001, "slippage": 0.0005, "fill": fill}})
    (sw,) = build_grid(cfg)
    candles = _walk(3000, seed=len(name), flat_every=7)
    if name == "rsi_short_busts":  # a short squeeze: the price triples over 300 bars
        ramp = np.concatenate([np.ones(1500), np.linspace(1, 3, 300), np.full(1200, 3.0)])
        candles = Candles(candles.open_time, candles.open * ramp, candles.high * ramp, candles.low * ramp,
                          candles.close * ramp, candles.volume, candles.interval_ms)
    ex = Execution(100_000.0, 0.0005, 0.001, fill)
    cols = runner.sweep(sw, candles, ex, chunk=512)
    traded = 0
    for i in range(len(sw)):
        ref = BacktestingEngine(candles, sw.strategy(**sw.params(i)), ex, sw.rules(i)).run()
        row = {k: (None if isinstance(v[i].item(), float) and math.isnan(v[i].item()) else v[i].item())
               for k, v in cols.items()}
        assert_same_metrics(ref.metrics, row)
        traded += ref.metrics["n_trades"] > 0
    if name == "never_trades":
        assert traded == 0
    elif name == "rsi_short_busts":
        assert cols["final_equity"][0] <= 0 and np.isnan(cols["sharpe"][0])
    else:
        assert traded > 0
