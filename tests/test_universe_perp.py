"""Universe sweeps under ``data.market: um``: each series is a perp run of its own (its funding, the
swept leverage, liquidation on its mark klines), so a series' rows equal the single-series perp run of
the config narrowed to it; the universe summary sums total_funding and n_liquidations over the series;
a bad series (a funding gap, a symbol without brackets, a dataset without perp series) is one line and
exit 2 before any work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from fakes.candles import synthetic_klines
from fakes.cli import run_cli

from engine.config import parse_config
from engine.data.dataset import upsert_candles
from engine.data.funding_table import upsert_funding
from engine.data.source import load_data
from engine.grid import build_grid
from engine.pipeline import RunInputs, run_stages, stages
from engine.universe.runner import load_universe, run_universe

UNIVERSE = """
experiment: {name: universe_perp_test}
data: {source: synthetic, market: um, symbols: [BTCUSDT, ETHUSDT], intervals: [15m], synthetic_bars: 3000, seed: 42}
execution: {commission: 0.0005, slippage: 0.0002, fill: next_open}
portfolio: {capital: 10000, direction: both, size: 0.5, leverage: [3, 50]}
risk: {stop_loss: 0.05}
strategies:
  ma_crossover: {short_window: [10, 20], long_window: 50, ema_period: 200, momentum_spread: 0.001}
report: {rank_by: sharpe, aggregate: median, top_k: 1}
"""


def test_perp_universe_rows_equal_single_series_perp_runs():
    doc = yaml.safe_load(UNIVERSE)
    cfg = parse_config(doc)
    series, candles = load_universe(cfg, cfg.data)
    assert [s.key for s in series] == ["BTCUSDT/15m", "ETHUSDT/15m"]
    assert all(c.perp is not None for c in candles)
    res = run_universe(cfg, build_grid(cfg), series, candles, engine="fast", workers=1)
    by_series = res.by_series
    metrics = [c for c in by_series.columns[4:]]
    assert {"total_funding", "n_liquidations"} <= set(metrics)
    for i, symbol in enumerate(["BTCUSDT", "ETHUSDT"]):
        one = parse_config(dict(doc, data={"source": "synthetic", "market": "um", "symbol": symbol, "seed": 42 + i,
                                           "synthetic_bars": 3000}))
        state = run_stages(RunInputs(one, build_grid(one), load_data(one.data), "fast", 1),
                           stages("sweep", "validate"))
        rows = by_series[by_series["symbol"] == symbol].reset_index(drop=True)
        for c in metrics:
            assert rows[c].to_numpy(np.float64) == pytest.approx(state.summary[c].to_numpy(np.float64), rel=1e-12,
                                                                 abs=1e-12, nan_ok=True), (symbol, c)
    # Not vacuous: funding moved money on every series, and 50x was liquidated by the mark wicks.
    assert (by_series["total_funding"] != 0).all()
    assert by_series["n_liquidations"].sum() > 0
    assert (by_series.loc[by_series["n_liquidations"] > 0, "strategy_id"].str.contains("lev=50")).all()
    # The universe summary sums them over the series, like n_trades (an independent groupby).
    sums = by_series.groupby("combination")[["total_funding", "n_liquidations", "n_trades"]].sum()
    got = res.ranked.set_index("combination").loc[sums.index]
    assert got["total_funding"].to_numpy() == pytest.approx(sums["total_funding"].to_numpy(), rel=1e-12)
    assert got["n_liquidations"].tolist() == sums["n_liquidations"].tolist()
    assert got["n_trades"].tolist() == sums["n_trades"].tolist()


def test_perp_universe_cli_writes_the_perp_sums(tmp_path, capsys):
    cfg = tmp_path / "u.yaml"
    cfg.write_text(UNIVERSE.replace("synthetic_bars: 3000", "synthetic_bars: 1500"))
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out", "--no-progress", "--run-id", "u"],
                             capsys)
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.lstrip().startswith("rank"))
    assert header.split()[-3:] == ["funding", "liqs", "combination"]
    summary = pd.read_csv(tmp_path / "out" / "u" / "summary.csv")
    by_series = pd.read_csv(tmp_path / "out" / "u" / "summary_by_series.csv")
    sums = by_series.groupby("combination")["n_liquidations"].sum()
    assert summary.set_index("combination")["n_liquidations"].sort_index().tolist() == sums.sort_index().tolist()
    assert "n_liquidations" in (tmp_path / "out" / "u" / "report.html").read_text()


T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR = 3_600_000


def _perp_dataset(root, gap_for: str | None = None) -> None:
    """Two perp series (600 15m bars, 150 h) with mark klines and 8h funding; ``gap_for`` loses 40 h of events."""
    for i, symbol in enumerate(["BTCUSDT", "ETHUSDT"]):
        k = synthetic_klines(T0, 600, seed=11 + i)
        upsert_candles(str(root / "um" / "candles"), symbol, "15m", k)
        upsert_candles(str(root / "um" / "mark"), symbol, "15m", k)
        t = T0 + np.arange(19, dtype=np.int64) * 8 * HOUR
        if symbol == gap_for:
            t = t[(t < T0 + 40 * HOUR) | (t > T0 + 80 * HOUR)]
        upsert_funding(str(root / "um" / "funding"), symbol, pd.DataFrame(
            {"funding_time": t, "funding_rate": 0.0001, "mark_price": None, "interval_hours": 8}))


def _refused(code: int, err: str, needle: str, out) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and needle in err, err
    assert not out.exists() or not any(out.iterdir())


def test_perp_universe_bad_series_is_one_line_before_any_work(tmp_path, capsys):
    ds = tmp_path / "ds"
    _perp_dataset(ds, gap_for="ETHUSDT")
    cfg = tmp_path / "u.yaml"
    cfg.write_text(UNIVERSE.replace("source: synthetic", f"source: {ds}").replace(", synthetic_bars: 3000, seed: 42",
                                                                               ""))
    out = tmp_path / "out"
    code, _, err = run_cli(["run", "--config", cfg, "--out", out, "--no-progress"], capsys)
    # events at T0 + 0, 8, …, 32 h, then none until 88 h (40..80 h dropped): 56 h > 2 × 8 h
    _refused(code, err, "ETHUSDT/15m: the funding table does not cover the run: no event from "
                        "2024-01-02 08:00:00 to 2024-01-04 16:00:00", out)
    # perp.funding: false skips funding deliberately: the same universe runs
    cfg.write_text(cfg.read_text() + "perp: {funding: false}\n")
    code, _, err = run_cli(["run", "--config", cfg, "--out", out, "--no-progress", "--run-id", "ok"], capsys)
    assert code == 0, err
    assert (pd.read_csv(out / "ok" / "summary_by_series.csv")["total_funding"] == 0).all()

    # a symbol of the universe without committed brackets: refused from the config alone
    cfg.write_text(UNIVERSE.replace("[BTCUSDT, ETHUSDT]", "[BTCUSDT, DOGEUSDT]"))
    code, _, err = run_cli(["validate-config", cfg], capsys)
    _refused(code, err, "perp.brackets", tmp_path / "none")

    # a spot-only dataset under market: um
    spot = tmp_path / "spot"
    for symbol in ("BTCUSDT", "ETHUSDT"):
        upsert_candles(str(spot), symbol, "15m", synthetic_klines(T0, 100))
    cfg.write_text(UNIVERSE.replace("source: synthetic", f"source: {spot}").replace(
        ", synthetic_bars: 3000, seed: 42", ""))
    out2 = tmp_path / "out2"
    code, _, err = run_cli(["run", "--config", cfg, "--out", out2, "--no-progress"], capsys)
    _refused(code, err, "holds no perp series", out2)
