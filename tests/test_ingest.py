"""The ingest worker and dispatcher (lambdas/ingest/) one unit at a time, against a moto server
(S3, DynamoDB, SQS, SNS) and the one-series fake Binance server.

The worker is called directly (moto's Lambda never runs code) with Lambda's SQS event shape and a
fake context whose remaining time is simulated. After every invocation the S3 dataset must equal
the fake's truth up to the last closed candle at that simulated time: no gap, no duplicate, no
open candle. The fan-out across many series is tests/test_ingest_fanout.py's.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # lambdas/ is deployed code, not an installed package
    sys.path.insert(0, str(REPO))

import awswrangler as wr  # noqa: E402

from engine.storage_layout import BLOCKED_KEY, raw_batch_key  # noqa: E402
from fakes.candles import COLUMNS, assert_same, klines_from_csv, stored, synthetic_klines  # noqa: E402
from fakes.ingest_aws import ingest_aws  # noqa: E402,F401  (fixture)
from fakes.moto_server import aws, moto_aws  # noqa: E402,F401  (fixtures)
from fakes.sqs_esm import FakeContext  # noqa: E402
from lambdas.ingest import dispatcher, runtime, worker  # noqa: E402
from lambdas.ingest.units import SeriesGroup, UnitError, WorkUnit, parse_message, schedule_input  # noqa: E402

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
IV = 900_000
UNIT_FIELDS = {"request_id", "message_id", "task", "market", "kind", "symbol", "interval", "receive_count", "status",
               "candles_added", "watermark_before", "watermark_after", "pages", "raw_keys", "requests", "used_weight",
               "duration_ms", "watermark_before_utc", "watermark_after_utc"}


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def lambda_env(ingest_aws, monkeypatch):
    """Set the functions' environment (as stacks/ingest_stack.py does) and drop the cached settings."""

    def apply(base_url: str, **over: str) -> None:
        for k, v in ingest_aws.env(base_url, **{"MAX_PAGES_PER_RUN": "2", **over}).items():
            monkeypatch.setenv(k, v)
        runtime.settings.cache_clear()

    return apply


@pytest.fixture
def sleeps(monkeypatch):
    """The client's retry sleeps, recorded instead of waited."""
    done: list[float] = []
    monkeypatch.setattr(runtime, "SLEEP", done.append)
    return done


def record(symbol: str = "BTCUSDT", interval: str = "15m", task: str = "ingest", receives: int = 1) -> dict:
    """One record of Lambda's SQS event, carrying one unit."""
    return {"messageId": str(uuid.uuid4()), "receiptHandle": "rh", "eventSource": "aws:sqs",
            "body": WorkUnit("spot", "klines", symbol, interval).message(task, T0),
            "attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": str(T0)}}


def close_through(fake, n: int) -> None:
    """Fake clock 7 minutes into candle n: candles 0..n-1 are closed, candle n is open."""
    fake.now_ms = int(fake.klines.open_time.iloc[n]) + 7 * 60_000


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def of(lines: list[dict], event: str) -> list[dict]:
    return [x for x in lines if x["event"] == event]


def invoke(fake, capsys, context: FakeContext | None = None, **rec) -> dict:
    """One unit through the worker: its checked ``ingest_unit`` line (the answer names no failure)."""
    context = context or FakeContext()
    answer = worker.handler({"Records": [record(**rec)]}, context)
    assert answer == {"batchItemFailures": []}
    lines = log_lines(capsys)
    (line,) = of(lines, "ingest_unit")
    assert len(lines) == 1 and UNIT_FIELDS <= set(line) and line["request_id"] == context.aws_request_id
    return line


def check_dataset(bucket: str, truth) -> None:
    """Equal to the truth; the files themselves hold no duplicate; no lease left behind."""
    assert_same(stored(f"s3://{bucket}/candles/"), truth)
    files = wr.s3.read_parquet(f"s3://{bucket}/candles/", dataset=True)
    assert len(files) == len(truth) and files["open_time"].is_unique
    assert not wr.s3.list_objects(f"s3://{bucket}/locks/symbol=")  # every lease released
    assert not [k for k in wr.s3.list_objects(f"s3://{bucket}/candles/") if not k.endswith(".parquet")]


def raw_objects(aws, bucket: str) -> dict[str, bytes]:
    client = aws.client("s3")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="raw/").get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def batch_key(fake, lo: int, hi: int) -> str:
    t = fake.klines.open_time
    return raw_batch_key("BTCUSDT", "15m", int(t.iloc[lo]), int(t.iloc[hi]))


def indexed(env, symbol: str = "BTCUSDT", interval: str = "15m") -> dict:
    return env.index()[f"spot#klines#{symbol}#{interval}"]


# --------------------------------------------------------------------------- the scheduled life of one series

def _scenario(fake, env, lambda_env, capsys, sleeps):
    t = fake.klines.open_time.to_numpy()
    bucket = env.bucket
    lambda_env(fake.base_url)

    # (1) First run: catch-up from HISTORY_START, bounded by MAX_PAGES_PER_RUN (2 pages).
    close_through(fake, 2500)
    line = invoke(fake, capsys)
    assert (line["status"], line["pages"], line["candles_added"]) == ("max_pages", 2, 2000)
    assert (line["watermark_before"], line["watermark_after"]) == (None, int(t[1999]))
    assert line["used_weight"] > 0 and line["CandlesAdded"] == 2000
    check_dataset(bucket, fake.truth().iloc[:2000])
    assert set(raw_objects(env.aws, bucket)) == {batch_key(fake, 0, 999), batch_key(fake, 1000, 1999)}
    item = indexed(env)
    assert (item["watermark_ms"], item["status"], item["failures"]) == (int(t[1999]), "max_pages", 0)

    # ... the next run completes the catch-up; a repeat at the same time adds nothing.
    line = invoke(fake, capsys)
    assert (line["candles_added"], line["pages"], line["status"]) == (500, 1, "caught_up")
    check_dataset(bucket, fake.truth())
    line = invoke(fake, capsys)
    assert (line["candles_added"], line["pages"], line["status"]) == (0, 0, "caught_up")
    check_dataset(bucket, fake.truth())
    assert len(raw_objects(env.aws, bucket)) == 3

    # (2) Missed schedules: the clock jumps 7 intervals; the next run fetches all of them.
    close_through(fake, 2507)
    line = invoke(fake, capsys)
    assert (line["candles_added"], line["pages"], line["status"]) == (7, 1, "caught_up")
    assert (line["watermark_before"], line["watermark_after"]) == (int(t[2499]), int(t[2506]))
    check_dataset(bucket, fake.truth())

    # (3) 429, 500 and 503 on the way: retried (Retry-After obeyed, no real waiting).
    close_through(fake, 4007)
    nxt = len(fake.klines_log(None))
    fake.inject("429", at=nxt)
    fake.inject("500", at=nxt + 1)
    fake.inject("503", at=nxt + 3)
    line = invoke(fake, capsys)
    assert (line["candles_added"], line["pages"], line["requests"], line["status"]) == (1500, 2, 5, "caught_up")
    assert [e["status"] for e in fake.klines_log(None)[nxt:]] == [429, 500, 200, 503, 200]
    assert 3 in sleeps and max(sleeps) <= 60
    check_dataset(bucket, fake.truth())

    # (4) Time runs out: each klines request costs 35 s of a 100 s budget; after one page the
    # margin (2 x the slowest page = 70 s) is not left. That page is kept; the next run completes.
    close_through(fake, 5807)
    ctx = FakeContext(budget_ms=100_000)
    fake.on_klines = lambda index: ctx.advance(35_000)
    line = invoke(fake, capsys, ctx)
    fake.on_klines = None
    assert (line["status"], line["pages"], line["candles_added"]) == ("out_of_time", 1, 1000)
    check_dataset(bucket, fake.truth().iloc[:5007])
    line = invoke(fake, capsys)
    assert (line["candles_added"], line["status"]) == (800, "caught_up")
    check_dataset(bucket, fake.truth())

    # (5) Two workers at once on one series (SQS delivers at least once): the first klines request
    # waits until the other invocation has returned, so they overlap for sure. One ingests; the other
    # finds the series locked and reports no watermark.
    close_through(fake, 5957)
    one_done = threading.Event()
    fake.on_klines = lambda index: one_done.wait(10)
    results: list = [None, None]

    def run(i: int) -> None:
        try:
            results[i] = worker.handler({"Records": [record()]}, FakeContext())
        except BaseException as exc:  # reported below
            results[i] = exc
        finally:
            one_done.set()

    start = threading.Barrier(2)
    threads = [threading.Thread(target=lambda i=i: (start.wait(), run(i))) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    fake.on_klines = None
    assert results == [{"batchItemFailures": []}] * 2
    units = of(log_lines(capsys), "ingest_unit")
    assert sorted(u["status"] for u in units) == ["caught_up", "locked"]
    assert sum(u["candles_added"] for u in units) == 150
    check_dataset(bucket, fake.truth())
    assert indexed(env)["watermark_ms"] == int(t[5956])

    # Raw batches: one object per fetched page, named by its first/last open time.
    keys = set(raw_objects(env.aws, bucket))
    assert len(keys) == 9 and batch_key(fake, 5807, 5956) in keys
    body = json.loads(raw_objects(env.aws, bucket)[batch_key(fake, 2500, 2506)])
    assert body["columns"] == list(COLUMNS)
    truth_rows = fake.truth().iloc[2500:2507][list(COLUMNS)]
    assert body["rows"] == [list(r) for r in zip(*(truth_rows[c].tolist() for c in COLUMNS))]


def test_scheduled_runs_on_real_candles(real_15m_csv, binance_fake, ingest_aws, lambda_env, capsys, sleeps):
    fake = binance_fake(klines_from_csv(real_15m_csv).iloc[:6000].reset_index(drop=True))
    _scenario(fake, ingest_aws, lambda_env, capsys, sleeps)


def test_scheduled_runs_on_synthetic_candles(binance_fake, ingest_aws, lambda_env, capsys, sleeps):
    _scenario(binance_fake(synthetic_klines(T0, 6000, seed=23)), ingest_aws, lambda_env, capsys, sleeps)


# --------------------------------------------------------------------------- raw batches

def test_repeating_a_window_overwrites_the_same_raw_objects(binance_fake, ingest_aws, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 1600))
    bucket = ingest_aws.bucket
    lambda_env(fake.base_url)
    close_through(fake, 1500)
    invoke(fake, capsys)
    first = raw_objects(ingest_aws.aws, bucket)
    assert set(first) == {batch_key(fake, 0, 999), batch_key(fake, 1000, 1499)}
    wr.s3.delete_objects(f"s3://{bucket}/candles/")  # the watermark is gone: the same window is fetched again
    assert invoke(fake, capsys)["candles_added"] == 1500
    assert raw_objects(ingest_aws.aws, bucket) == first  # same keys, byte-identical bodies, nothing added
    check_dataset(bucket, fake.truth())


# --------------------------------------------------------------------------- failures, per unit

def test_a_failed_unit_is_named_alone_in_the_batch_response(binance_fake, ingest_aws, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 1600))
    lambda_env(fake.base_url)
    close_through(fake, 1500)
    bad, good = record("ETHUSDT"), record("BTCUSDT")  # the fake knows BTCUSDT only
    answer = worker.handler({"Records": [bad, good]}, FakeContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    units = {u["symbol"]: u for u in of(log_lines(capsys), "ingest_unit")}
    assert (units["ETHUSDT"]["status"], units["ETHUSDT"]["level"], units["ETHUSDT"]["SeriesFailures"]) == (
        "error", "ERROR", 1)
    assert "Binance error -1121" in units["ETHUSDT"]["error"] and "DeadLettered" not in units["ETHUSDT"]
    assert units["BTCUSDT"]["status"] == "caught_up"
    check_dataset(ingest_aws.bucket, fake.truth())
    failed = indexed(ingest_aws, "ETHUSDT")
    assert failed["failures"] == 1 and "ingest_done_ms" not in failed  # SQS retries it: still outstanding
    # The last attempt: recorded as dead-lettered and done, counted in DeadLettered.
    worker.handler({"Records": [record("ETHUSDT", receives=3)]}, FakeContext())
    (last,) = of(log_lines(capsys), "ingest_unit")
    assert last["DeadLettered"] == 1
    failed = indexed(ingest_aws, "ETHUSDT")
    assert failed["failures"] == 2 and failed["dead_lettered_ms"] and failed["ingest_done_ms"]


def test_a_message_that_is_not_a_unit_fails_alone(binance_fake, ingest_aws, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 600))
    lambda_env(fake.base_url)
    close_through(fake, 500)
    junk = {**record(), "body": '{"task": "ingest", "market": "spot", "kind": "klines", "symbol": "../x"}'}
    good = record()
    assert worker.handler({"Records": [junk, good]}, FakeContext()) == {
        "batchItemFailures": [{"itemIdentifier": junk["messageId"]}]}
    lines = log_lines(capsys)
    (bad,) = of(lines, "ingest_bad_message")
    assert "symbol '../x'" in bad["error"] and bad["SeriesFailures"] == 1
    assert [u["status"] for u in of(lines, "ingest_unit")] == ["caught_up"]


def test_out_of_time_during_a_retry_back_off_keeps_what_was_written(binance_fake, ingest_aws, lambda_env, capsys,
                                                                     sleeps):
    fake = binance_fake(synthetic_klines(T0, 1600))
    lambda_env(fake.base_url)
    close_through(fake, 1500)
    fake.inject("429", at=1, retry_after=50)  # 60 s left: a 50 s wait would cross the 30 s margin
    line = invoke(fake, capsys, FakeContext(budget_ms=60_000))
    assert (line["status"], line["candles_added"]) == ("out_of_time", 1000)
    assert sleeps == []
    check_dataset(ingest_aws.bucket, fake.truth().iloc[:1000])


# --------------------------------------------------------------------------- 418 and 451

@pytest.mark.parametrize("status", [418, 451])
def test_a_ban_or_geo_block_is_stored_and_the_rest_of_the_batch_skips(binance_fake, ingest_aws, lambda_env, capsys,
                                                                     monkeypatch, status):
    fake = binance_fake(synthetic_klines(T0, 1600))
    lambda_env(fake.base_url, MAX_PAGES_PER_RUN="4")
    monkeypatch.setattr(runtime, "CLOCK", fake.clock)
    close_through(fake, 1500)
    fake.inject(str(status), at=1, retry_after=600)  # the second page
    answer = worker.handler({"Records": [record("BTCUSDT"), record("ETHUSDT")]}, FakeContext())
    assert answer == {"batchItemFailures": []}  # not a failure of the series: no retry, no DLQ
    btc, eth = of(log_lines(capsys), "ingest_unit")
    kind, metric, until = (("blocked", "BlockedSkips", fake.now_ms + 600_000) if status == 418
                           else ("geo_blocked", "GeoBlocked", fake.now_ms + 3_600_000))
    assert (btc["status"], btc["http_status"], btc[metric], btc["level"]) == (kind, status, 1, "WARNING")
    assert f"HTTP {status}" in btc["error"] and btc["candles_added"] == 1000
    assert (eth["status"], eth[metric], eth["blocked_until"]) == (kind, 1, until)  # IP-wide: not asked
    assert not [e for e in fake.log if e["params"].get("symbol") == "ETHUSDT"]
    assert len(fake.klines_log(None)) == 2  # never retried
    marker = json.loads(ingest_aws.aws.client("s3").get_object(Bucket=ingest_aws.bucket, Key=BLOCKED_KEY)["Body"].read())
    assert (marker["blocked_until"], marker["http_status"]) == (until, status)
    check_dataset(ingest_aws.bucket, fake.truth().iloc[:1000])  # the page before is kept
    assert indexed(ingest_aws)["watermark_ms"] == int(fake.klines.open_time.iloc[999])

    # Until then every unit skips Binance; after it, the next run ingests again.
    fake.advance(300)
    requests = len(fake.log)
    line = invoke(fake, capsys)
    assert len(fake.log) == requests and line["status"] == kind
    fake.now_ms = until + 60_000
    line = invoke(fake, capsys)
    assert line["status"] == "caught_up"
    check_dataset(ingest_aws.bucket, fake.truth())


def test_a_marker_for_another_base_url_does_not_hold_back(binance_fake, ingest_aws, lambda_env, capsys, monkeypatch):
    fake = binance_fake(synthetic_klines(T0, 600))
    lambda_env(fake.base_url)
    monkeypatch.setattr(runtime, "CLOCK", fake.clock)
    close_through(fake, 500)
    ingest_aws.aws.client("s3").put_object(Bucket=ingest_aws.bucket, Key=BLOCKED_KEY, Body=json.dumps(
        {"kind": "geo-blocked", "blocked_until": fake.now_ms + 3_600_000, "http_status": 451,
         "base_url": "https://api.binance.com"}).encode())
    assert invoke(fake, capsys)["status"] == "caught_up"  # redeployed to another endpoint: go ahead


# --------------------------------------------------------------------------- the series lease

def _put_lock(aws, bucket: str, expires_ms: int) -> None:
    aws.client("s3").put_object(Bucket=bucket, Key="locks/symbol=BTCUSDT/interval=15m.json",
                                Body=json.dumps({"owner": "other", "expires_ms": expires_ms}).encode())


def test_a_live_lock_skips_the_unit_and_a_stale_one_is_taken_over(binance_fake, ingest_aws, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 600))
    bucket = ingest_aws.bucket
    lambda_env(fake.base_url)
    close_through(fake, 500)
    _put_lock(ingest_aws.aws, bucket, expires_ms=2**62)
    assert invoke(fake, capsys)["status"] == "locked" and fake.klines_log(None) == []
    assert "watermark_ms" not in indexed(ingest_aws)  # only the lease holder reports a watermark
    assert wr.s3.list_objects(f"s3://{bucket}/locks/")  # not ours: left alone
    _put_lock(ingest_aws.aws, bucket, expires_ms=0)  # its holder died long ago
    line = invoke(fake, capsys)
    assert (line["status"], line["candles_added"]) == ("caught_up", 500)
    check_dataset(bucket, fake.truth())


def test_the_lease_lives_under_locks_and_never_breaks_a_dataset_read(binance_fake, ingest_aws, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 2500))
    bucket = ingest_aws.bucket
    lambda_env(fake.base_url, MAX_PAGES_PER_RUN="5")
    close_through(fake, 2400)
    seen: list = []

    def during(index):  # while the lease is held, with one page stored
        if index == 1:
            client = ingest_aws.aws.client("s3")
            keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
            key = "locks/symbol=BTCUSDT/interval=15m.json"
            lease = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            rows = len(wr.s3.read_parquet(f"s3://{bucket}/candles/", dataset=True))
            seen.append((keys, lease, rows))

    fake.on_klines = during
    ctx = FakeContext()
    line = invoke(fake, capsys, ctx)
    fake.on_klines = None
    keys, lease, rows = seen[0]
    assert "locks/symbol=BTCUSDT/interval=15m.json" in keys
    assert all(k.endswith(".parquet") for k in keys if k.startswith("candles/"))
    assert lease["owner"] == ctx.aws_request_id and lease["command"] == "ingest worker (ingest)"
    assert rows == 1000 and line["candles_added"] == 2400
    check_dataset(bucket, fake.truth())


def test_an_interrupted_s3_write_is_merged_by_the_next_holder(binance_fake, ingest_aws, lambda_env, capsys):
    """A kill between writing a month's new file and deleting the old one leaves two files; readers
    de-duplicate and the next run merges them (nothing lost, nothing doubled)."""
    fake = binance_fake(synthetic_klines(T0, 1200))
    bucket = ingest_aws.bucket
    lambda_env(fake.base_url)
    close_through(fake, 1100)
    invoke(fake, capsys)
    client = ingest_aws.aws.client("s3")
    month = "candles/symbol=BTCUSDT/interval=15m/year=2024/month=01/"
    (key,) = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=month)["Contents"]]
    client.copy_object(Bucket=bucket, Key=month + "part-00000000000000000000-leftover.snappy.parquet",
                       CopySource={"Bucket": bucket, "Key": key})
    assert_same(stored(f"s3://{bucket}/candles/"), fake.truth())  # readers see no duplicate
    close_through(fake, 1150)
    invoke(fake, capsys)
    assert len(client.list_objects_v2(Bucket=bucket, Prefix=month)["Contents"]) == 1
    check_dataset(bucket, fake.truth())


# --------------------------------------------------------------------------- the dispatcher

def test_one_message_per_series_and_none_while_one_is_outstanding(binance_fake, ingest_aws, lambda_env, capsys,
                                                                  monkeypatch):
    fake = binance_fake(synthetic_klines(T0, 600))
    lambda_env(fake.base_url)
    monkeypatch.setattr(runtime, "CLOCK", fake.clock)
    event = schedule_input("ingest", [SeriesGroup("spot", "klines", ("BTCUSDT", "ETHUSDT"), ("15m", "1h"))])
    sqs = ingest_aws.aws.client("sqs")

    def queued() -> list[dict]:
        got = sqs.receive_message(QueueUrl=ingest_aws.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return sorted((json.loads(m["Body"]) for m in got.get("Messages", [])), key=lambda m: (m["symbol"], m["interval"]))

    summary = dispatcher.handler(event, FakeContext())
    assert summary["dispatched"] == 4
    assert [(m["task"], m["symbol"], m["interval"], m["sent_ms"]) for m in queued()] == [
        ("ingest", s, i, fake.now_ms) for s in ("BTCUSDT", "ETHUSDT") for i in ("15m", "1h")]
    (line,) = of(log_lines(capsys), "ingest_dispatch")
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]] and line["UnitsDispatched"] == 4
    # 15 minutes on, none was reported done: nothing new is sent (one unit in flight per series) ...
    fake.advance(900)
    assert dispatcher.handler(event, FakeContext())["skipped"]["outstanding"] == 4
    # ... until a worker reports one done, or the message outlives OUTSTANDING_SECONDS.
    from lambdas.ingest import index

    index.record_run(ingest_aws.aws.client("dynamodb"), ingest_aws.table, WorkUnit("spot", "klines", "BTCUSDT", "1h"),
                     "ingest", status="caught_up", now_ms=fake.now_ms, watermark_ms=T0)
    fake.advance(1)
    assert dispatcher.handler(event, FakeContext())["dispatched"] == 1
    fake.advance(2999)  # the first three were sent 65 minutes ago, past OUTSTANDING_SECONDS: sent again
    assert dispatcher.handler(event, FakeContext())["dispatched"] == 3
    capsys.readouterr()


def test_a_bad_schedule_input_is_a_config_error(ingest_aws, lambda_env, capsys):
    lambda_env("http://127.0.0.1:9")
    with pytest.raises(UnitError, match="task 'sync'"):
        dispatcher.handler({"task": "sync", "series": []}, FakeContext())
    assert of(log_lines(capsys), "ingest_config_error")[0]["level"] == "ERROR"


def test_units_and_messages_round_trip_and_bad_ones_are_named():
    unit = WorkUnit("spot", "klines", "BTCUSDT", "15m")
    assert unit.key == "spot#klines#BTCUSDT#15m"
    assert parse_message(unit.message("repair", 5)) == ("repair", unit, 5)
    for body, needle in [("nope", "not JSON"), ("[]", "not a JSON object"),
                         ('{"task": "x"}', "task 'x'"),
                         ('{"task": "ingest", "market": "coinm", "kind": "klines"}', "market 'coinm'"),
                         ('{"task": "ingest", "market": "um", "kind": "trades"}', "kind 'trades'"),
                         ('{"task": "ingest", "market": "um", "kind": "funding", "symbol": "BTCUSDT", '
                          '"interval": "8h", "sent_ms": 1}', "um funding has no interval"),
                         ('{"task": "ingest", "market": "spot", "kind": "klines", "symbol": "BTCUSDT", '
                          '"interval": "7m", "sent_ms": 1}', "interval '7m'")]:
        with pytest.raises(UnitError, match=needle):
            parse_message(body)
    big = [SeriesGroup("spot", "klines", tuple(f"SYM{i:04d}USDT" for i in range(900)), ("15m",))]
    with pytest.raises(UnitError, match="8192"):
        schedule_input("ingest", big)


# --------------------------------------------------------------------------- environment

def test_missing_bucket_name_is_a_clear_error(monkeypatch, lambda_env, capsys):
    lambda_env("http://127.0.0.1:9")
    monkeypatch.delenv("BUCKET_NAME")
    runtime.settings.cache_clear()
    with pytest.raises(runtime.SettingsError, match="BUCKET_NAME is not set"):
        worker.handler({"Records": [record()]}, FakeContext())
    line = of(log_lines(capsys), "ingest_config_error")[0]
    assert line["level"] == "ERROR" and "BUCKET_NAME" in line["error"]
    monkeypatch.setenv("BUCKET_NAME", "my-bucket")  # an error is not cached: fixed without a cold start
    assert runtime.settings().bucket == "my-bucket"


def test_every_bad_variable_is_named():
    env = {"BUCKET_NAME": "s3://b/x", "HISTORY_START": "yesterday", "BINANCE_BASE_URL": "ftp://x",
           "MAX_PAGES_PER_RUN": "0", "MAX_RECEIVES": "x", "LAG_ALARM_SECONDS": "5"}
    with pytest.raises(runtime.SettingsError) as err:
        runtime.parse_settings(env, dispatcher=True)
    for name in ("BUCKET_NAME", "INDEX_TABLE", "HISTORY_START", "BINANCE_BASE_URL", "MAX_PAGES_PER_RUN",
                 "MAX_RECEIVES", "LAG_ALARM_SECONDS", "QUEUE_URL"):
        assert name in str(err.value)


def test_settings_are_parsed_like_the_stack_sets_them():
    cfg = runtime.parse_settings({"BUCKET_NAME": "data-bucket", "INDEX_TABLE": "idx", "HISTORY_START": "2017-08-17",
                                  "BINANCE_BASE_URL": "https://data-api.binance.vision/", "MAX_PAGES_PER_RUN": "200",
                                  "MAX_RECEIVES": "3", "QUEUE_URL": "https://sqs/q", "LAG_ALARM_SECONDS": "600",
                                  "OUTSTANDING_SECONDS": "3060"}, dispatcher=True)
    assert (cfg.bucket, cfg.index_table, cfg.queue_url) == ("data-bucket", "idx", "https://sqs/q")
    assert cfg.history_start == 1_502_928_000_000 and cfg.max_pages_per_run == 200 and cfg.max_receives == 3
    assert cfg.base_url == "https://data-api.binance.vision" and cfg.lag_alarm_ms == 600_000
    assert cfg.outstanding_ms == 3_060_000 and cfg.alarm_topic_arn == ""


# --------------------------------------------------------------------------- the deployed bundle

def _bundle_constant(name: str):
    """A literal constant of stacks/ingest_stack.py (ENGINE_MODULES, HANDLERS), read without importing aws_cdk."""
    tree = ast.parse((REPO / "stacks" / "ingest_stack.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in stacks/ingest_stack.py")


def test_handler_imports_only_what_the_lambda_bundle_holds(tmp_path):
    """Copy what CODE_EXCLUDE keeps (lambdas/ingest/, ENGINE_MODULES, engine/data/) and import the handler
    there, with the packages the runtime lacks made unimportable."""
    for rel in _bundle_constant("ENGINE_MODULES"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "engine" / "data", tmp_path / "engine" / "data", ignore=ignore)
    shutil.copytree(REPO / "lambdas" / "ingest", tmp_path / "lambdas" / "ingest", ignore=ignore)
    handlers = _bundle_constant("HANDLERS")
    assert set(handlers) == {"lambdas/ingest/dispatcher.handler", "lambdas/ingest/worker.handler"}
    probe = f"""
HANDLERS = {handlers!r}
import importlib.abc, json, sys
BLOCKED = ("numba", "matplotlib", "tqdm", "yaml")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not in the Lambda runtime")
        return None
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(tmp_path)!r})
import importlib
for handler in HANDLERS:  # how the runtime resolves a handler path
    h = importlib.import_module(handler.rsplit(".", 1)[0].replace("/", "."))
    assert callable(getattr(h, handler.rsplit(".", 1)[1]))
mods = {{n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n == "engine" or n.startswith(("engine.", "lambdas"))}}
print(json.dumps(mods))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    mods = json.loads(proc.stdout.strip().splitlines()[-1])
    outside = {n: f for n, f in mods.items() if f is not None and not f.startswith(str(tmp_path))}
    assert not outside, f"imported from outside the bundle: {outside}"
    assert "engine.data.klines" in mods and "engine.data.dataset" in mods
