"""Shared fixtures. Real market data ships gzip-compressed in samples/ (see samples/README.md)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
REAL_15M = SAMPLES / "BTCUSDT-15m-spot-2024-01-29_2025-03-21.csv.gz"
REAL_5M = SAMPLES / "BTCUSDT-5m-spot-2024-08-22_2024-10-30.csv.gz"


def _need(path: Path) -> Path:
    assert path.is_file(), f"{path} is missing: the sample candles ship with the repository"
    return path


@pytest.fixture(scope="session")
def real_15m_csv() -> Path:
    return _need(REAL_15M)


@pytest.fixture(scope="session")
def real_5m_csv() -> Path:
    return _need(REAL_5M)


#: .ci/run sets BACKTEST_TEST_PROFILE=ci: the property tests run their full number of examples there;
#: a developer's `make test` runs fewer of each (the same properties, fewer random cases).
CI = os.environ.get("BACKTEST_TEST_PROFILE") == "ci"


def examples(ci: int, local: int) -> int:
    """Hypothesis examples per property test: ``ci`` in CI, ``local`` elsewhere."""
    return ci if CI else local


def shared_tmp(tmp_path_factory) -> Path:
    """A temp folder shared by every xdist worker of this test run (pytest rotates it away)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """Cross-process lock, so that xdist workers build a shared fixture once whatever the scheduling."""
    import fcntl

    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_json(tmp_path_factory, name: str, build):
    """``build()`` (a JSON value) computed once per test run, by whichever xdist worker asks first.

    For fixtures that cost seconds of CPU, such as an in-process CDK synth: each worker that synthesizes
    pays for the CDK's validation engine again (7 s of CPU), so the results are shared, not the app."""
    shared = shared_tmp(tmp_path_factory)
    path = shared / f"{name}.json"
    with exclusive(shared / f"{name}.lock"):
        if not path.exists():
            partial = path.with_suffix(".partial")
            partial.write_text(json.dumps(build()))
            partial.replace(path)
    return json.loads(path.read_text())


#: The run that fills the shared cold cache: the default strategy on synthetic candles, no PNG charts
#: (their worker processes compile nothing and cost seconds).
COLD_RUN_CONFIG = """
experiment: {name: cold}
data: {source: synthetic, synthetic_bars: 3000, seed: 3}
risk: {stop_loss: 0.02}
strategies:
  ma_crossover: {short_window: [5, 10], long_window: [30, 60]}
report: {top_k: 2}
"""


@dataclass(frozen=True)
class ColdCache:
    config: Path  # COLD_RUN_CONFIG
    first_run: subprocess.CompletedProcess  # the `backtest run` that filled the cache from empty
    runs: Path  # its --out folder
    cache: Path  # the NUMBA_CACHE_DIR it filled
    pristine: Path  # a NUMBA_CACHE_DIR holding only what that run compiled

    def copy(self, to: Path) -> Path:
        """A private NUMBA_CACHE_DIR at ``to`` holding what the cold run compiled (the way the CLI copies a
        read-only cache: the generated kernels' entries renamed for the new place, so nothing recompiles)."""
        from backtest_cli.caches import seed

        seed(self.pristine, to)
        return to


@pytest.fixture(scope="session")
def cold_cache(tmp_path_factory) -> ColdCache:
    """One `backtest run` of COLD_RUN_CONFIG on an empty numba cache (a fresh machine): it compiles the fast
    path's loop, ma_crossover's rule unit and the sma indicator. Built once per test run and shared by the
    xdist workers, so the tests of what an empty cache does read its output, and the tests that compile
    something else on purpose (the warmup, an edited user rule) start from a copy instead of compiling
    the loop again (6 s of CPU each)."""
    root = shared_tmp(tmp_path_factory) / "cold-cache"
    config, runs, pristine = root / "cfg.yaml", root / "runs", root / "pristine"
    with exclusive(root.with_name("cold-cache.lock")):
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            config.write_text(COLD_RUN_CONFIG)
            env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
            env.update(NUMBA_CACHE_DIR=str(root / "numba"), MPLCONFIGDIR=str(root / "mpl"))
            done = subprocess.run([str(Path(sys.executable).parent / "backtest"), "run", "--config", str(config),
                                   "--out", str(runs), "--no-progress"], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=900)
            (root / "returncode").write_text(str(done.returncode))
            (root / "stdout").write_text(done.stdout)
            (root / "stderr").write_text(done.stderr)
            ColdCache(config, done, runs, None, root / "numba").copy(pristine)  # the shared one gets more
            (root / "done").touch()
    first = subprocess.CompletedProcess([], int((root / "returncode").read_text()), (root / "stdout").read_text(),
                                        (root / "stderr").read_text())
    assert first.returncode == 0, first.stderr
    return ColdCache(config, first, runs, root / "numba", pristine)


# Fake Binance REST and data.binance.vision servers for the market-data tests (tests/fakes/).
from fakes.fixtures import binance_fake, data_aws, vision_fake  # noqa: E402,F401
