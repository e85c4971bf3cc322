"""Property test, perp: the fast path reproduces the reference engine under P1-P5.

The spot property test's random series, strategies and position rules (tests/test_equivalence.py),
with a random leverage (1 to 125), random funding events (several per bar sometimes, either sign,
with and without the event's mark price), a random mark series (the trade range widened by
wicks, some bars without a mark kline), the liquidation basis (mark or last) and random brackets
small enough that entries cross them. The reference, the fast path's recording run and its sweep
(whole and chunked) must give the same trades (funding included), equity and metrics."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import examples
from engine.config import parse_config
from engine.execution import Execution
from engine.fast import runner
from engine.grid import build_grid
from engine.perp.brackets import Bracket
from engine.perp.config import PerpConfig
from engine.perp.inputs import perp_inputs
from engine.perp.series import PerpData
from engine.reference import BacktestingEngine
from test_equivalence import (CAPITAL, _close, assert_same_metrics, assert_same_trades, costs, directions, ohlc,
                              row, sizes, stops, strategy_grid)


@st.composite
def perp_series(draw, candles):
    n = len(candles)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    wick = draw(st.sampled_from([0.0, 0.01, 0.1]))
    mh = candles.high * (1 + np.where(rng.random(n) < 0.2, rng.uniform(0, wick, n), 0.0))
    ml = candles.low * (1 - np.where(rng.random(n) < 0.2, rng.uniform(0, wick, n), 0.0))
    mo = candles.open * (1 + rng.normal(0, 0.001, n))
    missing = rng.random(n) < draw(st.sampled_from([0.0, 0.1]))
    mo[missing] = mh[missing] = ml[missing] = np.nan
    k = int(draw(st.integers(0, max(0, n // 2))))
    span = max(1, n) * candles.interval_ms
    times = np.sort(rng.integers(-candles.interval_ms, span + candles.interval_ms, k)).astype(np.int64)
    scale = draw(st.sampled_from([0.0001, 0.003, 0.05]))  # the last drains a wallet in a few events
    rate = rng.normal(draw(st.sampled_from([0.0, scale])), scale, k)
    mark = np.where(rng.random(k) < 0.5, candles.close[np.clip(times // candles.interval_ms, 0, n - 1)], np.nan)
    return PerpData(mo, mh, ml, times, rate, mark, np.full(k, 8, dtype=np.int64))


brackets = st.sampled_from([
    (Bracket(1e12, 0.004, 0.0),),
    (Bracket(50_000, 0.004, 0.0), Bracket(500_000, 0.01, 300.0), Bracket(1e9, 0.05, 20_300.0)),
    (Bracket(1_000, 0.0, 0.0), Bracket(1e7, 0.2, 200.0)),
])


@settings(max_examples=examples(ci=150, local=60), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(candles=ohlc(), strat=strategy_grid(), fill=st.sampled_from(["close", "next_open"]), slippage=costs,
       commission=costs, stop_loss=stops, size=sizes, direction=directions,
       leverage=st.sampled_from([1.0, 2.0, 5.0, 20.0, 125.0]), basis=st.sampled_from(["mark", "last"]),
       table=brackets, data=st.data())
def test_perp_fast_path_matches_reference(candles, strat, fill, slippage, commission, stop_loss, size, direction,
                                          leverage, basis, table, data):
    name, params, grid = strat
    candles = dataclasses.replace(candles, perp=data.draw(perp_series(candles), label="perp"))
    cfg = parse_config({
        "data": {"market": "um"},
        "strategies": {name: grid},
        "portfolio": {"direction": direction, "size": size, "leverage": [leverage, 3.0] if leverage != 3.0 else 3.0},
        "risk": {"stop_loss": stop_loss},
        "execution": {"commission": commission, "slippage": slippage, "fill": fill},
    })
    (sw,) = build_grid(cfg)
    i = next(i for i in range(len(sw)) if sw.params(i) == params and sw.rules(i).leverage == leverage)
    ex = Execution(CAPITAL, slippage, commission, fill)
    perp = perp_inputs(PerpConfig(brackets=table, liquidation_price=basis), candles)
    ref = BacktestingEngine(candles, sw.strategy(**params), ex, sw.rules(i), perp).run()
    det = runner.detail(sw, i, candles, ex, perp=perp)
    for reason in ("liquidation", "stop", "open"):
        if any(t.exit_reason == reason for t in ref.trades):
            event(f"has {reason} exit")
    if any(t.funding != 0 for t in ref.trades):
        event("has funding")
    assert_same_trades(ref.trades, det.trades)
    for k, (a, b) in enumerate(zip(ref.trades, det.trades)):
        _close(a.funding, b.funding, f"trade {k} funding")
        assert a.leverage == b.leverage == leverage
    for t, (a, b) in enumerate(zip(ref.equity.tolist(), det.equity.tolist())):
        _close(a, b, f"equity[{t}]")
    assert_same_metrics(ref.metrics, det.metrics, "detail")
    whole = runner.sweep(sw, candles, ex, perp=perp)
    assert_same_metrics(ref.metrics, row(whole, i), "sweep")
    chunked = runner.sweep(sw, candles, ex, chunk=7, perp=perp)
    for j in range(len(sw)):
        assert_same_metrics(row(whole, j), row(chunked, j), f"combination {j} chunk=7 vs whole")
