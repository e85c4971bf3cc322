"""A Batch sweep end to end against a moto server: submit, N shard processes, reduce, status, results.

The candles live in the moto S3 as the hive-partitioned Parquet dataset (written with
engine.data.dataset.upsert_candles); each shard is its own OS process with the
environment the submitted job carries plus ``AWS_BATCH_JOB_ARRAY_INDEX`` (moto does not
run containers). The reduced report must equal a local ``backtest run`` of the same
config on the same data, file for file (everything but manifest.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.dataset import upsert_candles
from engine.storage_layout import shard_key
from fakes.cli import run_cli
from fakes.cli_process import start_console
from fakes.moto_server import aws, moto_aws  # noqa: F401  (fixtures)
from fakes.reports import run_block, stable_html, stable_tree

REPO = Path(__file__).resolve().parent.parent
N = 3

# 12 ma_crossover + 4 donchian_breakout = 16 combinations; with N = 3 the shards take
# [0, 5), [5, 10), [10, 16): the last one spans both strategies.
CONFIG = """\
experiment: {{name: batch_equivalence}}
data:
  source: "s3://{bucket}/candles/"
  symbol: BTCUSDT
  interval: 15m
  start: "{start}"
  end: "{end}"
execution: {{commission: 0.001, slippage: 0.0005, fill: close}}
risk: {{stop_loss: [0.02, 0.05]}}
strategies:
  ma_crossover: {{short_window: [5, 10, 20], long_window: [30, 60], ema_period: 50}}
  donchian_breakout: {{entry_window: [10, 20], exit_window: 5}}
report: {{top_k: 2, rank_by: sharpe, png: true}}
"""


def _shard_processes(aws, job_env: dict[str, str], indices) -> list:
    """One `backtest batch shard` process per index, started together, as AWS Batch would start the array
    children."""
    return [start_console(["batch", "shard"], cwd=REPO, inherit_env=False,
                          env=aws.subprocess_env(**job_env, AWS_BATCH_JOB_ARRAY_INDEX=str(i))) for i in indices]


def _wait(procs: list) -> list[str]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"shard exited {p.returncode}: {err[-2000:]}"
        outs.append(out)
    return outs


def _report_etags(s3, bucket: str, run_id: str) -> dict[str, str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"runs/{run_id}/report/")
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def _submitted_env(aws, bucket: str, run_id: str) -> tuple[dict, dict[str, str]]:
    s3, batch = aws.client("s3"), aws.client("batch")
    sub = json.loads(s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/submission.json")["Body"].read())
    job = batch.describe_jobs(jobs=[sub["shard_job_id"]])["jobs"][0]
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    env.pop("AWS_BATCH_JOB_ID", None)
    return sub, env


def _sweep(aws, tmp_path: Path, capsys, frame, start: str, end: str, config: str = CONFIG) -> dict:
    """Candles into moto S3, submit, shards, reduce, results, and the local run to compare with."""
    bucket = aws.new_bucket()
    upsert_candles(f"s3://{bucket}/candles/", "BTCUSDT", "15m", frame)
    res = aws.batch_resources(bucket)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(config.format(bucket=bucket, start=start, end=end))

    code, out, err = run_cli(["submit", "--config", cfg, "--array-size", N, "--bucket", bucket,
                              "--job-queue", res.job_queue, "--job-definition", res.job_definition], capsys)
    assert code == 0, err
    run_id = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("run: "))
    sub, job_env = _submitted_env(aws, bucket, run_id)
    assert (job_env["RUN_ID"], job_env["BUCKET_NAME"], job_env["ARRAY_SIZE"]) == (run_id, bucket, str(N))

    outs = _wait(_shard_processes(aws, job_env, range(N)))
    for i, text in enumerate(outs):
        assert f"shard {i}/{N}: combinations" in text

    # The reduce job's own environment (flags would override it; --run-id etc. are covered in test_submit).
    reduce_env = {k: job_env[k] for k in ("RUN_ID", "BUCKET_NAME", "CONFIG_URI", "ARRAY_SIZE")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in reduce_env.items():
            mp.setenv(k, v)
        code, out, err = run_cli(["batch", "reduce"], capsys)
    assert code == 0, err
    assert f"s3://{bucket}/runs/{run_id}/report/" in out

    code, out, err = run_cli(["results", run_id, "--bucket", bucket, "--out", tmp_path / "downloads"], capsys)
    assert code == 0, err
    downloaded = tmp_path / "downloads" / run_id
    assert out.strip().splitlines() == [f"report: {downloaded / 'report.html'}", f"results: {downloaded}"]
    assert not [p for p in (tmp_path / "downloads").iterdir() if p.name.startswith(".")]  # no temp folder left

    # The same config on the same S3 dataset, locally.
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "local", "--run-id", "local",
                              "--no-progress"], capsys)
    assert code == 0, err
    manifest = json.loads((downloaded / "manifest.json").read_text())
    local_manifest = json.loads((tmp_path / "local" / "local" / "manifest.json").read_text())
    assert run_block((downloaded / "report.html").read_bytes())["run_id"] == run_id
    # Everything but the manifest and report.html's run id, time and timings is the same, byte for byte.
    local = stable_tree(tmp_path / "local" / "local")
    remote = stable_tree(downloaded)
    assert sorted(remote) == sorted(local)
    assert remote["summary.csv"] == local["summary.csv"]  # row for row, byte for byte
    assert len(local["summary.csv"].decode().splitlines()) == 16 + 1
    assert sum(k.startswith("runs/") for k in remote) == 2  # the top K (report.runs: top)
    assert any(k.startswith("plots/heatmap_") for k in remote) == ("png: true" in config)
    assert {"report.html", "plotly.min.js", "trades/" + manifest["best"]["strategy_id"] + ".csv"} <= set(remote)
    assert {k for k in remote if remote[k] != local[k]} == set()
    assert manifest["data"]["fingerprint"] == local_manifest["data"]["fingerprint"]
    assert (manifest["combinations"], manifest["config_hash"]) == (16, local_manifest["config_hash"])
    assert manifest["batch"]["array_size"] == N
    return {"bucket": bucket, "run_id": run_id, "job_env": job_env, "sub": sub, "summary": remote["summary.csv"],
            "files": remote}


def test_batch_sweep_on_synthetic_candles_matches_a_local_run(aws, tmp_path, capsys):
    from engine.data.synthetic import generate_candles

    # ~83 days of 15m candles from 2023-01-01 (three month partitions); the config reads Jan 15 - Mar 1.
    frame = generate_candles(8_000, seed=11).to_frame()
    run = _sweep(aws, tmp_path, capsys, frame, "2023-01-15", "2023-03-01")
    bucket, run_id, job_env = run["bucket"], run["run_id"], run["job_env"]
    s3 = aws.client("s3")

    # status: both jobs known, every child counted, every shard and the report present.
    code, out, err = run_cli(["status", run_id, "--bucket", bucket], capsys)
    assert code == 0, err
    assert f"shards: {N}/{N} present" in out and "report: ready at" in out
    assert f"shards job: {run['sub']['shard_job_id']} SUCCEEDED · children SUCCEEDED={N}" in out
    assert f"reduce job: {run['sub']['reduce_job_id']} SUCCEEDED" in out

    # A missing shard fails reduce (exit 2) and names it.
    key = shard_key(run_id, 1)
    before = s3.get_object(Bucket=bucket, Key=key)
    body, etag = before["Body"].read(), before["ETag"]
    report_before = _report_etags(s3, bucket, run_id)
    page_key = f"runs/{run_id}/report/report.html"
    page_before = s3.get_object(Bucket=bucket, Key=page_key)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=key)
    code, out, err = run_cli(["batch", "reduce", "--run-id", run_id, "--bucket", bucket, "--array-size", N],
                             capsys)
    assert code == 2
    assert err.strip() == (f"error: run {run_id}: 1 of {N} shard(s) missing under "
                           f"s3://{bucket}/runs/{run_id}/shards/: 1")
    code, out, err = run_cli(["status", run_id, "--bucket", bucket], capsys)
    assert f"shards: {N - 1}/{N} present (missing: 1)" in out

    # Re-running that shard (a Batch retry) writes the very same object...
    _wait(_shard_processes(aws, job_env, [1]))
    again = s3.get_object(Bucket=bucket, Key=key)
    assert again["ETag"] == etag and again["Body"].read() == body
    # Shards carry the tag the lifecycle rule expires them by (shardRetentionDays); reports are kept.
    from engine.storage_layout import SHARD_TAG_KEY, SHARD_TAG_VALUE

    assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == [{"Key": SHARD_TAG_KEY, "Value": SHARD_TAG_VALUE}]
    assert s3.get_object_tagging(Bucket=bucket, Key=page_key)["TagSet"] == []
    # ...and reducing again changes nothing but the time and timings (manifest, report.html's run element).
    code, out, err = run_cli(["batch", "reduce", "--run-id", run_id, "--bucket", bucket, "--array-size", N],
                             capsys)
    assert code == 0, err
    report_after = _report_etags(s3, bucket, run_id)
    volatile = {f"runs/{run_id}/report/manifest.json", page_key}
    assert {k: v for k, v in report_after.items() if k not in volatile} == \
           {k: v for k, v in report_before.items() if k not in volatile}
    assert report_after.keys() == report_before.keys()
    page_after = s3.get_object(Bucket=bucket, Key=page_key)["Body"].read()
    assert stable_html(page_after) == stable_html(page_before)
    summary = s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/report/summary.csv")["Body"].read()
    assert summary == run["summary"]

    # results never writes into an existing folder.
    code, _, err = run_cli(["results", run_id, "--bucket", bucket, "--out", tmp_path / "downloads"], capsys)
    assert code == 2 and "already exists" in err


def test_batch_sweep_on_real_candles_matches_a_local_run(aws, tmp_path, capsys, real_15m_csv):
    from engine.data.loader import load_candles
    from engine.timeutil import parse_time

    # Two and a half months of real BTCUSDT 15m candles in S3; the config reads ~6 weeks (about 4,000 candles).
    candles = load_candles(real_15m_csv, interval="15m", start=parse_time("2024-03-01"), end=parse_time("2024-05-15"))
    # no PNG charts: the synthetic case compares them; here the real candles' figures and files are the point
    _sweep(aws, tmp_path, capsys, candles.to_frame(), "2024-03-10", "2024-04-20",
           CONFIG.replace("png: true", "png: false"))


def test_batch_sweep_with_validation_matches_a_local_run(aws, tmp_path, capsys):
    """Shards emit per-block sums, moments and per-fold train metrics; reduce computes PBO, DSR and
    walk-forward (running the chosen test windows itself): every file equals a local run's."""
    from engine.data.synthetic import generate_candles

    frame = generate_candles(8_000, seed=5).to_frame()
    config = CONFIG + """validation:
  holdout: 0.25
  walk_forward: {{train: 10d, test: 5d}}
  cscv: {{blocks: 8}}
"""
    run = _sweep(aws, tmp_path, capsys, frame, "2023-01-15", "2023-03-01", config)
    files = run["files"]
    assert {"validation.json", "walk_forward.csv", "plots/validation_logits.png",
            "plots/validation_walk_forward.png"} <= set(files)
    doc = json.loads(files["validation.json"])
    assert doc["inputs"]["cscv"]["S"] == 8 and len(doc["pbo"]["logits"]) == 70
    assert doc["inputs"]["deflated_sharpe"]["N"] == 16
    assert len(doc["inputs"]["walk_forward"]["folds"]) >= 3
    header = files["summary.csv"].decode().splitlines()[0].split(",")
    assert header[-7:] == ["oos_sharpe", "oos_total_return", "oos_max_drawdown", "oos_n_trades", "psr", "dsr",
                           "duplicate_of"]
    assert not any(c.startswith("_v.") for c in header)


UNIVERSE_CONFIG = """\
experiment: {{name: batch_universe}}
data:
  source: "s3://{bucket}/candles/"
  symbols: [ETHUSDT, BTCUSDT]
  interval: 15m
  start: "2023-01-15"
  end: "2023-03-01"
risk: {{stop_loss: [0.02, 0.05]}}
strategies:
  ma_crossover: {{short_window: [5, 10, 20], long_window: [30, 60], ema_period: 50}}
  donchian_breakout: {{entry_window: [10, 20], exit_window: 5}}
report: {{top_k: 2, rank_by: sharpe}}
validation:
  holdout: 0.25
  cscv: {{blocks: 8}}
"""


def test_batch_universe_matches_a_local_run(aws, tmp_path, capsys):
    """A universe on Batch: 2 series × 16 combinations = 32 units in 3 shards ([0, 10), [10, 21), [21, 32):
    the middle one spans both series); each shard reads only its series; reduce's folder equals a local
    run's byte for byte (but the manifest and report.html's run element)."""
    from engine.data.synthetic import generate_candles

    bucket = aws.new_bucket()
    for symbol, seed in (("BTCUSDT", 11), ("ETHUSDT", 12)):
        upsert_candles(f"s3://{bucket}/candles/", symbol, "15m", generate_candles(8_000, seed=seed).to_frame())
    res = aws.batch_resources(bucket)
    cfg = tmp_path / "universe.yaml"
    cfg.write_text(UNIVERSE_CONFIG.format(bucket=bucket))
    code, out, err = run_cli(["submit", "--config", cfg, "--array-size", N, "--bucket", bucket,
                              "--job-queue", res.job_queue, "--job-definition", res.job_definition], capsys)
    assert code == 0, err
    assert "combinations: 32 in 3 shard(s)" in out
    run_id = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("run: "))
    _, job_env = _submitted_env(aws, bucket, run_id)
    _wait(_shard_processes(aws, job_env, range(N)))
    from batch_jobs.shardfile import from_bytes

    s3 = aws.client("s3")
    read = [from_bytes(s3.get_object(Bucket=bucket, Key=shard_key(run_id, i))["Body"].read(), "shard")
            for i in range(N)]
    # series in universe order: 0 = BTCUSDT/15m, 1 = ETHUSDT/15m; each shard read only the series it sweeps
    assert [sorted(set(df["series"])) for df, _ in read] == [[0], [0, 1], [1]]
    assert [len(h.data_fingerprint.split(";")) for _, h in read] == [1, 2, 1]
    with pytest.MonkeyPatch.context() as mp:
        for k in ("RUN_ID", "BUCKET_NAME", "CONFIG_URI", "ARRAY_SIZE"):
            mp.setenv(k, job_env[k])
        code, out, err = run_cli(["batch", "reduce"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["results", run_id, "--bucket", bucket, "--out", tmp_path / "downloads"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "local", "--run-id", "local",
                              "--no-progress"], capsys)
    assert code == 0, err
    remote, local = stable_tree(tmp_path / "downloads" / run_id), stable_tree(tmp_path / "local" / "local")
    assert sorted(remote) == sorted(local)
    assert {"summary.csv", "summary_by_series.csv", "validation.json", "report.html"} <= set(remote)
    assert {k for k in remote if remote[k] != local[k]} == set()
    assert len(local["summary_by_series.csv"].decode().splitlines()) == 32 + 1
