"""``backtest submit`` against a moto server, and the run contract (env/flags, shard slices)."""

from __future__ import annotations

import json

import pytest

from batch_jobs import contract
from engine.errors import UserError
from engine.storage_layout import run_config_key
from fakes.cli import run_cli
from fakes.moto_server import aws, moto_aws  # noqa: F401  (fixtures)

CONFIG = """\
experiment: {{name: submit_test}}
data: {{source: "s3://{bucket}/candles/", symbol: BTCUSDT, interval: 15m, start: "2023-01-01", end: "2023-02-01"}}
risk: {{stop_loss: [0.02, 0.05]}}
strategies:
  ma_crossover: {{short_window: [5, 10, 20], long_window: [30, 60]}}
report: {{top_k: 3}}
"""  # 3 x 2 x 2 = 12 combinations


# --------------------------------------------------------------------------- contract

@pytest.mark.parametrize("total", [1, 2, 7, 12, 16, 101])
def test_shard_bounds_cover_the_grid_once_contiguously_and_evenly(total):
    for size in range(1, total + 1):
        bounds = [contract.shard_bounds(i, size, total) for i in range(size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, disjoint, in order
        sizes = [hi - lo for lo, hi in bounds]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
        assert bounds == [contract.shard_bounds(i, size, total) for i in range(size)]  # deterministic


def test_shard_task_reads_the_environment_and_flags_override_it():
    env = {"RUN_ID": "r1", "BUCKET_NAME": "bucket-a", "ARRAY_SIZE": "4", "AWS_BATCH_JOB_ARRAY_INDEX": "2"}
    task = contract.shard_task(env)
    assert (task.run.run_id, task.run.bucket, task.run.array_size, task.index) == ("r1", "bucket-a", 4, 2)
    assert task.run.config_uri == "s3://bucket-a/" + run_config_key("r1")
    task = contract.shard_task({**env, "CONFIG_URI": "s3://other-b/x.yaml"}, index=3, run_id="r2", bucket="bucket-b",
                               array_size=5)
    assert (task.run.run_id, task.run.bucket, task.run.array_size, task.index) == ("r2", "bucket-b", 5, 3)
    assert task.run.config_uri == "s3://other-b/x.yaml"


def test_shard_index_defaults_to_zero_only_for_a_single_shard():
    env = {"RUN_ID": "r1", "BUCKET_NAME": "bucket-a", "ARRAY_SIZE": "1"}
    assert contract.shard_task(env).index == 0  # a plain job: AWS Batch sets no index
    with pytest.raises(UserError, match="AWS_BATCH_JOB_ARRAY_INDEX is unset"):
        contract.shard_task({**env, "ARRAY_SIZE": "3"})
    with pytest.raises(UserError, match="out of range"):
        contract.shard_task({**env, "ARRAY_SIZE": "3", "AWS_BATCH_JOB_ARRAY_INDEX": "3"})
    with pytest.raises(UserError, match="ARRAY_SIZE: expected an integer"):
        contract.shard_task({**env, "ARRAY_SIZE": "three"})
    with pytest.raises(UserError, match="no run id: give --run-id or set RUN_ID"):
        contract.shard_task({"BUCKET_NAME": "bucket-a", "ARRAY_SIZE": "1"})
    with pytest.raises(UserError, match="expected 1..10,000"):
        contract.shard_task({**env, "ARRAY_SIZE": "10001"})


def test_deployment_flags_override_the_stack_output_variables():
    env = {"BACKTEST_BUCKET": "bucket-env", "BACKTEST_JOB_QUEUE": "q-env", "BACKTEST_JOB_DEFINITION": "d-env"}
    d = contract.deployment(env, for_submit=True)
    assert (d.bucket, d.job_queue, d.job_definition) == ("bucket-env", "q-env", "d-env")
    d = contract.deployment(env, bucket="bucket-flag", job_queue="q-flag", for_submit=True)
    assert (d.bucket, d.job_queue, d.job_definition) == ("bucket-flag", "q-flag", "d-env")
    with pytest.raises(UserError, match="BACKTEST_JOB_QUEUE"):
        contract.deployment({"BACKTEST_BUCKET": "bucket-env"}, for_submit=True)
    with pytest.raises(UserError, match="not a valid S3 bucket"):
        contract.deployment({"BACKTEST_BUCKET": "Bad_Bucket"})


# --------------------------------------------------------------------------- submit against moto

def _config(tmp_path, bucket, text=CONFIG):
    path = tmp_path / "sweep.yaml"
    path.write_text(text.format(bucket=bucket))
    return path


def _field(out: str, name: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(f"{name}: "))


def test_submit_array_job_and_dependent_reduce(aws, tmp_path, capsys):
    bucket = aws.new_bucket()
    res = aws.batch_resources(bucket)
    cfg = _config(tmp_path, bucket)
    code, out, err = run_cli(["submit", "--config", cfg, "--array-size", 3, "--bucket", bucket,
                              "--job-queue", res.job_queue, "--job-definition", res.job_definition], capsys)
    assert code == 0, err
    run_id = _field(out, "run")
    assert _field(out, "report") == f"s3://{bucket}/runs/{run_id}/report/"

    s3, batch = aws.client("s3"), aws.client("batch")
    stored = s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/config.yaml")["Body"].read()
    assert stored == cfg.read_bytes()  # uploaded unchanged
    sub = json.loads(s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/submission.json")["Body"].read())
    assert (sub["run_id"], sub["array_size"], sub["combinations"], sub["array_job"]) == (run_id, 3, 12, True)

    shard, reduce = batch.describe_jobs(jobs=[sub["shard_job_id"], sub["reduce_job_id"]])["jobs"]
    assert shard["jobId"] == sub["shard_job_id"] and reduce["jobId"] == sub["reduce_job_id"]
    assert shard["arrayProperties"]["size"] == 3
    assert shard["jobDefinition"] == res.job_definition == reduce["jobDefinition"]
    assert shard["jobQueue"] == res.job_queue == reduce["jobQueue"]
    assert shard["container"]["command"] == ["batch", "shard"]
    assert reduce["container"]["command"] == ["batch", "reduce"]
    assert reduce["dependsOn"] == [{"jobId": sub["shard_job_id"]}]
    assert "arrayProperties" not in reduce or not reduce["arrayProperties"].get("size")
    expected = {"RUN_ID": run_id, "BUCKET_NAME": bucket, "ARRAY_SIZE": "3",
                "CONFIG_URI": f"s3://{bucket}/runs/{run_id}/config.yaml"}
    for job in (shard, reduce):
        env = {e["name"]: e["value"] for e in job["container"]["environment"]}
        assert {k: env.get(k) for k in expected} == expected
        assert env["RUNS_PREFIX"] == "runs/"  # the job definition's own variables are kept
    children = batch.list_jobs(arrayJobId=sub["shard_job_id"])["jobSummaryList"]
    assert len(children) == 3


def test_submit_one_shard_is_a_plain_job_configured_from_the_environment(aws, tmp_path, capsys, monkeypatch):
    bucket = aws.new_bucket()
    res = aws.batch_resources(bucket)
    monkeypatch.setenv("BACKTEST_BUCKET", bucket)
    monkeypatch.setenv("BACKTEST_JOB_QUEUE", res.job_queue)
    monkeypatch.setenv("BACKTEST_JOB_DEFINITION", res.job_definition)
    code, out, err = run_cli(["submit", "--config", _config(tmp_path, bucket), "--array-size", 1,
                              "--run-id", "single-run"], capsys)
    assert code == 0, err
    assert _field(out, "run") == "single-run"
    sub = json.loads(aws.client("s3").get_object(Bucket=bucket, Key="runs/single-run/submission.json")["Body"].read())
    assert sub["array_job"] is False
    shard, reduce = aws.client("batch").describe_jobs(jobs=[sub["shard_job_id"], sub["reduce_job_id"]])["jobs"]
    assert not (shard.get("arrayProperties") or {}).get("size")
    assert reduce["dependsOn"] == [{"jobId": sub["shard_job_id"]}]
    env = {e["name"]: e["value"] for e in shard["container"]["environment"]}
    assert (env["RUN_ID"], env["ARRAY_SIZE"]) == ("single-run", "1")

    # The same run id again is refused before anything is submitted.
    code, _, err = run_cli(["submit", "--config", _config(tmp_path, bucket), "--array-size", 1,
                            "--run-id", "single-run"], capsys)
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize("argv_tail, text, message", [
    (["--array-size", 0], CONFIG, "expected a positive integer"),
    (["--array-size", 10_001], CONFIG, "expected 1..10,000"),
    (["--array-size", 13], CONFIG, "exceeds the 12 combination(s)"),
    (["--array-size", 2], CONFIG.replace('"s3://{bucket}/candles/"', "data/candles"), "not readable from AWS Batch"),
    (["--array-size", 2, "--run-id", "bad/id"], CONFIG, "run id 'bad/id'"),
])
def test_submit_rejects_bad_input_before_submitting(aws, tmp_path, capsys, argv_tail, text, message):
    bucket = aws.new_bucket()
    res = aws.batch_resources(bucket)
    code, out, err = run_cli(["submit", "--config", _config(tmp_path, bucket, text), "--bucket", bucket,
                              "--job-queue", res.job_queue, "--job-definition", res.job_definition, *argv_tail],
                             capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert aws.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert aws.client("batch").list_jobs(jobQueue=res.job_queue)["jobSummaryList"] == []


def test_submit_without_a_job_queue_names_the_variable(aws, tmp_path, capsys):
    bucket = aws.new_bucket()
    code, _, err = run_cli(["submit", "--config", _config(tmp_path, bucket), "--array-size", 2, "--bucket", bucket,
                            "--job-definition", "jd"], capsys)
    assert code == 2 and "no job queue: give --job-queue or set BACKTEST_JOB_QUEUE" in err


def test_status_and_results_of_an_unknown_or_unfinished_run(aws, tmp_path, capsys):
    bucket = aws.new_bucket()
    code, _, err = run_cli(["status", "no-such-run", "--bucket", bucket], capsys)
    assert code == 2 and "no-such-run" in err and "not found" in err
    res = aws.batch_resources(bucket)
    code, out, err = run_cli(["submit", "--config", _config(tmp_path, bucket), "--array-size", 2, "--bucket", bucket,
                              "--job-queue", res.job_queue, "--job-definition", res.job_definition], capsys)
    run_id = _field(out, "run")
    code, out, err = run_cli(["status", run_id, "--bucket", bucket], capsys)
    assert code == 0, err
    assert "shards: 0/2 present (missing: 0, 1)" in out and "report: not yet at" in out
    assert "shards job: " in out and "reduce job: " in out
    code, _, err = run_cli(["results", run_id, "--bucket", bucket, "--out", tmp_path / "dl"], capsys)
    assert code == 2 and "no complete report" in err
    assert not (tmp_path / "dl" / run_id).exists()
    code, _, err = run_cli(["status", run_id, "--bucket", "no-such-bucket-xyz"], capsys)
    assert code == 2 and "NoSuchBucket" in err


PERP = """\
experiment: {{name: submit_perp}}
data: {{source: "s3://{bucket}/", market: um, symbol: BTCUSDT, interval: 15m}}
portfolio: {{direction: both, size: 0.5, leverage: [1, 3]}}
strategies:
  ma_crossover: {{short_window: [5, 10], long_window: 30}}
"""


def _perp_series(bucket: str, hours: list[int]) -> None:
    """600 15m bars (150 h) from 2024-01-01 with mark klines, and 8h funding events at ``hours``."""
    import numpy as np
    import pandas as pd
    from fakes.candles import synthetic_klines

    from engine.data.dataset import upsert_candles
    from engine.data.funding_table import upsert_funding

    t0, hour = 1_704_067_200_000, 3_600_000
    k = synthetic_klines(t0, 600)
    upsert_candles(f"s3://{bucket}/um/candles/", "BTCUSDT", "15m", k)
    upsert_candles(f"s3://{bucket}/um/mark/", "BTCUSDT", "15m", k)
    upsert_funding(f"s3://{bucket}/um/funding/", "BTCUSDT", pd.DataFrame(
        {"funding_time": t0 + np.array(hours, np.int64) * hour, "funding_rate": 0.0001, "mark_price": None,
         "interval_hours": 8}))


def test_submit_refuses_a_perp_run_the_local_cli_refuses(aws, tmp_path, capsys):
    """A funding gap of 56 h (> 2 × 8 h) is one line and exit 2 before any upload or job, as in a local run."""
    bucket = aws.new_bucket()
    res = aws.batch_resources(bucket)
    _perp_series(bucket, [0, 8, 16, 24, 32, 88, 96, 104, 112, 120, 128, 136, 144])
    flags = ["--bucket", bucket, "--job-queue", res.job_queue, "--job-definition", res.job_definition,
             "--array-size", 2]
    before = {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    code, _, err = run_cli(["submit", "--config", _config(tmp_path, bucket, PERP), *flags], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "the funding table does not cover the run: no event from 2024-01-02 08:00:00 to 2024-01-04 16:00:00" in err
    assert {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket)["Contents"]} == before
    assert aws.client("batch").list_jobs(jobQueue=res.job_queue)["jobSummaryList"] == []

    _perp_series(bucket, list(range(0, 152, 8)))  # the events filled in: the same run is submitted
    code, out, err = run_cli(["submit", "--config", _config(tmp_path, bucket, PERP), *flags, "--run-id", "perp-ok"],
                             capsys)
    assert code == 0, err
    assert _field(out, "combinations") == "4 in 2 shard(s)"
