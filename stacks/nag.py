"""cdk-nag acknowledgements whose finding id is only known once cross-stack references resolve."""

from __future__ import annotations

import json

import jsii
from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct, IValidation


def acknowledge_wildcard_resources(scope: IConstruct, resources: list[str], reason: str) -> None:
    """Acknowledge ``AwsSolutions-IAM5[Resource::…]`` for exactly ``resources`` on ``scope``.

    A prefix grant such as ``<bucket ARN>/candles/*`` is a wildcard by nature. When the bucket
    lives in another stack, the finding id embeds the cross-stack reference, which CDK only
    renders after references are resolved; so the id is computed then (construct validation
    runs after reference resolution and before validation plugins such as cdk-nag).
    """
    scope.node.add_validation(_AcknowledgeResolved(scope, resources, reason))


@jsii.implements(IValidation)
class _AcknowledgeResolved:
    def __init__(self, scope: IConstruct, resources: list[str], reason: str) -> None:
        self._scope = scope
        self._resources = resources
        self._reason = reason

    def validate(self) -> list[str]:
        stack = Stack.of(self._scope)
        for resource in self._resources:
            finding = _flatten(stack.resolve(resource))
            Validations.of(self._scope).acknowledge(
                Acknowledgment(id=f"AwsSolutions-IAM5[Resource::{finding}]", reason=self._reason))
        return []


def _flatten(node) -> str:
    """cdk-nag's rendering of a CloudFormation value in finding ids (utils/flatten-cfn-reference)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(_flatten(i) for i in items)
        if "Fn::Sub" in node:
            return _flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return _flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))
