"""Issue 22, round three: odd values, strict YAML, user code and malformed run folders.

Every case runs ``backtest`` in-process (tiny configs, nothing simulated before the error)
and asserts the exit code and one line on stderr naming the problem, with no traceback.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from fakes.cli import run_cli

from engine.report.index import list_runs

BASE = "strategies: {ma_crossover: {}}\n"

# (id, config text, the words the one line must hold)
CONFIGS = [
    ("yes_as_boolean", BASE + "validation: {walk_forward: {train: 10, test: 10, anchored: yes}}\n",
     ["anchored", "write true"]),
    ("off_as_boolean", BASE + "report: {png: off}\n", ["report.png", "write false"]),
    ("report_as_list", BASE + "report: []\n", ["report: expected a mapping"]),
    ("risk_as_list", BASE + "risk: []\n", ["risk: expected a mapping"]),
    ("int64_max_window", "strategies: {ma_crossover: {long_window: 9223372036854775807}}\n",
     ["long_window", "100,000,000"]),
    ("beyond_int64", "strategies: {ma_crossover: {long_window: 99999999999999999999}}\n", ["long_window"]),
    ("nul_character", BASE + "experiment: {name: \"a\x00b\"}\n", ["invalid YAML", "#x0000"]),
    ("control_character", BASE + "experiment: {name: \"a\x01b\"}\n", ["invalid YAML", "#x0001"]),
]


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("text,words", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_bad_config_is_one_line_exit_2(tmp_path, capsys, text, words):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(text.encode())
    for argv in (["validate-config", cfg], ["run", "--config", cfg, "--out", tmp_path / "res", "--no-progress"]):
        code, _, err = run_cli(argv, capsys)
        line = _one_line_error(err)
        assert code == 2
        for w in words:
            assert w in line, line
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


def test_true_and_false_still_booleans(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE + "report: {png: false}\n"
                   "validation: {walk_forward: {train: 1000, test: 1000, anchored: true}}\n")
    code, out, _ = run_cli(["validate-config", cfg], capsys)
    assert code == 0 and "anchored: true" in out


@pytest.mark.parametrize("argv,words", [
    (["run", "--out", ""], ["--out", "empty"]),
    (["run", "--data", ""], ["--data", "empty"]),
    (["runs", "--out", ""], ["--out", "empty"]),
], ids=["empty_out", "empty_data", "runs_empty_out"])
def test_empty_paths_refused(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv, capsys)
    line = _one_line_error(err)
    assert code == 2 and all(w in line for w in words)
    assert list(tmp_path.iterdir()) == []  # nothing written in the working folder


# --- user code --------------------------------------------------------------------------------------
USER = '''
from numba import njit
from engine.strategies import ENTER_LONG, Constraint, Strategy

@njit(cache=True)
def float_signal(close, hold):
    return close * 0.5

class FloatRule(Strategy):
    name = "float_rule"
    hold: int = 1
    signal = staticmethod(float_signal)

@njit(cache=True)
def ok_signal(close, hold):
    return ENTER_LONG if hold > 0 else 0

class BadConstraint(Strategy):
    name = "bad_constraint"
    hold: int = 1
    signal = staticmethod(ok_signal)
    constraints = (Constraint("hold is known", lambda s: s.no_such_param > 1),)

def raising_signal(close, hold):
    if close > 0:
        raise ValueError("boom")
    return 0
'''


@pytest.fixture()
def user_pkg(tmp_path, monkeypatch):
    name = f"r3user_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(USER)
    (tmp_path / f"{name}_exits.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in (name, f"{name}_exits"):
        sys.modules.pop(mod, None)


@pytest.mark.parametrize("what,words", [
    ("{pkg}:FloatRule", ["strategies.float_rule", "returns float64", "integer"]),
    ("{pkg}:BadConstraint", ["strategies.bad_constraint", "constraint 'hold is known' raised AttributeError"]),
    ("{pkg}_exits:X", ["called sys.exit(0)"]),
], ids=["rule_returns_float", "constraint_raises", "sys_exit_on_import"])
def test_user_code_fails_at_load_in_one_line(tmp_path, capsys, user_pkg, what, words):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"strategies: {{'{what.format(pkg=user_pkg)}': {{}}}}\ndata: {{synthetic_bars: 300}}\n")
    for argv in (["validate-config", cfg], ["run", "--config", cfg, "--out", tmp_path / "res", "--no-progress"]):
        code, _, err = run_cli(argv, capsys)
        line = _one_line_error(err)
        assert code == 2
        assert all(w in line for w in words), line


def test_debug_shows_the_traceback(tmp_path, capsys, user_pkg):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"strategies: {{'{user_pkg}:BadConstraint': {{}}}}\n")
    code, _, err = run_cli(["--debug", "validate-config", cfg], capsys)
    assert code == 2 and "Traceback" in err and "no_such_param" in err
    assert err.strip().splitlines()[-1].startswith("error: strategies.bad_constraint")


def test_reference_rule_that_raises_names_strategy_and_bar(tmp_path, user_pkg):
    """The reference engine's rule runner: 'strategy X raised Y at bar T' (the first bar where the
    rule is called: ma-free rule, so bar 0)."""
    import importlib

    from engine.data.synthetic import generate_candles
    from engine.errors import StrategyError
    from engine.reference.rule import FLAT, RuleRunner
    from engine.reference.feed import DataFeed

    mod = importlib.import_module(user_pkg)
    ok = mod.BadConstraint  # a valid strategy whose rule we swap for the raising one, in Python
    runner = RuleRunner(ok())
    runner.rule = mod.raising_signal
    candle = next(iter(DataFeed(generate_candles(10, seed=1))))
    with pytest.raises(StrategyError, match=r"^strategy bad_constraint raised ValueError: boom at bar 0 \("):
        runner.step(candle, FLAT)
    runner.rule = lambda close, hold: 1.5
    with pytest.raises(StrategyError, match="returned float 1.5 at bar 0"):
        runner.step(candle, FLAT)


# --- malformed run folders --------------------------------------------------------------------------
MALFORMED = {
    "not_json": b"nope",
    "not_utf8": b"\xff\xfe",
    "data_is_text": b'{"run_id": "x", "data": "s"}',
    "best_is_number": b'{"run_id": "y", "best": 5}',
    "rows_not_int": b'{"run_id": "z", "data": {"rows": "many"}}',
    "a_list": b"[1, 2]",
}


def test_malformed_manifests_are_skipped_with_a_warning(tmp_path, capsys):
    root = tmp_path / "res"
    good = root / "good"
    good.mkdir(parents=True)
    (good / "manifest.json").write_text(json.dumps({"run_id": "good", "created_at": "2026-01-01", "data": {}}))
    for name, body in MALFORMED.items():
        (root / name).mkdir()
        (root / name / "manifest.json").write_bytes(body)
    skipped: list[str] = []
    assert [r.run_id for r in list_runs(root, skipped)] == ["good"]
    assert sorted(Path(s.split(":")[0]).name for s in skipped) == sorted(MALFORMED)
    code, out, err = run_cli(["runs", "--out", root], capsys)
    assert code == 0 and "good" in out and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("warning: ")]) == len(MALFORMED)
    from engine.report.index import write_index

    page = write_index(root).read_text()
    assert page.count('class="skipped"') == len(MALFORMED) and ">good<" in page


LATE = '''
from numba import njit
from engine.strategies import ENTER_LONG, Strategy

@njit(cache=True)
def late_signal(close, position, bars_held, hold):
    if position == 1 and bars_held > hold:
        raise ValueError("boom")
    return ENTER_LONG

class Late(Strategy):
    name = "late"
    hold: int = 1
    signal = staticmethod(late_signal)
'''


def test_fast_rule_that_raises_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    """The fast path: a rule that raises mid-run stops the run (it once looped forever: a compiled rule
    that raises returns 0, read as 'bar 0'). Entry at bar 0's close (every bar says enter), held bars
    3 at bar 3, so ``bars_held > 3`` first holds at bar 4 for hold=3 (bar 5 for hold=4)."""
    name = f"r3late_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(LATE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"strategies: {{'{name}:Late': {{hold: [3, 4]}}}}\ndata: {{synthetic_bars: 300}}\n")
    try:
        code, _, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "res", "--no-progress"], capsys)
        line = [ln for ln in err.splitlines() if ln.startswith("error")]
        assert code == 1 and "Traceback" not in err, err
        assert len(line) == 1 and line[0].startswith("error: strategy late raised ValueError: boom at bar 4 ("), err
        assert not any((tmp_path / "res").iterdir())
        code, _, err = run_cli(["--debug", "run", "--config", cfg, "--out", tmp_path / "res", "--no-progress"],
                               capsys)
        assert code == 1 and "Traceback" in err and "late_signal" in err
    finally:
        sys.modules.pop(name, None)


ESCAPE = '''
from numba import njit
from engine.strategies import ENTER_LONG, EXIT_LONG, Strategy

@njit(cache=True)
def every_other_bar(close, hold):
    return ENTER_LONG | EXIT_LONG

class Escape(Strategy):
    name = "../../x"
    hold: int = 1
    signal = staticmethod(every_other_bar)
'''


def test_a_strategy_named_like_a_path_writes_inside_its_run_folder(tmp_path, capsys, monkeypatch):
    """runs/*.json, trades/*.csv and chart names go through engine.filenames.file_name: '../../x' is
    '%2E%2E%2F.%2E%2Fx' (its leading dots, a dot after a dot and '/' encoded), kept inside the folder."""
    name = f"r3escape_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(ESCAPE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"strategies: {{'{name}:Escape': {{hold: [1, 2]}}}}\ndata: {{synthetic_bars: 300}}\n")
    out = tmp_path / "res"
    try:
        code, _, err = run_cli(["run", "--config", cfg, "--out", out, "--no-progress", "--run-id", "r"], capsys)
    finally:
        sys.modules.pop(name, None)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "r"]
    # hold=2 trades as hold=1 does (the rule ignores it): a duplicate, not drawn in detail
    assert [p.name for p in (out / "r" / "runs").iterdir()] == ["%2E%2E%2F.%2E%2Fx_hold=1.json"]
    assert [p.name for p in (out / "r" / "trades").iterdir()] == ["%2E%2E%2F.%2E%2Fx_hold=1.csv"]
    assert not (tmp_path / "x_hold=1.json").exists() and not (out / "x_hold=1.json").exists()
    assert '"file":"%2E%2E%2F.%2E%2Fx_hold=1"' in (out / "r" / "report.html").read_text()
