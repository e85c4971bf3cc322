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
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # stacks/ is the CDK app, not an installed package
    sys.path.insert(0, str(REPO))

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402

import stacks  # noqa: E402
from engine import storage_layout  # noqa: E402
from stacks.batch_stack import RETRY_ON  # noqa: E402
from stacks.ingest_stack import ENGINE_MODULES, SCHEDULE, US_REGIONS, sdk_pandas_layer_parameter  # noqa: E402

pytestmark = pytest.mark.xdist_group("cdk")

CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
CDK_CONTEXT = json.loads((REPO / "cdk.json").read_text())["context"]
STACK_NAMES = ("BacktestStorage", "BacktestAlerts", "BacktestIngest", "BacktestBatch")
SERIES = "symbol=BTCUSDT/interval=15m/"

BUCKET_LEVEL_ACTIONS = {"s3:ListBucket"}


@contextmanager
def _exclusive(lock_path: Path):
    """Cross-process lock, so that xdist workers share one synth whatever the scheduling."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: every worker synthesizes on its own
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1", CDK_DISABLE_CLI_TELEMETRY="true")
    # Without an AWS profile the CLI assumes us-east-1, which the app refuses (Binance answers 451 there).
    env.update(AWS_REGION="eu-west-1")
    env.pop("CDK_DEFAULT_REGION", None)
    return env


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory) -> Path:
    """`cdk synth` of the real app (cdk.json, default context) into a temp dir shared by all workers."""
    if not CDK_CLI.exists():
        pytest.fail(f"{CDK_CLI} is missing: run `npm ci` (make test does)")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    out = shared / "cdk-cli-out"
    with _exclusive(shared / "cdk-cli-out.lock"):
        if not (out / "manifest.json").exists():
            proc = subprocess.run(
                [str(CDK_CLI), "synth", "--quiet", "--no-notices", "-o", str(out)],
                cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600,
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


def test_data_bucket_expires_old_versions_and_removes_expired_delete_markers(synth):
    (_, bucket), = synth.storage.find_resources("AWS::S3::Bucket", {
        "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}).items()
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rules["ExpireNoncurrentVersions"]["Status"] == "Enabled"
    markers = rules["RemoveExpiredDeleteMarkers"]
    assert markers["Status"] == "Enabled" and markers["ExpiredObjectDeleteMarker"] is True
    assert "Prefix" not in markers and "TagFilters" not in markers  # the whole bucket


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
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"} in statements


def test_no_email_subscription_without_context(synth):
    synth.alerts.resource_count_is("AWS::SNS::Subscription", 0)


def test_alarm_email_from_context_subscribes_to_the_topic():
    built = build_app({"alarmEmail": "ops@example.com"})
    alerts = Template.from_stack(built.alerts)
    topic_id, _ = only(alerts.find_resources("AWS::SNS::Topic"))
    alerts.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": {"Ref": topic_id}})


def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_is_over(synth):
    alarms = {**synth.ingest.find_resources("AWS::CloudWatch::Alarm"),
              **synth.batch.find_resources("AWS::CloudWatch::Alarm")}
    assert len(alarms) == 5  # errors, dead letters arrived and waiting, lag of BTCUSDT 15m, Binance ban
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert synth.deref(props["AlarmActions"]) == [synth.topic], logical_id
        assert synth.deref(props["OKActions"]) == [synth.topic], logical_id
        assert props.get("ActionsEnabled", True) is True


def test_failed_batch_jobs_reach_the_topic(synth):
    queue_id, _ = only(synth.batch.find_resources("AWS::Batch::JobQueue"))
    _, rule = only(synth.batch.find_resources("AWS::Events::Rule"))
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

def test_ingest_schedule_runs_just_after_each_15m_close(synth):
    assert SCHEDULE == "cron(1,16,31,46 * * * ? *)"
    fn_id, _ = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    dlq_id, _ = only(synth.ingest.find_resources("AWS::SQS::Queue"))
    synth.ingest.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": SCHEDULE,
        "State": "ENABLED",
        "Targets": [Match.object_like({
            "Arn": {"Fn::GetAtt": [fn_id, "Arn"]},
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}},
        })],
    })


def test_ingest_function_runtime_layer_and_dlq_and_no_reserved_concurrency(synth):
    fn_id, fn = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    dlq_id, _ = only(synth.ingest.find_resources("AWS::SQS::Queue"))
    props = fn["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "lambdas/ingest/handler.handler"
    assert "ReservedConcurrentExecutions" not in props  # the series lock keeps runs apart
    assert props["Timeout"] == 300 and props["MemorySize"] == 1024
    assert props["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}}

    # The layer ARN is the public SSM parameter of the managed AWS SDK for pandas layer, resolved at deploy.
    (layer,) = props["Layers"]
    parameter = synth.ingest.to_json()["Parameters"][layer["Ref"]]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert parameter["Default"] == sdk_pandas_layer_parameter("3.17.1")
    assert parameter["Default"] == "/aws/service/aws-sdk-pandas/3.17.1/py3.12/arm64/layer-arn"

    synth.ingest.has_resource_properties("AWS::Lambda::EventInvokeConfig", {
        "FunctionName": {"Ref": fn_id}, "MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600})
    log_group = synth.ingest.to_json()["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] == 30


def test_reserved_concurrency_comes_from_context():
    built = build_app({"reservedConcurrency": "1"})
    _, fn = only(Template.from_stack(built.ingest).find_resources("AWS::Lambda::Function"))
    assert fn["Properties"]["ReservedConcurrentExecutions"] == 1


def test_ingest_environment_contract(synth):
    _, fn = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    env = fn["Properties"]["Environment"]["Variables"]
    assert synth.deref(env.pop("BUCKET_NAME")) == synth.bucket_name
    assert env == {
        "RAW_PREFIX": storage_layout.RAW_PREFIX,
        "CANDLES_PREFIX": storage_layout.CANDLES_PREFIX,
        "SYMBOLS": "BTCUSDT",
        "INTERVALS": "15m",
        "HISTORY_START": "2017-08-17",
        "BINANCE_BASE_URL": "https://data-api.binance.vision",
        "MAX_PAGES_PER_RUN": "200",
    }


def test_dead_letter_queue_is_encrypted_and_ssl_only(synth):
    dlq_id, dlq = only(synth.ingest.find_resources("AWS::SQS::Queue"))
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    synth.ingest.has_resource_properties("AWS::SQS::QueuePolicy", {
        "Queues": [{"Ref": dlq_id}],
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])},
    })


def _alarm(template: Template, metric_name: str, **dims) -> dict:
    found = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()
             if a["Properties"].get("MetricName") == metric_name
             and all({"Name": k, "Value": v} in a["Properties"].get("Dimensions", []) for k, v in dims.items())]
    assert len(found) == 1, f"{metric_name} {dims}: {len(found)} alarms"
    return found[0]


def test_errors_alarm(synth):
    fn_id, _ = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    alarm = _alarm(synth.ingest, "Errors")
    assert alarm["Namespace"] == "AWS/Lambda" and alarm["Dimensions"] == [{"Name": "FunctionName",
                                                                          "Value": {"Ref": fn_id}}]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["Period"]) == (1, 2, 900)


def test_dead_letter_alarms_notify_each_arrival_and_clear_once_handled(synth):
    """Not the oldest message's age: that stays in ALARM for the 14 days messages are kept."""
    dlq_id, _ = only(synth.ingest.find_resources("AWS::SQS::Queue"))
    queue = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]
    arrived = _alarm(synth.ingest, "NumberOfMessagesSent")
    assert (arrived["Namespace"], arrived["Dimensions"], arrived["Statistic"]) == ("AWS/SQS", queue, "Sum")
    assert (arrived["Threshold"], arrived["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert (arrived["Period"], arrived["EvaluationPeriods"], arrived["TreatMissingData"]) == (300, 1, "notBreaching")
    waiting = _alarm(synth.ingest, "ApproximateNumberOfMessagesVisible")
    assert (waiting["Dimensions"], waiting["Threshold"], waiting["TreatMissingData"]) == (queue, 1, "notBreaching")
    alarms = synth.ingest.find_resources("AWS::CloudWatch::Alarm").values()
    assert not any(a["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage" for a in alarms)


def test_ingest_lag_alarm_per_series_on_the_emf_metric(synth):
    alarm = _alarm(synth.ingest, "WatermarkAgeSeconds", Symbol="BTCUSDT", Interval="15m")
    assert alarm["Namespace"] == "Backtest/Ingest" and alarm["Statistic"] == "Maximum"
    assert len(alarm["Dimensions"]) == 2
    assert alarm["Threshold"] == (2 * 15 + 60) * 60  # default: two intervals plus an hour, in seconds
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (900, 2)
    assert alarm["TreatMissingData"] == "breaching"  # a silent ingest is a late ingest


def test_lag_threshold_and_series_come_from_context():
    built = build_app({"symbols": "BTCUSDT,ETHUSDT", "intervals": "15m,1h", "ingestLagAlarmMinutes": "45"})
    ingest = Template.from_stack(built.ingest)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for interval in ("15m", "1h"):
            assert _alarm(ingest, "WatermarkAgeSeconds", Symbol=symbol, Interval=interval)["Threshold"] == 45 * 60
    default = Template.from_stack(build_app({"intervals": "1h"}).ingest)
    assert _alarm(default, "WatermarkAgeSeconds", Symbol="BTCUSDT", Interval="1h")["Threshold"] == (120 + 60) * 60


def test_binance_ban_alarm_on_blocked_skips(synth):
    alarm = _alarm(synth.ingest, "BlockedSkips")
    assert alarm["Namespace"] == "Backtest/Ingest" and "Dimensions" not in alarm
    assert (alarm["Statistic"], alarm["Threshold"], alarm["TreatMissingData"]) == ("Sum", 1, "notBreaching")


def test_ingest_role_writes_only_its_series_and_locks(synth):
    _, fn = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    role = synth.ingest.to_json()["Resources"][role_id]
    assert "ManagedPolicyArns" not in role["Properties"]

    access = s3_access(role_statements(synth.ingest, role_id), synth)
    assert access == {
        f"BUCKET/raw/{SERIES}*": {"s3:PutObject", "s3:AbortMultipartUpload"},
        f"BUCKET/candles/{SERIES}*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
        f"BUCKET/meta/{SERIES}*": {"s3:GetObject", "s3:PutObject"},
        "BUCKET/locks/*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
        # names only: without it S3 answers 403, not 404, for the usually absent marker and outages file
        "LIST": {"<every key name>"},
    }
    # the key layout the grants follow is the one the code uses
    assert storage_layout.series_lock_key("BTCUSDT", "15m").startswith("locks/")
    assert storage_layout.outages_key("BTCUSDT", "15m").startswith(f"meta/{SERIES}")
    assert storage_layout.raw_batch_key("BTCUSDT", "15m", 0, 1).startswith(f"raw/{SERIES}")


def test_ingest_role_covers_exactly_the_configured_series():
    built = build_app({"symbols": "BTCUSDT,ETHUSDT", "intervals": "15m,1h"})
    ingest = Template.from_stack(built.ingest)
    _, fn = only(ingest.find_resources("AWS::Lambda::Function"))
    statements = role_statements(ingest, fn["Properties"]["Role"]["Fn::GetAtt"][0])
    writable = set()
    for st in statements:
        if "s3:PutObject" in as_list(st["Action"]):
            writable |= {json.dumps(r["Fn::Join"][1][1:]) for r in as_list(st["Resource"])}
    series = {f"symbol={s}/interval={i}/" for s in ("BTCUSDT", "ETHUSDT") for i in ("15m", "1h")}
    expected = {json.dumps([f"/{top}/{x}*"]) for top in ("raw", "candles", "meta") for x in series}
    assert writable == expected | {json.dumps(["/locks/*"])}


def test_only_the_ingest_role_reaches_locks(synth):
    """locks/ has its own grant: no other policy in the app covers those keys (nor the whole bucket)."""
    _, fn = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    ingest_role = {"Ref": fn["Properties"]["Role"]["Fn::GetAtt"][0]}
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
                if any(f.startswith("BUCKET/locks/") for f in flat):
                    reaching.append((name, tuple(policy["Properties"]["Roles"][0].values())))
    assert reaching and all(r == ("BacktestIngest", (ingest_role["Ref"],)) for r in reaching), reaching


def test_us_regions_are_refused_at_deploy_time_too(synth):
    """A stack synthesized without a known region carries a CloudFormation rule against US regions."""
    rules = synth.json["BacktestIngest"]["Rules"]
    (name,) = (n for n in rules if n.startswith("NotInAUsRegion"))
    (assertion,) = rules[name]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Contains": [list(US_REGIONS), {"Ref": "AWS::Region"}]}]}
    assert "451" in assertion["AssertDescription"]


def test_lambda_asset_holds_only_the_handler_and_light_engine_modules(synth):
    _, fn = only(synth.ingest.find_resources("AWS::Lambda::Function"))
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
    assert "lambdas/ingest/handler.py" in files
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
        "BUCKET/runs/*": {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"},
        "LIST": {"candles/", "candles/*", "runs/", "runs/*"},
    }
    assert not any("Delete" in a for actions in access.values() for a in actions)


def test_outputs(synth):
    synth.storage.has_output("BucketName", {"Value": synth.bucket_name})
    queue_id, _ = only(synth.batch.find_resources("AWS::Batch::JobQueue"))
    jd_id, _ = only(synth.batch.find_resources("AWS::Batch::JobDefinition"))
    synth.batch.has_output("JobQueueArn", {"Value": {"Fn::GetAtt": [queue_id, "JobQueueArn"]}})
    synth.batch.has_output("JobDefinitionArn", {"Value": {"Ref": jd_id}})
    synth.alerts.has_output("AlarmTopicArn", {"Value": synth.topic})


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

def build_app(context: dict, environ: dict | None = None) -> stacks.BacktestStacks:
    """The app in-process with cdk.json's context plus ``context`` (strings, as ``-c key=value`` passes them)."""
    app = cdk.App(context={**CDK_CONTEXT, **context})
    return stacks.build(app, environ={} if environ is None else environ)


def build_app_template(stack: str, context: dict, resource_type: str) -> dict:
    return Template.from_stack(getattr(build_app(context), stack)).find_resources(resource_type)


def test_context_overrides_reach_the_templates():
    built = build_app({
        "symbols": "BTCUSDT, ETHUSDT", "intervals": "15m,1h", "historyStart": "2020-01-01",
        "fargateSpot": "false", "jobVcpu": "4", "jobMemoryMiB": "8192", "maxVcpus": "16",
        "sdkPandasVersion": "3.16.1", "jobRetryAttempts": "5",
    })
    ingest, batch = Template.from_stack(built.ingest), Template.from_stack(built.batch)

    _, fn = only(ingest.find_resources("AWS::Lambda::Function"))
    env = fn["Properties"]["Environment"]["Variables"]
    assert (env["SYMBOLS"], env["INTERVALS"], env["HISTORY_START"]) == ("BTCUSDT,ETHUSDT", "15m,1h", "2020-01-01")
    (layer,) = fn["Properties"]["Layers"]
    assert ingest.to_json()["Parameters"][layer["Ref"]]["Default"] == sdk_pandas_layer_parameter("3.16.1")

    _, ce = only(batch.find_resources("AWS::Batch::ComputeEnvironment"))
    assert ce["Properties"]["ComputeResources"]["Type"] == "FARGATE"
    assert ce["Properties"]["ComputeResources"]["MaxvCpus"] == 16
    _, jd = only(batch.find_resources("AWS::Batch::JobDefinition"))
    requirements = jd["Properties"]["ContainerProperties"]["ResourceRequirements"]
    assert {r["Type"]: r["Value"] for r in requirements} == {"VCPU": "4", "MEMORY": "8192"}
    assert jd["Properties"]["RetryStrategy"]["Attempts"] == 5


@pytest.mark.parametrize("context, needle", [
    ({"jobVcpu": "2", "jobMemoryMiB": "1024"}, "jobMemoryMiB"),
    ({"jobVcpu": "3"}, "jobVcpu"),
    ({"fargateSpot": "maybe"}, "fargateSpot"),
    ({"historyStart": "17-08-2017"}, "historyStart"),
    ({"jobRetryAttempts": "11"}, "jobRetryAttempts"),
    ({"runnableTimeoutMinutes": "5"}, "runnableTimeoutMinutes"),
    ({"reservedConcurrency": "0"}, "reservedConcurrency"),
    ({"reservedConcurrency": "one"}, "reservedConcurrency"),
    ({"ingestLagAlarmMinutes": "5"}, "ingestLagAlarmMinutes"),
    ({"intervals": "7m"}, "intervals"),
    ({"symbols": "btc usdt"}, "symbols"),
    ({"alarmEmail": "not-an-address"}, "alarmEmail"),
    ({"tags": "owner"}, "tags"),
    ({"onDemandFallback": "true", "fargateSpot": "false"}, "onDemandFallback"),
])
def test_invalid_context_is_rejected_naming_the_key(context, needle):
    with pytest.raises(stacks.SettingsError, match=needle):
        build_app(context)


@pytest.mark.parametrize("context, environ", [
    ({"region": "us-east-1"}, {}),
    ({}, {"CDK_DEFAULT_REGION": "us-west-2"}),
    ({}, {"AWS_REGION": "us-gov-west-1"}),
    ({"region": "us-east-2"}, {"CDK_DEFAULT_REGION": "eu-west-1"}),  # context wins
])
def test_synth_refuses_a_us_region(context, environ):
    with pytest.raises(stacks.SettingsError, match="451"):
        build_app(context, environ)


def test_a_region_from_context_pins_the_stacks_there():
    built = build_app({"region": "eu-west-1"}, {"CDK_DEFAULT_REGION": "us-east-1"})
    assert {s.region for s in built} == {"eu-west-1"}
    built = build_app({}, {"AWS_REGION": "ap-northeast-1"})
    assert all(cdk.Token.is_unresolved(s.region) for s in built)  # env-agnostic: the CLI's region applies


def test_cdk_app_refuses_a_us_region_in_one_line():
    env = {**cli_env(), "CDK_DEFAULT_REGION": "us-east-1", "CDK_OUTDIR": "/nonexistent-cdk-out"}
    env["CDK_CONTEXT_JSON"] = json.dumps(CDK_CONTEXT)
    proc = subprocess.run([sys.executable, "cdk_app.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: region us-east-1: the ingest cannot run")
    assert "Traceback" not in proc.stderr
