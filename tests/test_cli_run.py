"""`backtest run` end to end: outputs, reproducibility, engines, workers and user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest_cli import main
from engine.report.trades_csv import run_trades
from fakes.reports import run_block, stable_html, stable_tree

SMALL = """
experiment: {name: small}
data: {source: synthetic, synthetic_bars: 6000, seed: 3}
execution: {commission: 0.001, slippage: 0.0005, fill: FILL}
portfolio: {capital: 100000}
risk: {stop_loss: 0.02}
strategies:
  ma_crossover: {short_window: [5, 10, 20], long_window: [30, 60], ema_period: 50, momentum_spread: 0.0005}
report: {top_k: 3, rank_by: sharpe, png: false}
"""
#: PNG charts cost most of a small run (a matplotlib pool): only the tests about them draw them.
SMALL_PNG = SMALL.replace("png: false", "png: true")


def write_config(tmp_path: Path, text: str = SMALL, fill: str = "close", name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("FILL", fill))
    return path


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def only_run_dir(root: Path) -> Path:
    (d,) = [p for p in root.iterdir() if p.is_dir()]  # (index.html lies beside it)
    return d


def test_run_writes_every_artifact(tmp_path, capsys):
    cfg = write_config(tmp_path, SMALL_PNG)
    code, out, _ = run(["run", "--config", str(cfg), "--out", str(tmp_path / "res"), "--no-progress"], capsys)
    assert code == 0
    d = only_run_dir(tmp_path / "res")
    assert f"results: {d}" in out and "Top 5 of 6 by sharpe" in out
    assert f"report:  {d / 'report.html'}" in out
    assert d.name.startswith("small-")
    summary = pd.read_csv(d / "summary.csv")
    assert len(summary) == 6  # 3 x 2 grid
    assert list(summary["rank"]) == list(range(1, 7))
    sharpe = summary["sharpe"].to_numpy()
    defined = sharpe[~np.isnan(sharpe)]
    assert np.all(np.diff(defined) <= 0), "ranked best first"
    # report.runs: top (the default): one JSON file for each of the top 3, none for the others
    assert sorted(p.name for p in (d / "runs").glob("*.json")) == sorted(f"{i}.json" for i in summary["strategy_id"][:3])
    plots = sorted(p.name for p in (d / "plots").iterdir())
    assert sum(p.startswith("equity_") for p in plots) == 3
    assert sum(p.startswith("drawdown_") for p in plots) == 3
    assert any(p.startswith("heatmap_ma_crossover_short_window_x_long_window") for p in plots)
    doc = json.loads((d / "runs" / f"{summary['strategy_id'][0]}.json").read_text())
    assert doc["params"] == {"short_window": int(summary["short_window"][0]),
                             "long_window": int(summary["long_window"][0]), "ema_period": 50,
                             "momentum_spread": 0.0005}
    assert (doc["direction"], doc["size"], doc["stop_loss"], doc["take_profit"], doc["trailing_stop"],
            doc["max_bars"]) == ("long", 1.0, 0.02, None, None, None)
    assert len(doc["data_fingerprint"]) == 64 and len(doc["config_hash"]) == 64 and doc["engine_version"]
    # the trades are in trades/<id>.csv, which the JSON names (one copy of them in the folder)
    assert doc["trades_csv"] == f"trades/{summary['strategy_id'][0]}.csv" and "trades" not in doc
    trades = run_trades(d / "runs" / f"{summary['strategy_id'][0]}.json")
    assert len(trades) == doc["trade_rows"] == len((d / doc["trades_csv"]).read_text().splitlines()) - 1
    closed = [t for t in trades if t.exit_reason != "open"]
    assert doc["metrics"]["n_trades"] == len(closed)
    # the summary row and the JSON agree on every metric
    row = summary.iloc[0]
    for k, v in doc["metrics"].items():
        if v is None:
            assert pd.isna(row[k])
        else:
            assert row[k] == pytest.approx(v, rel=1e-12)
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["combinations"] == 6 and manifest["filtered_by_constraints"] == 0
    assert manifest["run_id"] == d.name and manifest["report"] == "report.html"
    assert manifest["best"] == {"strategy_id": summary["strategy_id"][0], "metric": "sharpe",
                                "value": pytest.approx(summary["sharpe"][0], rel=1e-12),
                                "n_trades": int(summary["n_trades"][0]),
                                # the short label: SMALL sweeps short_window and long_window only
                                "label": f"ma_crossover(short={summary['short_window'][0]}, "
                                         f"long={summary['long_window'][0]})"}
    # the top K have their trades as CSV; the page and its plotly.js are there
    assert sorted(p.name for p in (d / "trades").iterdir()) == sorted(f"{i}.csv" for i in summary["strategy_id"][:3])
    assert (d / "report.html").stat().st_size > 10_000
    assert (d / "plotly.min.js").read_bytes().startswith(b"/**\n* plotly.js v")


def test_same_config_and_data_give_byte_identical_outputs(tmp_path, capsys):
    cfg = write_config(tmp_path, SMALL_PNG)  # the charts too
    for i in (1, 2):
        assert run(["run", "--config", str(cfg), "--out", str(tmp_path / f"r{i}"), "--no-progress"], capsys)[0] == 0
    d1, d2 = only_run_dir(tmp_path / "r1"), only_run_dir(tmp_path / "r2")
    a, b = stable_tree(d1), stable_tree(d2)
    assert a.keys() == b.keys() and len(a) > 10 and "report.html" in a and any(k.endswith(".png") for k in a)
    assert a == b
    # report.html differs only in the one element holding the run id, time and timings...
    html1, html2 = [(d / "report.html").read_bytes() for d in (d1, d2)]
    assert html1 != html2 and stable_html(html1) == stable_html(html2)
    for d, html in ((d1, html1), (d2, html2)):
        block = run_block(html)
        manifest = json.loads((d / "manifest.json").read_text())
        assert block["run_id"] == manifest["run_id"] == d.name and block["created_at"] == manifest["created_at"]
        assert set(block["timings"]) == {"load_s", "compile_s", "sweep_s"}
        # ...which is the only place the run id appears
        assert html.count(d.name.encode()) == 1
    assert d1.name != d2.name


def test_runs_never_share_a_folder(tmp_path, capsys):
    cfg = write_config(tmp_path)
    for _ in range(2):
        assert run(["run", "--config", str(cfg), "--out", str(tmp_path / "r"), "--run-id", "same",
                    "--no-progress"], capsys)[0] == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if p.is_dir()) == ["same", "same-2"]


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_reference_engine_and_worker_counts_give_the_same_summary(tmp_path, capsys, fill):
    cfg = write_config(tmp_path, fill=fill)
    frames = {}
    for name, extra in {"fast1": ["--workers", "1"], "fast2": ["--workers", "2"],
                        "ref1": ["--engine", "reference", "--workers", "1"],
                        "ref2": ["--engine", "reference", "--workers", "2"]}.items():
        assert run(["run", "--config", str(cfg), "--out", str(tmp_path / name), "--no-progress", *extra],
                   capsys)[0] == 0
        frames[name] = pd.read_csv(only_run_dir(tmp_path / name) / "summary.csv")
    assert frames["fast1"].equals(frames["fast2"])
    assert frames["ref1"].equals(frames["ref2"])
    pd.testing.assert_frame_equal(frames["fast1"], frames["ref1"], rtol=1e-9, atol=0)


def test_real_candles(tmp_path, capsys, real_15m_csv):
    cfg = write_config(tmp_path)
    code, out, err = run(["run", "--config", str(cfg), "--data", str(real_15m_csv), "--out", str(tmp_path / "r"),
                          "--no-progress"], capsys)
    assert code == 0, err
    assert "40,000 candles" in err and "no gaps" in err
    summary = pd.read_csv(only_run_dir(tmp_path / "r") / "summary.csv")
    # buy and hold over the real file, computed independently from the raw CSV
    raw = pd.read_csv(real_15m_csv)
    assert summary["buy_and_hold_return"].iloc[0] == pytest.approx(raw["Close"].iloc[-1] / raw["Close"].iloc[0] - 1)


GOOD_ROWS = [
    "Timestamp,Open,High,Low,Close,Volume",
    "1706517900000,100,101,99,100.5,1",
    "1706518800000,100.5,102,100,101,1",
    "1706519700000,101,101.5,100.2,100.8,1",
]


@pytest.mark.parametrize("rows,needle", [
    ([GOOD_ROWS[0], GOOD_ROWS[2], GOOD_ROWS[1], GOOD_ROWS[3]], "not sorted"),
    ([GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1], GOOD_ROWS[2]], "duplicate timestamp"),
    ([GOOD_ROWS[0], GOOD_ROWS[1], "1706518800000,100.5,NaN,100,101,1", GOOD_ROWS[3]], "high is missing or NaN"),
    ([GOOD_ROWS[0], GOOD_ROWS[1], "1706518800000,-100.5,102,100,101,1", GOOD_ROWS[3]], "open=-100.5"),
    ([GOOD_ROWS[0], GOOD_ROWS[1], "1706518800000,100.5,99,100,101,1", GOOD_ROWS[3]], "high=99.0 is below low=100.0"),
    ([GOOD_ROWS[0], GOOD_ROWS[1], "1706518800000,100.5,100.7,100,101,1", GOOD_ROWS[3]],
     "high=100.7 is below max(open, close)"),
    ([GOOD_ROWS[0], GOOD_ROWS[1], "1706518800000,100.5,102,100.6,101,1", GOOD_ROWS[3]],
     "low=100.6 is above min(open, close)"),
    (["time,o,h,l,c,v", "1706517900000,100,101,99,100.5,1"], "missing column(s)"),
    ([], "file is empty"),
    ([GOOD_ROWS[0]], "no candles"),
    ([GOOD_ROWS[0], "1706517900000,abc,101,99,100.5,1"], "open='abc' is not a number"),
])
def test_bad_data_files_exit_2_with_one_line(tmp_path, capsys, rows, needle):
    data = tmp_path / "bad.csv"
    data.write_text("\n".join(rows) + ("\n" if rows else ""))
    cfg = write_config(tmp_path)
    code, out, err = run(["run", "--config", str(cfg), "--data", str(data), "--out", str(tmp_path / "r"),
                          "--no-progress"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(data) in lines[0] and needle in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.parametrize("text,needle", [
    (SMALL.replace("top_k: 3", "top_k: 3, colour: red"), "report.colour: unknown key"),
    (SMALL.replace("commission: 0.001", "commission: lots"), "execution.commission: expected a number, got 'lots'"),
    (SMALL.replace("short_window: [5, 10, 20]", "short_window: [5, ten]"),
     "strategies.ma_crossover.short_window: expected an integer, got 'ten'"),
    (SMALL.replace("ema_period: 50", "ema_priod: 50"), "strategies.ma_crossover.ema_priod: unknown parameter"),
    (SMALL.replace("stop_loss: 0.02", "stop_loss: 1.5"), "risk.stop_loss: 1.5 is out of range"),
    (SMALL.replace("stop_loss: 0.02", "stop_loss: 0.02, take_profit: 0"), "risk.take_profit: 0 is out of range"),
    (SMALL.replace("stop_loss: 0.02", "stop_loss: 0.02, take_profit: [0.05, -1]"),
     "risk.take_profit: -1 is out of range"),
    (SMALL.replace("stop_loss: 0.02", "stop_loss: 0.02, trailing_stop: 1"), "risk.trailing_stop: 1 is out of range"),
    (SMALL.replace("stop_loss: 0.02", "stop_loss: 0.02, trailing_stop: 0"), "risk.trailing_stop: 0 is out of range"),
    (SMALL.replace("stop_loss: 0.02", "stop_loss: 0.02, max_bars: 0"), "risk.max_bars: 0 is out of range"),
    (SMALL.replace("stop_loss: 0.02", "stop_loss: 0.02, max_bars: 2.5"), "risk.max_bars: expected an integer"),
    (SMALL.replace("capital: 100000", "capital: 100000, size: 1.5"), "portfolio.size: 1.5 is out of range"),
    (SMALL.replace("capital: 100000", "capital: 100000, size: 0"), "portfolio.size: 0 is out of range"),
    (SMALL.replace("capital: 100000", "capital: 100000, direction: sideways"),
     "portfolio.direction: 'sideways'; expected one of long, short, both"),
    (SMALL.replace("capital: 100000", "capital: 100000, direction: [long, up]"), "portfolio.direction: 'up'"),
    (SMALL.replace("stop_loss: 0.02", "stop_loss: 0.02, take_proft: 0.1"),
     "risk.take_proft: unknown key; expected one of max_bars, stop_loss, take_profit, trailing_stop; "
     "did you mean 'take_profit'?"),
    (SMALL + "\nbogus: 1\n", "bogus: unknown section"),
    ("strategies: [", "invalid YAML"),
])
def test_bad_configs_exit_2_with_one_line(tmp_path, capsys, text, needle):
    cfg = write_config(tmp_path, text)
    for args in (["run", "--config", str(cfg), "--out", str(tmp_path / "r")], ["validate-config", str(cfg)]):
        code, _, err = run(args, capsys)
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_validate_config_counts_combinations_after_constraints(tmp_path, capsys):
    text = SMALL.replace("long_window: [30, 60]", "long_window: [8, 30]")
    code, out, _ = run(["validate-config", str(write_config(tmp_path, text))], capsys)
    assert code == 0
    # short 5,10,20 x long 8,30: (10,8) and (20,8) break short < long (the line wraps at 120 columns)
    assert "OK, 4 combination(s) (2 filtered by constraints)" in " ".join(out.split())


@pytest.mark.parametrize("args,needle", [
    (["run", "--workers", "0"], "expected a positive integer"),
    (["run", "--engine", "turbo"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
    (["run", "--config", "/nonexistent.yaml"], "config file not found"),
])
def test_bad_arguments_exit_2(capsys, args, needle):
    code, _, err = run(args, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_default_config_sweep(tmp_path, capsys):
    """What `make run` does: the seed's 64-combination sweep on two years of embedded synthetic candles."""
    code, out, err = run(["run", "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 0, err
    assert "70,080 candles" in err
    d = only_run_dir(tmp_path / "r")
    assert len(pd.read_csv(d / "summary.csv")) == 64
    assert len(list((d / "runs").glob("*.json"))) == 10  # the top K
    assert len(list((d / "trades").glob("*.csv"))) == 10
    assert not (d / "plots").exists()           # PNG charts only with report.png: true
    size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    assert size <= 8_000_000, f"the default run folder holds {size:,} bytes"
    assert "Top 5 of 64 by sharpe on the in-sample bars" in out and f"results: {d}" in out
    # the default config validates: the table shows the holdout's Sharpe and DSR, then the block and verdict
    assert "oos_sharpe" in out and "dsr" in out.split("Top 5")[1].splitlines()[1]
    assert "Validation (in-sample bars 0–49,055, holdout 49,056–70,079; 64 combinations, " in out
    assert "PBO " in out and "  verdict: " in out


def test_position_rules_are_columns_of_the_summary_and_the_json(tmp_path, capsys):
    text = SMALL.replace("capital: 100000", "capital: 100000, direction: [long, both], size: 0.5").replace(
        "stop_loss: 0.02", "stop_loss: 0.02, take_profit: 0.03, trailing_stop: 0.01, max_bars: [null, 40]").replace(
        "short_window: [5, 10, 20]", "short_window: [5]")
    cfg = write_config(tmp_path, text.replace("png: false}", "png: false, runs: all}"))
    code, _, err = run(["run", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 0, err
    d = only_run_dir(tmp_path / "r")
    summary = pd.read_csv(d / "summary.csv")
    assert len(summary) == 2 * 2 * 2
    assert len(list((d / "runs").glob("*.json"))) == 8  # report.runs: all
    assert set(summary["direction"]) == {"long", "both"} and set(summary["size"]) == {0.5}
    assert set(summary["take_profit"]) == {0.03} and set(summary["trailing_stop"]) == {0.01}
    assert sorted(summary["max_bars"].fillna(0).astype(int)) == [0, 0, 0, 0, 40, 40, 40, 40]
    ids = set(summary["strategy_id"])
    assert "ma_crossover_long=60_dir=both_bars=40" in ids
    assert "ma_crossover_long=30_dir=long_bars=none" in ids
    doc = json.loads((d / "runs" / "ma_crossover_long=60_dir=both_bars=40.json").read_text())
    assert (doc["direction"], doc["size"], doc["take_profit"], doc["trailing_stop"], doc["max_bars"]) == \
        ("both", 0.5, 0.03, 0.01, 40)
    trades = run_trades(d / "runs" / "ma_crossover_long=60_dir=both_bars=40.json")
    reasons = {t.exit_reason for t in trades}
    assert reasons <= {"signal", "stop", "trailing_stop", "take_profit", "time", "open"} and reasons
    assert {t.direction for t in trades} <= {"long", "short"}
    assert len(list((d / "trades").glob("*.csv"))) == 8  # every JSON's trades file is there


def test_stateful_strategy_runs_compiled_with_no_fallback(tmp_path, capsys):
    """The former reference-only strategy (bars held) reads the position view: no fallback
    notice, and the fast and reference engines write the same summary."""
    text = SMALL.replace(
        "  ma_crossover: {short_window: [5, 10, 20], long_window: [30, 60], ema_period: 50, momentum_spread: 0.0005}",
        "  tests.timed_exit_strategy:TimedExit: {hold_bars: [3, 7]}")
    cfg = write_config(tmp_path, text)
    summaries = {}
    for engine in ("fast", "reference"):
        out = tmp_path / engine
        code, _, err = run(["run", "--config", str(cfg), "--out", str(out), "--no-progress", "--engine", engine],
                           capsys)
        assert code == 0, err
        assert "note:" not in err
        summaries[engine] = pd.read_csv(only_run_dir(out) / "summary.csv")
    summary = summaries["fast"]
    assert sorted(summary["hold_bars"]) == [3, 7]
    pd.testing.assert_frame_equal(summaries["fast"], summaries["reference"], rtol=1e-9)
    trades = run_trades(next((only_run_dir(tmp_path / "fast") / "runs").glob("*hold_bars=3*")))
    held = [t.exit_time - t.entry_time for t in trades if t.exit_reason == "signal"]
    # the 2% stop cuts some holds short; every signal exit is after exactly three bars
    assert held and all(h == 3 * 900_000 for h in held)


@pytest.mark.parametrize("shorts,longs,stops,parquet", [
    (list(range(2, 32)), list(range(40, 80)), [0.01], False),           # 1,200 combinations
    (list(range(2, 66)), list(range(70, 230)), [0.01], True),           # 10,240 combinations
])
def test_large_sweeps_keep_json_for_the_top_k_only(tmp_path, capsys, shorts, longs, stops, parquet):
    text = f"""
data: {{source: synthetic, synthetic_bars: 400, seed: 9}}
risk: {{stop_loss: {stops}}}
strategies:
  ma_crossover: {{short_window: {shorts}, long_window: {longs}, ema_period: 20, momentum_spread: 0.0}}
report: {{top_k: 4}}
"""
    cfg = write_config(tmp_path, text)
    code, _, err = run(["run", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 0, err
    d = only_run_dir(tmp_path / "r")
    n = len(shorts) * len(longs) * len(stops)
    summary = pd.read_csv(d / "summary.csv")
    assert len(summary) == n and summary["combination"].nunique() == n
    # the top K are the first of each group of identical returns (a stop that never fires repeats a row)
    heads = summary[summary["duplicate_of"] == summary["combination"]]["strategy_id"][:4]
    assert sorted(p.name for p in (d / "runs").iterdir()) == sorted(f"{i}.json" for i in heads)
    assert sorted(p.name for p in (d / "trades").iterdir()) == sorted(f"{i}.csv" for i in heads)
    assert (d / "summary.parquet").exists() == parquet
    if parquet:
        pd.testing.assert_frame_equal(pd.read_parquet(d / "summary.parquet"), summary, check_dtype=False)


def _console(args: list[str]):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    return subprocess.run([sys.executable, "-m", "backtest_cli", *args], cwd=repo, capture_output=True, text=True,
                          timeout=600)


def test_console_script_keeps_output_and_exit_codes(tmp_path):
    """The console entry leaves with os._exit: piped output must still arrive whole, and
    the exit code must be main's."""
    cfg = write_config(tmp_path)
    done = _console(["run", "--config", str(cfg), "--out", str(tmp_path / "res"), "--no-progress"])
    assert done.returncode == 0, done.stderr
    d = only_run_dir(tmp_path / "res")
    assert done.stdout.rstrip().endswith(f"results: {d}")
    assert len(list((d / "runs").glob("*.json"))) == 3
    bad = _console(["run", "--config", str(tmp_path / "missing.yaml")])
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "missing.yaml" in bad.stderr


# --- guidance: the printed table, data overrides, step lines ------------------------------------


def test_top_table_shows_the_rank_metric_and_trades(tmp_path, capsys):
    cfg = write_config(tmp_path, SMALL.replace("rank_by: sharpe", "rank_by: calmar"))
    code, out, _ = run(["run", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 0
    summary = pd.read_csv(only_run_dir(tmp_path / "r") / "summary.csv")
    lines = out.splitlines()
    at = lines.index("Top 5 of 6 by calmar:")
    assert lines[at + 1].split() == ["rank", "calmar", "trades", "sharpe", "return", "max_dd", "win_rate", "pf",
                                     "combination"]
    first = lines[at + 2].split()
    assert first[:3] == ["1", f"{summary['calmar'][0]:.4f}", str(summary["n_trades"][0])]
    # the combination in short: only its swept values (SMALL sweeps short_window and long_window)
    row = summary.iloc[0]
    assert first[-2:] == [f"ma_crossover(short={row['short_window']},", f"long={row['long_window']})"]
    assert all(len(line) <= 120 for line in lines[at:at + 7])


def test_data_overrides_pick_one_series_of_a_dataset(tmp_path, capsys):
    """A dataset with two symbols and two intervals runs only with a symbol and an interval chosen."""
    from engine.data.dataset import upsert_candles
    from engine.data.synthetic import generate_candles

    root = tmp_path / "data"
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for interval, ms in (("15m", 900_000), ("1h", 3_600_000)):
            upsert_candles(str(root), symbol, interval,
                           generate_candles(3_000, seed=7, symbol=symbol, interval_ms=ms).to_frame())
    cfg = write_config(tmp_path)
    base = ["run", "--config", str(cfg), "--data", str(root), "--no-progress"]
    code, _, err = run([*base, "--out", str(tmp_path / "r0")], capsys)
    assert code == 2 and "several" in err and len(err.strip().splitlines()) == 1
    code, out, err = run([*base, "--out", str(tmp_path / "r"), "--symbol", "ETHUSDT", "--interval", "1h",
                          "--start", "2023-01-11", "--end", "2023-02-01T12:00"], capsys)
    assert code == 0, err
    # 1h candles from 2023-01-11 00:00 up to (not including) 2023-02-01 12:00: 21.5 days
    assert "ETHUSDT 1h · 516 candles" in err
    d = only_run_dir(tmp_path / "r")
    manifest = json.loads((d / "manifest.json").read_text())
    assert (manifest["data"]["first_open_time"], manifest["data"]["last_open_time"]) == \
           ("2023-01-11 00:00:00", "2023-02-01 11:00:00")
    import yaml

    as_run = yaml.safe_load((d / "config.yaml").read_text())["data"]
    assert (as_run["symbol"], as_run["interval"], as_run["start"], as_run["end"]) == \
           ("ETHUSDT", "1h", "2023-01-11", "2023-02-01T12:00")


@pytest.mark.parametrize("args,needle", [
    (["--interval", "7x"], "argument --interval: '7x' is not a Binance kline interval"),
    (["--start", "yesterday"], "argument --start: 'yesterday' is not a time"),
    (["--end", "2024-13-01"], "argument --end: '2024-13-01' is not a time"),
    (["--symbol", " "], "argument --symbol: ' ' is not a Binance symbol"),
])
def test_bad_data_overrides_exit_2(tmp_path, capsys, args, needle):
    code, _, err = run(["run", "--out", str(tmp_path / "r"), *args], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_step_lines_and_a_progress_bar_over_the_sweep_alone(tmp_path, capsys):
    cfg = write_config(tmp_path)
    code, out, err = run(["run", "--config", str(cfg), "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    d = only_run_dir(tmp_path / "r")
    at = {key: err.index(key) for key in ("data: synthetic", "fast sweep: 100%", "\nsweep: ",
                                          f"report: writing report.html, summary, trades and charts to {d}",
                                          "report: done in")}
    # the bar is finished (100%) before the sweep line and the report start
    assert list(at.values()) == sorted(at.values()), err
    assert "6/6" in err[at["fast sweep: 100%"]:at["\nsweep: "]]
    assert "compiling" not in err                      # this process compiled the kernels long ago


def _cold_run(cfg: Path, out: Path, cache: Path):
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "backtest_cli", "run", "--config", str(cfg), "--out", str(out),
                           "--no-progress"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)


def test_compile_step_is_announced_only_when_the_cache_is_cold(cold_cache, tmp_path):
    """An empty numba cache (a fresh machine) compiles and says so; the next run loads the cache and does not.
    The first run is the shared ``cold_cache`` fixture's (tests/conftest.py): a run on an empty cache, made
    once per test run, whose cache the other compile tests start from."""
    first = cold_cache.first_run
    # each compile says what compiles and why, as it starts
    assert "compiling the fast path's loop: first run on this machine, or the engine changed…" in first.stderr
    assert "compiling ma_crossover's rule (rule, long scan, long hold): first use on this machine…" \
        in first.stderr
    assert "compiling indicator sma (" in first.stderr
    assert "compiled in " in first.stderr
    lines = first.stderr.splitlines()
    assert [i for i, x in enumerate(lines) if x.startswith("compiling")][0] < \
           [i for i, x in enumerate(lines) if x.startswith("sweep: ")][0]
    second = _cold_run(cold_cache.config, tmp_path / "r", cold_cache.cache)
    assert second.returncode == 0, second.stderr
    assert "compiling" not in second.stderr and "compiled in" not in second.stderr
    assert len(list(cold_cache.runs.glob("*/manifest.json"))) == 1
    assert len(list((tmp_path / "r").glob("*/manifest.json"))) == 1
