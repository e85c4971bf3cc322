"""Long-lived data: the dataset bucket and its access-log bucket. Never deleted with the stack.

Lifecycle (context ``rawRetentionDays``, ``shardRetentionDays``): ``raw/`` fetch batches (and
each market's, e.g. ``um/raw/``) expire after 30 days, Batch shard objects (``runs/…/shards/``,
found by their tag: a lifecycle filter cannot match a pattern) after 14, Athena results after
7. Candles, meta records, configs and reports are kept. The bucket is versioned: an expired
object leaves a noncurrent version, removed 30 days later by the noncurrent-version rule.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from engine import storage_layout

from .config import StorageSettings

#: Athena query results are scratch: kept a week.
ATHENA_RESULTS_DAYS = 7


class StorageStack(Stack):
    """Dataset bucket with ``raw/``, ``candles/``, ``meta/``, ``locks/`` and ``runs/`` prefixes
    (see engine.storage_layout)."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: StorageSettings = StorageSettings(),
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.log_bucket = s3.Bucket(
            self, "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireAccessLogs", expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.bucket = s3.Bucket(
            self, "Data",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                # Each partition rewrite leaves a delete marker; once its noncurrent versions have
                # expired, the marker alone is an "expired object delete marker": remove it.
                s3.LifecycleRule(id="RemoveExpiredDeleteMarkers", expired_object_delete_marker=True),
                *(s3.LifecycleRule(id=f"ExpireRaw{market.capitalize()}",
                                   prefix=storage_layout.market_prefixes(market)["raw"],
                                   expiration=Duration.days(settings.raw_retention_days))
                  for market in storage_layout.MARKETS),
                s3.LifecycleRule(id="ExpireBatchShards", prefix=storage_layout.RUNS_PREFIX,
                                 tag_filters={storage_layout.SHARD_TAG_KEY: storage_layout.SHARD_TAG_VALUE},
                                 expiration=Duration.days(settings.shard_retention_days)),
                s3.LifecycleRule(id="ExpireAthenaResults", prefix=storage_layout.ATHENA_RESULTS_PREFIX,
                                 expiration=Duration.days(ATHENA_RESULTS_DAYS)),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

        CfnOutput(self, "BucketName", value=self.bucket.bucket_name,
                  description="Dataset bucket; prefixes: "
                              + " ".join((storage_layout.RAW_PREFIX, storage_layout.CANDLES_PREFIX,
                                          storage_layout.META_PREFIX, storage_layout.LOCKS_PREFIX,
                                          storage_layout.RUNS_PREFIX, storage_layout.ATHENA_RESULTS_PREFIX)))
