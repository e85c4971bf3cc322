"""The ingest fan-out end to end on moto (S3, DynamoDB, SQS, SNS) with a fake Binance market.

The dispatcher and worker handlers are called for real; moto's Lambda runs no code, so
tests/fakes/sqs_esm.py plays the SQS event source mapping (batch size 1, at most
``ingestConcurrency`` invocations at once) over the real moto queue, whose redrive policy moves
a message to the dead-letter queue after ``maxReceiveCount`` receives. Time is simulated: the
fake exchange, the functions' clock and the Lambda contexts share one clock.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # lambdas/ is deployed code, not an installed package
    sys.path.insert(0, str(REPO))

import awswrangler as wr  # noqa: E402

from engine.storage_layout import blocked_key  # noqa: E402
from fakes.binance_market import FakeBinanceMarket  # noqa: E402
from fakes.candles import assert_same, stored, synthetic_klines  # noqa: E402
from fakes.ingest_aws import ingest_aws  # noqa: E402,F401  (fixture)
from fakes.moto_server import aws, moto_aws  # noqa: E402,F401  (fixtures)
from fakes.sqs_esm import FakeContext, FakeEventSourceMapping  # noqa: E402
from lambdas.ingest import dispatcher, lag, runtime, worker  # noqa: E402
from lambdas.ingest.units import SeriesGroup, schedule_input  # noqa: E402

MIN = 60_000
T0 = 1_704_067_200_000           # 2024-01-01 00:00 UTC
HISTORY = T0 - 4 * 1440 * MIN    # 2023-12-28: 384 candles of 15m, 1,152 of 5m before T0
CONCURRENCY = 5


def slot(k: int) -> int:
    """The k-th ingest dispatch after T0: one minute after each quarter hour (:01, :16, :31, :46)."""
    return T0 + k * 15 * MIN + MIN


class Ingest:
    """The deployed ingest in miniature: dispatcher, queue, worker pool, one simulated clock."""

    def __init__(self, env, fake: FakeBinanceMarket, groups: list[SeriesGroup]):
        self.env, self.fake, self.groups = env, fake, groups
        self.lines: list[dict] = []
        self.contexts: dict[str, FakeContext] = {}  # by symbol, of the invocation running it
        self.after_unit = None
        sqs = env.aws.client("sqs")
        self.esm = FakeEventSourceMapping(sqs, env.queue_url, self._worker, max_concurrency=CONCURRENCY,
                                          context=self._context)

    def _context(self, record: dict) -> FakeContext:
        import json

        ctx = FakeContext(budget_ms=120_000)
        self.contexts[json.loads(record["body"])["symbol"]] = ctx
        return ctx

    def _worker(self, event, context):
        answer = worker.handler(event, context)
        if self.after_unit is not None:
            self.after_unit(event)
        return answer

    def dispatch(self, task: str = "ingest") -> dict:
        return dispatcher.handler(schedule_input(task, self.groups), FakeContext(60_000))

    def run_slot(self, now_ms: int, task: str = "ingest") -> dict:
        self.fake.set_time(now_ms)
        summary = self.dispatch(task)
        self.esm.drain()
        return summary

    def of(self, event: str, **match) -> list[dict]:
        return [x for x in self.lines if x["event"] == event and all(x.get(k) == v for k, v in match.items())]


@pytest.fixture
def make_ingest(ingest_aws, monkeypatch):
    started = []

    def make(series: dict, groups: list[SeriesGroup], **env_over: str) -> Ingest:
        fake = FakeBinanceMarket(series, now_ms=T0).start()
        started.append(fake)
        for k, v in ingest_aws.env(fake.base_url, HISTORY_START=str(HISTORY), **env_over).items():
            monkeypatch.setenv(k, v)
        runtime.settings.cache_clear()
        monkeypatch.setattr(runtime, "CLOCK", fake.clock)
        ingest = Ingest(ingest_aws, fake, groups)
        started.append(ingest.esm)
        real_log = runtime.log
        lock = threading.Lock()

        def log(level, event, **fields):
            with lock:
                ingest.lines.append({"level": level, "event": event, **fields})
            real_log(level, event, **fields)

        monkeypatch.setattr(runtime, "log", log)
        return ingest

    yield make
    for thing in started:  # fake servers and event source mappings
        thing.stop() if isinstance(thing, FakeBinanceMarket) else thing.close()


def klines(symbol_seed: int, interval: str, days_after: int = 2):
    n = (4 + days_after) * 1440 * MIN // {"5m": 5 * MIN, "15m": 15 * MIN, "1h": 60 * MIN}[interval]
    return synthetic_klines(HISTORY, n, interval=interval, seed=symbol_seed)


def watermark_of(fake: FakeBinanceMarket, symbol: str, interval: str) -> int:
    return int(fake.truth(symbol, interval)["open_time"].iloc[-1])


# --------------------------------------------------------------------------- many series

# 16 good series, a slow one and a poisoned one: 18 messages, so two receives of 10, more series than worker slots
# (every slot busy while the slow one holds its own). (50 series, then 24, took 21 s and 9 s of CPU, ~0.3 s each on
# moto, and checked nothing more.)
SYMBOLS = 8


def test_many_series_fan_out_one_failing_one_slow(make_ingest, capsys):
    symbols = [f"S{i:02d}USDT" for i in range(SYMBOLS)]
    series = {(s, iv): klines(i * 7 + j, iv) for i, s in enumerate(symbols) for j, iv in enumerate(("15m", "1h"))}
    series[("SLOWUSDT", "5m")] = klines(99, "5m")
    series[("FAILUSDT", "15m")] = klines(98, "15m")
    groups = [SeriesGroup("spot", "klines", tuple(symbols), ("15m", "1h")),
              SeriesGroup("spot", "klines", ("SLOWUSDT",), ("5m",)),
              SeriesGroup("spot", "klines", ("FAILUSDT",), ("15m",))]
    ing = make_ingest(series, groups)
    good = [(s, iv) for s in symbols for iv in ("15m", "1h")]
    total = len(good) + 2
    ing.fake.fail["FAILUSDT"] = 400  # Binance refuses it every time: a poisoned series

    # The slow series' first request is answered only once every good series has been stored, and
    # takes 100 s of its 120 s budget: were the series run one after another, this would deadlock.
    others_done, waited = threading.Event(), []
    done: set = set()

    def count(event):
        import json

        body = json.loads(event["Records"][0]["body"])
        if (body["symbol"], body["interval"]) in good:
            done.add((body["symbol"], body["interval"]))
            if len(done) == len(good):
                others_done.set()

    def slow(entry):
        waited.append(others_done.wait(60))
        ing.contexts["SLOWUSDT"].advance(100_000)

    ing.after_unit, ing.fake.slow["SLOWUSDT"] = count, slow

    summary = ing.run_slot(slot(0))
    assert summary["dispatched"] == total and summary["units"] == total
    assert waited == [True]  # the slow series did not hold up the others
    assert ing.esm.most_at_once == CONCURRENCY  # bounded, and the bound was used
    idx = ing.env.index()
    for s, iv in good:
        assert idx[f"spot#klines#{s}#{iv}"]["watermark_ms"] == watermark_of(ing.fake, s, iv), (s, iv)
        assert idx[f"spot#klines#{s}#{iv}"]["status"] == "caught_up"
    for s, iv in good[:2] + good[-1:]:  # the datasets themselves, for a few
        assert_same(stored(f"s3://{ing.env.bucket}/candles/", s, iv), ing.fake.truth(s, iv))
    slow_unit = idx["spot#klines#SLOWUSDT#5m"]
    assert slow_unit["status"] == "out_of_time" and "error" not in slow_unit  # its time ran out: not a failure
    assert len(stored(f"s3://{ing.env.bucket}/candles/", "SLOWUSDT", "5m")) == 1000  # its first page is kept
    # The poisoned series: three attempts, then SQS moved it, alone, to the dead-letter queue.
    attempts = ing.of("ingest_unit", symbol="FAILUSDT")
    assert [a["receive_count"] for a in attempts] == [1, 2, 3] and {a["status"] for a in attempts} == {"error"}
    assert "DeadLettered" in attempts[-1] and all("DeadLettered" not in a for a in attempts[:2])
    assert [(m["symbol"], m["interval"]) for m in ing.env.dead_letters()] == [("FAILUSDT", "15m")]
    assert idx["spot#klines#FAILUSDT#15m"]["dead_lettered_ms"] == slot(0)

    # The next slot: everything but the poisoned series is current; the slow one caught up.
    del ing.fake.slow["SLOWUSDT"]
    ing.after_unit = None
    summary = ing.run_slot(slot(1))
    assert summary["dispatched"] == total - 1 and summary["skipped"]["quarantined"] == 1  # not every 15 minutes
    idx = ing.env.index()
    for s, iv in good + [("SLOWUSDT", "5m")]:
        assert idx[f"spot#klines#{s}#{iv}"]["watermark_ms"] == watermark_of(ing.fake, s, iv), (s, iv)
    assert_same(stored(f"s3://{ing.env.bucket}/candles/", "SLOWUSDT", "5m"), ing.fake.truth("SLOWUSDT", "5m"))
    assert len(ing.env.dead_letters()) == 1
    # Lag at this dispatch (read before its workers ran): SLOWUSDT was 1,000 of 1,152 closed 5m
    # candles in (its first missing candle closed at HISTORY + 1,001 x 5 min; a 5m candle always
    # waits up to 10 minutes for the next run, which the age does not count); FAILUSDT was first
    # sent 15 minutes earlier and never stored anything.
    slow_age = slot(1) - (HISTORY + 1001 * 5 * MIN) - 10 * MIN
    assert summary["oldest"] == "spot klines SLOWUSDT 5m" and summary["oldest_age_s"] == slow_age / 1000
    assert sorted(summary["lagging"]) == ["spot klines FAILUSDT 15m", "spot klines SLOWUSDT 5m"]
    (digest,) = ing.env.digests()
    assert digest["subject"] == "Backtest ingest: 2 series lagging"
    assert "spot klines FAILUSDT 15m" in digest["message"] and "Binance error -1121" in digest["message"]
    assert "spot klines SLOWUSDT 5m" in digest["message"]

    capsys.readouterr()


# --------------------------------------------------------------------------- 451

def test_a_451_leaves_the_marker_and_floods_nothing(make_ingest):
    symbols = ("AAAUSDT", "BBBUSDT", "CCCUSDT")
    ing = make_ingest({(s, "15m"): klines(i, "15m") for i, s in enumerate(symbols)},
                      [SeriesGroup("spot", "klines", symbols, ("15m",))])
    ing.fake.refuse = 451
    ing.run_slot(slot(0))
    units = ing.of("ingest_unit")
    assert {u["status"] for u in units} == {"geo_blocked"} and len(units) == 3
    assert all(u["GeoBlocked"] == 1 and u["level"] == "WARNING" for u in units)
    assert ing.env.dead_letters() == [] and ing.esm.invocations == 3  # nothing retried, nothing dead-lettered
    s3 = ing.env.aws.client("s3")
    import json

    marker = json.loads(s3.get_object(Bucket=ing.env.bucket, Key=blocked_key("spot"))["Body"].read())
    assert (marker["kind"], marker["http_status"], marker["base_url"]) == ("geo-blocked", 451, ing.fake.base_url)
    assert marker["blocked_until"] == slot(0) + 3600_000

    # The next slots skip Binance at the dispatcher: no message, no request, the GeoBlocked metric.
    asked = len(ing.fake.log)
    summary = ing.run_slot(slot(1))
    assert (summary["dispatched"], summary["skipped"]["blocked"]) == (0, 3)
    assert len(ing.fake.log) == asked and ing.esm.invocations == 3
    assert ing.of("ingest_dispatch")[-1]["GeoBlocked"] == 1

    # An hour on, the dispatcher asks again; Binance now answers, and the series catch up.
    ing.fake.refuse = None
    summary = ing.run_slot(slot(4) + 1)
    assert summary["dispatched"] == 3
    for s in symbols:
        assert_same(stored(f"s3://{ing.env.bucket}/candles/", s, "15m"), ing.fake.truth(s, "15m"))


def test_a_418_is_remembered_until_its_retry_after(make_ingest):
    ing = make_ingest({("AAAUSDT", "15m"): klines(1, "15m")}, [SeriesGroup("spot", "klines", ("AAAUSDT",), ("15m",))])
    ing.fake.refuse = 418
    ing.run_slot(slot(0))
    (unit,) = ing.of("ingest_unit")
    assert (unit["status"], unit["BlockedSkips"], unit["http_status"]) == ("blocked", 1, 418)
    assert ing.env.dead_letters() == []
    summary = ing.run_slot(slot(1))  # the ban (15 minutes without Retry-After) still runs at :16
    assert summary["skipped"]["blocked"] == 1 and ing.of("ingest_dispatch")[-1]["BlockedSkips"] == 1
    ing.fake.refuse = None
    summary = ing.run_slot(slot(2))
    assert summary["dispatched"] == 1
    assert_same(stored(f"s3://{ing.env.bucket}/candles/", "AAAUSDT", "15m"), ing.fake.truth("AAAUSDT", "15m"))


# --------------------------------------------------------------------------- gap repair

def _drop_rows(bucket: str, symbol: str, interval: str, lo: int, hi: int) -> None:
    """Remove stored candles with lo <= open_time < hi (a hole left by some past failure)."""
    prefix = f"s3://{bucket}/candles/symbol={symbol}/interval={interval}/"
    for path in wr.s3.list_objects(prefix, suffix=".parquet"):
        df = wr.s3.read_parquet(path)
        keep = df.loc[(df["open_time"] < lo) | (df["open_time"] >= hi)]
        wr.s3.to_parquet(keep, path, index=False, compression="snappy")


def test_the_daily_pass_repairs_interior_gaps_and_records_confirmed_empty_ranges(make_ingest):
    iv = 15 * MIN
    symbols = ("AAAUSDT", "BBBUSDT", "CCCUSDT")
    ing = make_ingest({(s, "15m"): klines(i, "15m") for i, s in enumerate(symbols)},
                      [SeriesGroup("spot", "klines", symbols, ("15m",))])
    # CCC had a real exchange outage: the tail ingest records it as confirmed empty when it passes it.
    ing.fake.outages[("CCCUSDT", "15m")] = [(HISTORY + 100 * iv, HISTORY + 104 * iv)]
    ing.run_slot(slot(0))
    bucket = ing.env.bucket
    # AAA lost 10 stored candles (the exchange still has them); BBB lost 5 that the exchange has
    # lost as well since (so the pass must confirm them empty).
    _drop_rows(bucket, "AAAUSDT", "15m", HISTORY + 200 * iv, HISTORY + 210 * iv)
    _drop_rows(bucket, "BBBUSDT", "15m", HISTORY + 50 * iv, HISTORY + 55 * iv)
    ing.fake.outages[("BBBUSDT", "15m")] = [(HISTORY + 50 * iv, HISTORY + 55 * iv)]

    asked = len(ing.fake.log)
    ing.run_slot(slot(12), task="repair")  # 03:01
    repairs = {u["symbol"]: u for u in ing.of("ingest_unit", task="repair")}
    assert {s: (r["status"], r["gaps_before"], r["GapsRepaired"], r["GapsRemaining"]) for s, r in repairs.items()} == {
        "AAAUSDT": ("repaired", 1, 1, 0), "BBBUSDT": ("repaired", 1, 1, 0), "CCCUSDT": ("no_gaps", 0, 0, 0)}
    assert repairs["AAAUSDT"]["candles_added"] == 10 and repairs["BBBUSDT"]["outages_found"] == 1
    # Exactly the two holes were asked for; CCC's recorded outage was not asked again.
    new = [e["params"] for e in ing.fake.log[asked:]]
    assert sorted((p["symbol"], int(p["startTime"]), int(p["endTime"])) for p in new) == [
        ("AAAUSDT", HISTORY + 200 * iv, HISTORY + 210 * iv - 1), ("BBBUSDT", HISTORY + 50 * iv, HISTORY + 55 * iv - 1)]
    for s in symbols:  # the data up to the last tail run (00:01) is whole again
        truth = ing.fake.truth(s, "15m")
        assert_same(stored(f"s3://{bucket}/candles/", s, "15m"), truth.loc[truth["open_time"] < T0])
    import json

    outages = json.loads(ing.env.aws.client("s3").get_object(
        Bucket=bucket, Key="meta/symbol=BBBUSDT/interval=15m/outages.json")["Body"].read())
    assert [(o["from_ms"], o["to_ms"]) for o in outages["outages"]] == [(HISTORY + 50 * iv, HISTORY + 55 * iv)]
    idx = ing.env.index()
    assert (idx["spot#klines#AAAUSDT#15m"]["gaps_repaired"], idx["spot#klines#AAAUSDT#15m"]["gaps_remaining"]) == (1, 0)

    # The next day's pass finds nothing to do and asks Binance nothing.
    asked = len(ing.fake.log)
    ing.run_slot(slot(12 + 96), task="repair")
    assert len(ing.fake.log) == asked
    assert {u["status"] for u in ing.of("ingest_unit", task="repair")[-3:]} == {"no_gaps"}


# --------------------------------------------------------------------------- the lag figure

def test_the_lag_figure_reports_a_stalled_15m_series_within_35_minutes(make_ingest):
    """Simulated clock: one healthy and one stalling 15m series, a dispatch at :01, :16, :31, :46.

    Hand computation (lambdas/ingest/lag.py): a healthy series reads 60 s at every dispatch (its
    first missing candle closed a minute earlier). STALL's last good run is the slot(1) run at
    00:16, which stores the candle 00:00-00:15; its first missed candle, 00:15-00:30, closes at
    00:30. The dispatches read 60 s at 00:31, 960 s at 00:46 (> the 600 s default threshold:
    the alarm's datapoint), 1,860 s at 01:01."""
    groups = [SeriesGroup("spot", "klines", ("OKUSDT", "STALLUSDT"), ("15m",))]
    ing = make_ingest({("OKUSDT", "15m"): klines(1, "15m"), ("STALLUSDT", "15m"): klines(2, "15m")}, groups)
    assert lag.DEFAULT_LAG_ALARM_MINUTES * 60 == 600 == int(ing.env.env("x")["LAG_ALARM_SECONDS"])
    readings = []
    for k in range(6):
        if k == 2:
            ing.fake.fail["STALLUSDT"] = 500  # from the 00:31 run on, every request fails
        summary = ing.run_slot(slot(k))
        readings.append((slot(k), summary["oldest"], summary["oldest_age_s"]))
    first_missed_close = T0 + 30 * MIN
    # (the first dispatch knows no series yet: 0)
    assert [r[2] for r in readings] == [0.0, 60.0, 60.0, 960.0, 1860.0, 2760.0]
    assert [r[1] for r in readings[3:]] == ["spot klines STALLUSDT 15m"] * 3
    breach = next(t for t, _, age in readings if age > lag.DEFAULT_LAG_ALARM_MINUTES * 60)
    assert breach - first_missed_close == 16 * MIN
    # CloudWatch evaluates every minute and EMF metrics land within a few: 16 + 3 < 35.
    assert breach - first_missed_close + 3 * MIN <= 35 * MIN
    # The digest named the stalled series once, at the breaching dispatch.
    digests = ing.env.digests()
    assert len(digests) == 1 and "STALLUSDT" in digests[0]["message"] and "OKUSDT" not in digests[0]["message"]
    dispatches = ing.of("ingest_dispatch")
    assert [d["OldestWatermarkAgeSeconds"] for d in dispatches] == [r[2] for r in readings]
    assert [d["LaggingSeries"] for d in dispatches] == [0, 0, 0, 1, 1, 1]
