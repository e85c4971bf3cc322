"""The run pipeline: its stages as data, Batch's start from a sweep equal to a whole run, a report writer
that simulates nothing, and what ``report.runs`` writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine import pipeline
from engine.config import parse_config
from engine.errors import ConfigError
from engine.grid import build_grid
from engine.pipeline import STAGES, RunInputs, RunState, finish_run, run_pipeline, run_stages, stages
from engine.report.run_folder import write_run_folder
from engine.report.trades_csv import run_trades
from engine.data.synthetic import generate_candles

BARS = 3_000
DOC = {"experiment": {"name": "pipe"}, "data": {"synthetic_bars": BARS, "seed": 9},
       "risk": {"stop_loss": [0.02, 0.05]},
       "strategies": {"ma_crossover": {"short_window": [5, 10, 20], "long_window": [40, 80], "ema_period": 50}},
       "report": {"top_k": 3}}
VALIDATION = {"holdout": 0.25, "walk_forward": {"train": 600, "test": 300}, "cscv": {"blocks": 4}}


def inputs(doc: dict = DOC) -> RunInputs:
    cfg = parse_config(doc)
    return RunInputs(cfg, build_grid(cfg), generate_candles(BARS, seed=9), workers=1)


def test_the_stages_are_data_in_order():
    assert [s.name for s in STAGES] == ["sweep", "validate", "rank", "detail"]
    assert [s.name for s in stages("detail", "sweep")] == ["sweep", "detail"]  # pipeline order
    with pytest.raises(ValueError, match="no stage 'report'"):
        stages("report")


def test_a_run_started_from_its_sweep_equals_a_whole_run():
    """What Batch's reduce does (finish_run from the shards' sweep) gives the same results as a local run."""
    i = inputs({**DOC, "validation": VALIDATION})
    seen = []
    whole = run_pipeline(i, started=lambda name: seen.append(name), finished=lambda name, s: seen.append(s >= 0))
    assert seen == ["sweep", True, "validate", True, "rank", True, "detail", True]
    swept = run_stages(i, stages("sweep"))
    resumed = finish_run(i, swept.sweep)
    pd.testing.assert_frame_equal(resumed.ranked, whole.ranked)
    assert resumed.top == whole.top and len(whole.top) == 3
    # the top K, best first, one per group of identical returns
    heads = whole.ranked[whole.ranked["duplicate_of"] == whole.ranked["combination"]]
    assert list(heads["combination"][:3]) == list(whole.top)
    for g in whole.top:  # a duplicate's rows equal its head's in every metric
        dups = whole.ranked[whole.ranked["duplicate_of"] == g]
        assert (dups["sharpe"] == dups["sharpe"].iloc[0]).all()
    for g in whole.top:
        assert resumed.details[g].trades == whole.details[g].trades
        np.testing.assert_array_equal(resumed.details[g].equity, whole.details[g].equity)
    assert resumed.outcome.cscv.pbo == whole.outcome.cscv.pbo
    assert resumed.outcome.walk_forward.metrics == whole.outcome.walk_forward.metrics
    assert list(whole.summary.columns[-3:]) == ["psr", "dsr", "duplicate_of"]
    assert len(whole.view) == 2250  # the detail runs are on the in-sample bars: floor(3000 * 0.75)
    assert set(whole.timings) == {"sweep", "validate", "rank", "detail"}


def test_the_report_writer_simulates_nothing(tmp_path, monkeypatch):
    results = run_pipeline(inputs({**DOC, "validation": VALIDATION}))

    def no_simulation(*args, **kwargs):
        raise AssertionError("the report writer simulated")

    from engine import sweep
    from engine.fast import runner
    from engine.reference import engine as reference

    for module, name in ((sweep, "run_detail"), (sweep, "run_sweep"), (pipeline, "run_detail"),
                         (pipeline, "run_sweep"), (runner, "detail"), (runner, "sweep")):
        monkeypatch.setattr(module, name, no_simulation)
    monkeypatch.setattr(reference.BacktestingEngine, "run", no_simulation)
    folder = write_run_folder(tmp_path / "run", results, run_id="r")
    assert (tmp_path / "run" / "report.html").exists() and folder.manifest["best"] is not None
    assert (tmp_path / "run" / "walk_forward.csv").exists()


def _folder(tmp_path, runs: str):
    doc = {**DOC, "report": {"top_k": 2, "runs": runs}}
    results = run_pipeline(inputs(doc))
    out = tmp_path / runs
    write_run_folder(out, results, run_id=runs)
    return out, results


def test_report_runs_top_all_and_none(tmp_path):
    out, res = _folder(tmp_path, "top")
    ranked = pd.read_csv(out / "summary.csv")
    assert len(ranked) == 12  # every combination keeps its summary row
    top2 = sorted(f"{i}.json" for i in ranked["strategy_id"][:2])
    assert sorted(p.name for p in (out / "runs").iterdir()) == top2
    assert sorted(res.details) == sorted(res.top)  # only the top K were re-simulated
    assert sorted(p.name for p in (out / "trades").iterdir()) == [n.replace(".json", ".csv") for n in top2]

    out, res = _folder(tmp_path, "all")
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(f"{i}.json" for i in ranked["strategy_id"])
    # each JSON names its trades file: every combination's trades are written once, as CSV
    assert sorted(p.name for p in (out / "trades").iterdir()) == sorted(f"{i}.csv" for i in ranked["strategy_id"])
    others = [g for g in res.details if g not in res.top]
    assert len(others) == 10 and all(len(res.details[g].equity) == 0 for g in others)  # no curve kept
    doc = json.loads((out / "runs" / f"{ranked['strategy_id'][11]}.json").read_text())
    row = ranked.iloc[11]
    trades = run_trades(out / "runs" / f"{ranked['strategy_id'][11]}.json")
    assert doc["metrics"]["n_trades"] == row["n_trades"] == sum(t.exit_reason != "open" for t in trades)

    out, res = _folder(tmp_path, "none")
    assert not (out / "runs").exists() and len(list((out / "trades").iterdir())) == 2
    assert json.loads((out / "manifest.json").read_text())["runs"] == "none"


def test_report_runs_all_is_bounded():
    doc = {"strategies": {"ma_crossover": {"short_window": {"start": 1, "stop": 200}, "long_window": {
        "start": 201, "stop": 260}}}, "report": {"runs": "all"}}
    with pytest.raises(ConfigError, match="report.runs: all would write up to 12,000 files, one per combination; "
                                          "at most 10,000"):
        parse_config(doc)
    doc["report"]["runs"] = "everything"
    with pytest.raises(ConfigError, match="report.runs: 'everything'; expected one of top, all, none"):
        parse_config(doc)


def test_the_report_takes_parameter_names_from_the_sweep(tmp_path):
    """A user strategy called ma_crossover (keyed by its path) is reported with its own parameters."""
    doc = {"data": {"synthetic_bars": BARS}, "strategies": {
        "test_strategies:ShadowsABuiltin": {"window": [2, 4], "level": [1.0, 2.0]}}, "report": {"top_k": 2}}
    results = run_pipeline(inputs(doc))
    out = tmp_path / "run"
    folder = write_run_folder(out, results, run_id="r")
    doc = json.loads(next((out / "runs").iterdir()).read_text())
    assert set(doc["params"]) == {"window", "level", "flag"}
    assert folder.manifest["strategies"] == {"ma_crossover": "test_strategies:ShadowsABuiltin"}
    from engine.report.writer import swept_axes

    assert swept_axes(results) == {"ma_crossover": ["window", "level"]}


def test_run_state_is_frozen_and_each_stage_returns_a_new_one():
    i = inputs()
    empty = RunState(i)
    swept = run_stages(i, stages("sweep"), state=empty)
    assert empty.sweep is None and swept.sweep is not None and swept is not empty
    with pytest.raises(Exception):
        swept.sweep = None  # type: ignore[misc]
