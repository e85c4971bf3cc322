"""CDK stacks, one per lifecycle: storage (kept forever), ingest (scheduled), batch (sweeps)."""

from __future__ import annotations

from typing import NamedTuple

from aws_cdk import App

from .batch_stack import BatchStack
from .config import BatchSettings, IngestSettings
from .ingest_stack import IngestStack
from .storage_stack import StorageStack

__all__ = ["BacktestStacks", "BatchSettings", "BatchStack", "IngestSettings", "IngestStack", "StorageStack", "build"]


class BacktestStacks(NamedTuple):
    storage: StorageStack
    ingest: IngestStack
    batch: BatchStack


def build(app: App) -> BacktestStacks:
    """Add the three stacks to ``app``, with settings from its context (see stacks/config.py)."""
    storage = StorageStack(app, "BacktestStorage", description="Backtest dataset bucket (retained)")
    ingest = IngestStack(
        app, "BacktestIngest",
        bucket=storage.bucket,
        settings=IngestSettings.from_context(app.node),
        description="Backtest: scheduled Binance candle ingest",
    )
    batch = BatchStack(
        app, "BacktestBatch",
        bucket=storage.bucket,
        settings=BatchSettings.from_context(app.node),
        description="Backtest: sweeps on AWS Batch Fargate",
    )
    return BacktestStacks(storage, ingest, batch)
