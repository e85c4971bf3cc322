"""CDK stacks, one per lifecycle: storage (kept forever), alerts (who hears alarms), ingest (scheduled),
batch (sweeps)."""

from __future__ import annotations

import os
from typing import Mapping, NamedTuple

from aws_cdk import App, Environment, Tags

from .alerts_stack import AlertsStack
from .batch_stack import BatchStack
from .config import AppSettings, BatchSettings, IngestSettings, SettingsError, check_ingest_region
from .ingest_stack import IngestStack
from .storage_stack import StorageStack

__all__ = ["AlertsStack", "AppSettings", "BacktestStacks", "BatchSettings", "BatchStack", "IngestSettings",
           "IngestStack", "SettingsError", "StorageStack", "build"]


class BacktestStacks(NamedTuple):
    storage: StorageStack
    alerts: AlertsStack
    ingest: IngestStack
    batch: BatchStack


def build(app: App, environ: Mapping[str, str] = os.environ) -> BacktestStacks:
    """Add the stacks to ``app``, with settings from its context (see stacks/config.py).

    Raises :class:`SettingsError` for a bad context value or a US region (the ingest's Binance
    calls would all be refused there).
    """
    settings = AppSettings.from_context(app.node, environ)
    ingest_settings = IngestSettings.from_context(app.node)
    batch_settings = BatchSettings.from_context(app.node)
    check_ingest_region(settings.region)
    # -c region=… pins the stacks there; otherwise they deploy to the CLI's region (env-agnostic).
    env = None
    if app.node.try_get_context("region"):
        env = Environment(account=environ.get("CDK_DEFAULT_ACCOUNT"), region=settings.region)

    storage = StorageStack(app, "BacktestStorage", env=env, description="Backtest dataset bucket (retained)")
    alerts = AlertsStack(app, "BacktestAlerts", env=env, settings=settings,
                         description="Backtest: the topic every alarm and failed Batch job reaches")
    ingest = IngestStack(
        app, "BacktestIngest",
        env=env,
        bucket=storage.bucket,
        alarm_topic=alerts.topic,
        settings=ingest_settings,
        description="Backtest: scheduled Binance candle ingest",
    )
    batch = BatchStack(
        app, "BacktestBatch",
        env=env,
        bucket=storage.bucket,
        alarm_topic=alerts.topic,
        settings=batch_settings,
        description="Backtest: sweeps on AWS Batch Fargate",
    )
    for key, value in settings.all_tags.items():
        Tags.of(app).add(key, value)
    return BacktestStacks(storage, alerts, ingest, batch)
