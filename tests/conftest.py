"""Shared fixtures. Real market data ships gzip-compressed in samples/ (see samples/README.md)."""

from __future__ import annotations

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


# Fake Binance REST and data.binance.vision servers for the market-data tests (tests/fakes/).
from fakes.fixtures import binance_fake, data_aws, vision_fake  # noqa: E402,F401
