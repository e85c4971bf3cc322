"""The README's strategy-authoring example runs, unchanged, on both engines with identical results."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from engine.config import parse_config
from engine.datasource import DataSpec, load_data
from engine.sweep import run_sweep

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_strategy_example(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (code,) = [b for b in blocks if "class TrendRSI" in b]
    pkg = tmp_path / "readme_example_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "strategies.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = parse_config({
        "data": {"synthetic_bars": 3000, "seed": 5},
        "strategies": {"readme_example_pkg.strategies:TrendRSI": {"rsi_period": [7, 14], "low": [25, 35],
                                                                  "ema_period": 50}},
    })
    candles = load_data(DataSpec.from_config(cfg))
    fast = run_sweep(cfg, candles, engine="fast", workers=1)
    ref = run_sweep(cfg, candles, engine="reference", workers=1)
    assert not fast.notices  # it ran on the compiled path
    assert len(fast.summary) == 4
    assert fast.summary["n_trades"].sum() > 0
    pd.testing.assert_frame_equal(fast.summary, ref.summary, rtol=1e-9, atol=0)
    sys.modules.pop("readme_example_pkg.strategies", None)
