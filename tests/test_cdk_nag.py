"""cdk-nag AwsSolutions checks on the whole app: no unacknowledged finding, and every
acknowledgement is one we reviewed, with a reason specific to it."""

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

pytestmark = pytest.mark.xdist_group("cdk")

# construct path -> acknowledged rule -> words its reason must contain. A bucket-prefix
# wildcard finding embeds the cross-stack bucket reference; it is shown here as BUCKET.
EXPECTED_ACKNOWLEDGEMENTS = {
    "BacktestIngest/Function": {"AwsSolutions-L1": ["python3.12", "layer"]},
    "BacktestIngest/Role": {
        "AwsSolutions-IAM5[Resource::BUCKET/raw/*]": ["raw/", "candles/"],
        "AwsSolutions-IAM5[Resource::BUCKET/candles/*]": ["raw/", "candles/"],
    },
    "BacktestBatch/JobRole": {
        "AwsSolutions-IAM5[Resource::BUCKET/candles/*]": ["candles/", "runs/"],
        "AwsSolutions-IAM5[Resource::BUCKET/runs/*]": ["candles/", "runs/"],
    },
    "BacktestBatch/Container/ExecutionRole": {"AwsSolutions-IAM5[Resource::*]": ["ecr:GetAuthorizationToken"]},
}
GENERIC_REASONS = {"", "ok", "needed", "required", "by design", "false positive", "suppressed", "n/a", "todo"}
BUCKET_REF = re.compile(r"Resource::\{\"Fn::(?:GetStackOutput|ImportValue)\".*\}(/[a-z]+/\*)\]$")


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


def test_aws_solutions_checks_pass_with_reviewed_acknowledgements(tmp_path):
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    app = cdk.App(outdir=str(tmp_path), context=context)
    stacks.build(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))

    try:
        app.synth()
    except RuntimeError as exc:  # ValidationFailed lists every unacknowledged finding
        report = tmp_path / "validation-report.json"
        detail = report.read_text() if report.exists() else ""
        pytest.fail(f"cdk-nag findings:\n{exc}\n{detail}")

    found = acknowledgements(app)
    assert {p: set(r) for p, r in found.items()} == {p: set(r) for p, r in EXPECTED_ACKNOWLEDGEMENTS.items()}, (
        "acknowledgements changed: review each new one and add it to EXPECTED_ACKNOWLEDGEMENTS")
    for path, rules in found.items():
        for rule, reason in rules.items():
            assert reason.strip().lower().rstrip(".") not in GENERIC_REASONS and len(reason) >= 60, (path, rule, reason)
            for word in EXPECTED_ACKNOWLEDGEMENTS[path][rule]:
                assert word in reason, f"{path} {rule}: the reason should say why ({word!r}): {reason}"
