"""Issue 22, bounded validation: a walk-forward above ``limits.max_folds`` is refused before any work
(exit 2, one line naming the key); CSCV with 32 blocks (601,080,390 splits) runs on a sampled 200,000
in bounded memory; ``validate-config``'s memory estimate includes validation."""

from __future__ import annotations

import json
import resource

from fakes.cli import run_cli
from fakes.cli_process import run_console

GRID = "strategies: {ma_crossover: {short_window: [5, 10], long_window: 30}}\nreport: {png: false}\n"


def test_too_many_folds_is_one_line_exit_2_before_the_sweep(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    # 70,080 bars, train 2, test 2 (step = test): fold k exists while 2k + 2 + 2 <= 70,080: 35,039 folds
    cfg.write_text(GRID + "data: {synthetic_bars: 70080}\nvalidation: {walk_forward: {train: 2, test: 2}}\n")
    for argv in (["validate-config", cfg], ["run", "--config", cfg, "--out", tmp_path / "res", "--no-progress"]):
        code, _, err = run_cli(argv, capsys)
        lines = [ln for ln in err.splitlines() if ln.startswith("error")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert "35,039 folds" in lines[0] and "limits.max_folds = 1,000" in lines[0]
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())
    # raised, the same config plans its folds (validate-config only: no sweep here)
    cfg.write_text(cfg.read_text() + "limits: {max_folds: 40000}\n")
    code, out, err = run_cli(["validate-config", cfg], capsys)
    assert code == 0 and "35,039 walk-forward folds" in out, err


def test_validate_config_estimate_includes_validation(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    # 2 combinations; 1,000 bars, train 200, test 100: folds while 100k + 202 <= 1,000: 8; S = 4: 6 splits.
    # By hand: 8 bytes x (2 x (40 + 6 x 4 + 6 x 8) + 8 x 6) = 8 x 272 = 2,176 bytes
    cfg.write_text(GRID + "data: {synthetic_bars: 1000}\n"
                   "validation: {walk_forward: {train: 200, test: 100}, cscv: {blocks: 4}}\n")
    code, out, _ = run_cli(["validate-config", cfg], capsys)
    assert code == 0 and "validation adds about 2.2 KB (8 walk-forward folds)" in out, out


def test_cscv_32_blocks_samples_splits_in_bounded_memory(tmp_path):
    (tmp_path / "c.yaml").write_text(GRID + "data: {synthetic_bars: 400}\nvalidation: {cscv: {blocks: 32}}\n")
    done = run_console(["run", "--config", "c.yaml", "--out", "res", "--no-progress", "--run-id", "r"],
                       cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mb < 1500, peak_mb  # the materialised splits of S = 32 needed more than 24 GB
    doc = json.loads((tmp_path / "res" / "r" / "validation.json").read_text())
    cs = doc["inputs"]["cscv"]
    assert (cs["S"], cs["splits"], cs["all_splits"], cs["sampled"], cs["sample_seed"]) == \
        (32, 200_000, 601_080_390, True, 2017)  # C(32, 16) = 601,080,390
    assert len(doc["pbo"]["logits"]) == 200_000
    assert "200,000 of 601,080,390 splits, a seeded sample" in done.stdout
    assert "200,000 of 601,080,390 splits, a seeded sample" in (tmp_path / "res" / "r" / "report.html").read_text()


def test_validation_estimate_is_exact_on_synthetic_data_and_bounded_elsewhere():
    from engine.config import parse_config_text
    from engine.validation.estimate import validation_estimate

    text = GRID + "validation: {walk_forward: {train: 200, test: 100}, cscv: {blocks: 4}}\n"
    exact = validation_estimate(parse_config_text(text + "data: {synthetic_bars: 1000}\n", "c.yaml"), 2)
    assert (exact.bytes, exact.folds, exact.exact) == (2_176, 8, True)  # by hand, as above
    # candles from a file: the length is unknown, so the bound is at limits.max_folds (here 10 folds):
    # 8 bytes x (2 x (40 + 6 x 4 + 6 x 10) + 8 x 6) = 8 x 296 = 2,368 bytes
    bound = validation_estimate(parse_config_text(
        text + "data: {source: candles.csv}\nlimits: {max_folds: 10}\n", "c.yaml"), 2)
    assert (bound.bytes, bound.folds, bound.exact) == (2_368, 10, False)
