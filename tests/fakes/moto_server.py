"""A real moto server (HTTP, in a thread) for the AWS Batch tests: S3 and Batch without Docker.

One server per test process (xdist worker); every test makes its own bucket and Batch
resources with unique names. Clients in this process and in subprocesses reach it
through ``AWS_ENDPOINT_URL``, which boto3 honours and awswrangler inherits (it passes
``endpoint_url=None`` to boto3 unless ``wr.config.s3_endpoint_url`` is set).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: Variables that could point boto3 at a real account or another endpoint.
_SCRUB = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE",
          "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL_S3",
          "AWS_ENDPOINT_URL_BATCH", "WR_S3_ENDPOINT_URL", "AWS_BATCH_JOB_ARRAY_INDEX", "BACKTEST_BUCKET",
          "BACKTEST_JOB_QUEUE", "BACKTEST_JOB_DEFINITION", "RUN_ID", "BUCKET_NAME", "CONFIG_URI", "ARRAY_SIZE",
          "CODE_URI", "CODE_SHA256")


@dataclass(frozen=True)
class BatchResources:
    job_queue: str  # ARN
    job_definition: str  # ARN


class MotoAws:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def start(self) -> "MotoAws":
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this server (and nothing else)."""
        return {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        return {**base, **self.env(), **extra}

    def session(self) -> Any:
        """One session for the tests' own clients (a new session reloads every service model)."""
        import boto3

        if self._session is None:
            self._session = boto3.Session(aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                          region_name=REGION)
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session().client(service, endpoint_url=self.endpoint)
        return self._clients[service]

    def new_bucket(self, stem: str = "backtest") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:12]}"
        self.client("s3").create_bucket(Bucket=name)
        return name

    def _configure(self, doc: dict) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/config", data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def batch_resources(self, bucket: str) -> BatchResources:
        """Role, compute environment, queue and job definition shaped like stacks/batch_stack.py.

        Batch runs without Docker (moto's batch_simple): jobs are accepted and marked SUCCEEDED, never run.
        """
        from engine import storage_layout

        self._configure({"batch": {"use_docker": False}})
        tag = uuid.uuid4().hex[:10]
        iam, batch = self.client("iam"), self.client("batch")
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"Service": "batch.amazonaws.com"}}]}
        role = iam.create_role(RoleName=f"batch-service-{tag}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        env_arn = batch.create_compute_environment(computeEnvironmentName=f"compute-{tag}", type="UNMANAGED",
                                                   state="ENABLED", serviceRole=role["Arn"])["computeEnvironmentArn"]
        queue = batch.create_job_queue(jobQueueName=f"queue-{tag}", state="ENABLED", priority=1,
                                       computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env_arn}])
        jobdef = batch.register_job_definition(
            jobDefinitionName=f"backtest-{tag}",
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties={
                "image": "backtest:latest",
                "command": ["batch", "shard"],
                "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}],
                "environment": [
                    {"name": "BUCKET_NAME", "value": bucket},
                    {"name": "CANDLES_PREFIX", "value": storage_layout.CANDLES_PREFIX},
                    {"name": "RUNS_PREFIX", "value": storage_layout.RUNS_PREFIX},
                ],
            },
        )
        return BatchResources(queue["jobQueueArn"], jobdef["jobDefinitionArn"])


class MotoProcess(MotoAws):
    """A moto server in a process of its own: a test whose own process works hard (a reader looping
    against a writer process) does not then share the interpreter lock with the server."""

    # The endpoint goes to stdout, then stdout and stderr go to /dev/null: a pipe nobody reads would
    # fill with the server's request log and stall it.
    _SERVE = ("import logging, os, sys\nfrom moto.server import ThreadedMotoServer\n"
              "logging.getLogger('werkzeug').setLevel(logging.WARNING)\n"
              "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\ns.start()\n"
              "print('http://%s:%d' % s.get_host_and_port(), flush=True)\n"
              "null = os.open(os.devnull, os.O_WRONLY)\nos.dup2(null, 1)\nos.dup2(null, 2)\n"
              "sys.stdin.read()\ns.stop()\n")

    def __init__(self) -> None:  # noqa: D107 - no in-process server
        self.endpoint = ""
        self._session = None
        self._clients = {}
        self._proc: Any = None

    def start(self) -> "MotoProcess":
        import subprocess
        import sys

        self._proc = subprocess.Popen([sys.executable, "-c", self._SERVE], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=self.subprocess_env())
        self.endpoint = self._proc.stdout.readline().strip()
        assert self.endpoint.startswith("http://"), "the moto server process did not start"
        return self

    def stop(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


@pytest.fixture(scope="session")
def moto_process():
    """One moto server in a process of its own for this test process (tests make their own buckets)."""
    server = MotoProcess().start()
    yield server
    server.stop()


@pytest.fixture
def aws_process(moto_process, monkeypatch):
    """Like ``aws``, with the moto server in its own process (shared by the tests of this test process)."""
    import boto3

    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_process.env().items():
        monkeypatch.setenv(name, value)
    boto3.DEFAULT_SESSION = None
    yield moto_process
    boto3.DEFAULT_SESSION = None


@pytest.fixture(scope="session")
def moto_aws():
    """One moto server for this test process."""
    aws = MotoAws().start()
    yield aws
    aws.stop()


@pytest.fixture
def aws(moto_aws, monkeypatch):
    """The moto server, with this process's environment pointing boto3/awswrangler at it for one test."""
    import boto3

    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_aws.env().items():
        monkeypatch.setenv(name, value)
    boto3.DEFAULT_SESSION = None  # a default session made earlier may hold other credentials
    yield moto_aws
    boto3.DEFAULT_SESSION = None
