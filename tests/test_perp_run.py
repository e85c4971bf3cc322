"""A perp sweep end to end through `backtest run` (in-process): validation works unchanged, the
report's header carries the perp card, trades carry funding and leverage, the summary the perp
metrics; with perp.funding: false the header says funding is off and no trade has funding."""

from __future__ import annotations

import csv
import json
import re

from fakes.cli import run_cli

CFG = """
experiment: {name: perp_e2e}
data: {source: synthetic, market: um, symbol: BTCUSDT, synthetic_bars: 3000, seed: 11}
execution: {commission: 0.0005, slippage: 0.0002, fill: next_open}
portfolio: {capital: 10000, direction: both, size: 1.0, leverage: [2, 50]}
strategies:
  ma_crossover: {short_window: 10, long_window: 50, ema_period: 100}
report: {top_k: 2, min_trades: 0}
validation: {holdout: 0.3}
"""


def _run(tmp_path, capsys, text):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out", "--no-progress",
                              "--run-id", "r"], capsys)
    assert code == 0, err
    return tmp_path / "out" / "r"


def _header(run):
    html = (run / "report.html").read_text()
    m = re.search(r'"perp":(\{.*?\}|null),"portfolio"', html) or re.search(r'"perp":(\{[^{}]*(\[[^\]]*\])?[^{}]*\})',
                                                                          html)
    assert m, "no perp header"
    return m.group(1)


def test_perp_run_end_to_end(tmp_path, capsys):
    run = _run(tmp_path, capsys, CFG)
    with open(run / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(float(r["leverage"]) for r in rows) == [2.0, 50.0]
    assert all("total_funding" in r and "n_liquidations" in r and "oos_sharpe" in r for r in rows)
    hi = next(r for r in rows if float(r["leverage"]) == 50.0)
    assert int(hi["n_liquidations"]) >= 1  # 50x on a volatile synthetic series: wicks liquidate
    (trades,) = [p for p in (run / "trades").iterdir() if "lev=50" in p.name]  # the id: leverage under its short name
    with open(trades) as f:
        tr = list(csv.DictReader(f))
    assert {"funding", "leverage"} <= set(tr[0])
    assert any(t["exit_reason"] == "liquidation" for t in tr)
    liq = next(t for t in tr if t["exit_reason"] == "liquidation")
    assert float(liq["return"]) == -1.0
    head = _header(run)
    assert '"liquidation_price":"mark"' in head and '"funding":true' in head and '"leverage":[2.0,50.0]' in head
    assert '"max_notional":50000.0' in head  # BTCUSDT's committed first bracket
    assert json.loads((run / "manifest.json").read_text())


def test_funding_off_is_said_in_the_header(tmp_path, capsys):
    run = _run(tmp_path, capsys, CFG.replace("report:", "perp: {funding: false, liquidation_price: last}\nreport:"))
    head = _header(run)
    assert '"funding":false' in head and '"liquidation_price":"last"' in head
    for p in (run / "trades").iterdir():
        with open(p) as f:
            assert all(float(t["funding"]) == 0.0 for t in csv.DictReader(f))
