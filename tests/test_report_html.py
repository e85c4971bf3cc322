"""The run folder's new parts: ranking with report.min_trades, trades.csv, display reduction,
and what report.html embeds (table modes, validation section, escaping, binary arrays)."""

from __future__ import annotations

import base64
import math
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import parse_config
from engine.report import display
from engine.ranking import rank
from engine.report.run_folder import write_run_folder
from engine.report.trades_csv import read_trades_csv, run_trades, write_trades_csv
from engine.timeutil import iso_times as iso_utc
from engine.grid import build_grid
from engine.pipeline import RunInputs, run_pipeline
from engine.sweep import run_detail
from engine.data.synthetic import generate_candles
from engine.trade import Trade
from fakes.cli import run_cli

_DATA = re.compile(r'<script id="report-data" type="application/json">(.*?)</script>', re.S)


def page_data(html_path: Path) -> dict:
    (found,) = _DATA.findall(html_path.read_text())
    return json.loads(found)


def decode(o: dict) -> np.ndarray:
    """The page's binary arrays, decoded here as the browser does (little-endian)."""
    return np.frombuffer(base64.b64decode(o["b64"]), dtype={"f4": "<f4", "f8": "<f8", "i4": "<i4"}[o["dtype"]])


# --- ranking --------------------------------------------------------------------------------------

def _summary() -> pd.DataFrame:
    return pd.DataFrame({
        "combination": [0, 1, 2, 3, 4, 5],
        "strategy_id": list("abcdef"),
        "sharpe": [0.5, 2.0, np.nan, 1.0, 3.0, 1.0],
        "max_drawdown": [0.3, 0.1, 0.2, 0.4, 0.5, 0.1],
        "n_trades": [4, 0, 7, 3, 1, 5],
    })


def test_min_trades_leaves_combinations_unranked_after_the_ranked_ones():
    # By hand: n_trades >= 3 keeps a, c, d, f; by sharpe desc (NaN last, ties by combination): d=1.0, f=1.0
    # tie -> d first; then a=0.5; c (NaN) last of the ranked. Unranked b (0 trades), e (1 trade): e=3.0 before b=2.0.
    r = rank(_summary(), "sharpe", min_trades=3)
    assert list(r["strategy_id"]) == ["d", "f", "a", "c", "e", "b"]
    assert r["rank"].tolist()[:4] == [1, 2, 3, 4] and r["rank"].isna().tolist() == [False] * 4 + [True] * 2
    # min_trades 0 (or 1 here with a 0-trade row) ranks as before: all, or all but b
    assert rank(_summary(), "sharpe", 0)["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert list(rank(_summary(), "sharpe", 1)["strategy_id"]) == ["e", "d", "f", "a", "c", "b"]
    # ascending metrics rank smallest first
    assert list(rank(_summary(), "max_drawdown", 3)["strategy_id"][:4]) == ["f", "c", "a", "d"]


def test_unranked_rows_in_the_run_folder(tmp_path, capsys):
    text = """
experiment: {name: few_trades}
data: {source: synthetic, synthetic_bars: 3000, seed: 3}
strategies:
  ma_crossover: {short_window: [5, 10, 20], long_window: [30, 60], ema_period: 50, momentum_spread: 0.0005}
report: {top_k: 2, min_trades: MIN, runs: all}
"""
    counts = pd.read_csv(_run(tmp_path / "all", text.replace("MIN", "0"), capsys) / "summary.csv")["n_trades"]
    cut = int(np.sort(counts.to_numpy())[2]) + 1   # by construction, exactly three fall short
    assert (counts < cut).sum() == 3
    d = _run(tmp_path / "cut", text.replace("MIN", str(cut)), capsys)
    summary = pd.read_csv(d / "summary.csv", dtype={"rank": "Int64"})
    assert len(summary) == 6
    assert summary["rank"].tolist()[:3] == [1, 2, 3] and summary["rank"].isna().sum() == 3
    assert (summary["n_trades"][:3] >= cut).all() and (summary["n_trades"][3:] < cut).all()
    lines = (d / "summary.csv").read_text().splitlines()
    assert all(line.startswith(",") for line in lines[4:])           # an empty rank cell
    doc = json.loads((d / "runs" / f"{summary['strategy_id'][5]}.json").read_text())
    assert doc["rank"] is None
    data = page_data(d / "report.html")
    assert [row[0] for row in data["table"]["rows"]] == [1, 2, 3, None, None, None]
    assert [t["rank"] for t in data["top"]] == [1, 2]


def _run(out: Path, text: str, capsys) -> Path:
    out.mkdir(parents=True)
    cfg = out / "c.yaml"
    cfg.write_text(text)
    code, _, err = run_cli(["run", "--config", cfg, "--out", out / "r", "--no-progress"], capsys)
    assert code == 0, err
    (d,) = [p for p in (out / "r").iterdir() if p.is_dir()]
    return d


def test_nothing_ranked_prints_no_table(tmp_path, capsys):
    text = """
data: {source: synthetic, synthetic_bars: 800, seed: 1}
strategies: {ma_crossover: {short_window: [5, 10], long_window: 30, ema_period: 50}}
report: {min_trades: 100000}
"""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "r", "--no-progress"], capsys)
    assert code == 0, err
    # one sentence, no empty table
    assert "No combination of 2 is ranked: none has 100000 or more closed trades (report.min_trades)." in out
    assert "Top 0" not in out and "strategy_id" not in out
    (d,) = [p for p in (tmp_path / "r").iterdir() if p.is_dir()]
    assert json.loads((d / "manifest.json").read_text())["best"] is None
    assert not list((d / "trades").iterdir()) and page_data(d / "report.html")["top"] == []


# --- trades.csv -----------------------------------------------------------------------------------

def test_iso_utc_by_hand():
    assert iso_utc([1704067200000, 1704068100000]) == ["2024-01-01T00:00:00Z", "2024-01-01T00:15:00Z"]
    assert iso_utc([1704067200123]) == ["2024-01-01T00:00:00.123Z"]
    assert iso_utc([]) == []


def test_trades_csv_has_every_field_exactly(tmp_path):
    trades = [Trade(3, 9, 1704067200000, 1704072600000, 100.1 * 1.0005, 101.7 * 0.9995, 0.1 / 3, 0.2000001,
                    -1.5e-7, 1 / 7, "stop"),
              Trade(12, 15, 1704078000000, 1704080700000, 99.0, 98.5, 2.0, 0.4, -1.4, -0.007, "open")]
    path = tmp_path / "t.csv"
    write_trades_csv(path, trades)
    back = pd.read_csv(path, dtype=str)
    assert list(back.columns) == ["entry_bar", "exit_bar", "entry_time", "exit_time", "entry_price", "exit_price",
                                  "qty", "fees", "pnl", "return", "exit_reason", "direction", "funding",
                                  "leverage"]
    assert back["entry_time"].tolist() == ["2024-01-01T00:00:00Z", "2024-01-01T03:00:00Z"]
    assert back["exit_time"].tolist() == ["2024-01-01T01:30:00Z", "2024-01-01T03:45:00Z"]
    for i, t in enumerate(trades):
        for j, field in enumerate(("entry_price", "exit_price", "qty", "fees", "pnl", "return")):
            assert float(back[field][i]) == t[4 + j]       # the very float, read back
        assert int(back["entry_bar"][i]) == t.entry_bar and back["exit_reason"][i] == t.exit_reason
    write_trades_csv(tmp_path / "none.csv", [])
    assert (tmp_path / "none.csv").read_text().count("\n") == 1
    # the reader gives back the very trades: every float bit for bit, the times in epoch ms
    assert read_trades_csv(path) == trades and read_trades_csv(tmp_path / "none.csv") == []
    # written by hand: shortest round-trip floats, a millisecond time in every row once one has it
    odd = [Trade(0, 1, 1704067200123, 1704067200999, 0.1, 1e-20, 1e16, 5e-324, -0.0, 2.5, "take_profit", "short",
                 0.125, 3.0)]
    write_trades_csv(path, odd)
    assert path.read_text().splitlines()[1] == ("0,1,2024-01-01T00:00:00.123Z,2024-01-01T00:00:00.999Z,0.1,1e-20,"
                                                "1e+16,5e-324,-0.0,2.5,take_profit,short,0.125,3.0")
    back = read_trades_csv(path)
    assert back == odd and [math.copysign(1, t.pnl) for t in back] == [-1.0]


def test_run_json_names_its_trades_file_which_holds_the_kernels_trades_exactly(tmp_path):
    """runs/<id>.json no longer repeats the trades: it names trades/<id>.csv, and that file reads back to
    the detail run's trades (the fast path's arrays) bit for bit, which the reference engine confirms."""
    doc = {"experiment": {"name": "files"}, "data": {"synthetic_bars": 3000, "seed": 9},
           "strategies": {"ma_crossover": {"short_window": [5, 10], "long_window": 40, "ema_period": 20}},
           "risk": {"stop_loss": 0.01}, "report": {"top_k": 2}}
    cfg = parse_config(doc)
    candles = generate_candles(3000, seed=9)
    grid = build_grid(cfg)
    results = run_pipeline(RunInputs(cfg, grid, candles, workers=1))
    out = tmp_path / "run"
    write_run_folder(out, results, run_id="r1")
    for g in results.top:
        sid = results.ranked.set_index("combination").loc[g, "strategy_id"]
        run_json = out / "runs" / f"{sid}.json"
        stored = json.loads(run_json.read_text())
        assert stored["trades_csv"] == f"trades/{sid}.csv" and "trades" not in stored
        trades = run_trades(run_json)
        assert trades == results.details[g].trades and stored["trade_rows"] == len(trades) > 10
        assert stored["metrics"]["n_trades"] == sum(t.exit_reason != "open" for t in trades)
        ref = run_detail(cfg, *grid.locate(g), candles, engine="reference").trades
        assert [(t.entry_bar, t.exit_bar, t.exit_reason) for t in ref] == \
            [(t.entry_bar, t.exit_bar, t.exit_reason) for t in trades]
        np.testing.assert_allclose([t.pnl for t in trades], [t.pnl for t in ref], rtol=1e-9)
    # a reference that leaves the folder is refused
    run_json = next((out / "runs").iterdir())
    run_json.write_text(json.dumps({**json.loads(run_json.read_text()), "trades_csv": "../../etc/passwd"}))
    with pytest.raises(ValueError, match="outside the run folder"):
        run_trades(run_json)


# --- display reduction ----------------------------------------------------------------------------

def test_bucket_size():
    assert display.bucket_size(2000) == 1 and display.bucket_size(2001) == 2
    assert display.bucket_size(70_081) == 36 and display.bucket_size(1_000_000) == 500


def test_ohlc_buckets_by_hand():
    t = np.arange(7) * 10
    o = np.array([5., 6, 7, 8, 9, 10, 11])
    h = np.array([9., 12, 8, 9, 15, 11, 13])
    lo = np.array([4., 5, 2, 7, 8, 9, 10])
    c = np.array([6., 7, 8, 9, 10, 11, 12])
    b = display.ohlc_buckets(t, o, h, lo, c, 3)
    assert b.time.tolist() == [0, 30, 60]
    assert b.open.tolist() == [5, 8, 11] and b.high.tolist() == [12, 15, 13]
    assert b.low.tolist() == [2, 7, 10] and b.close.tolist() == [8, 11, 12]
    same = display.ohlc_buckets(t, o, h, lo, c, 1)
    assert same.close.tolist() == c.tolist()


def test_band_buckets_and_drawdown_by_hand():
    v = np.array([1., 3, 2, np.nan, 5, 4, 0.5])
    band = display.band_buckets(v, 3)
    assert band.low.tolist() == [1, 4, 0.5] and band.high.tolist() == [3, 5, 0.5] and band.last.tolist() == [2, 4, 0.5]
    assert display.bucket_times(np.arange(7) * 10, 3).tolist() == [20, 50, 60]
    np.testing.assert_allclose(display.drawdown(np.array([100., 120, 90, 130, 65])), [0, 0, 0.25, 0, 0.5])


# --- the page's data ------------------------------------------------------------------------------

def _folder(tmp_path: Path, doc: dict, **kwargs) -> Path:
    cfg = parse_config(doc)
    candles = generate_candles(cfg.data.synthetic_bars, seed=cfg.data.seed)
    results = run_pipeline(RunInputs(cfg, build_grid(cfg), candles, workers=1))
    out = tmp_path / "run"
    out.mkdir(parents=True)
    write_run_folder(out, results, run_id="r1", **kwargs)
    return out


def test_page_embeds_exact_trades_and_reduced_series(tmp_path):
    doc = {"experiment": {"name": "bars"}, "data": {"synthetic_bars": 5000, "seed": 4},
           "strategies": {"ma_crossover": {"short_window": [5, 10], "long_window": 40, "ema_period": 20}},
           "report": {"top_k": 1}}
    d = _folder(tmp_path, doc)
    data = page_data(d / "report.html")
    top = data["top"][0]
    trades = [t._asdict() for t in run_trades(d / "runs" / f"{top['strategy_id']}.json")]
    cols = top["trades"]["columns"]
    for f in ("entry_time", "exit_time", "entry_price", "exit_price"):
        assert cols[f]["dtype"] == "f8" and decode(cols[f]).tolist() == [t[f] for t in trades]
    assert decode(cols["entry_bar"]).tolist() == [t["entry_bar"] for t in trades]
    names, codes = cols["exit_reason"]["names"], cols["exit_reason"]["codes"]
    assert [names[ord(ch) - 48] for ch in codes] == [t["exit_reason"] for t in trades]
    np.testing.assert_allclose(decode(cols["pnl"]), [t["pnl"] for t in trades], rtol=1e-6)
    # 5,000 candles: 3 bars per displayed candle; 5,001 equity points: 3 per point
    candles = generate_candles(5000, seed=4)
    assert data["candles"]["bucket"] == 3 and data["equity"]["bucket"] == 3
    np.testing.assert_allclose(decode(data["candles"]["high"])[:2], [candles.high[:3].max(), candles.high[3:6].max()],
                               rtol=1e-7)
    np.testing.assert_allclose(decode(data["candles"]["close"])[-1], candles.close[-1], rtol=1e-7)
    assert decode(data["candles"]["time"]).tolist()[:2] == [candles.open_time[0], candles.open_time[3]]
    final = json.loads((d / "runs" / f"{top['strategy_id']}.json").read_text())["metrics"]
    assert decode(top["equity"])[-1] == pytest.approx(final["final_equity"], rel=1e-6)
    assert decode(top["drawdown"]).max() == pytest.approx(final["max_drawdown"], rel=1e-6)


def test_validation_section_and_escaping(tmp_path):
    name = "evil </script><script>alert(1)</script> & co"
    validation = {"title": "Walk-forward", "summary": "2 of 2 folds positive </script>",
                  "metrics": {"folds": 2}, "tables": [{"title": "Folds", "columns": ["fold", "oos_sharpe"],
                                                       "rows": [[1, 0.5], [2, 0.25]]}]}
    doc = {"experiment": {"name": name}, "data": {"synthetic_bars": 600, "seed": 2},
           "strategies": {"ma_crossover": {"short_window": 5, "long_window": 30, "ema_period": 20}}}
    d = _folder(tmp_path, doc, validation=validation)
    html = (d / "report.html").read_text()
    assert html.count("</script>") == 4          # plotly, data, run, script: nothing injected closes one
    assert "<title>evil &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; co · backtest report</title>" in html
    data = page_data(d / "report.html")
    assert data["validation"] == validation and data["header"]["experiment"] == name
    assert json.loads((d / "manifest.json").read_text())["validation"] == validation
    assert page_data(_folder(tmp_path / "no", doc) / "report.html")["validation"] is None


@pytest.mark.parametrize("name", ["<!--<script>", "<!--<SCRIPT>x</ScRiPt", "a <!-- b"])
def test_any_experiment_name_keeps_the_script_data_intact(tmp_path, name):
    """A "<!--" followed by "<script" in script data keeps the browser's parser in the script until the
    end of the page (the script never runs, no rows). No "<" is written inside the JSON at all."""
    doc = {"experiment": {"name": name}, "data": {"synthetic_bars": 600, "seed": 2},
           "strategies": {"ma_crossover": {"short_window": [5, 8], "long_window": 30, "ema_period": 20}}}
    d = _folder(tmp_path, doc)
    html = (d / "report.html").read_text()
    bodies = re.findall(r"<script[^>]*type=\"application/json\"[^>]*>(.*?)</script>", html, re.S)
    assert len(bodies) == 2 and all("<" not in b for b in bodies)
    data = page_data(d / "report.html")
    assert data["header"]["experiment"] == name
    assert len(data["top"]) == 2 and data["top"][0]["strategy_id"].startswith("ma_crossover_short=")


@pytest.mark.parametrize("shorts,longs,mode,rows", [
    (list(range(2, 32)), list(range(40, 80)), "virtual", 1200),        # 1,200 combinations: every row
    (list(range(2, 66)), list(range(70, 230)), "top", 1000),           # 10,240: the top 1,000 and a note
])
def test_table_modes_by_size(tmp_path, capsys, shorts, longs, mode, rows):
    text = f"""
data: {{source: synthetic, synthetic_bars: 400, seed: 9}}
risk: {{stop_loss: 0.01}}
strategies:
  ma_crossover: {{short_window: {shorts}, long_window: {longs}, ema_period: 20, momentum_spread: 0.0}}
report: {{top_k: 2, min_trades: 0}}
"""
    d = _run(tmp_path / "sweep", text, capsys)
    data = page_data(d / "report.html")
    summary = pd.read_csv(d / "summary.csv")
    t = data["table"]
    assert (t["mode"], t["total"], len(t["rows"])) == (mode, len(shorts) * len(longs), rows)
    ids = t["columns"].index("strategy_id")
    assert [r[ids] for r in t["rows"]] == list(summary["strategy_id"][:rows])
    if mode == "top":
        # each heatmap cell's best by the rank metric: here one combination per cell, so every one
        heat = data["heatmap"]["rows"]
        assert len(heat["rows"]) == len(summary)
        assert heat["rows"][0][heat["columns"].index("strategy_id")] == summary["strategy_id"][0]
    else:
        assert data["heatmap"]["rows"] is None
    assert data["heatmap"]["axes"] == {"ma_crossover": ["short_window", "long_window"]}


def test_table_columns_are_the_cells_scalar_gives_one_by_one():
    """_column's whole-column paths (floats, ints, bools) give exactly what _scalar gives each cell."""
    from engine.report.html import _column, _scalar

    frame = pd.DataFrame({"f": [0.1, np.nan, -0.0, 1 / 3, np.inf, 123456789.123], "i": [1, 2, 3, -4, 5, 2**40],
                          "b": [True, False, True, True, False, False], "s": ["a", "b", None, "c", "d", "e"],
                          "n": pd.array([1, None, 3, 4, 5, 6], dtype="Int64")})
    for name in frame.columns:
        got = _column(frame[name], name)
        assert got == [_scalar(x) for x in frame[name].tolist()]
        assert [type(v) for v in got] == [type(_scalar(x)) for x in frame[name].tolist()]
    assert _column(frame["f"], "f") == [0.1, None, 0.0, 0.3333333, None, 123456800.0]
