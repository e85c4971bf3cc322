"""The ingest's AWS resources on the moto server, shaped like stacks/ingest_stack.py, and the
functions' environment as the stack sets it.

A bucket, the watermark index table (key ``unit``), the work queue with its dead-letter queue
(redrive after ``max_receives`` receives), the alarm topic with an SQS queue subscribed to it
(to read the digests the dispatcher publishes).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class IngestAws:
    aws: Any
    bucket: str
    table: str
    queue_url: str
    dlq_url: str
    topic_arn: str
    inbox_url: str
    max_receives: int

    def env(self, base_url: str, **over: str) -> dict[str, str]:
        """The environment both functions get (stacks/ingest_stack.py)."""
        return {"BUCKET_NAME": self.bucket, "INDEX_TABLE": self.table, "HISTORY_START": "2023-12-20",
                "BINANCE_BASE_URL": base_url, "MAX_PAGES_PER_RUN": "200", "MAX_RECEIVES": str(self.max_receives),
                "QUEUE_URL": self.queue_url, "ALARM_TOPIC_ARN": self.topic_arn, "LAG_ALARM_SECONDS": "600",
                "OUTSTANDING_SECONDS": "3600", **over}

    def dead_letters(self) -> list[dict]:
        """Every message in the DLQ (left there: received with visibility 0)."""
        sqs = self.aws.client("sqs")
        out, seen = [], set()
        for _ in range(20):
            got = sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                      WaitTimeSeconds=0).get("Messages", [])
            new = [m for m in got if m["MessageId"] not in seen]
            if not new:
                break
            seen |= {m["MessageId"] for m in new}
            out += [json.loads(m["Body"]) for m in new]
        return out

    def digests(self) -> list[dict]:
        """The digests published since the last call (subject and message), oldest first."""
        sqs = self.aws.client("sqs")
        out = []
        while True:
            got = sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                return out
            for m in messages:
                body = json.loads(m["Body"])
                out.append({"subject": body.get("Subject"), "message": body.get("Message")})
                sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=m["ReceiptHandle"])

    def index(self) -> dict[str, dict]:
        from lambdas.ingest import index

        return index.scan(self.aws.client("dynamodb"), self.table)


def make_ingest_aws(aws: Any, *, max_receives: int = 3) -> IngestAws:
    tag = uuid.uuid4().hex[:10]
    bucket = aws.new_bucket("ingest")
    ddb, sqs, sns = aws.client("dynamodb"), aws.client("sqs"), aws.client("sns")
    table = f"index-{tag}"
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "unit", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "unit", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    dlq_url = sqs.create_queue(QueueName=f"dlq-{tag}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=f"work-{tag}", Attributes={
        "VisibilityTimeout": "720",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})})["QueueUrl"]
    topic_arn = sns.create_topic(Name=f"alarms-{tag}")["TopicArn"]
    inbox_url = sqs.create_queue(QueueName=f"inbox-{tag}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    return IngestAws(aws, bucket, table, queue_url, dlq_url, topic_arn, inbox_url, max_receives)


@pytest.fixture
def ingest_aws(aws, monkeypatch):
    """The ingest's resources on the moto server; awswrangler pointed at it; no real sleeps; the
    functions' cached settings and clients dropped before and after."""
    import awswrangler as wr
    import boto3

    from lambdas.ingest import runtime

    env = make_ingest_aws(aws)
    wr.config.s3_endpoint_url = aws.endpoint
    boto3.setup_default_session()
    monkeypatch.setattr(runtime, "SLEEP", lambda s: None)
    runtime.settings.cache_clear()
    runtime.reset_clients()
    yield env
    runtime.settings.cache_clear()
    runtime.reset_clients()
    wr.config.reset("s3_endpoint_url")
