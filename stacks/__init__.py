"""CDK stacks, one per lifecycle: storage (kept forever), alerts (who hears alarms), ingest (scheduled),
batch (sweeps), query (SQL over the bucket), dashboard (the operations view)."""

from __future__ import annotations

import os
from typing import Mapping, NamedTuple

from aws_cdk import App, Environment, Tags

from .alerts_stack import AlertsStack, refuse_deploy_without_alarm_email
from .batch_stack import BatchStack
from .config import (AppSettings, BatchSettings, IngestSettings, QuerySettings, SettingsError, StorageSettings,
                     check_ingest_region)
from .dashboard_stack import DashboardStack
from .ingest_stack import IngestStack
from .query_stack import QueryStack
from .storage_stack import StorageStack

__all__ = ["AlertsStack", "AppSettings", "BacktestStacks", "BatchSettings", "BatchStack", "DashboardStack",
           "IngestSettings", "IngestStack", "QuerySettings", "QueryStack", "SettingsError", "StorageSettings",
           "StorageStack", "build", "profile_region"]


class BacktestStacks(NamedTuple):
    storage: StorageStack
    alerts: AlertsStack
    ingest: IngestStack
    batch: BatchStack
    query: QueryStack
    dashboard: DashboardStack


def profile_region() -> str | None:
    """The region the AWS configuration names (environment or profile), as botocore finds it; None without one."""
    try:
        import botocore.session

        return botocore.session.Session().get_config_variable("region")
    except Exception:  # noqa: BLE001 - an unreadable configuration names no region
        return None


def build(app: App, environ: Mapping[str, str] = os.environ, region_of_profile: str | None = None) -> BacktestStacks:
    """Add the stacks to ``app``, with settings from its context (see stacks/config.py).

    Raises :class:`SettingsError` for a bad context value or a US region (the ingest's Binance
    calls would all be refused there).
    """
    settings = AppSettings.from_context(app.node, environ, region_of_profile)
    ingest_settings = IngestSettings.from_context(app.node)
    batch_settings = BatchSettings.from_context(app.node)
    storage_settings = StorageSettings.from_context(app.node)
    query_settings = QuerySettings.from_context(app.node, ingest_settings.history_start)
    check_ingest_region(settings.region)
    # -c region=… or the default region pins the stacks there; a region from the AWS configuration
    # leaves them to the CLI's region (env-agnostic), which is that same region.
    env = None
    if settings.pin_region:
        env = Environment(account=environ.get("CDK_DEFAULT_ACCOUNT"), region=settings.region)

    storage = StorageStack(app, "BacktestStorage", env=env, settings=storage_settings,
                           description="Backtest dataset bucket (retained)")
    alerts = AlertsStack(app, "BacktestAlerts", env=env, settings=settings,
                         description="Backtest: the topic every alarm and failed Batch job reaches")
    ingest = IngestStack(
        app, "BacktestIngest",
        env=env,
        bucket=storage.bucket,
        alarm_topic=alerts.topic,
        alarm_key=alerts.key,
        settings=ingest_settings,
        description="Backtest: scheduled Binance candle ingest, one series per invocation",
    )
    batch = BatchStack(
        app, "BacktestBatch",
        env=env,
        bucket=storage.bucket,
        alarm_topic=alerts.topic,
        settings=batch_settings,
        description="Backtest: sweeps on AWS Batch Fargate",
    )
    query = QueryStack(app, "BacktestQuery", env=env, bucket=storage.bucket, settings=query_settings,
                       description="Backtest: Glue table over candles/ (partition projection) and an Athena workgroup")
    dashboard = DashboardStack(app, "BacktestDashboard", env=env, ingest=ingest, batch=batch,
                               description="Backtest: the operations dashboard")
    built = BacktestStacks(storage, alerts, ingest, batch, query, dashboard)
    if not settings.alarm_email and not settings.no_alarm_email:
        for stack in built:
            refuse_deploy_without_alarm_email(stack)
    for key, value in settings.all_tags.items():
        Tags.of(app).add(key, value)
    return built
