"""The series lock: two real writer processes on one series, a holder that dies, a writer that gives up,
the litter of an interrupted write, and the S3 lease shared by ``data fetch --out s3://`` and the Lambda."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from engine.data.dataset import upsert_candles
from engine.data.fetch import fetch_candles
from engine.data.series_lock import LocalSeriesLock, LockLost, S3Lease, SeriesLocked, acquire, hold_series
from fakes.candles import assert_same, stored, synthetic_klines
from fakes.moto_server import aws, moto_aws  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
IV = 900_000
LOCK_REL = "_locks/symbol=BTCUSDT/interval=15m.lock"


def _cli(*argv, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "backtest_cli", *map(str, argv)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fetch_argv(out, fake, start="2024-01-01", *extra):
    return ["data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", start, "--out", out,
            "--base-url", fake.base_url, *extra]


class Lines:
    """Collects a process's stderr lines on a thread; ``wait_for(words)`` blocks until one holds them."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, words: str, timeout: float = 60) -> str | None:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                hit = next((x for x in self.lines if words in x), None)
                if hit or self._done or time.monotonic() > end:
                    return hit
                self._cond.wait(0.1)

    def text(self, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        with self._cond:
            while not self._done and time.monotonic() < end:
                self._cond.wait(0.1)
            return "".join(self.lines)


def _overlap(fake, first_argv, second_argv, env=None):
    """Run two writers so they overlap for sure: the first is held inside its first klines request
    (holding the series lock) until the second has said it is waiting for the lock."""
    entered, release = threading.Event(), threading.Event()

    first = len(fake.klines_log(None))  # request indexes run on across rounds

    def hold_first(index):
        if index == first:
            entered.set()
            release.wait(60)

    fake.on_klines = hold_first
    a = _cli(*first_argv, env=env)
    a_err = Lines(a.stderr)
    try:
        assert entered.wait(60), a_err.text(1)
        b = _cli(*second_argv, env=env)
        b_err = Lines(b.stderr)
        waiting = b_err.wait_for("waiting for the series lock")
    finally:
        release.set()
        fake.on_klines = None
    a_out, _ = a.communicate(timeout=120)
    b_out, _ = b.communicate(timeout=120)
    assert a.returncode == 0, a_err.text()
    assert b.returncode == 0, b_err.text()
    assert waiting is not None, b_err.text()
    assert f"held by pid {a.pid}" in waiting
    return a_out, b_out


def test_two_writer_processes_never_lose_a_candle(binance_fake, tmp_path):
    """Repeated, with different writers each round; the dataset always equals the truth."""
    k = synthetic_klines(T0, 4500)
    fake = binance_fake(k)
    truth = fake.truth()
    csv = tmp_path / "late.csv"
    late = truth.iloc[2000:3600]  # round 3's build: January and February (same values as the exchange's)
    late.assign(ignore=0).to_csv(csv, header=False, index=False, float_format="%.8f")

    # Round 1: the same fetch twice. The second finds the work done: it asks only for the tail.
    out = tmp_path / "r1"
    _overlap(fake, _fetch_argv(out, fake), _fetch_argv(out, fake))
    assert_same(stored(out), truth)

    # Round 2: one writer fills the tail, the other an earlier head range at the same time.
    out = tmp_path / "r2"
    upsert_candles(str(out), "BTCUSDT", "15m", truth.iloc[1500:2500])
    _overlap(fake, _fetch_argv(out, fake, "2024-01-16"), _fetch_argv(out, fake, "2024-01-01"))
    assert_same(stored(out), truth)

    # Round 3: a fetch and a build of the same months at once.
    out = tmp_path / "r3"
    _overlap(fake, _fetch_argv(out, fake, "2024-01-01", "--end", "2024-02-01"),
             ["data", "build", "--input", csv, "--symbol", "BTCUSDT", "--interval", "15m", "--out", out])
    assert_same(stored(out), truth.iloc[:3600])  # January from the fetch, the rest of the file from the build
    assert not list(out.rglob("*.tmp"))


def test_a_second_writer_gives_up_after_the_lock_timeout(binance_fake, tmp_path):
    fake = binance_fake(synthetic_klines(T0, 500))
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", fake.truth().iloc[:100])
    before = stored(tmp_path)
    held = LocalSeriesLock(tmp_path, "BTCUSDT", "15m", command="test holder")
    assert held.try_acquire()
    try:
        started = time.monotonic()
        proc = _cli(*_fetch_argv(tmp_path, fake, "2024-01-01", "--lock-timeout", "1"))
        _, err = proc.communicate(timeout=60)
    finally:
        held.release()
    assert proc.returncode == 2
    lines = err.splitlines()
    assert lines[0].startswith("note: waiting for the series lock on BTCUSDT 15m in ")
    assert lines[1].startswith("error: ") and f"still locked by pid {os.getpid()}" in lines[1]
    assert "test holder" in lines[1] and "after 1 s; nothing was written" in lines[1] and len(lines) == 2
    assert time.monotonic() - started < 30  # it gave up instead of waiting on
    assert fake.klines_log(None) == []
    assert_same(stored(tmp_path), before)


def test_a_holder_killed_by_sigkill_does_not_block_the_next_writer(tmp_path):
    code = ("import sys, time; from engine.data.series_lock import LocalSeriesLock; "
            f"lock = LocalSeriesLock({str(tmp_path)!r}, 'BTCUSDT', '15m', command='doomed'); "
            "assert lock.try_acquire(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    other = LocalSeriesLock(tmp_path, "BTCUSDT", "15m")
    assert not other.try_acquire()
    assert other.holder()["pid"] == proc.pid and other.holder()["command"] == "doomed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    acquire(other, wait=5)  # the kernel released the dead holder's lock
    assert other.holder()["pid"] == os.getpid()
    other.release()
    assert other.holder() is None  # a released lock names no holder


def test_waiting_is_bounded_and_names_the_holder(tmp_path):
    a = LocalSeriesLock(tmp_path, "BTCUSDT", "15m", command="data fetch")
    assert a.try_acquire()
    said: list[str] = []
    with pytest.raises(SeriesLocked, match=rf"still locked by pid {os.getpid()} .*data fetch.* after 0.3 s"):
        acquire(LocalSeriesLock(tmp_path, "BTCUSDT", "15m"), wait=0.3, on_wait=said.append)
    assert len(said) == 1 and "waiting for the series lock" in said[0]
    assert LocalSeriesLock(tmp_path, "BTCUSDT", "1h").try_acquire()  # another series is free
    a.release()


def test_litter_of_an_interrupted_write_is_removed_by_the_next_writer(binance_fake, tmp_path):
    fake = binance_fake(synthetic_klines(T0, 1500))
    fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    part = tmp_path / "symbol=BTCUSDT/interval=15m/year=2024/month=01"
    litter = [part / ".part-0.parquet.4242.deadbeef.tmp",
              tmp_path / "_meta/symbol=BTCUSDT/interval=15m/.outages.json.1.x.tmp"]
    for p in litter:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"PAR1 half")
    with hold_series(str(tmp_path), "BTCUSDT", "15m"):
        assert not any(p.exists() for p in litter)
    assert_same(stored(tmp_path), fake.truth())


def test_dataset_readers_skip_the_lock_and_outage_files(binance_fake, tmp_path):
    k = synthetic_klines(T0, 1500)
    fake = binance_fake(k.drop(index=range(200, 210)))  # an exchange outage: recorded in _meta/
    fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    assert (tmp_path / LOCK_REL).is_file() and (tmp_path / "_meta/symbol=BTCUSDT/interval=15m/outages.json").is_file()
    with hold_series(str(tmp_path), "BTCUSDT", "15m"):  # held while reading, too
        table = ds.dataset(tmp_path, partitioning="hive").to_table()
        assert table.num_rows == len(fake.truth()) and len(pd.read_parquet(tmp_path)) == len(fake.truth())


# --------------------------------------------------------------------------- S3

@pytest.fixture
def s3_bucket(data_aws):
    boto3.client("s3").create_bucket(Bucket="lease-bucket")
    return boto3.client("s3")


def _lease(client, **kw) -> S3Lease:
    return S3Lease(client, "lease-bucket", "locks/symbol=BTCUSDT/interval=15m.json", **kw)


def test_s3_lease_excludes_expires_and_is_taken_over(s3_bucket):
    a = _lease(s3_bucket, command="data fetch")
    assert a.try_acquire()
    b = _lease(s3_bucket)
    assert not b.try_acquire()
    assert b.holder()["owner"] == a.owner and b.holder()["command"] == "data fetch"
    a.release()
    assert "Contents" not in s3_bucket.list_objects_v2(Bucket="lease-bucket")
    # A holder that died: its lease has run out, the next writer takes it over; the old one may not write.
    dead = _lease(s3_bucket, ttl_ms=lambda: 0)
    assert dead.try_acquire()
    assert b.try_acquire()
    with pytest.raises(LockLost, match="lost the series lease"):
        dead.check()
    dead.release()  # must not delete b's lease
    assert json.loads(s3_bucket.get_object(Bucket="lease-bucket", Key=b.key)["Body"].read())["owner"] == b.owner
    b.release()


def test_s3_lease_is_renewed_while_held(s3_bucket):
    a = _lease(s3_bucket, ttl_ms=lambda: 300, renew_every=0.05)
    assert a.try_acquire()
    time.sleep(1.0)  # three lease lengths: only renewal keeps it
    a.check()
    assert not _lease(s3_bucket).try_acquire()
    a.release()
    assert _lease(s3_bucket).try_acquire()


def test_cli_fetch_to_s3_takes_the_lambdas_lease(binance_fake, aws, tmp_path):  # noqa: F811
    import awswrangler as wr

    fake = binance_fake(synthetic_klines(T0, 1200))
    bucket = aws.new_bucket("cli-lease")
    s3 = aws.client("s3")
    key = "locks/symbol=BTCUSDT/interval=15m.json"
    env = aws.subprocess_env()
    # A live lease as the Lambda writes it: the CLI waits, then gives up without writing.
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"owner": "lambda-request-1", "command": "ingest Lambda",
                                                           "expires_ms": 2 ** 62}).encode())
    proc = _cli(*_fetch_argv(f"s3://{bucket}/candles/", fake, "2024-01-01", "--lock-timeout", "1"), env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "still locked by lambda-request-1, ingest Lambda" in err.splitlines()[-1]
    assert fake.klines_log(None) == [] and "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="candles/")
    # Free: during the fetch its own lease is at the same key, and the dataset reads fine beside it.
    s3.delete_object(Bucket=bucket, Key=key)
    seen = []

    def look(index):
        if index == 1:
            seen.append(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    fake.on_klines = look
    proc = _cli(*_fetch_argv(f"s3://{bucket}/candles/", fake), env=env)
    out, err = proc.communicate(timeout=120)
    fake.on_klines = None
    assert proc.returncode == 0, err
    assert seen and seen[0]["command"] == "data fetch" and seen[0]["expires_ms"] > seen[0]["acquired_ms"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="locks/")  # released
    wr.config.s3_endpoint_url = aws.endpoint
    try:
        df = wr.s3.read_parquet(f"s3://{bucket}/candles/", dataset=True)
    finally:
        wr.config.reset("s3_endpoint_url")
    assert len(df) == len(fake.truth()) and np.array_equal(np.sort(df.open_time), fake.truth().open_time)
