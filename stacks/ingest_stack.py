"""Scheduled candle ingest: EventBridge -> Lambda (Binance klines -> raw/, candles/ and meta/ of each series).

Alarms (each tells the alert topic when it fires and when it is over):

* Errors: the function failed in two consecutive 15-minute windows.
* Dead letters arrived: an event ended in the DLQ in the last 5 minutes. It returns to OK by
  itself, so the next failure notifies again (an alarm on the oldest message's age, or on the
  queue depth alone, would stay in ALARM for the 14 days the messages are kept and hide it).
* Dead letters waiting: messages sit in the DLQ; returns to OK once they are handled
  (redriven or deleted).
* Ingest lag, one per series: the watermark age the Lambda publishes as CloudWatch Embedded
  Metric Format (``Backtest/Ingest`` ``WatermarkAgeSeconds``, dimensions ``Symbol`` and
  ``Interval``) is above the threshold, or the series reported nothing, in two consecutive
  15-minute windows: an ingest that stopped running is as late as one that fails.
* Binance ban: an invocation skipped its work because of a 418 "blocked until" (``BlockedSkips``).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (Acknowledgment, Aws, CfnOutput, CfnRule, CfnRuleAssertion, Duration, Fn, RemovalPolicy, Stack,
                     Validations)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from engine import storage_layout

from .alerts_stack import notify
from .config import IngestSettings
from .grants import grant_prefixes, ingest_series_grants, locks_grant

REPO_ROOT = Path(__file__).resolve().parent.parent

# Just after each 15-minute candle closes (:00, :15, :30, :45).
SCHEDULE = "cron(1,16,31,46 * * * ? *)"
HANDLER = "lambdas/ingest/handler.handler"
RUNTIME = lambda_.Runtime.PYTHON_3_12
SDK_PANDAS_PYTHON = "py3.12"
SDK_PANDAS_ARCH = "arm64"

#: The ingest's CloudWatch Embedded Metric Format contract (lambdas/ingest/handler.py).
METRIC_NAMESPACE = "Backtest/Ingest"
WATERMARK_AGE = "WatermarkAgeSeconds"  # Seconds; dimensions Symbol, Interval; one per series per run
BLOCKED_SKIPS = "BlockedSkips"  # Count, no dimensions: an invocation skipped because of a 418 ban
#: Deploy-time guard for stacks synthesized without a known region (synth checks a known one).
US_REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "us-gov-east-1", "us-gov-west-1")

# The Lambda bundle is the repo root filtered down to what the handler imports:
# drop everything, then re-include lambdas/ingest/ and the light engine modules.
ENGINE_MODULES = (
    "engine/__init__.py",
    "engine/errors.py",
    "engine/timeutil.py",
    "engine/storage_layout.py",
    "engine/candles.py",
)
CODE_EXCLUDE = [
    "*",
    ".*",
    "!lambdas",
    "!lambdas/__init__.py",
    "!lambdas/ingest",
    "!lambdas/ingest/**",
    "!engine",
    *(f"!{m}" for m in ENGINE_MODULES),
    "!engine/data",
    "!engine/data/**",
    "__pycache__",
    "*.pyc",
]


def sdk_pandas_layer_parameter(version: str) -> str:
    """Public SSM parameter that holds the managed AWS SDK for pandas layer ARN in every region."""
    return f"/aws/service/aws-sdk-pandas/{version}/{SDK_PANDAS_PYTHON}/{SDK_PANDAS_ARCH}/layer-arn"


class IngestStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        alarm_topic: sns.ITopic,
        settings: IngestSettings = IngestSettings(),
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        CfnRule(self, "NotInAUsRegion", assertions=[CfnRuleAssertion(
            assert_=Fn.condition_not(Fn.condition_contains(list(US_REGIONS), Aws.REGION)),
            assert_description="Binance answers HTTP 451 to US addresses: deploy the ingest outside the US.",
        )])

        self.dlq = sqs.Queue(
            self, "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )

        log_group = logs.LogGroup(
            self, "Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )

        # An explicit role so that only the statements below apply (no AWS managed policy).
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        log_group.grant_write(role)

        # Its own series' raw/, candles/ and meta/ prefixes, and locks/; nothing else of the bucket.
        # It reads keys that are usually absent (the "blocked until" marker, a released lease, a new
        # series' outages.json): only a role that may list the bucket is told 404 rather than 403.
        grant_prefixes(role, bucket, [*(g for s, i in settings.series for g in ingest_series_grants(s, i)),
                                      locks_grant()], list_whole_bucket=True)

        layer_arn = ssm.StringParameter.value_for_string_parameter(
            self, sdk_pandas_layer_parameter(settings.sdk_pandas_version))

        self.function = lambda_.Function(
            self, "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(REPO_ROOT), exclude=CODE_EXCLUDE),
            layers=[lambda_.LayerVersion.from_layer_version_arn(self, "SdkForPandas", layer_arn)],
            role=role,
            memory_size=1024,
            timeout=Duration.minutes(5),
            # None by default: the series lock keeps runs apart, and reserving concurrency fails the
            # deploy on accounts whose concurrency quota is 10 (README, "Ingest").
            reserved_concurrent_executions=settings.reserved_concurrency,
            retry_attempts=2,
            max_event_age=Duration.hours(1),
            dead_letter_queue=self.dlq,
            log_group=log_group,
            environment={
                "BUCKET_NAME": bucket.bucket_name,
                "RAW_PREFIX": storage_layout.RAW_PREFIX,
                "CANDLES_PREFIX": storage_layout.CANDLES_PREFIX,
                "SYMBOLS": ",".join(settings.symbols),
                "INTERVALS": ",".join(settings.intervals),
                "HISTORY_START": settings.history_start,
                "BINANCE_BASE_URL": settings.binance_base_url,
                "MAX_PAGES_PER_RUN": str(settings.max_pages_per_run),
            },
        )
        Validations.of(self.function).acknowledge(Acknowledgment(
            id="AwsSolutions-L1",
            reason="Pinned to python3.12 on purpose: the AWS SDK for pandas managed layer is selected "
                   "for py3.12/arm64, and the engine modules in the bundle are tested on that version.",
        ))

        self.rule = events.Rule(
            self, "Schedule",
            schedule=events.Schedule.expression(SCHEDULE),
            targets=[targets.LambdaFunction(
                self.function,
                dead_letter_queue=self.dlq,
                retry_attempts=2,
                max_event_age=Duration.hours(1),
            )],
        )

        notify(cloudwatch.Alarm(
            self, "ErrorsAlarm",
            alarm_description="The ingest Lambda failed in two consecutive 15-minute windows.",
            metric=self.function.metric_errors(period=Duration.minutes(15), statistic="Sum"),
            threshold=1,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ), alarm_topic)
        notify(cloudwatch.Alarm(
            self, "DeadLettersArrivedAlarm",
            alarm_description="An ingest event ended in the dead-letter queue in the last 5 minutes. "
                              "Returns to OK by itself, so every later failure notifies again.",
            metric=self.dlq.metric_number_of_messages_sent(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ), alarm_topic)
        notify(cloudwatch.Alarm(
            self, "DeadLettersWaitingAlarm",
            alarm_description="Failed ingest events wait in the dead-letter queue; returns to OK once they "
                              "are handled (redriven or deleted).",
            metric=self.dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ), alarm_topic)
        for symbol, interval in settings.series:
            minutes = settings.lag_threshold_minutes(interval)
            notify(cloudwatch.Alarm(
                self, f"IngestLag{symbol}{'1Mo' if interval == '1M' else interval}Alarm",
                alarm_description=f"{symbol} {interval}: the newest stored candle is more than {minutes} minutes "
                                  "old, or the ingest reported nothing, in two consecutive 15-minute windows.",
                metric=cloudwatch.Metric(
                    namespace=METRIC_NAMESPACE, metric_name=WATERMARK_AGE,
                    dimensions_map={"Symbol": symbol, "Interval": interval},
                    period=Duration.minutes(15), statistic="Maximum"),
                threshold=minutes * 60,
                evaluation_periods=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                # Missing: the Lambda did not run or died before reporting; that is lag too.
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            ), alarm_topic)
        notify(cloudwatch.Alarm(
            self, "BinanceBanAlarm",
            alarm_description="Binance banned this IP (HTTP 418): the ingest skips until the ban ends.",
            metric=cloudwatch.Metric(namespace=METRIC_NAMESPACE, metric_name=BLOCKED_SKIPS,
                                     period=Duration.minutes(15), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ), alarm_topic)

        CfnOutput(self, "FunctionName", value=self.function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.dlq.queue_url)

