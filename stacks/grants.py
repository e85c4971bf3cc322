"""IAM access to the dataset bucket, as key-prefix grants that state their own scope.

A grant is a key prefix, the S3 actions allowed on the keys under it, and why. A role's
policy statements and its cdk-nag acknowledgements are both built from the same grants, so
an acknowledgement says exactly what access remains: these actions, under this prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from engine import storage_layout

from .nag import acknowledge_wildcard_resources


@dataclass(frozen=True)
class PrefixGrant:
    prefix: str  # a key prefix ending in "/", e.g. "candles/symbol=BTCUSDT/interval=15m/"
    actions: tuple[str, ...]  # object-level S3 actions on the keys under it
    purpose: str
    listable: bool = True  # s3:ListBucket limited to this prefix (unless the role lists the whole bucket)

    @property
    def keys(self) -> str:
        return self.prefix + "*"

    def scope(self) -> str:
        """The exact access this grant leaves, in words (the cdk-nag acknowledgement)."""
        return (f"Only {', '.join(self.actions)} on keys under {self.prefix} ({self.purpose}). The trailing * "
                f"stands for keys created under that prefix at run time; no other key of the bucket is covered.")


def grant_prefixes(role: iam.IRole, bucket: s3.IBucket, grants: Sequence[PrefixGrant], *,
                   list_whole_bucket: bool = False) -> None:
    """The grants' statements on ``role``, one cdk-nag acknowledgement per prefix wildcard, and
    s3:ListBucket limited to the listable prefixes (or, with ``list_whole_bucket``, unconditioned:
    S3 answers 404 for a missing key only to a caller that may list the bucket, and a GET carries
    no ``s3:prefix``, so a prefix-limited list permission does not count; without it a missing key
    is a 403, indistinguishable from a real denial. Listing shows key names, never contents)."""
    for g in grants:
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(g.actions),
                                                         resources=[bucket.arn_for_objects(g.keys)]))
        acknowledge_wildcard_resources(role, [bucket.arn_for_objects(g.keys)], g.scope())
    if list_whole_bucket:
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))
        return
    listable = [g.prefix for g in grants if g.listable]
    if listable:
        role.add_to_principal_policy(list_prefixes_statement(bucket, *listable))


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


def locks_grant() -> PrefixGrant:
    """``locks/``: the only role that may touch it is the ingest's (engine/storage_layout.py)."""
    return PrefixGrant(storage_layout.LOCKS_PREFIX, ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
                       "series leases taken with conditional puts and released with a delete, and the "
                       "Binance 'blocked until' marker")


def ingest_series_grants(symbol: str, interval: str) -> list[PrefixGrant]:
    """What the ingest may do to one configured series: nothing outside its three prefixes."""
    series = storage_layout.series_prefix(symbol, interval)
    return [
        PrefixGrant(storage_layout.RAW_PREFIX + series, ("s3:PutObject", "s3:AbortMultipartUpload"),
                    f"immutable fetch batches of {symbol} {interval}, written once", listable=False),
        PrefixGrant(storage_layout.candles_prefix(symbol, interval),
                    ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"),
                    f"the {symbol} {interval} watermark read, and its month partitions rewritten, where "
                    "awswrangler deletes the file it replaces"),
        PrefixGrant(storage_layout.series_meta_prefix(symbol, interval), ("s3:GetObject", "s3:PutObject"),
                    f"the {symbol} {interval} record of ranges the exchange confirmed empty"),
    ]


def batch_job_grants() -> list[PrefixGrant]:
    """Batch jobs read candles and read/write their run; the code never deletes."""
    return [
        PrefixGrant(storage_layout.CANDLES_PREFIX, ("s3:GetObject",), "candle partitions, read only"),
        PrefixGrant(storage_layout.RUNS_PREFIX, ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"),
                    "a sweep's config, shards and report under runs/<run_id>/, read and written, never deleted"),
    ]
