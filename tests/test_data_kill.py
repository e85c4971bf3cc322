"""SIGKILL at seeded random points of ``data fetch`` and ``data build``, then a re-run:
the dataset is complete, no temporary file is left, the lock is free, and no process is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data.build import build_dataset
from engine.data.fetch import fetch_candles
from engine.data.series_lock import LocalSeriesLock
from fakes.candles import assert_same, stored, synthetic_klines

REPO = Path(__file__).resolve().parent.parent
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def _litter(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def _processes_using(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (a unique folder of this test)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            state = (entry / "stat").read_text().split(") ", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            pids.append(int(entry.name))
    return pids


def _kill_then_check(proc: subprocess.Popen, delay: float, out: Path) -> str:
    """SIGKILL ``proc`` after ``delay`` s (unless it finished first); returns what happened."""
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert _processes_using(str(out)) == []
    return "killed" if proc.returncode == -signal.SIGKILL else f"exited {proc.returncode}"


def _assert_clean(out: Path) -> None:
    assert _litter(out) == []
    lock = LocalSeriesLock(out, "BTCUSDT", "15m")
    assert lock.try_acquire()  # nobody holds it
    lock.release()


@pytest.mark.parametrize("seed", range(6))
def test_fetch_killed_at_a_random_moment_then_rerun(binance_fake, tmp_path, seed):
    rng = np.random.default_rng(seed)
    fake = binance_fake(synthetic_klines(T0, 7000))
    out = tmp_path / f"fetch-{seed}"
    # Half the seeds kill by time (start-up, lock, paging, writing); half inside a chosen request.
    by_request = bool(seed % 2)
    at = int(rng.integers(0, 7))
    proc_box: list[subprocess.Popen] = []
    if by_request:
        fake.on_klines = lambda index: os.kill(proc_box[0].pid, signal.SIGKILL) if index == at else None
    else:
        fake.on_klines = lambda index: time.sleep(0.05)  # spread the fetch over the kill window
    proc = subprocess.Popen([sys.executable, "-m", "backtest_cli", "data", "fetch", "--symbol", "BTCUSDT",
                             "--interval", "15m", "--start", "2024-01-01", "--out", str(out),
                             "--base-url", fake.base_url], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    proc_box.append(proc)
    _kill_then_check(proc, 60 if by_request else float(rng.uniform(0.3, 2.5)), out)
    fake.on_klines = None
    if out.exists():  # what was committed before the kill is intact
        partial = stored(out) if any(out.rglob("*.parquet")) else None
        if partial is not None:
            truth = fake.truth()
            assert_same(partial, truth.loc[truth.open_time.isin(partial.open_time)])
    result = fetch_candles(str(out), "BTCUSDT", "15m", T0, client=fake.client())
    assert_same(stored(out), fake.truth())
    assert result.gaps.count == 0
    _assert_clean(out)


@pytest.fixture(scope="module")
def build_input(tmp_path_factory):
    """The candles every build seed imports, and their CSV (read-only to the builds): made once, 0.7 s of CPU."""
    k = synthetic_klines(T0, 30_000)  # ten month partitions
    folder = tmp_path_factory.mktemp("build-input")
    return k, _csv(folder / "input.csv", k), _csv(folder / "before.csv", k.iloc[:500])


@pytest.mark.parametrize("seed", range(5))
def test_build_killed_at_a_random_moment_then_rerun(build_input, tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    k, src, before_csv = build_input
    out = tmp_path / f"build-{seed}"
    before = k.iloc[:500]  # a dataset that already exists: it must survive the kill whole
    build_dataset([before_csv], str(out), "BTCUSDT", "15m")
    proc = subprocess.Popen([sys.executable, "-m", "backtest_cli", "data", "build", "--input", str(src),
                             "--symbol", "BTCUSDT", "--interval", "15m", "--out", str(out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_then_check(proc, float(rng.uniform(0.6, 1.6)), out)
    now = stored(out)
    assert now.open_time.isin(k.open_time).all() and before.open_time.isin(now.open_time).all()
    build_dataset([src], str(out), "BTCUSDT", "15m")
    assert_same(stored(out), k)
    _assert_clean(out)


def _csv(path: Path, k: pd.DataFrame) -> Path:
    k.assign(ignore=0).to_csv(path, header=False, index=False, float_format="%.8f")
    return path
