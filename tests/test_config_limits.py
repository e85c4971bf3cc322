"""Config hardening: values that overflow, dates, capital and size caps, the grid budget counted before
expansion, strategy paths, and how the config file is read."""

from __future__ import annotations

import os
import threading
import tracemalloc

import pytest
from fakes.cli import run_cli

from engine.grid import build_grid
from engine.config import load_config, parse_config, read_config_bytes
from engine.config.checks import INT64_MAX
from engine.cpus import available_cpus
from engine.errors import ConfigError
from engine.grid_budget import DEFAULT_MAX_COMBINATIONS, bytes_per_combination, estimate_bytes, human_bytes

MA = {"ma_crossover": {"short_window": [5], "long_window": [20]}}


def rejects(doc, *fragments):
    with pytest.raises(ConfigError) as exc:
        parse_config(doc)
    for f in fragments:
        assert f in str(exc.value), str(exc.value)
    return str(exc.value)


def test_bytes_per_combination_by_hand():
    # ma_crossover: 4 parameters + 7 position rules (leverage included) = 11 axes.
    # grid 2 x 11 = 22 words; kernel state 32 + 13 + 4 + 4 + 5 + 4 + 1 = 63 words;
    # summary (23 metrics + combination, strategy, id + 11 axes) x 3 copies = 111 words; + 100-byte id string
    assert bytes_per_combination(11) == (22 + 63 + 111) * 8 + 100 == 1668
    assert estimate_bytes(1_000_000, 11) == 1_668_000_000
    assert human_bytes(1_668_000_000) == "1.7 GB" and human_bytes(512) == "512 bytes"
    assert human_bytes(10**30) == "more than 1,000,000 TB"


def test_the_default_limit_fits_this_machine():
    # a quarter of 24 GB for the widest built-in strategy (ma_crossover: 4 parameters, 7 position rules)
    assert estimate_bytes(DEFAULT_MAX_COMBINATIONS, 11) < 24e9 / 4


def test_grid_is_counted_before_it_is_built():
    doc = {"strategies": {"ma_crossover": {"short_window": {"start": 1, "stop": 10**7},
                                           "long_window": {"start": 1, "stop": 10**7}}}}
    tracemalloc.start()
    try:
        msg = rejects(doc, "the grid has 100,000,000,000,000 combinations", "limits.max_combinations = 3,500,000")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, peak  # nothing of the size of the grid was allocated
    assert "estimated memory to sweep them: 166,800.0 TB" in msg  # 1e14 x 1,668 bytes


def test_the_limit_is_a_config_key_and_counts_before_constraints():
    doc = {"strategies": {"ma_crossover": {"short_window": [5, 10, 30], "long_window": [20, 25]}},
           "risk": {"stop_loss": [0.01, 0.02]}, "limits": {"max_combinations": 12}}
    cfg = parse_config(doc)
    assert len(build_grid(cfg)) + build_grid(cfg).filtered == 12 and build_grid(cfg).filtered == 4  # 30 >= 20, 25
    assert cfg.limits.max_combinations == 12
    doc["limits"]["max_combinations"] = 11
    rejects(doc, "the grid has 12 combinations", "above limits.max_combinations = 11")
    rejects({"strategies": MA, "limits": {"max_combinations": 0}}, "limits.max_combinations: 0 is out of range")
    rejects({"strategies": MA, "limits": {"max_combinations": 2 * 10**9}}, "expected >= 1 and <= 1000000000")
    rejects({"strategies": MA, "limits": {"max_rows": 1}}, "limits.max_rows: unknown key")


def test_several_strategies_add_up():
    doc = {"strategies": {"ma_crossover": {"short_window": list(range(2, 12))},
                          "rsi_reversion": {"rsi_period": list(range(2, 7))}},
           "risk": {"stop_loss": [0.01, 0.02, 0.03]}, "limits": {"max_combinations": 44}}
    rejects(doc, "the grid has 45 combinations")  # (10 + 5) x 3


def test_a_stop_loss_range_is_counted_before_it_is_built():
    rejects({"strategies": MA, "risk": {"stop_loss": {"start": 0.0, "stop": 0.5, "step": 1e-12}}},
            "the grid has 500,000,000,001 combinations")


def test_ranges_that_overflow():
    rejects({"strategies": {"ma_crossover": {"short_window": {"start": -1.7e308, "stop": 1.7e308}}}},
            "at least 1,000,000,000,000,000,000")
    rejects({"strategies": {"ma_crossover": {"short_window": {"start": 1, "stop": 5, "step": 0}}}},
            "short_window.step: 0 is out of range")


@pytest.mark.parametrize("section,value,fragment", [
    ("portfolio", {"capital": 1e308}, "portfolio.capital: 1e+308 is out of range; expected > 0 and <= 1e+15"),
    ("portfolio", {"capital": 10**16}, "portfolio.capital: 10000000000000000 is out of range"),
    ("data", {"synthetic_bars": 20_000_001}, "data.synthetic_bars: 20000001 is out of range"),
    ("data", {"seed": 2**63}, f"data.seed: 9223372036854775808 is too large; expected at most {INT64_MAX:,}"),
    ("data", {"start": "2024-13-45"}, "data.start '2024-13-45': expected an ISO date like 2024-01-01"),
    ("data", {"start": 99999999999999999999}, "data.start 99999999999999999999: is not a date between 1970 and"),
    ("data", {"start": "1969-12-31"}, "data.start '1969-12-31': 1969-12-31 00:00:00 is outside 1970-01-01 .."),
    ("data", {"end": "2100-01-01"}, "outside 1970-01-01 .. 2100-01-01"),
    ("data", {"start": [2024]}, "data.start: expected a date like 2024-01-01, got [2024]"),
    ("data", {"start": "2024-02-01", "end": "2024-02-01"}, "data.start/data.end: the start (2024-02-01 00:00:00)"),
    ("report", {"top_k": 1001}, "report.top_k: 1001 is out of range; expected >= 1 and <= 1000"),
    ("report", {"rank_by": ["sharpe"]}, "report.rank_by: ['sharpe']; expected one of"),
    ("execution", {"fill": {"a": 1}}, "execution.fill: {'a': 1}; expected one of close, next_open"),
    ("parallel", {"workers": 2**64}, "parallel.workers: 18446744073709551616 is too large"),
])
def test_values_that_overflow_or_are_not_what_they_claim(section, value, fragment):
    rejects({"strategies": MA, section: value}, fragment)


def test_in_range_values_still_pass():
    cfg = parse_config({"strategies": MA, "portfolio": {"capital": 1e15}, "data": {
        "synthetic_bars": 20_000_000, "seed": INT64_MAX, "start": "1970-01-01", "end": "2099-12-31T23:59"},
        "report": {"top_k": 1000}, "parallel": {"workers": 48}})
    assert cfg.execution.capital == 1e15 and cfg.data.seed == INT64_MAX and cfg.workers == 48


def test_integer_parameters_must_fit_int64():
    rejects({"strategies": {"ma_crossover": {"short_window": [5, 2**63]}}},
            "strategies.ma_crossover.short_window: 9223372036854775808 is too large")
    rejects({"strategies": {"ma_crossover": {"short_window": 1e300}}}, "short_window: 1e+300 is too large")


@pytest.mark.parametrize("name", ["../evil:X", ":X", "a:", "a b:C", "os.path:join:x", "a..b:C", "1mod:C"])
def test_strategy_paths_are_checked_before_import(name):
    rejects({"strategies": {name: {}}}, f"strategies: {name!r} is not a strategy name or a path like")


def test_error_messages_stay_short_whatever_the_value():
    msg = rejects({"strategies": MA, "experiment": {"name": list(range(100_000))}}, "experiment.name")
    assert len(msg) < 200
    msg = rejects({"strategies": MA, "x" * 10_000: 1}, "unknown section")
    assert len(msg) < 300


def test_a_fifo_config_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    result = {}
    reader = threading.Thread(target=lambda: result.update(exc=pytest.raises(ConfigError, read_config_bytes, fifo)),
                              daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # unblock the thread so the test process can end, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO config blocked")
    assert "is a FIFO (named pipe), not a config file" in str(result["exc"].value)


def test_load_config_reads_a_regular_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("strategies: {ma_crossover: {short_window: [5, 10]}}\n")
    assert len(build_grid(load_config(p))) == 2
    p.write_bytes(b"strategies: {ma_crossover: {}}\nexperiment: {name: \xff}\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xff at offset 50\)"):
        load_config(p)


def test_validate_config_prints_the_memory_estimate(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("strategies: {ma_crossover: {short_window: [5, 10, 30], long_window: [20, 25]}}\n")
    code, out, _ = run_cli(["validate-config", p], capsys)
    assert code == 0
    # 6 combinations before constraints (2 filtered), 11 axes: 6 x 1,668 bytes
    assert "OK, 4 combination(s) (2 filtered by constraints); the grid needs about 10.0 KB of memory" in \
        " ".join(out.split())  # the line wraps at 120 columns


def test_workers_above_the_cpu_count_are_clamped_with_a_notice(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("data: {synthetic_bars: 2000}\nparallel: {workers: 48}\n"
                 "strategies: {ma_crossover: {short_window: [5, 10], long_window: [20]}}\n")
    code, _, err = run_cli(["run", "--config", p, "--out", tmp_path / "r", "--no-progress"], capsys)
    assert code == 0, err
    n = available_cpus()
    assert (f"note: parallel.workers: 48 workers requested but only {n} CPU(s) are available; using {n}"
            in err)
    code, _, err = run_cli(["run", "--config", p, "--out", tmp_path / "r", "--no-progress", "--workers", "64"],
                           capsys)
    assert code == 0 and f"note: --workers: 64 workers requested but only {n} CPU(s)" in err
