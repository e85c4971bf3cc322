"""IAM helpers shared by the stacks."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3


def list_prefixes_statement(bucket: s3.IBucket, *prefixes: str) -> iam.PolicyStatement:
    """s3:ListBucket limited to keys under ``prefixes``.

    ``bucket.grant_read`` would add an unconditioned ``s3:List*`` on the bucket, which lets a
    role enumerate every key; readers of a Parquet dataset only need to list their own prefix.
    """
    return iam.PolicyStatement(
        actions=["s3:ListBucket"],
        resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [p for prefix in prefixes for p in (prefix, prefix + "*")]}},
    )
