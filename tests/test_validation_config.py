"""The `validation` config section, window planning, and the checks against the data.

Expected bar counts and windows are worked out by hand in each test.
"""

from __future__ import annotations

import numpy as np
import pytest

from backtest_cli import main
from engine.config import Span, parse_config
from engine.errors import ConfigError
from engine.validation.plan import resolve
from engine.validation.windows import Fold, Window, holdout_cut, plan_folds

MA = {"ma_crossover": {"short_window": [5], "long_window": [20]}}
M15 = 900_000


def with_validation(v, **extra) -> dict:
    doc = {"strategies": MA, "validation": v}
    doc.update(extra)
    return doc


def rejects(doc, *fragments):
    with pytest.raises(ConfigError) as exc:
        parse_config(doc)
    msg = str(exc.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


def parse_validation(v):
    return parse_config(with_validation(v)).validation


def rejects_on_data(v, n, *fragments, interval_ms=M15):
    cfg = parse_validation(v)
    with pytest.raises(ConfigError) as exc:
        resolve(cfg, n, interval_ms)
    msg = str(exc.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"


# --- parsing ----------------------------------------------------------------------------------------


def test_absent_or_null_section_is_none_and_changes_nothing():
    plain = parse_config({"strategies": MA})
    assert plain.validation is None
    assert parse_config({"strategies": MA, "validation": None}).validation is None


def test_full_section():
    cfg = parse_config(with_validation({
        "holdout": 0.3,
        "walk_forward": {"train": "90d", "test": "30d", "anchored": True},
        "cscv": {"blocks": 8},
        "trials": 500,
    })).validation
    assert cfg.holdout == 0.3 and cfg.trials == 500 and cfg.cscv.blocks == 8
    wf = cfg.walk_forward
    assert wf.anchored is True
    assert wf.train == Span("90d", ms=90 * 86_400_000)
    assert wf.step == wf.test == Span("30d", ms=30 * 86_400_000)  # step defaults to test


def test_defaults():
    cfg = parse_config(with_validation({"cscv": {}, "walk_forward": {"train": 400, "test": 100, "step": 150}}))
    v = cfg.validation
    assert v.cscv.blocks == 16 and v.holdout is None and v.trials is None
    assert v.walk_forward.train == Span("400 bars", bars=400) and v.walk_forward.step.bars == 150
    assert v.walk_forward.anchored is False
    assert parse_config(with_validation({})).validation is not None  # PSR and DSR only


@pytest.mark.parametrize("v, needle", [
    (5, "validation: expected a mapping"),
    ({"holdouts": 0.3}, "validation.holdouts: unknown key"),
    ({"holdout": 0}, "validation.holdout: 0 is out of range"),
    ({"holdout": 1}, "validation.holdout: 1 is out of range"),
    ({"holdout": 1.5}, "validation.holdout: 1.5 is out of range"),
    ({"holdout": -0.1}, "validation.holdout: -0.1 is out of range"),
    ({"holdout": "0.3"}, "validation.holdout: expected a number"),
    ({"holdout": True}, "validation.holdout: expected a number"),
    ({"cscv": {"blocks": 5}}, "validation.cscv.blocks: 5 is odd"),
    ({"cscv": {"blocks": 2}}, "validation.cscv.blocks: 2 is out of range"),
    ({"cscv": {"blocks": 34}}, "validation.cscv.blocks: 34 is out of range"),
    ({"cscv": {"blocks": 7.5}}, "validation.cscv.blocks: expected an integer"),
    ({"cscv": {"blocks": "16"}}, "validation.cscv.blocks: expected an integer"),
    ({"cscv": {"block": 16}}, "validation.cscv.block: unknown key"),
    ({"cscv": 16}, "validation.cscv: expected a mapping"),
    ({"walk_forward": {"test": "30d"}}, "validation.walk_forward.train: missing"),
    ({"walk_forward": {"train": "90d"}}, "validation.walk_forward.test: missing"),
    ({"walk_forward": {"train": "90x", "test": "30d"}}, "validation.walk_forward.train: '90x' is not a duration"),
    ({"walk_forward": {"train": "0d", "test": "30d"}}, "validation.walk_forward.train: '0d' is not a duration"),
    ({"walk_forward": {"train": "3M", "test": "30d"}}, "validation.walk_forward.train: '3M' is not a duration"),
    ({"walk_forward": {"train": 0, "test": 10}}, "validation.walk_forward.train: 0 is out of range"),
    ({"walk_forward": {"train": 100, "test": 10.5}}, "validation.walk_forward.test: expected an integer"),
    ({"walk_forward": {"train": "90d", "test": "30d", "anchored": "yes"}}, "validation.walk_forward.anchored"),
    ({"walk_forward": {"train": "90d", "test": "30d", "size": 3}}, "validation.walk_forward.size: unknown key"),
    ({"walk_forward": {"train": "90d", "test": "30d", "step": "10d"}}, "validation.walk_forward.step: 10d is shorter"),
    ({"walk_forward": {"train": 500, "test": 100, "step": 99}}, "validation.walk_forward.step: 99 bars is shorter"),
    ({"walk_forward": "90d"}, "validation.walk_forward: expected a mapping"),
    ({"trials": 1}, "validation.trials: 1 is out of range"),
    ({"trials": 2.5}, "validation.trials: expected an integer"),
    ({"trials": 10**13}, "validation.trials: 10000000000000 is out of range"),
])
def test_bad_values_name_the_key(v, needle):
    rejects(with_validation(v), needle)


def test_rank_by_psr_and_dsr():
    assert parse_config(with_validation({}, report={"rank_by": "psr"})).report.rank_by == "psr"
    assert parse_config(with_validation({"cscv": {}}, report={"rank_by": "dsr"})).report.rank_by == "dsr"
    rejects({"strategies": MA, "report": {"rank_by": "dsr"}}, "report.rank_by: dsr needs a validation section")
    rejects({"strategies": MA, "report": {"rank_by": "pbo"}}, "report.rank_by: 'pbo'", "psr, dsr")


# --- windows ------------------------------------------------------------------------------------------


def test_holdout_cut_is_exact():
    assert holdout_cut(100, 0.3) == 70  # 100 * 0.7; the binary double of 0.7 would give 69
    assert holdout_cut(10, 0.25) == 7  # floor(7.5)
    assert holdout_cut(40_000, 0.3) == 28_000
    assert holdout_cut(7, 0.5) == 3  # floor(3.5)
    assert holdout_cut(3, 0.1) == 2  # floor(2.7)


def test_rolling_folds_by_hand():
    assert plan_folds(100, 40, 20, 20) == (
        Fold(0, Window(0, 40), Window(40, 60)),
        Fold(1, Window(20, 60), Window(60, 80)),
        Fold(2, Window(40, 80), Window(80, 100)),
    )


def test_last_test_window_cut_at_the_end():
    folds = plan_folds(105, 40, 20, 20)
    assert len(folds) == 4 and folds[-1] == Fold(3, Window(60, 100), Window(100, 105))


def test_fold_with_one_test_bar_is_dropped():
    folds = plan_folds(101, 40, 20, 20)
    assert len(folds) == 3 and folds[-1].test == Window(80, 100)
    folds = plan_folds(102, 40, 20, 20)
    assert len(folds) == 4 and folds[-1].test == Window(100, 102)  # two bars are enough


def test_anchored_folds_by_hand():
    assert plan_folds(100, 40, 20, 20, anchored=True) == (
        Fold(0, Window(0, 40), Window(40, 60)),
        Fold(1, Window(0, 60), Window(60, 80)),
        Fold(2, Window(0, 80), Window(80, 100)),
    )


def test_step_longer_than_test_leaves_gaps():
    assert plan_folds(100, 40, 20, 30) == (
        Fold(0, Window(0, 40), Window(40, 60)),
        Fold(1, Window(30, 70), Window(70, 90)),
    )


# --- resolved against the data ----------------------------------------------------------------------


def test_resolve_durations_to_bars():
    cfg = parse_validation({"holdout": 0.25, "walk_forward": {"train": "1d", "test": "6h"}, "cscv": {"blocks": 4}})
    plan = resolve(cfg, 1000, M15)
    assert plan.in_sample == Window(0, 750) and plan.holdout == Window(750, 1000) and plan.T == 750
    # 1d = 96 bars, 6h = 24 bars, step 24: folds while 24k + 96 + 2 <= 1000
    assert plan.folds[0] == Fold(0, Window(0, 96), Window(96, 120))
    assert len(plan.folds) == 38  # k = 0..37: the last test window starts at 24*37 + 96 = 984, ends at 1000
    assert plan.folds[-1].test == Window(984, 1000)
    assert plan.block_edges.tolist() == [0, 188, 376, 563, 750]  # array_split: 188, 188, 187, 187


def test_walk_forward_on_the_whole_series_even_with_a_holdout():
    plan = resolve(parse_validation({"holdout": 0.5, "walk_forward": {"train": 40, "test": 20}}), 100, M15)
    assert plan.folds[-1].test == Window(80, 100)


def test_duration_not_a_whole_number_of_bars():
    rejects_on_data({"walk_forward": {"train": "100m", "test": "1d"}}, 10_000,
                    "validation.walk_forward.train: 100m is not a whole number of bars of 15m")
    rejects_on_data({"walk_forward": {"train": "2d", "test": "1h"}}, 10_000,
                    "validation.walk_forward.test: 1h", "1d", interval_ms=86_400_000)


def test_windows_longer_than_the_data():
    rejects_on_data({"walk_forward": {"train": "90d", "test": "30d"}}, 10_000,
                    "validation.walk_forward", "8640 bars", "2880 bars", "10000 bars")
    resolve(parse_validation({"walk_forward": {"train": 80, "test": 20}}), 100, M15)  # exactly fits


def test_mixed_unit_step_shorter_than_test():
    rejects_on_data({"walk_forward": {"train": "2d", "test": "1d", "step": 10}}, 10_000,
                    "validation.walk_forward.step", "shorter than test")


def test_test_window_of_one_bar():
    rejects_on_data({"walk_forward": {"train": 10, "test": 1}}, 100, "validation.walk_forward.test")
    rejects_on_data({"walk_forward": {"train": 1, "test": 10}}, 100, "validation.walk_forward.train")


def test_too_short_for_the_blocks():
    rejects_on_data({"cscv": {"blocks": 16}}, 31, "validation.cscv.blocks", "at least 32 returns", "has 31")
    resolve(parse_validation({"cscv": {"blocks": 16}}), 32, M15)
    # with a holdout the in-sample part must hold them: 40 bars, holdout 0.5 -> 20 returns < 32
    rejects_on_data({"cscv": {"blocks": 16}, "holdout": 0.5}, 40, "validation.cscv.blocks", "in-sample part has 20")


def test_holdout_too_small_a_side():
    rejects_on_data({"holdout": 0.05}, 20, "validation.holdout", "19 in sample and 1 out of sample")
    rejects_on_data({"holdout": 0.9}, 10, "validation.holdout", "1 in sample")
    plan = resolve(parse_validation({"holdout": 0.1}), 20, M15)
    assert plan.holdout == Window(18, 20)


# --- the CLI: exit 2 and one line, before the sweep ----------------------------------------------------


def test_cli_windows_longer_than_the_data_exit_2(tmp_path, capsys):
    cfg = tmp_path / "v.yaml"
    cfg.write_text("""
data: {source: synthetic, synthetic_bars: 500, seed: 1}
strategies: {ma_crossover: {short_window: [5], long_window: [20]}}
validation: {walk_forward: {train: 7d, test: 1d}}
""")
    code = main(["run", "--config", str(cfg), "--out", str(tmp_path / "res"), "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 2
    errors = [line for line in err.strip().splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "validation.walk_forward" in errors[0] and "500 bars" in errors[0]
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


def test_plan_edges_are_integers():
    plan = resolve(parse_validation({"cscv": {"blocks": 4}}), 10, M15)
    assert plan.block_edges.dtype == np.int64 and plan.block_edges.tolist() == [0, 3, 6, 8, 10]
