"""Strategies: typed parameters, the registry, user-strategy import, and the rule bound by name —
checked at load time, fed the same arguments by both engines."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from numba import njit

from backtest_cli import main
from engine.grid import build_grid
from engine.candles import Candles
from engine.errors import ConfigError
from engine.execution import Execution
from engine.fast import runner
from engine.fast import rule_unit, unit_names
from engine.indicators import ATR, EMA, RSI, SMA, BollingerLower, BollingerUpper, Highest, Lowest
from engine.reference import BacktestingEngine
from engine.strategies import (ALIASES, ENTER_LONG, EXIT_LONG, REGISTRY, BollingerReversion, Bound, DonchianBreakout,
                               MACrossover, RSIReversion, Strategy, get_strategy, strategy_path)
from engine.config import parse_config


@njit
def always_both(close, level):
    return ENTER_LONG | EXIT_LONG


class BothWays(Strategy):
    name = "test_both_ways"
    window: int = 3
    level: float = 1.5
    flag: bool = False
    signal = staticmethod(always_both)
    bounds = {"window": Bound(1, 10), "level": Bound(0.0, low_inclusive=False)}


class Extended(BothWays):
    name = "test_extended"
    extra: int = 7


# --- parameters -----------------------------------------------------------------------------------


def test_defaults_and_params():
    s = MACrossover()
    assert s.params == {"short_window": 10, "long_window": 50, "ema_period": 200, "momentum_spread": 0.001}


def test_unknown_params_rejected_with_a_suggestion():
    with pytest.raises(ConfigError, match="short_windw.*did you mean 'short_window'"):
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
    with pytest.raises(ConfigError, match="bb_k"):
        BollingerReversion(bb_k=0.0)


def test_param_specs_order():
    assert list(MACrossover.param_specs()) == ["short_window", "long_window", "ema_period", "momentum_spread"]
    assert MACrossover.param_specs()["ema_period"] == (int, 200)
    assert MACrossover.param_specs()["momentum_spread"] == (float, 0.001)
    assert list(RSIReversion.param_specs()) == ["rsi_period", "oversold", "overbought"]
    assert list(DonchianBreakout.param_specs()) == ["entry_window", "exit_window"]
    assert list(BollingerReversion.param_specs()) == ["bb_period", "bb_k"]
    # inherited parameters first, ClassVars (name, signal, bounds, indicators...) excluded
    assert list(Extended.param_specs()) == ["window", "level", "flag", "extra"]
    assert Extended.param_specs()["extra"] == (int, 7)


def test_constraints():
    assert MACrossover(short_window=5, long_window=20).violated_constraint() is None
    assert MACrossover(short_window=20, long_window=20).violated_constraint().description == \
        "short_window < long_window"
    assert RSIReversion(oversold=60, overbought=40).violated_constraint() is not None


def test_indicators_resolve_by_name():
    assert MACrossover(short_window=3, long_window=7, ema_period=9).indicator_specs() == \
        {"sma_short": SMA(3), "sma_long": SMA(7), "ema": EMA(9)}
    assert RSIReversion(rsi_period=5).indicator_specs() == {"rsi": RSI(5)}
    assert DonchianBreakout(entry_window=4, exit_window=2).indicator_specs() == \
        {"entry_high": Highest(4), "exit_low": Lowest(2), "entry_low": Lowest(4), "exit_high": Highest(2)}
    assert BollingerReversion(bb_period=7, bb_k=1.5).indicator_specs() == \
        {"middle": SMA(7), "upper": BollingerUpper(7, 1.5), "lower": BollingerLower(7, 1.5)}


def test_binding_follows_the_rule_signature():
    b = MACrossover.binding()
    assert b.arguments == (("price", "close"), ("indicator", "sma_short"), ("indicator", "sma_long"),
                           ("indicator", "ema"), ("param", "momentum_spread"))
    assert b.indicators == ("sma_short", "sma_long", "ema") and b.params == ("momentum_spread",)
    assert not b.stateful
    src = rule_unit.source(MACrossover)
    assert "    return signal_fn(c[t], V0[t], V1[t], V2[t], P0)" in src


# --- registry and import ----------------------------------------------------------------------------


def test_short_names_are_the_builtins_and_the_registry_is_keyed_by_import_path():
    assert get_strategy("ma_crossover") is MACrossover
    assert get_strategy("rsi_reversion") is RSIReversion
    assert get_strategy("donchian_breakout") is DonchianBreakout
    assert get_strategy("bollinger_reversion") is BollingerReversion
    assert ALIASES == {"ma_crossover": "engine.strategies.ma_crossover:MACrossover",
                       "rsi_reversion": "engine.strategies.rsi_reversion:RSIReversion",
                       "donchian_breakout": "engine.strategies.donchian_breakout:DonchianBreakout",
                       "bollinger_reversion": "engine.strategies.bollinger_reversion:BollingerReversion"}
    assert {"engine.strategies.ma_crossover:MACrossover", "engine.strategies.rsi_reversion:RSIReversion"} \
        <= set(REGISTRY)
    assert not any(":" not in key for key in REGISTRY)  # no short name is a registry key
    with pytest.raises(ConfigError, match="nope"):
        get_strategy("nope")
    with pytest.raises(ConfigError, match="did you mean 'ma_crossover'"):
        get_strategy("ma_crosover")


def test_import_by_module_and_class():
    assert get_strategy("engine.strategies.ma_crossover:MACrossover") is MACrossover
    assert get_strategy(f"{__name__}:BothWays") is BothWays
    assert REGISTRY[strategy_path(BothWays)] is BothWays  # loaded strategies are kept by path
    with pytest.raises(ConfigError, match="cannot import"):
        get_strategy("no_such_package.mod:Thing")
    with pytest.raises(ConfigError, match="cannot import"):
        get_strategy("engine.strategies.ma_crossover:NoSuchClass")
    with pytest.raises(ConfigError, match="not a Strategy"):
        get_strategy("engine.strategies:REGISTRY")
    with pytest.raises(ConfigError, match="unknown strategy 'test_both_ways'"):
        get_strategy("test_both_ways")  # a user strategy is named by its path, never by its name


class ShadowsABuiltin(BothWays):
    """A user strategy that calls itself ma_crossover: it never replaces the built-in."""

    name = "ma_crossover"


def test_a_user_strategy_named_like_a_builtin_keeps_its_own_parameters():
    cfg = parse_config({"strategies": {f"{__name__}:ShadowsABuiltin": {"window": [2, 4]}}})
    (sw,) = build_grid(cfg)
    assert sw.strategy is ShadowsABuiltin and sw.param_names == ("window", "level", "flag")
    assert get_strategy("ma_crossover") is MACrossover  # the short name still means the built-in
    assert cfg.strategies[0].path == f"{__name__}:ShadowsABuiltin"


def test_two_strategies_with_one_name_are_refused_at_load():
    with pytest.raises(ConfigError, match=r"strategies: 'ma_crossover' and '.*:ShadowsABuiltin' are both named "
                                          r"'ma_crossover'"):
        parse_config({"strategies": {"ma_crossover": {}, f"{__name__}:ShadowsABuiltin": {}}})
    with pytest.raises(ConfigError, match="are both named 'ma_crossover'"):  # the same class under two keys
        parse_config({"strategies": {"ma_crossover": {}, "engine.strategies.ma_crossover:MACrossover": {}}})


# --- mistakes found when the strategy is loaded ------------------------------------------------------


@njit
def typo_rule(close, rsii, level):
    return 0


@njit
def unread_rule(close, rsi):
    return 0


@njit
def good_rule(close, rsi, level):
    return 0


def plain_rule(close, rsi, level):
    return 0


@njit
def default_rule(close, rsi, level=1.0):
    return 0


@njit
def clash_rule(close):
    return 0


@njit
def string_param_rule(close, rsi, label):
    return 0


def _strategy(rule, indicators=None, **attrs):
    ns = {"__annotations__": {"period": int, "level": float, **attrs.pop("annotations", {})}, "name": "test_broken",
          "period": 14, "level": 1.0, "signal": staticmethod(rule) if rule is not None else None,
          "indicators": {"rsi": RSI("period")} if indicators is None else indicators, "__module__": __name__}
    ns.update(attrs)
    return type("Broken", (Strategy,), ns)


@pytest.mark.parametrize("make,needle", [
    (lambda: _strategy(typo_rule), "rule typo_rule reads 'rsii', which is not a price, indicator, parameter or "
                                   "position field; did you mean 'rsi'?"),
    (lambda: _strategy(unread_rule, indicators={"rsi": RSI("period"), "ema": EMA(9)}),
     "indicator 'ema' is declared but rule unread_rule does not read it"),
    (lambda: _strategy(plain_rule), "`signal` must be a numba @njit function"),
    (lambda: _strategy(None), "`signal` must be a numba @njit function"),
    (lambda: _strategy(default_rule), "argument 'level' must be a plain positional argument without a default"),
    (lambda: _strategy(good_rule, indicators={"rsi": RSI("perod")}),
     "indicator 'rsi' reads parameter 'perod', which is not declared; did you mean 'period'?"),
    (lambda: _strategy(good_rule, indicators={"rsi": RSI("level")}),
     "indicator 'rsi' needs an integer period for rsi, but parameter 'level' is float"),
    (lambda: _strategy(good_rule, indicators={"rsi": 14}), "indicator 'rsi' is 14, not an engine.indicators"),
    (lambda: _strategy(clash_rule, indicators={}, annotations={"close": float}, close=1.0),
     "'close' is both a price and a parameter"),
    (lambda: _strategy(good_rule, indicators={"level": RSI(3)}), "'level' is both an indicator and a parameter"),
    (lambda: _strategy(string_param_rule, annotations={"label": str}, label="x"),
     "reads parameter 'label' of type str"),
])
def test_binding_mistakes_are_config_errors(make, needle):
    with pytest.raises(ConfigError) as exc:
        make().binding()
    assert needle in str(exc.value), str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_rule_defined_in_a_function_is_rejected():
    @njit
    def local_rule(close):
        return 0

    with pytest.raises(ConfigError, match="must be defined at the top level of its module"):
        _strategy(local_rule, indicators={}).binding()


def test_validate_config_reports_a_binding_mistake_in_one_line(tmp_path, capsys, monkeypatch):
    pkg = tmp_path / "broken_strategy_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        "from numba import njit\n"
        "from engine.indicators import RSI\n"
        "from engine.strategies import Strategy\n\n"
        "@njit\n"
        "def rule(close, rsi, oversold):\n"
        "    return 0\n\n"
        "class Broken(Strategy):\n"
        "    name = 'broken_for_validate'\n"
        "    rsi_period: int = 14\n"
        "    oversold: float = 30.0\n"
        "    indicators = {'rsi': RSI('rsi_period'), 'ema': RSI(3)}\n"
        "    signal = staticmethod(rule)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("strategies:\n  broken_strategy_pkg.mod:Broken: {rsi_period: [7, 14]}\n")
    code = main(["validate-config", str(cfg)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "indicator 'ema' is declared but rule rule does not read it" in err


def test_config_rejects_a_period_parameter_below_one():
    class NoBound(Strategy):
        name = "test_no_bound"
        period: int = 3
        level: float = 1.0
        indicators = {"rsi": RSI("period")}
        signal = staticmethod(good_rule)

    REGISTRY["test_strategies_local:NoBound"] = NoBound
    try:
        cfg = parse_config({"strategies": {"test_strategies_local:NoBound": {"period": [3, 0]}}})
        with pytest.raises(ConfigError, match=r"strategies.test_no_bound.period: 0 is out of range; indicator 'rsi'"):
            build_grid(cfg)
    finally:
        REGISTRY.pop("test_strategies_local:NoBound", None)


# --- any number of indicators, bound by name ----------------------------------------------------------


@njit
def six_rule(close, rsi, lo4, atr, sma5, ema1, hi2, level, step):
    """ENTER_LONG when every indicator has the exact value it has on a rising line close = t + 1
    (open = high = low = close) and the integer parameter shifts like an integer."""
    if (close >= level and ema1 == close and sma5 == close - 2.0 and hi2 == close - 1.0 and lo4 == close - 4.0
            and atr == 1.0 and rsi == 100.0 and (step >> 1) == 1):
        return ENTER_LONG
    return 0


class SixIndicators(Strategy):
    name = "test_six_indicators"
    level: float = 5.0
    step: int = 2  # `step >> 1` compiles and runs only on an integer
    sma_period: int = 5

    # declared in another order than the rule's arguments: binding is by name
    indicators = {"hi2": Highest(2), "ema1": EMA(1), "sma5": SMA("sma_period"), "rsi": RSI(2), "atr": ATR(2),
                  "lo4": Lowest(4)}
    signal = staticmethod(six_rule)


def _line(n):
    c = np.arange(1, n + 1, dtype=float)
    return Candles(open_time=np.arange(n, dtype=np.int64) * 900_000, open=c.copy(), high=c.copy(), low=c.copy(),
                   close=c, volume=np.ones(n), interval_ms=900_000)


@pytest.mark.parametrize("level,entry_bar", [(5.0, 4), (7.0, 6)])
def test_six_indicators_reach_the_rule_by_name_on_both_engines(level, entry_bar):
    """On close = t + 1: sma(5) = t - 1, ema(1) = close, highest(2) = t, lowest(4) = t - 3, atr(2) = 1 (every
    true range is 1), rsi(2) = 100 (only gains), all exact. Every indicator is valid from bar 4 (sma(5),
    lowest(4)), so the first entry is bar max(4, level - 1)."""
    candles = _line(10)
    cfg = parse_config({"strategies": {f"{__name__}:SixIndicators": {"level": level}}, "risk": {"stop_loss": None}})
    (sw,) = build_grid(cfg)
    ex = Execution(1000.0, 0.0, 0.0)
    ref = BacktestingEngine(candles, sw.instance(0), ex, sw.rules(0)).run()
    fast = runner.detail(sw, 0, candles, ex)
    for r in (ref, fast):
        assert [(t.entry_bar, t.exit_reason) for t in r.trades] == [(entry_bar, "open")]
        assert r.trades[0].entry_price == entry_bar + 1
    assert runner.sweep(sw, candles, ex)["final_equity"][0] == pytest.approx(1000.0 * 10 / (entry_bar + 1))


def test_a_float_where_the_rule_shifts_bits_would_not_compile():
    """The check above is meaningful: the same rule refuses a float."""
    with pytest.raises(TypeError):
        six_rule.py_func(5.0, 100.0, 1.0, 1.0, 3.0, 5.0, 4.0, 5.0, 2.0)


# --- the generated rule unit ----------------------------------------------------------------------


def test_the_generated_source_binds_the_rule_and_its_loops():
    src = rule_unit.source(MACrossover)
    assert "from engine.strategies.ma_crossover import ma_crossover_signal as _rule" in src
    for fn in ("bar", *rule_unit.LOOPS):
        assert f"\ndef {fn}(ctx_p, j, " in src
    # each loop tests its own signal mask, a constant: the long scan never looks at the short codes
    assert "def scan_long(ctx_p, j, u, t1):" in src and "    m = ENTER_LONG\n" in src
    assert "    m = EXIT_SHORT | ENTER_LONG\n" in src  # hold_short_both: an opposite entry closes too
    assert "mark(e, t + 1, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, " \
           "dd_gate, sum_r3, sum_r4, True)" in src  # the moment sums in the _m hold loops only


HELPER_MODULE = '''
from numba import njit
from engine.strategies import ENTER_LONG, Strategy

LIMIT = {limit}


@njit
def deepest(x):
    return x * {factor}


@njit
def helper(x):
    return deepest(x) > LIMIT


@njit
def rule(close):
    return ENTER_LONG if helper(close) else 0


class WithHelper(Strategy):
    name = "test_with_helper"
    signal = staticmethod(rule)
'''


def test_the_kernel_name_covers_every_function_the_rule_calls(tmp_path, monkeypatch):
    import importlib

    pkg = tmp_path / "helper_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = {}
    for version, (factor, limit) in {"v1": (2.0, 100.0), "deep_helper_edited": (3.0, 100.0),
                                     "constant_edited": (3.0, 50.0), "same_again": (3.0, 50.0)}.items():
        (pkg / "mod.py").write_text(HELPER_MODULE.format(factor=factor, limit=limit))
        sys.modules.pop("helper_pkg.mod", None)
        importlib.invalidate_caches()
        mod = importlib.import_module("helper_pkg.mod")
        names[version] = unit_names.rule_unit_name(mod.WithHelper)
    sys.modules.pop("helper_pkg.mod", None)
    sys.modules.pop("helper_pkg", None)
    # editing a function two calls deep, or a constant it reads, makes a new kernel
    assert names["v1"] != names["deep_helper_edited"] != names["constant_edited"]
    assert names["constant_edited"] == names["same_again"]


# --- indicators that read other indicators by name ---------------------------------------------------


@njit
def cross_rule(fast_prev, slow, level):
    return ENTER_LONG if fast_prev > slow + level else 0


def test_an_indicator_read_only_by_another_is_used():
    from engine.indicators import Lag

    cls = _strategy(cross_rule, indicators={"fast": SMA("period"), "fast_prev": Lag("fast", 1), "slow": SMA(9)})
    b = cls.binding()
    assert b.indicators == ("fast_prev", "slow")  # the rule's own arguments, in declaration order
    assert cls.indicator_parameters("fast_prev") == ("period",)
    assert cls(period=3).indicator_specs()["fast_prev"] == Lag(SMA(3), 1)
    assert cls.resolve_indicator("fast_prev", {"period": 4}).valid_from == 4  # SMA(4) from bar 3, one bar later


@pytest.mark.parametrize("indicators,needle", [
    ({"fast": SMA("period"), "fast_prev": "Lag:fsat", "slow": SMA(9)},
     "indicator 'fast_prev' reads 'fsat', which is not a price (open, high, low, close, volume), a derived price "
     "(typical, hl2, ohlc4) or a declared indicator; did you mean 'fast'?"),
    ({"fast_prev": "Lag:slow", "slow": "Lag:fast_prev"}, "indicator 'fast_prev' reads itself through"),
    ({"typical": SMA(3), "fast_prev": SMA(2), "slow": SMA(4)}, "indicator name 'typical' is a derived price"),
])
def test_indicator_references_are_checked_when_loaded(indicators, needle):
    from engine.indicators import Lag

    indicators = {k: Lag(v.split(":")[1], 1) if isinstance(v, str) else v for k, v in indicators.items()}
    with pytest.raises(ConfigError) as exc:
        _strategy(cross_rule, indicators=indicators).binding()
    assert needle in str(exc.value), str(exc.value)


@pytest.mark.parametrize("reserved", ["signal", "name", "indicators", "bounds"])
def test_a_parameter_named_like_a_reserved_attribute_fails_in_one_line(reserved):
    """A typed class attribute is a parameter: one named like Strategy's own attributes would replace
    them (the rule, the name, the indicators), so the strategy is refused, naming the word."""
    cls = type("Clash", (Strategy,), {"__annotations__": {reserved: int, "period": int}, reserved: 3, "period": 5})
    with pytest.raises(ConfigError) as exc:
        cls.param_specs()
    msg = str(exc.value)
    assert f"parameter {reserved!r} is a reserved attribute of Strategy" in msg and "\n" not in msg
