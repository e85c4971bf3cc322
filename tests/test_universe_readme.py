"""The README's "Universe sweeps" commands run exactly as written: the offline synthetic universe, and a
dataset built from the sample files and swept over two intervals; a missing series is one line, exit 2."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd
from fakes.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _commands(needle: str) -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Universe sweeps"):text.index("\n## Strategies")]
    (block,) = [b for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S) if needle in b]
    return [shlex.split(line)[1:] for line in block.strip().splitlines() if line.startswith("backtest ")]


def _workspace(tmp_path: Path, monkeypatch) -> None:
    for name in ("samples", "configs"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)


def _only_run(results: Path) -> Path:
    (run,) = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run


def test_readme_synthetic_universe_runs_as_written(tmp_path, monkeypatch, capsys):
    _workspace(tmp_path, monkeypatch)
    (cmd,) = _commands("configs/universe.yaml")
    code, out, err = run_cli(cmd + ["--no-progress"], capsys)
    assert code == 0, err
    assert "by median sharpe over 4 series" in out and "cross-sectional PBO" in out
    run = _only_run(tmp_path / "results")
    by_series = pd.read_csv(run / "summary_by_series.csv")
    assert len(by_series) == 4 * 6
    doc = json.loads((run / "validation.json").read_text())
    assert len(doc["cross_series"]["splits"]) == 6


def test_readme_dataset_universe_runs_as_written(tmp_path, monkeypatch, capsys):
    _workspace(tmp_path, monkeypatch)
    cmds = _commands("data build")
    assert [c[0] for c in cmds] == ["data", "data", "data", "run"]
    for cmd in cmds[:3]:
        code, out, err = run_cli(cmd, capsys)
        assert code == 0, err
    assert "BTCUSDT 5m" in out and "BTCUSDT 15m" in out
    code, out, err = run_cli(cmds[3] + ["--no-progress"], capsys)
    assert code == 0, err
    by_series = pd.read_csv(_only_run(tmp_path / "results") / "summary_by_series.csv")
    assert sorted(set(by_series["interval"])) == ["15m", "5m"]
    assert "BTCUSDT 5m" in err and "BTCUSDT 15m" in err

    code, out, err = run_cli(["run", "--data", "data", "--symbols", "BTCUSDT,ETHUSDT", "--intervals", "15m",
                              "--out", "other"], capsys)
    assert code == 2 and "no series ETHUSDT/15m" in err and len(err.strip().splitlines()) == 1, err
    assert not Path("other").exists() or not any(Path("other").iterdir())
