"""The ingest Lambda (lambdas/ingest/handler.py) against a moto S3 server and the fake Binance server.

The handler is called directly (moto's Lambda never runs code) with a real-shaped
EventBridge scheduled event and a fake context whose remaining time is simulated.
After every invocation the S3 dataset must equal the fake's truth up to the last
closed candle at that simulated time: no gap, no duplicate, no open candle.
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
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # lambdas/ is deployed code, not an installed package
    sys.path.insert(0, str(REPO))

import awswrangler as wr  # noqa: E402

from engine.data.klines import BinanceBlocked  # noqa: E402
from engine.storage_layout import raw_batch_key  # noqa: E402
from fakes.candles import COLUMNS, assert_same, klines_from_csv, stored, synthetic_klines  # noqa: E402
from fakes.moto_server import aws, moto_aws  # noqa: E402,F401  (fixtures)
from lambdas.ingest import handler as ingest  # noqa: E402

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
IV = 900_000
ACCOUNT = "123456789012"
SERIES_FIELDS = {"request_id", "symbol", "interval", "status", "candles_added", "watermark_before",
                 "watermark_after", "pages", "requests", "used_weight", "duration_ms"}
SUMMARY_FIELDS = {"request_id", "series", "candles_added", "pages", "requests", "used_weight", "complete", "failed",
                  "duration_ms", "event_time"}


# --------------------------------------------------------------------------- doubles

class FakeContext:
    """The Lambda context attributes the handler reads; time is simulated (advance())."""

    function_name = "IngestStack-Function"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:IngestStack-Function"

    def __init__(self, budget_ms: int = 300_000):
        self.aws_request_id = str(uuid.uuid4())
        self._left = budget_ms
        self._lock = threading.Lock()

    def advance(self, ms: int) -> None:
        with self._lock:
            self._left -= ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._left)


def scheduled_event(now_ms: int) -> dict:
    """EventBridge's "Scheduled Event", as delivered to a Lambda target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.fromtimestamp(now_ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:{ACCOUNT}:rule/IngestStack-Schedule83C1F0E8-1A2B3C4D5E6F"],
        "detail": {},
    }


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def s3(aws):
    """A fresh bucket on the moto server; awswrangler pointed at it explicitly.

    The test's own reads share one default session (awswrangler would otherwise make a new
    session, and reload every service model, on each call)."""
    import boto3

    wr.config.s3_endpoint_url = aws.endpoint
    boto3.setup_default_session()
    yield aws, aws.new_bucket("ingest")
    wr.config.reset("s3_endpoint_url")


@pytest.fixture
def sleeps(monkeypatch):
    """The client's retry sleeps, recorded instead of waited."""
    done: list[float] = []
    monkeypatch.setattr(ingest, "SLEEP", done.append)
    return done


@pytest.fixture
def lambda_env(monkeypatch):
    """Set the function's environment (as stacks/ingest_stack.py does) and drop the cached settings."""

    def apply(bucket: str, base_url: str, **over: str) -> None:
        env = {"BUCKET_NAME": bucket, "CANDLES_PREFIX": "candles/", "RAW_PREFIX": "raw/", "SYMBOLS": "BTCUSDT",
               "INTERVALS": "15m", "HISTORY_START": "2023-12-20", "BINANCE_BASE_URL": base_url,
               "MAX_PAGES_PER_RUN": "2", **over}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        ingest.settings.cache_clear()

    ingest.settings.cache_clear()
    ingest._local.__dict__.clear()  # no S3 client cached by another test
    yield apply
    ingest.settings.cache_clear()
    ingest._local.__dict__.clear()


# --------------------------------------------------------------------------- helpers

def close_through(fake, n: int) -> None:
    """Fake clock 7 minutes into candle n: candles 0..n-1 are closed, candle n is open."""
    fake.now_ms = int(fake.klines.open_time.iloc[n]) + 7 * 60_000


def invoke(fake, capsys, context: FakeContext | None = None) -> tuple[dict, dict]:
    """One scheduled invocation of a one-series setup: the summary and its checked series log line."""
    context = context or FakeContext()
    summary = ingest.handler(scheduled_event(fake.now_ms), context)
    json.dumps(summary)  # JSON-serialisable
    return summary, check_logs(log_lines(capsys), summary, context.aws_request_id)


def log_lines(capsys) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def of(lines: list[dict], event: str) -> list[dict]:
    return [x for x in lines if x["event"] == event]


def check_dataset(bucket: str, truth) -> None:
    """Equal to the truth; the files themselves hold no duplicate; no lock left behind."""
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


def check_logs(lines: list[dict], summary: dict, request_id: str) -> dict:
    """Exactly one series line and one summary line with the contract's fields; returns the series line."""
    series, summaries = of(lines, "ingest_series"), of(lines, "ingest_summary")
    assert len(series) == 1 and len(summaries) == 1 and len(lines) == 2
    assert series[0]["level"] == "INFO" and series[0]["status"] == summary["series"][0]["status"]
    assert SERIES_FIELDS <= set(series[0]) and SUMMARY_FIELDS <= set(summaries[0])
    assert series[0]["request_id"] == summaries[0]["request_id"] == request_id
    assert summaries[0] == {"level": "INFO", "event": "ingest_summary", **summary}
    return series[0]


# --------------------------------------------------------------------------- the scheduled life of the Lambda

def _scenario(fake, aws, bucket, lambda_env, capsys, sleeps):
    t = fake.klines.open_time.to_numpy()
    lambda_env(bucket, fake.base_url)

    # (1) First run: catch-up from HISTORY_START, bounded by MAX_PAGES_PER_RUN (2 pages).
    close_through(fake, 2500)
    summary, line = invoke(fake, capsys)
    assert (line["status"], line["pages"], line["candles_added"]) == ("max_pages", 2, 2000)
    assert (line["watermark_before"], line["watermark_after"]) == (None, int(t[1999]))
    assert line["used_weight"] > 0 and summary["complete"] is False
    check_dataset(bucket, fake.truth().iloc[:2000])
    assert set(raw_objects(aws, bucket)) == {batch_key(fake, 0, 999), batch_key(fake, 1000, 1999)}

    # ... the next run completes the catch-up; a repeat at the same time adds nothing.
    summary, _ = invoke(fake, capsys)
    assert (summary["candles_added"], summary["pages"], summary["complete"]) == (500, 1, True)
    check_dataset(bucket, fake.truth())
    summary, _ = invoke(fake, capsys)
    assert (summary["candles_added"], summary["pages"], summary["complete"]) == (0, 0, True)
    check_dataset(bucket, fake.truth())
    assert len(raw_objects(aws, bucket)) == 3

    # (2) Missed schedules: the clock jumps 7 intervals; the next run fetches all of them.
    close_through(fake, 2507)
    summary, line = invoke(fake, capsys)
    assert (line["candles_added"], line["pages"], line["status"]) == (7, 1, "caught_up")
    assert (line["watermark_before"], line["watermark_after"]) == (int(t[2499]), int(t[2506]))
    check_dataset(bucket, fake.truth())

    # (3) 429, 500 and 503 on the way: retried (Retry-After obeyed, no real waiting).
    close_through(fake, 4007)
    nxt = len(fake.klines_log(None))
    fake.inject("429", at=nxt)
    fake.inject("500", at=nxt + 1)
    fake.inject("503", at=nxt + 3)
    summary, _ = invoke(fake, capsys)
    assert (summary["candles_added"], summary["pages"], summary["requests"], summary["complete"]) == (1500, 2, 5, True)
    assert [e["status"] for e in fake.klines_log(None)[nxt:]] == [429, 500, 200, 503, 200]
    assert 3 in sleeps and max(sleeps) <= 60
    check_dataset(bucket, fake.truth())

    # (4) Time runs out: each klines request costs 35 s of a 100 s budget; after one page
    # the margin (2 x the slowest page = 70 s) is not left. That page is kept; the next run completes.
    close_through(fake, 5807)
    ctx = FakeContext(budget_ms=100_000)
    fake.on_klines = lambda index: ctx.advance(35_000)
    summary, line = invoke(fake, capsys, ctx)
    fake.on_klines = None
    assert (line["status"], line["pages"], line["candles_added"]) == ("out_of_time", 1, 1000)
    check_dataset(bucket, fake.truth().iloc[:5007])
    summary, _ = invoke(fake, capsys)
    assert (summary["candles_added"], summary["complete"]) == (800, True)
    check_dataset(bucket, fake.truth())

    # (5) Two invocations at once: the first klines request waits until the other invocation has
    # returned, so they overlap for sure. One ingests; the other finds the series locked.
    close_through(fake, 5957)
    one_done = threading.Event()
    fake.on_klines = lambda index: one_done.wait(10)
    results: list = [None, None]

    def run(i: int) -> None:
        try:
            results[i] = ingest.handler(scheduled_event(fake.now_ms), FakeContext())
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
    assert all(isinstance(r, dict) for r in results), results
    assert sorted(r["series"][0]["status"] for r in results) == ["caught_up", "locked"]
    assert sum(r["candles_added"] for r in results) == 150
    lines = log_lines(capsys)
    assert len(of(lines, "ingest_series")) == 2 and len(of(lines, "ingest_summary")) == 2
    check_dataset(bucket, fake.truth())

    # Raw batches: one object per fetched page, named by its first/last open time.
    keys = set(raw_objects(aws, bucket))
    assert len(keys) == 9 and batch_key(fake, 5807, 5956) in keys
    body = json.loads(raw_objects(aws, bucket)[batch_key(fake, 2500, 2506)])
    assert body["columns"] == list(COLUMNS)
    truth_rows = fake.truth().iloc[2500:2507][list(COLUMNS)]
    assert body["rows"] == [list(r) for r in zip(*(truth_rows[c].tolist() for c in COLUMNS))]


def test_scheduled_runs_on_real_candles(real_15m_csv, binance_fake, s3, lambda_env, capsys, sleeps):
    klines = klines_from_csv(real_15m_csv).iloc[:6000].reset_index(drop=True)
    fake = binance_fake(klines)
    aws, bucket = s3
    _scenario(fake, aws, bucket, lambda_env, capsys, sleeps)


def test_scheduled_runs_on_synthetic_candles(binance_fake, s3, lambda_env, capsys, sleeps):
    fake = binance_fake(synthetic_klines(T0, 6000, seed=23))
    aws, bucket = s3
    _scenario(fake, aws, bucket, lambda_env, capsys, sleeps)


# --------------------------------------------------------------------------- raw batches

def test_repeating_a_window_overwrites_the_same_raw_objects(binance_fake, s3, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 1600))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url)
    close_through(fake, 1500)
    invoke(fake, capsys)
    first = raw_objects(aws, bucket)
    assert set(first) == {batch_key(fake, 0, 999), batch_key(fake, 1000, 1499)}
    wr.s3.delete_objects(f"s3://{bucket}/candles/")  # the watermark is gone: the same window is fetched again
    summary, _ = invoke(fake, capsys)
    assert summary["candles_added"] == 1500
    assert raw_objects(aws, bucket) == first  # same keys, byte-identical bodies, nothing added
    check_dataset(bucket, fake.truth())


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("status", [418, 451])
def test_ban_stops_at_once_logs_and_raises(binance_fake, s3, lambda_env, capsys, status):
    fake = binance_fake(synthetic_klines(T0, 1600))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url, SYMBOLS="BTCUSDT,ETHUSDT", MAX_PAGES_PER_RUN="4")
    close_through(fake, 1500)
    fake.inject(str(status), at=1)  # the second page
    ctx = FakeContext()
    with pytest.raises(BinanceBlocked):
        ingest.handler(scheduled_event(fake.now_ms), ctx)
    lines = log_lines(capsys)
    err = of(lines, "ingest_error")[0]
    assert err["request_id"] == ctx.aws_request_id and f"HTTP {status}" in err["error"]
    assert (err["level"], err["symbol"], err["http_status"], err["error_type"]) == ("ERROR", "BTCUSDT", status,
                                                                                     "BinanceBlocked")
    assert [x["symbol"] for x in of(lines, "ingest_series")] == ["BTCUSDT"]  # ETHUSDT not attempted
    assert of(lines, "ingest_summary")[0]["failed"][0]["symbol"] == "BTCUSDT"
    assert not [e for e in fake.log if e["params"].get("symbol") == "ETHUSDT"]
    assert len(fake.klines_log(None)) == 2  # never retried
    check_dataset(bucket, fake.truth().iloc[:1000])  # the page before the ban is kept


def test_other_series_still_run_after_an_error_then_the_invocation_fails(binance_fake, s3, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 1600))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url, SYMBOLS="ETHUSDT,BTCUSDT")  # the fake knows BTCUSDT only
    close_through(fake, 1500)
    with pytest.raises(ingest.IngestFailed, match="1 of 2 series failed: ETHUSDT 15m: Binance error -1121"):
        ingest.handler(scheduled_event(fake.now_ms), FakeContext())
    lines = log_lines(capsys)
    assert [(x["symbol"], x["status"]) for x in of(lines, "ingest_series")] == [("ETHUSDT", "error"),
                                                                                ("BTCUSDT", "caught_up")]
    summary = of(lines, "ingest_summary")[0]
    assert summary["level"] == "ERROR" and summary["candles_added"] == 1500
    check_dataset(bucket, fake.truth())


def test_out_of_time_during_a_retry_back_off_keeps_what_was_written(binance_fake, s3, lambda_env, capsys, sleeps):
    fake = binance_fake(synthetic_klines(T0, 1600))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url)
    close_through(fake, 1500)
    fake.inject("429", at=1, retry_after=50)  # 60 s left: a 50 s wait would cross the 30 s margin
    summary, _ = invoke(fake, capsys, FakeContext(budget_ms=60_000))
    assert summary["series"][0]["status"] == "out_of_time" and summary["candles_added"] == 1000
    assert sleeps == []
    check_dataset(bucket, fake.truth().iloc[:1000])


# --------------------------------------------------------------------------- the series lock

def _put_lock(aws, bucket: str, expires_ms: int) -> None:
    aws.client("s3").put_object(Bucket=bucket, Key="locks/symbol=BTCUSDT/interval=15m.json",
                                Body=json.dumps({"owner": "other", "expires_ms": expires_ms}).encode())


def test_a_live_lock_skips_the_series_and_a_stale_one_is_taken_over(binance_fake, s3, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 600))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url)
    close_through(fake, 500)
    _put_lock(aws, bucket, expires_ms=2**62)
    summary, _ = invoke(fake, capsys)
    assert summary["series"][0]["status"] == "locked" and fake.klines_log(None) == []
    assert wr.s3.list_objects(f"s3://{bucket}/locks/")  # not ours: left alone
    _put_lock(aws, bucket, expires_ms=0)  # its holder died long ago
    summary, _ = invoke(fake, capsys)
    assert summary["series"][0]["status"] == "caught_up" and summary["candles_added"] == 500
    check_dataset(bucket, fake.truth())


# --------------------------------------------------------------------------- environment

def test_missing_bucket_name_is_a_clear_error(monkeypatch, lambda_env, capsys):
    lambda_env("b", "http://127.0.0.1:9")
    monkeypatch.delenv("BUCKET_NAME")
    ingest.settings.cache_clear()
    with pytest.raises(ingest.SettingsError, match="BUCKET_NAME is not set"):
        ingest.handler(scheduled_event(T0), FakeContext())
    line = of(log_lines(capsys), "ingest_config_error")[0]
    assert line["level"] == "ERROR" and "BUCKET_NAME" in line["error"]
    monkeypatch.setenv("BUCKET_NAME", "my-bucket")  # an error is not cached: fixed without a cold start
    assert ingest.settings().bucket == "my-bucket"


def test_every_bad_variable_is_named():
    env = {"BUCKET_NAME": "s3://b/x", "SYMBOLS": "btc-usdt", "INTERVALS": "15m,7m", "HISTORY_START": "yesterday",
           "BINANCE_BASE_URL": "ftp://x", "MAX_PAGES_PER_RUN": "0", "CANDLES_PREFIX": "/abs"}
    with pytest.raises(ingest.SettingsError) as err:
        ingest.parse_settings(env)
    for name in ("BUCKET_NAME", "SYMBOLS", "'7m'", "HISTORY_START", "BINANCE_BASE_URL", "MAX_PAGES_PER_RUN",
                 "CANDLES_PREFIX"):
        assert name in str(err.value)
    with pytest.raises(ingest.SettingsError, match="SYMBOLS is not set.*INTERVALS is not set.*HISTORY_START"):
        ingest.parse_settings({"BUCKET_NAME": "b"})


def test_settings_are_parsed_like_the_stack_sets_them():
    cfg = ingest.parse_settings({"BUCKET_NAME": "data-bucket", "CANDLES_PREFIX": "candles", "RAW_PREFIX": "raw/",
                                 "SYMBOLS": "BTCUSDT, ETHUSDT", "INTERVALS": "15m,1h", "HISTORY_START": "2017-08-17",
                                 "BINANCE_BASE_URL": "https://data-api.binance.vision/", "MAX_PAGES_PER_RUN": "200"})
    assert cfg.candles_root == "s3://data-bucket/candles/"
    assert cfg.symbols == ("BTCUSDT", "ETHUSDT") and cfg.intervals == ("15m", "1h")
    assert cfg.history_start == 1_502_928_000_000 and cfg.max_pages_per_run == 200
    assert cfg.base_url == "https://data-api.binance.vision"
    assert cfg.raw_key("BTCUSDT", "15m", 1, 2) == raw_batch_key("BTCUSDT", "15m", 1, 2)


# --------------------------------------------------------------------------- the deployed bundle

def _bundle_modules() -> tuple[str, ...]:
    """ENGINE_MODULES from stacks/ingest_stack.py, read without importing aws_cdk."""
    tree = ast.parse((REPO / "stacks" / "ingest_stack.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ENGINE_MODULES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("ENGINE_MODULES not found in stacks/ingest_stack.py")


def test_handler_imports_only_what_the_lambda_bundle_holds(tmp_path):
    """Copy what CODE_EXCLUDE keeps (lambdas/ingest/, ENGINE_MODULES, engine/data/) and import the handler
    there, with the packages the runtime lacks made unimportable."""
    for rel in _bundle_modules():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "engine" / "data", tmp_path / "engine" / "data", ignore=ignore)
    shutil.copytree(REPO / "lambdas" / "ingest", tmp_path / "lambdas" / "ingest", ignore=ignore)
    probe = f"""
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
h = importlib.import_module("lambdas/ingest/handler".replace("/", "."))  # how the runtime resolves HANDLER
assert callable(h.handler)
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


# --------------------------------------------------------------------------- 418 ban, metrics, the lock's prefix

def _emf(line: dict) -> list[dict]:
    return line["_aws"]["CloudWatchMetrics"]


def test_a_418_stores_blocked_until_and_invocations_skip_until_then(binance_fake, s3, lambda_env, capsys,
                                                                    monkeypatch):
    from engine.storage_layout import BLOCKED_KEY

    fake = binance_fake(synthetic_klines(T0, 1600))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url)
    monkeypatch.setattr(ingest, "CLOCK", fake.clock)
    close_through(fake, 1500)
    fake.inject("418", at=1, retry_after=600)
    with pytest.raises(BinanceBlocked):
        ingest.handler(scheduled_event(fake.now_ms), FakeContext())
    banned_at = fake.now_ms
    ban = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=BLOCKED_KEY)["Body"].read())
    assert (ban["blocked_until"], ban["http_status"], ban["retry_after_s"]) == (banned_at + 600_000, 418, 600)
    log_lines(capsys)
    check_dataset(bucket, fake.truth().iloc[:1000])

    # Five minutes later (Lambda's own retry, or the next schedule): Binance is not asked at all.
    fake.advance(300)
    requests = len(fake.log)
    summary = ingest.handler(scheduled_event(fake.now_ms), FakeContext())
    assert len(fake.log) == requests
    lines = log_lines(capsys)
    skip = of(lines, "ingest_blocked_skip")[0]
    assert (skip["level"], skip["blocked_until"], skip["http_status"]) == ("WARNING", banned_at + 600_000, 418)
    assert _emf(skip) == [{"Namespace": "Backtest/Ingest", "Dimensions": [[]],
                           "Metrics": [{"Name": "BlockedSkips", "Unit": "Count"}]}]
    assert skip["BlockedSkips"] == 1
    series = of(lines, "ingest_series")[0]
    assert series["status"] == "blocked" and series["watermark_after"] == T0 + 999 * IV
    # The lag metric still reports: 1500 - 1000 candles plus the 7 minutes into candle 1500, plus 5 minutes.
    assert series["WatermarkAgeSeconds"] == 500 * 900 + 7 * 60 + 300
    assert summary["blocked_until"] == banned_at + 600_000 and summary["complete"] is False

    # After the ban: the next invocation ingests again.
    fake.advance(301)
    summary, line = invoke(fake, capsys)
    assert (line["status"], summary["candles_added"]) == ("caught_up", len(fake.truth()) - 1000)
    check_dataset(bucket, fake.truth())


def test_watermark_age_is_an_emf_metric_per_series(binance_fake, s3, lambda_env, capsys, monkeypatch):
    fake = binance_fake(synthetic_klines(T0, 600))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url, INTERVALS="15m,1h")  # the fake serves 15m only: 1h fails
    monkeypatch.setattr(ingest, "CLOCK", fake.clock)
    close_through(fake, 500)
    with pytest.raises(ingest.IngestFailed):
        ingest.handler(scheduled_event(fake.now_ms), FakeContext())
    lines = of(log_lines(capsys), "ingest_series")
    ok = next(x for x in lines if x["interval"] == "15m")
    assert _emf(ok) == [{"Namespace": "Backtest/Ingest", "Dimensions": [["Symbol", "Interval"]],
                         "Metrics": [{"Name": "WatermarkAgeSeconds", "Unit": "Seconds"}]}]
    assert (ok["Symbol"], ok["Interval"]) == ("BTCUSDT", "15m")
    assert ok["WatermarkAgeSeconds"] == 7 * 60  # candle 499 closed when candle 500 opened, 7 minutes ago
    assert ok["_aws"]["Timestamp"] == fake.now_ms
    failed = next(x for x in lines if x["interval"] == "1h")
    assert failed["status"] == "error" and "_aws" not in failed  # no watermark read: no value rather than a wrong one


def test_the_lease_lives_under_locks_and_never_breaks_a_dataset_read(binance_fake, s3, lambda_env, capsys):
    fake = binance_fake(synthetic_klines(T0, 2500))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url, MAX_PAGES_PER_RUN="5")
    close_through(fake, 2400)
    seen: list = []

    def during(index):  # while the lease is held, with one page stored
        if index == 1:
            client = aws.client("s3")
            keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
            key = "locks/symbol=BTCUSDT/interval=15m.json"
            lease = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            rows = len(wr.s3.read_parquet(f"s3://{bucket}/candles/", dataset=True))
            seen.append((keys, lease, rows))

    fake.on_klines = during
    ctx = FakeContext()
    summary, _ = invoke(fake, capsys, ctx)
    fake.on_klines = None
    keys, lease, rows = seen[0]
    assert "locks/symbol=BTCUSDT/interval=15m.json" in keys
    assert all(k.endswith(".parquet") for k in keys if k.startswith("candles/"))
    assert lease["owner"] == ctx.aws_request_id and lease["command"] == "ingest Lambda"
    assert rows == 1000
    assert summary["candles_added"] == 2400
    check_dataset(bucket, fake.truth())


def test_an_interrupted_s3_write_is_merged_by_the_next_holder(binance_fake, s3, lambda_env, capsys):
    """A kill between writing a month's new file and deleting the old one leaves two files; readers
    de-duplicate and the next invocation merges them (nothing lost, nothing doubled)."""
    fake = binance_fake(synthetic_klines(T0, 1200))
    aws, bucket = s3
    lambda_env(bucket, fake.base_url)
    close_through(fake, 1100)
    invoke(fake, capsys)
    client = aws.client("s3")
    month = "candles/symbol=BTCUSDT/interval=15m/year=2024/month=01/"
    (key,) = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=month)["Contents"]]
    client.copy_object(Bucket=bucket, Key=month + "part-00000000000000000000-leftover.snappy.parquet",
                       CopySource={"Bucket": bucket, "Key": key})
    assert_same(stored(f"s3://{bucket}/candles/"), fake.truth())  # readers see no duplicate
    close_through(fake, 1150)
    invoke(fake, capsys)
    assert len(client.list_objects_v2(Bucket=bucket, Prefix=month)["Contents"]) == 1
    check_dataset(bucket, fake.truth())
