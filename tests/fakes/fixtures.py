"""pytest fixtures for the fake servers; imported by tests/conftest.py."""

from __future__ import annotations

import pytest

from .binance_server import FakeBinance
from .botocore_models import share_loaders
from .vision_server import VisionServer

share_loaders()  # every boto3 session of the test process parses the service models once


@pytest.fixture
def binance_fake():
    """Factory: ``binance_fake(klines, **options)`` starts a FakeBinance, stopped after the test."""
    started: list[FakeBinance] = []

    def make(klines, **kw) -> FakeBinance:
        fake = FakeBinance(klines, **kw).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def vision_fake():
    """Factory: ``vision_fake(folder)`` serves a data.binance.vision-like tree, stopped after the test."""
    started: list[VisionServer] = []

    def make(root) -> VisionServer:
        server = VisionServer(root).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def data_aws(monkeypatch):
    """In-process fake AWS (moto) with dummy credentials; boto3 and awswrangler talk to it."""
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield
