"""Shared fixtures. Real market data lives in ../shared/data beside the repo and is never copied in."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_15M = SHARED_DATA / "BTCUSDT-15m-spot-2024-01-29_2025-03-21.csv"
REAL_5M = SHARED_DATA / "BTCUSDT-5m-spot-2024-08-22_2024-10-30.csv"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real candles not found at {path} (../shared/data is absent on this machine)")
    return path


@pytest.fixture(scope="session")
def real_15m_csv() -> Path:
    return _need(REAL_15M)


@pytest.fixture(scope="session")
def real_5m_csv() -> Path:
    return _need(REAL_5M)


# Fake Binance REST and data.binance.vision servers for the market-data tests (tests/fakes/).
from fakes.fixtures import binance_fake, data_aws, vision_fake  # noqa: E402,F401
