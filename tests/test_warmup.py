"""After ``python -m engine.warmup`` (what the image build runs), a real-data sweep compiles nothing.

The image warms every built-in, and `make image-check` runs its sweeps; here the warmup is limited
to the default config's strategy (``python -m engine.warmup ma_crossover``: the loop, its rule unit
and the indicators it reads), the same path at a quarter of the compile time.

The warmup starts from a copy of the shared cold cache (tests/conftest.py: one run's loop, rule and
indicator, so they are not compiled a third time) and runs with numba's cache log (NUMBA_DEBUG_CACHE),
which names every piece of compiled code it loads or saves. Every piece a later run loads must be one
the warmup loaded or saved, i.e. one it asks for: on an empty cache, the warmup alone would have
compiled it. Each check runs the CLI in a fresh process and compares the cache folder's index (.nbi)
and data (.nbc) files before and after; the cache log must show loads and no saves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest_cli import main
from conftest import exclusive, shared_tmp
from engine.data.loader import load_candles

REPO = Path(__file__).resolve().parent.parent
BACKTEST = Path(sys.executable).parent / "backtest"


def snapshot(cache: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(cache)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc")}


def cli(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(BACKTEST), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
                          **kwargs)


def read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)


def cache_log(stdout: str, what: str) -> set[str]:
    """The compiled code numba's cache log (NUMBA_DEBUG_CACHE) says was ``what`` ("loaded", "saved"), by
    file name: the same in a copy of the cache (the CLI's private copy renames folders, not files)."""
    return {Path(line.rsplit(" ", 1)[1].strip("'")).name for line in stdout.splitlines()
            if line.startswith(f"[cache] data {what} ")}


@pytest.fixture(scope="session")
def warm(tmp_path_factory, real_15m_csv, cold_cache):
    """A numba cache filled by the warmup (on top of the cold run's), what the warmup asked numba for, and a
    read-only Parquet dataset of the real candles: built once per test run, shared by the xdist workers."""
    root = shared_tmp(tmp_path_factory) / "warmup"
    cache = root / "numba"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(NUMBA_CACHE_DIR=str(cache), MPLCONFIGDIR=str(root / "mpl"))
    dataset = root / "dataset"
    with exclusive(root.with_name("warmup.lock")):
        if not (root / "done").exists():
            if root.exists():
                restore(root)
                shutil.rmtree(root)
            root.mkdir()
            root.chmod(0o755)
            cold_cache.copy(cache)
            done = subprocess.run([sys.executable, "-m", "engine.warmup", "ma_crossover"], cwd=REPO,
                                  env={**env, "NUMBA_DEBUG_CACHE": "1"}, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines()[-1] == "compiled: ma_crossover", done.stdout
            assert cache_log(done.stdout, "saved"), "the warmup compiled nothing the cold run had not"
            (root / "asked").write_text("\n".join(sorted(cache_log(done.stdout, "loaded")
                                                         | cache_log(done.stdout, "saved"))))
            assert main(["data", "build", "--input", str(real_15m_csv), "--symbol", "BTCUSDT", "--interval", "15m",
                         "--out", str(dataset)]) == 0
            read_only(dataset)
            (root / "done").touch()
    yield root, cache, dataset, env, set((root / "asked").read_text().split())


def restore(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def test_loaders_hand_the_kernels_one_writeable_contiguous_layout(warm, real_15m_csv):
    """Pandas 3 and Arrow give read-only views; numba would compile a second kernel for them."""
    _, _, dataset, _, _ = warm
    for source in (dataset, real_15m_csv):
        c = load_candles(source)
        for name in ("open_time", "open", "high", "low", "close", "volume"):
            a = getattr(c, name)
            assert a.flags.c_contiguous and a.flags.writeable, (source, name)
            assert a.dtype == (np.int64 if name == "open_time" else np.float64)


def test_sweep_on_read_only_parquet_after_warmup_compiles_nothing(warm, tmp_path):
    root, cache, dataset, env, asked = warm
    before = snapshot(cache)
    done = cli(["run", "--data", str(dataset), "--out", str(tmp_path / "res"), "--no-progress"],
               {**env, "NUMBA_DEBUG_CACHE": "1"})
    assert done.returncode == 0, done.stderr
    assert "[cache] data saved" not in done.stdout
    assert done.stdout.count("[cache] data loaded") >= 2  # the sweep kernel and its indicators
    assert cache_log(done.stdout, "loaded") <= asked  # all of it the warmup's
    assert snapshot(cache) == before
    (run_dir,) = (p for p in (tmp_path / "res").iterdir() if p.is_dir())  # index.html lies beside it
    assert len(pd.read_csv(run_dir / "summary.csv")) == 64
    assert "40,000 candles" in done.stderr


# Runs a command with ``$0`` bind-mounted read-only in a private mount namespace (root only).
READ_ONLY_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX only")
def test_a_read_only_baked_cache_is_copied_privately_and_nothing_recompiles(warm, tmp_path):
    """``docker run --user`` / ``--read-only``: numba refuses a cache folder it cannot write, so the
    CLI copies it into the temp folder (renaming the generated kernels' entries) and runs from there."""
    root, cache, dataset, env, asked = warm
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**env, "NUMBA_DEBUG_CACHE": "1", "TMPDIR": str(tmp)}
    env.pop("MPLCONFIGDIR")
    env["HOME"] = str(tmp_path / "no-home")  # and ~/.cache cannot be written either
    (tmp_path / "no-home").mkdir(mode=0o555)
    run = [str(BACKTEST), "run", "--data", str(dataset), "--out", str(tmp_path / "res"), "--no-progress"]
    if os.getuid() == 0:  # root writes anywhere: make the cache a read-only mount instead, like --read-only
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_MOUNT]
        probe = subprocess.run([*wrap, str(cache), "sh", "-c", f"! touch {cache}/probe"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here (unshare/mount): {probe.stderr.decode()[-200:]}")
        cmd = [*wrap, str(cache), *run]
        env["HOME"] = str(tmp_path)  # root can write any home: only the numba part is tested
    else:
        read_only(cache)
        cmd = run
    try:
        before = snapshot(cache)
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        assert "[cache] data saved" not in done.stdout
        assert done.stdout.count("[cache] data loaded") >= 2
        assert cache_log(done.stdout, "loaded") <= asked
        private = tmp / f"backtest-{os.getuid()}"
        assert f"data loaded from '{private}/numba/" in done.stdout  # loaded from the private copy…
        assert snapshot(cache) == before  # …and the baked cache is untouched
        assert "Matplotlib created a temporary" not in done.stderr
        assert (private / "matplotlib").is_dir() == (os.getuid() != 0)
    finally:
        restore(cache)
