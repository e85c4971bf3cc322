"""Assertions on the templates `cdk synth` produces (offline; one synth per test session).

The app is synthesized once, through the pinned aws-cdk CLI, into a temp cloud assembly; the
template assertions, the Lambda asset check and cfn-lint all read that assembly.
"""

from __future__ import annotations

import json
import os
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
from stacks.ingest_stack import ENGINE_MODULES, SCHEDULE, sdk_pandas_layer_parameter  # noqa: E402

pytestmark = pytest.mark.xdist_group("cdk")

CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
CDK_CONTEXT = json.loads((REPO / "cdk.json").read_text())["context"]
STACK_NAMES = ("BacktestStorage", "BacktestIngest", "BacktestBatch")

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
        self.ingest = Template.from_json(self.json["BacktestIngest"])
        self.batch = Template.from_json(self.json["BacktestBatch"])
        (self.bucket_id, _), = ((k, v) for k, v in self.json["BacktestStorage"]["Resources"].items()
                                if v["Type"] == "AWS::S3::Bucket" and "VersioningConfiguration" in v["Properties"])

    def deref(self, value):
        """Replace cross-stack references to BacktestStorage by the value they export."""
        if isinstance(value, list):
            return [self.deref(v) for v in value]
        if not isinstance(value, dict):
            return value
        outputs = self.json["BacktestStorage"].get("Outputs", {})
        ref = value.get("Fn::GetStackOutput")
        if ref and ref.get("StackName") == "BacktestStorage":
            return outputs[ref["OutputName"]]["Value"]
        if "Fn::ImportValue" in value:
            for output in outputs.values():
                if output.get("Export", {}).get("Name") == value["Fn::ImportValue"]:
                    return output["Value"]
        return {k: self.deref(v) for k, v in value.items()}

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
            access.setdefault("LIST", set()).update(st["Condition"]["StringLike"]["s3:prefix"])
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
    assert any("NoncurrentVersionExpiration" in rule and rule["Status"] == "Enabled"
               for rule in props["LifecycleConfiguration"]["Rules"])
    log_target = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert log_target != logical_id

    log_bucket = synth.storage.to_json()["Resources"][log_target]
    assert log_bucket["DeletionPolicy"] == "Retain"
    assert log_bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert "BucketEncryption" in log_bucket["Properties"]


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


def test_ingest_function_runtime_layer_concurrency_and_dlq(synth):
    fn_id, fn = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    dlq_id, _ = only(synth.ingest.find_resources("AWS::SQS::Queue"))
    props = fn["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "lambdas/ingest/handler.handler"
    assert props["ReservedConcurrentExecutions"] == 1
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


def test_ingest_alarms_on_errors_and_dead_letters(synth):
    fn_id, _ = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    dlq_id, _ = only(synth.ingest.find_resources("AWS::SQS::Queue"))
    synth.ingest.has_resource_properties("AWS::CloudWatch::Alarm", {
        "Namespace": "AWS/Lambda", "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": fn_id}}],
        "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    })
    synth.ingest.has_resource_properties("AWS::CloudWatch::Alarm", {
        "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}],
        "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    })


def test_ingest_role_writes_raw_and_candles_only(synth):
    _, fn = only(synth.ingest.find_resources("AWS::Lambda::Function"))
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    role = synth.ingest.to_json()["Resources"][role_id]
    assert "ManagedPolicyArns" not in role["Properties"]

    access = s3_access(role_statements(synth.ingest, role_id), synth)
    assert access == {
        "BUCKET/raw/*": {"s3:PutObject", "s3:AbortMultipartUpload"},
        "BUCKET/candles/*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
        "LIST": {"candles/", "candles/*"},
    }


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


def test_compute_environment_is_fargate_spot_in_public_subnets(synth):
    ce_id, ce = only(synth.batch.find_resources("AWS::Batch::ComputeEnvironment"))
    resources = ce["Properties"]["ComputeResources"]
    assert ce["Properties"]["Type"] == "managed"
    assert resources["Type"] == "FARGATE_SPOT"
    assert resources["MaxvCpus"] == 64
    subnet_ids = {s["Ref"] for s in resources["Subnets"]}
    assert subnet_ids <= set(synth.batch.find_resources("AWS::EC2::Subnet"))
    synth.batch.has_resource_properties("AWS::Batch::JobQueue", {
        "ComputeEnvironmentOrder": [
            {"ComputeEnvironment": {"Fn::GetAtt": [ce_id, "ComputeEnvironmentArn"]}, "Order": 1}]})


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

    # The image is the DockerImageAsset built from the repo's Dockerfile.
    manifest = json.loads((synth.out / "BacktestBatch.assets.json").read_text())
    (image_hash, image), = manifest["dockerImages"].items()
    staged = synth.out / image["source"]["directory"]
    assert (staged / "Dockerfile").read_text() == (REPO / "Dockerfile").read_text()
    assert image_hash in json.dumps(container["Image"])
    assert not (staged / ".venv").exists() and not (staged / "node_modules").exists()


def test_job_commands_match_the_submitter_contract():
    contract = pytest.importorskip("batch_jobs.contract")
    from stacks.batch_stack import REDUCE_COMMAND, SHARD_COMMAND

    assert tuple(SHARD_COMMAND) == tuple(contract.SHARD_COMMAND)
    assert tuple(REDUCE_COMMAND) == tuple(contract.REDUCE_COMMAND)


def test_job_definition_retries_spot_interruptions_only_and_times_out(synth):
    _, jd = only(synth.batch.find_resources("AWS::Batch::JobDefinition"))
    props = jd["Properties"]
    assert props["Timeout"] == {"AttemptDurationSeconds": 120 * 60}
    assert props["RetryStrategy"] == {
        "Attempts": 3,
        "EvaluateOnExit": [
            {"Action": "RETRY", "OnStatusReason": "Host EC2*"},
            {"Action": "RETRY", "OnStatusReason": "Your Spot Task was interrupted*"},
            {"Action": "EXIT", "OnReason": "*"},
        ],
    }


def test_job_role_reads_candles_and_reads_writes_runs_only(synth):
    _, jd = only(synth.batch.find_resources("AWS::Batch::JobDefinition"))
    role_id = jd["Properties"]["ContainerProperties"]["JobRoleArn"]["Fn::GetAtt"][0]
    role = synth.batch.to_json()["Resources"][role_id]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]

    access = s3_access(role_statements(synth.batch, role_id), synth)
    assert access == {
        "BUCKET/candles/*": {"s3:GetObject"},
        "BUCKET/runs/*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
        "LIST": {"candles/", "candles/*", "runs/", "runs/*"},
    }


def test_no_policy_grants_object_actions_on_the_whole_bucket(synth):
    for template in (synth.ingest, synth.batch):
        for policy in template.find_resources("AWS::IAM::Policy").values():
            for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                if not any(a.startswith("s3:") or a == "*" for a in as_list(st["Action"])):
                    continue
                for r in as_list(st["Resource"]):
                    flat = render(r, synth)
                    assert flat not in ("*", "BUCKET/*", "arn:aws:s3:::*"), f"whole-bucket grant: {st}"


def test_outputs(synth):
    synth.storage.has_output("BucketName", {"Value": synth.bucket_name})
    queue_id, _ = only(synth.batch.find_resources("AWS::Batch::JobQueue"))
    jd_id, _ = only(synth.batch.find_resources("AWS::Batch::JobDefinition"))
    synth.batch.has_output("JobQueueArn", {"Value": {"Fn::GetAtt": [queue_id, "JobQueueArn"]}})
    synth.batch.has_output("JobDefinitionArn", {"Value": {"Ref": jd_id}})


# --- context -----------------------------------------------------------------------------------------

def test_context_overrides_reach_the_templates(tmp_path):
    # Strings, as `cdk synth -c key=value` passes them.
    app = cdk.App(outdir=str(tmp_path), context={**CDK_CONTEXT, **{
        "symbols": "BTCUSDT, ETHUSDT", "intervals": "15m,1h", "historyStart": "2020-01-01",
        "fargateSpot": "false", "jobVcpu": "4", "jobMemoryMiB": "8192", "maxVcpus": "16",
        "sdkPandasVersion": "3.16.1",
    }})
    built = stacks.build(app)
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


@pytest.mark.parametrize("context", [
    {"jobVcpu": "2", "jobMemoryMiB": "1024"},
    {"jobVcpu": "3"},
    {"fargateSpot": "maybe"},
    {"historyStart": "17-08-2017"},
])
def test_invalid_context_is_rejected(context):
    app = cdk.App(context=context)
    with pytest.raises(ValueError):
        stacks.IngestSettings.from_context(app.node)
        stacks.BatchSettings.from_context(app.node)
