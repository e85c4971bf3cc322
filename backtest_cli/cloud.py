"""``backtest submit|status|results|batch shard|batch reduce``: sweeps on AWS Batch.

Each handler reads its flags and the environment once (through
:mod:`batch_jobs.contract`, which names every variable) and calls :mod:`batch_jobs`.
Flags override the environment.

Workstation (the CDK stack outputs)::

    BACKTEST_BUCKET / --bucket                   the data bucket
    BACKTEST_JOB_QUEUE / --job-queue             the BatchStack JobQueueArn output
    BACKTEST_JOB_DEFINITION / --job-definition   the BatchStack JobDefinitionArn output

Inside a Batch job (set by ``submit`` as container overrides; AWS sets the index)::

    RUN_ID, BUCKET_NAME, CONFIG_URI, ARRAY_SIZE, AWS_BATCH_JOB_ARRAY_INDEX
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import argtypes


def register(sub) -> None:
    from batch_jobs import contract as c

    p = sub.add_parser("submit", help="run a config's sweep on AWS Batch (array of shards + reduce)")
    p.add_argument("--config", type=Path, required=True, help="YAML config; data.source must be s3://BUCKET/candles/")
    p.add_argument("--array-size", type=_positive_int, required=True,
                   help=f"number of shards N (1..{c.MAX_ARRAY_SIZE:,}, at most the number of combinations)")
    p.add_argument("--run-id", help="run id (default: UTC time, config hash and a random suffix)")
    _deployment_flags(p, c, submit=True)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="state of a submitted run: jobs, shards present, report")
    p.add_argument("run_id", metavar="RUN_ID")
    _deployment_flags(p, c)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("results", help="download a finished run's report to OUT/RUN_ID/")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--out", type=argtypes.path, default=Path("results"), help="results root (default: results/)")
    _deployment_flags(p, c)
    p.set_defaults(func=cmd_results)

    b = sub.add_parser("batch", help="the AWS Batch job steps (run inside the container)")
    bsub = b.add_subparsers(dest="batch_command", required=True)  # same parser class as `b`
    p = bsub.add_parser("shard", help="evaluate this array child's slice of the grid and write its shard")
    _run_flags(p, c)
    p.add_argument("--index", type=_non_negative_int,
                   help=f"shard index (default: ${c.ENV_ARRAY_INDEX}; 0 when the array size is 1)")
    p.add_argument("--workers", type=_positive_int, help="threads (default: every CPU the container may use)")
    p.set_defaults(func=cmd_batch_shard)

    p = bsub.add_parser("reduce", help="merge every shard and upload the report")
    _run_flags(p, c)
    p.set_defaults(func=cmd_batch_reduce)


_positive_int = argtypes.positive_int
_non_negative_int = argtypes.non_negative_int


def _deployment_flags(p, c, *, submit: bool = False) -> None:
    p.add_argument("--bucket", help=f"data bucket (default: ${c.ENV_SUBMIT_BUCKET})")
    if submit:
        p.add_argument("--job-queue", help=f"Batch job queue name or ARN (default: ${c.ENV_JOB_QUEUE})")
        p.add_argument("--job-definition",
                       help=f"Batch job definition name or ARN (default: ${c.ENV_JOB_DEFINITION})")


def _run_flags(p, c) -> None:
    p.add_argument("--run-id", help=f"run id (default: ${c.ENV_RUN_ID})")
    p.add_argument("--bucket", help=f"bucket (default: ${c.ENV_BUCKET})")
    p.add_argument("--config-uri", help=f"run config (default: ${c.ENV_CONFIG_URI}, "
                                        "else s3://BUCKET/runs/RUN_ID/config.yaml)")
    p.add_argument("--array-size", type=_positive_int, help=f"number of shards (default: ${c.ENV_ARRAY_SIZE})")


def _run_args(args) -> dict:
    return {"run_id": args.run_id, "bucket": args.bucket, "config_uri": args.config_uri,
            "array_size": args.array_size}


def cmd_submit(args) -> int:
    from batch_jobs import contract
    from batch_jobs.aws import aws_errors
    from batch_jobs.submit import submit_run

    deploy = contract.deployment(os.environ, bucket=args.bucket, job_queue=args.job_queue,
                                 job_definition=args.job_definition, for_submit=True)
    with aws_errors("submit"):
        sub = submit_run(args.config, deploy, args.array_size, run_id=args.run_id)
    for note in sub.notes:
        print(f"note: {note}", file=sys.stderr)
    kind = f"array job of {sub.array_size}" if sub.array_size > 1 else "single job"
    print(f"run: {sub.run_id}")
    print(f"combinations: {sub.combinations} in {sub.array_size} shard(s)")
    print(f"shard job: {sub.shard_job_id} ({kind})")
    print(f"reduce job: {sub.reduce_job_id} (after the shards)")
    print(f"config: {sub.config_uri}")
    if sub.strategy_code is not None:
        code = sub.strategy_code
        print(f"strategy code: {len(code['files'])} file(s) for {', '.join(code['modules'])} "
              f"(sha256 {code['sha256'][:16]}…) -> {code['uri']}")
    print(f"report: {sub.report_uri}")
    print(f"\nfollow: backtest status {sub.run_id}\nfetch:  backtest results {sub.run_id} --out results")
    return 0


def _run_bucket(args) -> str:
    """The bucket of an existing run (flag or environment), after checking the run id."""
    from batch_jobs import contract

    contract.check_run_id(args.run_id)
    return contract.deployment(os.environ, bucket=args.bucket).bucket


def cmd_status(args) -> int:
    from batch_jobs.aws import aws_errors
    from batch_jobs.status import run_status

    bucket = _run_bucket(args)
    with aws_errors("status"):
        st = run_status(args.run_id, bucket)
    print(f"run: {st.run_id} (submitted {st.submitted_at})")
    for job in st.jobs:
        line = f"{job.role} job: {job.job_id} {job.status}"
        if job.children:
            line += " · children " + " ".join(f"{k}={v}" for k, v in job.children.items())
        if job.reason and job.status in ("FAILED", "UNKNOWN"):
            line += f" · {job.reason}"
        print(line)
    missing = st.shards_missing
    line = f"shards: {len(st.shards_present)}/{st.array_size} present"
    if missing and len(missing) <= 20:
        line += " (missing: " + ", ".join(map(str, missing)) + ")"
    print(line)
    print(f"report: {'ready at ' if st.report_ready else 'not yet at '}{st.report_uri}")
    return 0


def cmd_results(args) -> int:
    from batch_jobs.aws import aws_errors
    from batch_jobs.results import download_report

    from engine.report.index import write_index

    bucket = _run_bucket(args)
    with aws_errors("results"):
        dest = download_report(args.run_id, bucket, args.out)
    write_index(args.out)
    print(f"report: {dest / 'report.html'}")
    print(f"results: {dest}")
    return 0


def cmd_batch_shard(args) -> int:
    from batch_jobs import contract
    from batch_jobs.aws import aws_errors
    from batch_jobs.shard import run_shard

    task = contract.shard_task(os.environ, index=args.index, **_run_args(args))
    with aws_errors(f"shard {task.index}"):
        res = run_shard(task, workers=args.workers)
    print(f"shard {res.index}/{task.run.array_size}: combinations [{res.first}, {res.stop}) of {res.combinations} "
          f"on {res.candles:,} candles, {res.workers} worker(s), {res.seconds:.1f}s -> {res.uri}")
    return 0


def cmd_batch_reduce(args) -> int:
    from batch_jobs import contract
    from batch_jobs.aws import aws_errors
    from batch_jobs.reduce import run_reduce

    run = contract.run_target(os.environ, **_run_args(args))
    with aws_errors("reduce"):
        res = run_reduce(run)
    print(f"reduce: {res.combinations} combinations from {run.array_size} shard(s), best {res.best}, "
          f"{res.files} files, {res.seconds:.1f}s -> {res.report_uri}")
    return 0
