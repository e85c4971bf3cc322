"""Window rules (docs/semantics.md, "Windows"): the worked examples, by hand, on both engines.

Capital 10,000, slippage and commission 0.001, the strategy ``Threshold`` of
tests/test_semantics.py. Every expected number is the arithmetic of the worked
examples written out; for the fast path the streamed window metrics of
``runner.sweep`` are checked against ``runner.detail``'s too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.execution import Execution
from engine.fast import runner
from engine.position_rules import PositionRules
from engine.reference import BacktestingEngine
from test_semantics import Threshold, bars, check_trade, one_combination

CAP = 10_000.0
S = C = 0.001

SERIES = bars([
    (100, 101, 99, 100),
    (100, 104, 100, 103),  # BUY decided before the window: never acts in it
    (103, 105, 102, 104),  # the window [2, 5) starts here
    (104, 107, 103, 106),
    (106, 106, 101, 102),  # the window's last bar
    (102, 103, 100, 101),
])

QTY = 10_000 / (104.104 * 1.001)  # 95.961827
ENTRY_FEE = 0.001 * QTY * 104.104  # 9.990010


@pytest.fixture(params=["reference", "fast"])
def engine(request):
    return request.param


def run(engine, candles, window, test, *, fill="close", direction="long", **params):
    rules = PositionRules(direction, 1.0, None, None, None, None)
    ex = Execution(CAP, S, C, fill)
    if engine == "reference":
        return BacktestingEngine(candles, Threshold(**params), ex, rules).run(window, test)
    sw = one_combination(Threshold, params, rules)
    res = runner.detail(sw, 0, candles, ex, window=window, test=test)
    streamed = runner.sweep(sw, candles, ex, window=window, test=test)
    for k, v in res.metrics.items():
        s = streamed[k][0].item()
        s = None if isinstance(s, float) and math.isnan(s) else s
        assert (v is None) == (s is None), k
        if v is not None:
            assert s == pytest.approx(v, rel=1e-12, abs=1e-12), k
    return res


def test_a_test_window_closes_at_its_last_close(engine):
    r = run(engine, SERIES, (2, 5), True, buy_at=103)
    exit_px = 102 * 0.999  # 101.898
    proceeds = QTY * exit_px  # 9,778.318201
    exit_fee = 0.001 * proceeds  # 9.778318
    (tr,) = r.trades
    check_trade(tr, entry_bar=2, exit_bar=4, entry_price=104.104, exit_price=exit_px, qty=QTY,
                fees=ENTRY_FEE + exit_fee, pnl=proceeds - exit_fee - 10_000, ret=(proceeds - exit_fee - 10_000) / 10_000,
                reason="window_end")
    np.testing.assert_allclose(r.equity, [10_000, QTY * 104, QTY * 106, proceeds - exit_fee], rtol=1e-12)
    m = r.metrics
    assert m["total_return"] == pytest.approx(-0.023146011753558, rel=1e-9)
    assert m["n_trades"] == 1 and m["win_rate"] == 0.0
    assert m["exposure"] == pytest.approx(2 / 3)
    assert m["max_drawdown"] == pytest.approx(1 - (proceeds - exit_fee) / (QTY * 106), rel=1e-12)
    assert m["total_fees"] == pytest.approx(ENTRY_FEE + exit_fee, rel=1e-12)
    assert m["buy_and_hold_return"] == pytest.approx(102 / 104 - 1, rel=1e-12)


def test_the_same_window_as_a_train_window_marks_the_position_open(engine):
    r = run(engine, SERIES, (2, 5), False, buy_at=103)
    (tr,) = r.trades
    check_trade(tr, entry_bar=2, exit_bar=4, entry_price=104.104, exit_price=102.0, qty=QTY, fees=ENTRY_FEE,
                pnl=QTY * 102 - 10_000, ret=(QTY * 102 - 10_000) / 10_000, reason="open")
    np.testing.assert_allclose(r.equity, [10_000, QTY * 104, QTY * 106, QTY * 102], rtol=1e-12)
    m = r.metrics
    assert m["total_return"] == pytest.approx(QTY * 102 / 10_000 - 1, rel=1e-12)
    assert m["n_trades"] == 0 and m["exposure"] == 1.0
    assert m["max_drawdown"] == pytest.approx(1 - 102 / 106, rel=1e-12)
    assert m["total_fees"] == pytest.approx(ENTRY_FEE, rel=1e-12)


def test_next_open_ignores_a_decision_before_the_window_and_drops_the_last(engine):
    # Bar 1's BUY would fill at open[2]; in the window it does not. Bar 2's fills at open[3] = 104.
    r = run(engine, SERIES, (2, 5), True, fill="next_open", buy_at=103)
    exit_px = 102 * 0.999
    (tr,) = r.trades
    check_trade(tr, entry_bar=3, exit_bar=4, entry_price=104.104, exit_price=exit_px, qty=QTY,
                fees=ENTRY_FEE + 0.001 * QTY * exit_px, pnl=QTY * exit_px * 0.999 - 10_000,
                ret=(QTY * exit_px * 0.999 - 10_000) / 10_000, reason="window_end")
    np.testing.assert_allclose(r.equity, [10_000, 10_000, QTY * 106, QTY * exit_px * 0.999], rtol=1e-12)
    assert r.metrics["exposure"] == pytest.approx(1 / 3)
    # The whole series for contrast: bar 1's BUY does fill at open[2] = 103.
    whole = run(engine, SERIES, None, False, fill="next_open", buy_at=103)
    assert whole.trades[0].entry_bar == 2 and whole.trades[0].entry_price == pytest.approx(103 * 1.001)


def test_no_entry_on_a_test_windows_last_bar(engine):
    # next_open: decided on bar 3 (close 106), it would fill at open[4], the last bar.
    r = run(engine, SERIES, (2, 5), True, fill="next_open", buy_at=106)
    assert r.trades == [] and r.equity.tolist() == [10_000.0] * 4 and r.metrics["total_return"] == 0.0
    # close: decided on bar 3, the last bar of [2, 4).
    r = run(engine, SERIES, (2, 4), True, buy_at=106)
    assert r.trades == [] and r.equity.tolist() == [10_000.0] * 3
    # the same as a train window enters, and marks the position open
    r = run(engine, SERIES, (2, 4), False, buy_at=106)
    assert [t.exit_reason for t in r.trades] == ["open"] and r.trades[0].entry_bar == 3


def test_a_short_is_covered_at_the_last_close(engine):
    # Short when close <= 104 (bar 2), still short at bar 4: covered at 102 * 1.001.
    r = run(engine, SERIES, (2, 5), True, direction="short", short_at=104)
    entry_px = 104 * 0.999
    qty = 10_000 / (entry_px * 1.001)
    fee_in = 0.001 * qty * entry_px
    cover = 102 * 1.001
    fee_out = 0.001 * qty * cover
    (tr,) = r.trades
    check_trade(tr, entry_bar=2, exit_bar=4, entry_price=entry_px, exit_price=cover, qty=qty, fees=fee_in + fee_out,
                pnl=qty * (entry_px - cover) - fee_in - fee_out,
                ret=(qty * (entry_px - cover) - fee_in - fee_out) / (qty * entry_px + fee_in), reason="window_end",
                direction="short")
    assert r.equity[-1] == pytest.approx(10_000 + qty * (entry_px - cover) - fee_in - fee_out, rel=1e-12)


def test_a_signal_exit_on_the_last_bar_keeps_its_reason(engine):
    # SELL when close <= 102: bar 4 is the last bar of [2, 5) and the exit is a signal, not window_end.
    r = run(engine, SERIES, (2, 5), True, buy_at=103, sell_at=102)
    assert [(t.exit_bar, t.exit_reason) for t in r.trades] == [(4, "signal")]


def test_a_window_starting_at_zero_to_the_end_is_the_whole_run(engine):
    whole = run(engine, SERIES, None, False, buy_at=103, sell_at=101)
    window = run(engine, SERIES, (0, len(SERIES)), False, buy_at=103, sell_at=101)
    assert whole.trades == window.trades
    assert whole.equity.tolist() == window.equity.tolist()
    assert whole.metrics == window.metrics
