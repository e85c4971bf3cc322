"""The klines client against the fake Binance server: paging, closed candles, limits, faults."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.data.klines import PAGE_LIMIT, BadPageError, BinanceBlocked, BinanceError, parse_klines
from engine.errors import DataError, UserError
from fakes.candles import COLUMNS, kline_row, synthetic_klines

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
IV = 900_000


def _frame(pages) -> pd.DataFrame:
    return pd.concat(list(pages), ignore_index=True)


def test_parse_klines_types_and_values():
    truth = synthetic_klines(T0, 3)
    df = parse_klines([kline_row(r) for r in truth.itertuples(index=False)], "test")
    pd.testing.assert_frame_equal(df, truth[list(COLUMNS)], check_exact=True)


@pytest.mark.parametrize("rows, message", [
    ({"code": 1}, "expected a JSON array"),
    ([[1, "1", "1", "1", "1", "1", 2, "1", 1, "1", "1"]], "has 11 fields; expected 12"),
    ([[1, "x", "1", "1", "1", "1", 2, "1", 1, "1", "1", "0"]], "not a number"),
])
def test_parse_klines_rejects_bad_pages(rows, message):
    with pytest.raises(BadPageError, match=message):
        parse_klines(rows, "page")


def test_parse_klines_rejects_non_increasing_times():
    rows = [kline_row(r) for r in synthetic_klines(T0, 3).itertuples(index=False)]
    with pytest.raises(DataError, match="row 3 .*not after the row before"):
        parse_klines([rows[0], rows[1], rows[1]], "page")


def test_pages_of_1000_and_only_closed_candles(binance_fake):
    fake = binance_fake(synthetic_klines(T0, 2500))  # clock half-way through the last candle
    client = fake.client()
    got = _frame(client.iter_klines("BTCUSDT", "15m", T0))
    truth = fake.truth()
    assert len(truth) == 2499
    pd.testing.assert_frame_equal(got, truth, check_exact=True)
    limits = [int(e["params"]["limit"]) for e in fake.klines_log()]
    assert limits == [PAGE_LIMIT] * 3
    assert [e["returned"][2] for e in fake.klines_log()] == [1000, 1000, 500]  # the last holds the open candle


def test_candle_closing_exactly_now_is_kept_one_ms_earlier_dropped(binance_fake):
    k = synthetic_klines(T0, 10)
    fake = binance_fake(k, now_ms=T0 + 5 * IV)  # candle 4 closed at T0+5*IV-1
    assert len(fake.client().fetch("BTCUSDT", "15m", T0)) == 5
    fake.now_ms = T0 + 5 * IV - 1
    assert len(fake.client().fetch("BTCUSDT", "15m", T0)) == 4


def test_end_is_exclusive_and_sent_as_inclusive_end_time(binance_fake):
    fake = binance_fake(synthetic_klines(T0, 3000))
    end = T0 + 1500 * IV
    got = fake.client().fetch("BTCUSDT", "15m", T0 + 10 * IV, end)
    pd.testing.assert_frame_equal(got, fake.truth(T0 + 10 * IV, end), check_exact=True)
    assert {e["params"]["endTime"] for e in fake.klines_log()} == {str(end - 1)}


def test_without_date_header_uses_server_time(binance_fake):
    fake = binance_fake(synthetic_klines(T0, 1200), date_header=False)
    got = fake.client().fetch("BTCUSDT", "15m", T0)
    pd.testing.assert_frame_equal(got, fake.truth(), check_exact=True)
    assert any(e["path"] == "/api/v3/time" for e in fake.log)


@pytest.mark.parametrize("fault", ["500", "503", "drop", "truncate", "cut"])
def test_transient_faults_are_retried_with_backoff(binance_fake, fault):
    fake = binance_fake(synthetic_klines(T0, 1500))
    fake.inject(fault, at=1)
    fake.inject(fault, at=2)
    got = fake.client(backoff=0.5).fetch("BTCUSDT", "15m", T0)
    pd.testing.assert_frame_equal(got, fake.truth(), check_exact=True)
    assert fake.sleeps == [0.5, 1.0]


def test_backoff_is_bounded_and_gives_up(binance_fake):
    fake = binance_fake(synthetic_klines(T0, 100))
    for i in range(10):
        fake.inject("500", at=i)
    with pytest.raises(BinanceError, match="gave up after 4 attempts; last problem: HTTP 500"):
        fake.client(max_retries=3, backoff=1, max_backoff=1.5).fetch("BTCUSDT", "15m", T0)
    assert fake.sleeps == [1, 1.5, 1.5]
    assert len(fake.klines_log(None)) == 4


def test_429_waits_for_retry_after(binance_fake):
    fake = binance_fake(synthetic_klines(T0, 1500))
    fake.inject("429", at=1, retry_after=7)
    got = fake.client().fetch("BTCUSDT", "15m", T0)
    pd.testing.assert_frame_equal(got, fake.truth(), check_exact=True)
    assert fake.sleeps == [7]


@pytest.mark.parametrize("fault, words", [("418", "banned"), ("451", "restricted location")])
def test_418_and_451_stop_at_once(binance_fake, fault, words):
    fake = binance_fake(synthetic_klines(T0, 3500))
    fake.inject(fault, at=2)
    client = fake.client()
    pages = []
    with pytest.raises(BinanceBlocked, match=words) as info:
        for page in client.iter_klines("BTCUSDT", "15m", T0):
            pages.append(page)
    assert info.value.status == int(fault)
    assert len(fake.klines_log(None)) == 3 and fake.sleeps == []  # no retry
    pd.testing.assert_frame_equal(_frame(pages), fake.truth().iloc[:2000], check_exact=True)


def test_invalid_symbol_is_a_one_line_user_error(binance_fake):
    fake = binance_fake(synthetic_klines(T0, 10))
    with pytest.raises(UserError) as info:
        fake.client().fetch("NOPE", "15m", T0)
    assert str(info.value).startswith("Binance error -1121: Invalid symbol. (HTTP 400, GET ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fault, message", [("bad_fields", "has 11 fields"), ("unsorted", "not after the row")])
def test_invalid_pages_are_refused(binance_fake, fault, message):
    fake = binance_fake(synthetic_klines(T0, 1500))
    fake.inject(fault, at=1)
    pages = []
    with pytest.raises(DataError, match=message):
        for page in fake.client().iter_klines("BTCUSDT", "15m", T0):
            pages.append(page)
    assert len(pages) == 1


def test_used_weight_header_slows_down_before_the_limit(binance_fake):
    # 40 weight a minute = 20 klines requests; 30 pages need the window to reset at least once.
    fake = binance_fake(synthetic_klines(T0, 30_500, "1m"), interval="1m", weight_limit=40)
    got = fake.client(weight_limit=40).fetch("BTCUSDT", "1m", T0)
    pd.testing.assert_frame_equal(got, fake.truth(), check_exact=True)
    statuses = [e["status"] for e in fake.klines_log(None)]
    assert 429 not in statuses and len(statuses) == 31
    assert max(fake._weight.values()) <= 40 * 0.9
    assert sum(fake.sleeps) >= 60  # it had to wait for a new minute


def test_the_fake_follows_binance_paging_semantics(binance_fake):
    import json
    import urllib.request

    fake = binance_fake(synthetic_klines(T0, 3000))

    def get(query: str) -> list:
        with urllib.request.urlopen(f"{fake.base_url}/api/v3/klines?symbol=BTCUSDT&interval=15m&{query}") as r:
            assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) > 0 and r.headers["Date"]
            return json.loads(r.read())

    assert len(get("startTime=%d" % T0)) == 500  # default limit
    assert len(get("startTime=%d&limit=5000" % T0)) == 1000  # capped
    rows = get("startTime=%d&endTime=%d" % (T0 + IV, T0 + 3 * IV))  # both inclusive on open time
    assert [r[0] for r in rows] == [T0 + IV, T0 + 2 * IV, T0 + 3 * IV]
    latest = get("limit=3")  # no range: the most recent, the last still open
    assert [r[0] for r in latest] == list(fake.klines.open_time.iloc[-3:])
    assert latest[-1][4] == latest[-1][1] and latest[-1][5] != f"{fake.klines.volume.iloc[-1]:.8f}"
    with urllib.request.urlopen(f"{fake.base_url}/api/v3/time") as r:
        assert json.loads(r.read()) == {"serverTime": fake.now_ms}


def test_engine_data_imports_no_heavy_or_aws_modules():
    import subprocess
    import sys

    code = ("import sys, engine.data.klines, engine.data.fetch, engine.data.backfill, engine.data.dataset, "
            "engine.data.sync, engine.data.build, engine.data.inspect; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'numba', 'matplotlib', 'awswrangler', 'boto3', 'botocore', 'tqdm', 'requests'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
