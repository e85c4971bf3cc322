"""The runs of a results folder: results/index.html, `backtest runs` and `backtest compare`.

Three runs share one results folder: one reduced by AWS Batch (submit, two shards and
reduce against a moto server, then `backtest results`) and two local runs of the same
config, the second with another time range. Expected values come from each run's own
summary.csv read here with pandas/NumPy.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data.dataset import upsert_candles
from fakes.cli import run_cli
from fakes.moto_server import aws, moto_aws  # noqa: F401  (fixtures)

CONFIG = """\
experiment: {{name: {name}}}
data:
  source: "s3://{bucket}/candles/"
  symbol: BTCUSDT
  interval: 15m
  start: "2023-01-10"
  end: "2023-03-01"
risk: {{stop_loss: [0.02, 0.05]}}
strategies:
  ma_crossover: {{short_window: [5, 10, 20], long_window: [30, 60], ema_period: 50}}
report: {{top_k: 2, rank_by: total_return}}
"""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "a":
            self.links.append(dict(attrs)["href"])


def _links(path: Path) -> list[str]:
    parser = _Links()
    parser.feed(path.read_text())
    return parser.links


@pytest.fixture
def three_runs(aws, tmp_path, capsys):
    from engine.data.synthetic import generate_candles

    bucket = aws.new_bucket()
    upsert_candles(f"s3://{bucket}/candles/", "BTCUSDT", "15m", generate_candles(8_000, seed=5).to_frame())
    res = aws.batch_resources(bucket)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(CONFIG.format(bucket=bucket, name="index_demo"))
    results = tmp_path / "results"

    code, out, err = run_cli(["submit", "--config", cfg, "--array-size", 2, "--bucket", bucket,
                              "--job-queue", res.job_queue, "--job-definition", res.job_definition], capsys)
    assert code == 0, err
    batch_id = re.search(r"^run: (\S+)$", out, re.M).group(1)
    assert batch_id.startswith("index_demo-")
    for i in range(2):  # the array children (moto runs no containers)
        code, _, err = run_cli(["batch", "shard", "--run-id", batch_id, "--bucket", bucket, "--array-size", 2,
                                "--index", i], capsys)
        assert code == 0, err
    code, _, err = run_cli(["batch", "reduce", "--run-id", batch_id, "--bucket", bucket, "--array-size", 2], capsys)
    assert code == 0, err
    code, out, err = run_cli(["results", batch_id, "--bucket", bucket, "--out", results], capsys)
    assert code == 0, err

    code, out, err = run_cli(["run", "--config", cfg, "--out", results, "--no-progress"], capsys)
    assert code == 0, err
    local_id = Path(re.search(r"^results: (.+)$", out, re.M).group(1)).name
    code, out, err = run_cli(["run", "--config", cfg, "--out", results, "--no-progress", "--start", "2023-02-01"],
                             capsys)
    assert code == 0, err
    later_id = Path(re.search(r"^results: (.+)$", out, re.M).group(1)).name
    return results, batch_id, local_id, later_id


def test_index_runs_and_compare(three_runs, capsys):
    results, batch_id, local_id, later_id = three_runs
    ids = [batch_id, local_id, later_id]
    assert len(set(ids)) == 3 and all(i.startswith("index_demo-") for i in ids)

    # index.html links every run's report, and every link opens a file.
    links = _links(results / "index.html")
    assert sorted(links) == sorted(f"{i}/report.html" for i in ids)
    assert all((results / link).is_file() for link in links)
    index = (results / "index.html").read_text()
    assert index.count("· Batch") == 1

    # backtest runs: one line per run, newest first (as index.html), with its size, then its data and best
    # combination (short: its swept values) beneath; every line fits in 120 columns.
    code, out, err = run_cli(["runs", "--out", results], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert all(len(line) <= 120 for line in lines)
    assert lines[0].split() == ["id", "verdict", "combinations", "created", "(UTC)"]
    at = [i for i, line in enumerate(lines) if line.startswith("index_demo-")]
    rows = [lines[i] for i in at]
    assert [r.split()[0] for r in rows] == ids[::-1]
    assert all(r.split()[1:3] == ["—", "12"] for r in rows)  # not validated: no verdict; 12 combinations
    for i, run_id in zip(at, ids[::-1]):
        summary = pd.read_csv(results / run_id / "summary.csv")
        best = summary.loc[summary["rank"] == 1].iloc[0]
        assert lines[i + 1].startswith("    data: BTCUSDT 15m ")
        # CONFIG sweeps short_window, long_window and stop_loss
        short = f"ma_crossover(short={best['short_window']}, long={best['long_window']}, sl={best['stop_loss']:g})"
        assert lines[i + 2] == f"    best: {short} (total_return {best['total_return']:.4g})"
    assert "2023-01-10 → 2023-02-28" in lines[at[1] + 1] and "2023-02-01 → 2023-02-28" in lines[at[0] + 1]
    assert lines[-1].startswith("3 run(s)")

    # compare: the Batch run and the local run of the same config moved nothing.
    code, out, err = run_cli(["compare", batch_id, local_id, "--out", results], capsys)
    assert code == 0, err
    assert "config (A → B):\n  identical" in out and "identical candles (same fingerprint)" in out
    sharpe = next(line for line in out.splitlines() if line.startswith("sharpe "))
    assert sharpe.split()[4] == "same"

    # compare by unique prefix: the later range changes the config and the data; medians from the summaries.
    code, out, err = run_cli(["compare", local_id, later_id[:-2], "--out", results], capsys)
    assert code == 0, err
    assert re.search(r"^  data\.start\s+2023-01-10 → 2023-02-01$", out, re.M), out
    assert re.search(r"^  first_open_time\s+2023-01-10 00:00:00 → 2023-02-01 00:00:00$", out, re.M), out
    a = pd.read_csv(results / local_id / "summary.csv")
    b = pd.read_csv(results / later_id / "summary.csv")
    def number(cell: str) -> float:
        return float(cell.replace(",", ""))

    for metric, sense in (("sharpe", max), ("total_return", max), ("max_drawdown", min), ("n_trades", max),
                          ("final_equity", max)):
        line, spread = [x for x in out.splitlines() if x.startswith(metric + " ")]
        assert len(line) <= 120 and len(spread) <= 120
        cells = line.split()
        ma, mb = np.median(a[metric].dropna()), np.median(b[metric].dropna())
        assert number(cells[1]) == pytest.approx(ma, rel=1e-3, abs=0.5 if abs(ma) >= 1000 else 0)
        assert number(cells[2]) == pytest.approx(mb, rel=1e-3, abs=0.5 if abs(mb) >= 1000 else 0)
        assert number(cells[3]) == pytest.approx(mb - ma, rel=1e-3, abs=0.5 if abs(mb - ma) >= 1000 else 0)
        expected = {"n_trades": "higher" if mb > ma else "lower"}.get(metric)
        if expected is None:
            better = (mb > ma) if sense is max else (mb < ma)
            expected = "better" if better else "worse"
        assert cells[4] == expected, line
        assert number(spread.split()[-2]) == pytest.approx(sense(a[metric]), rel=1e-3, abs=0.5)


def test_compare_and_runs_user_errors(tmp_path, capsys):
    code, out, _ = run_cli(["runs", "--out", tmp_path / "none"], capsys)
    assert code == 0 and "no runs under" in out
    for d in ("exp-20250101-000000-aaaaaa", "exp-20250101-000000-aaaaab"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "manifest.json").write_text('{"run_id": "%s"}' % d)
    code, _, err = run_cli(["compare", "missing", "exp-2025", "--out", tmp_path], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "run 'missing': no run folder" in err
    code, _, err = run_cli(["compare", "exp-2025", "exp-2025", "--out", tmp_path], capsys)
    assert code == 2 and "ambiguous" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["compare", "exp-20250101-000000-aaaaaa", "exp-20250101-000000-aaaaab", "--out", tmp_path],
                           capsys)
    assert code == 2 and "not a complete run folder (config.yaml is missing)" in err


def test_two_runs_at_once_both_reach_the_index(tmp_path):
    """Each run regenerates index.html under a lock on the results folder: neither overwrites the other's line."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    cfg = tmp_path / "c.yaml"
    cfg.write_text("experiment: {name: twin}\ndata: {source: synthetic, synthetic_bars: 3000, seed: 1}\n"
                   "strategies: {ma_crossover: {short_window: [5, 10], long_window: 40, ema_period: 20}}\n")
    procs = [subprocess.Popen([sys.executable, "-m", "backtest_cli", "run", "--config", str(cfg), "--out",
                               str(tmp_path / "results"), "--no-progress"], cwd=repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    runs = sorted(p.name for p in (tmp_path / "results").iterdir() if p.is_dir())
    assert len(runs) == 2 and all(r.startswith("twin-") for r in runs)
    assert sorted(_links(tmp_path / "results" / "index.html")) == [f"{r}/report.html" for r in runs]
    assert [p.name for p in (tmp_path / "results").iterdir() if p.is_file()] == ["index.html"]  # no temp file left
