"""Long-lived data: the dataset bucket and its access-log bucket. Never deleted with the stack."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from engine import storage_layout


class StorageStack(Stack):
    """Dataset bucket with ``raw/``, ``candles/``, ``meta/``, ``locks/`` and ``runs/`` prefixes
    (see engine.storage_layout)."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
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
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

        CfnOutput(self, "BucketName", value=self.bucket.bucket_name,
                  description="Dataset bucket; prefixes: "
                              + " ".join((storage_layout.RAW_PREFIX, storage_layout.CANDLES_PREFIX,
                                          storage_layout.META_PREFIX, storage_layout.LOCKS_PREFIX,
                                          storage_layout.RUNS_PREFIX)))
