"""Hand-computed perp cases (docs/semantics.md, "Perpetual futures", P1-P5), on both engines.

Capital 10,000, no slippage, commission 0.001 unless said, one bracket (mmr 0.01, cum 0) unless
said. Every expected number is written out from the rules' formulas here, never taken from an
engine; the fast path's recording run and its sweep (tight loops) must agree with them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from engine.errors import DataError
from engine.execution import Execution
from engine.fast import runner
from engine.perp.brackets import Bracket
from engine.perp.config import PerpConfig
from engine.perp.inputs import perp_inputs
from engine.perp.series import PerpData
from engine.position_rules import PositionRules
from engine.reference import BacktestingEngine
from test_semantics import Threshold, bars, one_combination

CAP = 10_000.0
C = 0.001
H = 3_600_000
ONE = (Bracket(1e12, 0.01, 0.0),)


def perp_bars(rows, marks=None, events=(), hours=8):
    """Trade bars (15m) with mark (open, high, low) rows (the trade's when None) and funding events
    (time ms, rate, mark price or NaN)."""
    c = bars(rows)
    m = np.array(marks if marks is not None else [(r[0], r[1], r[2]) for r in rows], dtype=float)
    ev = np.array(events, dtype=float).reshape(-1, 3)
    p = PerpData(m[:, 0].copy(), m[:, 1].copy(), m[:, 2].copy(), ev[:, 0].astype(np.int64), ev[:, 1].copy(),
                 ev[:, 2].copy(), np.full(len(ev), hours, dtype=np.int64))
    return dataclasses.replace(c, perp=p)


def run(engine, candles, *, leverage=5.0, fill="close", commission=C, direction="long", stop_loss=None,
        brackets=ONE, basis="mark", funding=True, size=1.0, **params):
    rules = PositionRules(direction, size, stop_loss, None, None, None, leverage)
    ex = Execution(CAP, 0.0, commission, fill)
    perp = perp_inputs(PerpConfig(brackets=brackets, liquidation_price=basis, funding=funding), candles)
    if engine == "reference":
        return BacktestingEngine(candles, Threshold(**params), ex, rules, perp).run()
    sw = one_combination(Threshold, params, rules)
    res = runner.detail(sw, 0, candles, ex, perp=perp)
    streamed = runner.sweep(sw, candles, ex, perp=perp)
    for k, v in res.metrics.items():
        s = streamed[k][0].item()
        s = None if isinstance(s, float) and math.isnan(s) else s
        assert (v is None) == (s is None), k
        if v is not None:
            assert s == pytest.approx(v, rel=1e-12, abs=1e-9), k
    return res


@pytest.fixture(params=["reference", "fast"])
def engine(request):
    return request.param


FLAT4 = [(100, 100.5, 99.5, 100), (101, 101.5, 100.5, 101), (101, 102.5, 100.5, 102), (102, 102.5, 101.5, 102)]
Q5 = 10_000 / (100 * (1 / 5 + 0.001))  # P1 at L = 5: 497.512438
M5 = Q5 * 100 / 5  # 9,950.248756
FEE5 = 0.001 * Q5 * 100  # 49.751244


UP = [(100, 100.5, 99.5, 100), (101, 103.5, 100.5, 103), (103, 104.5, 102.5, 104), (104, 104.5, 98.5, 99)]
DOWN = [(100, 100.5, 99.5, 100), (101, 101.5, 96.5, 97), (97, 97.5, 95.5, 96), (96, 101.5, 95.5, 101)]


@pytest.mark.parametrize("direction,rate", [("long", 0.0001), ("long", -0.0001), ("short", 0.0001),
                                            ("short", -0.0001)])
def test_funding_on_long_and_short(engine, direction, rate):
    """Entry at bar 0's close (100), an event at bar 1's open time (mark open 101), exit at bar 3's
    close (99 long, 101 short): the position receives −s·qty·mark·rate; pnl includes it."""
    long = direction == "long"
    c = perp_bars(UP if long else DOWN, events=[(900_000, rate, math.nan)])
    kw = dict(buy_at=100, sell_at=99.5) if long else dict(short_at=100, cover_at=100.5)
    res = run(engine, c, direction=direction, **kw)
    s = 1 if long else -1
    x = 99 if long else 101
    received = -s * Q5 * 101 * rate  # ±5.024876
    assert abs(received) == pytest.approx(5.024876, rel=1e-6)
    tr = res.trades[0]
    assert (tr.entry_bar, tr.exit_bar, tr.exit_reason, tr.leverage) == (0, 3, "signal", 5.0)
    assert tr.qty == pytest.approx(Q5, rel=1e-12)
    assert tr.funding == pytest.approx(received, rel=1e-12)
    exit_fee = 0.001 * Q5 * x
    pnl = s * Q5 * (x - 100) - FEE5 - exit_fee + received
    assert tr.pnl == pytest.approx(pnl, rel=1e-10)
    assert tr.ret == pytest.approx(pnl / (M5 + FEE5), rel=1e-10)  # M + entry fee = the capital committed
    # P2: equity at bar 1's close = free cash (0) + WB (M + funding) + s·qty·(close − 100)
    close1 = 103 if long else 97
    assert res.equity[2] == pytest.approx(0 + M5 + received + s * Q5 * (close1 - 100), rel=1e-10)
    assert res.equity[-1] == pytest.approx(CAP + pnl, rel=1e-10)
    assert res.metrics["total_funding"] == pytest.approx(received, rel=1e-12)
    assert res.metrics["n_liquidations"] == 0


def test_next_open_entry_at_the_event_is_not_charged_and_an_exit_there_is(engine):
    """fill: next_open, events at open_1 and open_3. BUY decided at bar 0 fills at open[1] = 101,
    at the first event: not charged. SELL decided at bar 2 (close 101 ≤ 102) fills at open[3] =
    102, at the second: charged, at bar 3's mark open (102)."""
    rows = [(100, 100.5, 99.5, 100), (101, 103.5, 100.5, 103), (103, 103.5, 100.5, 101), (102, 102.5, 101.5, 102)]
    c = perp_bars(rows, events=[(900_000, 0.001, math.nan), (2_700_000, 0.001, math.nan)])
    res = run(engine, c, fill="next_open", buy_at=100, sell_at=102)
    tr = res.trades[0]
    q = 10_000 / (101 * (1 / 5 + 0.001))
    assert (tr.entry_bar, tr.exit_bar, tr.entry_price, tr.exit_price) == (1, 3, 101, 102)
    assert tr.funding == pytest.approx(-q * 102 * 0.001, rel=1e-12)  # the exit's event only


def test_long_liquidated_by_a_mark_wick_the_trade_low_never_reaches(engine):
    """L = 10: qty = 10,000/(100·0.101), M = 10,000·0.1/0.101, LP = (M − qty·100)/(qty·0.01 − qty)
    = 90.909091…; bar 2's trade low is 95, its mark low 90: liquidated at LP."""
    q = 10_000 / (100 * 0.101)
    m = q * 100 / 10
    fee = 0.001 * q * 100
    lp = (m + 0 - q * 100) / (q * 0.01 - q)
    assert lp == pytest.approx(90.9090909, rel=1e-8)
    rows = [(100, 100.5, 99.5, 100), (100, 101, 99, 100), (100, 101, 95, 99), (99, 100, 98, 99)]
    marks = [(100, 100.5, 99.5), (100, 101, 99), (100, 101, 90), (99, 100, 98)]
    res = run(engine, perp_bars(rows, marks), leverage=10, buy_at=100)
    tr = res.trades[0]
    assert (tr.exit_bar, tr.exit_reason) == (2, "liquidation")
    assert tr.exit_price == pytest.approx(lp, rel=1e-12)
    assert tr.pnl == pytest.approx(-(m + fee), rel=1e-12)
    assert tr.fees == pytest.approx(fee, rel=1e-12)
    assert tr.ret == pytest.approx(-1.0, rel=1e-15)
    assert res.equity[3] == pytest.approx(10_000 - m - fee, abs=1e-9)  # free cash: 0
    assert res.metrics["n_liquidations"] == 1
    # on the trade range (liquidation_price: last) the same bars never liquidate
    last = run(engine, perp_bars(rows, marks), leverage=10, buy_at=100, basis="last")
    assert last.trades[0].exit_reason == "open"


def test_liquidation_beats_a_stop_in_the_same_bar(engine):
    """L = 20: LP = 95.959596 (mmr 0.01); stop 3% at 97. Bar 2 (open 99, low 94) reaches both: the
    liquidation wins although the stop lies nearer on a falling path."""
    q = 10_000 / (100 * (0.05 + 0.001))
    m = q * 100 / 20
    lp = (m - q * 100) / (q * 0.01 - q)
    assert lp == pytest.approx(95.959596, rel=1e-6)
    rows = [(100, 100.5, 99.5, 100), (100, 101, 99.5, 100), (99, 99.5, 94, 96)]
    res = run(engine, perp_bars(rows), leverage=20, stop_loss=0.03, buy_at=100)
    tr = res.trades[0]
    assert (tr.exit_bar, tr.exit_reason) == (2, "liquidation")
    assert tr.exit_price == pytest.approx(lp, rel=1e-12)
    # without the liquidation in reach (low 96.5), the stop fills at 97
    rows[2] = (99, 99.5, 96.5, 97.5)
    assert run(engine, perp_bars(rows), leverage=20, stop_loss=0.03, buy_at=100).trades[0].exit_reason == "stop"


def test_funding_shrinks_the_wallet_until_liquidation(engine):
    """L = 100, mmr 0, c = 0: M = qty, WB = qty. Two events of rate 0.005 at mark 100 each take
    0.5·qty: WB reaches 0 at bar 2's start, liquidated there at LP = (0 − qty·100)/(−qty) = 100,
    although every low (99.9) stays above the LPs before (99, then 99.5)."""
    rows = [(100, 100.1, 99.9, 100)] * 5
    ev = [(900_000, 0.005, math.nan), (1_800_000, 0.005, math.nan)]
    res = run(engine, perp_bars(rows, events=ev), leverage=100, commission=0.0,
              brackets=(Bracket(1e12, 0.0, 0.0),), buy_at=100, sell_at=-1)
    q = 10_000 / (100 * 0.01)
    tr = res.trades[0]
    assert (tr.entry_bar, tr.exit_bar, tr.exit_reason) == (0, 2, "liquidation")
    assert tr.exit_price == pytest.approx(100.0, rel=1e-12)
    assert tr.funding == pytest.approx(-q, rel=1e-12)  # 2 × 0.5·qty
    assert tr.pnl == pytest.approx(-q * 100 / 100, rel=1e-12)  # −(M + fee), funding included in WB
    assert q == pytest.approx(10_000, rel=1e-12)  # qty = 10,000 / (100·(1/100 + 0)); M = 10,000
    assert res.equity[-1] == pytest.approx(0.0, abs=1e-9)  # free cash 0: ruined, though BUY holds
    assert len(res.trades) == 1


def test_4h_funding_changing_to_1h_on_4h_bars(engine):
    """4-hour bars; events every 4h up to 16h, then hourly: bars 1-4 carry one event each, bars 5
    and 6 four each (several events in one bar, in time order), at the bar's mark open."""
    rows = [(100 + k, 101 + k, 99 + k, 100 + k) for k in range(8)]
    c = bars(rows)
    c = dataclasses.replace(c, open_time=np.arange(8, dtype=np.int64) * 4 * H, interval_ms=4 * H)
    times = [4 * H * k for k in range(1, 5)] + [16 * H + H * k for k in range(1, 16)]
    rates = [0.0001 * (k + 1) for k in range(len(times))]
    hours = [4] * 4 + [1] * 15
    m = np.array(rows, dtype=float)
    p = PerpData(m[:, 0].copy(), m[:, 1].copy(), m[:, 2].copy(), np.array(times, dtype=np.int64), np.array(rates),
                 np.full(len(times), np.nan), np.array(hours, dtype=np.int64))
    c = dataclasses.replace(c, perp=p)
    res = run(engine, c, leverage=2, buy_at=100)
    q = 10_000 / (100 * (0.5 + 0.001))
    # bars 1-3 hold one 4h event; bar 4 (16h-20h) the last 4h one and three hourly ones; bars 5-7 four each
    per_bar = {}
    for t, r in zip(times, rates):
        per_bar.setdefault(t // (4 * H), []).append(r)
    assert [len(per_bar[b]) for b in sorted(per_bar)] == [1, 1, 1, 4, 4, 4, 4]
    expected = -sum(q * (100 + b) * r for b in sorted(per_bar) if b < 8 for r in per_bar[b])
    assert res.trades[0].funding == pytest.approx(expected, rel=1e-12)
    from engine.perp.funding import check_coverage, interval_changes
    check_coverage(c.open_time, c.interval_ms, p, "X")  # 4h then 1h: covered
    short = dataclasses.replace(p, funding_time=p.funding_time[:-5], funding_rate=p.funding_rate[:-5],
                                funding_mark=p.funding_mark[:-5], interval_hours=p.interval_hours[:-5])
    with pytest.raises(DataError, match="does not cover the run: no event from 1970-01-02 02:00:00"):
        check_coverage(c.open_time, c.interval_ms, short, "X")  # 26h .. 32h: more than 2 hourly intervals
    assert interval_changes(p) == [(4 * H, 4), (17 * H, 1)]


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_leverage_1_without_funding_equals_spot(fill):
    """P2: at L = 1, with no funding and no liquidation, long, short and both runs are today's spot
    runs exactly: the same trades (funding 0, leverage 1) and the same equity, bit for bit."""
    from engine.config import parse_config
    from engine.data.synthetic import generate_candles
    from engine.grid import build_grid
    from engine.perp.synthetic import with_perp

    spot = generate_candles(1500, seed=5)
    perp_c = with_perp(spot, 5)
    doc = {"strategies": {"ma_crossover": {"short_window": [5, 10], "long_window": 30, "ema_period": 20}},
           "portfolio": {"direction": ["long", "short", "both"], "size": [1.0, 0.5]},
           "risk": {"stop_loss": [None, 0.02]}, "execution": {"fill": fill}}
    (sw,) = build_grid(parse_config(doc))
    ex = Execution(CAP, 0.0005, 0.001, fill)
    perp = perp_inputs(PerpConfig(liquidation_price="last", funding=False), perp_c)
    assert perp.brackets[0].mmr == 0.004  # BTCUSDT's committed table
    n_trades = 0
    for i in range(len(sw)):
        a = runner.detail(sw, i, spot, ex)
        b = runner.detail(sw, i, perp_c, ex, perp=perp)
        assert a.trades == b.trades
        assert np.array_equal(a.equity, b.equity)
        r = BacktestingEngine(perp_c, sw.instance(i), ex, sw.rules(i), perp).run()
        assert r.trades == a.trades and np.array_equal(r.equity, a.equity)
        n_trades += len(a.trades)
    assert n_trades > 50


def test_readme_perp_example_runs_as_written():
    """The README's "Perpetual futures" config is configs/perp.yaml, and it runs on the embedded
    synthetic perp data (shortened here) with the same summary on both engines."""
    import re
    from pathlib import Path

    import yaml

    from engine.config import parse_config
    from engine.data.source import load_data
    from engine.perp.inputs import check_perp_run
    from engine.sweep import run_sweep

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    section = readme.split("### Perpetual futures", 1)[1]
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", section, flags=re.S)][:1]
    assert block == (root / "configs/perp.yaml").read_text()
    doc = yaml.safe_load(block)
    doc["data"]["synthetic_bars"] = 2000
    doc["strategies"]["ma_crossover"] = {"short_window": 10, "long_window": 50, "ema_period": 200}
    cfg = parse_config(doc)
    candles = load_data(cfg.data)
    check_perp_run(cfg.perp, candles)
    assert candles.perp.has_mark and set(candles.perp.interval_hours.tolist()) == {8, 4}
    fast = run_sweep(cfg, candles, engine="fast", workers=1).summary
    ref = run_sweep(cfg, candles, engine="reference", workers=1).summary
    assert list(fast["leverage"]) == [1.0, 3.0, 10.0, 1.0, 3.0, 10.0]
    assert (fast["n_trades"] > 0).all() and (fast["total_funding"] != 0).all()
    for col in ("n_trades", "n_liquidations"):
        assert list(fast[col]) == list(ref[col])
    for col in ("final_equity", "total_funding"):
        assert np.allclose(fast[col], ref[col], rtol=1e-9)
