"""Every bad input reaching `backtest run` / `validate-config`, through the real console script.

Each case asserts exit code 2, exactly one line on stderr naming the problem, no
traceback, and that what is already stored (a finished run folder under --out, or
the file given as --out) is byte for byte unchanged, with nothing added.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path

import pytest
from fakes.cli import run_cli
from fakes.cli_process import can_mount_tmpfs, command, is_root, run_console, snapshot, tmpfs

SMALL = """
experiment: {name: small}
data: {source: synthetic, synthetic_bars: 3000, seed: 3}
portfolio: {capital: 100000}
risk: {stop_loss: 0.02}
strategies:
  ma_crossover: {short_window: [5, 10], long_window: [30, 60], ema_period: 50}
report: {top_k: 2}
"""

# Nine levels of nine aliases: 9**9 = 387 million strings once expanded, in ~450 bytes.
ALIAS_BOMB = ("experiment:\n  name: [&a [\"lol-lol\", \"lol-lol\", \"lol-lol\", \"lol-lol\", \"lol-lol\", \"lol-lol\", "
              "\"lol-lol\", \"lol-lol\", \"lol-lol\"], "
              + ", ".join(f"&{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi"))
              + "]\nstrategies: {ma_crossover: {}}\n")


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A results root holding one finished run: what every case must leave untouched."""
    root = tmp_path_factory.mktemp("stored")
    cfg = root / "ok.yaml"
    cfg.write_text(SMALL)
    done = run_console(["run", "--config", cfg, "--out", root / "results", "--no-progress", "--run-id", "kept"])
    assert done.returncode == 0, done.stderr
    assert (root / "results" / "kept" / "manifest.json").exists()
    return root / "results"


@pytest.fixture
def cfg(tmp_path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(SMALL)
    return path


@pytest.fixture
def mountable(tmp_path) -> None:
    why = can_mount_tmpfs(tmp_path)
    if why:
        pytest.skip(f"full-disk tests need a small tmpfs: {why}")


def assert_refused(done: subprocess.CompletedProcess, needle: str, *, after_work: bool = False) -> str:
    """Exit 2 and one line. ``after_work``: the failure came while writing, so the run's step lines (data
    read, sweep time, report started) precede the one error line, which is the last."""
    lines = done.stderr.splitlines()
    if after_work:
        steps = ("data: ", "compiling ", "compiled ", "sweep: ", "report: ")
        assert lines and all(line.startswith(steps) for line in lines[:-1]), done.stderr
        lines = lines[-1:]
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    return lines[0]


def sub(old: str, new: str) -> str:
    assert old in SMALL
    return SMALL.replace(old, new)


# (id, config text, needle in the message, also check validate-config)
CONFIG_CASES = [
    ("invalid-date", sub("seed: 3}", "seed: 3, start: 2024-13-45}"), "data.start '2024-13-45': expected an ISO date like 2024-01-01"),
    ("invalid-datetime", sub("seed: 3}", "seed: 3, end: '2024-02-30T10:00'}"), "data.end '2024-02-30T10:00': expected an ISO date"),
    ("date-before-1970", sub("seed: 3}", "seed: 3, start: 1969-12-31}"),
     "data.start '1969-12-31': 1969-12-31 00:00:00 is outside 1970-01-01 .. 2100-01-01"),
    ("date-after-2100", sub("seed: 3}", "seed: 3, end: 2100-01-02}"), "outside 1970-01-01 .. 2100-01-01"),
    ("epoch-overflow", sub("seed: 3}", "seed: 3, start: 99999999999999999999999}"),
     "data.start 99999999999999999999999: is not a date between 1970 and 2100"),
    ("start-after-end", sub("seed: 3}", "seed: 3, start: 2024-02-01, end: 2024-01-01}"),
     "data.start/data.end: the start (2024-02-01 00:00:00) is not before the end (2024-01-01 00:00:00)"),
    ("int-too-large", sub("[5, 10]", "[5, 100000000000000000000000]"),
     "strategies.ma_crossover.short_window: 100000000000000000000000 is too large"),
    ("int-5000-digits", sub("[5, 10]", "[5, 1" + "0" * 5000 + "]"), "an integer of 5,001 characters"),
    ("float-int-too-large", sub("[5, 10]", "[5, 1.0e+300]"), "strategies.ma_crossover.short_window: 1e+300 is too"),
    ("seed-too-large", sub("seed: 3}", "seed: 18446744073709551616}"), "data.seed: 18446744073709551616 is too"),
    ("interval-5w", sub("seed: 3}", "seed: 3, interval: 5w}"), "data.interval: '5w' is not a Binance kline interval"),
    ("synthetic-bars-capped", sub("synthetic_bars: 3000", "synthetic_bars: 1e12"),
     "data.synthetic_bars: 1000000000000 is out of range; expected >= 2 and <= 20000000"),
    ("capital-1e308", sub("capital: 100000", "capital: 1e308"),
     "portfolio.capital: 1e+308 is out of range; expected > 0 and <= 1e+15"),
    ("capital-above-1e15", sub("capital: 100000", "capital: 2000000000000000"), "portfolio.capital: 2000000000000000"),
    ("capital-inf", sub("capital: 100000", "capital: .inf"), "portfolio.capital: expected a number, got inf"),
    ("commission-overflow", SMALL + "execution: {commission: 1e400}\n", "execution.commission: expected a number"),
    ("top-k-huge", sub("top_k: 2", "top_k: 1000000"), "report.top_k: 1000000 is out of range"),
    ("range-1e300-values", sub("[5, 10]", "{start: 1, stop: 1e300, step: 1e-300}"),
     "the grid has at least 1,000,000,000,000,000,000 combinations"),
    ("too-many-combinations", sub("[5, 10]", "{start: 1, stop: 100000}").replace("[30, 60]", "{start: 1, stop: 1000}"),
     "the grid has 100,000,000 combinations (estimated memory to sweep them: 166.8 GB), above "
     "limits.max_combinations = 3,500,000"),
    ("below-own-limit", SMALL + "limits: {max_combinations: 3}\n",
     "the grid has 4 combinations (estimated memory to sweep them: 6.7 KB), above limits.max_combinations = 3"),
    ("limit-not-a-number", SMALL + "limits: {max_combinations: lots}\n", "limits.max_combinations: expected an int"),
    ("limit-above-ceiling", SMALL + "limits: {max_combinations: 1e12}\n", "limits.max_combinations: 1000000000000 is"),
    ("deep-nesting", sub("ema_period: 50", "ema_period: " + "[" * 5000 + "]" * 5000), "nested more than 32 levels"),
    ("alias-bomb", ALIAS_BOMB, "expands to more than 100,000 values"),
    ("recursive-alias", sub("[5, 10]", "&loop [5, *loop]"), "an alias refers to a collection that contains it"),
    ("non-text-key", SMALL + "parallel: {1: 2}\n", "a key must be text, got '1'"),
    ("duplicate-key", SMALL + "report: {top_k: 3}\n", "key 'report' is given twice"),
    ("python-tag", sub("name: small", "name: !!python/object/apply:os.system [echo hi]"),
     "could not determine a constructor"),
    ("bad-int-tag", sub("seed: 3", "seed: !!int abc"), "invalid YAML: invalid literal for int()"),
    ("strategy-path", sub("ma_crossover:", "'../evil:Strategy':"),
     "strategies: '../evil:Strategy' is not a strategy name or a path like package.module:ClassName"),
    ("top-level-list", "- 1\n- 2\n", "expected a mapping of sections at the top level, got list"),
    ("huge-repr-value", sub("name: small", "name: [" + ", ".join(["xxxxxxxxxx"] * 20000) + "]"),
     "experiment.name: expected a non-empty string, got ['xxxxxxxxxx', 'xxxxxxxxxx',"),
]


@pytest.mark.parametrize("text,needle", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_values(tmp_path, stored, capsys, text, needle):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    before = snapshot(stored)
    line = assert_refused(run_console(["run", "--config", cfg, "--out", stored, "--no-progress"]), needle)
    assert len(line) < 400
    assert snapshot(stored) == before
    code, _, err = run_cli(["validate-config", cfg], capsys)  # the same main() as the console script, in-process
    assert_refused(subprocess.CompletedProcess([], code, "", err), needle)


def test_the_alias_bomb_is_small(tmp_path):
    assert 400 <= len(ALIAS_BOMB.encode()) <= 500


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


def _big(tmp_path: Path) -> Path:
    path = tmp_path / "big.yaml"
    path.write_text(SMALL + "#" * (2 << 20) + "\n")
    return path


def _latin1(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(SMALL.replace("small", "caf\u00e9").encode("latin-1"))
    return path


def _loop(tmp_path: Path) -> Path:
    path = tmp_path / "loop.yaml"
    path.symlink_to(path)
    return path


@pytest.mark.parametrize("make,needle", [
    (_fifo, "fifo.yaml: is a FIFO (named pipe), not a config file"),
    (lambda _: Path("/dev/zero"), "/dev/zero: is a device, not a config file"),
    (lambda _: Path("/dev/null"), "/dev/null: is a device, not a config file"),
    (lambda _: Path("/dev/stdin"), "/dev/stdin: is "),
    (lambda p: p, ": is a folder, not a config file"),
    (lambda p: p / "missing.yaml", "missing.yaml: config file not found"),
    (lambda p: p / "missing" / "deeper.yaml", "deeper.yaml: config file not found"),
    (_big, "a config may be at most 1,048,576 bytes"),
    (_latin1, "latin1.yaml: not UTF-8 text (byte 0xe9 at offset"),
    (_loop, "loop.yaml: cannot read config (too many levels of symbolic links)"),
], ids=["fifo", "dev-zero", "dev-null", "dev-stdin", "folder", "missing", "missing-parent", "over-1MB", "not-utf8",
        "symlink-loop"])
def test_config_files_that_are_not_readable_configs(tmp_path, stored, make, needle):
    path = make(tmp_path)
    before = snapshot(stored)
    for args in (["run", "--config", path, "--out", stored], ["validate-config", path]):
        # stdin is a pipe nobody writes to: a command that read it would block until the timeout
        done = subprocess.run(command(args), capture_output=True, text=True, timeout=60, stdin=subprocess.PIPE)
        line = assert_refused(done, "")
        assert needle.lower() in line.lower(), line
    assert snapshot(stored) == before


def _without_file_permission_override() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the capability bounding
    set, so even root is refused a file by its permission bits (exec then grants root only that set)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_unreadable_config_file(tmp_path, stored):
    path = tmp_path / "secret.yaml"
    path.write_text(SMALL)
    path.chmod(0)
    kwargs = {}
    if is_root():  # root reads any file, unless it gives up the capabilities that let it
        try:
            probe = subprocess.run(["cat", str(path)], capture_output=True, timeout=60,
                                   preexec_fn=_without_file_permission_override)
        except subprocess.SubprocessError as exc:
            pytest.skip(f"cannot drop root's file-permission override here: {exc}")
        if probe.returncode == 0:
            pytest.skip("root still reads a mode-000 file after dropping CAP_DAC_OVERRIDE")
        kwargs = {"preexec_fn": _without_file_permission_override}
    before = snapshot(stored)
    for args in (["validate-config", path], ["run", "--config", path, "--out", stored]):
        done = subprocess.run(command(args), capture_output=True, text=True, timeout=60, **kwargs)
        assert_refused(done, "secret.yaml: cannot read config (permission denied)")
    assert snapshot(stored) == before


@pytest.mark.parametrize("args,needle", [
    (["--start", "99999999999999999999"], "argument --start: '99999999999999999999' is not a time"),
    (["--start", "2024-13-01"], "argument --start: '2024-13-01' is not a time"),
    (["--start", "1960-01-01"], "argument --start: '1960-01-01' is not a time"),
    (["--start", "2024-02-01", "--end", "2024-01-01"], "data.start/data.end: the start (2024-02-01 00:00:00) is not"),
    (["--interval", "99999999999999999999999m"], "argument --interval: '99999999999999999999999m' is not a Binance kline"),
    (["--interval", "15x"], "argument --interval: '15x' is not a Binance kline interval"),
    (["--workers", "0"], "argument --workers: expected a positive integer, got '0'"),
    (["--workers", "1e3"], "argument --workers: expected a positive integer, got '1e3'"),
    (["--engine", "turbo"], "argument --engine: invalid choice: 'turbo'"),
], ids=["start-overflow", "start-month-13", "start-1960", "start-after-end", "interval-overflow", "interval-unit",
        "workers-0", "workers-float", "engine"])
def test_bad_run_arguments(stored, cfg, args, needle):
    before = snapshot(stored)
    assert_refused(run_console(["run", "--config", cfg, "--out", stored, "--no-progress", *args]), needle)
    assert snapshot(stored) == before


# --- --out and --run-id ---------------------------------------------------------------------------------

@pytest.mark.parametrize("run_id", ["../x", "..", ".hidden", "a/b", "/abs", "", "x" * 200, "a\\b", "a.b"])
def test_run_id_must_be_a_plain_name(stored, cfg, run_id):
    before, parent = snapshot(stored), snapshot(stored.parent)
    done = run_console(["run", "--config", cfg, "--out", stored, "--run-id", run_id])
    assert_refused(done, "argument --run-id: run id")
    assert snapshot(stored) == before and snapshot(stored.parent) == parent


def test_out_is_a_file(tmp_path, cfg):
    target = tmp_path / "results.txt"
    target.write_text("mine\n")
    for out in (target, target / "sub"):
        assert_refused(run_console(["run", "--config", cfg, "--out", out]), "is a file, not a folder")
    assert target.read_text() == "mine\n"


def _out_loop(tmp_path: Path) -> Path:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return tmp_path / "loop"


@pytest.mark.parametrize("make,needle", [
    (lambda _: Path("/dev/null"), "--out /dev/null: is a device or other special file, not a folder"),
    (lambda p: p / ("a" * 5000), "file name too long; give --out a folder you can write to"),
    (_out_loop, "loop: too many levels of symbolic links; give --out a folder you can write to"),
    (lambda p: _out_loop(p) / "sub", "loop/sub: too many levels of symbolic links"),
], ids=["device", "name-too-long", "symlink-loop", "under-a-loop"])
def test_out_that_cannot_be_a_folder(tmp_path, cfg, make, needle):
    line = assert_refused(run_console(["run", "--config", cfg, "--out", make(tmp_path), "--no-progress"]), "")
    assert needle in line and len(line) <= 1000 + len("error: ")


def test_out_not_writable(tmp_path, cfg):
    if is_root():  # permissions do not stop root: a read-only filesystem does
        why = can_mount_tmpfs(tmp_path)
        if why:
            pytest.skip(f"cannot make a read-only folder for root: {why}")
        with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
            done = run_console(["run", "--config", cfg, "--out", ro / "results"])
            assert_refused(done, f"--out {ro / 'results'}: cannot create the folder (read-only file system)")
            done = run_console(["run", "--config", cfg, "--out", ro])
            assert_refused(done, f"--out {ro}: not writable (read-only file system)")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        assert_refused(run_console(["run", "--config", cfg, "--out", locked]), "not writable (permission denied)")


def test_out_on_a_full_disk_is_refused_before_the_sweep(tmp_path, cfg, mountable):
    with tmpfs(tmp_path / "tiny", "size=64k") as tiny:
        (tiny / "results").mkdir()
        done = run_console(["run", "--config", cfg, "--out", tiny / "results", "--no-progress"])
        line = assert_refused(done, f"--out {tiny / 'results'}: ")
        assert "free, but the run folder needs at least" in line
        assert "data:" not in done.stderr  # refused before the candles were read
        assert os.listdir(tiny / "results") == []


def test_disk_full_while_writing_leaves_only_the_partial_folder(tmp_path, cfg, mountable):
    """A real ENOSPC: a tmpfs with room for bytes but few inodes, so the preflight passes and a write fails."""
    with tmpfs(tmp_path / "disk", "size=16m,nr_inodes=12") as disk:
        out = disk / "results"
        done = run_console(["run", "--config", cfg, "--out", out, "--no-progress", "--run-id", "full"])
        line = assert_refused(done, f"{out}: no space left on device while writing run full; its incomplete folder "
                                    ".partial-", after_work=True)
        assert "the next run removes it" in line
        left = sorted(os.listdir(out))
        assert [n for n in left if not n.startswith(".partial-")] == []  # nothing under the run's name
        assert any(n.startswith(".partial-") and (out / n).is_dir() for n in left)
        subprocess.run(["mount", "-o", "remount,nr_inodes=10000", str(disk)], check=True)
        again = run_console(["run", "--config", cfg, "--out", out, "--no-progress", "--run-id", "full"])
        assert again.returncode == 0, again.stderr
        assert "note: removed" in again.stderr and "incomplete folder of an interrupted run" in again.stderr
        assert sorted(os.listdir(out)) == ["full", "index.html"]
        assert (out / "full" / "manifest.json").exists()


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_file_size_limit_while_writing_is_one_line(tmp_path, cfg):
    """EFBIG (RLIMIT_FSIZE, any user): plotly.min.js (4.8 MB) cannot be written; same handling as a full disk."""
    warm = run_console(["run", "--config", cfg, "--out", tmp_path / "warm", "--no-progress"])  # compiled kernels
    assert warm.returncode == 0, warm.stderr
    out = tmp_path / "results"
    done = run_console(["run", "--config", cfg, "--out", out, "--no-progress", "--run-id", "big"],
                       preexec_fn=_limit_file_size)
    assert_refused(done, f"{out}: file too large while writing run big; its incomplete folder .partial-",
                   after_work=True)
    assert not (out / "big").exists()
    assert any(n.startswith(".partial-") for n in os.listdir(out))
