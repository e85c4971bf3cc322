"""Config parsing and grid expansion: strict validation with messages naming the key and value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.grid import build_grid
from engine.config import DEFAULT_CONFIG, load_config, parse_config, parse_config_text
from engine.errors import ConfigError
from engine.strategies import get_strategy

MA = {"ma_crossover": {"short_window": [5], "long_window": [20]}}


def cfg(**sections):
    doc = {"strategies": MA}
    doc.update(sections)
    return doc


def rejects(doc, *fragments):
    with pytest.raises(ConfigError) as exc:
        parse_config(doc)
    msg = str(exc.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


# --- unknown keys ---------------------------------------------------------------------------------


def test_unknown_top_level_section():
    rejects(cfg(reporting={"top_k": 3}), "reporting", "unknown")


def test_unknown_nested_key():
    rejects(cfg(execution={"comission": 0.001}), "execution.comission", "unknown")
    rejects(cfg(risk={"stop_los": 0.01}), "risk.stop_los")
    rejects(cfg(report={"topk": 3}), "report.topk")


def test_unknown_strategy():
    rejects({"strategies": {"macd_magic": {}}}, "macd_magic", "unknown strategy")


def test_unknown_strategy_param():
    rejects({"strategies": {"ma_crossover": {"short_windw": [5]}}}, "strategies.ma_crossover.short_windw",
            "unknown parameter")


def test_unknown_range_key():
    rejects({"strategies": {"ma_crossover": {"short_window": {"start": 2, "stop": 4, "by": 1}}}},
            "strategies.ma_crossover.short_window")


# --- types ------------------------------------------------------------------------------------------


def test_string_where_a_number_belongs():
    rejects(cfg(execution={"commission": "0.001"}), "execution.commission", "'0.001'")
    rejects(cfg(portfolio={"capital": "lots"}), "portfolio.capital", "'lots'")
    rejects(cfg(risk={"stop_loss": ["2%"]}), "risk.stop_loss", "'2%'")
    rejects({"strategies": {"ma_crossover": {"short_window": ["five"]}}}, "strategies.ma_crossover.short_window",
            "'five'")
    rejects({"strategies": {"rsi_reversion": {"oversold": "low"}}}, "strategies.rsi_reversion.oversold", "'low'")


def test_bool_is_not_a_number():
    rejects(cfg(execution={"slippage": True}), "execution.slippage", "True")
    rejects(cfg(report={"top_k": True}), "report.top_k", "True")


def test_integer_param_rejects_fraction():
    rejects({"strategies": {"ma_crossover": {"short_window": [5.5]}}}, "strategies.ma_crossover.short_window",
            "5.5")


# --- ranges of values -----------------------------------------------------------------------------


def test_commission_negative():
    rejects(cfg(execution={"commission": -0.001}), "execution.commission", "-0.001", "out of range")


def test_stop_loss_at_or_above_one():
    rejects(cfg(risk={"stop_loss": 1}), "risk.stop_loss", "1", "out of range")
    rejects(cfg(risk={"stop_loss": [0.01, 1.5]}), "risk.stop_loss", "1.5", "out of range")
    rejects(cfg(risk={"stop_loss": -0.01}), "risk.stop_loss", "-0.01")


def test_top_k_zero():
    rejects(cfg(report={"top_k": 0}), "report.top_k", "0", "out of range")


def test_fill_open():
    rejects(cfg(execution={"fill": "open"}), "execution.fill", "'open'")


def test_rank_by_unknown_metric():
    rejects(cfg(report={"rank_by": "alpha"}), "report.rank_by", "'alpha'")
    rejects(cfg(report={"rank_by": "shrpe"}), "report.rank_by", "(did you mean sharpe?)")
    rejects(cfg(report={"rank_by": "max_drawdwn"}), "(did you mean max_drawdown?)")


def test_strategy_param_out_of_bounds():
    rejects({"strategies": {"rsi_reversion": {"oversold": [-5]}}}, "strategies.rsi_reversion.oversold", "-5")
    rejects({"strategies": {"ma_crossover": {"short_window": [0]}}}, "strategies.ma_crossover.short_window", "0")


def test_empty_value_list_and_duplicates():
    rejects({"strategies": {"ma_crossover": {"short_window": []}}}, "strategies.ma_crossover.short_window")
    rejects({"strategies": {"ma_crossover": {"short_window": [5, 5]}}}, "strategies.ma_crossover.short_window")


# --- structure ------------------------------------------------------------------------------------


def test_empty_strategies():
    rejects({}, "strategies")
    rejects({"strategies": {}}, "strategies")
    rejects({"strategies": None}, "strategies")


def test_invalid_yaml():
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_config_text("strategies: {ma_crossover: [unclosed\n")


def test_load_config_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("strategies:\n  ma_crossover:\n    short_window: [5, 10\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("execution: {commission: 0.002, fill: next_open}\n"
                    "risk: {stop_loss: [null, 0.01]}\n"
                    "strategies:\n  donchian_breakout: {entry_window: [10, 20]}\n")
    c = load_config(good)
    assert c.execution.commission == 0.002 and c.execution.fill == "next_open"
    assert c.stop_loss == (None, 0.01)
    (sw,) = build_grid(c)
    assert len(sw) == 4


def test_defaults():
    c = parse_config({"strategies": {"ma_crossover": None}})
    assert c.execution.fill == "close" and c.execution.capital == 100_000.0
    (sw,) = build_grid(c)
    assert len(sw) == 1 and sw.params(0) == {"short_window": 10, "long_window": 50, "ema_period": 200,
                                             "momentum_spread": 0.001}


# --- grid expansion -----------------------------------------------------------------------------


def test_integer_range_expands_with_stop_included():
    c = parse_config({"strategies": {"ma_crossover": {"short_window": {"start": 5, "stop": 15, "step": 5},
                                                      "long_window": {"start": 30, "stop": 32}}}})
    (sw,) = build_grid(c)
    assert c.strategies[0].as_dict() == {"short_window": [5, 10, 15], "long_window": [30, 31, 32]}
    assert len(sw) == 3 * 3
    assert sw.columns["short_window"].dtype == np.int64


def test_float_range_expands():
    c = parse_config({"strategies": {"ma_crossover": {"momentum_spread": {"start": 0.001, "stop": 0.003,
                                                                          "step": 0.001}}}})
    vals = c.strategies[0].as_dict()["momentum_spread"]
    assert len(vals) == 3
    np.testing.assert_allclose(vals, [0.001, 0.002, 0.003], rtol=1e-12)
    c = parse_config({"strategies": {"rsi_reversion": {"oversold": {"start": 20, "stop": 30, "step": 2.5}}}})
    assert c.strategies[0].as_dict()["oversold"] == [20.0, 22.5, 25.0, 27.5, 30.0]


def test_empty_range_rejected():
    rejects({"strategies": {"ma_crossover": {"short_window": {"start": 10, "stop": 5}}}},
            "strategies.ma_crossover.short_window")
    rejects({"strategies": {"ma_crossover": {"short_window": {"start": 1, "stop": 5, "step": 0}}}},
            "strategies.ma_crossover.short_window.step")


def test_constraint_filters_combinations():
    c = parse_config({"strategies": {"ma_crossover": {"short_window": [5, 10, 20], "long_window": [10, 20]}}})
    (sw,) = build_grid(c)
    # (5,10) (5,20) (10,20) survive; (10,10) (20,10) (20,20) break short < long
    pairs = list(zip(sw.columns["short_window"].tolist(), sw.columns["long_window"].tolist()))
    assert pairs == [(5, 10), (5, 20), (10, 20)]
    assert sw.filtered == 3


def test_rsi_constraint_filters_combinations():
    c = parse_config({"strategies": {"rsi_reversion": {"oversold": [30, 50], "overbought": [40, 70]}}})
    (sw,) = build_grid(c)
    assert list(zip(sw.columns["oversold"].tolist(), sw.columns["overbought"].tolist())) == \
        [(30.0, 40.0), (30.0, 70.0), (50.0, 70.0)]


def test_all_invalid_grid_rejected_when_the_grid_is_built():
    c = parse_config({"strategies": {"ma_crossover": {"short_window": [20, 30], "long_window": [10, 20]}}})
    with pytest.raises(ConfigError, match="ma_crossover.*no valid combination"):
        build_grid(c)


def test_grid_order_and_stop_loss_axis():
    c = parse_config({"strategies": {"ma_crossover": {"short_window": [2, 3], "long_window": [5]},
                                     "donchian_breakout": {"entry_window": [4]}},
                      "risk": {"stop_loss": [None, 0.02]}})
    ma, dc = build_grid(c)
    got = [(ma.params(i)["short_window"], ma.stop_loss(i)) for i in range(len(ma))]
    assert got == [(2, None), (2, 0.02), (3, None), (3, 0.02)]  # last axis (stop_loss) fastest
    assert math.isnan(ma.columns["stop_loss"][0])
    assert ma.swept == ("short_window", "stop_loss")
    # the swept values under short names (short_window -> short, stop_loss -> sl), file-safe
    assert ma.strategy_id(1) == "ma_crossover_short=2_sl=0.02"
    assert ma.strategy_id(0) == "ma_crossover_short=2_sl=none"
    assert [(g, sw.strategy.name, i) for g, sw, i in build_grid(c).combinations()][-2:] == \
        [(4, "donchian_breakout", 0), (5, "donchian_breakout", 1)]


def test_stop_loss_zero_means_none():
    c = parse_config(cfg(risk={"stop_loss": [0, 0.05]}))
    assert c.stop_loss == (None, 0.05)


def test_instance_carries_params():
    c = parse_config({"strategies": {"rsi_reversion": {"rsi_period": [7], "oversold": [25]}}})
    (sw,) = build_grid(c)
    s = sw.instance(0)
    assert (s.rsi_period, s.oversold, s.overbought) == (7, 25.0, 70.0)
    assert isinstance(s.rsi_period, int) and isinstance(s.oversold, float)


def test_digest_ignores_key_order():
    a = parse_config({"strategies": MA, "execution": {"fill": "close", "commission": 0.001}})
    b = parse_config({"execution": {"commission": 0.001, "fill": "close"}, "strategies": MA})
    assert a.digest() == b.digest()


def test_default_config():
    if not DEFAULT_CONFIG.exists():
        pytest.skip(f"{DEFAULT_CONFIG} not written yet")
    c = load_config(DEFAULT_CONFIG)
    sweeps = build_grid(c)
    assert sweeps and all(len(sw) > 0 for sw in sweeps)
    for sw in sweeps:
        assert get_strategy(sw.strategy.name) is sw.strategy
        for i in range(len(sw)):
            inst = sw.strategy(**sw.params(i))  # every combination re-validates
            assert inst.violated_constraint() is None


def test_zero_and_null_stop_are_the_same_value():
    from engine.config import parse_config
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=r"risk.stop_loss: .* repeats a value"):
        parse_config({"risk": {"stop_loss": [0, None]}, "strategies": {"ma_crossover": {}}})
    cfg = parse_config({"risk": {"stop_loss": [None, 0.05]}, "strategies": {"ma_crossover": {}}})
    assert cfg.stop_loss == (None, 0.05)


# --- report section and overrides -----------------------------------------------------------------


def test_report_min_trades_and_png():
    c = parse_config(cfg())
    assert c.report.min_trades == 1 and c.report.png is False
    c = parse_config(cfg(report={"min_trades": 0, "png": True}))
    assert c.report.min_trades == 0 and c.report.png is True
    rejects(cfg(report={"min_trades": -1}), "report.min_trades", "-1", "out of range")
    rejects(cfg(report={"min_trades": 2.5}), "report.min_trades", "expected an integer")
    rejects(cfg(report={"png": "yes"}), "report.png", "expected true or false", "'yes'")


def test_overrides_replace_keys_before_the_check(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {source: synthetic, symbol: BTCUSDT}\nstrategies: {ma_crossover: null}\n")
    c = load_config(p, {"data.symbol": "ETHUSDT", "data.interval": "1h", "data.start": "2024-01-01"})
    assert (c.data.symbol, c.data.interval, c.data.start, c.data.source) == ("ETHUSDT", "1h", "2024-01-01", "synthetic")
    # the config as run, and so its hash, includes them
    assert c.raw["data"] == {"source": "synthetic", "symbol": "ETHUSDT", "interval": "1h", "start": "2024-01-01"}
    assert c.digest() != load_config(p).digest()
    with pytest.raises(ConfigError, match="data.interval: '7x' is not a Binance kline interval"):
        load_config(p, {"data.interval": "7x"})


# --- position rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("section,key,value,needle", [
    ("risk", "take_profit", 0, "risk.take_profit: 0 is out of range; expected > 0"),
    ("risk", "take_profit", -0.1, "risk.take_profit: -0.1 is out of range"),
    ("risk", "take_profit", "5%", "risk.take_profit: expected a number, got '5%'"),
    ("risk", "trailing_stop", 0, "risk.trailing_stop: 0 is out of range; expected > 0 and < 1"),
    ("risk", "trailing_stop", 1, "risk.trailing_stop: 1 is out of range"),
    ("risk", "trailing_stop", [0.01, 1.2], "risk.trailing_stop: 1.2 is out of range"),
    ("risk", "max_bars", 0, "risk.max_bars: 0 is out of range; expected >= 1"),
    ("risk", "max_bars", 3.5, "risk.max_bars: expected an integer, got 3.5"),
    ("risk", "max_bars", True, "risk.max_bars: expected an integer, got True"),
    ("portfolio", "size", 0, "portfolio.size: 0 is out of range; expected > 0 and <= 1"),
    ("portfolio", "size", 1.01, "portfolio.size: 1.01 is out of range"),
    ("portfolio", "size", None, "portfolio.size: expected a number, got None"),
    ("portfolio", "direction", "sideways", "portfolio.direction: 'sideways'; expected one of long, short, both"),
    ("portfolio", "direction", ["long", "long"], "portfolio.direction: duplicate values"),
    ("risk", "take_profit", [0.1, 0.1], "risk.take_profit: duplicate values"),
])
def test_position_rules_reject_bad_values(section, key, value, needle):
    rejects(cfg(**{section: {key: value}}), needle)


def test_position_rules_defaults_and_lists():
    c = parse_config(cfg())
    assert (c.direction, c.size, c.take_profit, c.trailing_stop, c.max_bars) == \
        (("long",), (1.0,), (None,), (None,), (None,))
    c = parse_config(cfg(portfolio={"direction": ["long", "both"], "size": [0.5, 1]},
                         risk={"stop_loss": None, "take_profit": [None, 0.05], "trailing_stop": 0.02,
                               "max_bars": [10, None]}))
    assert c.direction == ("long", "both") and c.size == (0.5, 1.0)
    assert c.take_profit == (None, 0.05) and c.trailing_stop == (0.02,) and c.max_bars == (10, None)
    (sw,) = build_grid(c)
    assert len(sw) == 2 * 2 * 2 * 2
    assert sw.swept == ("direction", "size", "take_profit", "max_bars")
    # order: direction, size, stop_loss, take_profit, trailing_stop, max_bars (last fastest)
    r = [sw.rules(i) for i in range(4)]
    assert [(x.direction, x.size, x.take_profit, x.max_bars) for x in r] == \
        [("long", 0.5, None, 10), ("long", 0.5, None, None), ("long", 0.5, 0.05, 10), ("long", 0.5, 0.05, None)]
    assert sw.rules(15).direction == "both" and sw.rules(15).trailing_stop == 0.02 and sw.rules(15).stop_loss is None
    assert isinstance(sw.rules(0).max_bars, int)
    assert sw.strategy_id(2) == "ma_crossover_dir=long_size=0.5_tp=0.05_bars=10"
    assert sw.strategy_id(1) == "ma_crossover_dir=long_size=0.5_tp=none_bars=none"


# --- no hidden defaults, one table, the effective config -------------------------------------------


def test_a_config_without_risk_has_no_stop():
    c = parse_config(cfg())
    assert (c.stop_loss, c.take_profit, c.trailing_stop, c.max_bars) == ((None,), (None,), (None,), (None,))
    (sw,) = build_grid(c)
    assert sw.rules(0).stop_loss is None and math.isnan(sw.columns["stop_loss"][0])


def test_the_default_config_states_the_seeds_two_percent_stop():
    c = load_config(DEFAULT_CONFIG)
    assert c.raw["risk"] == {"stop_loss": 0.02} and c.stop_loss == (0.02,)
    assert "risk.stop_loss" not in c.defaults


def test_a_minimal_config_equals_the_model_defaults():
    """The key table's defaults and the frozen dataclasses' agree: nothing is defaulted in two places."""
    from engine.config import Config, DataSpec, ReportConfig
    from engine.execution import Execution

    c = parse_config(cfg())
    model = Config(strategies=c.strategies)  # every other field from the dataclasses' own defaults
    assert c == model
    assert (c.data, c.execution, c.report) == (DataSpec(), Execution(), ReportConfig())
    assert c.defaults >= {"risk.stop_loss", "data.source", "report.runs", "portfolio.capital"}


def test_every_key_of_the_table_is_read_and_documented_in_the_readme():
    from pathlib import Path

    from engine.config.schema import KEYS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    config_section = readme[readme.index("### Config"):readme.index("### Results")]
    for key in KEYS:
        if key.type != "strategies":
            assert f"{key.name}:" in config_section, key.path


EFFECTIVE = """\
experiment: {name: eff}
data: {synthetic_bars: 500, path: synthetic}
risk: {stop_loss: [0.02, 0.05], max_bars: 40}
strategies:
  ma_crossover: {short_window: [5, 10], long_window: {start: 20, stop: 40, step: 10}}
validation: {walk_forward: {train: 100, test: 50}}
"""


def test_validate_config_prints_the_effective_config_with_defaults_marked(tmp_path, capsys):
    import yaml

    from backtest_cli import main

    path = tmp_path / "eff.yaml"
    path.write_text(EFFECTIVE)
    assert main(["validate-config", str(path)]) == 0
    out = capsys.readouterr().out
    text = out[out.index("experiment:"):]
    # Read back, the effective config is the same config, with the same grid.
    from dataclasses import replace

    back, original = parse_config(yaml.safe_load(text)), parse_config(yaml.safe_load(EFFECTIVE))
    assert replace(back, strategies=()) == replace(original, strategies=())
    (a,), (b,) = build_grid(back), build_grid(original)
    assert a.columns.keys() == b.columns.keys()
    assert all(np.array_equal(a.columns[k], b.columns[k], equal_nan=a.columns[k].dtype.kind == "f") for k in a.columns)
    # A line is marked "# default" exactly when the file does not give that key (worked out by hand).
    given = {"experiment.name", "data.synthetic_bars", "data.source", "risk.stop_loss", "risk.max_bars",
             "strategies.ma_crossover.short_window", "strategies.ma_crossover.long_window",
             "validation.walk_forward.train", "validation.walk_forward.test"}
    path_of, marked, unmarked = [], set(), set()
    for line in text.splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        key = line.strip().split(":")[0] if not line.strip().startswith("ma_crossover") else "ma_crossover"
        path_of[depth:] = [key]
        if line.rstrip().endswith(":") or "# engine.strategies" in line:
            continue  # a section (or strategy) heading
        (marked if "# default" in line else unmarked).add(".".join(path_of))
    assert unmarked == given
    assert {"risk.take_profit", "report.runs", "strategies.ma_crossover.ema_period", "validation.holdout",
            "validation.walk_forward.step", "limits.max_combinations"} <= marked
    assert "  stop_loss: [0.02, 0.05]" in text and "  take_profit: null" in text and "# default: no take-profit" in text
    assert "    ema_period: 200" in text and "validation:\n" in text and "  cscv: null" in text


def test_validate_config_lines_fit_in_120_columns_and_read_back(tmp_path, capsys):
    """A long swept list continues on the next lines under its key; a long path wraps the first line;
    the effective config still reads back to the same grid."""
    import yaml

    from backtest_cli import main

    folder = tmp_path / "configs_of_a_wide_sweep"
    folder.mkdir()
    path = folder / "wide.yaml"
    shorts = list(range(2, 41))
    path.write_text(f"strategies:\n  ma_crossover: {{short_window: {shorts}, long_window: [50, 60]}}\n"
                    "risk: {stop_loss: [0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.0225, 0.025, 0.0275, "
                    "0.03, 0.0325, 0.035, 0.0375, 0.04, 0.0425, 0.045, 0.0475, 0.05]}\n")
    assert main(["validate-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 120, [x for x in out.splitlines() if len(x) > 120]
    head = out.split("\n\n")[0].splitlines()
    assert len(head) == 2 and head[1].startswith("    ")  # one line, wrapped
    assert " ".join(x.strip() for x in head).startswith(f"{path}: OK, 1482 combination(s); the grid needs about")
    assert "    short_window: [2, 3," in out and "\n      " in out  # continued under its key
    back = yaml.safe_load(out[out.index("experiment:"):])
    assert back["strategies"]["ma_crossover"]["short_window"] == shorts
    assert back["risk"]["stop_loss"][-1] == 0.05 and len(back["risk"]["stop_loss"]) == 19
