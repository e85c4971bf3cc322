"""The operations view: one CloudWatch dashboard for the ingest and the Batch sweeps.

Rows: the alarms' states; ingest lag (the oldest watermark age against its threshold, lagging
series); invocations (dispatcher, worker, units dispatched, candles added); errors (invocation
errors, series failures, dead letters, the work queue's depth and oldest message); gaps (repaired,
remaining) and Binance refusals (418, 451); Batch job states (a Logs Insights count of the job
state changes the Batch stack logs). Its widgets are constant in the number of series.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from .batch_stack import BatchStack
from .ingest_stack import IngestStack, ingest_metric

BATCH_STATES_QUERY = "stats count(*) as jobs by detail.status | sort jobs desc"
BATCH_STATES_OVER_TIME = "stats count(*) as changes by bin(1h), detail.status"


class DashboardStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, ingest: IngestStack, batch: BatchStack,
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        quarter, five, day = Duration.minutes(15), Duration.minutes(5), Duration.days(1)
        threshold = ingest.settings.lag_alarm_minutes * 60

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.days(2))
        self.dashboard.add_widgets(cw.AlarmStatusWidget(
            title="Alarms", alarms=list(ingest.alarms.values()), width=24, height=3))
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Ingest lag: oldest watermark age (s)", width=12,
                left=[ingest_metric("OldestWatermarkAgeSeconds", "Maximum", five)],
                left_annotations=[cw.HorizontalAnnotation(value=threshold, label="alarm threshold")]),
            cw.GraphWidget(title="Series above the threshold", width=12,
                           left=[ingest_metric("LaggingSeries", "Maximum", five)]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Invocations", width=12, left=[
                ingest.dispatcher.metric_invocations(period=quarter, statistic="Sum", label="dispatcher"),
                ingest.worker.metric_invocations(period=quarter, statistic="Sum", label="worker"),
                ingest_metric("UnitsDispatched", "Sum", quarter)]),
            cw.GraphWidget(title="Candles added", width=12, left=[ingest_metric("CandlesAdded", "Sum", quarter)]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Errors", width=12, left=[
                ingest.dispatcher.metric_errors(period=quarter, statistic="Sum", label="dispatcher errors"),
                ingest.worker.metric_errors(period=quarter, statistic="Sum", label="worker errors"),
                ingest_metric("SeriesFailures", "Sum", quarter),
                ingest_metric("DeadLettered", "Sum", quarter),
                ingest.dlq.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum",
                                                                         label="in the DLQ")]),
            cw.GraphWidget(title="Work queue", width=12, left=[
                ingest.queue.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum",
                                                                           label="waiting")],
                           right=[ingest.queue.metric_approximate_age_of_oldest_message(
                               period=five, statistic="Maximum", label="oldest message (s)")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Gaps (daily repair pass)", width=12, left=[
                ingest_metric("GapsRepaired", "Sum", day), ingest_metric("GapsRemaining", "Sum", day)]),
            cw.GraphWidget(title="Binance refusals", width=12, left=[
                ingest_metric("BlockedSkips", "Sum", quarter), ingest_metric("GeoBlocked", "Sum", quarter)]),
        )
        self.dashboard.add_widgets(
            cw.LogQueryWidget(title="Batch job states (changes in the period)", width=8,
                              log_group_names=[batch.job_state_logs.log_group_name],
                              query_string=BATCH_STATES_QUERY, view=cw.LogQueryVisualizationType.TABLE),
            cw.LogQueryWidget(title="Batch job state changes per hour", width=16,
                              log_group_names=[batch.job_state_logs.log_group_name],
                              query_string=BATCH_STATES_OVER_TIME, view=cw.LogQueryVisualizationType.BAR),
        )
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)
