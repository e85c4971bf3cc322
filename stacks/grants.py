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
    prefix: str  # a key prefix ending in "/", e.g. "candles/"; with exact, one key
    actions: tuple[str, ...]  # object-level S3 actions on the keys under it
    purpose: str
    listable: bool = True  # s3:ListBucket limited to this prefix (unless the role lists the whole bucket)
    exact: bool = False  # the grant is for the one key ``prefix``, no wildcard

    @property
    def keys(self) -> str:
        return self.prefix if self.exact else self.prefix + "*"

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
        if not g.exact:
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


def ingest_market_grants(market: str) -> list[PrefixGrant]:
    """What an ingest worker may do in one market: its four prefixes (um: six, with ``um/mark/`` and
    ``um/funding/``), nothing else of the bucket.

    Per market, not per series: the policy is the same size for 1 series or 500 (a series is a
    key prefix under these, chosen by the unit of work). Spot's prefixes are the bucket's top level
    (``raw/``, ``candles/``, ``meta/``, ``locks/``), USDⓈ-M's the same under ``um/``: neither
    grant covers the other market's keys."""
    p = storage_layout.market_prefixes(market)
    return [
        PrefixGrant(p["raw"], ("s3:PutObject", "s3:AbortMultipartUpload"),
                    f"immutable {market} fetch batches, written once, never read or deleted", listable=False),
        PrefixGrant(p["candles"], ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"),
                    f"{market} watermark reads, and month partitions rewritten, where the writer deletes the "
                    "file it replaces"),
        PrefixGrant(p["meta"], ("s3:GetObject", "s3:PutObject"),
                    f"{market} records of ranges the exchange confirmed empty"),
        PrefixGrant(p["locks"], ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
                    f"{market} series leases taken with conditional puts and released with a delete, and the "
                    "Binance 'blocked until' / 'geo-blocked' marker"),
    ] + [PrefixGrant(storage_layout.market_prefix(market) + storage_layout.KIND_DIRS[kind],
                     ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"),
                     f"{market} {what} read and rewritten, where the writer deletes the file it replaces")
         for kind, what in (("mark", "mark-price kline partitions"), ("funding", "funding tables"))
         if kind in storage_layout.KINDS[market]]


def dispatcher_grants(markets: Sequence[str]) -> list[PrefixGrant]:
    """The dispatcher reads each market's 418/451 marker, one key each, and nothing else."""
    return [PrefixGrant(storage_layout.blocked_key(m), ("s3:GetObject",),
                        f"the {m} Binance 'blocked until' / 'geo-blocked' marker", listable=False, exact=True)
            for m in markets]


def batch_job_grants() -> list[PrefixGrant]:
    """Batch jobs read candles and read/write their run; the code never deletes."""
    um = storage_layout.market_prefix("um")
    return [
        PrefixGrant(storage_layout.CANDLES_PREFIX, ("s3:GetObject",), "candle partitions, read only"),
        *(PrefixGrant(um + storage_layout.KIND_DIRS[kind], ("s3:GetObject",), f"perp {what}, read only")
          for kind, what in (("klines", "trade kline partitions"), ("mark", "mark-price kline partitions"),
                             ("funding", "funding tables"))),
        PrefixGrant(storage_layout.RUNS_PREFIX, ("s3:GetObject", "s3:PutObject", "s3:PutObjectTagging",
                                                 "s3:AbortMultipartUpload"),
                    "a sweep's config, shards and report under runs/<run_id>/, read and written, never deleted; "
                    "shards are written with a tag that lets the lifecycle rule expire them"),
    ]
