"""Strategy base class: typed parameters, registry, user-strategy import, fast-path flag."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from engine.candles import Candles
from engine.errors import ConfigError
from engine.execution import Execution
from engine.indicators import EMA, RSI, SMA, Highest, Lowest
from engine.reference import BacktestingEngine, DataFeed
from engine.strategies import (ENTRY, EXIT, REGISTRY, Action, Bound, DonchianBreakout, MACrossover, RSIReversion,
                               Strategy, get_strategy, register)


@njit
def always_both(o, h, lo, c, _v0, _v1, _v2, _v3, _p0, _p1, _p2, _p3):
    return ENTRY | EXIT


class BothWays(Strategy):
    name = "test_both_ways"
    window: int = 3
    level: float = 1.5
    flag: bool = False
    signal = staticmethod(always_both)
    signal_params = ("level",)
    bounds = {"window": Bound(1, 10), "level": Bound(0.0, low_inclusive=False)}


class Extended(BothWays):
    name = "test_extended"
    extra: int = 7


class HoldTwoBars(Strategy):
    """Stateful: buys on the first bar, sells after holding two bars. Reference engine only."""

    name = "test_hold_two"
    hold: int = 2

    def reset(self):
        self._held = 0

    def on_candle(self, candle, in_position):
        if not in_position:
            return Action.BUY if candle.index == 0 else Action.HOLD
        self._held += 1
        return Action.SELL if self._held >= self.hold else Action.HOLD


# --- parameters -----------------------------------------------------------------------------------


def test_defaults_and_params():
    s = MACrossover()
    assert s.params == {"short_window": 10, "long_window": 50, "ema_period": 200, "momentum_spread": 0.001}


def test_unknown_params_rejected():
    with pytest.raises(ConfigError, match="short_windw"):
        MACrossover(short_windw=5)


def test_int_param_rejects_fraction_accepts_integral_float():
    with pytest.raises(ConfigError, match=r"strategies\.ma_crossover\.short_window.*5\.5"):
        MACrossover(short_window=5.5)
    s = MACrossover(short_window=5.0)
    assert s.short_window == 5 and type(s.short_window) is int
    with pytest.raises(ConfigError):
        MACrossover(short_window=True)
    with pytest.raises(ConfigError):
        MACrossover(short_window="5")


def test_float_param_accepts_int():
    s = MACrossover(momentum_spread=1)
    assert s.momentum_spread == 1.0 and type(s.momentum_spread) is float
    for bad in ("0.1", float("inf"), float("nan"), None, False):
        with pytest.raises(ConfigError):
            MACrossover(momentum_spread=bad)


def test_bool_param():
    assert BothWays(flag=True).flag is True
    with pytest.raises(ConfigError):
        BothWays(flag=1)


def test_bounds():
    with pytest.raises(ConfigError, match="rsi_period"):
        RSIReversion(rsi_period=1)
    with pytest.raises(ConfigError, match="overbought"):
        RSIReversion(overbought=101)
    with pytest.raises(ConfigError, match="window"):
        BothWays(window=11)
    with pytest.raises(ConfigError, match="level"):
        BothWays(level=0.0)  # exclusive lower bound
    assert BothWays(window=10, level=1e-9).window == 10
    with pytest.raises(ConfigError):
        DonchianBreakout(exit_window=0)


def test_param_specs_order():
    assert list(MACrossover.param_specs()) == ["short_window", "long_window", "ema_period", "momentum_spread"]
    assert MACrossover.param_specs()["ema_period"] == (int, 200)
    assert MACrossover.param_specs()["momentum_spread"] == (float, 0.001)
    assert list(RSIReversion.param_specs()) == ["rsi_period", "oversold", "overbought"]
    assert list(DonchianBreakout.param_specs()) == ["entry_window", "exit_window"]
    # inherited parameters first, ClassVars (name, signal, bounds...) excluded
    assert list(Extended.param_specs()) == ["window", "level", "flag", "extra"]
    assert Extended.param_specs()["extra"] == (int, 7)


def test_signal_param_values_in_order():
    assert RSIReversion(oversold=25, overbought=80).signal_param_values() == (25.0, 80.0)
    assert MACrossover(momentum_spread=0.002).signal_param_values() == (0.002,)
    assert DonchianBreakout().signal_param_values() == ()


def test_constraints():
    assert MACrossover(short_window=5, long_window=20).violated_constraint() is None
    assert MACrossover(short_window=20, long_window=20).violated_constraint().description == \
        "short_window < long_window"
    assert RSIReversion(oversold=60, overbought=40).violated_constraint() is not None


def test_indicators():
    assert MACrossover(short_window=3, long_window=7, ema_period=9).indicators() == (SMA(3), SMA(7), EMA(9))
    assert RSIReversion(rsi_period=5).indicators() == (RSI(5),)
    assert DonchianBreakout(entry_window=4, exit_window=2).indicators() == (Highest(4), Lowest(2))


# --- registry and import ----------------------------------------------------------------------------


def test_registry_lookup():
    assert get_strategy("ma_crossover") is MACrossover
    assert get_strategy("rsi_reversion") is RSIReversion
    assert get_strategy("donchian_breakout") is DonchianBreakout
    assert {"ma_crossover", "rsi_reversion", "donchian_breakout"} <= set(REGISTRY)
    with pytest.raises(ConfigError, match="nope"):
        get_strategy("nope")


def test_import_by_module_and_class():
    assert get_strategy("engine.strategies.ma_crossover:MACrossover") is MACrossover
    assert get_strategy(f"{__name__}:BothWays") is BothWays
    with pytest.raises(ConfigError, match="cannot import"):
        get_strategy("no_such_package.mod:Thing")
    with pytest.raises(ConfigError, match="cannot import"):
        get_strategy("engine.strategies.ma_crossover:NoSuchClass")
    with pytest.raises(ConfigError, match="not a Strategy"):
        get_strategy("engine.strategies:REGISTRY")


def test_register():
    try:
        assert register(Extended) is Extended
        assert get_strategy("test_extended") is Extended
    finally:
        REGISTRY.pop("test_extended", None)

    class Nameless(Strategy):
        pass

    with pytest.raises(ValueError):
        register(Nameless)


# --- fast path flag and the reference gating ----------------------------------------------------------


def test_fast_path_flag():
    assert MACrossover.fast_path() and RSIReversion.fast_path() and DonchianBreakout.fast_path()
    assert BothWays.fast_path()
    assert not HoldTwoBars.fast_path()


def _candles(closes):
    c = np.asarray(closes, dtype=float)
    n = len(c)
    return Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=c.copy(), high=c + 1, low=c - 1, close=c,
                   volume=np.ones(n), interval_ms=900_000)


def test_stateful_strategy_runs_on_reference_engine():
    r = BacktestingEngine(_candles([100, 101, 102, 103, 104]), HoldTwoBars(),
                          Execution(1000.0, 0.0, 0.0)).run()
    assert [(t.entry_bar, t.exit_bar, t.exit_reason) for t in r.trades] == [(0, 2, "signal")]
    assert r.trades[0].pnl == pytest.approx(1000 / 100 * 102 - 1000)


def test_entry_acts_only_while_flat_and_exit_only_while_long():
    s = BothWays()
    s.reset()
    bar = next(iter(DataFeed(_candles([100]))))
    assert s.on_candle(bar, in_position=False) == Action.BUY
    assert s.on_candle(bar, in_position=True) == Action.SELL
