"""The stacks at the scale of a market: 100 symbols x 3 intervals (spot) against 1 series.

AWS's limits, checked on the synthesized templates: a template under 1 MB and 500 resources;
a role's inline policies under 10,240 characters together and a managed policy under 6,144
(IAM counts characters without whitespace); a bucket policy under 20 KB and a key policy under
32 KB; at most 20 managed policies per role. Intrinsic functions (Ref, Fn::GetAtt, …) are
counted as a 100-character ARN, longer than any they resolve to here. And the point of the
design: IAM policies, alarms and custom metrics are the same with 300 series as with 1.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aws_cdk as cdk  # noqa: E402

import stacks  # noqa: E402
from conftest import shared_json  # noqa: E402

pytestmark = pytest.mark.xdist_group("cdk")

CDK_CONTEXT = json.loads((REPO / "cdk.json").read_text())["context"]
SYMBOLS = [f"S{i:03d}USDT" for i in range(100)]
INTERVALS = ["5m", "15m", "1h"]
ARN = "arn:aws:service:eu-west-1:123456789012:resource/" + "x" * 51  # 100 characters
INTRINSICS = ("Ref", "Fn::GetAtt", "Fn::Join", "Fn::GetStackOutput", "Fn::ImportValue", "Fn::Sub", "Fn::Select",
              "Fn::Split")


def sized(value):
    """``value`` with every intrinsic function replaced by a 100-character string."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in INTRINSICS:
            return ARN
        return {k: sized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sized(v) for v in value]
    return value


def chars(document) -> int:
    """IAM's measure: the policy's JSON without whitespace."""
    return len(re.sub(r"\s", "", json.dumps(sized(document), separators=(",", ":"))))


def synthesize(symbols: list[str], intervals: list[str], tmp: Path) -> dict:
    app = cdk.App(outdir=str(tmp), context={**CDK_CONTEXT, "symbols": ",".join(symbols),
                                           "intervals": ",".join(intervals), "alarmEmail": "ops@example.com"})
    stacks.build(app, environ={})
    assembly = app.synth()
    out = {}
    for stack in assembly.stacks:
        text = (tmp / stack.template_file).read_text()
        warnings = [str(m.entry.data) for m in stack.messages if m.level.value in ("warning", "error")]
        out[stack.stack_name] = {"bytes": len(text.encode()), "template": json.loads(text), "warnings": warnings}
    return out


@pytest.fixture(scope="session")
def scaled(tmp_path_factory) -> tuple[dict, dict]:
    """Both synths once per test run, whichever worker asks first (conftest.shared_json)."""
    return tuple(shared_json(tmp_path_factory, "cdk-scaled", lambda: [
        synthesize(["BTCUSDT"], ["15m"], tmp_path_factory.mktemp("one")),
        synthesize(SYMBOLS, INTERVALS, tmp_path_factory.mktemp("market"))]))


def resources(t: dict, kind: str) -> dict:
    return {i: r for i, r in t["template"]["Resources"].items() if r["Type"] == kind}


def test_every_template_is_under_1_mb_and_500_resources(scaled):
    one, market = scaled
    assert len(SYMBOLS) * len(INTERVALS) == 300
    for name, t in market.items():
        assert t["bytes"] < 1_000_000, (name, t["bytes"])
        assert len(t["template"]["Resources"]) < 500, (name, len(t["template"]["Resources"]))
        assert len(t["template"]["Resources"]) == len(one[name]["template"]["Resources"]), name
        assert not t["warnings"], (name, t["warnings"])  # e.g. CDK's "Policy too large"
    # Only the schedules' input (the series list) grows.
    grown = {n: market[n]["bytes"] - one[n]["bytes"] for n in market if market[n]["bytes"] != one[n]["bytes"]}
    assert set(grown) == {"BacktestIngest"} and grown["BacktestIngest"] < 2 * 8192


def test_every_policy_is_under_its_limit_and_the_same_as_for_one_series(scaled):
    one, market = scaled
    for name, t in market.items():
        inline_by_role: dict[str, int] = {}
        for i, policy in resources(t, "AWS::IAM::Policy").items():
            for role in policy["Properties"].get("Roles", []):
                inline_by_role[json.dumps(role)] = inline_by_role.get(json.dumps(role), 0) + chars(
                    policy["Properties"]["PolicyDocument"])
            assert policy == one[name]["template"]["Resources"][i], f"{name}/{i} grows with the series"
        assert all(n < 10_240 for n in inline_by_role.values()), (name, inline_by_role)
        for i, policy in resources(t, "AWS::IAM::ManagedPolicy").items():
            assert chars(policy["Properties"]["PolicyDocument"]) < 6_144, (name, i)
        for i, policy in resources(t, "AWS::S3::BucketPolicy").items():
            assert chars(policy["Properties"]["PolicyDocument"]) < 20_480, (name, i)
        for i, key in resources(t, "AWS::KMS::Key").items():
            assert chars(key["Properties"]["KeyPolicy"]) < 32_768, (name, i)


def test_no_role_has_more_than_20_managed_policies(scaled):
    _, market = scaled
    for name, t in market.items():
        attached: dict[str, int] = {}
        for i, role in resources(t, "AWS::IAM::Role").items():
            attached[i] = len(role["Properties"].get("ManagedPolicyArns", []))
        for policy in resources(t, "AWS::IAM::ManagedPolicy").values():
            for role in policy["Properties"].get("Roles", []):
                attached[role["Ref"]] = attached.get(role["Ref"], 0) + 1
        assert all(n <= 20 for n in attached.values()), (name, attached)


def test_alarms_and_custom_metrics_do_not_grow_with_the_series(scaled):
    one, market = scaled

    def alarms(built: dict) -> list[dict]:
        return [r["Properties"] for t in built.values() for r in resources(t, "AWS::CloudWatch::Alarm").values()]

    assert len(alarms(market)) == len(alarms(one)) == 7

    def custom_metrics(built: dict) -> set[tuple]:
        found = set()
        for a in alarms(built):
            for m in [a] + [x["MetricStat"]["Metric"] for x in a.get("Metrics", []) if "MetricStat" in x]:
                if m.get("Namespace") == "Backtest/Ingest":
                    found.add((m["MetricName"], json.dumps(m.get("Dimensions"))))
        return found

    assert custom_metrics(market) == custom_metrics(one)
    assert all(dims == "null" for _, dims in custom_metrics(market))  # no per-series dimension
