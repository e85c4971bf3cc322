"""Universe sweeps (docs/semantics.md, "Universe sweeps"): the worked example by hand, a real universe
run's files recomputed independently from summary_by_series.csv, each row against a single-series
run, and the reference engine against the fast one."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from fakes.cli import run_cli
from fakes.universe import SMALL_UNIVERSE

from engine.config import parse_config
from engine.data.source import load_data
from engine.grid import build_grid
from engine.pipeline import RunInputs, run_stages, stages
from engine.universe.aggregate import by_series_frame, universe_summary
from engine.universe.cross_pbo import cross_series_pbo
from engine.universe.runner import load_universe, run_universe

NAN = float("nan")
# the worked example: series s0..s3, combinations c0..c2
M = [[1.0, 0.5, 2.0], [2.0, 0.5, -2.0], [-1.0, 0.5, 1.0], [0.5, NAN, 3.0]]
TR = [[0.1, 0.01, 0.3], [0.2, -0.02, -0.2], [-0.1, 0.03, 0.1], [0.05, 0.0, 0.4]]

UNIVERSE = SMALL_UNIVERSE


def _example_frames():
    summaries, keys = [], []
    for s in range(4):
        keys.append((f"S{s}USDT", "15m"))
        summaries.append(pd.DataFrame({"combination": [0, 1, 2], "strategy_id": ["c0", "c1", "c2"],
                                       "sharpe": M[s], "total_return": TR[s], "n_trades": [1, 2, 3]}))
    grid = pd.DataFrame({"combination": [0, 1, 2], "strategy_id": ["c0", "c1", "c2"], "strategy": "x"})
    return by_series_frame(keys, summaries), grid


def test_worked_example_aggregates_and_ranking():
    by_series, grid = _example_frames()
    ranked = universe_summary(by_series, grid, 4, "sharpe", "median")
    assert ranked["strategy_id"].tolist() == ["c2", "c0", "c1"]
    row = ranked.set_index("strategy_id")
    expected = {"c0": (0.75, 0.625, -1.0, 2.0, 1.25, 4, 0.75, 2.0, 4),
                "c1": (0.5, 0.5, 0.5, 0.5, 0.0, 3, 0.5, 7 / 3, 8),
                "c2": (1.5, 1.0, -2.0, 3.0, math.sqrt(14 / 3), 4, 0.75, 1.5, 12)}
    cols = ["sharpe_median", "sharpe_mean", "sharpe_min", "sharpe_max", "sharpe_std", "series", "profitable_share",
            "rank_mean", "n_trades"]
    for c, values in expected.items():
        assert row.loc[c, cols].to_numpy(np.float64) == pytest.approx(values, abs=1e-12)
    assert universe_summary(by_series, grid, 4, "sharpe", "mean")["strategy_id"].tolist() == ["c2", "c0", "c1"]
    assert universe_summary(by_series, grid, 4, "sharpe", "min")["strategy_id"].tolist() == ["c1", "c0", "c2"]


def test_worked_example_cross_sectional_pbo():
    c = cross_series_pbo(np.array(M), "sharpe")
    assert c.splits == ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    assert c.best.tolist() == [0, 2, 2, 0, 0, 2]
    assert c.oos_rank.tolist() == [1, 1.5, 1, 2, 1, 1]
    third = math.log(1 / 3)
    assert c.logits == pytest.approx([third, math.log(0.6), third, 0.0, third, third], abs=1e-12)
    assert c.pbo == 1.0


def _independent_aggregates(df: pd.DataFrame, metric: str, lower_better: bool) -> dict:
    """Plain Python over the CSV's rows: {combination: (median, mean, min, max, std, series, share, rank_mean, trades)}."""
    series = sorted({(r.symbol, r.interval) for r in df.itertuples()})
    value = {(r.symbol, r.interval, r.combination): getattr(r, metric) for r in df.itertuples()}
    combos = sorted(df["combination"].unique())
    ranks: dict = {}
    for s in series:
        defined = [(value[(*s, g)], g) for g in combos if not math.isnan(value[(*s, g)])]
        for v, g in defined:
            better = sum(1 for w, _ in defined if (w < v if lower_better else w > v))
            same = sum(1 for w, _ in defined if w == v)
            ranks[(s, g)] = better + (same + 1) / 2
    out = {}
    for g in combos:
        vals = [value[(*s, g)] for s in series if not math.isnan(value[(*s, g)])]
        rows = df[df["combination"] == g]
        out[g] = (statistics.median(vals), statistics.fmean(vals), min(vals), max(vals),
                  statistics.stdev(vals) if len(vals) > 1 else NAN, len(vals),
                  sum(1 for x in rows["total_return"] if x > 0) / len(series),
                  statistics.fmean(ranks[(s, g)] for s in series if (s, g) in ranks), int(rows["n_trades"].sum()))
    return out


def _independent_cross_pbo(df: pd.DataFrame, metric: str) -> tuple[float, list[float]]:
    series = sorted({(r.symbol, r.interval) for r in df.itertuples()}, key=lambda s: (s[0], s[1]))
    combos = sorted(df["combination"].unique())
    value = {(r.symbol, r.interval, r.combination): getattr(r, metric) for r in df.itertuples()}

    def score(sub, g):
        vals = [value[(*s, g)] for s in sub if not math.isnan(value[(*s, g)])]
        return sum(vals) / len(vals) if vals else -math.inf

    lambdas = []
    for inside in itertools.combinations(series, len(series) // 2):
        outside = [s for s in series if s not in inside]
        ins = [score(inside, g) for g in combos]
        best = ins.index(max(ins))
        oos = [score(outside, g) for g in combos]
        r = sum(1 for x in oos if x < oos[best]) + (sum(1 for x in oos if x == oos[best]) + 1) / 2
        w = r / (len(combos) + 1)
        lambdas.append(math.log(w / (1 - w)))
    return sum(1 for x in lambdas if x <= 0) / len(lambdas), lambdas


@pytest.fixture(scope="module")
def universe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("universe")
    cfg = root / "u.yaml"
    cfg.write_text(UNIVERSE)
    from backtest_cli import main

    assert main(["run", "--config", str(cfg), "--out", str(root / "out"), "--no-progress", "--run-id", "u"]) == 0
    return root / "out" / "u", parse_config(__import__("yaml").safe_load(UNIVERSE))


def test_universe_files_recomputed_from_summary_by_series(universe_run):
    folder, _ = universe_run
    by_series = pd.read_csv(folder / "summary_by_series.csv")
    assert list(by_series.columns[:4]) == ["combination", "strategy_id", "symbol", "interval"]
    assert {"oos_sharpe", "oos_total_return"} <= set(by_series.columns)
    assert sorted(set(by_series["symbol"])) == ["BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert len(by_series) == 4 * 4
    summary = pd.read_csv(folder / "summary.csv")
    expected = _independent_aggregates(by_series, "sharpe", lower_better=False)
    cols = ["sharpe_median", "sharpe_mean", "sharpe_min", "sharpe_max", "sharpe_std", "series", "profitable_share",
            "rank_mean", "n_trades"]
    for row in summary.itertuples():
        got = [getattr(row, c) for c in cols]
        assert got == pytest.approx(list(expected[row.combination]), rel=1e-12, abs=1e-12, nan_ok=True)
    order = sorted(expected, key=lambda g: (-expected[g][0], g))
    assert summary["combination"].tolist() == order
    assert summary["rank"].tolist() == [1, 2, 3, 4]

    doc = json.loads((folder / "validation.json").read_text())
    pbo, lambdas = _independent_cross_pbo(by_series, "sharpe")
    assert doc["cross_series"]["pbo"] == pytest.approx(pbo, abs=1e-15)
    assert [s["lambda"] for s in doc["cross_series"]["splits"]] == pytest.approx(lambdas, abs=1e-12)
    assert doc["cross_series"]["splits"][0]["in_sample"] == ["BNBUSDT/15m", "BTCUSDT/15m"]
    assert sorted(doc["series"]) == ["BNBUSDT/15m", "BTCUSDT/15m", "ETHUSDT/15m", "SOLUSDT/15m"]
    pbos = [doc["series"][k]["pbo"]["pbo"] for k in sorted(doc["series"])]
    assert doc["summary"]["median_pbo"] == pytest.approx(statistics.median(pbos), abs=1e-15)
    assert doc["verdict"] and "cross-sectional PBO" in doc["verdict"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["universe"]["series"] == sorted(doc["series"])
    assert manifest["best"]["strategy_id"] == summary["strategy_id"][0]


def test_universe_rows_equal_single_series_runs(universe_run):
    """Each series' rows equal a single-series run of the config narrowed to it (data.symbol, seed)."""
    folder, cfg = universe_run
    by_series = pd.read_csv(folder / "summary_by_series.csv")
    doc = __import__("yaml").safe_load(UNIVERSE)
    for i, symbol in enumerate(["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]):
        single = dict(doc, data={"source": "synthetic", "symbol": symbol, "seed": 42 + i, "synthetic_bars": 1500},
                      validation={"holdout": 0.3, "cscv": {"blocks": 4}})
        one = parse_config(single)
        candles = load_data(one.data)
        state = run_stages(RunInputs(one, build_grid(one), candles, "fast", 1), stages("sweep", "validate"))
        rows = by_series[by_series["symbol"] == symbol].reset_index(drop=True)
        for c in rows.columns[4:]:
            assert rows[c].to_numpy(np.float64) == pytest.approx(state.summary[c].to_numpy(np.float64), rel=1e-12,
                                                                 abs=1e-12, nan_ok=True), (symbol, c)


def test_reference_engine_agrees_on_a_small_universe():
    doc = __import__("yaml").safe_load(UNIVERSE)
    doc["data"] = {"source": "synthetic", "symbols": ["BTCUSDT", "ETHUSDT"], "intervals": ["15m", "1h"],
                   "synthetic_bars": 400}
    doc["validation"] = None
    cfg = parse_config(doc)
    series, candles = load_universe(cfg, cfg.data)
    assert [s.key for s in series] == ["BTCUSDT/15m", "BTCUSDT/1h", "ETHUSDT/15m", "ETHUSDT/1h"]
    grid = build_grid(cfg)
    fast = run_universe(cfg, grid, series, candles, engine="fast", workers=1)
    ref = run_universe(cfg, grid, series, candles, engine="reference", workers=1)
    assert fast.by_series["n_trades"].sum() > 0
    pd.testing.assert_frame_equal(fast.by_series, ref.by_series, rtol=1e-9, atol=0)
    pd.testing.assert_frame_equal(fast.ranked, ref.ranked, rtol=1e-9, atol=0)
    for key in fast.details:
        assert fast.details[key].equity == pytest.approx(ref.details[key].equity, rel=1e-9)


BAD = [
    (["--symbols", "BTCUSDT,BTCUSDT"], "listed twice"),
    (["--symbols", "BTCUSDT,"], "none empty"),
    (["--intervals", "15m,7m"], "7m"),
    (["--symbols", "BTCUSDT", "--start", "2030-01-01"], "BTCUSDT/15m"),
]


@pytest.mark.parametrize("extra, needle", BAD)
def test_bad_universe_arguments(tmp_path, capsys, extra, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(UNIVERSE.replace("cross_series: true", "cross_series: false"))
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out", *extra], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


BAD_CONFIGS = [
    ("symbols: []", "empty"),
    ("symbols: [BTCUSDT, btcusdt]", "listed twice"),
    ("symbols: [BTCUSDT, ETHUSDT], intervals: [15m, 3x]", "3x"),
    ("symbols: [BTCUSDT, ETHUSDT], symbol: BTCUSDT", "not both"),
    ("symbols: all", "synthetic"),
]


@pytest.mark.parametrize("data, needle", BAD_CONFIGS)
def test_bad_universe_configs(tmp_path, capsys, data, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{source: synthetic, {data}}}\nstrategies: {{ma_crossover: {{}}}}\n")
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out"], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_cross_series_needs_four_and_aggregate_choices(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {source: synthetic, symbols: [BTCUSDT, ETHUSDT, SOLUSDT]}\nstrategies: {ma_crossover: {}}\n"
                   "validation: {cross_series: true}\n")
    code, _, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "has 3 series" in err and len(err.strip().splitlines()) == 1, err
    cfg.write_text("data: {source: synthetic, symbols: [BTCUSDT]}\nstrategies: {ma_crossover: {}}\n"
                   "report: {aggregate: max}\n")
    code, _, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "report.aggregate" in err and len(err.strip().splitlines()) == 1, err


def test_runs_and_compare_understand_a_universe_run(universe_run):
    from engine.report.compare import compare_runs
    from engine.report.index import list_runs

    folder, _ = universe_run
    (info,) = list_runs(folder.parent)
    assert info.symbol == "BNBUSDT,BTCUSDT,ETHUSDT,SOLUSDT" and info.interval == "15m"
    assert info.best["metric"] == "sharpe_median" and info.rows == 4 * 1500
    c = compare_runs(folder, folder)
    assert c.config == [] and c.data == []
    sharpe = next(m for m in c.moves if m.metric == "sharpe")
    by_series = pd.read_csv(folder / "summary_by_series.csv")
    assert sharpe.a.count == by_series["sharpe"].notna().sum() == 16
    assert sharpe.a.median == pytest.approx(float(np.median(by_series["sharpe"].dropna())), rel=1e-12)
