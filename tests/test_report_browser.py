"""report.html in a real browser: Debian's chromium, driven by selenium through chromedriver.

The default run's report is opened from disk (file://, no server). Expected values
come from the run's own files read independently (summary.csv, runs/<id>.json), never
from the page's data. ``make test`` installs chromium and chromium-driver when it can
(as root on Debian, as CI runs); elsewhere these tests skip and say why.

``REPORT_SCREENSHOT=path.png`` also saves the screenshots there (``make screenshot``
refreshes the README's docs/report.png and docs/report-charts.png).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fakes.cli import run_cli
from fakes.universe import SMALL_UNIVERSE

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
METRICS_SHOWN = ("sharpe", "total_return", "max_drawdown", "n_trades", "final_equity")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not installed (make test installs them with apt-get when run "
                    "as root on Debian)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _only_dir(root: Path) -> Path:
    (d,) = [p for p in root.iterdir() if p.is_dir()]
    return d


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """What `make run` writes: the default config's 64 combinations on 70,080 synthetic candles."""
    from backtest_cli import main

    out = tmp_path_factory.mktemp("browser-run")
    assert main(["run", "--out", str(out), "--no-progress"]) == 0
    return _only_dir(out)


def _open(driver, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "const e = document.getElementById('equity-1'), c = document.getElementById('candles-1');"
        "return document.readyState === 'complete' && !!(e && e.data && c && c.data);"))


def _severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _column(driver, col: str) -> list:
    return driver.execute_script(
        "const th = [...document.querySelectorAll('#summary-table thead th')];"
        "const j = th.findIndex((h) => h.dataset.col === arguments[0]);"
        "const rows = document.querySelectorAll('#summary-table tbody tr[data-row]');"
        "return [...rows].map((r) => r.cells[j].textContent);",
        col)


def _labels(summary: pd.DataFrame) -> list[str]:
    """The short labels of an ma_crossover sweep over short_window and long_window, written out here."""
    return [f"ma_crossover(short={s}, long={lw})" for s, lw in zip(summary["short_window"], summary["long_window"])]


def test_default_report_in_a_real_browser(browser, default_run):
    # No network at all: the page must draw from the files beside it.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                 "downloadThroughput": -1, "uploadThroughput": -1})
    _open(browser, default_run / "report.html")
    assert _severe(browser) == []
    scripts = browser.execute_script("return [...document.scripts].map((s) => s.getAttribute('src')).filter(Boolean)")
    assert scripts == ["plotly.min.js"]
    assert browser.execute_script("return typeof Plotly") == "object"
    summary = pd.read_csv(default_run / "summary.csv")
    top_id = summary["strategy_id"][0]
    manifest = json.loads((default_run / "manifest.json").read_text())
    header = browser.find_element("id", "header").text
    for text in (manifest["run_id"], "sma_crossover_default", "BTCUSDT", "15m", "70,080",
                 manifest["data"]["fingerprint"], "0.100% per fill", "fast"):
        assert text in header, text
    # the default config's position rules (configs/default.yaml): long, all-in, a 2% stop, nothing else
    for text in ("direction\nlong", "size\n100% of equity", "stop loss\n2.00%", "take profit\nnone",
                 "trailing stop\nnone", "time limit\nnone"):
        assert text in header, text

    # The table: every one of the 64 rows, in rank order; sorting by a column reorders it.
    assert browser.execute_script("return document.querySelectorAll('#summary-table tbody tr').length") == 64
    # each row named by its short label (the swept values only); the full strategy_id is not a column
    assert _column(browser, "label") == _labels(summary)
    shown = browser.execute_script("return [...document.querySelectorAll('#summary-table thead th')]"
                                   ".map((h) => h.dataset.col)")
    assert "strategy_id" not in shown and shown[:3] == ["rank", "label", "sharpe"]
    # at 1,400 px the first screen shows more than five whole columns, the out-of-sample ones included
    whole = browser.execute_script(
        "const w = document.getElementById('summary-wrap').getBoundingClientRect();"
        "return [...document.querySelectorAll('#summary-table thead th')]"
        ".filter((h) => h.getBoundingClientRect().right <= Math.min(w.right, window.innerWidth))"
        ".map((h) => h.dataset.col);")
    assert browser.execute_script("return window.innerWidth") <= 1400
    assert len(whole) > 5 and {"oos_sharpe", "psr", "dsr"} <= set(whole), whole
    header_cell = browser.find_element("css selector", "#summary-table th[data-col='short_window']")
    header_cell.click()
    shorts = [int(v) for v in _column(browser, "short_window")]
    assert shorts == sorted(summary["short_window"]) and _column(browser, "label") != _labels(summary)
    header_cell.click()
    assert [int(v) for v in _column(browser, "short_window")] == sorted(summary["short_window"], reverse=True)
    browser.find_element("css selector", "#summary-table th[data-col='rank']").click()
    assert _column(browser, "label") == _labels(summary)
    # Filtering: 8 long windows for short_window=35.
    box = browser.find_element("id", "table-filter")
    box.send_keys("short_window=35")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda d: len(_column(d, "label")) == 8)
    assert set(_column(browser, "short_window")) == {"35"}
    box.clear()
    box.send_keys(" ")
    WebDriverWait(browser, 5).until(lambda d: len(_column(d, "label")) == 64)

    # The heatmap: drawn, 8 x 8 cells holding the summary's Sharpe ratios, every metric on hover.
    heat = browser.execute_script(
        "const g = document.getElementById('heatmap-ma_crossover'); const t = g.data[0];"
        "return {x: t.x, y: t.y, z: t.z, text: t.text, ids: t.customdata,"
        " images: g.querySelectorAll('.hm image').length};")
    assert heat["images"] >= 1
    assert heat["x"] == [str(v) for v in sorted(summary["short_window"].unique())]
    assert heat["y"] == [str(v) for v in sorted(summary["long_window"].unique())]
    for i, lw in enumerate(sorted(summary["long_window"].unique())):
        for j, sw in enumerate(sorted(summary["short_window"].unique())):
            row = summary[(summary["short_window"] == sw) & (summary["long_window"] == lw)].iloc[0]
            assert heat["z"][i][j] == pytest.approx(row["sharpe"], rel=1e-6)
            assert heat["text"][i][j].startswith(f"<b>ma_crossover(short={sw}, long={lw})</b>")
            assert heat["ids"][i][j] == row["strategy_id"]  # a click filters the table by it
            for m in ("sortino", "profit_factor", "exposure", "buy_and_hold_return"):
                assert m + ":" in heat["text"][i][j]
    # The colouring metric can be chosen.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("css selector", "#heatmaps-body select")).select_by_value("total_return")
    z = browser.execute_script("return document.getElementById('heatmap-ma_crossover').data[0].z")
    row = summary[(summary["short_window"] == 5) & (summary["long_window"] == 50)].iloc[0]
    assert z[0][0] == pytest.approx(row["total_return"], rel=1e-6)

    # The top combinations' panels are named by their short labels.
    titles = browser.execute_script("return [...document.querySelectorAll('details.combo > summary')]"
                                    ".map((s) => s.firstChild.textContent)")
    assert titles == [f"#{k + 1} {lab}" for k, lab in enumerate(_labels(summary)[:10])]
    # Durations in bars and time: the top's longest drawdown, 15 minutes a bar, in days (runs/<id>.json)
    bars = json.loads((default_run / "runs" / f"{top_id}.json").read_text())["metrics"]["max_drawdown_duration"]
    shown = browser.execute_script(
        "const d = [...document.querySelectorAll('#combo-1 .metrics div')]"
        ".find((x) => x.firstChild.textContent === 'max_drawdown_duration'); return d.lastChild.textContent;")
    assert shown == f"{bars:,} bars ({round(bars * 15 / 1440):,} d)"
    # The top combination's charts: drawn, with data.
    eq = browser.execute_script(
        "const g = document.getElementById('equity-1');"
        "const lines = [...g.querySelectorAll('.scatterlayer path.js-line')];"
        "return {names: g.data.map((t) => t.name), n: g.data[1].y.length,"
        " finite: g.data[1].y.filter(Number.isFinite).length,"
        " paths: lines.filter((p) => (p.getAttribute('d') || '').length > 100).length};")
    assert eq["names"] == ["Buy & hold", "Strategy", "Drawdown"]
    assert eq["n"] > 1000 and eq["finite"] == eq["n"] and eq["paths"] == 3
    cd = browser.execute_script(
        "const g = document.getElementById('candles-1'); const c = g.data[0];"
        "return {type: c.type, n: c.x.length, boxes: g.querySelectorAll('.boxlayer path, .trace.boxes path').length,"
        " first: [c.x[0], c.open[0], c.high[0], c.low[0], c.close[0]],"
        " last: [c.x[c.x.length - 1], c.close[c.x.length - 1]]};")
    assert cd["type"] == "candlestick" and cd["n"] > 1000 and cd["boxes"] > 0
    # The default config holds out the last 30%: the charts cover the whole series, 70,080 bars as
    # candles of 36 bars (at most 2,000), aggregated here independently; the cut at bar 49,056 is marked.
    from engine.data.synthetic import generate_candles

    cut = 70_080 * 7 // 10
    assert json.loads((default_run / "validation.json").read_text())["inputs"]["in_sample"]["bars"] == [0, cut]
    raw = generate_candles(70_080, seed=42)
    k = -(-70_080 // 2000)
    assert k == 36 and cd["n"] == -(-70_080 // k)
    assert cd["first"][0] == raw.open_time[0] and cd["last"][0] == raw.open_time[(cd["n"] - 1) * k]
    np.testing.assert_allclose(cd["first"][1:], [raw.open[0], raw.high[:k].max(), raw.low[:k].min(), raw.close[k - 1]],
                               rtol=1e-7)
    assert cd["last"][1] == pytest.approx(raw.close[-1], rel=1e-7)
    # the equity line goes on past the cut: the in-sample final equity grown by the holdout's return
    # (summary.csv's oos_total_return, from the sweep); the drawdown panel is at least the in-sample one
    ends = browser.execute_script(
        "const d = document.getElementById('equity-1').data;"
        "return [d[1].y[d[1].y.length - 1], Math.min(...d[2].y)];")
    metrics = json.loads((default_run / "runs" / f"{top_id}.json").read_text())["metrics"]
    grown = metrics["final_equity"] * (1 + summary["oos_total_return"][0])
    assert ends[0] == pytest.approx(grown, rel=1e-6)
    assert ends[1] <= -100 * metrics["max_drawdown"] * (1 - 1e-5)
    # the held-out part is shaded on both charts, from the cut's open time, and the shading is drawn
    for chart in ("equity-1", "candles-1"):
        shade = browser.execute_script(
            "const g = document.getElementById(arguments[0]);"
            "const r = g.layout.shapes.find((s) => s.type === 'rect');"
            "const drawn = [...g.querySelectorAll('.layer-below .shapelayer path')]"
            "  .filter((p) => p.getBoundingClientRect().width > 50);"
            "return {x0: r.x0, fill: r.fillcolor, drawn: drawn.length,"
            " label: [...g.querySelectorAll('.annotation-text')].map((a) => a.textContent)};", chart)
        assert shade["x0"] == raw.open_time[cut] and shade["drawn"] >= 1, (chart, shade)
        assert shade["label"] == ["out of sample (holdout) →"]
    # Trade markers sit at the exact times and prices of the JSON trade list.
    doc = json.loads((default_run / "runs" / f"{top_id}.json").read_text())
    markers = browser.execute_script(
        "const d = document.getElementById('candles-1').data;"
        "const e = d.find((t) => t.name === 'entries'), x = d.find((t) => t.name === 'exits');"
        "return [Array.from(e.x), Array.from(e.y), Array.from(x.x), Array.from(x.y)];")
    trades = doc["trades"]
    assert len(markers[0]) == len(trades) > 100
    assert markers[0][0] == trades[0]["entry_time"] and markers[1][0] == trades[0]["entry_price"]
    assert markers[0] == [t["entry_time"] for t in trades] and markers[1] == [t["entry_price"] for t in trades]
    assert markers[2] == [t["exit_time"] for t in trades] and markers[3] == [t["exit_price"] for t in trades]
    # The trade list: one row per trade, ISO UTC times.
    first = browser.execute_script(
        "const r = document.querySelector('#trades-1 tbody tr'); return [...r.cells].map((c) => c.textContent);")
    csv = pd.read_csv(default_run / "trades" / f"{top_id}.csv")
    assert first[1] == csv["entry_time"][0] and first[2] == csv["exit_time"][0]
    assert browser.execute_script("return document.querySelectorAll('#trades-1 tbody tr').length") == len(trades)
    # The log-scale toggle.
    browser.find_element("id", "log-1").click()
    assert browser.execute_script("return document.getElementById('equity-1').layout.yaxis.type") == "log"
    # Another combination draws when opened.
    browser.execute_script("document.querySelector('#combo-2 > summary').click()")
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "const g = document.getElementById('candles-2'); return !!(g && g.data);"))
    assert _severe(browser) == []
    _screenshots(browser, default_run)


def _screenshots(driver, run: Path) -> None:
    """The README's pictures: the overview (header, table, heatmap) and a combination's charts."""
    from PIL import Image

    from selenium.webdriver.support.ui import Select

    target = os.environ.get("REPORT_SCREENSHOT")
    Select(driver.find_element("css selector", "#heatmaps-body select")).select_by_value("sharpe")
    driver.find_element("id", "table-filter").clear()
    driver.set_window_size(1400, 1900)
    driver.execute_script("window.scrollTo(0, 0)")
    shots = {"report.png": run / "overview.png", "report-charts.png": run / "charts.png"}
    driver.save_screenshot(str(shots["report.png"]))
    driver.execute_script("document.getElementById('combo-2').open = false;"
                          "document.getElementById('combo-1').scrollIntoView()")
    driver.save_screenshot(str(shots["report-charts.png"]))
    for name, path in shots.items():
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        assert img.shape[0] > 1000 and img.std() > 10, name     # a drawn page, not a blank one
        if target:
            dest = Path(target).with_name(name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)


def test_virtual_scrolling_table_above_1000_rows(browser, tmp_path, capsys):
    text = """
data: {source: synthetic, synthetic_bars: 400, seed: 9}
risk: {stop_loss: [0.01]}
strategies:
  ma_crossover: {short_window: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
                 25, 26, 27, 28, 29, 30, 31], long_window: {start: 40, stop: 79}, ema_period: 20, momentum_spread: 0.0}
report: {top_k: 3}
"""
    cfg = tmp_path / "big.yaml"
    cfg.write_text(text)
    code, _, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "r", "--no-progress"], capsys)
    assert code == 0, err
    run = _only_dir(tmp_path / "r")
    summary = pd.read_csv(run / "summary.csv")
    assert len(summary) == 1200
    _open(browser, run / "report.html")
    drawn = browser.execute_script("return document.querySelectorAll('#summary-table tbody tr[data-row]').length")
    assert 0 < drawn < 200                                      # only the rows in view are in the DOM
    assert "1,200 of 1,200 rows" in browser.find_element("id", "table-count").text
    assert _column(browser, "label")[0] == _labels(summary)[0]
    browser.execute_script("const w = document.getElementById('summary-wrap'); w.scrollTop = w.scrollHeight;")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda d: _column(d, "label")[-1] == _labels(summary)[-1])
    assert _severe(browser) == []


def test_an_experiment_named_like_markup_still_draws_its_rows(browser, tmp_path, capsys):
    """'<!--<script>' in the JSON of a <script> kept the page's script from running (no rows)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("experiment: {name: '<!--<script>'}\ndata: {synthetic_bars: 600, seed: 2}\n"
                   "strategies: {ma_crossover: {short_window: [5, 8], long_window: 30, ema_period: 20}}\n")
    code, _, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "r", "--no-progress"], capsys)
    assert code == 0, err
    _open(browser, _only_dir(tmp_path / "r") / "report.html")
    assert browser.execute_script("return document.querySelectorAll('#summary-table tbody tr[data-row]').length") == 2
    assert "<!--<script>" in browser.title
    assert _severe(browser) == []


def test_validation_section(browser, tmp_path):
    """The extension point for research validation: a section drawn from the run's validation dict."""
    from engine.config import parse_config
    from engine.grid import build_grid
    from engine.pipeline import RunInputs, run_pipeline
    from engine.report.run_folder import write_run_folder
    from engine.data.synthetic import generate_candles

    cfg = parse_config({"data": {"synthetic_bars": 2000}, "report": {"top_k": 2},
                        "strategies": {"ma_crossover": {"short_window": [5, 10], "long_window": 40, "ema_period": 20}}})
    candles = generate_candles(2000, seed=42)
    validation = {"title": "Walk-forward validation", "summary": "1 of 2 folds kept a positive Sharpe ratio.",
                  "metrics": {"folds": 2}, "tables": [{"title": "Folds", "columns": ["fold", "oos_sharpe"],
                                                       "rows": [[1, 0.42], [2, -0.1]]}],
                  "charts": [{"title": "Out-of-sample Sharpe",
                              "data": [{"type": "bar", "x": [1, 2], "y": [0.42, -0.1]}],
                              "layout": {"height": 260}}]}
    out = tmp_path / "run"
    out.mkdir()
    write_run_folder(out, run_pipeline(RunInputs(cfg, build_grid(cfg), candles, workers=1)), run_id="v1",
                     validation=validation)
    _open(browser, out / "report.html")
    section = browser.find_element("id", "validation")
    assert section.is_displayed()
    assert browser.find_element("id", "validation-title").text == "Walk-forward validation"
    assert "1 of 2 folds kept a positive Sharpe ratio." in section.text
    rows = browser.execute_script(
        "const rows = document.querySelectorAll('#validation tbody tr');"
        "return [...rows].map((r) => [...r.cells].map((c) => c.textContent));")
    assert rows == [["1", "0.42"], ["2", "-0.1"]]
    assert browser.execute_script("return document.querySelector('#validation .js-plotly-plot').data[0].type") == "bar"
    assert _severe(browser) == []


def test_default_run_shows_its_validation(browser, default_run):
    """The default config validates (holdout + CSCV): the section carries the verdict, PBO and the
    charts, checked against validation.json and summary.csv read here."""
    doc = json.loads((default_run / "validation.json").read_text())
    summary = pd.read_csv(default_run / "summary.csv")
    _open(browser, default_run / "report.html")
    section = browser.find_element("id", "validation")
    assert section.is_displayed()
    assert doc["verdict"] in section.text and doc["verdict"].startswith(doc["level"] + ": ")
    assert "CSCV · PBO" in section.text and "top · DSR" in section.text
    # SR0 per bar and annualised: × √(bars in 365 days of 15-minute bars) = × √35,040
    sr0 = doc["deflated_sharpe"]["SR0"]
    assert f"DSR · SR0\n{sr0:#.3g} per bar ({sr0 * 35_040 ** 0.5:#.3g} annualised)" in section.text
    # the verdict leads the page: a coloured banner above the header, with its level
    banner = browser.find_element("id", "verdict")
    assert banner.is_displayed() and banner.text.startswith(doc["level"].upper())
    header = browser.find_element("id", "header")
    assert banner.location["y"] < header.location["y"] and banner.location["y"] < 100
    colour = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", banner)
    assert colour == {"fails": "rgb(176, 58, 46)", "weak": "rgb(185, 119, 14)",
                      "promising": "rgb(30, 132, 73)"}[doc["level"]]
    titles = [h.text for h in section.find_elements("css selector", "h3")]
    assert any(t.startswith("λ over 12,870 CSCV splits") for t in titles), titles
    plots = browser.execute_script(
        "return [...document.querySelectorAll('#validation .js-plotly-plot')].map((p) => p.data[0]);")
    hist, is_oos, holdout = plots[0], plots[1], plots[2]
    assert sum(hist["y"]) == doc["inputs"]["cscv"]["splits"] == 12_870
    # bars at or below λ = 0 are red: their heights add up to PBO's share of the splits
    red = sum(y for y, c in zip(hist["y"], hist["marker"]["color"]) if c == "#c0392b")
    assert abs(red / 12_870 - doc["pbo"]["pbo"]) <= max(hist["y"]) / 12_870  # one bin may straddle 0
    assert len(is_oos["x"]) >= 1000
    both = summary[["sharpe", "oos_sharpe"]].dropna()
    assert len(holdout["x"]) == len(both) == 64
    np.testing.assert_allclose(sorted(holdout["y"]), sorted(both["oos_sharpe"]), rtol=1e-5)  # 6 significant digits
    assert _severe(browser) == []



def test_universe_report_heatmap_and_series_selector(browser, tmp_path):
    """A universe run's report: the heatmap holds M of every (top combination, series) pair as
    summary_by_series.csv has it, the selector redraws the equity of the chosen series, and the
    validation part lists every series and one λ per split."""
    from backtest_cli import main
    from selenium.webdriver.support.ui import Select

    cfg = tmp_path / "u.yaml"
    cfg.write_text(SMALL_UNIVERSE)
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-progress", "--run-id", "u"]) == 0
    run = tmp_path / "out" / "u"
    browser.get((run / "report.html").resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert _severe(browser) == []
    by_series = pd.read_csv(run / "summary_by_series.csv")
    cells = browser.execute_script("return [...document.querySelectorAll('#heatmap rect.cell')].map((r) => "
                                   "[r.dataset.combination, r.dataset.series, r.dataset.value])")
    assert len(cells) == 4 * 4
    for sid, key, value in cells:
        symbol, interval = key.split("/")
        row = by_series[(by_series.strategy_id == sid) & (by_series.symbol == symbol) & (by_series.interval == interval)]
        assert float(value) == pytest.approx(float(row["sharpe"].iloc[0]), rel=1e-5)
    ranking = pd.read_csv(run / "summary.csv")
    first_row = browser.execute_script("return [...document.querySelectorAll('#table tr')][1].cells[1].textContent")
    assert first_row == _labels(ranking)[0]
    select = Select(browser.find_element("id", "series-select"))
    assert [o.text for o in select.options] == ["BNBUSDT/15m", "BTCUSDT/15m", "ETHUSDT/15m", "SOLUSDT/15m"]
    shown = lambda: browser.execute_script(  # noqa: E731
        "const s = document.getElementById('equity-chart'); return [s.dataset.series, "
        "[...s.querySelectorAll('polyline.curve')].map((p) => p.getAttribute('points'))]")
    before = shown()
    select.select_by_visible_text("SOLUSDT/15m")
    after = shown()
    assert before[0] == "BNBUSDT/15m" and after[0] == "SOLUSDT/15m"
    assert len(after[1]) == 2 and after[1] != before[1]
    rows = browser.execute_script("return [...document.querySelectorAll('#validation-series tr')].slice(1)"
                                  ".map((r) => r.cells[0].textContent)")
    assert rows == ["BNBUSDT/15m", "BTCUSDT/15m", "ETHUSDT/15m", "SOLUSDT/15m"]
    bins = browser.execute_script("return [...document.querySelectorAll('#lambda-hist rect.bin')]"
                                  ".map((r) => +r.dataset.count)")
    assert sum(bins) == 6  # C(4, 2) splits
    dots = browser.execute_script("return document.querySelectorAll('#strip circle.dot').length")
    assert dots == 2 * 4  # top K = 2, each on 4 series


PERP_RUN = """
experiment: {name: perp_browser}
data: {source: synthetic, market: um, symbol: BTCUSDT, synthetic_bars: 3000, seed: 11}
execution: {commission: 0.0005, slippage: 0.0002, fill: next_open}
portfolio: {capital: 10000, direction: both, size: 1.0, leverage: 50}
strategies:
  ma_crossover: {short_window: 10, long_window: 50, ema_period: 100}
report: {top_k: 1, min_trades: 0}
"""


def test_perp_report_draws_liquidation_markers_and_the_funding_paid(browser, tmp_path, capsys):
    """A 50x perp run: the candles chart marks each liquidation at its exit price, and the funding paid
    line climbs by what each trade paid (−funding received), as the run's trades file says."""
    cfg = tmp_path / "perp.yaml"
    cfg.write_text(PERP_RUN)
    code, _, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out", "--no-progress", "--run-id", "p"],
                           capsys)
    assert code == 0, err
    run = tmp_path / "out" / "p"
    (trades_file,) = list((run / "trades").iterdir())
    trades = pd.read_csv(trades_file)
    liq = trades.loc[trades["exit_reason"] == "liquidation"]
    assert len(liq) >= 1 and trades["funding"].abs().sum() > 0
    _open(browser, run / "report.html")
    assert _severe(browser) == []
    chart = browser.execute_script(
        "const g = document.getElementById('candles-1');"
        "const named = (n) => g.data.find((t) => t.name === n) || null;"
        "const l = named('liquidations'), f = g.data.find((t) => (t.name || '').startsWith('funding paid'));"
        "const layers = [...g.querySelectorAll('.scatterlayer .trace')];"
        "return {liq_y: l && l.y, funding_y: f && f.y, axis: g.layout.yaxis2 && g.layout.yaxis2.title.text,"
        "        points: layers.map((t) => t.querySelectorAll('path.point').length),"
        "        lines: layers.map((t) => t.querySelectorAll('path.js-line').length)};")
    assert chart["liq_y"] == pytest.approx(list(liq["exit_price"]), rel=1e-9)
    # the page carries the funding as float32: 7 significant digits
    assert chart["funding_y"] == pytest.approx(list(-trades["funding"].cumsum()), rel=1e-6, abs=1e-6)
    assert chart["axis"] == "Funding paid"
    # drawn, not only data: the liquidations trace (third scatter: entries, exits, liquidations, funding)
    # has one marker per liquidation, and the funding trace a line
    assert chart["points"][2] == len(liq) and chart["lines"][3] == 1
    header = browser.find_element("id", "header").text
    assert "50" in header and "mark price" in header


def test_universe_perp_report_names_leverage_brackets_and_basis_per_series(browser, tmp_path):
    """A perp universe's report header, as a single perp run's: the swept leverage, the margin mode,
    funding on, and for each series its liquidation basis and its brackets (here the config's own)."""
    from backtest_cli import main

    cfg = tmp_path / "u.yaml"
    cfg.write_text("""
experiment: {name: perp_universe_browser}
data: {source: synthetic, market: um, symbols: [BTCUSDT, ETHUSDT], intervals: [15m], synthetic_bars: 2000, seed: 5}
portfolio: {direction: both, size: 0.5, leverage: [3, 50]}
perp: {brackets: [{max_notional: 50000, mmr: 0.004, cum: 0}, {max_notional: 500000, mmr: 0.005, cum: 50}]}
strategies:
  ma_crossover: {short_window: [10, 20], long_window: 50}
report: {top_k: 1}
""")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-progress", "--run-id", "u"]) == 0
    browser.get((tmp_path / "out" / "u" / "report.html").resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert _severe(browser) == []
    text = browser.execute_script("return document.querySelector('#perp p').textContent")
    assert text == "Perpetual futures (USDⓈ-M): leverage 3×, 50×; isolated margin; funding on"
    rows = browser.execute_script("return [...document.querySelectorAll('#perp-series tr')].slice(1)"
                                  ".map((r) => [...r.cells].map((c) => c.textContent))")
    assert rows == [[key, "mark price", "2 (perp.brackets)", "≤ 50000: mmr 0.004, cum 0"]
                    for key in ("BTCUSDT/15m", "ETHUSDT/15m")]
