"""cdk-nag AwsSolutions checks on the whole app: no unacknowledged finding; every acknowledgement is
one we reviewed, and each wildcard acknowledgement states the exact access that remains, which the
synthesized policy confirms."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("cdk_nag")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # stacks/ is the CDK app, not an installed package
    sys.path.insert(0, str(REPO))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

import stacks  # noqa: E402
from conftest import shared_json  # noqa: E402

pytestmark = pytest.mark.xdist_group("cdk")

LAYER = json.loads((REPO / "lambdas" / "ingest" / "layer.json").read_text())
# What the runtime acknowledgement must say: exactly what `make layer-check` tests.
LAYER_WORDS = ["python3.12", "3.17.1", "make layer-check", f"pandas {LAYER['packages']['pandas']}",
               f"pyarrow {LAYER['packages']['pyarrow']}", "tests/test_ingest.py", "tests/test_ingest_fanout.py"]
# construct path -> acknowledged rule -> words its reason must contain. A bucket-prefix wildcard
# finding embeds the cross-stack bucket reference; it is shown here as BUCKET. Grants are per market
# prefix: the same four for 1 series or 500.
EXPECTED_ACKNOWLEDGEMENTS = {
    "BacktestIngest/Worker": {"AwsSolutions-L1": LAYER_WORDS},
    "BacktestIngest/Dispatcher": {"AwsSolutions-L1": LAYER_WORDS},
    "BacktestIngest/WorkerRole": {
        "AwsSolutions-IAM5[Resource::BUCKET/raw/*]": ["raw/", "never read or deleted"],
        "AwsSolutions-IAM5[Resource::BUCKET/candles/*]": ["candles/"],
        "AwsSolutions-IAM5[Resource::BUCKET/meta/*]": ["meta/"],
        "AwsSolutions-IAM5[Resource::BUCKET/locks/*]": ["locks/"],
    },
    "BacktestBatch/JobRole": {
        "AwsSolutions-IAM5[Resource::BUCKET/candles/*]": ["candles/"],
        "AwsSolutions-IAM5[Resource::BUCKET/runs/*]": ["runs/"],
        # a perp sweep's three series, read only (storage_layout.kind_root)
        "AwsSolutions-IAM5[Resource::BUCKET/um/candles/*]": ["um/candles/", "read only"],
        "AwsSolutions-IAM5[Resource::BUCKET/um/mark/*]": ["um/mark/", "read only"],
        "AwsSolutions-IAM5[Resource::BUCKET/um/funding/*]": ["um/funding/", "read only"],
    },
    "BacktestBatch/Container/ExecutionRole": {"AwsSolutions-IAM5[Resource::*]": ["ecr:GetAuthorizationToken"]},
}
GENERIC_REASONS = {"", "ok", "needed", "required", "by design", "false positive", "suppressed", "n/a", "todo"}
BUCKET_REF = re.compile(r"Resource::\{\"Fn::(?:GetStackOutput|ImportValue)\".*\}(/\S*\*)\]$")
PREFIX_FINDING = re.compile(r"^AwsSolutions-IAM5\[Resource::BUCKET/(\S+)\*\]$")


def acknowledgements(app: cdk.App) -> dict[str, dict[str, str]]:
    """AwsSolutions acknowledgements recorded in construct metadata: path -> rule -> reason."""
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    found: dict[str, dict[str, str]] = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != key:
                continue
            for rule, reason in entry.data.items():
                rule = re.sub(r"^annotation::", "", rule, flags=re.IGNORECASE)
                if rule.startswith("AwsSolutions-"):
                    found.setdefault(construct.node.path, {})[BUCKET_REF.sub(r"Resource::BUCKET\1]", rule)] = reason
    return found


def _render(value) -> str:
    """A policy resource as text, any reference to another stack (the bucket) written as BUCKET."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(_render(p) for p in parts)
    return "BUCKET"


def _statements(app: cdk.App, assembly, role_path: str) -> list[dict]:
    (role,) = (c for c in app.node.find_all() if c.node.path == role_path)
    stack = cdk.Stack.of(role)
    logical_id = stack.get_logical_id(role.node.default_child)
    template = assembly.get_stack_by_name(stack.stack_name).template
    return [st for res in template["Resources"].values() if res["Type"] == "AWS::IAM::Policy"
            and {"Ref": logical_id} in res["Properties"].get("Roles", [])
            for st in res["Properties"]["PolicyDocument"]["Statement"]]


EXECUTION_ROLE = "BacktestBatch/Container/ExecutionRole"


def _nag(out: Path) -> dict:
    """The app synthesized under AwsSolutionsChecks: its acknowledgements, and the policy statements of
    the execution role and of every construct with a bucket-prefix acknowledgement."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    app = cdk.App(outdir=str(out), context={**context, "alarmEmail": "ops@example.com"})
    stacks.build(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        assembly = app.synth()
    except RuntimeError as exc:  # ValidationFailed lists every unacknowledged finding
        report = out / "validation-report.json"
        detail = report.read_text() if report.exists() else ""
        pytest.fail(f"cdk-nag findings:\n{exc}\n{detail}")
    found = acknowledgements(app)
    roles = {EXECUTION_ROLE} | {path for path, rules in found.items() if any(PREFIX_FINDING.match(r) for r in rules)}
    return {"acknowledgements": found, "statements": {path: _statements(app, assembly, path) for path in roles}}


@pytest.fixture(scope="session")
def nagged(tmp_path_factory) -> dict:
    """One nag synth per test run, whichever worker asks first (conftest.shared_json)."""
    return shared_json(tmp_path_factory, "cdk-nag", lambda: _nag(tmp_path_factory.mktemp("nag")))


def test_aws_solutions_checks_pass_with_reviewed_acknowledgements(nagged):
    found = nagged["acknowledgements"]
    assert {p: set(r) for p, r in found.items()} == {p: set(r) for p, r in EXPECTED_ACKNOWLEDGEMENTS.items()}, (
        "acknowledgements changed: review each new one and add it to EXPECTED_ACKNOWLEDGEMENTS")
    for path, rules in found.items():
        for rule, reason in rules.items():
            assert reason.strip().lower().rstrip(".") not in GENERIC_REASONS and len(reason) >= 60, (path, rule, reason)
            for word in EXPECTED_ACKNOWLEDGEMENTS[path][rule]:
                assert word in reason, f"{path} {rule}: the reason should say {word!r}: {reason}"


def test_each_prefix_acknowledgement_states_exactly_the_actions_the_policy_allows(nagged):
    checked = 0
    for path, rules in nagged["acknowledgements"].items():
        statements = nagged["statements"][path] if any(PREFIX_FINDING.match(r) for r in rules) else []
        for rule, reason in rules.items():
            m = PREFIX_FINDING.match(rule)
            if not m:
                continue
            prefix = m.group(1)
            allowed = set()
            for st in statements:
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                if f"BUCKET/{prefix}*" in map(_render, resources):
                    allowed |= set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
            assert allowed, f"{path}: no statement grants BUCKET/{prefix}*"
            stated = set(re.findall(r"\bs3:\w+", reason))
            assert stated == allowed, (f"{path} {rule}: the reason says {sorted(stated)}, "
                                       f"the policy allows {sorted(allowed)}")
            assert f"under {prefix} " in reason
            checked += 1
    assert checked == 9


def test_the_ecr_login_acknowledgement_covers_only_ecr_login(nagged):
    """Resource * on the Fargate execution role: only for the one action that has no resource."""
    statements = nagged["statements"][EXECUTION_ROLE]
    star = [st for st in statements if st["Resource"] == "*"]
    assert star and all(st["Action"] == "ecr:GetAuthorizationToken" for st in star), star
