"""``backtest submit``: upload a sweep's config and submit its shard and reduce jobs to AWS Batch.

* ``runs/<run_id>/config.yaml``: the config file's exact bytes (its hash is the run's config hash);
* ``runs/<run_id>/strategies.zip``: when the config names strategies by path outside the image, their
  source (``batch_jobs.strategy_code``); its SHA-256 goes to the jobs and ``submission.json``;
* an array job of N children (``N >= 2``; AWS Batch arrays hold 2..10,000), or a plain job when
  ``N == 1``, running ``batch shard`` with the run contract as container-override environment;
* the reduce job (``batch reduce``), depending on the shard job: it starts when every child succeeded;
* ``runs/<run_id>/submission.json``: job ids, array size, time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.config import Config, decode_config, parse_config_text, read_config_bytes
from engine.data.source import load_data
from engine.data.spec import DataSpec
from engine.errors import UserError
from engine.jsonio import dumps
from engine.perp.inputs import check_perp_run
from engine.grid import build_grid
from engine.run_id import new_run_id as _new_run_id
from engine.universe.runner import load_universe
from engine.storage_layout import (is_s3_uri, parse_s3_uri, report_prefix, run_code_key, run_config_key, s3_uri,
                                   submission_key)

from .aws import object_exists, put_bytes, session_or_default
from .universe import universe_series
from .contract import (REDUCE_COMMAND, SHARD_COMMAND, Deployment, RunTarget, check_array_size, check_run_id,
                       job_environment)
from .strategy_code import bundle_strategies


@dataclass(frozen=True)
class Submission:
    run_id: str
    bucket: str
    array_size: int
    combinations: int
    shard_job_id: str
    reduce_job_id: str
    job_queue: str
    job_definition: str
    config_uri: str
    report_uri: str
    config_hash: str
    submitted_at: str
    notes: tuple[str, ...] = ()
    #: the user strategy modules uploaded with the run: uri, sha256, files, modules (None: built-ins only)
    strategy_code: dict | None = None

    def document(self) -> dict:
        doc = asdict(self)
        doc["notes"] = list(self.notes)
        doc["array_job"] = self.array_size > 1
        return doc


def read_config(path: Path) -> tuple[Config, bytes]:
    """The config file's bytes (uploaded unchanged) and its parsed, validated form."""
    body = read_config_bytes(path)  # a regular file of bounded size: a FIFO or a device is refused, not read
    return parse_config_text(decode_config(body, path), str(path)), body


def data_notes(cfg: Config, bucket: str) -> list[str]:
    """Reject data a Batch container cannot read; warn about data that may change during the run."""
    source = cfg.data.source
    if source == "synthetic":
        return []
    if not is_s3_uri(source):
        raise UserError(f"data.source {source!r} is not readable from AWS Batch; a Batch run reads candles from "
                        f"S3: set data.source to s3://{bucket}/candles/ (with data.symbol and data.interval)")
    notes = []
    if parse_s3_uri(source).bucket != bucket:
        notes.append(f"data.source is in bucket {parse_s3_uri(source).bucket!r}, not {bucket!r}; "
                     "the job role of the stack reads candles from its own bucket only")
    if cfg.data.end is None:
        notes.append("data.end is not set: shards that start at different times may read different candles "
                     "if the ingest appends meanwhile (reduce then refuses the run); pin data.end")
    return notes


def check_perp_data(cfg: Config) -> None:
    """A perp run's per-series refusals (funding coverage, brackets, liquidation basis), made here as a
    local run makes them: a run the local CLI refuses is not submitted. It reads each series once."""
    if cfg.perp is None or cfg.data.source == "synthetic":
        return
    spec = DataSpec.from_config(cfg)
    if cfg.data.is_universe:
        load_universe(cfg, spec)
    else:
        check_perp_run(cfg.perp, load_data(spec))


def new_run_id(cfg: Config, now: datetime) -> str:
    """The experiment name, UTC time and a random suffix (:func:`engine.run_id.new_run_id`)."""
    return _new_run_id(cfg.name, now)


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def submit_run(config_path: Path, deploy: Deployment, array_size: int, *, run_id: str | None = None,
               session: Any = None) -> Submission:
    cfg, body = read_config(config_path)
    total = len(build_grid(cfg))
    if cfg.data.is_universe:  # the work is every combination on every series (batch_jobs.universe)
        total *= len(universe_series(cfg))
    check_array_size(array_size, total)
    notes = data_notes(cfg, deploy.bucket)
    if deploy.job_queue is None or deploy.job_definition is None:
        raise UserError("submit needs a job queue and a job definition")
    check_perp_data(cfg)
    code = bundle_strategies([g.path for g in cfg.strategies])  # refused here, before anything is uploaded
    now = datetime.now(timezone.utc)
    rid = check_run_id(run_id) if run_id else new_run_id(cfg, now)
    code_uri = None if code is None else s3_uri(deploy.bucket, run_code_key(rid))
    run = RunTarget(rid, deploy.bucket, s3_uri(deploy.bucket, run_config_key(rid)), array_size, code_uri,
                    None if code is None else code.sha256)

    sess = session_or_default(session)
    s3, batch = sess.client("s3"), sess.client("batch")
    if object_exists(s3, run.bucket, run_config_key(rid)):
        raise UserError(f"run {rid} already exists at {run.run_uri}; choose another --run-id")
    if code is not None:
        put_bytes(s3, run.bucket, run_code_key(rid), code.archive, "application/zip")
    put_bytes(s3, run.bucket, run_config_key(rid), body, "application/yaml")

    env = _env(job_environment(run))
    shard_req: dict[str, Any] = {
        "jobName": f"backtest-{rid}-shards",
        "jobQueue": deploy.job_queue,
        "jobDefinition": deploy.job_definition,
        "containerOverrides": {"command": list(SHARD_COMMAND), "environment": env},
    }
    if array_size > 1:
        shard_req["arrayProperties"] = {"size": array_size}
    shard_id = batch.submit_job(**shard_req)["jobId"]
    try:
        reduce_id = batch.submit_job(
            jobName=f"backtest-{rid}-reduce",
            jobQueue=deploy.job_queue,
            jobDefinition=deploy.job_definition,
            dependsOn=[{"jobId": shard_id}],  # an array parent: reduce waits for every child
            containerOverrides={"command": list(REDUCE_COMMAND), "environment": env},
        )["jobId"]
    except Exception:
        # Do not leave shards running whose results nothing would reduce.
        try:
            batch.terminate_job(jobId=shard_id, reason="backtest submit: the reduce job could not be submitted")
        except Exception:  # the original error matters more
            pass
        raise

    sub = Submission(rid, run.bucket, array_size, total, shard_id, reduce_id, deploy.job_queue,
                     deploy.job_definition, run.config_uri, s3_uri(run.bucket, report_prefix(rid)), cfg.digest(),
                     now.isoformat(timespec="seconds"), tuple(notes),
                     None if code is None else {"uri": code_uri, "sha256": code.sha256, "files": list(code.files),
                                                "modules": list(code.modules)})
    put_bytes(s3, run.bucket, submission_key(rid), dumps(sub.document()).encode(), "application/json")
    return sub
