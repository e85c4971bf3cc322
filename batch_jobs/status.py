"""``backtest status RUN_ID``: the jobs' states, children by status, shards present, report ready."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.errors import UserError
from engine.run_store import MANIFEST
from engine.storage_layout import report_prefix, s3_uri, shard_key, shards_prefix, submission_key

from .aws import get_bytes, list_objects, object_exists, session_or_default

JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


@dataclass(frozen=True)
class JobState:
    role: str  # "shards" or "reduce"
    job_id: str
    status: str  # UNKNOWN when AWS Batch no longer lists the job (kept ~7 days)
    reason: str | None = None
    children: dict[str, int] = field(default_factory=dict)  # array jobs only


@dataclass(frozen=True)
class RunStatus:
    run_id: str
    array_size: int
    submitted_at: str
    jobs: tuple[JobState, ...]
    shards_present: tuple[int, ...]
    report_ready: bool
    report_uri: str

    @property
    def shards_missing(self) -> tuple[int, ...]:
        have = set(self.shards_present)
        return tuple(i for i in range(self.array_size) if i not in have)


def read_submission(s3: Any, bucket: str, run_id: str) -> dict:
    body = get_bytes(s3, bucket, submission_key(run_id), what=f"run {run_id} (no submission record)")
    try:
        return json.loads(body)
    except ValueError:
        raise UserError(f"{s3_uri(bucket, submission_key(run_id))}: not valid JSON") from None


def job_states(batch: Any, sub: dict) -> tuple[JobState, ...]:
    ids = {sub["shard_job_id"]: "shards", sub["reduce_job_id"]: "reduce"}
    found = {j["jobId"]: j for j in batch.describe_jobs(jobs=list(ids))["jobs"]}
    out = []
    for job_id, role in ids.items():
        j = found.get(job_id)
        if j is None:
            out.append(JobState(role, job_id, "UNKNOWN", "no longer listed by AWS Batch"))
            continue
        summary = (j.get("arrayProperties") or {}).get("statusSummary") or {}
        children = {s: int(summary.get(s, 0)) for s in JOB_STATUSES if summary.get(s)}
        out.append(JobState(role, job_id, j.get("status", "UNKNOWN"), j.get("statusReason"), children))
    return tuple(out)


def run_status(run_id: str, bucket: str, *, session: Any = None) -> RunStatus:
    sess = session_or_default(session)
    s3, batch = sess.client("s3"), sess.client("batch")
    sub = read_submission(s3, bucket, run_id)
    size = int(sub["array_size"])
    listed = list_objects(s3, bucket, shards_prefix(run_id))
    present = tuple(i for i in range(size) if shard_key(run_id, i) in listed)
    ready = object_exists(s3, bucket, report_prefix(run_id) + MANIFEST)
    return RunStatus(run_id, size, sub.get("submitted_at", ""), job_states(batch, sub), present, ready,
                     s3_uri(bucket, report_prefix(run_id)))
