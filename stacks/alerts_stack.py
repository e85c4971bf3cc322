"""Where alarms go: one encrypted SNS topic, with an e-mail subscription from context ``alarmEmail``.

CloudWatch alarms (ingest) and an EventBridge rule (failed Batch jobs) publish to it, and so
does the ingest dispatcher (its digest of lagging series). An encrypted topic needs a
customer-managed key: AWS services publishing to it must be allowed to use the key, which the
AWS-managed ``alias/aws/sns`` key cannot allow; they may, from this account only
(``aws:SourceAccount``).

Without ``alarmEmail`` the alarms would reach no one, so every stack then carries a
CloudFormation rule that refuses the deploy (synth still works, with a warning);
``-c alarmEmail=none`` deploys without a subscription on purpose.
"""

from __future__ import annotations

from aws_cdk import Annotations, Aws, CfnOutput, CfnRule, CfnRuleAssertion, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from .config import AppSettings

#: The AWS services that publish to the topic.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


class AlertsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: AppSettings = AppSettings(),
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.key = key = kms.Key(
            self, "TopicKey",
            description="Encrypts the backtest alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(iam.PolicyStatement(
            sid="AlarmPublishersUseTheKey",
            principals=[iam.ServicePrincipal(p) for p in PUBLISHERS],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions={"StringEquals": {"aws:SourceAccount": self.account}},
        ))

        self.topic = sns.Topic(self, "Alarms", display_name="Backtest alarms", master_key=key, enforce_ssl=True)
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AlarmPublishersInThisAccount",
            principals=[iam.ServicePrincipal(p) for p in PUBLISHERS],
            actions=["sns:Publish"],
            resources=[self.topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": self.account}},
        ))
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        elif settings.no_alarm_email:
            Annotations.of(self.topic).add_info("alarmEmail=none: alarms reach the topic but no person, on purpose.")
        else:
            Annotations.of(self.topic).add_warning_v2(
                "backtest:no-alarm-email",
                "No alarmEmail in context: `cdk deploy` will refuse (alarms would reach no one). Deploy with "
                "-c alarmEmail=you@example.com, or -c alarmEmail=none to deploy without one on purpose.")

        CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn)


def notify(alarm: cloudwatch.Alarm, topic: sns.ITopic) -> cloudwatch.Alarm:
    """Every alarm tells the topic when it fires and when it is over."""
    action = cw_actions.SnsAction(topic)
    alarm.add_alarm_action(action)
    alarm.add_ok_action(action)
    return alarm


#: The assertion text CloudFormation shows when a deploy without alarmEmail is refused.
NO_ALARM_EMAIL = ("No alarmEmail: the alarms would reach no one. Deploy with -c alarmEmail=you@example.com, "
                  "or -c alarmEmail=none to deploy without one on purpose.")


def refuse_deploy_without_alarm_email(stack: Stack) -> None:
    """A CloudFormation rule that fails every create and update of ``stack`` (no region is named so):
    synth works, `cdk deploy` stops before anything is created."""
    CfnRule(stack, "AlarmEmailRequired", assertions=[CfnRuleAssertion(
        assert_=Fn.condition_equals(Aws.REGION, "alarmEmail-not-given"), assert_description=NO_ALARM_EMAIL)])
