"""The contract between ``backtest submit`` and the Batch jobs: names, parsing, validation.

Standard library only (the CLI imports it on every start).

A Batch job gets its run from its environment; a flag of the same meaning overrides
it (``backtest batch shard --run-id … --array-size …``):

=============================  ==========================================================
Variable                       Meaning
=============================  ==========================================================
``RUN_ID``                     the run (``runs/<RUN_ID>/`` in the bucket)
``BUCKET_NAME``                the bucket (also set by the job definition of the stack)
``CONFIG_URI``                 the run's config; default ``s3://BUCKET/runs/RUN_ID/config.yaml``
``ARRAY_SIZE``                 number of shards N (1..10,000)
``CODE_URI``                   the user strategy modules uploaded with the run (only when it names any)
``CODE_SHA256``                their archive's SHA-256, checked before anything is imported
``AWS_BATCH_JOB_ARRAY_INDEX``  this shard, 0..N-1; set by AWS Batch in array children only,
                               so it may be absent when N = 1 (a plain job)
=============================  ==========================================================

``submit``, ``status`` and ``results`` run on a workstation and read the stack outputs
from ``BACKTEST_BUCKET``, ``BACKTEST_JOB_QUEUE`` and ``BACKTEST_JOB_DEFINITION`` (or
``--bucket``, ``--job-queue``, ``--job-definition``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from engine.errors import UserError
from engine.run_id import check_run_id
from engine.storage_layout import parse_s3_uri, run_config_key, run_prefix, s3_uri

# Inside the job (set by the submitter as container overrides, or by AWS Batch).
ENV_RUN_ID = "RUN_ID"
ENV_BUCKET = "BUCKET_NAME"
ENV_CONFIG_URI = "CONFIG_URI"
ENV_ARRAY_SIZE = "ARRAY_SIZE"
ENV_ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
ENV_CODE_URI = "CODE_URI"
ENV_CODE_SHA256 = "CODE_SHA256"

# On the workstation (the CDK stack outputs).
ENV_SUBMIT_BUCKET = "BACKTEST_BUCKET"
ENV_JOB_QUEUE = "BACKTEST_JOB_QUEUE"
ENV_JOB_DEFINITION = "BACKTEST_JOB_DEFINITION"

# Must match stacks/batch_stack.py (SHARD_COMMAND / REDUCE_COMMAND).
SHARD_COMMAND = ("batch", "shard")
REDUCE_COMMAND = ("batch", "reduce")

#: AWS Batch array jobs hold 2..10,000 children; a run of one shard is a plain job.
MAX_ARRAY_SIZE = 10_000

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RunTarget:
    """One submitted run: where its config, shards and report live."""

    run_id: str
    bucket: str
    config_uri: str
    array_size: int
    code_uri: str | None = None  # the user strategy modules (batch_jobs.strategy_code), when the run has any
    code_sha256: str | None = None

    @property
    def run_uri(self) -> str:
        return s3_uri(self.bucket, run_prefix(self.run_id))


@dataclass(frozen=True)
class ShardTask:
    run: RunTarget
    index: int




def shard_bounds(index: int, array_size: int, total: int) -> tuple[int, int]:
    """Global combinations ``[lo, hi)`` of shard ``index``: contiguous, disjoint, sizes differ by <= 1."""
    return index * total // array_size, (index + 1) * total // array_size


# --------------------------------------------------------------------------- validation

def check_bucket(bucket: str) -> str:
    if not _BUCKET.match(bucket):
        raise UserError(f"bucket {bucket!r} is not a valid S3 bucket name")
    return bucket


def check_array_size(size: int, combinations: int | None = None) -> int:
    if not 1 <= size <= MAX_ARRAY_SIZE:
        raise UserError(f"array size {size}: expected 1..{MAX_ARRAY_SIZE:,} (AWS Batch array jobs hold at most "
                        f"{MAX_ARRAY_SIZE:,} children; 1 runs as a plain job)")
    if combinations is not None and size > combinations:
        raise UserError(f"array size {size} exceeds the {combinations} combination(s) of the config; "
                        f"use --array-size {combinations} or fewer")
    return size


def _int(name: str, text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise UserError(f"{name}: expected an integer, got {text!r}") from None


def _pick(flag: str | None, environ: Mapping[str, str], env: str) -> str | None:
    """The flag if given, else the (non-empty) environment variable."""
    if flag is not None and str(flag).strip():
        return str(flag).strip()
    value = environ.get(env, "").strip()
    return value or None


def _need(value: str | None, what: str, flag: str, env: str) -> str:
    if value is None:
        raise UserError(f"no {what}: give {flag} or set {env}")
    return value


# --------------------------------------------------------------------------- parsing (once, at the entry point)

def run_target(environ: Mapping[str, str], *, run_id: str | None = None, bucket: str | None = None,
               config_uri: str | None = None, array_size: int | None = None) -> RunTarget:
    """The run of a Batch job: flags first, then the environment."""
    rid = check_run_id(_need(_pick(run_id, environ, ENV_RUN_ID), "run id", "--run-id", ENV_RUN_ID))
    bkt = check_bucket(_need(_pick(bucket, environ, ENV_BUCKET), "bucket", "--bucket", ENV_BUCKET))
    size_text = _need(_pick(None if array_size is None else str(array_size), environ, ENV_ARRAY_SIZE),
                      "array size", "--array-size", ENV_ARRAY_SIZE)
    size = check_array_size(_int(ENV_ARRAY_SIZE if array_size is None else "--array-size", size_text))
    uri = _pick(config_uri, environ, ENV_CONFIG_URI) or s3_uri(bkt, run_config_key(rid))
    try:
        parse_s3_uri(uri)
    except ValueError as exc:
        raise UserError(f"config URI: {exc}") from None
    code_uri, code_sha = _pick(None, environ, ENV_CODE_URI), _pick(None, environ, ENV_CODE_SHA256)
    if (code_uri is None) != (code_sha is None):
        raise UserError(f"{ENV_CODE_URI} and {ENV_CODE_SHA256} go together; the run's strategy code cannot be "
                        "checked with one of them")
    if code_uri is not None:
        try:
            parse_s3_uri(code_uri)
        except ValueError as exc:
            raise UserError(f"{ENV_CODE_URI}: {exc}") from None
        if not _SHA256.fullmatch(code_sha):
            raise UserError(f"{ENV_CODE_SHA256}: expected 64 hexadecimal digits, got {code_sha[:70]!r}")
    return RunTarget(rid, bkt, uri, size, code_uri, code_sha)


def shard_task(environ: Mapping[str, str], *, index: int | None = None, **run: object) -> ShardTask:
    """Which shard this job is: ``--index``, else ``AWS_BATCH_JOB_ARRAY_INDEX``, else 0 when N = 1."""
    target = run_target(environ, **run)  # type: ignore[arg-type]
    text = _pick(None if index is None else str(index), environ, ENV_ARRAY_INDEX)
    if text is None:
        if target.array_size != 1:
            raise UserError(f"no shard index: {ENV_ARRAY_INDEX} is unset (AWS Batch sets it in array children) "
                            f"and the array size is {target.array_size}; give --index")
        i = 0
    else:
        i = _int(ENV_ARRAY_INDEX if index is None else "--index", text)
    if not 0 <= i < target.array_size:
        raise UserError(f"shard index {i} is out of range for array size {target.array_size} "
                        f"(expected 0..{target.array_size - 1})")
    return ShardTask(target, i)


@dataclass(frozen=True)
class Deployment:
    """The stack outputs ``submit``/``status``/``results`` need (queue/definition only for submit)."""

    bucket: str
    job_queue: str | None = None
    job_definition: str | None = None


def deployment(environ: Mapping[str, str], *, bucket: str | None = None, job_queue: str | None = None,
               job_definition: str | None = None, for_submit: bool = False) -> Deployment:
    bkt = check_bucket(_need(_pick(bucket, environ, ENV_SUBMIT_BUCKET), "bucket", "--bucket", ENV_SUBMIT_BUCKET))
    queue = _pick(job_queue, environ, ENV_JOB_QUEUE)
    jobdef = _pick(job_definition, environ, ENV_JOB_DEFINITION)
    if for_submit:
        queue = _need(queue, "job queue", "--job-queue", ENV_JOB_QUEUE)
        jobdef = _need(jobdef, "job definition", "--job-definition", ENV_JOB_DEFINITION)
    return Deployment(bkt, queue, jobdef)


def job_environment(run: RunTarget) -> dict[str, str]:
    """The container-override environment ``submit`` gives every job of a run."""
    env = {ENV_RUN_ID: run.run_id, ENV_BUCKET: run.bucket, ENV_CONFIG_URI: run.config_uri,
           ENV_ARRAY_SIZE: str(run.array_size)}
    if run.code_uri is not None:
        env.update({ENV_CODE_URI: run.code_uri, ENV_CODE_SHA256: run.code_sha256})
    return env
