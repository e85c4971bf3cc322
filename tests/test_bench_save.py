"""`make bench` prints its figures and rewrites the committed bench/results.json only with SAVE=1 (--save)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import bench.run as bench_run

REPO = Path(__file__).resolve().parent.parent


def test_results_are_written_only_with_save(tmp_path, monkeypatch, capsys):
    target = tmp_path / "results.json"
    monkeypatch.setattr(bench_run, "RESULTS", target)
    # the cases themselves are what `make bench` times: none of them runs here, validation's included
    monkeypatch.setattr(bench_run, "CASES", [])
    monkeypatch.setattr(bench_run.validation, "CASES", [])
    assert bench_run.main([]) == 0
    assert not target.exists() and "SAVE=1" in capsys.readouterr().out
    assert bench_run.main(["--save"]) == 0
    saved = json.loads(target.read_text())
    assert saved["cases"] == [] and saved["validation"] == []
    # the figures name the machine they were taken on
    assert saved["machine"]["cpu_model"] and isinstance(saved["machine"]["cpu_flags"], str)


def test_make_passes_save_through():
    def recipe(*args: str) -> str:
        done = subprocess.run(["make", "-n", "bench", *args], cwd=REPO, capture_output=True, text=True, check=True)
        return next(line for line in done.stdout.splitlines() if "bench.run" in line)

    assert recipe().split()[-1] == "bench.run"
    assert recipe("SAVE=1").split()[-1] == "--save"
