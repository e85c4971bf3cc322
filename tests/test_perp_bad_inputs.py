"""Every bad perp input reaching `backtest run` / `validate-config` (in-process, the console
script's main): exit 2, one line naming the problem, before any work (nothing under --out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.cli import run_cli

BASE = """
experiment: {name: perp_bad}
data: {source: synthetic, market: um, synthetic_bars: 800, seed: 3}
strategies:
  ma_crossover: {short_window: 5, long_window: 30, ema_period: 50}
report: {top_k: 1}
"""
SAMPLE = next(Path(__file__).resolve().parent.parent.joinpath("samples").glob("BTCUSDT-15m-*.csv.gz"))

CASES = {
    "leverage below 1": ("portfolio: {leverage: [1, 0.5]}", "portfolio.leverage"),
    "leverage above 125": ("portfolio: {leverage: 126}", "portfolio.leverage"),
    "cross margin": ("perp: {margin: cross}", "perp.margin: cross is not supported"),
    "brackets not increasing": ("perp: {brackets: [{max_notional: 1000, mmr: 0.01, cum: 0}, "
                                "{max_notional: 500, mmr: 0.02, cum: 10}]}", "brackets must be increasing"),
    "negative mmr": ("perp: {brackets: [{max_notional: 1000, mmr: -0.01, cum: 0}]}", "perp.brackets[0].mmr"),
    "bracket missing a key": ("perp: {brackets: [{max_notional: 1000, mmr: 0.01}]}", "perp.brackets[0]"),
    "unknown liquidation basis": ("perp: {liquidation_price: index}", "perp.liquidation_price"),
}


def _write(tmp_path: Path, extra: str, base: str = BASE) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(base + extra + "\n")
    return cfg


def _refused(code: int, err: str, needle: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("extra,needle", list(CASES.values()), ids=list(CASES))
def test_bad_perp_config(tmp_path, capsys, extra, needle):
    cfg = _write(tmp_path, extra)
    code, _, err = run_cli(["validate-config", cfg], capsys)
    _refused(code, err, needle)
    out = tmp_path / "out"
    code, _, err = run_cli(["run", "--config", cfg, "--out", out, "--no-progress"], capsys)
    _refused(code, err, needle)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("base,extra,needle", [
    # a spot candle file (no mark klines, no funding) run as a perp
    (BASE.replace("source: synthetic", f"source: {SAMPLE}"), "", "holds spot candles"),
    # a symbol without committed brackets and none given
    (BASE.replace("market: um", "market: um, symbol: DOGEUSDT"), "", "perp.brackets: missing"),
    # leverage and a perp section belong to market um
    (BASE.replace("market: um", "market: spot"), "portfolio: {leverage: 3}", "portfolio.leverage"),
    (BASE.replace("market: um", "market: spot"), "perp: {funding: false}", "needs data.market: um"),
], ids=["spot data as um", "no brackets for symbol", "leverage under spot", "perp section under spot"])
def test_bad_perp_run(tmp_path, capsys, base, extra, needle):
    out = tmp_path / "out"
    code, _, err = run_cli(["run", "--config", _write(tmp_path, extra, base), "--out", out, "--no-progress"],
                           capsys)
    _refused(code, err, needle)
    assert not out.exists() or not any(out.iterdir())


def test_funding_gap_refused_before_work_and_funding_false_runs(tmp_path):
    """A funding table with a gap of more than 2 intervals is refused before the sweep; with
    perp.funding: false the same data runs (without funding)."""
    import dataclasses

    from engine.config import parse_config
    from engine.data.source import load_data
    from engine.errors import DataError
    from engine.perp.inputs import check_perp_run

    cfg = parse_config({"data": {"market": "um", "synthetic_bars": 800, "seed": 3},
                        "strategies": {"ma_crossover": {}}})
    candles = load_data(cfg.data)
    p = candles.perp
    keep = (p.funding_time < p.funding_time[3]) | (p.funding_time > p.funding_time[6])
    holed = dataclasses.replace(candles, perp=dataclasses.replace(
        p, funding_time=p.funding_time[keep], funding_rate=p.funding_rate[keep], funding_mark=p.funding_mark[keep],
        interval_hours=p.interval_hours[keep]))
    check_perp_run(cfg.perp, candles)
    with pytest.raises(DataError, match="does not cover the run.*perp.funding: false"):
        check_perp_run(cfg.perp, holed)
    check_perp_run(dataclasses.replace(cfg.perp, funding=False), holed)
