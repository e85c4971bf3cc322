"""Backtest sweeps on AWS Batch (Fargate, Spot by default) in a VPC without NAT gateways.

Job contract (the ``backtest`` CLI is the image ENTRYPOINT):

* command ``["batch", "shard"]``; one array child per shard, its index in
  ``AWS_BATCH_JOB_ARRAY_INDEX``. The reduce step is the same job definition
  submitted with the command override ``["batch", "reduce"]``.
* environment set here: ``BUCKET_NAME``, ``CANDLES_PREFIX``, ``RUNS_PREFIX``;
  the submitter adds the run (``RUN_ID``, ``ARRAY_SIZE``, optional ``CONFIG_URI``)
  as container overrides (batch_jobs/contract.py).
* the job role reads ``candles/`` and reads/writes ``runs/``, nothing else.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, CfnOutput, Duration, IgnoreMode, RemovalPolicy, Size, Stack, Validations
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from engine import storage_layout

from .config import BatchSettings
from .grants import list_prefixes_statement
from .nag import acknowledge_wildcard_resources

REPO_ROOT = Path(__file__).resolve().parent.parent

SHARD_COMMAND = ["batch", "shard"]
REDUCE_COMMAND = ["batch", "reduce"]

# Added to the repo's .dockerignore (same syntax): local clutter never enters the staged build context.
IMAGE_EXCLUDE = [
    ".git", ".venv", "node_modules", "cdk.out", "results", "data", ".pytest_cache",
    ".hypothesis", ".numba_cache", "**/__pycache__", "*.egg-info",
]

# Interruptions are retried; anything else (a bug, bad config) fails the job at once.
SPOT_RECLAIMED_EC2 = "Host EC2*"
SPOT_RECLAIMED_FARGATE = "Your Spot Task was interrupted*"


class BatchStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        settings: BatchSettings = BatchSettings(),
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        # Public subnets with public IPs and an S3 gateway endpoint: no NAT gateway to pay for.
        self.vpc = ec2.Vpc(
            self, "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC)],
            flow_logs={"Rejected": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(logs.LogGroup(
                    self, "FlowLogs",
                    retention=logs.RetentionDays.ONE_MONTH,
                    removal_policy=RemovalPolicy.DESTROY,
                )),
                traffic_type=ec2.FlowLogTrafficType.REJECT,
            )},
        )
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)

        security_group = ec2.SecurityGroup(
            self, "JobSecurityGroup",
            vpc=self.vpc,
            description="Batch jobs: outbound only (ECR, S3, CloudWatch Logs); no inbound rules.",
            allow_all_outbound=True,
        )

        self.compute_environment = batch.FargateComputeEnvironment(
            self, "Compute",
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[security_group],
            spot=settings.fargate_spot,
            maxv_cpus=settings.max_vcpus,
        )
        self.job_queue = batch.JobQueue(
            self, "Queue",
            compute_environments=[batch.OrderedComputeEnvironment(
                compute_environment=self.compute_environment, order=1)],
        )

        self.job_role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
        grants = s3.BucketGrants.from_bucket(bucket)
        grants.actions_on_object_keys(self.job_role, storage_layout.CANDLES_PREFIX + "*", "s3:GetObject")
        grants.actions_on_object_keys(
            self.job_role, storage_layout.RUNS_PREFIX + "*",
            "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
        self.job_role.add_to_principal_policy(
            list_prefixes_statement(bucket, storage_layout.CANDLES_PREFIX, storage_layout.RUNS_PREFIX))
        acknowledge_wildcard_resources(
            self.job_role,
            [bucket.arn_for_objects(storage_layout.CANDLES_PREFIX + "*"),
             bucket.arn_for_objects(storage_layout.RUNS_PREFIX + "*")],
            "Jobs read candle partitions under candles/ and read/write their own run under runs/; "
            "the trailing * covers keys created per run and per partition, nothing outside those prefixes.")

        image = ecr_assets.DockerImageAsset(
            self, "Image",
            directory=str(REPO_ROOT),
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=IMAGE_EXCLUDE,
            ignore_mode=IgnoreMode.DOCKER,
        )
        job_logs = logs.LogGroup(
            self, "JobLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )

        container = batch.EcsFargateContainerDefinition(
            self, "Container",
            image=ecs.ContainerImage.from_docker_image_asset(image),
            command=SHARD_COMMAND,
            cpu=settings.job_vcpu,
            memory=Size.mebibytes(settings.job_memory_mib),
            assign_public_ip=True,
            fargate_cpu_architecture=ecs.CpuArchitecture.X86_64,
            job_role=self.job_role,
            logging=ecs.LogDriver.aws_logs(stream_prefix="backtest", log_group=job_logs),
            environment={
                "BUCKET_NAME": bucket.bucket_name,
                "CANDLES_PREFIX": storage_layout.CANDLES_PREFIX,
                "RUNS_PREFIX": storage_layout.RUNS_PREFIX,
            },
        )
        Validations.of(container.execution_role).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken has no resource-level permissions, so the Fargate "
                   "execution role needs Resource * to log in to ECR before pulling the job image.",
        ))

        self.job_definition = batch.EcsJobDefinition(
            self, "JobDefinition",
            container=container,
            timeout=Duration.minutes(settings.job_timeout_minutes),
            retry_attempts=settings.job_retry_attempts,
            retry_strategies=[
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_status_reason=SPOT_RECLAIMED_EC2)),
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_status_reason=SPOT_RECLAIMED_FARGATE)),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
            ],
        )

        CfnOutput(self, "JobQueueArn", value=self.job_queue.job_queue_arn)
        CfnOutput(self, "JobDefinitionArn", value=self.job_definition.job_definition_arn,
                  description="Shard command " + " ".join(SHARD_COMMAND)
                              + "; reduce with the command override " + " ".join(REDUCE_COMMAND))
