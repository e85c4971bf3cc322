"""Scheduled candle ingest at the scale of a market: a dispatcher fans out one unit of work per
series through SQS to workers of bounded concurrency.

* **Schedules** (EventBridge): ``ingest`` at minutes 1, 16, 31, 46; ``repair`` daily at 03:07 UTC.
  Each invokes the dispatcher with a constant input naming the configured series
  (lambdas/ingest/units.py), so the series list lives in the rule, not in an environment
  variable (4 KB) or a policy.
* **Dispatcher** (Lambda): reads the watermark index, sends one message per series to the work
  queue (not while the previous one is outstanding), publishes ``OldestWatermarkAgeSeconds`` and
  a digest naming lagging series to the alarm topic (lambdas/ingest/dispatcher.py).
* **Work queue** (SQS) -> **worker** (Lambda) through an event source mapping with batch size 1,
  ``maximumConcurrency`` = ``ingestConcurrency`` and partial batch responses: one series per
  invocation; a failed series alone is retried after the visibility timeout and, after
  :data:`MAX_RECEIVES` attempts, moved alone to the dead-letter queue.
* **Watermark index** (DynamoDB, on demand): one item per series, written by the workers (per
  market, by IAM condition on the key) and the dispatcher.

Alarms, constant in number whatever the number of series (each tells the alert topic when it
fires and when it is over): ingest lag (the oldest watermark age), errors, dead letters arrived,
dead letters waiting, Binance ban (418), geo-blocked (451), gaps remaining two days.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (Acknowledgment, Aws, CfnOutput, CfnRule, CfnRuleAssertion, Duration, Fn, RemovalPolicy, Stack,
                     Validations)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from lambdas.ingest.lag import SCHEDULE_PERIOD_MS
from lambdas.ingest.runtime import METRIC_NAMESPACE, METRICS
from lambdas.ingest.units import TASK_INGEST, TASK_REPAIR, index_key_prefix

from .alerts_stack import notify
from .config import LAYER, IngestSettings
from .grants import dispatcher_grants, grant_prefixes, ingest_market_grants

REPO_ROOT = Path(__file__).resolve().parent.parent

# Just after each 15-minute candle closes (:00, :15, :30, :45); the lag measure assumes this period.
SCHEDULE = "cron(1,16,31,46 * * * ? *)"
assert SCHEDULE_PERIOD_MS == 15 * 60_000
REPAIR_SCHEDULE = "cron(7 3 * * ? *)"
HANDLERS = ("lambdas/ingest/dispatcher.handler", "lambdas/ingest/worker.handler")
DISPATCHER_HANDLER, WORKER_HANDLER = HANDLERS
RUNTIME = getattr(lambda_.Runtime, "PYTHON_" + LAYER["python"].replace(".", "_"))
SDK_PANDAS_PYTHON = f"py{LAYER['python']}"
SDK_PANDAS_ARCH = LAYER["architecture"]
#: Attempts of one unit before SQS moves it to the dead-letter queue.
MAX_RECEIVES = 3
DISPATCHER_TIMEOUT_S = 60
#: Deploy-time guard for stacks synthesized without a known region (synth checks a known one).
US_REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "us-gov-east-1", "us-gov-west-1")

# The Lambda bundle is the repo root filtered down to what the handlers import:
# drop everything, then re-include lambdas/ingest/ and the light engine modules.
ENGINE_MODULES = (
    "engine/__init__.py",
    "engine/errors.py",
    "engine/timeutil.py",
    "engine/storage_layout.py",
    "engine/candles.py",
    "engine/filenames.py",
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


def layer_check_reason(version: str) -> str:
    """The cdk-nag acknowledgement of the pinned runtime: exactly what `make layer-check` tests."""
    packages = ", ".join(f"{k} {v}" for k, v in LAYER["packages"].items())
    return (f"Pinned to python{LAYER['python']} on purpose: the AWS SDK for pandas managed layer {version} is "
            f"selected for {SDK_PANDAS_PYTHON}/{SDK_PANDAS_ARCH}. `make layer-check` (run by CI) installs Python "
            f"{LAYER['python']} with the layer's {packages} (lambdas/ingest/layer.json) in a separate venv and runs "
            "the worker's and the dispatcher's tests there (tests/test_ingest.py, tests/test_ingest_fanout.py: "
            "moto S3, DynamoDB, SQS and SNS, a fake Binance on 127.0.0.1).")


def ingest_metric(name: str, statistic: str, period: Duration) -> cloudwatch.Metric:
    if name not in METRICS:
        raise ValueError(f"{name} is not an ingest metric")
    return cloudwatch.Metric(namespace=METRIC_NAMESPACE, metric_name=name, statistic=statistic, period=period)


class IngestStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        alarm_topic: sns.ITopic,
        alarm_key: kms.IKey | None = None,
        settings: IngestSettings = IngestSettings(),
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings

        CfnRule(self, "NotInAUsRegion", assertions=[CfnRuleAssertion(
            assert_=Fn.condition_not(Fn.condition_contains(list(US_REGIONS), Aws.REGION)),
            assert_description="Binance answers HTTP 451 to US addresses: deploy the ingest outside the US.",
        )])

        # ---- queues and the index
        self.dlq = sqs.Queue(self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                             retention_period=Duration.days(14))
        self.dispatch_dlq = sqs.Queue(self, "DispatchDeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED,
                                      enforce_ssl=True, retention_period=Duration.days(14))
        # AWS's advice for an SQS event source: a visibility timeout of 6 x the function's timeout.
        self.visibility_timeout_s = 6 * settings.timeout_seconds
        self.queue = sqs.Queue(
            self, "WorkQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(self.visibility_timeout_s),
            retention_period=Duration.days(1),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=MAX_RECEIVES),
        )
        # Derived state (the S3 data is the truth): rebuilt by the next run of each series if lost.
        self.index = dynamodb.Table(
            self, "WatermarkIndex",
            partition_key=dynamodb.Attribute(name="unit", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            removal_policy=RemovalPolicy.DESTROY,
        )

        # ---- the functions
        layer_arn = ssm.StringParameter.value_for_string_parameter(
            self, sdk_pandas_layer_parameter(settings.sdk_pandas_version))
        layer = lambda_.LayerVersion.from_layer_version_arn(self, "SdkForPandas", layer_arn)
        code = lambda_.Code.from_asset(str(REPO_ROOT), exclude=CODE_EXCLUDE)
        common_env = {
            "BUCKET_NAME": bucket.bucket_name,
            "INDEX_TABLE": self.index.table_name,
            "HISTORY_START": settings.history_start,
            "BINANCE_BASE_URL": settings.binance_base_url,
            **({"BINANCE_FAPI_BASE_URL": settings.binance_fapi_base_url} if settings.perp_symbols else {}),
        }
        # The longest a unit's message lives before it is done or dead-lettered, plus a slot.
        outstanding_s = self.visibility_timeout_s * MAX_RECEIVES + SCHEDULE_PERIOD_MS // 1000

        self.worker_role = iam.Role(self, "WorkerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.worker = self._function(
            "Worker", WORKER_HANDLER, code, layer, self.worker_role, memory=1024, timeout_s=settings.timeout_seconds,
            environment={**common_env, "MAX_PAGES_PER_RUN": str(settings.max_pages_per_run),
                         "MAX_RECEIVES": str(MAX_RECEIVES)})
        self.worker.add_event_source(sources.SqsEventSource(
            self.queue, batch_size=1, max_concurrency=settings.concurrency, report_batch_item_failures=True))

        self.dispatcher_role = iam.Role(self, "DispatcherRole",
                                        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.dispatcher = self._function(
            "Dispatcher", DISPATCHER_HANDLER, code, layer, self.dispatcher_role, memory=256,
            timeout_s=DISPATCHER_TIMEOUT_S,
            environment={**common_env, "QUEUE_URL": self.queue.queue_url, "ALARM_TOPIC_ARN": alarm_topic.topic_arn,
                         "LAG_ALARM_SECONDS": str(settings.lag_alarm_minutes * 60),
                         "OUTSTANDING_SECONDS": str(outstanding_s)},
            retry_attempts=2, max_event_age=Duration.hours(1), dead_letter_queue=self.dispatch_dlq)

        # ---- access: per market prefix, constant in the number of series
        # The worker reads keys that are usually absent (the marker, a released lease, a new series'
        # outages.json): only a role that may list the bucket is told 404 rather than 403.
        grant_prefixes(self.worker_role, bucket, [g for m in settings.markets for g in ingest_market_grants(m)],
                       list_whole_bucket=True)
        self.worker_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["dynamodb:UpdateItem"], resources=[self.index.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [
                index_key_prefix(m) + "*" for m in settings.markets]}}))
        grant_prefixes(self.dispatcher_role, bucket, dispatcher_grants(settings.markets), list_whole_bucket=True)
        self.dispatcher_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["dynamodb:Scan", "dynamodb:UpdateItem"], resources=[self.index.table_arn]))
        self.queue.grant_send_messages(self.dispatcher_role)
        # The digest: publish to the topic and, the topic being encrypted, use its key for exactly that
        # (topic.grant_publish would add kms:GenerateDataKey*, a wildcard action).
        self.dispatcher_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["sns:Publish"], resources=[alarm_topic.topic_arn]))
        if alarm_key is not None:
            self.dispatcher_role.add_to_principal_policy(iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[alarm_key.key_arn]))

        # ---- schedules
        self.rules = {}
        for task, expression, name in ((TASK_INGEST, SCHEDULE, "Schedule"),
                                       (TASK_REPAIR, REPAIR_SCHEDULE, "RepairSchedule")):
            self.rules[task] = events.Rule(
                self, name,
                schedule=events.Schedule.expression(expression),
                targets=[targets.LambdaFunction(
                    self.dispatcher,
                    event=events.RuleTargetInput.from_object(settings.schedule_input(task)),
                    dead_letter_queue=self.dispatch_dlq,
                    retry_attempts=2,
                    max_event_age=Duration.hours(1),
                )],
            )
        self.rule = self.rules[TASK_INGEST]

        self._alarms(alarm_topic)

        CfnOutput(self, "DispatcherName", value=self.dispatcher.function_name)
        CfnOutput(self, "WorkerName", value=self.worker.function_name)
        CfnOutput(self, "WorkQueueUrl", value=self.queue.queue_url)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.dlq.queue_url,
                  description="Series whose last attempt failed; redrive with `aws sqs start-message-move-task`")
        CfnOutput(self, "IndexTableName", value=self.index.table_name)

    def _function(self, name: str, handler: str, code: lambda_.Code, layer: lambda_.ILayerVersion, role: iam.Role, *,
                  memory: int, timeout_s: int, environment: dict, **options) -> lambda_.Function:
        log_group = logs.LogGroup(self, f"{name}Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  removal_policy=RemovalPolicy.DESTROY)
        log_group.grant_write(role)
        fn = lambda_.Function(
            self, name,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=code,
            layers=[layer],
            role=role,
            memory_size=memory,
            timeout=Duration.seconds(timeout_s),
            log_group=log_group,
            environment=environment,
            **options,
        )
        Validations.of(fn).acknowledge(Acknowledgment(
            id="AwsSolutions-L1", reason=layer_check_reason(self.settings.sdk_pandas_version)))
        return fn

    def _alarms(self, topic: sns.ITopic) -> None:
        quarter, five = Duration.minutes(15), Duration.minutes(5)
        s = self.settings
        self.alarms = {}

        def alarm(name: str, description: str, metric: cloudwatch.IMetric, threshold: float, *,
                  periods: int = 1, missing=cloudwatch.TreatMissingData.NOT_BREACHING,
                  comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD) -> None:
            self.alarms[name] = notify(cloudwatch.Alarm(
                self, f"{name}Alarm", alarm_description=description, metric=metric, threshold=threshold,
                evaluation_periods=periods, datapoints_to_alarm=periods, comparison_operator=comparison,
                treat_missing_data=missing), topic)

        # 20 minutes: every window holds at least one dispatch (every 15 minutes, give or take a few seconds).
        alarm("IngestLag",
              f"The oldest series' first missing candle closed more than {s.lag_alarm_minutes} minutes ago "
              "(OldestWatermarkAgeSeconds), or the dispatcher reported nothing for 20 minutes. The digest on "
              "this topic names the lagging series.",
              ingest_metric("OldestWatermarkAgeSeconds", "Maximum", Duration.minutes(20)), s.lag_alarm_minutes * 60,
              comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
              missing=cloudwatch.TreatMissingData.BREACHING)
        alarm("Errors",
              "Ingest errors in two consecutive 15-minute windows: dispatcher or worker invocations that failed "
              "(timeouts included) or series that failed (SeriesFailures; each is retried by SQS).",
              cloudwatch.MathExpression(
                  expression="FILL(d, 0) + FILL(w, 0) + FILL(f, 0)", label="ingest errors", period=quarter,
                  using_metrics={"d": self.dispatcher.metric_errors(period=quarter, statistic="Sum"),
                                 "w": self.worker.metric_errors(period=quarter, statistic="Sum"),
                                 "f": ingest_metric("SeriesFailures", "Sum", quarter)}),
              1, periods=2)
        alarm("DeadLettersArrived",
              "A series' last attempt failed and SQS moved it to the dead-letter queue (DeadLettered; SQS does "
              "not count redrive moves in the queue's own metrics), or a scheduled dispatch ended in its DLQ, "
              "in the last 5 minutes. Returns to OK by itself, so every later failure notifies again.",
              cloudwatch.MathExpression(
                  expression="FILL(u, 0) + FILL(s, 0)", label="dead letters arrived", period=five,
                  using_metrics={"u": ingest_metric("DeadLettered", "Sum", five),
                                 "s": self.dispatch_dlq.metric_number_of_messages_sent(period=five, statistic="Sum")}),
              1)
        alarm("DeadLettersWaiting",
              "Failed units or dispatches wait in a dead-letter queue; returns to OK once they are handled "
              "(redriven or deleted).",
              cloudwatch.MathExpression(
                  expression="MAX([FILL(u, 0), FILL(s, 0)])", label="dead letters waiting", period=five,
                  using_metrics={"u": self.dlq.metric_approximate_number_of_messages_visible(period=five,
                                                                                              statistic="Maximum"),
                                 "s": self.dispatch_dlq.metric_approximate_number_of_messages_visible(
                                     period=five, statistic="Maximum")}),
              1)
        alarm("BinanceBan", "Binance banned this IP (HTTP 418): the ingest skips Binance until the ban ends.",
              ingest_metric("BlockedSkips", "Sum", quarter), 1)
        alarm("GeoBlocked",
              "Binance refuses this region (HTTP 451, 'geo-blocked'): runs skip Binance and ask again once an hour; "
              "deploy to another region or set binanceBaseUrl.",
              ingest_metric("GeoBlocked", "Sum", quarter), 1)
        alarm("GapsRemaining",
              "The daily repair pass left interior gaps in candles/ on two days running (GapsRemaining); the "
              "index's gaps_remaining names the series.",
              ingest_metric("GapsRemaining", "Sum", Duration.days(1)), 1, periods=2)
