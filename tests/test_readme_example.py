"""The README's strategy-authoring example runs, exactly as written, on both engines with identical results."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import yaml

from engine.grid import build_grid
from engine.config import parse_config
from engine.data.source import load_data
from engine.data.spec import DataSpec
from engine.sweep import run_detail, run_sweep

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_strategy_example(tmp_path, monkeypatch):
    text = README.read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "class TrendRSI" in b]
    (config,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "mypkg.strategies:TrendRSI" in b]
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "strategies.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = yaml.safe_load(config)
    doc["data"] = {"synthetic_bars": 3000, "seed": 5}
    cfg = parse_config(doc)
    (sw,) = build_grid(cfg)
    assert len(sw) == 3 * 2 * 2  # rsi_period x oversold x take_profit
    assert sw.rules(0).direction == "both" and sw.rules(0).max_bars == 96
    candles = load_data(DataSpec.from_config(cfg))
    fast = run_sweep(cfg, candles, engine="fast", workers=1)
    ref = run_sweep(cfg, candles, engine="reference", workers=1)
    assert not fast.notices
    assert len(fast.summary) == 12
    assert fast.summary["n_trades"].sum() > 0
    pd.testing.assert_frame_equal(fast.summary, ref.summary, rtol=1e-9, atol=0)
    sys.modules.pop("mypkg.strategies", None)
    sys.modules.pop("mypkg", None)


def test_readme_user_indicator_and_lag_crossover(tmp_path, monkeypatch):
    """The README's user indicator (a z-score) and Lag crossover, exactly as written: both engines
    agree, and every entry is on a bar where the fast average crossed above the slow one, checked
    here with pandas."""
    text = README.read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "class ZCross" in b]
    (config,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "mypkg.zcross:ZCross" in b]
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "zcross.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = yaml.safe_load(config)
    doc["data"] = {"synthetic_bars": 4000, "seed": 5}
    cfg = parse_config(doc)
    (sw,) = build_grid(cfg)
    assert len(sw) == 3 * 2 * 2  # fast_n x slow_n x z_max
    candles = load_data(DataSpec.from_config(cfg))
    fast = run_sweep(cfg, candles, engine="fast", workers=1)
    ref = run_sweep(cfg, candles, engine="reference", workers=1)
    assert fast.summary["n_trades"].sum() > 0
    pd.testing.assert_frame_equal(fast.summary, ref.summary, rtol=1e-9, atol=0)

    # independently: the EMA of the typical price and the SMA of the close, with pandas
    frame = candles.to_frame()
    typical = (frame["high"] + frame["low"] + frame["close"]) / 3
    i = int(fast.summary["n_trades"].idxmax())
    params = sw.params(i)
    f = typical.ewm(span=params["fast_n"], adjust=False).mean().to_numpy()
    s = frame["close"].rolling(params["slow_n"]).mean().to_numpy()
    tol = 1e-9 * float(frame["close"].max())
    trades = run_detail(cfg, sw, i, candles).trades
    assert trades
    for tr in trades:
        t = tr.entry_bar  # fill: close, so the decision bar
        assert f[t] - s[t] > -tol and f[t - 1] - s[t - 1] <= tol, t
    sys.modules.pop("mypkg.zcross", None)
    sys.modules.pop("mypkg", None)
