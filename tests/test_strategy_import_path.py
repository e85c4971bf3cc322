"""The README's `mypkg.strategies:TrendRSI` works exactly as written, from the folder holding `mypkg/`,
through the installed console script (which, unlike `python -m`, gets no current folder on sys.path)."""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

import pandas as pd

from fakes.cli_process import run_console

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(lang: str, needle: str) -> str:
    (block,) = [b for b in re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S) if needle in b]
    return block


def clean_env() -> dict:
    return {"PYTHONPATH": ""} if "PYTHONPATH" in os.environ else {}


def write_user_folder(tmp_path: Path) -> Path:
    """mypkg/strategies.py and a config, laid out as the README shows them (no __init__.py)."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "strategies.py").write_text(readme_block("python", "class TrendRSI"))
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(readme_block("yaml", "mypkg.strategies:TrendRSI") + "data: {synthetic_bars: 3000, seed: 5}\n")
    return cfg


def test_readme_strategy_path_runs_from_the_users_folder(tmp_path):
    cfg = write_user_folder(tmp_path)
    done = run_console(["validate-config", cfg.name], cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "sweep.yaml: OK, 12 combination(s)" in done.stdout  # rsi_period 3 x oversold 2 x take_profit 2
    done = run_console(["run", "--config", cfg.name, "--out", "results", "--no-progress", "--run-id", "mine"],
                       cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results" / "mine" / "manifest.json").exists()
    assert "no compiled signal rule" not in done.stderr  # it ran on the fast path


def test_from_another_folder_the_path_is_one_line_and_exit_2(tmp_path):
    cfg = write_user_folder(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_console(["validate-config", cfg], cwd=elsewhere, env=clean_env())
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "cannot import strategy 'mypkg.strategies:TrendRSI' (No module named 'mypkg')" in done.stderr


def test_a_plugin_that_fails_on_import_is_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "typo.py").write_text("def (:\n")
    for name, needle in (("broken:X", "importing 'broken:X' failed: RuntimeError: boom at import"),
                         ("typo:X", "importing 'typo:X' failed: SyntaxError")):
        (tmp_path / "cfg.yaml").write_text(f"strategies: {{'{name}': {{}}}}\n")
        done = run_console(["validate-config", "cfg.yaml"], cwd=tmp_path, env=clean_env())
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert needle in done.stderr


def test_a_local_file_never_shadows_an_installed_package(tmp_path):
    (tmp_path / "numpy.py").write_text("raise SystemExit('the local numpy.py was imported')\n")
    (tmp_path / "yaml.py").write_text("raise SystemExit('the local yaml.py was imported')\n")
    (tmp_path / "cfg.yaml").write_text("strategies: {ma_crossover: {short_window: [5, 10]}}\n")
    done = run_console(["validate-config", "cfg.yaml"], cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "OK, 2 combination(s)" in done.stdout


def test_editing_the_readme_indicator_or_rule_then_rerunning_runs_the_edit(cold_cache, tmp_path, capsys,
                                                                          monkeypatch):
    """No stale compiled code: edit the user indicator's step, rerun, and the results are the edited
    indicator's (equal to the reference engine's on the edited code), after a compile of that one
    definition announced as such; then the same for the rule. The numba cache starts as a copy of the
    shared cold cache (tests/conftest.py): the loop is compiled, as on any machine that ran before. The
    runs on the fast path are the console script's; the reference engine runs in this process, on the code
    as edited (imported afresh each time), over 2,000 candles: enough for both edits to change the trades."""
    from backtest_cli import main
    from engine import strategies

    (tmp_path / "mypkg").mkdir()
    source = tmp_path / "mypkg" / "zcross.py"
    source.write_text(readme_block("python", "class ZCross"))
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(readme_block("yaml", "mypkg.zcross:ZCross") + "data: {synthetic_bars: 2000, seed: 5}\n")
    env = {**clean_env(), "NUMBA_CACHE_DIR": str(cold_cache.copy(tmp_path / "cache"))}

    def run(run_id: str, *extra: str):
        done = run_console(["run", "--config", cfg.name, "--out", "results", "--no-progress", "--run-id", run_id,
                            *extra], cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        return done.stderr, pd.read_csv(tmp_path / "results" / run_id / "summary.csv")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])  # what the CLI does from the user's folder

    def reference_run(run_id: str):
        for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
            del sys.modules[name]  # the code as it is now on disk, as a new process would import it
        importlib.invalidate_caches()
        monkeypatch.setattr(strategies, "REGISTRY", {k: v for k, v in strategies.REGISTRY.items()
                                                     if not k.startswith("mypkg.")})
        code = main(["run", "--config", cfg.name, "--out", "results", "--no-progress", "--run-id", run_id,
                     "--engine", "reference"])
        assert code == 0, capsys.readouterr().err
        return pd.read_csv(tmp_path / "results" / run_id / "summary.csv")

    _, first = run("v1")
    text = source.read_text()
    step_line = "    return (x[t] - m) / sd if sd > 0.0 else 0.0\n"
    assert text.count(step_line) == 1
    source.write_text(text.replace(step_line, "    return 0.25 * (x[t] - m) / sd if sd > 0.0 else 0.0\n"))
    err, edited = run("v2")
    assert "compiling indicator zscore (one at a time): its step changed…" in err
    assert "compiling the fast path's loop" not in err and "zcross's rule" not in err  # that one definition only
    reference = reference_run("v2-reference")
    pd.testing.assert_frame_equal(edited, reference, rtol=1e-9, atol=0)
    assert not edited["n_trades"].equals(first["n_trades"])  # a quarter of the z-score lets more entries through

    text = source.read_text()
    assert text.count("and z < z_max:") == 1
    source.write_text(text.replace("and z < z_max:", "and z < z_max - 1.0:"))
    err, rule_edited = run("v3")
    assert "compiling zcross's rule (rule, long scan, long hold): its rule changed…" in err
    reference = reference_run("v3-reference")
    pd.testing.assert_frame_equal(rule_edited, reference, rtol=1e-9, atol=0)
    assert not rule_edited["n_trades"].equals(edited["n_trades"])
