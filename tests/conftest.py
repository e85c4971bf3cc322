"""Shared fixtures. Real market data ships gzip-compressed in samples/ (see samples/README.md)."""

from __future__ import annotations

import contextlib
import json
import os
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


# Fake Binance REST and data.binance.vision servers for the market-data tests (tests/fakes/).
from fakes.fixtures import binance_fake, data_aws, vision_fake  # noqa: E402,F401
