"""Scheduled candle ingest: EventBridge -> Lambda (Binance klines -> raw/ and candles/)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from engine import storage_layout

from .config import IngestSettings
from .grants import list_prefixes_statement
from .nag import acknowledge_wildcard_resources

REPO_ROOT = Path(__file__).resolve().parent.parent

# Just after each 15-minute candle closes (:00, :15, :30, :45).
SCHEDULE = "cron(1,16,31,46 * * * ? *)"
HANDLER = "lambdas/ingest/handler.handler"
RUNTIME = lambda_.Runtime.PYTHON_3_12
SDK_PANDAS_PYTHON = "py3.12"
SDK_PANDAS_ARCH = "arm64"

# The Lambda bundle is the repo root filtered down to what the handler imports:
# drop everything, then re-include lambdas/ingest/ and the light engine modules.
ENGINE_MODULES = (
    "engine/__init__.py",
    "engine/errors.py",
    "engine/timeutil.py",
    "engine/storage_layout.py",
    "engine/candles.py",
    "engine/candle_checks.py",
    "engine/loader.py",
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
        settings: IngestSettings = IngestSettings(),
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

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

        grants = s3.BucketGrants.from_bucket(bucket)
        raw_keys = storage_layout.RAW_PREFIX + "*"
        candle_keys = storage_layout.CANDLES_PREFIX + "*"
        # raw/ batches are immutable and only ever written.
        grants.actions_on_object_keys(role, raw_keys, "s3:PutObject", "s3:AbortMultipartUpload")
        # candles/ is read to find the watermark, and month partitions are rewritten (upsert).
        grants.actions_on_object_keys(
            role, candle_keys,
            "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
        role.add_to_principal_policy(list_prefixes_statement(bucket, storage_layout.CANDLES_PREFIX))
        acknowledge_wildcard_resources(
            role, [bucket.arn_for_objects(raw_keys), bucket.arn_for_objects(candle_keys)],
            "Object access is limited to the raw/ and candles/ key prefixes of the dataset bucket; "
            "the trailing * covers the partition keys the ingest writes (symbol/interval/year/month).")

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
            reserved_concurrent_executions=1,
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

        cloudwatch.Alarm(
            self, "ErrorsAlarm",
            alarm_description="The ingest Lambda failed in two consecutive 15-minute windows.",
            metric=self.function.metric_errors(period=Duration.minutes(15), statistic="Sum"),
            threshold=1,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        cloudwatch.Alarm(
            self, "DeadLettersAlarm",
            alarm_description="Ingest events ended in the dead-letter queue.",
            metric=self.dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        CfnOutput(self, "FunctionName", value=self.function.function_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.dlq.queue_url)

