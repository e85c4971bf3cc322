"""Walk-forward pieces that need no simulation: choosing, stitching, efficiency (by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.trade import Trade
from engine.validation.walk_forward import choose, efficiency, stitch


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
    assert efficiency(None, [0.4]) is None
    assert efficiency(0.2, [0.4, None]) is None
    assert efficiency(0.2, [0.1, -0.1]) is None  # mean 0
    assert efficiency(0.2, []) is None
    assert efficiency(0.2, [math.inf]) is None
