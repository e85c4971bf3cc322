"""The ingest keeps a perp symbol's three series current (``-c perpSymbols=...``): trade klines, mark
klines and funding, each under its own S3 lease, on moto with a fake /fapi server and a simulated clock.

The units come from the stack's own settings (stacks/config.py), so what the schedule would send is
what runs here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # lambdas/ is deployed code, not an installed package
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from engine.data.funding_table import read_funding  # noqa: E402
from fakes.candles import assert_same, stored  # noqa: E402
from fakes.ingest_aws import ingest_aws  # noqa: E402,F401  (fixture)
from fakes.moto_server import aws, moto_aws  # noqa: E402,F401  (fixtures)
from fakes.perp_market import FakeFapi, perp_truth  # noqa: E402
from fakes.sqs_esm import FakeContext, FakeEventSourceMapping  # noqa: E402
from lambdas.ingest import dispatcher, runtime, worker  # noqa: E402
from stacks.config import IngestSettings  # noqa: E402

MIN = 60_000
T0 = 1_704_067_200_000           # 2024-01-01 00:00 UTC
HISTORY = T0 - 3 * 1440 * MIN    # three days of history before T0


@pytest.fixture
def perp_ingest(ingest_aws, monkeypatch):
    truth = perp_truth(HISTORY, 4 * 96, "15m")  # up to T0 + 1 day
    fake = FakeFapi(truth, now_ms=T0 + MIN).start()
    for k, v in ingest_aws.env("http://127.0.0.1:9", HISTORY_START=str(HISTORY),
                               BINANCE_FAPI_BASE_URL=fake.base_url).items():
        monkeypatch.setenv(k, v)
    runtime.settings.cache_clear()
    monkeypatch.setattr(runtime, "CLOCK", fake.clock)
    lines: list[dict] = []
    real_log = runtime.log
    monkeypatch.setattr(runtime, "log", lambda level, event, **f: (lines.append({"event": event, **f}),
                                                                    real_log(level, event, **f)))
    esm = FakeEventSourceMapping(ingest_aws.aws.client("sqs"), ingest_aws.queue_url, worker.handler,
                                 max_concurrency=3, context=lambda record: FakeContext(budget_ms=120_000))
    yield ingest_aws, fake, truth, esm, lines
    esm.close()
    fake.stop()


def test_perp_symbols_are_ingested_as_three_units_with_their_own_leases(perp_ingest):
    env, fake, truth, esm, lines = perp_ingest
    settings = IngestSettings(symbols=("BTCUSDT",), intervals=("15m",), perp_symbols=("BTCUSDT",))
    event = settings.schedule_input("ingest")
    assert [(g["market"], g["kind"]) for g in event["series"]] == [
        ("spot", "klines"), ("um", "klines"), ("um", "mark"), ("um", "funding")]
    event["series"] = event["series"][1:]  # this fake serves /fapi only
    bucket = env.bucket

    def run_slot(now_ms: int) -> dict:
        fake.set_time(now_ms)
        summary = dispatcher.handler(event, FakeContext(60_000))
        esm.drain()
        return summary

    first = run_slot(T0 + MIN)
    assert first["dispatched"] == 3
    units = [x for x in lines if x["event"] == "ingest_unit"]
    assert sorted((u["kind"], u["status"]) for u in units) == [
        ("funding", "caught_up"), ("klines", "caught_up"), ("mark", "caught_up")]
    closed = lambda df: df.loc[df["open_time"] + 15 * MIN <= T0 + MIN].reset_index(drop=True)  # noqa: E731
    assert_same(stored(f"s3://{bucket}/um/candles/"), closed(truth["klines"]))
    assert_same(stored(f"s3://{bucket}/um/mark/"), closed(truth["mark"]))
    f = truth["funding"]
    f = f.loc[f["funding_time"] <= T0 + MIN].reset_index(drop=True)
    got = read_funding(f"s3://{bucket}/um/funding/", "BTCUSDT")
    assert got["funding_time"].tolist() == f["funding_time"].tolist()
    assert np.array_equal(got["funding_rate"].to_numpy(), np.round(f["funding_rate"].to_numpy(), 8))
    s3 = env.aws.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert any(k.startswith("um/raw/symbol=BTCUSDT/interval=15m/") for k in keys)
    assert any(k.startswith("um/raw/mark/symbol=BTCUSDT/interval=15m/") for k in keys)
    assert not any(k.startswith(("candles/", "raw/", "locks/symbol=")) for k in keys)  # nothing as spot
    assert not any(k.startswith("um/locks/") for k in keys)  # every lease released
    index = env.index()
    assert set(index) == {"um#klines#BTCUSDT#15m", "um#mark#BTCUSDT#15m", "um#funding#BTCUSDT#-"}
    assert index["um#funding#BTCUSDT#-"]["watermark_ms"] == T0 + MIN  # known complete up to the run

    # The next slot, 15 minutes later (hand computation, lambdas/ingest/lag.py): klines and mark stored
    # up to the candle opened at T0 - 15m, so their first missing candle (T0 .. T0 + 15m) closed a minute
    # before T0 + 16m: 60 s. Funding was known complete at T0 + 1m: (16 - 1 - 15) min = 0 s.
    second = run_slot(T0 + 16 * MIN)
    assert second["oldest_age_s"] == 60.0 and second["dispatched"] == 3
    # A lease held by another writer: that unit alone reports "locked" and writes nothing.
    s3.put_object(Bucket=bucket, Key="um/locks/funding/symbol=BTCUSDT.json",
                  Body=json.dumps({"owner": "someone", "expires_ms": T0 + 10 ** 9}).encode())
    lines.clear()
    run_slot(T0 + 31 * MIN)
    status = {u["kind"]: u["status"] for u in lines if u["event"] == "ingest_unit"}
    assert status == {"klines": "caught_up", "mark": "caught_up", "funding": "locked"}


def test_a_lagging_funding_table_is_described_in_funding_intervals_not_candles(perp_ingest):
    """The digest's age of a funding unit is in hours and in the symbol's own funding interval (here 1h
    since T0 - 1 day, perp_truth), never in candles; the klines units beside it keep the candle wording."""
    env, fake, truth, esm, lines = perp_ingest
    settings = IngestSettings(symbols=("BTCUSDT",), intervals=("15m",), perp_symbols=("BTCUSDT",))
    event = settings.schedule_input("ingest")
    event["series"] = event["series"][1:]
    s3 = env.aws.client("s3")

    def run_slot(now_ms: int) -> None:
        fake.set_time(now_ms)
        dispatcher.handler(event, FakeContext(60_000))
        esm.drain()

    run_slot(T0 + MIN)
    assert env.index()["um#funding#BTCUSDT#-"]["funding_interval_h"] == 1  # the newest event's interval
    env.digests()
    # Another writer holds the funding lease from now on: the table stays known complete up to T0 + 1m.
    s3.put_object(Bucket=env.bucket, Key="um/locks/funding/symbol=BTCUSDT.json",
                  Body=json.dumps({"owner": "someone", "expires_ms": T0 + 10 ** 9}).encode())
    # At T0 + 3h 16m (hand computation, lag.py): funding's age is 3h 16m - 1m - 15m = 3 h = three 1h
    # intervals; the klines' first missing candle (T0 .. T0 + 15m) closed 3h 01m = 181 min before.
    run_slot(T0 + 196 * MIN)
    (digest,) = env.digests()
    by_kind = {line.split(" ")[2]: line for line in digest["message"].splitlines() if line.startswith("- um ")}
    assert by_kind["funding"].startswith(
        "- um funding BTCUSDT: funding table last known complete 3.0 h ago (3.0 of its 1h funding intervals: "
        "about 3 event(s) missed); complete up to 2024-01-01 00:01")
    assert "candle" not in by_kind["funding"]
    assert by_kind["klines"].startswith("- um klines BTCUSDT 15m: first missing candle closed 181 min ago")


def test_funding_lag_wording_for_an_8h_symbol():
    from lambdas.ingest.lag import describe_age

    # 4 h behind on an 8h symbol: half an interval, the next event may not even be due yet
    assert describe_age("funding", 4 * 3_600_000, 8) == (
        "funding table last known complete 4.0 h ago (0.5 of its 8h funding interval; the next event may "
        "still be inside it)")
    assert describe_age("funding", 90 * 60_000, None) == (
        "funding table last known complete 1.5 h ago (funding interval not known yet)")
    assert describe_age("mark", 16 * 60_000) == "first missing candle closed 16 min ago"
