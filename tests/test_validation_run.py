"""`backtest run` with a validation section, end to end, checked against independent computations.

The fast path streams per-block sums and moments; here every figure is recomputed
from the reference engine's materialised equity curves (returns matrix, scipy,
brute-force CSCV and walk-forward written in this file), never from the code under test.
"""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss

from backtest_cli import main
from engine.grid import build_grid
from engine.config import parse_config_text
from engine.reference import BacktestingEngine
from engine.data.synthetic import generate_candles
from fakes.reports import stable_tree

BARS = 6_000
CONFIG = """
experiment: {name: validated}
data: {source: synthetic, synthetic_bars: 6000, seed: 8}
execution: {commission: 0.001, slippage: 0.0005, fill: close}
risk: {stop_loss: [0.02, null]}
strategies:
  ma_crossover: {short_window: [5, 20], long_window: [40, 100], ema_period: 50, momentum_spread: 0.0}
report: {top_k: 3, rank_by: sharpe}
validation:
  holdout: 0.25
  walk_forward: {train: 1500, test: 500}
  cscv: {blocks: 6}
  trials: 40
"""
P_15M = 35_040


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("validated")
    cfg_path = root / "cfg.yaml"
    cfg_path.write_text(CONFIG)
    out = root / "results"
    assert main(["run", "--config", str(cfg_path), "--out", str(out), "--run-id", "a", "--no-progress"]) == 0
    return {"dir": out / "a", "cfg": parse_config_text(CONFIG), "candles": generate_candles(BARS, seed=8),
            "root": root, "cfg_path": cfg_path}


def reference(run, g: int, window: tuple[int, int], test: bool):
    cfg, candles = run["cfg"], run["candles"]
    sw, i = build_grid(cfg).locate(g)
    return BacktestingEngine(candles, sw.instance(i), cfg.execution, sw.rules(i)).run(window, test)


def returns(equity: np.ndarray) -> np.ndarray:
    return equity[1:] / equity[:-1] - 1.0


def test_files_and_columns(run):
    d = run["dir"]
    for name in ("validation.json", "walk_forward.csv", "summary.csv", "report.html", "manifest.json"):
        assert (d / name).is_file(), name
    summary = pd.read_csv(d / "summary.csv")
    assert list(summary.columns[-7:]) == ["oos_sharpe", "oos_total_return", "oos_max_drawdown", "oos_n_trades",
                                          "psr", "dsr", "duplicate_of"]
    assert len(summary) == 8
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["validation"]["summary"].startswith(manifest["validation"]["level"] + ": ")


def test_in_sample_and_holdout_columns_equal_the_reference_engine(run):
    summary = pd.read_csv(run["dir"] / "summary.csv").set_index("combination")
    cut = math.floor(BARS * 0.75)
    for g in range(8):
        ins = reference(run, g, (0, cut), False)
        oos = reference(run, g, (cut, BARS), True)
        assert summary.loc[g, "sharpe"] == pytest.approx(ins.metrics["sharpe"], rel=1e-9)
        assert summary.loc[g, "total_return"] == pytest.approx(ins.metrics["total_return"], rel=1e-9, abs=1e-12)
        assert summary.loc[g, "oos_sharpe"] == pytest.approx(oos.metrics["sharpe"], rel=1e-9)
        assert summary.loc[g, "oos_total_return"] == pytest.approx(oos.metrics["total_return"], rel=1e-9, abs=1e-12)
        assert summary.loc[g, "oos_max_drawdown"] == pytest.approx(oos.metrics["max_drawdown"], rel=1e-9, abs=1e-12)
        assert summary.loc[g, "oos_n_trades"] == oos.metrics["n_trades"]
        assert all(t.exit_reason != "open" for t in oos.trades)


def _psr(r: np.ndarray, sr_star: float) -> float:
    sr = np.mean(r) / np.std(r, ddof=1)
    g3, g4 = ss.skew(r), ss.kurtosis(r, fisher=False)
    return float(ss.norm.cdf((sr - sr_star) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2)))


def test_psr_dsr_and_pbo_equal_a_materialised_recomputation(run):
    d = run["dir"]
    summary = pd.read_csv(d / "summary.csv").set_index("combination").sort_index()
    doc = json.loads((d / "validation.json").read_text())
    cut = math.floor(BARS * 0.75)
    R = np.array([returns(reference(run, g, (0, cut), False).equity) for g in range(8)])  # (8, T) in sample
    # identical return series (the reference engine's) are one trial: the lowest index stands for them
    first = [next(h for h in range(8) if np.array_equal(R[h], R[g])) for g in range(8)]
    summary_order = summary["duplicate_of"].tolist()
    assert summary_order == first and len(set(first)) < 8  # the stop never fires on some: duplicates exist
    assert doc["trials"]["distinct"] == len(set(first)) and doc["trials"]["combinations"] == 8
    srs = R.mean(axis=1) / R.std(axis=1, ddof=1)
    V = np.var(srs[sorted(set(first))], ddof=1)
    N = 40  # validation.trials
    sr0 = math.sqrt(V) * ((1 - np.euler_gamma) * ss.norm.ppf(1 - 1 / N) + np.euler_gamma * ss.norm.ppf(1 - 1 / (N * math.e)))
    assert doc["deflated_sharpe"]["SR0"] == pytest.approx(sr0, rel=1e-9)
    assert doc["inputs"]["deflated_sharpe"]["V"] == pytest.approx(V, rel=1e-9)
    assert (doc["inputs"]["deflated_sharpe"]["N"], doc["inputs"]["deflated_sharpe"]["T"]) == (40, cut)
    for g in range(8):
        assert summary.loc[g, "psr"] == pytest.approx(_psr(R[g], 0.0), rel=1e-9, abs=1e-12)
        assert summary.loc[g, "dsr"] == pytest.approx(_psr(R[g], sr0), rel=1e-9, abs=1e-12)
    # CSCV by brute force on the returns matrix: 6 blocks, 20 splits
    blocks = np.array_split(np.arange(cut), 6)

    def sharpe(x):
        sd = np.std(x, ddof=1)
        return 0.0 if sd == 0 else np.mean(x) / sd

    lams = []
    for J in itertools.combinations(range(6), 3):
        i_in = np.concatenate([blocks[b] for b in J])
        i_out = np.concatenate([blocks[b] for b in range(6) if b not in J])
        best = int(np.argmax([sharpe(R[c, i_in]) for c in range(8)]))
        rank = ss.rankdata([sharpe(R[c, i_out]) for c in range(8)])[best]
        lams.append(math.log(rank / 9 / (1 - rank / 9)))
    np.testing.assert_allclose(doc["pbo"]["logits"], lams, rtol=1e-9, atol=1e-12)
    assert doc["pbo"]["pbo"] == pytest.approx(np.mean(np.array(lams) <= 0))


def test_walk_forward_by_brute_force(run):
    d = run["dir"]
    folds = pd.read_csv(d / "walk_forward.csv")
    doc = json.loads((d / "validation.json").read_text())
    # train 1500, test 500, step 500 over 6000 bars: tests [1500, 2000) ... [5500, 6000): 9 folds
    assert len(folds) == 9 and doc["walk_forward"]["folds"] == 9
    stitched = 1.0
    is_cagr = []
    for k in range(9):
        train, test = (500 * k, 500 * k + 1500), (500 * k + 1500, 500 * k + 2000)
        sharpes = [reference(run, g, train, False).metrics["sharpe"] for g in range(8)]
        values = [-math.inf if s is None else s for s in sharpes]
        best = int(np.argmax(values))  # first maximum: ties to the lowest combination
        assert folds.loc[k, "combination"] == best, f"fold {k}"
        chosen = reference(run, best, test, True)
        assert folds.loc[k, "oos_total_return"] == pytest.approx(chosen.metrics["total_return"], rel=1e-9, abs=1e-12)
        assert folds.loc[k, "is_sharpe"] == pytest.approx(sharpes[best], rel=1e-9)
        stitched *= 1 + chosen.metrics["total_return"]
        is_cagr.append(reference(run, best, train, False).metrics["cagr"])
    wf = doc["walk_forward"]
    assert wf["stitched"]["total_return"] == pytest.approx(stitched - 1, rel=1e-9)
    cagr = stitched ** (P_15M / 4500) - 1
    assert wf["stitched"]["cagr"] == pytest.approx(cagr, rel=1e-9)
    if np.mean(is_cagr) > 0:
        assert wf["efficiency"] == pytest.approx(cagr / np.mean(is_cagr), rel=1e-9)
    else:  # a ratio over an in-sample loss is no efficiency
        assert wf["efficiency"] is None and wf["efficiency_text"] == "n/a (in-sample CAGR ≤ 0)"


def test_report_html_has_the_validation_section(run):
    from test_report_html import page_data

    v = page_data(run["dir"] / "report.html")["validation"]
    assert v["title"] == "Validation" and v["summary"].startswith(v["level"] + ": ")
    assert v["level"] in ("fails", "weak", "promising")
    assert {c["title"].split(":")[0] for c in v["charts"]} >= {"Walk-forward"}
    # λ histogram, the CSCV splits' IS vs OOS, every combination's in-sample vs holdout Sharpe, walk-forward
    assert len(v["charts"]) == 4 and v["tables"][0]["title"] == "Walk-forward folds"
    holdout = v["charts"][2]["data"][0]
    summary = pd.read_csv(run["dir"] / "summary.csv")[["sharpe", "oos_sharpe"]].dropna()
    assert len(holdout["x"]) == len(summary)
    assert len(v["tables"][0]["rows"]) == 9


def test_printed_block_and_reproducibility(run, capsys):
    out = run["root"] / "results"
    capsys.readouterr()
    assert main(["run", "--config", str(run["cfg_path"]), "--out", str(out), "--run-id", "b", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Validation (in-sample bars 0–4,499, holdout 4,500–5,999; 8 combinations, 4 distinct return series" \
        in printed
    assert "PBO " in printed and "walk-forward (9 folds)" in printed and "verdict: fails: " in printed
    a, b = stable_tree(out / "a"), stable_tree(out / "b")
    assert a.keys() == b.keys() and {k for k in a if a[k] != b[k]} == set()


def test_reference_engine_gives_the_same_figures(run):
    out = run["root"] / "results"
    assert main(["run", "--config", str(run["cfg_path"]), "--out", str(out), "--run-id", "ref", "--engine",
                 "reference", "--no-progress", "--workers", "1"]) == 0
    fast = json.loads((out / "a" / "validation.json").read_text())
    ref = json.loads((out / "ref" / "validation.json").read_text())
    assert ref["pbo"]["pbo"] == fast["pbo"]["pbo"] and ref["verdict"] == fast["verdict"]
    np.testing.assert_allclose(ref["pbo"]["logits"], fast["pbo"]["logits"], rtol=1e-9)
    assert ref["deflated_sharpe"]["SR0"] == pytest.approx(fast["deflated_sharpe"]["SR0"], rel=1e-9)
    assert pd.read_csv(out / "ref" / "walk_forward.csv")["combination"].tolist() == \
        pd.read_csv(out / "a" / "walk_forward.csv")["combination"].tolist()


def test_without_validation_nothing_changes(tmp_path):
    """No validation section: no validation file, no validation column (duplicate_of stays: it needs none)."""
    plain = CONFIG.split("validation:")[0]
    cfg_path = tmp_path / "plain.yaml"
    cfg_path.write_text(plain)
    assert main(["run", "--config", str(cfg_path), "--out", str(tmp_path / "r"), "--run-id", "p",
                 "--no-progress"]) == 0
    d = tmp_path / "r" / "p"
    assert not (d / "validation.json").exists() and not (d / "walk_forward.csv").exists()
    summary = pd.read_csv(d / "summary.csv")
    assert list(summary.columns[-4:]) == ["final_equity", "total_funding", "n_liquidations", "duplicate_of"]
    assert "validation" not in json.loads((d / "manifest.json").read_text())


def test_compare_and_runs_show_the_validation(run, capsys):
    """compare covers the holdout's columns, PSR, DSR and the run-level figures (from validation.json);
    runs and index.html show the verdict's level."""
    d = run["dir"]
    doc = json.loads((d / "validation.json").read_text())
    capsys.readouterr()
    assert main(["compare", str(d), str(d), "--out", str(run["root"] / "results")]) == 0
    out = capsys.readouterr().out
    for col in ("oos_sharpe", "oos_total_return", "oos_max_drawdown", "oos_n_trades", "psr", "dsr"):
        line = next(x for x in out.splitlines() if x.startswith(col + " "))
        assert line.split()[4] == "same", line
    figures = out.split("validation (A → B):")[1]
    level = next(x for x in figures.splitlines() if x.startswith("verdict level"))
    assert level.split()[-2:] == [doc["level"]] * 2
    pbo = next(x for x in figures.splitlines() if x.startswith("PBO "))
    assert pbo.split()[-1] == f"{doc['pbo']['pbo']:.4g}"
    eff = next(x for x in figures.splitlines() if x.startswith("effective trials"))
    assert eff.split()[-1] == f"{doc['trials']['effective']:,}"
    # the top combination by its short label: CONFIG sweeps short_window, long_window and stop_loss
    top = pd.read_csv(d / "summary.csv").iloc[0]
    sl = "none" if pd.isna(top["stop_loss"]) else f"{top['stop_loss']:g}"
    label = f"ma_crossover(short={top['short_window']}, long={top['long_window']}, sl={sl})"
    assert doc["top"]["label"] == label
    assert re.search(rf"^top combination\s+{re.escape(label)}\s+{re.escape(label)}$", figures, re.M), figures
    assert all(len(x) <= 120 for x in out.splitlines())
    assert main(["runs", "--out", str(run["root"] / "results")]) == 0
    row = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("a "))
    assert row.split()[1] == doc["level"]
    assert f'<span class="verdict-{doc["level"]}">' in (run["root"] / "results" / "index.html").read_text()
