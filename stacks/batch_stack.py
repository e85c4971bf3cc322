"""Backtest sweeps on AWS Batch (Fargate, Spot by default) in a VPC without NAT gateways.

Job contract (the ``backtest`` CLI is the image ENTRYPOINT):

* command ``["batch", "shard"]``; one array child per shard, its index in
  ``AWS_BATCH_JOB_ARRAY_INDEX``. The reduce step is the same job definition
  submitted with the command override ``["batch", "reduce"]``.
* environment set here: ``BUCKET_NAME``, ``CANDLES_PREFIX``, ``RUNS_PREFIX``;
  the submitter adds the run (``RUN_ID``, ``ARRAY_SIZE``, optional ``CONFIG_URI``)
  as container overrides (batch_jobs/contract.py).
* the job role reads ``candles/`` and reads/writes ``runs/``, deletes nothing, touches nothing else.

Resilience: a job is retried (up to ``jobRetryAttempts``) when Fargate Spot reclaims it or it
fails to start (image pull, resource initialisation, "Task failed to start"), never for its
own errors; the queue cancels a job stuck in RUNNABLE past ``runnableTimeoutMinutes``; an
optional on-demand compute environment takes jobs Spot cannot place. Every failed job that is
not an array child is forwarded to the alert topic. Every state change of the queue's jobs is
logged (a log group the operations dashboard counts by state).
"""

from __future__ import annotations

from pathlib import Path

import jsii
from aws_cdk import Acknowledgment, Annotations, CfnOutput, Duration, IgnoreMode, RemovalPolicy, Size, Stack, Validations
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from engine import storage_layout

from .config import BatchSettings
from .grants import batch_job_grants, grant_prefixes

REPO_ROOT = Path(__file__).resolve().parent.parent

SHARD_COMMAND = ["batch", "shard"]
REDUCE_COMMAND = ["batch", "reduce"]

# Added to the repo's .dockerignore (same syntax), which lets in only the code the image needs:
# local clutter inside those folders never enters the staged build context.
IMAGE_EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/*.egg-info", "**/.pytest_cache"]

# AWS Batch matches these (a trailing * is the only wildcard) and allows at most five. A job
# that matches none of the RETRY entries exits on the last one: its own errors are not retried.
RETRY_ON = (
    ("status_reason", "Your Spot Task was interrupted*"),  # Fargate Spot reclaimed the capacity
    ("status_reason", "Task failed to start*"),  # Fargate could not start the task
    ("reason", "CannotPullContainerError*"),  # ECR or network hiccup while pulling the image
    ("reason", "ResourceInitializationError*"),  # ENI, secrets or log setup failed at start-up
)
# A job waiting in RUNNABLE for one of these reasons is cancelled after runnableTimeoutMinutes.
# A job waiting because the compute environments are busy (maxVcpus reached) is not: that is a queue.
RUNNABLE_TIMEOUT_REASONS = (
    batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
    batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
    batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
)


class BatchStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        alarm_topic: sns.ITopic,
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
        order = [batch.OrderedComputeEnvironment(compute_environment=self.compute_environment, order=1)]
        self.fallback_environment = None
        if settings.on_demand_fallback:
            # Batch places a job here when the Spot environment cannot take it.
            self.fallback_environment = batch.FargateComputeEnvironment(
                self, "OnDemandFallback",
                vpc=self.vpc,
                vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
                security_groups=[security_group],
                spot=False,
                maxv_cpus=settings.max_vcpus,
            )
            order.append(batch.OrderedComputeEnvironment(compute_environment=self.fallback_environment, order=2))
        self.job_queue = batch.JobQueue(
            self, "Queue",
            compute_environments=order,
            job_state_time_limit_actions=[batch.JobStateTimeLimitAction(
                action=batch.JobStateTimeLimitActionsAction.CANCEL,
                max_time=Duration.minutes(settings.runnable_timeout_minutes),
                reason=reason,
                state=batch.JobStateTimeLimitActionsState.RUNNABLE,
            ) for reason in RUNNABLE_TIMEOUT_REASONS],
        )

        self.job_role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
        grant_prefixes(self.job_role, bucket, batch_job_grants())

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
                *(batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(**{f"on_{field}": pattern}))
                  for field, pattern in RETRY_ON),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
            ],
        )

        # Failed jobs reach the alert topic; array children are left out (their parent fails too).
        self.failed_jobs_rule = events.Rule(
            self, "FailedJobs",
            description="A backtest Batch job failed",
            event_pattern=events.EventPattern(
                source=["aws.batch"],
                detail_type=["Batch Job State Change"],
                detail={
                    "status": ["FAILED"],
                    "jobQueue": [self.job_queue.job_queue_arn],
                    "arrayProperties": {"index": [{"exists": False}]},
                },
            ),
            # By ARN: the alert topic's policy admits EventBridge from this account already; given the
            # topic object, the target would add a second, unconditioned publish grant for EventBridge.
            targets=[targets.SnsTopic(
                sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic.topic_arn),
                message=events.RuleTargetInput.from_text(
                    f"Backtest Batch job {events.EventField.from_path('$.detail.jobName')} "
                    f"({events.EventField.from_path('$.detail.jobId')}) failed: "
                    f"{events.EventField.from_path('$.detail.statusReason')}"))],
        )
        # The topic is imported by ARN (its account and region are tokens until deploy); same account and region.
        Annotations.of(self.failed_jobs_rule).acknowledge_warning(
            "@aws-cdk/aws-events:ruleUnresolvedEnvironment", "The alarm topic is in this account and region.")

        # Every job state change of the queue, logged for the dashboard's "Batch job states" (AWS Batch
        # publishes no job-state metrics). The log group's resource policy admits this rule only.
        self.job_state_logs = logs.LogGroup(self, "JobStates", retention=logs.RetentionDays.ONE_MONTH,
                                            removal_policy=RemovalPolicy.DESTROY)
        self.job_states_rule = events.Rule(
            self, "JobStateChanges",
            description="Every state change of a backtest Batch job, to the JobStates log group",
            event_pattern=events.EventPattern(source=["aws.batch"], detail_type=["Batch Job State Change"],
                                              detail={"jobQueue": [self.job_queue.job_queue_arn]}),
            targets=[_LogGroupTarget(self.job_state_logs)],
        )
        logs.CfnResourcePolicy(
            self, "JobStatesPolicy",
            policy_name=f"{self.stack_name}-batch-job-states",
            policy_document=self.to_json_string({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "delivery.logs.amazonaws.com"]},
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": self.job_state_logs.log_group_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": self.job_states_rule.rule_arn}},
            }]}),
        )

        CfnOutput(self, "JobQueueArn", value=self.job_queue.job_queue_arn)
        CfnOutput(self, "JobDefinitionArn", value=self.job_definition.job_definition_arn,
                  description="Shard command " + " ".join(SHARD_COMMAND)
                              + "; reduce with the command override " + " ".join(REDUCE_COMMAND))


@jsii.implements(events.IRuleTarget)
class _LogGroupTarget:
    """A CloudWatch Logs target without the Lambda-backed custom resource CDK's own target adds
    for the log group's resource policy (written above as an AWS::Logs::ResourcePolicy)."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._log_group = log_group

    def bind(self, rule: events.IRule, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._log_group.log_group_arn)
