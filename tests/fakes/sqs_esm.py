"""Lambda's SQS event source mapping, as far as the ingest relies on it, over a real (moto) queue.

moto's Lambda runs no code, so this stands in for the poller: it receives from the queue,
invokes the worker handler with Lambda's SQS event shape (batch size 1 by default), never more
than ``max_concurrency`` invocations at once (the mapping's ``maximumConcurrency``), deletes the
messages of a successful invocation and those not named in its ``batchItemFailures``, and
makes the failed ones visible again at once (the visibility timeout passing). SQS itself (moto)
counts receives and moves a message past ``maxReceiveCount`` to the dead-letter queue.

Invocations run on up to ``max_concurrency`` threads kept for the mapping's life, as Lambda keeps
warm execution environments: the handler's per-thread boto3 clients (lambdas/ingest/runtime.py)
are made once per environment, not again at every drain (about 0.3 s of CPU each time).
"""

from __future__ import annotations

import threading
import uuid
import weakref
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
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
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="lambda-env")
        weakref.finalize(self, self._pool.shutdown, wait=False)

    def close(self) -> None:
        """Retire the warm environments (their threads end)."""
        self._pool.shutdown(wait=True)

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
        """Deliver until the queue is empty and nothing is in flight; returns the invocations made.

        An empty receive while invocations run waits for one of them to end: with the visibility
        timeout never passing here, only a finished invocation (a failed message made visible
        again) can make the queue non-empty."""
        before = self.invocations
        pending: set = set()
        for _ in range(max_receives):
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                AttributeNames=["All"], VisibilityTimeout=900,
                                                WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()
                continue
            for i in range(0, len(messages), self.batch_size):
                self._slots.acquire()
                pending.add(self._pool.submit(self._invoke, messages[i:i + self.batch_size]))
        for f in pending:
            f.result()
        return self.invocations - before
