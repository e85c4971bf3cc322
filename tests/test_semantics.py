"""Execution semantics (docs/semantics.md), one hand-computed case per rule, on both engines.

Every expected number below is worked out by hand from the contract, with the
arithmetic written out; nothing is copied from the code under test. Each case
runs on the event-driven reference engine and on the compiled fast path
(``engine.fast.runner.detail``, the kernel with every feature compiled in); for the
fast path the streamed metrics of
``engine.fast.runner.sweep`` are also checked against ``detail``'s.

The signals are controlled exactly by tiny strategies defined here: ``Threshold``
has no indicators and enters long when ``close >= buy_at``, exits long when
``close <= sell_at``, enters short when ``close <= short_at`` and exits short
when ``close >= cover_at``. Its rule lives at module top level because the fast
kernel imports it by module and name.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from engine.candles import Candles
from engine.execution import Execution
from engine.fast import runner
from engine.grid import StrategySweep
from engine.position_rules import RULE_COLUMNS, PositionRules
from engine.reference import BacktestingEngine
from engine.strategies import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT, MACrossover, Strategy

CAPITAL = 100_000.0
P_15M = 365 * 24 * 4  # 35,040 bars per 365-day year
REL = 1e-12


@njit
def threshold_signal(close, buy_at, sell_at, short_at, cover_at):
    code = 0
    if close >= buy_at:
        code |= ENTER_LONG
    if close <= sell_at:
        code |= EXIT_LONG
    if close <= short_at:
        code |= ENTER_SHORT
    if close >= cover_at:
        code |= EXIT_SHORT
    return code


class Threshold(Strategy):
    """Thresholds on the close; one left at its default never fires."""

    name = "test_threshold"
    buy_at: float = 1e12
    sell_at: float = -1.0
    short_at: float = -1.0
    cover_at: float = 1e12

    signal = staticmethod(threshold_signal)


# --- helpers --------------------------------------------------------------------------


def bars(rows) -> Candles:
    """Candles from (open, high, low, close) rows, 15-minute bars."""
    a = np.array(rows, dtype=np.float64)
    n = len(a)
    assert (a[:, 1] >= np.maximum(a[:, 0], a[:, 3])).all() and (a[:, 2] <= np.minimum(a[:, 0], a[:, 3])).all()
    return Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=a[:, 0].copy(), high=a[:, 1].copy(),
                   low=a[:, 2].copy(), close=a[:, 3].copy(), volume=np.ones(n), interval_ms=900_000)


def one_combination(cls, params: dict, rules: PositionRules) -> StrategySweep:
    inst = cls(**params)  # validates and fills defaults
    specs = cls.param_specs()
    columns = {p: np.array([getattr(inst, p)], dtype=np.int64 if specs[p][0] is int else np.float64)
               for p in specs}
    for c in RULE_COLUMNS:
        v = getattr(rules, c)
        columns[c] = np.array([v]) if c == "direction" else np.array([math.nan if v is None else v], dtype=float)
    return StrategySweep(cls, columns, (), 0)


def run(engine, candles, cls=Threshold, *, fill="close", slippage=0.0, commission=0.0, stop_loss=None,
        take_profit=None, trailing_stop=None, max_bars=None, direction="long", size=1.0, capital=CAPITAL, **params):
    rules = PositionRules(direction, size, stop_loss, take_profit, trailing_stop, max_bars)
    ex = Execution(capital, slippage, commission, fill)
    if engine == "reference":
        return BacktestingEngine(candles, cls(**params), ex, rules).run()
    sw = one_combination(cls, params, rules)
    # The recording run (every bar through the full bar) and the sweep (the tight loops) agree.
    res = runner.detail(sw, 0, candles, ex)
    streamed = runner.sweep(sw, candles, ex)
    for k, v in res.metrics.items():
        s = streamed[k][0].item()
        s = None if isinstance(s, float) and math.isnan(s) else s
        assert (v is None) == (s is None), k
        if v is not None:
            assert s == pytest.approx(v, rel=1e-12, abs=1e-12), k
    return res


def check_trade(tr, *, entry_bar, exit_bar, entry_price, exit_price, qty, fees, pnl, ret, reason, direction="long"):
    assert (tr.entry_bar, tr.exit_bar, tr.exit_reason, tr.direction) == (entry_bar, exit_bar, reason, direction)
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
        r = run(engine_name, c, fill=fill, slippage=0.001, commission=0.001, stop_loss=0.05, capital=10_000.0,
                buy_at=100)
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


# --- shorts -------------------------------------------------------------------------------------

SHORT_GAP = bars([
    (101, 102, 100, 101),  # close 101 > 100: nothing
    (101, 101, 99, 100),  # SELL short at the close: 100 * 0.999 = 99.9
    (100, 104, 99, 103),  # stop level 99.9 * 1.05 = 104.895; high 104 < level
    (106, 108, 105, 107),  # open 106 >= level: covered at the open
    (107, 108, 106, 107),
])


def test_short_gap_stop_fills_at_the_open(engine):
    r = run(engine, SHORT_GAP, direction="short", slippage=0.001, stop_loss=0.05, short_at=100)
    entry = 100 * 0.999  # a sale receives less
    qty = 100_000 / entry
    exit_ = 106 * 1.001  # a cover pays up, at the open
    pnl = qty * (entry - exit_)
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=1, exit_bar=3, entry_price=entry, exit_price=exit_, qty=qty, fees=0,
                pnl=pnl, ret=pnl / 100_000, reason="stop", direction="short")
    assert pnl == pytest.approx(-6_212.212212, abs=1e-6)
    # short equity: cash - qty * close, with cash = 100,000 + the sale's proceeds = 200,000
    np.testing.assert_allclose(r.equity, [100_000, 100_000, 200_000 - qty * 100, 200_000 - qty * 103,
                                          200_000 - qty * exit_, 200_000 - qty * exit_], rtol=REL)
    assert r.equity[3] == pytest.approx(96_896.8969, abs=1e-4)
    assert r.metrics["exposure"] == pytest.approx(2 / 5)


def test_short_stop_by_the_high_fills_at_the_level(engine):
    c = bars([(101, 102, 100, 101), (101, 101, 99, 100), (100, 105, 99, 103), (103, 104, 102, 103)])
    r = run(engine, c, direction="short", stop_loss=0.04, short_at=100)
    # entry 100; level 104: open 100 below it, high 105 reaches it
    qty = 1_000.0
    check_trade(r.trades[0], entry_bar=1, exit_bar=2, entry_price=100, exit_price=104, qty=qty, fees=0,
                pnl=qty * (100 - 104), ret=-0.04, reason="stop", direction="short")


def test_short_round_trip_with_costs(engine):
    c = bars([(101, 102, 100, 101), (101, 101, 99, 100), (100, 101, 95, 96), (96, 99, 95, 98), (98, 102, 97, 101)])
    r = run(engine, c, direction="short", slippage=0.001, commission=0.002, short_at=100, cover_at=98)
    entry = 100 * 0.999
    qty = 100_000 / (entry * 1.002)
    entry_fee = 0.002 * qty * entry
    cash = 100_000 + qty * entry - entry_fee
    exit_ = 98 * 1.001  # EXIT_SHORT at bar 3's close (98 >= cover_at)
    exit_fee = 0.002 * qty * exit_
    pnl = qty * (entry - exit_) - entry_fee - exit_fee
    cost = qty * entry + entry_fee  # = 100,000
    assert cost == pytest.approx(100_000, rel=1e-14)
    check_trade(r.trades[0], entry_bar=1, exit_bar=3, entry_price=entry, exit_price=exit_, qty=qty,
                fees=entry_fee + exit_fee, pnl=pnl, ret=pnl / cost, reason="signal", direction="short")
    np.testing.assert_allclose(r.equity[2:4], [cash - qty * 100, cash - qty * 96], rtol=REL)
    assert r.metrics["final_equity"] == pytest.approx(cash - qty * exit_ - exit_fee, rel=REL)
    assert r.metrics["total_fees"] == pytest.approx(entry_fee + exit_fee, rel=REL)


@pytest.mark.parametrize("direction,trades", [
    ("long", [(1, 3, "long")]),  # the short codes are ignored
    ("short", [(2, 3, "short")]),  # the long codes are ignored
])
def test_direction_selects_which_codes_act(engine, direction, trades):
    c = bars([(99, 100, 98, 99), (99, 101, 99, 100), (100, 101, 94, 95), (95, 96, 94, 95)])
    r = run(engine, c, direction=direction, buy_at=100, short_at=95)
    assert [(t.entry_bar, t.exit_bar, t.direction) for t in r.trades] == trades


# --- reversals and cancelling entries under `both` -------------------------------------------------

REVERSAL = bars([
    (100, 101, 99, 100),
    (100, 106, 100, 105),  # ENTER_LONG
    (105, 106, 94, 95),  # ENTER_SHORT while long: closes the long only
    (95, 96, 93, 94),  # ENTER_SHORT while flat: short
    (94, 95, 89, 90),
])


def test_reversal_under_both_with_close_fill(engine):
    r = run(engine, REVERSAL, direction="both", buy_at=105, short_at=95)
    q1 = 100_000 / 105
    cash = q1 * 95
    q2 = cash / 94
    assert len(r.trades) == 2
    check_trade(r.trades[0], entry_bar=1, exit_bar=2, entry_price=105, exit_price=95, qty=q1, fees=0,
                pnl=q1 * 95 - 100_000, ret=95 / 105 - 1, reason="signal")
    check_trade(r.trades[1], entry_bar=3, exit_bar=4, entry_price=94, exit_price=90, qty=q2, fees=0,
                pnl=q2 * (94 - 90), ret=(94 - 90) / 94, reason="open", direction="short")
    np.testing.assert_allclose(r.equity, [100_000, 100_000, q1 * 105, cash, cash, 2 * cash - q2 * 90], rtol=REL)
    assert r.equity[5] == pytest.approx(94_326.2411, abs=1e-4)
    assert r.metrics["n_trades"] == 1 and r.metrics["exposure"] == pytest.approx(3 / 5)


def test_reversal_under_both_with_next_open_fill(engine):
    r = run(engine, REVERSAL, fill="next_open", direction="both", buy_at=105, short_at=95)
    # long at bar 2's open (105), closed at bar 3's open (95); the short decided at bar 3's
    # close fills at bar 4's open (94).
    assert [(t.entry_bar, t.exit_bar, t.direction, t.exit_reason, t.entry_price, t.exit_price) for t in r.trades] \
        == [(2, 3, "long", "signal", 105, 95), (4, 4, "short", "open", 94, 90)]


def test_long_and_short_entries_on_one_bar_cancel_while_flat(engine):
    c = bars([(99, 101, 99, 100), (100, 102, 99, 101), (101, 102, 99, 100)])
    # close 100: >= buy_at and <= short_at, both entries at once: nothing; close 101: long only
    r = run(engine, c, direction="both", buy_at=100, short_at=100)
    assert [(t.entry_bar, t.direction) for t in r.trades] == [(1, "long")]
    # bar 2's close of 100 says both again; while long, its ENTER_SHORT closes the long
    assert r.trades[0].exit_bar == 2 and r.trades[0].exit_reason == "signal"


# --- take-profit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bar2,exit_price,reason", [
    ((100, 106, 94, 100), 95, "stop"),  # both levels in reach: the adverse one wins
    ((106, 107, 94, 100), 106, "take_profit"),  # the open is beyond the take-profit: the open decides
    ((100, 106, 96, 100), 105, "take_profit"),  # only the take-profit in reach: at the level
    ((94, 95, 90, 92), 94, "stop"),  # a gap through the stop
])
def test_take_profit_against_a_stop_on_one_bar(engine, bar2, exit_price, reason):
    c = bars([(99, 100, 98, 99), (99, 101, 99, 100), bar2, (100, 101, 99, 100)])
    r = run(engine, c, stop_loss=0.05, take_profit=0.05, buy_at=100)
    t = r.trades[0]
    assert (t.entry_bar, t.exit_bar, t.exit_reason, t.exit_price) == (1, 2, reason, exit_price)
    assert t.pnl == pytest.approx(1_000 * (exit_price - 100), rel=REL)


def test_short_take_profit(engine):
    c = bars([(101, 102, 100, 101), (101, 101, 99, 100), (99, 99, 89, 91), (91, 92, 90, 91)])
    r = run(engine, c, direction="short", slippage=0.01, take_profit=0.1, short_at=100)
    entry = 99.0  # 100 * (1 - 0.01)
    level = entry * 0.9  # 89.1; the low 89 reaches it, the open 99 does not
    qty = 100_000 / entry
    exit_ = level * 1.01
    check_trade(r.trades[0], entry_bar=1, exit_bar=2, entry_price=entry, exit_price=exit_, qty=qty, fees=0,
                pnl=qty * (entry - exit_), ret=qty * (entry - exit_) / 100_000, reason="take_profit",
                direction="short")


# --- the trailing stop ------------------------------------------------------------------------------

TRAIL = bars([
    (99, 130, 98, 100),  # BUY at the close (fill=close); the high of 130 came before the fill
    (100, 120, 95, 118),  # next_open entry bar: checked against 90 before its high counts
    (118, 119, 107, 110),  # level 120 * 0.9 = 108: exit at the level
    (110, 111, 109, 110),
])


@pytest.mark.parametrize("fill,entry_bar", [("close", 0), ("next_open", 1)])
def test_trailing_stop_on_the_entry_bar(engine, fill, entry_bar):
    r = run(engine, TRAIL, fill=fill, trailing_stop=0.1, buy_at=100)
    assert r.metrics["n_trades"] == 1  # (close 110 >= 100 buys again afterwards)
    check_trade(r.trades[0], entry_bar=entry_bar, exit_bar=2, entry_price=100, exit_price=108, qty=1_000, fees=0,
                pnl=8_000, ret=0.08, reason="trailing_stop")


def test_trailing_stop_short_mirrors_on_lows(engine):
    c = bars([(101, 102, 100, 101), (101, 101, 99, 100), (100, 101, 80, 82), (82, 89, 81, 85), (85, 86, 84, 85)])
    r = run(engine, c, direction="short", trailing_stop=0.1, short_at=100)
    # entry 100; bar 2 checked against 110 (high 101 holds), trough 80; bar 3: level 88, high 89 reaches it
    check_trade(r.trades[0], entry_bar=1, exit_bar=3, entry_price=100, exit_price=88, qty=1_000, fees=0,
                pnl=12_000, ret=0.12, reason="trailing_stop", direction="short")


@pytest.mark.parametrize("stop,trail,low,exit_price,reason", [
    (0.05, 0.10, 94, 95, "stop"),  # stop 95 above trailing 90: the stop is nearer
    (0.10, 0.10, 89, 90, "stop"),  # equal levels: the reason is stop
    (0.20, 0.10, 89, 90, "trailing_stop"),  # trailing 90 above stop 80
])
def test_the_nearer_of_stop_and_trailing_fills(engine, stop, trail, low, exit_price, reason):
    c = bars([(99, 100, 98, 99), (99, 100, 99, 100), (100, 100, low, 96), (96, 97, 95, 96)])
    r = run(engine, c, stop_loss=stop, trailing_stop=trail, buy_at=100)
    t = r.trades[0]
    assert (t.exit_bar, t.exit_reason, t.exit_price) == (2, reason, exit_price)


# --- the time limit -----------------------------------------------------------------------------------

TIMED = bars([
    (99, 100, 98, 99),
    (99, 101, 99, 100),  # BUY decided (close >= 100)
    (100, 102, 99, 101),  # next_open entry at 100
    (101, 101, 97, 98),  # SELL decided (close <= 98)
    (98, 99, 97, 98),
])


@pytest.mark.parametrize("fill,max_bars,trade", [
    ("close", 2, (1, 3, "time", 100, 98)),  # time and signal on one close: time
    ("next_open", 2, (2, 4, "signal", 100, 98)),  # the SELL fills at bar 4's open, before the limit
    ("next_open", 1, (2, 3, "time", 100, 98)),  # time and the SELL decision on one close: time
])
def test_time_exit_and_a_signal_on_the_same_close(engine, fill, max_bars, trade):
    r = run(engine, TIMED, fill=fill, max_bars=max_bars, buy_at=100, sell_at=98)
    t = r.trades[0]
    assert (t.entry_bar, t.exit_bar, t.exit_reason, t.entry_price, t.exit_price) == trade


def test_time_exit_closes_at_entry_bar_plus_n(engine):
    c = bars([(100, 101, 99, 100)] + [(100 + k, 102 + k, 99 + k, 101 + k) for k in range(6)])
    r = run(engine, c, direction="short", slippage=0.01, max_bars=3, short_at=100)
    # short at bar 0's close, covered at bar 3's close (103) with slippage; then flat (close > 100)
    (t,) = r.trades
    assert (t.entry_bar, t.exit_bar, t.exit_reason, t.direction) == (0, 3, "time", "short")
    assert t.exit_price == pytest.approx(103 * 1.01, rel=REL)
    assert r.metrics["avg_bars_held"] == 3.0


# --- a bust --------------------------------------------------------------------------------------------

BUST = bars([
    (100, 101, 99, 100),  # SELL short at the close
    (100, 150, 100, 150),
    (150, 210, 150, 200),  # equity at the close <= 0: bust
    (200, 201, 90, 95),  # the rule says short again: ruined, nothing happens
    (95, 96, 90, 91),
])


def test_a_short_busts_and_the_run_stops_trading(engine):
    r = run(engine, BUST, direction="short", slippage=0.001, commission=0.001, short_at=100)
    entry = 100 * 0.999
    qty = 100_000 / (entry * 1.001)
    entry_fee = 0.001 * qty * entry
    cash = 100_000 + qty * entry - entry_fee
    assert 100_000 - qty * 200 + qty * entry - entry_fee < 0  # the bust condition at bar 2's close
    exit_ = 200 * 1.001
    exit_fee = 0.001 * qty * exit_
    pnl = qty * (entry - exit_) - entry_fee - exit_fee
    assert len(r.trades) == 1
    check_trade(r.trades[0], entry_bar=0, exit_bar=2, entry_price=entry, exit_price=exit_, qty=qty,
                fees=entry_fee + exit_fee, pnl=pnl, ret=pnl / 100_000, reason="bust", direction="short")
    assert pnl == pytest.approx(-100_600.2006, abs=1e-4)
    final = cash - qty * exit_ - exit_fee
    assert final == pytest.approx(-600.2006, abs=1e-4)
    np.testing.assert_allclose(r.equity, [100_000, cash - qty * 100, cash - qty * 150, final, final, final],
                               rtol=1e-12)
    m = r.metrics
    for k in ("sharpe", "sortino", "cagr", "calmar"):
        assert m[k] is None, k
    assert m["total_return"] == pytest.approx(final / 100_000 - 1, rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(1 - final / 100_000, rel=1e-12)
    assert m["n_trades"] == 1 and m["worst_trade"] == pytest.approx(-1.006002, abs=1e-6)


def test_bust_with_next_open_closes_at_that_close(engine):
    r = run(engine, BUST, fill="next_open", direction="short", short_at=100)
    # short at bar 1's open (100): equity 200,000 - 1,000 * 150 > 0; bar 2 close 200: 0 -> bust
    (t,) = r.trades
    assert (t.entry_bar, t.exit_bar, t.exit_reason, t.exit_price) == (1, 2, "bust", 200)
    assert r.metrics["final_equity"] == 0.0 and r.metrics["sharpe"] is None


# --- sizing ------------------------------------------------------------------------------------------

SIZED = bars([
    (99, 100, 98, 99),
    (99, 101, 99, 100),  # BUY at 100
    (100, 101, 95, 96),
    (96, 97, 89, 90),  # SELL at 90
    (90, 101, 90, 100),  # BUY again at 100
    (100, 102, 99, 101),
])


def test_sizing_commits_half_of_equity(engine):
    r = run(engine, SIZED, commission=0.001, size=0.5, buy_at=100, sell_at=90)
    q1 = 0.5 * 100_000 / (100 * 1.001)
    fee1 = 0.001 * q1 * 100
    cash = 100_000 - q1 * 100 - fee1
    assert cash == pytest.approx(50_000, rel=1e-14)  # the rest stays in cash
    fee2 = 0.001 * q1 * 90
    cash = cash + q1 * 90 - fee2
    pnl = q1 * 90 - fee2 - (q1 * 100 + fee1)
    assert (cash, pnl) == (pytest.approx(94_910.08991, abs=1e-5), pytest.approx(-5_089.91009, abs=1e-5))
    check_trade(r.trades[0], entry_bar=1, exit_bar=3, entry_price=100, exit_price=90, qty=q1, fees=fee1 + fee2,
                pnl=pnl, ret=pnl / (q1 * 100 + fee1), reason="signal")
    q2 = 0.5 * cash / (100 * 1.001)
    assert r.trades[1].qty == pytest.approx(q2, rel=REL)
    assert r.trades[1].qty == pytest.approx(474.076373, abs=1e-6)
    fee3 = 0.001 * q2 * 100
    assert r.equity[2] == pytest.approx(50_000 + q1 * 100, rel=REL)
    assert r.equity[6] == pytest.approx(cash - q2 * 100 - fee3 + q2 * 101, rel=REL)


# --- the position view ----------------------------------------------------------------------------


@njit
def gain_or_time_signal(close, position, entry_price, bars_held, unrealised_return, best_price, gain, hold,
                        giveback):
    """Enter long at every flat bar; exit after `gain`, after `hold` bars, or when the close falls
    `giveback` below the best price since the entry."""
    if position == 0:
        return ENTER_LONG
    if unrealised_return >= gain or bars_held >= hold or close <= best_price - giveback:
        return EXIT_LONG
    return 0


class GainOrTime(Strategy):
    name = "test_gain_or_time"
    gain: float = 0.03
    hold: int = 3
    giveback: float = 1e9

    signal = staticmethod(gain_or_time_signal)


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_a_rule_reads_the_position_view(engine, fill):
    c = bars([
        (100, 101, 99, 100),  # close: enter at 100
        (100, 102, 99, 101),  # next_open: enter at 100 (bars_held 0)
        (101, 104, 100, 103),  # close fill: return 3% >= gain: exit at 103
        (103, 104, 102, 103),
        (103, 104, 102, 103),
        (103, 104, 102, 103),
        (103, 104, 102, 103),
    ])
    r = run(engine, c, GainOrTime, fill=fill)
    got = [(t.entry_bar, t.exit_bar, t.entry_price, t.exit_price, t.exit_reason) for t in r.trades]
    if fill == "close":
        # enter at 0 (100); bar 2: (103-100)/100 = 0.03 >= 0.03: exit at 103. Re-enter at bar 3 (flat
        # and nothing filled? the exit filled on bar 2, entry on bar 3 at 103); bar 6: held 3: exit.
        assert got == [(0, 2, 100, 103, "signal"), (3, 6, 103, 103, "signal")]
    else:
        # decisions at the close fill at the next open: enter at bar 1's open (100); bar 2's close
        # says exit (3%): fills at bar 3's open (103); bar 3's close (flat) says enter: bar 4's open.
        # held 0, 1, 2 at bars 4, 5, 6: still open at the end.
        assert got == [(1, 3, 100, 103, "signal"), (4, 6, 103, 103, "open")]


def test_the_view_best_price_gives_an_atr_like_trailing_exit(engine):
    c = bars([(100, 101, 99, 100), (100, 110, 99, 108), (108, 109, 104, 105), (105, 106, 100, 101)])
    # best price: 100 (entry), then 110 (bar 1's high); giveback 5: exit when close <= 105
    r = run(engine, c, GainOrTime, gain=1.0, hold=100, giveback=5.0)
    assert [(t.entry_bar, t.exit_bar, t.exit_price) for t in r.trades] == [(0, 2, 105), (3, 3, 101)]
