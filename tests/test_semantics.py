"""Execution semantics (docs/semantics.md), one hand-computed case per rule, on both engines.

Every expected number below is worked out by hand from the contract, with the
arithmetic written out; nothing is copied from the code under test. Each case
runs on the event-driven reference engine and on the compiled fast path
(``engine.fast.runner.detail``); for the fast path the streamed metrics of
``engine.fast.runner.sweep`` are also checked against ``detail``'s.

The signals are controlled exactly by tiny strategies defined here: ``Threshold``
has no indicators and says BUY when ``close >= buy_at`` and SELL when
``close <= sell_at``. Its signal function lives at module top level because the
fast kernel imports it by module and qualified name.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from engine.candles import Candles
from engine.fast import runner
from engine.execution import Execution
from engine.grid import StrategySweep
from engine.reference import BacktestingEngine
from engine.strategies import ENTRY, EXIT, MACrossover, Strategy

CAPITAL = 100_000.0
P_15M = 365 * 24 * 4  # 35,040 bars per 365-day year
REL = 1e-12


@njit
def threshold_signal(o, h, lo, c, _v0, _v1, _v2, _v3, buy_at, sell_at, _p2, _p3):
    code = 0
    if c >= buy_at:
        code |= ENTRY
    if c <= sell_at:
        code |= EXIT
    return code


class Threshold(Strategy):
    """BUY when close >= buy_at, SELL when close <= sell_at; no indicators."""

    name = "test_threshold"
    buy_at: float = 1e12
    sell_at: float = -1.0

    signal = staticmethod(threshold_signal)
    signal_params = ("buy_at", "sell_at")


# --- helpers --------------------------------------------------------------------------


def bars(rows) -> Candles:
    """Candles from (open, high, low, close) rows, 15-minute bars."""
    a = np.array(rows, dtype=np.float64)
    n = len(a)
    assert (a[:, 1] >= np.maximum(a[:, 0], a[:, 3])).all() and (a[:, 2] <= np.minimum(a[:, 0], a[:, 3])).all()
    return Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=a[:, 0].copy(), high=a[:, 1].copy(),
                   low=a[:, 2].copy(), close=a[:, 3].copy(), volume=np.ones(n), interval_ms=900_000)


def one_combination(cls, params: dict, stop_loss) -> StrategySweep:
    inst = cls(**params)  # validates and fills defaults
    specs = cls.param_specs()
    columns = {p: np.array([getattr(inst, p)], dtype=np.int64 if specs[p][0] is int else np.float64)
               for p in specs}
    columns["stop_loss"] = np.array([math.nan if stop_loss is None else stop_loss])
    return StrategySweep(cls, columns, (), 0)


def run(engine, candles, cls=Threshold, *, fill="close", slippage=0.0, commission=0.0, stop_loss=None, **params):
    if engine == "reference":
        return BacktestingEngine(candles, cls(**params), Execution(CAPITAL, slippage, commission, fill),
                                 stop_loss=stop_loss).run()
    sw = one_combination(cls, params, stop_loss)
    ex = Execution(CAPITAL, slippage, commission, fill)
    res = runner.detail(sw, 0, candles, ex)
    streamed = runner.sweep(sw, candles, ex)
    for k, v in res.metrics.items():
        s = streamed[k][0].item()
        s = None if isinstance(s, float) and math.isnan(s) else s
        assert (v is None) == (s is None), k
        if v is not None:
            assert s == pytest.approx(v, rel=1e-12, abs=1e-12), k
    return res


def check_trade(tr, *, entry_bar, exit_bar, entry_price, exit_price, qty, fees, pnl, ret, reason):
    assert (tr.entry_bar, tr.exit_bar, tr.exit_reason) == (entry_bar, exit_bar, reason)
    assert tr.entry_time == entry_bar * 900_000 and tr.exit_time == exit_bar * 900_000
    assert tr.entry_price == pytest.approx(entry_price, rel=REL)
    assert tr.exit_price == pytest.approx(exit_price, rel=REL)
    assert tr.qty == pytest.approx(qty, rel=REL)
    assert tr.fees == pytest.approx(fees, rel=REL, abs=1e-12)
    assert tr.pnl == pytest.approx(pnl, rel=1e-9, abs=1e-7)
    assert tr.ret == pytest.approx(ret, rel=1e-9, abs=1e-12)


@pytest.fixture(params=["reference", "fast"])
def engine(request):
    return request.param


# A BUY on bar 2 (close 105 >= 105) and a SELL on bar 4 (close 99 <= 99).
ROUND_TRIP = bars([
    (100, 101, 99, 100),
    (100, 102, 99, 101),
    (101, 106, 100, 105),  # BUY decided
    (104, 105, 102, 103),
    (102, 103, 98, 99),  # SELL decided
    (98, 99, 97, 98),
])


# --- fills ------------------------------------------------------------------------------


def test_fill_close_trades_at_the_decision_bar_close(engine):
    r = run(engine, ROUND_TRIP, buy_at=105, sell_at=99)
    qty = 100_000 / 105
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=2, exit_bar=4, entry_price=105, exit_price=99, qty=qty, fees=0,
                pnl=qty * 99 - 100_000, ret=(qty * 99 - 100_000) / 100_000, reason="signal")
    # E[0] = capital, E[i] = cash + qty * close[i-1]
    expected = [100_000, 100_000, 100_000, qty * 105, qty * 103, qty * 99, qty * 99]
    np.testing.assert_allclose(r.equity, expected, rtol=REL)
    assert r.metrics["n_trades"] == 1
    assert r.metrics["final_equity"] == pytest.approx(100_000 * 99 / 105, rel=REL)


def test_fill_next_open_trades_at_the_following_open(engine):
    r = run(engine, ROUND_TRIP, fill="next_open", buy_at=105, sell_at=99)
    qty = 100_000 / 104  # BUY on bar 2 fills at open[3] = 104; SELL on bar 4 at open[5] = 98
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=3, exit_bar=5, entry_price=104, exit_price=98, qty=qty, fees=0,
                pnl=qty * 98 - 100_000, ret=(qty * 98 - 100_000) / 100_000, reason="signal")
    expected = [100_000, 100_000, 100_000, 100_000, qty * 103, qty * 99, qty * 98]
    np.testing.assert_allclose(r.equity, expected, rtol=REL)


@pytest.mark.parametrize("fill,entry_ref,exit_ref,entry_bar,exit_bar",
                         [("close", 105, 99, 2, 4), ("next_open", 104, 98, 3, 5)])
def test_slippage_on_both_sides(engine, fill, entry_ref, exit_ref, entry_bar, exit_bar):
    s = 0.01
    r = run(engine, ROUND_TRIP, fill=fill, slippage=s, buy_at=105, sell_at=99)
    entry = entry_ref * 1.01  # buys pay up
    exit_ = exit_ref * 0.99  # sells receive less
    qty = 100_000 / entry
    check_trade(r.trades[0], entry_bar=entry_bar, exit_bar=exit_bar, entry_price=entry, exit_price=exit_,
                qty=qty, fees=0, pnl=qty * exit_ - 100_000, ret=qty * exit_ / 100_000 - 1, reason="signal")
    assert r.metrics["final_equity"] == pytest.approx(100_000 * (exit_ref * 0.99) / (entry_ref * 1.01), rel=REL)


def test_commission_and_all_in_sizing(engine):
    r = run(engine, ROUND_TRIP, slippage=0.0005, commission=0.001, buy_at=105, sell_at=99)
    entry = 105 * 1.0005
    qty = 100_000 / (105 * 1.0005 * 1.001)
    entry_fee = 0.001 * qty * entry
    cost = qty * entry + entry_fee  # = 100,000: all the cash
    assert cost == pytest.approx(100_000, rel=1e-14)
    exit_ = 99 * 0.9995
    exit_fee = 0.001 * qty * exit_
    pnl = qty * exit_ - exit_fee - cost
    check_trade(r.trades[0], entry_bar=2, exit_bar=4, entry_price=entry, exit_price=exit_, qty=qty,
                fees=entry_fee + exit_fee, pnl=pnl, ret=pnl / 100_000, reason="signal")
    # cash after entry is 0 up to rounding: equity at the entry bar's close is qty * close.
    assert r.equity[3] - qty * 105 == pytest.approx(0.0, abs=1e-6)
    assert r.equity[4] - qty * 103 == pytest.approx(0.0, abs=1e-6)
    final = qty * exit_ - exit_fee  # the cash after the exit
    assert r.equity[5] == pytest.approx(final, rel=REL)
    assert r.equity[6] == pytest.approx(final, rel=REL)
    m = r.metrics
    assert m["total_fees"] == pytest.approx(entry_fee + exit_fee, rel=REL)
    assert m["pnl"] == pytest.approx(final - 100_000, rel=1e-9)
    assert m["total_return"] == pytest.approx(final / 100_000 - 1, rel=1e-9)


# --- position gating ----------------------------------------------------------------------


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_buy_while_long_is_ignored(engine, fill):
    c = bars([
        (100, 101, 99, 100),
        (101, 106, 100, 105),  # BUY
        (105, 107, 104, 106),  # BUY again, while long: ignored
        (106, 108, 105, 107),  # BUY again, while long: ignored
        (106, 107, 98, 99),  # SELL
        (99, 101, 98, 100),
    ])
    r = run(engine, c, fill=fill, buy_at=105, sell_at=99)
    assert len(r.trades) == 1
    if fill == "close":
        qty = 100_000 / 105
        check_trade(r.trades[0], entry_bar=1, exit_bar=4, entry_price=105, exit_price=99, qty=qty, fees=0,
                    pnl=qty * 99 - 100_000, ret=99 / 105 - 1, reason="signal")
    else:
        qty = 100_000 / 105  # open[2] = 105
        check_trade(r.trades[0], entry_bar=2, exit_bar=5, entry_price=105, exit_price=99, qty=qty, fees=0,
                    pnl=qty * 99 - 100_000, ret=99 / 105 - 1, reason="signal")


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_sell_while_flat_is_ignored(engine, fill):
    c = bars([
        (100, 101, 97, 98),  # SELL while flat: ignored
        (98, 99, 96, 97),  # SELL while flat: ignored
        (97, 106, 97, 105),  # BUY
        (104, 105, 98, 99),  # SELL
        (100, 101, 99, 100),
    ])
    r = run(engine, c, fill=fill, buy_at=105, sell_at=99)
    assert r.equity[1] == r.equity[2] == CAPITAL
    assert len(r.trades) == 1
    t = r.trades[0]
    if fill == "close":
        assert (t.entry_bar, t.exit_bar, t.entry_price, t.exit_price) == (2, 3, 105, 99)
    else:
        assert (t.entry_bar, t.exit_bar, t.entry_price, t.exit_price) == (3, 4, 104, 100)
    assert t.exit_reason == "signal"


# --- stop-loss ------------------------------------------------------------------------------

# BUY decided on bar 1 (close 100 >= 100); bar 0's close 99.5 does not trigger.
def _stop_bars(bar2, *rest):
    return bars([(99, 100, 98, 99.5), (100, 101, 99, 100), bar2, *rest])


def test_stop_by_low_fills_at_the_level(engine):
    c = _stop_bars((100, 101, 94, 97), (97, 98, 96, 97))
    r = run(engine, c, slippage=0.001, stop_loss=0.05, buy_at=100)
    entry = 100 * 1.001
    level = 100 * 1.001 * 0.95  # 95.095: open 100 is above it, low 94 is below
    qty = 100_000 / entry
    exit_ = level * 0.999
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=1, exit_bar=2, entry_price=entry, exit_price=exit_, qty=qty, fees=0,
                pnl=qty * exit_ - 100_000, ret=exit_ / entry - 1, reason="stop")
    assert r.equity[3] == pytest.approx(qty * exit_, rel=REL)


def test_stop_by_gap_fills_at_the_open(engine):
    c = _stop_bars((90, 92, 89, 91), (91, 92, 90, 91))
    r = run(engine, c, slippage=0.001, stop_loss=0.05, buy_at=100)
    entry = 100 * 1.001
    qty = 100_000 / entry
    exit_ = 90 * 0.999  # open 90 <= level 95.095: a gap, filled at the open, not at the level
    check_trade(r.trades[0], entry_bar=1, exit_bar=2, entry_price=entry, exit_price=exit_, qty=qty, fees=0,
                pnl=qty * exit_ - 100_000, ret=exit_ / entry - 1, reason="stop")


@pytest.mark.parametrize("low,stopped", [(75.0, True), (75.01, False)])
def test_stop_fires_when_the_low_touches_the_level(engine, low, stopped):
    # k = 0.25: level = 100 * 0.75 = 75 exactly; "low <= level" includes equality.
    c = _stop_bars((90, 91, low, 80), (80, 81, 79, 80))
    r = run(engine, c, stop_loss=0.25, buy_at=100)
    t = r.trades[0]
    if stopped:
        assert (t.exit_bar, t.exit_reason, t.exit_price) == (2, "stop", 75.0)
    else:
        assert (t.exit_bar, t.exit_reason) == (3, "open")


def test_stop_with_commission(engine):
    c = _stop_bars((100, 101, 94, 97), (97, 98, 96, 97))
    r = run(engine, c, slippage=0.001, commission=0.002, stop_loss=0.05, buy_at=100)
    entry = 100 * 1.001
    qty = 100_000 / (100 * 1.001 * 1.002)
    entry_fee = 0.002 * qty * entry
    exit_ = 100 * 1.001 * 0.95 * 0.999
    exit_fee = 0.002 * qty * exit_
    pnl = qty * exit_ - exit_fee - 100_000
    check_trade(r.trades[0], entry_bar=1, exit_bar=2, entry_price=entry, exit_price=exit_, qty=qty,
                fees=entry_fee + exit_fee, pnl=pnl, ret=pnl / 100_000, reason="stop")


def test_stop_not_checked_on_the_close_fill_entry_bar(engine):
    c = bars([
        (99, 100, 98, 99.5),
        (100, 101, 80, 100),  # BUY at the close; the low of 80 came before the fill
        (100, 101, 96, 100),  # low 96 > level 95: holds
        (100, 101, 94.5, 96),  # low 94.5 <= level 95: stopped at the level
        (96, 97, 95, 96),
    ])
    r = run(engine, c, stop_loss=0.05, buy_at=100)
    qty = 100_000 / 100
    level = 100 * (1 - 0.05)
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=1, exit_bar=3, entry_price=100, exit_price=level, qty=qty, fees=0,
                pnl=qty * level - 100_000, ret=level / 100 - 1, reason="stop")


def test_stop_checked_on_the_next_open_entry_bar(engine):
    c = bars([
        (99, 100, 98, 99.5),
        (100, 101, 99, 100),  # BUY decided
        (100, 101, 94, 98),  # filled at the open, then stopped by the low in the same bar
        (98, 99, 97, 98),
    ])
    r = run(engine, c, fill="next_open", slippage=0.001, stop_loss=0.05, buy_at=100)
    entry = 100 * 1.001
    qty = 100_000 / entry
    exit_ = 100 * 1.001 * 0.95 * 0.999
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=2, exit_bar=2, entry_price=entry, exit_price=exit_, qty=qty, fees=0,
                pnl=qty * exit_ - 100_000, ret=exit_ / entry - 1, reason="stop")
    assert r.metrics["exposure"] == 0.0  # flat at every close
    assert r.metrics["avg_bars_held"] == 0.0
    np.testing.assert_allclose(r.equity, [100_000, 100_000, 100_000, qty * exit_, qty * exit_], rtol=REL)


def test_pending_sell_fills_at_open_before_the_stop(engine):
    c = bars([
        (99, 100, 98, 99.5),
        (100, 101, 99, 100),  # BUY decided
        (100, 101, 95.5, 96),  # entry at the open; low 95.5 > level 95.095; SELL decided (close <= 96)
        (90, 91, 85, 88),  # the pending SELL fills at the open: a signal exit, not a stop
        (88, 89, 87, 88),
    ])
    r = run(engine, c, fill="next_open", slippage=0.001, stop_loss=0.05, buy_at=100, sell_at=96)
    entry = 100 * 1.001
    qty = 100_000 / entry
    exit_ = 90 * 0.999
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=2, exit_bar=3, entry_price=entry, exit_price=exit_, qty=qty, fees=0,
                pnl=qty * exit_ - 100_000, ret=exit_ / entry - 1, reason="signal")


ONE_FILL = bars([
    (99, 100, 98, 99.5),
    (100, 101, 99, 100),  # BUY
    (100, 103, 94, 102),  # stop (low 94 <= 95); close 102 says BUY again
    (102, 103, 101, 102),  # BUY again
    (102, 103, 101, 102),
])


def test_no_other_fill_on_a_stop_bar_with_close_fill(engine):
    r = run(engine, ONE_FILL, stop_loss=0.05, buy_at=100)
    assert [(t.entry_bar, t.exit_bar, t.exit_reason) for t in r.trades] == [(1, 2, "stop"), (3, 4, "open")]
    q1 = 100_000 / 100
    cash = q1 * 95  # stopped at the level 100 * 0.95
    q2 = cash / 102
    assert r.trades[0].exit_price == pytest.approx(95, rel=REL)
    assert r.trades[1].entry_price == 102 and r.trades[1].qty == pytest.approx(q2, rel=REL)
    np.testing.assert_allclose(r.equity, [100_000, 100_000, q1 * 100, cash, q2 * 102, q2 * 102], rtol=REL)
    assert r.metrics["n_trades"] == 1


def test_stop_then_reentry_next_open(engine):
    # next_open: BUY on bar 1 fills at open[2] = 100, stopped in bar 2; the BUY decided at
    # bar 2's close fills at open[3] = 102.
    r = run(engine, ONE_FILL, fill="next_open", stop_loss=0.05, buy_at=100)
    assert [(t.entry_bar, t.exit_bar, t.exit_reason) for t in r.trades] == [(2, 2, "stop"), (3, 4, "open")]
    q2 = 100_000 / 100 * 95 / 102
    assert r.trades[1].qty == pytest.approx(q2, rel=REL)


# --- end of data ------------------------------------------------------------------------------

LAST_BAR_BUY = bars([
    (99, 100, 98, 99.5),
    (99, 100, 98, 99.5),
    (100, 101, 99, 100),  # BUY decided on the last bar
])


def test_next_open_decision_on_last_bar_is_dropped(engine):
    r = run(engine, LAST_BAR_BUY, fill="next_open", commission=0.001, buy_at=100)
    assert r.trades == []
    np.testing.assert_array_equal(r.equity, [100_000] * 4)
    assert r.metrics["total_fees"] == 0.0 and r.metrics["exposure"] == 0.0


def test_close_fill_decision_on_last_bar_opens_a_position(engine):
    r = run(engine, LAST_BAR_BUY, fill="close", buy_at=100)
    assert [(t.entry_bar, t.exit_bar, t.exit_reason) for t in r.trades] == [(2, 2, "open")]


def test_next_open_sell_on_last_bar_is_dropped(engine):
    c = bars([
        (100, 101, 99, 100),  # BUY
        (101, 102, 100, 101),  # filled at open 101
        (101, 102, 98, 99),  # SELL decided on the last bar: dropped
    ])
    r = run(engine, c, fill="next_open", buy_at=100, sell_at=99)
    qty = 100_000 / 101
    check_trade(r.trades[0], entry_bar=1, exit_bar=2, entry_price=101, exit_price=99, qty=qty, fees=0,
                pnl=qty * 99 - 100_000, ret=99 / 101 - 1, reason="open")


def test_open_position_at_end(engine):
    c = bars([
        (99, 100, 98, 99.5),
        (100, 101, 99, 100),  # BUY at the close
        (100, 104, 99, 103),
        (103, 111, 102, 110),  # end of data, still long
    ])
    r = run(engine, c, slippage=0.0005, commission=0.001, buy_at=100)
    entry = 100 * 1.0005
    qty = 100_000 / (100 * 1.0005 * 1.001)
    entry_fee = 0.001 * qty * entry
    cost = qty * entry + entry_fee
    pnl = qty * 110 - cost  # marked at the last close: no slippage, no exit fee
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=1, exit_bar=3, entry_price=entry, exit_price=110, qty=qty, fees=entry_fee,
                pnl=pnl, ret=pnl / cost, reason="open")
    m = r.metrics
    # left out of the per-trade statistics...
    assert m["n_trades"] == 0
    for k in ("win_rate", "profit_factor", "avg_trade_return", "best_trade", "worst_trade", "expectancy",
              "avg_bars_held"):
        assert m[k] is None, k
    # ...but counted in the equity-based ones.
    final = qty * 110  # cash is 0 up to rounding
    assert m["final_equity"] == pytest.approx(final, rel=1e-12)
    assert m["total_return"] == pytest.approx(final / 100_000 - 1, rel=1e-9)
    assert m["pnl"] == pytest.approx(final - 100_000, rel=1e-9)
    assert m["total_fees"] == pytest.approx(entry_fee, rel=REL)
    assert m["exposure"] == pytest.approx(3 / 4)  # long at the close of bars 1, 2 and 3
    assert m["buy_and_hold_return"] == pytest.approx(110 / 99.5 - 1, rel=REL)
    # E: 1e5 at start and after bar 0; then qty * close at bars 1..3.
    np.testing.assert_allclose(r.equity, [100_000, 100_000, qty * 100, qty * 103, qty * 110], rtol=1e-12)


def test_equity_based_metrics_of_a_round_trip(engine):
    c = bars([
        (119, 121, 118, 120),
        (120, 126, 119, 125),  # BUY at 125: qty = 100,000 / 125 = 800 exactly
        (125, 131, 124, 130),
        (130, 131, 109, 110),  # SELL at 110
        (110, 116, 109, 115),
    ])
    r = run(engine, c, buy_at=125, sell_at=110)
    # E = [1e5, 1e5 (bar 0), 800*125, 800*130, 800*110, 800*110]; T = 5 returns.
    E = [100_000, 100_000, 100_000, 104_000, 88_000, 88_000]
    np.testing.assert_allclose(r.equity, E, rtol=REL)
    rets = [0, 0, 0.04, 88_000 / 104_000 - 1, 0]
    mean = sum(rets) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in rets) / 4)
    m = r.metrics
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(P_15M), rel=1e-9)
    down = math.sqrt((88_000 / 104_000 - 1) ** 2 / 5)
    assert m["sortino"] == pytest.approx(mean / down * math.sqrt(P_15M), rel=1e-9)
    assert m["total_return"] == pytest.approx(-0.12, rel=1e-12)
    assert m["pnl"] == pytest.approx(-12_000, rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(16_000 / 104_000, rel=1e-12)
    assert m["max_drawdown_abs"] == pytest.approx(16_000, rel=1e-12)
    assert m["max_drawdown_duration"] == 2  # peak at E[3]; E[4], E[5] below it
    assert m["cagr"] == pytest.approx(0.88 ** (P_15M / 5) - 1, abs=1e-12)  # 0.88^7008 underflows: -1
    assert m["calmar"] == pytest.approx(m["cagr"] / (16_000 / 104_000), rel=1e-12)
    assert m["exposure"] == pytest.approx(2 / 5)  # long at the close of bars 1 and 2
    assert m["avg_bars_held"] == 2.0
    assert m["n_trades"] == 1 and m["win_rate"] == 0.0 and m["profit_factor"] == 0.0
    assert m["avg_trade_return"] == pytest.approx(110 / 125 - 1, rel=1e-12)
    assert m["expectancy"] == pytest.approx(-12_000, rel=1e-12)
    assert m["buy_and_hold_return"] == pytest.approx(115 / 120 - 1, rel=1e-12)


# --- indicator warm-up ------------------------------------------------------------------------


def _rising_then_falling():
    closes = [100, 101, 102, 103, 104, 105, 106, 107, 104, 101]
    opens = [100] + closes[:-1]
    return bars([(o, max(o, c) + 0.5, min(o, c) - 0.5, c) for o, c in zip(opens, closes)])


@pytest.mark.parametrize("ema_period,first_bar", [(6, 5), (3, 3)])
def test_ma_crossover_waits_for_every_indicator(engine, ema_period, first_bar):
    """On a rising series short SMA > long SMA as soon as both exist, and close > EMA always.

    sma(2), sma(4) and ema(n) are valid from bars 1, 3 and n-1, so the first possible BUY is
    bar max(3, n-1): bar 5 with ema(6), bar 3 with ema(3). A partial-window computation would
    fire on bar 1.  At bar 3: sma2 = 102.5, sma4 = 101.5, spread 1/103 > 0.001.  At bar 5:
    sma2 = 104.5, sma4 = 103.5, spread 1/105 > 0.001.

    Exit: at bar 8 (close 104) sma2 = (107+104)/2 = 105.5 = sma4 = (105+106+107+104)/4: not
    strictly above, so no SELL; at bar 9 sma2 = 102.5 < sma4 = 104.5: SELL at close 101.
    """
    c = _rising_then_falling()
    r = run(engine, c, MACrossover, short_window=2, long_window=4, ema_period=ema_period, momentum_spread=0.001)
    close = c.close
    assert len(r.trades) == 1
    t = r.trades[0]
    assert (t.entry_bar, t.exit_bar, t.exit_reason) == (first_bar, 9, "signal")
    assert t.entry_price == close[first_bar] and t.exit_price == 101
    np.testing.assert_array_equal(r.equity[:first_bar + 1], CAPITAL)


def test_ma_crossover_momentum_filter_blocks_entry(engine):
    # spread at bar 3 is 1/103 = 0.0097 and shrinks slowly; 0.02 is never exceeded.
    r = run(engine, _rising_then_falling(), MACrossover, short_window=2, long_window=4, ema_period=3,
            momentum_spread=0.02)
    assert r.trades == []


def test_ma_crossover_next_open(engine):
    c = _rising_then_falling()
    r = run(engine, c, MACrossover, fill="next_open", short_window=2, long_window=4, ema_period=6,
            momentum_spread=0.001)
    t = r.trades[0]
    # BUY at bar 5's close fills at open[6] = close[5] = 105; SELL at bar 9 is on the last bar: dropped.
    assert (t.entry_bar, t.exit_bar, t.exit_reason) == (6, 9, "open")
    assert t.entry_price == 105 and t.exit_price == 101


# --- the worked example of docs/semantics.md ----------------------------------------------------


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_docs_worked_example(fill):
    c = bars([(100, 101, 99, 100), (100, 104, 100, 103), (103, 103, 96, 97), (97, 98, 94, 95), (95, 96, 94, 96)])
    for engine_name in ("reference", "fast"):
        r = BacktestingEngine(c, Threshold(buy_at=100), Execution(10_000.0, 0.001, 0.001, fill),
                              stop_loss=0.05).run() if engine_name == "reference" else \
            runner.detail(one_combination(Threshold, {"buy_at": 100}, 0.05), 0, c,
                          Execution(10_000.0, 0.001, 0.001, fill))
        (t,) = r.trades
        assert (t.entry_bar, t.exit_bar, t.exit_reason) == ((0 if fill == "close" else 1), 3, "stop")
        assert t.entry_price == pytest.approx(100.1) and t.qty == pytest.approx(99.800300, abs=1e-6)
        assert t.exit_price == pytest.approx(94.999905, abs=1e-9)
        assert t.fees == pytest.approx(19.471029, abs=1e-6)
        assert t.pnl == pytest.approx(-528.462038, abs=1e-6) and t.ret == pytest.approx(-0.052846, abs=1e-6)
        e1 = 9_980.03 if fill == "close" else 10_000
        np.testing.assert_allclose(r.equity, [10_000, e1, 10_279.43, 9_680.63, 9_471.54, 9_471.54], atol=0.005)
        m = r.metrics
        assert m["exposure"] == pytest.approx(3 / 5 if fill == "close" else 2 / 5)
        assert m["max_drawdown"] == pytest.approx(0.078593, abs=1e-6)
        assert m["max_drawdown_abs"] == pytest.approx(807.89, abs=0.005)
        assert m["max_drawdown_duration"] == 3 and m["n_trades"] == 1
        assert m["total_fees"] == pytest.approx(19.471029, abs=1e-6)
