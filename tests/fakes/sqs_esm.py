"""Lambda's SQS event source mapping, as far as the ingest relies on it, over a real (moto) queue.

moto's Lambda runs no code, so this stands in for the poller: it receives from the queue,
invokes the worker handler with Lambda's SQS event shape (batch size 1 by default), never more
than ``max_concurrency`` invocations at once (the mapping's ``maximumConcurrency``), deletes the
messages of a successful invocation and those not named in its ``batchItemFailures``, and
makes the failed ones visible again at once (the visibility timeout passing). SQS itself (moto)
counts receives and moves a message past ``maxReceiveCount`` to the dead-letter queue.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class FakeContext:
    """The Lambda context attributes the ingest reads; ``budget_ms`` of simulated time, spent by advance()."""

    function_name = "BacktestIngest-Worker"
    memory_limit_in_mb = 1024

    def __init__(self, budget_ms: int = 120_000):
        self.aws_request_id = str(uuid.uuid4())
        self._left = budget_ms
        self._lock = threading.Lock()

    def advance(self, ms: int) -> None:
        with self._lock:
            self._left -= ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._left)


class FakeEventSourceMapping:
    def __init__(self, sqs: Any, queue_url: str, handler: Callable[[dict, Any], dict], *, max_concurrency: int,
                 batch_size: int = 1, context: Callable[[dict], Any] | None = None):
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.max_concurrency, self.batch_size = max_concurrency, batch_size
        self.context = context or (lambda record: FakeContext())
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.invocations = 0
        self.running = 0
        self.most_at_once = 0
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max_concurrency)

    def _record(self, m: dict) -> dict:
        return {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()}, "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn,
                "awsRegion": "us-east-1"}

    def _invoke(self, messages: list[dict]) -> None:
        with self._lock:
            self.running += 1
            self.invocations += 1
            self.most_at_once = max(self.most_at_once, self.running)
        records = [self._record(m) for m in messages]
        try:
            try:
                answer = self.handler({"Records": records}, self.context(records[0]))
                failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
            except Exception as exc:  # the whole batch fails, as in Lambda
                self.errors.append(exc)
                failed = {r["messageId"] for r in records}
            for m in messages:
                if m["MessageId"] in failed:
                    self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"],
                                                       VisibilityTimeout=0)
                else:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()

    def drain(self, max_receives: int = 10_000) -> int:
        """Deliver until the queue is empty and nothing is in flight; returns the invocations made."""
        before = self.invocations
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = []
            for _ in range(max_receives):
                answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                  AttributeNames=["All"], VisibilityTimeout=900, WaitTimeSeconds=0)
                messages = answer.get("Messages", [])
                if not messages:
                    if all(f.done() for f in futures):
                        again = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                         AttributeNames=["All"], VisibilityTimeout=900,
                                                         WaitTimeSeconds=0).get("Messages", [])
                        if not again:
                            break
                        messages = again
                    else:
                        threading.Event().wait(0.01)
                        continue
                for i in range(0, len(messages), self.batch_size):
                    self._slots.acquire()
                    futures.append(pool.submit(self._invoke, messages[i:i + self.batch_size]))
            for f in futures:
                f.result()
        return self.invocations - before
