"""Assertions on the templates `cdk synth` produces (offline; one synth per test session).

The app is synthesized once, through the pinned aws-cdk CLI, into a temp cloud assembly; the
template assertions, the Lambda asset check and cfn-lint all read that assembly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # stacks/ is the CDK app, not an installed package
    sys.path.insert(0, str(REPO))

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402

import stacks  # noqa: E402
from conftest import exclusive, shared_tmp  # noqa: E402
from engine import storage_layout  # noqa: E402
from engine.data.binance import INTERVALS  # noqa: E402
from stacks.batch_stack import RETRY_ON  # noqa: E402
from stacks.config import LAYER, resolve_region  # noqa: E402
from stacks.ingest_stack import (ENGINE_MODULES, HANDLERS, MAX_RECEIVES, REPAIR_SCHEDULE, SCHEDULE,  # noqa: E402
                                 US_REGIONS, sdk_pandas_layer_parameter)

pytestmark = pytest.mark.xdist_group("cdk")

CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
CDK_CONTEXT = json.loads((REPO / "cdk.json").read_text())["context"]
STACK_NAMES = ("BacktestStorage", "BacktestAlerts", "BacktestIngest", "BacktestBatch", "BacktestQuery",
               "BacktestDashboard")
SERIES = "symbol=BTCUSDT/interval=15m/"

BUCKET_LEVEL_ACTIONS = {"s3:ListBucket"}


def cli_env(home: Path | None = None) -> dict[str, str]:
    """The environment of a machine with no AWS configuration at all: no AWS_* variable, no profile
    (HOME is an empty folder), so the CLI assumes us-east-1 and the app takes cdk.json's defaultRegion."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1", CDK_DISABLE_CLI_TELEMETRY="true",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    # The jsii runtime's package cache (not AWS configuration) stays the user's: under an empty HOME
    # the app's jsii runtime unpacked aws-cdk-lib (37 MB, 207 MB unpacked) again, 6 s of CPU.
    env.setdefault("JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(Path.home() / ".cache" / "aws" / "jsii" / "package-cache"))
    if home is not None:
        env["HOME"] = str(home)
    return env


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory) -> Path:
    """`cdk synth` of the real app (cdk.json, default context) into a temp dir shared by all workers."""
    if not CDK_CLI.exists():
        pytest.fail(f"{CDK_CLI} is missing: run `npm ci` (make test does)")
    shared = shared_tmp(tmp_path_factory)
    out = shared / "cdk-cli-out"
    home = shared / "cdk-empty-home"
    home.mkdir(exist_ok=True)
    with exclusive(shared / "cdk-cli-out.lock"):
        if not (out / "manifest.json").exists():
            proc = subprocess.run(
                [str(CDK_CLI), "synth", "--quiet", "--no-notices", "-o", str(out)],
                cwd=REPO, env=cli_env(home), capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0:
                pytest.fail(f"cdk synth failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return out


class Assembly:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.json = {name: json.loads((out / f"{name}.template.json").read_text()) for name in STACK_NAMES}
        self.storage = Template.from_json(self.json["BacktestStorage"])
        self.alerts = Template.from_json(self.json["BacktestAlerts"])
        self.ingest = Template.from_json(self.json["BacktestIngest"])
        self.batch = Template.from_json(self.json["BacktestBatch"])
        self.query = Template.from_json(self.json["BacktestQuery"])
        self.dashboard = Template.from_json(self.json["BacktestDashboard"])
        (self.bucket_id, _), = ((k, v) for k, v in self.json["BacktestStorage"]["Resources"].items()
                                if v["Type"] == "AWS::S3::Bucket" and "VersioningConfiguration" in v["Properties"])

    def deref(self, value):
        """Replace cross-stack references by the value the other stack exports."""
        if isinstance(value, list):
            return [self.deref(v) for v in value]
        if not isinstance(value, dict):
            return value
        ref = value.get("Fn::GetStackOutput")
        if ref and ref.get("StackName") in self.json:
            return self.json[ref["StackName"]]["Outputs"][ref["OutputName"]]["Value"]
        if "Fn::ImportValue" in value:
            for stack in self.json.values():
                for output in stack.get("Outputs", {}).values():
                    if output.get("Export", {}).get("Name") == value["Fn::ImportValue"]:
                        return output["Value"]
        return {k: self.deref(v) for k, v in value.items()}

    @property
    def topic(self):
        (topic_id, _), = self.alerts.find_resources("AWS::SNS::Topic").items()
        return {"Ref": topic_id}

    @property
    def bucket_arn(self):
        return {"Fn::GetAtt": [self.bucket_id, "Arn"]}

    @property
    def bucket_name(self):
        return {"Ref": self.bucket_id}


@pytest.fixture(scope="session")
def synth(cdk_out) -> Assembly:
    return Assembly(cdk_out)


# --- helpers --------------------------------------------------------------------------------------

def only(mapping: dict) -> tuple[str, dict]:
    assert len(mapping) == 1, f"expected exactly one match, got {sorted(mapping)}"
    return next(iter(mapping.items()))


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def render(value, synth: Assembly) -> str:
    """Flatten a policy resource to a string, the dataset bucket ARN written as ``BUCKET``."""
    value = synth.deref(value)
    if value == synth.bucket_arn:
        return "BUCKET"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(render(p, synth) for p in parts)
    return json.dumps(value, sort_keys=True)


def role_statements(template: Template, role_logical_id: str) -> list[dict]:
    statements = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"].get("Roles", []):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def s3_access(statements: list[dict], synth: Assembly) -> dict[str, set[str]]:
    """Map each S3 resource pattern to the S3 actions allowed on it ("LIST": the listable prefixes)."""
    access: dict[str, set[str]] = {}
    for st in statements:
        s3_actions = {a for a in as_list(st["Action"]) if a.startswith("s3:")}
        if not s3_actions:
            continue
        assert st["Effect"] == "Allow"
        assert not any("*" in a for a in s3_actions), f"wildcard S3 action in {st}"
        resources = [render(r, synth) for r in as_list(st["Resource"])]
        if s3_actions <= BUCKET_LEVEL_ACTIONS:
            assert resources == ["BUCKET"]
            prefixes = st["Condition"]["StringLike"]["s3:prefix"] if "Condition" in st else ["<every key name>"]
            access.setdefault("LIST", set()).update(prefixes)
            continue
        assert not s3_actions & BUCKET_LEVEL_ACTIONS, f"bucket and object actions mixed in {st}"
        for r in resources:
            assert r.startswith("BUCKET/"), f"object actions on a resource outside the bucket's keys: {r}"
            access.setdefault(r, set()).update(s3_actions)
    return access


def test_cdk_cli_synth_succeeds_offline(cdk_out):
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    stacks_in_assembly = {k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"}
    assert stacks_in_assembly == set(STACK_NAMES)


def test_cfn_lint_finds_no_errors(cdk_out):
    templates = sorted(str(p) for p in cdk_out.glob("*.template.json"))
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
         "--config-file", str(REPO / ".cfnlintrc"), "--format", "json", *templates],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    matches = json.loads(proc.stdout or "[]")
    problems = [f"{m['Level']} {m['Rule']['Id']} {Path(m['Filename']).name} "
                f"{'/'.join(map(str, m['Location']['Path']))}: {m['Message']}"
                for m in matches if m["Level"] in ("Error", "Warning")]
    assert not problems, "\n".join(problems)
    assert proc.returncode == 0, proc.stderr


# --- storage ----------------------------------------------------------------------------------------

def test_data_bucket_is_private_encrypted_versioned_logged_and_retained(synth):
    buckets = synth.storage.find_resources("AWS::S3::Bucket", {
        "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}})
    logical_id, bucket = only(buckets)
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    log_target = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert log_target != logical_id

    log_bucket = synth.storage.to_json()["Resources"][log_target]
    assert log_bucket["DeletionPolicy"] == "Retain"
    assert log_bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert "BucketEncryption" in log_bucket["Properties"]


def test_data_bucket_lifecycle(synth):
    (_, bucket), = synth.storage.find_resources("AWS::S3::Bucket", {
        "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}).items()
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert all(r["Status"] == "Enabled" for r in rules.values())
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    markers = rules["RemoveExpiredDeleteMarkers"]
    assert markers["ExpiredObjectDeleteMarker"] is True
    assert "Prefix" not in markers and "TagFilters" not in markers  # the whole bucket
    # raw/ of every market after rawRetentionDays; shards (found by their tag) after shardRetentionDays;
    # Athena results after 7 days. Candles, meta records, configs and reports are kept.
    assert {(r.get("Prefix"), r["ExpirationInDays"], json.dumps(r.get("TagFilters"))) for i, r in rules.items()
            if "ExpirationInDays" in r} == {
        ("raw/", 30, "null"), ("um/raw/", 30, "null"), ("athena-results/", 7, "null"),
        ("runs/", 14, json.dumps([{"Key": storage_layout.SHARD_TAG_KEY, "Value": storage_layout.SHARD_TAG_VALUE}]))}
    custom = Template.from_stack(build_app({"rawRetentionDays": "3", "shardRetentionDays": "60"}).storage)
    (_, bucket), = custom.find_resources("AWS::S3::Bucket", {
        "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}).items()
    days = {r["Id"]: r.get("ExpirationInDays") for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert (days["ExpireRawSpot"], days["ExpireBatchShards"], days["ExpireAthenaResults"]) == (3, 60, 7)
    # the shard writer tags what the rule matches
    assert storage_layout.SHARD_TAGGING == f"{storage_layout.SHARD_TAG_KEY}={storage_layout.SHARD_TAG_VALUE}"


def test_both_buckets_deny_plain_http(synth):
    for logical_id in synth.storage.find_resources("AWS::S3::Bucket"):
        synth.storage.has_resource_properties("AWS::S3::BucketPolicy", {
            "Bucket": {"Ref": logical_id},
            "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
                "Effect": "Deny",
                "Action": "s3:*",
                "Principal": {"AWS": "*"},
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Resource": Match.array_with([
                    {"Fn::GetAtt": [logical_id, "Arn"]},
                    {"Fn::Join": ["", [{"Fn::GetAtt": [logical_id, "Arn"]}, "/*"]]},
                ]),
            })])},
        })


# --- alerts ------------------------------------------------------------------------------------------

def test_alarm_topic_is_encrypted_with_a_rotated_key_and_ssl_only(synth):
    topic_id, topic = only(synth.alerts.find_resources("AWS::SNS::Topic"))
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    key_id = key_ref["Fn::GetAtt"][0]
    key = synth.alerts.to_json()["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    synth.alerts.has_resource_properties("AWS::SNS::TopicPolicy", {
        "Topics": [{"Ref": topic_id}],
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Action": "sns:Publish", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])},
    })


def test_cloudwatch_and_eventbridge_may_publish_and_use_the_key(synth):
    topic_id, topic = only(synth.alerts.find_resources("AWS::SNS::Topic"))
    publishers = {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]}
    synth.alerts.has_resource_properties("AWS::SNS::TopicPolicy", {
        "Topics": [{"Ref": topic_id}],
        "PolicyDocument": {"Statement": Match.array_with([{
            "Sid": "AlarmPublishersInThisAccount", "Effect": "Allow", "Action": "sns:Publish",
            "Principal": publishers, "Resource": {"Ref": topic_id},
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }])},
    })
    key = synth.alerts.to_json()["Resources"][topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]]
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert {"Sid": "AlarmPublishersUseTheKey", "Effect": "Allow", "Principal": publishers,
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}} in statements
    # every statement naming a service principal carries the account condition
    for st in statements:
        if "Service" in st["Principal"]:
            assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, st


def test_without_alarm_email_every_stack_refuses_to_deploy(synth):
    """Synth works; CloudFormation's rule fails the create or update of every stack (no region is
    named so), with the way out in its description."""
    synth.alerts.resource_count_is("AWS::SNS::Subscription", 0)
    for name in STACK_NAMES:
        (assertion,) = synth.json[name]["Rules"]["AlarmEmailRequired"]["Assertions"]
        assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "alarmEmail-not-given"]}
        assert "-c alarmEmail=you@example.com" in assertion["AssertDescription"]
        assert "-c alarmEmail=none" in assertion["AssertDescription"]
    for context in ({"alarmEmail": "none"}, {"alarmEmail": "ops@example.com"}):
        for stack in build_app(context):
            assert "AlarmEmailRequired" not in Template.from_stack(stack).to_json().get("Rules", {}), context
    Template.from_stack(build_app({"alarmEmail": "none"}).alerts).resource_count_is("AWS::SNS::Subscription", 0)


def test_alarm_email_from_context_subscribes_to_the_topic():
    built = build_app({"alarmEmail": "ops@example.com"})
    alerts = Template.from_stack(built.alerts)
    topic_id, _ = only(alerts.find_resources("AWS::SNS::Topic"))
    alerts.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": {"Ref": topic_id}})


def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_is_over(synth):
    alarms = {k: v for name in STACK_NAMES for k, v in
              Template.from_json(synth.json[name]).find_resources("AWS::CloudWatch::Alarm").items()}
    # lag, errors, dead letters arrived and waiting, Binance ban, geo-blocked, gaps remaining
    assert len(alarms) == 7
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert synth.deref(props["AlarmActions"]) == [synth.topic], logical_id
        assert synth.deref(props["OKActions"]) == [synth.topic], logical_id
        assert props.get("ActionsEnabled", True) is True


def test_failed_batch_jobs_reach_the_topic(synth):
    queue_id, _ = only(synth.batch.find_resources("AWS::Batch::JobQueue"))
    _, rule = only({i: r for i, r in synth.batch.find_resources("AWS::Events::Rule").items()
                    if "status" in r["Properties"]["EventPattern"]["detail"]})
    props = rule["Properties"]
    assert props["State"] == "ENABLED"
    assert props["EventPattern"] == {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"status": ["FAILED"], "jobQueue": [{"Fn::GetAtt": [queue_id, "JobQueueArn"]}],
                   "arrayProperties": {"index": [{"exists": False}]}},
    }
    (target,) = props["Targets"]
    assert synth.deref(target["Arn"]) == synth.topic
    template = target["InputTransformer"]["InputTemplate"]
    assert "failed" in template and "<detail-jobName>" in template and "<detail-statusReason>" in template
    assert target["InputTransformer"]["InputPathsMap"]["detail-statusReason"] == "$.detail.statusReason"


# --- ingest ------------------------------------------------------------------------------------------

def functions(template: Template) -> dict[str, tuple[str, dict]]:
    """The ingest's Lambda functions by handler: handler -> (logical id, resource)."""
    return {f["Properties"]["Handler"]: (i, f) for i, f in template.find_resources("AWS::Lambda::Function").items()}


def queues(template: Template) -> dict[str, tuple[str, dict]]:
    """The ingest's queues by role: work (has a redrive policy), units' DLQ (its target), dispatch DLQ."""
    found = template.find_resources("AWS::SQS::Queue")
    (work_id, work), = ((i, q) for i, q in found.items() if "RedrivePolicy" in q["Properties"])
    dlq_id = work["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    (dispatch_id,) = set(found) - {work_id, dlq_id}
    return {"work": (work_id, work), "dlq": (dlq_id, found[dlq_id]), "dispatch": (dispatch_id, found[dispatch_id])}


def test_two_functions_from_one_bundle_on_the_layer_runtime(synth):
    fns = functions(synth.ingest)
    assert set(fns) == set(HANDLERS)
    codes = {json.dumps(f["Properties"]["Code"], sort_keys=True) for _, f in fns.values()}
    assert len(codes) == 1  # one asset, two handlers
    for handler, (_, fn) in fns.items():
        props = fn["Properties"]
        assert props["Runtime"] == f"python{LAYER['python']}" == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert "ReservedConcurrentExecutions" not in props
        (layer,) = props["Layers"]
        parameter = synth.ingest.to_json()["Parameters"][layer["Ref"]]
        assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
        assert parameter["Default"] == sdk_pandas_layer_parameter(LAYER["sdk_pandas_version"])
        assert parameter["Default"] == "/aws/service/aws-sdk-pandas/3.17.1/py3.12/arm64/layer-arn"
        log_group = synth.ingest.to_json()["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Properties"]["RetentionInDays"] == 30
    worker, dispatcher = fns["lambdas/ingest/worker.handler"][1], fns["lambdas/ingest/dispatcher.handler"][1]
    assert (worker["Properties"]["Timeout"], worker["Properties"]["MemorySize"]) == (120, 1024)
    assert (dispatcher["Properties"]["Timeout"], dispatcher["Properties"]["MemorySize"]) == (60, 256)


def test_schedules_start_the_dispatcher_with_the_series_list(synth):
    assert (SCHEDULE, REPAIR_SCHEDULE) == ("cron(1,16,31,46 * * * ? *)", "cron(7 3 * * ? *)")
    dispatcher_id, _ = functions(synth.ingest)["lambdas/ingest/dispatcher.handler"]
    dispatch_dlq_id, _ = queues(synth.ingest)["dispatch"]
    rules = {r["Properties"]["ScheduleExpression"]: r for r in synth.ingest.find_resources("AWS::Events::Rule").values()}
    assert set(rules) == {SCHEDULE, REPAIR_SCHEDULE}
    for expression, task in ((SCHEDULE, "ingest"), (REPAIR_SCHEDULE, "repair")):
        (target,) = rules[expression]["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [dispatcher_id, "Arn"]}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dispatch_dlq_id, "Arn"]}}
        assert json.loads(target["Input"]) == {"task": task, "series": [
            {"market": "spot", "kind": "klines", "symbols": ["BTCUSDT"], "intervals": ["15m"]}]}
    synth.ingest.has_resource_properties("AWS::Lambda::EventInvokeConfig", {
        "FunctionName": {"Ref": dispatcher_id}, "MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600})


def test_workers_take_one_series_per_invocation_at_bounded_concurrency(synth):
    worker_id, _ = functions(synth.ingest)["lambdas/ingest/worker.handler"]
    work_id, work = queues(synth.ingest)["work"]
    (_, mapping), = synth.ingest.find_resources("AWS::Lambda::EventSourceMapping").items()
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [work_id, "Arn"]}
    assert props["FunctionName"] == {"Ref": worker_id}
    assert props["BatchSize"] == 1 and props["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert work["Properties"]["VisibilityTimeout"] == 6 * 120  # AWS's advice: 6 x the function's timeout
    assert work["Properties"]["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES == 3
    custom = Template.from_stack(build_app({"ingestConcurrency": "12", "ingestTimeoutSeconds": "300"}).ingest)
    (_, mapping), = custom.find_resources("AWS::Lambda::EventSourceMapping").items()
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 12}
    (_, work), = ((i, q) for i, q in custom.find_resources("AWS::SQS::Queue").items()
                  if "RedrivePolicy" in q["Properties"])
    assert work["Properties"]["VisibilityTimeout"] == 1800


def test_ingest_environment_contract(synth):
    fns = functions(synth.ingest)
    (table_id, _), = synth.ingest.find_resources("AWS::DynamoDB::Table").items()
    work_id, _ = queues(synth.ingest)["work"]
    common = {"INDEX_TABLE": {"Ref": table_id}, "HISTORY_START": "2017-08-17",
              "BINANCE_BASE_URL": "https://data-api.binance.vision"}
    worker = fns["lambdas/ingest/worker.handler"][1]["Properties"]["Environment"]["Variables"]
    assert synth.deref(worker.pop("BUCKET_NAME")) == synth.bucket_name
    assert worker == {**common, "MAX_PAGES_PER_RUN": "200", "MAX_RECEIVES": "3"}
    dispatcher = fns["lambdas/ingest/dispatcher.handler"][1]["Properties"]["Environment"]["Variables"]
    assert synth.deref(dispatcher.pop("BUCKET_NAME")) == synth.bucket_name
    assert synth.deref(dispatcher.pop("ALARM_TOPIC_ARN")) == synth.topic
    assert dispatcher == {**common, "QUEUE_URL": {"Ref": work_id}, "LAG_ALARM_SECONDS": "600",
                          "OUTSTANDING_SECONDS": str(720 * 3 + 900)}


def test_every_queue_is_encrypted_and_ssl_only(synth):
    for name, (queue_id, queue) in queues(synth.ingest).items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, name
        synth.ingest.has_resource_properties("AWS::SQS::QueuePolicy", {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
                "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])},
        })


def test_watermark_index_is_on_demand_with_point_in_time_recovery(synth):
    (_, table), = synth.ingest.find_resources("AWS::DynamoDB::Table").items()
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "unit", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def _alarm(template: Template, metric_name: str) -> dict:
    found = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()
             if a["Properties"].get("MetricName") == metric_name]
    assert len(found) == 1, f"{metric_name}: {len(found)} alarms"
    return found[0]


def _math_alarm(template: Template, words: str) -> dict:
    found = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()
             if words in a["Properties"].get("AlarmDescription", "") and "Metrics" in a["Properties"]]
    assert len(found) == 1, f"{words}: {len(found)} alarms"
    return found[0]


def _math_inputs(alarm: dict) -> dict[str, dict]:
    return {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}


def test_one_lag_alarm_on_the_oldest_watermark_age(synth):
    alarm = _alarm(synth.ingest, "OldestWatermarkAgeSeconds")
    assert alarm["Namespace"] == "Backtest/Ingest" and "Dimensions" not in alarm
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Maximum", 600, "GreaterThanThreshold")
    # A 20-minute window always holds a dispatch (every 15 minutes); silence is lag too.
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (1200, 1, "breaching")
    custom = Template.from_stack(build_app({"ingestLagAlarmMinutes": "25"}).ingest)
    assert _alarm(custom, "OldestWatermarkAgeSeconds")["Threshold"] == 25 * 60


def test_errors_alarm_sums_invocation_errors_and_series_failures(synth):
    fns = functions(synth.ingest)
    alarm = _math_alarm(synth.ingest, "two consecutive 15-minute windows")
    inputs = _math_inputs(alarm)
    assert {(i["Metric"]["Namespace"], i["Metric"]["MetricName"]) for i in inputs.values()} == {
        ("AWS/Lambda", "Errors"), ("Backtest/Ingest", "SeriesFailures")}
    assert {json.dumps(i["Metric"].get("Dimensions")) for i in inputs.values() if i["Metric"]["MetricName"] == "Errors"} \
        == {json.dumps([{"Name": "FunctionName", "Value": {"Ref": fid}}]) for fid, _ in fns.values()}
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 2, 2)


def test_dead_letter_alarms_notify_each_arrival_and_clear_once_handled(synth):
    """Not the oldest message's age: that stays in ALARM for the 14 days messages are kept. And not the
    DLQ's NumberOfMessagesSent for the units: SQS does not count redrive moves there."""
    q = queues(synth.ingest)
    arrived = _math_inputs(_math_alarm(synth.ingest, "moved it to the dead-letter queue"))
    assert {(i["Metric"]["MetricName"], json.dumps(i["Metric"].get("Dimensions"))) for i in arrived.values()} == {
        ("DeadLettered", "null"),
        ("NumberOfMessagesSent", json.dumps([{"Name": "QueueName",
                                              "Value": {"Fn::GetAtt": [q["dispatch"][0], "QueueName"]}}]))}
    waiting = _math_alarm(synth.ingest, "wait in a dead-letter queue")
    assert {json.dumps(i["Metric"]["Dimensions"]) for i in _math_inputs(waiting).values()} == {
        json.dumps([{"Name": "QueueName", "Value": {"Fn::GetAtt": [q[k][0], "QueueName"]}}]) for k in ("dlq", "dispatch")}
    alarms = synth.ingest.find_resources("AWS::CloudWatch::Alarm").values()
    assert not any("ApproximateAgeOfOldestMessage" in json.dumps(a) for a in alarms)


@pytest.mark.parametrize("metric, statistic, period, periods", [
    ("BlockedSkips", "Sum", 900, 1), ("GeoBlocked", "Sum", 900, 1), ("GapsRemaining", "Sum", 86400, 2)])
def test_binance_refusals_and_gaps_alarms(synth, metric, statistic, period, periods):
    alarm = _alarm(synth.ingest, metric)
    assert alarm["Namespace"] == "Backtest/Ingest" and "Dimensions" not in alarm
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"]) == (
        statistic, period, periods, 1)
    assert alarm["TreatMissingData"] == "notBreaching"


def test_worker_role_writes_its_market_prefixes_and_locks_only(synth):
    fns = functions(synth.ingest)
    role_id = fns["lambdas/ingest/worker.handler"][1]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert "ManagedPolicyArns" not in synth.ingest.to_json()["Resources"][role_id]["Properties"]
    statements = role_statements(synth.ingest, role_id)
    assert s3_access(statements, synth) == {
        "BUCKET/raw/*": {"s3:PutObject", "s3:AbortMultipartUpload"},  # write-only
        "BUCKET/candles/*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
        "BUCKET/meta/*": {"s3:GetObject", "s3:PutObject"},
        "BUCKET/locks/*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
        # names only: without it S3 answers 403, not 404, for the usually absent marker and outages file
        "LIST": {"<every key name>"},
    }
    (table_id, _), = synth.ingest.find_resources("AWS::DynamoDB::Table").items()
    (ddb,) = [st for st in statements if any(a.startswith("dynamodb:") for a in as_list(st["Action"]))]
    assert as_list(ddb["Action"]) == ["dynamodb:UpdateItem"]
    assert ddb["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]}
    assert ddb["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["spot#*"]}}
    # the key layout the grants follow is the one the code uses
    assert storage_layout.series_lock_key("BTCUSDT", "15m").startswith("locks/")
    assert storage_layout.outages_key("BTCUSDT", "15m").startswith("meta/")
    assert storage_layout.raw_batch_key("BTCUSDT", "15m", 0, 1).startswith("raw/")
    assert not storage_layout.market_prefixes("um")["raw"].startswith("raw/")  # um/ is another market's


def test_dispatcher_reads_one_marker_sends_units_and_publishes_the_digest(synth):
    fns = functions(synth.ingest)
    role_id = fns["lambdas/ingest/dispatcher.handler"][1]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = role_statements(synth.ingest, role_id)
    assert s3_access(statements, synth) == {f"BUCKET/{storage_layout.blocked_key('spot')}": {"s3:GetObject"},
                                            "LIST": {"<every key name>"}}
    by_action = {a: st for st in statements for a in as_list(st["Action"])}
    work_id, _ = queues(synth.ingest)["work"]
    assert by_action["sqs:SendMessage"]["Resource"] == {"Fn::GetAtt": [work_id, "Arn"]}
    assert synth.deref(by_action["sns:Publish"]["Resource"]) == synth.topic
    key_id = synth.alerts.find_resources("AWS::KMS::Key")
    assert set(as_list(by_action["kms:GenerateDataKey"]["Action"])) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert synth.deref(by_action["kms:GenerateDataKey"]["Resource"]) == {"Fn::GetAtt": [only(key_id)[0], "Arn"]}
    assert set(as_list(by_action["dynamodb:Scan"]["Action"])) == {"dynamodb:Scan", "dynamodb:UpdateItem"}


def test_only_the_ingest_roles_reach_locks(synth):
    """locks/ has its own grant: no other policy in the app covers those keys (nor the whole bucket);
    the dispatcher reads the one marker key."""
    reaching = []
    for name in STACK_NAMES:
        template = Template.from_json(synth.json[name])
        for logical_id, policy in template.find_resources("AWS::IAM::Policy").items():
            for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = as_list(st["Action"])
                if not any(a.startswith("s3:") or a == "*" for a in actions):
                    continue
                flat = [render(r, synth) for r in as_list(st["Resource"])]
                assert not any(f in ("*", "BUCKET/*", "arn:aws:s3:::*") for f in flat), f"whole-bucket grant: {st}"
                for f in flat:
                    if f.startswith("BUCKET/locks/"):
                        reaching.append((name, policy["Properties"]["Roles"][0]["Ref"], f, tuple(actions)))
    roles = {fid: f["Properties"]["Role"]["Fn::GetAtt"][0] for _, (fid, f) in functions(synth.ingest).items()}
    assert {(n, r) for n, r, _, _ in reaching} == {("BacktestIngest", r) for r in roles.values()}
    dispatcher_role = functions(synth.ingest)["lambdas/ingest/dispatcher.handler"][1]["Properties"]["Role"]
    assert {(f, a) for _, r, f, a in reaching if r == dispatcher_role["Fn::GetAtt"][0]} == {
        ("BUCKET/locks/binance-blocked.json", ("s3:GetObject",))}


def test_us_regions_are_refused_at_deploy_time_too(synth):
    """A stack synthesized without a known region carries a CloudFormation rule against US regions."""
    rules = synth.json["BacktestIngest"]["Rules"]
    (name,) = (n for n in rules if n.startswith("NotInAUsRegion"))
    (assertion,) = rules[name]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Contains": [list(US_REGIONS), {"Ref": "AWS::Region"}]}]}
    assert "451" in assertion["AssertDescription"]


def test_lambda_asset_holds_only_the_handlers_and_light_engine_modules(synth):
    _, fn = functions(synth.ingest)["lambdas/ingest/worker.handler"]
    asset_hash = fn["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    manifest = json.loads((synth.out / "BacktestIngest.assets.json").read_text())
    staged = synth.out / manifest["files"][asset_hash]["source"]["path"]
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}

    engine_data = {f"engine/data/{p.relative_to(REPO / 'engine/data').as_posix()}"
                   for p in (REPO / "engine/data").rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    ingest = {f"lambdas/ingest/{p.relative_to(REPO / 'lambdas/ingest').as_posix()}"
              for p in (REPO / "lambdas/ingest").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    optional = {"lambdas/__init__.py"} & {p.relative_to(REPO).as_posix() for p in (REPO / "lambdas").glob("*")}
    assert {"lambdas/ingest/worker.py", "lambdas/ingest/dispatcher.py", "lambdas/ingest/layer.json"} <= files
    assert files == set(ENGINE_MODULES) | engine_data | ingest | optional
    assert not any(f.startswith(("tests/", ".venv/", "stacks/", "engine/fast/", "engine/report/", "node_modules/"))
                   or "__pycache__" in f for f in files)


# --- batch -------------------------------------------------------------------------------------------

def test_network_has_public_subnets_s3_endpoint_and_no_nat(synth):
    synth.batch.resource_count_is("AWS::EC2::NatGateway", 0)
    subnets = synth.batch.find_resources("AWS::EC2::Subnet")
    assert subnets and all(s["Properties"]["MapPublicIpOnLaunch"] is True for s in subnets.values())
    synth.batch.has_resource_properties("AWS::EC2::VPCEndpoint", {
        "VpcEndpointType": "Gateway",
        "ServiceName": Match.object_like({"Fn::Join": ["", Match.array_with([".s3"])]}),
    })


def test_compute_environment_is_fargate_spot_capped_by_max_vcpus(synth):
    ce_id, ce = only(synth.batch.find_resources("AWS::Batch::ComputeEnvironment"))
    resources = ce["Properties"]["ComputeResources"]
    assert ce["Properties"]["Type"] == "managed"
    assert resources["Type"] == "FARGATE_SPOT"
    assert resources["MaxvCpus"] == 64  # the cost guard
    subnet_ids = {s["Ref"] for s in resources["Subnets"]}
    assert subnet_ids <= set(synth.batch.find_resources("AWS::EC2::Subnet"))
    _, queue = only(synth.batch.find_resources("AWS::Batch::JobQueue"))
    assert queue["Properties"]["ComputeEnvironmentOrder"] == [
        {"ComputeEnvironment": {"Fn::GetAtt": [ce_id, "ComputeEnvironmentArn"]}, "Order": 1}]


def test_on_demand_fallback_is_optional_and_second_in_line():
    batch = Template.from_stack(build_app({"onDemandFallback": "true", "maxVcpus": "16"}).batch)
    envs = batch.find_resources("AWS::Batch::ComputeEnvironment")
    by_type = {e["Properties"]["ComputeResources"]["Type"]: i for i, e in envs.items()}
    assert set(by_type) == {"FARGATE_SPOT", "FARGATE"}
    assert all(e["Properties"]["ComputeResources"]["MaxvCpus"] == 16 for e in envs.values())
    _, queue = only(batch.find_resources("AWS::Batch::JobQueue"))
    assert queue["Properties"]["ComputeEnvironmentOrder"] == [
        {"ComputeEnvironment": {"Fn::GetAtt": [by_type["FARGATE_SPOT"], "ComputeEnvironmentArn"]}, "Order": 1},
        {"ComputeEnvironment": {"Fn::GetAtt": [by_type["FARGATE"], "ComputeEnvironmentArn"]}, "Order": 2}]


def test_jobs_stuck_in_runnable_are_cancelled_after_the_context_time(synth):
    _, queue = only(synth.batch.find_resources("AWS::Batch::JobQueue"))
    actions = queue["Properties"]["JobStateTimeLimitActions"]
    assert {a["Reason"] for a in actions} == {"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                                             "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
                                             "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"}
    assert all((a["Action"], a["State"], a["MaxTimeSeconds"]) == ("CANCEL", "RUNNABLE", 3600) for a in actions)
    custom = Template.from_stack(build_app({"runnableTimeoutMinutes": "30"}).batch)
    _, queue = only(custom.find_resources("AWS::Batch::JobQueue"))
    assert {a["MaxTimeSeconds"] for a in queue["Properties"]["JobStateTimeLimitActions"]} == {1800}


def test_job_definition_image_command_resources_and_network(synth):
    _, jd = only(synth.batch.find_resources("AWS::Batch::JobDefinition"))
    props = jd["Properties"]
    container = props["ContainerProperties"]
    assert props["PlatformCapabilities"] == ["FARGATE"]
    assert container["Command"] == ["batch", "shard"]
    assert {r["Type"]: r["Value"] for r in container["ResourceRequirements"]} == {"VCPU": "2", "MEMORY": "4096"}
    assert container["NetworkConfiguration"] == {"AssignPublicIp": "ENABLED"}
    assert container["RuntimePlatform"]["CpuArchitecture"] == "X86_64"

    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert synth.deref(env.pop("BUCKET_NAME")) == synth.bucket_name
    assert env == {
        "CANDLES_PREFIX": storage_layout.CANDLES_PREFIX,
        "RUNS_PREFIX": storage_layout.RUNS_PREFIX,
    }
    manifest = json.loads((synth.out / "BacktestBatch.assets.json").read_text())
    (image_hash, _), = manifest["dockerImages"].items()
    assert image_hash in json.dumps(container["Image"])


def test_image_asset_context_is_the_code_only(synth):
    """The staged build context (what the asset hash covers) holds only what the image needs:
    editing the README, tests, stacks or CI neither rebuilds nor re-pushes the image."""
    manifest = json.loads((synth.out / "BacktestBatch.assets.json").read_text())
    (_, image), = manifest["dockerImages"].items()
    staged = synth.out / image["source"]["directory"]
    assert (staged / "Dockerfile").read_text() == (REPO / "Dockerfile").read_text()
    top = {p.name for p in staged.iterdir()}
    assert top == {"Dockerfile", ".dockerignore", "requirements.txt", "pyproject.toml", "engine", "batch_jobs",
                   "backtest_cli", "configs"}
    files = [p for p in staged.rglob("*") if p.is_file()]
    assert not any("__pycache__" in p.parts or p.suffix == ".pyc" for p in files)
    assert (staged / "engine" / "fast" / "loop.py").is_file()


def test_job_commands_match_the_submitter_contract():
    contract = pytest.importorskip("batch_jobs.contract")
    from stacks.batch_stack import REDUCE_COMMAND, SHARD_COMMAND

    assert tuple(SHARD_COMMAND) == tuple(contract.SHARD_COMMAND)
    assert tuple(REDUCE_COMMAND) == tuple(contract.REDUCE_COMMAND)


def test_job_definition_retries_interruptions_and_start_up_failures_only(synth):
    _, jd = only(synth.batch.find_resources("AWS::Batch::JobDefinition"))
    props = jd["Properties"]
    assert props["Timeout"] == {"AttemptDurationSeconds": 120 * 60}
    strategy = props["RetryStrategy"]
    assert strategy["Attempts"] == 3
    assert strategy["EvaluateOnExit"] == [
        {"Action": "RETRY", "OnStatusReason": "Your Spot Task was interrupted*"},
        {"Action": "RETRY", "OnStatusReason": "Task failed to start*"},
        {"Action": "RETRY", "OnReason": "CannotPullContainerError*"},
        {"Action": "RETRY", "OnReason": "ResourceInitializationError*"},
        {"Action": "EXIT", "OnReason": "*"},  # anything else (a bug, a bad config) fails at once
    ]
    # AWS Batch's limits: at most 5 entries; letters, digits, . : and spaces, with an optional trailing *
    assert len(strategy["EvaluateOnExit"]) <= 5
    for entry in strategy["EvaluateOnExit"]:
        for key in ("OnStatusReason", "OnReason", "OnExitCode"):
            if key in entry:
                assert re.fullmatch(r"[A-Za-z0-9.: \t]*\*?", entry[key]), entry
    assert len(RETRY_ON) == 4


def test_job_role_reads_candles_and_reads_writes_runs_without_delete(synth):
    _, jd = only(synth.batch.find_resources("AWS::Batch::JobDefinition"))
    role_id = jd["Properties"]["ContainerProperties"]["JobRoleArn"]["Fn::GetAtt"][0]
    role = synth.batch.to_json()["Resources"][role_id]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]

    access = s3_access(role_statements(synth.batch, role_id), synth)
    assert access == {
        "BUCKET/candles/*": {"s3:GetObject"},
        # a perp sweep's three series (storage_layout.kind_root), read only
        "BUCKET/um/candles/*": {"s3:GetObject"}, "BUCKET/um/mark/*": {"s3:GetObject"},
        "BUCKET/um/funding/*": {"s3:GetObject"},
        "BUCKET/runs/*": {"s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"},
        "LIST": {"candles/", "candles/*", "runs/", "runs/*", "um/candles/", "um/candles/*", "um/mark/", "um/mark/*",
                 "um/funding/", "um/funding/*"},
    }
    assert not any("Delete" in a for actions in access.values() for a in actions)


def test_every_job_state_change_is_logged_for_the_dashboard(synth):
    queue_id, _ = only(synth.batch.find_resources("AWS::Batch::JobQueue"))
    rule_id, rule = only({i: r for i, r in synth.batch.find_resources("AWS::Events::Rule").items()
                          if "status" not in r["Properties"]["EventPattern"]["detail"]})
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.batch"], "detail-type": ["Batch Job State Change"],
        "detail": {"jobQueue": [{"Fn::GetAtt": [queue_id, "JobQueueArn"]}]}}
    (target,) = rule["Properties"]["Targets"]
    log_id = target["Arn"]["Fn::GetAtt"][0]
    assert synth.batch.to_json()["Resources"][log_id]["Type"] == "AWS::Logs::LogGroup"
    _, policy = only(synth.batch.find_resources("AWS::Logs::ResourcePolicy"))
    document = json.dumps(policy["Properties"]["PolicyDocument"])
    assert log_id in document and rule_id in document and "aws:SourceArn" in document
    # no Lambda-backed log-group policy resource (CDK's own log-group target would add one)
    assert not synth.batch.find_resources("Custom::CloudwatchLogResourcePolicy")


def test_outputs(synth):
    synth.storage.has_output("BucketName", {"Value": synth.bucket_name})
    queue_id, _ = only(synth.batch.find_resources("AWS::Batch::JobQueue"))
    jd_id, _ = only(synth.batch.find_resources("AWS::Batch::JobDefinition"))
    synth.batch.has_output("JobQueueArn", {"Value": {"Fn::GetAtt": [queue_id, "JobQueueArn"]}})
    synth.batch.has_output("JobDefinitionArn", {"Value": {"Ref": jd_id}})
    synth.alerts.has_output("AlarmTopicArn", {"Value": synth.topic})
    for name in ("DispatcherName", "WorkerName", "WorkQueueUrl", "DeadLetterQueueUrl", "IndexTableName"):
        assert name in synth.json["BacktestIngest"]["Outputs"]
    for name in ("GlueDatabase", "CandlesTableName", "AthenaWorkGroup"):
        assert name in synth.json["BacktestQuery"]["Outputs"]
    assert "DashboardName" in synth.json["BacktestDashboard"]["Outputs"]


# --- query and dashboard -----------------------------------------------------------------------------

def glue_table(template: Template, name: str) -> dict:
    """The one Glue table of that name in the template."""
    (table,) = [t for t in template.find_resources("AWS::Glue::Table").values()
                if t["Properties"]["TableInput"]["Name"] == name]
    return table


def test_candles_table_projects_every_partition_key(synth):
    from stacks.query_stack import PARTITION_KEYS

    table = glue_table(synth.query, "candles")
    (_, database), = synth.query.find_resources("AWS::Glue::Database").items()
    assert database["Properties"]["DatabaseInput"]["Name"] == table["Properties"]["DatabaseName"] == "backtest"
    assert not synth.query.find_resources("AWS::Glue::Crawler")
    t = table["Properties"]["TableInput"]
    assert t["Name"] == "candles" and t["TableType"] == "EXTERNAL_TABLE"
    keys = [k["Name"] for k in t["PartitionKeys"]]
    assert keys == list(storage_layout.PARTITION_COLUMNS) == [k for k, _ in PARTITION_KEYS]
    p = t["Parameters"]
    assert p["projection.enabled"] == "true"
    assert {k: p[f"projection.{k}.type"] for k in keys} == {
        "symbol": "injected", "interval": "enum", "year": "date", "month": "integer"}
    assert p["projection.interval.values"].split(",") == list(INTERVALS)
    assert (p["projection.year.format"], p["projection.year.range"]) == ("yyyy", "2017,NOW")
    assert (p["projection.month.range"], p["projection.month.digits"]) == ("1,12", "2")
    template = synth.deref(p["storage.location.template"])
    assert render(template, synth).endswith("/candles/symbol=${symbol}/interval=${interval}/year=${year}/month=${month}/")
    assert t["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")


def test_candles_table_columns_are_what_the_dataset_writer_writes(synth, tmp_path):
    """The Glue columns against a real Parquet file written by the engine, in a partition folder the
    projection template names."""
    import pyarrow.parquet as pq

    from engine.data.dataset import upsert_candles
    from fakes.candles import synthetic_klines

    upsert_candles(str(tmp_path), "BTCUSDT", "15m", synthetic_klines(1_704_067_200_000, 10))
    (path,) = (tmp_path / "symbol=BTCUSDT/interval=15m/year=2024/month=01").glob("*.parquet")
    arrow = {f.name: str(f.type) for f in pq.read_schema(path)}
    table = glue_table(synth.query, "candles")
    glue_types = {c["Name"]: c["Type"] for c in table["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]}
    assert list(glue_types) == list(arrow)
    assert {n: {"int64": "bigint", "double": "double"}[t] for n, t in arrow.items()} == glue_types


def test_um_tables_sit_at_the_layout_prefixes_with_the_spot_partitioning(synth):
    """um_candles and um_mark: the candles table's columns and projection at um/candles/ and um/mark/
    (engine/storage_layout.py); um_funding: one file per symbol, so symbol is its only (injected) key."""
    spot = glue_table(synth.query, "candles")["Properties"]["TableInput"]
    for name, prefix in (("um_candles", "um/candles/"), ("um_mark", "um/mark/")):
        t = glue_table(synth.query, name)["Properties"]["TableInput"]
        assert prefix == storage_layout.kind_prefix("um", {"um_candles": "klines", "um_mark": "mark"}[name])
        assert t["PartitionKeys"] == spot["PartitionKeys"] and t["TableType"] == "EXTERNAL_TABLE"
        assert t["StorageDescriptor"]["Columns"] == spot["StorageDescriptor"]["Columns"]
        p = t["Parameters"]
        assert {k: v for k, v in p.items() if k != "storage.location.template"} == \
            {k: v for k, v in spot["Parameters"].items() if k != "storage.location.template"}
        assert render(synth.deref(t["StorageDescriptor"]["Location"]), synth).endswith(f"/{prefix}")
        assert render(synth.deref(p["storage.location.template"]), synth).endswith(
            f"/{prefix}symbol=${{symbol}}/interval=${{interval}}/year=${{year}}/month=${{month}}/")
    f = glue_table(synth.query, "um_funding")["Properties"]["TableInput"]
    assert [k["Name"] for k in f["PartitionKeys"]] == ["symbol"]
    assert (f["Parameters"]["projection.enabled"], f["Parameters"]["projection.symbol.type"]) == ("true", "injected")
    assert not [k for k in f["Parameters"] if k.startswith(("projection.interval", "projection.year"))]
    assert render(synth.deref(f["Parameters"]["storage.location.template"]), synth).endswith(
        "/um/funding/symbol=${symbol}/")
    assert f["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert "UmTableNames" in synth.json["BacktestQuery"]["Outputs"]


def test_um_funding_table_columns_are_what_the_funding_writer_writes(synth, tmp_path):
    """The Glue columns against a real funding table written by the engine, at the path the template names."""
    import pandas as pd
    import pyarrow.parquet as pq

    from engine.data.funding_table import upsert_funding

    upsert_funding(str(tmp_path), "BTCUSDT", pd.DataFrame({
        "funding_time": [1_704_067_200_000, 1_704_096_000_000], "funding_rate": [0.0001, -0.0002],
        "mark_price": [42_000.5, None], "interval_hours": [8, 8]}))
    arrow = {f.name: str(f.type) for f in pq.read_schema(tmp_path / "symbol=BTCUSDT" / storage_layout.FUNDING_FILE)}
    t = glue_table(synth.query, "um_funding")["Properties"]["TableInput"]
    glue_types = {c["Name"]: c["Type"] for c in t["StorageDescriptor"]["Columns"]}
    assert list(glue_types) == list(arrow)
    assert {n: {"int64": "bigint", "double": "double"}[ty] for n, ty in arrow.items()} == glue_types


def test_athena_workgroup_encrypts_results_under_athena_results_and_caps_a_query(synth):
    (_, wg), = synth.query.find_resources("AWS::Athena::WorkGroup").items()
    config = wg["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True and config["PublishCloudWatchMetricsEnabled"] is True
    results = config["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert render(synth.deref(results["OutputLocation"]), synth).endswith("/athena-results/")
    assert config["BytesScannedCutoffPerQuery"] == 10 * 1024 ** 3
    assert config["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}


def test_dashboard_shows_lag_invocations_errors_gaps_and_batch_job_states(synth):
    (_, dash), = synth.dashboard.find_resources("AWS::CloudWatch::Dashboard").items()
    body = json.dumps(synth.deref(dash["Properties"]["DashboardBody"]))
    for words in ("OldestWatermarkAgeSeconds", "LaggingSeries", "Invocations", "Errors", "SeriesFailures",
                  "DeadLettered", "GapsRepaired", "GapsRemaining", "BlockedSkips", "GeoBlocked",
                  "Batch job states", "detail.status", "alarm threshold"):
        assert words in body, words


# --- tags --------------------------------------------------------------------------------------------

def _tags_of(resource: dict) -> dict[str, str]:
    tags = resource.get("Properties", {}).get("Tags")
    if tags is None:
        return {}
    if isinstance(tags, dict):  # AWS::Batch::* and a few others take a map
        return tags
    return {t["Key"]: t["Value"] for t in tags}


def test_every_taggable_resource_carries_the_project_tag_and_the_context_tags():
    built = build_app({"tags": '{"team": "quant", "cost-center": "42"}'})
    templates = {s.stack_name: Template.from_stack(s).to_json()["Resources"] for s in built}
    checked = 0
    for construct in built.storage.node.root.node.find_all():
        if isinstance(construct, cdk.CfnResource) and cdk.TagManager.is_taggable(construct):
            stack = cdk.Stack.of(construct)
            tags = _tags_of(templates[stack.stack_name][stack.resolve(stack.get_logical_id(construct))])
            assert tags.get("project") == "backtest", construct.node.path
            assert (tags.get("team"), tags.get("cost-center")) == ("quant", "42"), construct.node.path
            checked += 1
    assert checked >= 20


def test_project_tag_and_tags_from_context(synth):
    (_, bucket), = synth.storage.find_resources("AWS::S3::Bucket", {
        "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}).items()
    assert _tags_of(bucket)["project"] == "backtest"
    _, topic = only(build_app_template("alerts", {"project": "research", "tags": "owner=ops, env=prod"},
                                       "AWS::SNS::Topic"))
    assert {k: v for k, v in _tags_of(topic).items()} == {"project": "research", "owner": "ops", "env": "prod"}


# --- context -----------------------------------------------------------------------------------------

def build_app(context: dict, environ: dict | None = None, profile: str | None = None) -> stacks.BacktestStacks:
    """The app in-process with cdk.json's context plus ``context`` (strings, as ``-c key=value`` passes them)."""
    app = cdk.App(context={**CDK_CONTEXT, **context})
    return stacks.build(app, environ={} if environ is None else environ, region_of_profile=profile)


def build_app_template(stack: str, context: dict, resource_type: str) -> dict:
    return Template.from_stack(getattr(build_app(context), stack)).find_resources(resource_type)


def test_context_overrides_reach_the_templates():
    built = build_app({
        "symbols": "BTCUSDT, ETHUSDT", "intervals": "15m,1h", "historyStart": "2020-01-01",
        "fargateSpot": "false", "jobVcpu": "4", "jobMemoryMiB": "8192", "maxVcpus": "16",
        "sdkPandasVersion": "3.16.1", "jobRetryAttempts": "5", "glueDatabase": "market_data",
        "athenaScanLimitGb": "2",
    })
    ingest, batch, query = (Template.from_stack(s) for s in (built.ingest, built.batch, built.query))

    for _, fn in functions(ingest).values():
        assert fn["Properties"]["Environment"]["Variables"]["HISTORY_START"] == "2020-01-01"
        (layer,) = fn["Properties"]["Layers"]
        assert ingest.to_json()["Parameters"][layer["Ref"]]["Default"] == sdk_pandas_layer_parameter("3.16.1")
    inputs = [json.loads(r["Properties"]["Targets"][0]["Input"]) for r in ingest.find_resources("AWS::Events::Rule").values()]
    assert [i["series"] for i in inputs] == [[{"market": "spot", "kind": "klines", "symbols": ["BTCUSDT", "ETHUSDT"],
                                               "intervals": ["15m", "1h"]}]] * 2

    _, ce = only(batch.find_resources("AWS::Batch::ComputeEnvironment"))
    assert ce["Properties"]["ComputeResources"]["Type"] == "FARGATE"
    assert ce["Properties"]["ComputeResources"]["MaxvCpus"] == 16
    _, jd = only(batch.find_resources("AWS::Batch::JobDefinition"))
    requirements = jd["Properties"]["ContainerProperties"]["ResourceRequirements"]
    assert {r["Type"]: r["Value"] for r in requirements} == {"VCPU": "4", "MEMORY": "8192"}
    assert jd["Properties"]["RetryStrategy"]["Attempts"] == 5

    tables = query.find_resources("AWS::Glue::Table").values()
    assert {t["Properties"]["DatabaseName"] for t in tables} == {"market_data"} and len(tables) == 4
    for name in ("candles", "um_candles", "um_mark"):
        assert glue_table(query, name)["Properties"]["TableInput"]["Parameters"]["projection.year.range"] == "2020,NOW"
    (_, wg), = query.find_resources("AWS::Athena::WorkGroup").items()
    assert wg["Properties"]["WorkGroupConfiguration"]["BytesScannedCutoffPerQuery"] == 2 * 1024 ** 3


def test_perp_symbols_add_um_series_a_fapi_endpoint_and_the_um_grants():
    """``-c perpSymbols=BTCUSDT,ETHUSDT``: each schedule names the perps' trade klines and mark klines at the
    intervals and their funding; the worker gets the futures endpoint and the um/ prefixes (trade, mark,
    funding, raw, meta, locks) and index keys, beside spot's."""
    ingest = Template.from_stack(build_app({"perpSymbols": "BTCUSDT,ETHUSDT", "intervals": "15m,1h"}).ingest)
    perps = ["BTCUSDT", "ETHUSDT"]
    for rule in ingest.find_resources("AWS::Events::Rule").values():
        series = json.loads(rule["Properties"]["Targets"][0]["Input"])["series"]
        assert series == [
            {"market": "spot", "kind": "klines", "symbols": ["BTCUSDT"], "intervals": ["15m", "1h"]},
            {"market": "um", "kind": "klines", "symbols": perps, "intervals": ["15m", "1h"]},
            {"market": "um", "kind": "mark", "symbols": perps, "intervals": ["15m", "1h"]},
            {"market": "um", "kind": "funding", "symbols": perps}]
    fns = functions(ingest)
    for handler in ("lambdas/ingest/worker.handler", "lambdas/ingest/dispatcher.handler"):
        variables = fns[handler][1]["Properties"]["Environment"]["Variables"]
        assert variables["BINANCE_FAPI_BASE_URL"] == "https://fapi.binance.com"
    role_id = fns["lambdas/ingest/worker.handler"][1]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = role_statements(ingest, role_id)
    resources = {str(r) for st in statements for r in as_list(st["Resource"])}
    for prefix in ("um/candles/*", "um/mark/*", "um/funding/*", "um/raw/*", "um/meta/*", "um/locks/*", "candles/*"):
        assert any(prefix in r for r in resources), prefix
    (ddb,) = [st for st in statements if any(a.startswith("dynamodb:") for a in as_list(st["Action"]))]
    assert ddb["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["spot#*", "um#*"]}}


@pytest.mark.parametrize("context, needle", [
    ({"jobVcpu": "2", "jobMemoryMiB": "1024"}, "jobMemoryMiB"),
    ({"jobVcpu": "3"}, "jobVcpu"),
    ({"fargateSpot": "maybe"}, "fargateSpot"),
    ({"historyStart": "17-08-2017"}, "historyStart"),
    ({"jobRetryAttempts": "11"}, "jobRetryAttempts"),
    ({"runnableTimeoutMinutes": "5"}, "runnableTimeoutMinutes"),
    ({"reservedConcurrency": "1"}, "reservedConcurrency: no longer used.*ingestConcurrency"),
    ({"ingestConcurrency": "1"}, "ingestConcurrency"),
    ({"ingestConcurrency": "26"}, "ingestConcurrency.*6000"),
    ({"ingestConcurrency": "five"}, "ingestConcurrency"),
    ({"ingestTimeoutSeconds": "1000"}, "ingestTimeoutSeconds"),
    ({"ingestLagAlarmMinutes": "4"}, "ingestLagAlarmMinutes"),
    ({"rawRetentionDays": "0"}, "rawRetentionDays"),
    ({"shardRetentionDays": "x"}, "shardRetentionDays"),
    ({"glueDatabase": "Market-Data"}, "glueDatabase"),
    ({"athenaScanLimitGb": "0"}, "athenaScanLimitGb"),
    ({"intervals": "7m"}, "intervals"),
    ({"symbols": "btc usdt"}, "symbols"),
    ({"perpSymbols": "BTCUSDT,eth"}, "perpSymbols: 'eth'"),
    ({"perpSymbols": "BTCUSDT", "binanceFapiBaseUrl": "fapi.binance.com"}, "binanceFapiBaseUrl"),
    ({"symbols": ",".join(f"SYM{i:04d}USDT" for i in range(900))}, "symbols: .*8192"),
    ({"alarmEmail": "not-an-address"}, "alarmEmail"),
    ({"tags": "owner"}, "tags"),
    ({"onDemandFallback": "true", "fargateSpot": "false"}, "onDemandFallback"),
])
def test_invalid_context_is_rejected_naming_the_key(context, needle):
    with pytest.raises(stacks.SettingsError, match=needle):
        build_app(context)


@pytest.mark.parametrize("context_region, environ, profile, expected", [
    ("ap-south-1", {"AWS_REGION": "eu-central-1"}, "eu-north-1", ("ap-south-1", "context")),
    (None, {"AWS_REGION": "eu-central-1", "CDK_DEFAULT_REGION": "us-east-1"}, None, ("eu-central-1", "environment")),
    (None, {"AWS_DEFAULT_REGION": "sa-east-1"}, None, ("sa-east-1", "environment")),
    (None, {"CDK_DEFAULT_REGION": "us-east-1"}, "eu-north-1", ("eu-north-1", "profile")),
    (None, {"CDK_DEFAULT_REGION": "us-east-1"}, "us-east-1", ("us-east-1", "profile")),  # refused later
    (None, {"CDK_DEFAULT_REGION": "ap-northeast-1"}, None, ("ap-northeast-1", "cli")),  # cdk --profile
    (None, {"CDK_DEFAULT_REGION": "us-east-1"}, None, ("eu-west-1", "default")),  # the CLI's assumption
    (None, {}, None, ("eu-west-1", "default")),
])
def test_region_resolution(context_region, environ, profile, expected):
    assert resolve_region(context_region, CDK_CONTEXT["defaultRegion"], environ, profile) == expected


@pytest.mark.parametrize("context, environ", [
    ({"region": "us-east-1"}, {}),
    ({}, {"AWS_REGION": "us-west-2"}),
    ({}, {"AWS_DEFAULT_REGION": "us-gov-west-1"}),
    ({}, {"CDK_DEFAULT_REGION": "us-east-2"}),
    ({"region": "us-east-2"}, {"AWS_REGION": "eu-west-1"}),  # context wins
])
def test_synth_refuses_a_us_region(context, environ):
    with pytest.raises(stacks.SettingsError, match="451"):
        build_app(context, environ)
    with pytest.raises(stacks.SettingsError, match="451"):
        build_app({}, {}, profile="us-east-1")


def test_where_the_stacks_go():
    assert CDK_CONTEXT["defaultRegion"] == "eu-west-1"
    built = build_app({"region": "eu-central-1"}, {"AWS_REGION": "eu-west-3"})
    assert {s.region for s in built} == {"eu-central-1"}  # pinned
    built = build_app({}, {"CDK_DEFAULT_REGION": "us-east-1"})  # no AWS configuration: the default, pinned
    assert {s.region for s in built} == {"eu-west-1"}
    built = build_app({}, {"AWS_REGION": "ap-northeast-1"})
    assert all(cdk.Token.is_unresolved(s.region) for s in built)  # env-agnostic: the CLI's region applies


def test_cdk_app_refuses_a_us_region_in_one_line():
    env = {**cli_env(), "AWS_REGION": "us-east-1", "CDK_OUTDIR": "/nonexistent-cdk-out"}
    env["CDK_CONTEXT_JSON"] = json.dumps(CDK_CONTEXT)
    proc = subprocess.run([sys.executable, "cdk_app.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: region us-east-1: the ingest cannot run")
    assert "Traceback" not in proc.stderr
