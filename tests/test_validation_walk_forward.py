"""Walk-forward pieces that need no simulation: choosing, stitching, efficiency (by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.trade import Trade
from engine.validation.walk_forward import choose, efficiency, efficiency_text, stitch
from engine.validation.windows import Fold, Window, plan_folds


def test_choose_best_ties_lowest_nan_last():
    assert choose(np.array([1.0, np.nan, 3.0, 3.0]), "sharpe") == 2
    assert choose(np.array([np.nan, -1.0]), "sharpe") == 1
    assert choose(np.array([0.2, 0.1, 0.1, np.nan]), "max_drawdown") == 1  # smaller is better
    assert choose(np.array([np.nan, np.nan]), "sharpe") == 0
    assert choose(np.array([0.4, 0.9]), "dsr") == 1


def test_stitch_chains_the_folds_from_the_capital():
    t1 = Trade(10, 12, 0, 0, 100.0, 121.0, 1.0, 0.5, 20.5, 0.205, "window_end")
    t2 = Trade(20, 21, 0, 0, 50.0, 45.0, 2.0, 1.0, -10.0, -0.1, "stop")
    equity, trades = stitch([np.array([100.0, 110.0, 121.0]), np.array([100.0, 90.0])], [[t1], [t2]], 100.0)
    # fold 2 starts from 121: 121 * 90/100 = 108.9
    np.testing.assert_allclose(equity, [100.0, 110.0, 121.0, 108.9], rtol=1e-15)
    assert trades[0] == t1
    s = trades[1]
    assert (s.entry_bar, s.exit_bar, s.entry_price, s.exit_price, s.ret, s.exit_reason) == (20, 21, 50.0, 45.0,
                                                                                            -0.1, "stop")
    assert s.qty == pytest.approx(2.42) and s.fees == pytest.approx(1.21) and s.pnl == pytest.approx(-12.1)


def test_efficiency():
    assert efficiency(0.2, [0.4, 0.2]) == pytest.approx(0.2 / 0.3)
    assert efficiency(-0.1, [0.5]) == pytest.approx(-0.2)
    # issue 21: two negatives made a positive 1.39; a mean in-sample CAGR <= 0 gives none
    assert efficiency(-0.71, [-0.5, -0.52]) is None
    assert efficiency_text(None, [-0.5, -0.52]) == "n/a (in-sample CAGR ≤ 0)"
    assert efficiency_text(None, [0.5, None]) == "n/a"
    assert efficiency_text(0.5, [0.2]) == "0.50"
    assert efficiency(None, [0.4]) is None
    assert efficiency(0.2, [0.4, None]) is None
    assert efficiency(0.2, [0.1, -0.1]) is None  # mean 0
    assert efficiency(0.2, []) is None
    assert efficiency(0.2, [math.inf]) is None


def test_semantics_worked_examples():
    """docs/semantics.md, "Holdout and walk-forward windows": the two worked examples."""

    assert plan_folds(20, 6, 4, 4) == (Fold(0, Window(0, 6), Window(6, 10)), Fold(1, Window(4, 10), Window(10, 14)),
                                       Fold(2, Window(8, 14), Window(14, 18)), Fold(3, Window(12, 18), Window(18, 20)))
    assert [f.train for f in plan_folds(20, 6, 4, 4, anchored=True)] == [Window(0, 6), Window(0, 10), Window(0, 14),
                                                                         Window(0, 18)]
    assert len(plan_folds(19, 6, 4, 4)) == 3
    t = Trade(30, 31, 0, 0, 500.0, 0.0, 2.0, 0.0, -1000.0, -1.0, "window_end")
    equity, trades = stitch([np.array([10_000.0, 10_500.0, 11_000.0]), np.array([10_000.0, 9_000.0])], [[], [t]],
                            10_000.0)
    np.testing.assert_allclose(equity, [10_000.0, 10_500.0, 11_000.0, 9_900.0], rtol=1e-15)
    assert trades[0].qty == pytest.approx(2.2) and trades[0].pnl == pytest.approx(-1_100.0)
    assert equity[-1] / equity[0] - 1 == pytest.approx(-0.01)
    assert efficiency(0.15, [0.2, 0.4]) == pytest.approx(0.5)
