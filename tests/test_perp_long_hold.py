"""Funding and liquidation during a long hold (docs/semantics.md, P3 and P4).

A sweep's perp hold loops (engine.fast.rule_unit, ``hold_*_perp``) book each bar's funding into
WB and move the liquidation price with it without leaving the loop, and stop at the bar whose
funding (WB ≤ 0) or range (the LP funding moved) liquidates. These cases hold one position
through many funding bars; every expected number is written out here from the rules' formulas.
The reference engine, the fast path's recording run and its sweeps (whole, and in chunks of 5
bars so a hold crosses chunk edges) must all give them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.execution import Execution
from engine.fast import runner
from engine.perp.brackets import Bracket
from engine.perp.config import PerpConfig
from engine.perp.inputs import perp_inputs
from engine.position_rules import PositionRules
from engine.reference import BacktestingEngine
from test_equivalence import assert_same_metrics, row
from test_perp_semantics import perp_bars
from test_semantics import Threshold, one_combination

CAP = 10_000.0
ZERO = (Bracket(1e12, 0.0, 0.0),)  # mmr 0, cum 0: LP = entry − s·WB/qty
N = 30
EVERY = 3  # an event at the open of bars 3, 6, 9, …: ten inside the hold
RATE = 0.015  # at mark 100, qty 500: 750 a bar


def flat(direction: str, liquidated_at: int, wick: tuple[int, float] | None = None):
    """30 bars at 100 (range 99.9–100.1) that the threshold rule enters at bar 0's close; after
    ``liquidated_at`` the close (99.95 long, 100.05 short) no longer enters. ``wick``: (bar, low
    of a long / high of a short) inside the hold."""
    long = direction == "long"
    after = 99.95 if long else 100.05
    rows = [(100.0, 100.1, 99.9, 100.0 if t <= liquidated_at else after) for t in range(N)]
    if wick is not None:
        t, x = wick
        o, h, lo, c = rows[t]
        rows[t] = (o, h, x, c) if long else (o, x, lo, c)
    rate = RATE if long else -RATE  # the position pays either way
    events = [(900_000 * t, rate, math.nan) for t in range(EVERY, N, EVERY)]
    return perp_bars(rows, events=events)


def run_all(candles, direction: str, funding: bool = True):
    """The reference run; the fast path's recording run and sweeps must agree with it."""
    long = direction == "long"
    rules = PositionRules(direction, 0.5, None, None, None, None, 10.0)
    ex = Execution(CAP, 0.0, 0.0, "close")
    perp = perp_inputs(PerpConfig(brackets=ZERO, liquidation_price="mark", funding=funding), candles)
    params = dict(buy_at=100.0) if long else dict(short_at=100.0)
    ref = BacktestingEngine(candles, Threshold(**params), ex, rules, perp).run()
    sw = one_combination(Threshold, params, rules)
    det = runner.detail(sw, 0, candles, ex, perp=perp)
    assert det.trades == ref.trades
    assert np.array_equal(det.equity, ref.equity)
    assert_same_metrics(ref.metrics, det.metrics, "detail")
    for chunk in (runner.CHUNK, 5):
        assert_same_metrics(ref.metrics, row(runner.sweep(sw, candles, ex, chunk=chunk, perp=perp), 0),
                            f"sweep chunk={chunk}")
    return ref


# size 0.5 at L = 10, no commission: qty = 0.5·10,000 / (100·0.1) = 500, M = WB = 5,000, free cash
# 5,000; each event moves WB by −500·100·0.015 = −750; LP = 100 − s·WB/500.
QTY, M = 500.0, 5_000.0


@pytest.mark.parametrize("direction", ["long", "short"])
def test_funding_drains_the_wallet_over_a_long_hold_until_liquidation(direction):
    """Six events leave WB = 500 (LP 99 long, 101 short: the range 99.9–100.1 never reaches it);
    the seventh, at bar 21's open, takes WB to −250: liquidated there, at the LP of that WB
    (100 − s·(−250)/500 = 100.5 long, 99.5 short), losing M whatever funding took."""
    s = 1 if direction == "long" else -1
    res = run_all(flat(direction, 21), direction)
    (tr,) = res.trades
    assert (tr.entry_bar, tr.exit_bar, tr.exit_reason, tr.direction) == (0, 21, "liquidation", direction)
    assert tr.qty == pytest.approx(QTY, rel=1e-12)
    assert tr.exit_price == pytest.approx(100 + s * 0.5, rel=1e-12)
    assert tr.funding == pytest.approx(-7 * 750, rel=1e-12)
    assert tr.pnl == pytest.approx(-M, rel=1e-12)
    # equity at bar t's close: free 5,000 + WB 5,000 − 750 per event so far (the close is the entry)
    for t in range(21):
        assert res.equity[t + 1] == pytest.approx(CAP - 750 * (t // EVERY), rel=1e-12), t
    assert res.equity[22:] == pytest.approx(np.full(N - 21, CAP - M), rel=1e-12)  # free cash; no re-entry
    assert res.metrics["total_funding"] == pytest.approx(-5_250, rel=1e-12)
    assert res.metrics["n_liquidations"] == 1
    assert res.metrics["max_drawdown"] == pytest.approx(0.5, rel=1e-12)
    assert res.metrics["final_equity"] == pytest.approx(CAP - M, rel=1e-12)


@pytest.mark.parametrize("direction", ["long", "short"])
def test_a_wick_reaches_the_liquidation_price_funding_moved(direction):
    """Bar 19 (no event) wicks to 98.9 (long) / 101.1 (short). After six events WB = 500 and
    LP = 99 / 101: liquidated at bar 19, at that LP. Without funding LP stays at 90 / 110 and the
    same wick is harmless: the position is still open at the end."""
    s = 1 if direction == "long" else -1
    wick = (19, 100 - s * 1.1)
    res = run_all(flat(direction, 19, wick), direction)
    tr = res.trades[0]
    assert (tr.entry_bar, tr.exit_bar, tr.exit_reason) == (0, 19, "liquidation")
    assert tr.exit_price == pytest.approx(100 - s * 1.0, rel=1e-12)  # 100 − s·500/500
    assert tr.funding == pytest.approx(-6 * 750, rel=1e-12)
    assert tr.pnl == pytest.approx(-M, rel=1e-12)
    assert res.metrics["total_funding"] == pytest.approx(-4_500, rel=1e-12)
    assert res.metrics["n_liquidations"] == 1
    off = run_all(flat(direction, N, wick), direction, funding=False)
    assert [t.exit_reason for t in off.trades] == ["open"]
    assert off.metrics["n_liquidations"] == 0 and off.metrics["total_funding"] == 0.0


def test_perp_sweep_with_moment_sums_and_both_directions_matches_the_reference():
    """The ``_m`` and ``_both`` perp hold loops: an MA crossover grid in both directions at 3x and
    25x on 3,000 synthetic bars with their mark klines and an event every 8 bars (rates large
    and leverage large enough that some positions are liquidated). Each combination's metrics equal the reference
    engine's, with and without the moment sums, and its Σr, Σr² equal those of the reference equity."""
    import dataclasses

    from engine.config import parse_config
    from engine.data.synthetic import generate_candles
    from engine.grid import build_grid
    from engine.perp.synthetic import with_perp
    from engine.result import POWER_SUMS

    c = with_perp(generate_candles(3000, seed=11), 11)
    times = c.open_time[8::8].copy()
    k = len(times)
    rates = 0.01 * np.sin(np.arange(k) / 5.0) + 0.002
    c = dataclasses.replace(c, perp=dataclasses.replace(c.perp, funding_time=times, funding_rate=rates,
                                                        funding_mark=np.full(k, np.nan),
                                                        interval_hours=np.full(k, 2, dtype=np.int64)))
    cfg = parse_config({"data": {"market": "um"}, "portfolio": {"direction": "both", "leverage": [3.0, 25.0]},
                        "strategies": {"ma_crossover": {"short_window": [5, 20], "long_window": 60,
                                                        "ema_period": 50}},
                        "execution": {"fill": "close", "commission": 0.0004, "slippage": 0.0001}})
    (sw,) = build_grid(cfg)
    ex = cfg.execution
    perp = perp_inputs(PerpConfig(), c)
    plain = runner.sweep(sw, c, ex, perp=perp)
    with_m = runner.sweep(sw, c, ex, perp=perp, moments=True, chunk=500)
    reasons = set()
    for i in range(len(sw)):
        ref = BacktestingEngine(c, sw.instance(i), ex, sw.rules(i), perp).run()
        reasons |= {t.exit_reason for t in ref.trades}
        assert_same_metrics(ref.metrics, row(plain, i), f"combination {i}")
        assert_same_metrics(ref.metrics, row({k: v for k, v in with_m.items() if k in ref.metrics}, i),
                            f"combination {i} with moments")
        r = ref.equity[1:] / ref.equity[:-1] - 1.0
        assert with_m[POWER_SUMS][i, 0] == pytest.approx(r.sum(), rel=1e-9, abs=1e-12)
        assert with_m[POWER_SUMS][i, 1] == pytest.approx((r * r).sum(), rel=1e-9, abs=1e-12)
    assert "liquidation" in reasons and "signal" in reasons
