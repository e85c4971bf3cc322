"""``backtest data fetch``: many pages with faults, incremental re-runs, crashes, bans, bad symbols."""

from __future__ import annotations

import os
import time
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import last_open_time, upsert_candles
from engine.data.fetch import fetch_candles
from fakes.candles import assert_same, klines_from_csv, stored, synthetic_klines
from fakes.cli import run_cli

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
IV = 900_000
REPO = Path(__file__).resolve().parent.parent


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_many_pages_with_faults_equal_the_truth(binance_fake, tmp_path):
    fake = binance_fake(synthetic_klines(T0, 4321))
    for at, fault in enumerate(["429", "500", "drop", "truncate", "cut", "503"], start=1):
        fake.inject(fault, at=at * 2)
    result = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    truth = fake.truth()
    assert len(truth) == 4320  # the 4321st candle is still open
    assert_same(stored(tmp_path), truth)
    assert result.added == 4320 and result.gaps.count == 0
    assert result.first == truth.open_time.iloc[0] and result.last == truth.open_time.iloc[-1]
    assert sorted(fake.sleeps)[-1] <= 60 and 3 in fake.sleeps  # Retry-After obeyed, backoff bounded
    assert _no_temp_files(tmp_path)


def test_real_candles_across_forty_pages_with_faults(binance_fake, tmp_path, real_15m_csv):
    fake = binance_fake(klines_from_csv(real_15m_csv))
    for at in (3, 11, 19, 27, 35):
        fake.inject(["500", "429", "drop", "truncate", "cut"][at % 5], at=at)
    fetch_candles(str(tmp_path), "BTCUSDT", "15m", int(fake.klines.open_time.iloc[0]), client=fake.client())
    truth = fake.truth()
    assert len(truth) == 39_999
    df = stored(tmp_path)
    assert_same(df, truth)
    assert df.open_time.is_unique and (np.diff(df.open_time) == IV).all()


def test_second_fetch_downloads_only_new_candles(binance_fake, tmp_path):
    fake = binance_fake(synthetic_klines(T0, 3000), now_ms=T0 + 2500 * IV + 60_000)
    first = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    assert first.added == 2500
    n_before = len(fake.klines_log(None))
    fake.advance(10 * 15 * 60)  # ten more candles close
    second = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    new_requests = fake.klines_log(None)[n_before:]
    assert len(new_requests) == 1
    assert int(new_requests[0]["params"]["startTime"]) == T0 + 2500 * IV  # the first open time not stored
    assert new_requests[0]["returned"][:2] == (T0 + 2500 * IV, T0 + 2510 * IV)  # 10 closed + the open one
    assert second.added == 10
    assert_same(stored(tmp_path), fake.truth())
    third = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    assert third.added == 0 and third.requests == 1


def test_interrupted_fetch_keeps_committed_pages_and_resumes(binance_fake, tmp_path):
    fake = binance_fake(synthetic_klines(T0, 5000))
    fake.inject("500", at=3)

    def ctrl_c(seconds):
        raise KeyboardInterrupt  # Ctrl-C while backing off before the 4th page

    with pytest.raises(KeyboardInterrupt):
        fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client(sleep=ctrl_c))
    truth = fake.truth()
    assert_same(stored(tmp_path), truth.iloc[:3000])
    assert last_open_time(str(tmp_path), "BTCUSDT", "15m") == truth.open_time.iloc[2999]
    assert _no_temp_files(tmp_path)

    n_before = len(fake.klines_log(None))
    result = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    assert result.added == len(truth) - 3000
    assert int(fake.klines_log(None)[n_before]["params"]["startTime"]) == truth.open_time.iloc[3000]
    assert_same(stored(tmp_path), truth)


def test_killed_process_then_rerun_completes(binance_fake, tmp_path, capsys):
    fake = binance_fake(synthetic_klines(T0, 6000))
    out = tmp_path / "ds"
    argv = ["data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-01-01",
            "--out", str(out), "--base-url", fake.base_url]
    proc = subprocess.Popen([sys.executable, "-m", "backtest_cli", *argv], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # SIGKILL the child as it asks for the 4th page: no handler, no cleanup, like a crash.
    fake.on_klines = lambda index: os.kill(proc.pid, signal.SIGKILL) if index == 3 else None
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    truth = fake.truth()
    assert_same(stored(out), truth.iloc[:3000])

    fake.on_klines = None
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert_same(stored(out), truth)
    assert _no_temp_files(out)


def test_cli_fetch_summary_and_env_base_url(binance_fake, tmp_path, capsys, monkeypatch):
    fake = binance_fake(synthetic_klines(T0, 1500))
    monkeypatch.setenv("BINANCE_BASE_URL", fake.base_url)
    code, out, err = run_cli(["data", "fetch", "--symbol", "btcusdt", "--interval", "15m", "--start", "2024-01-01",
                              "--end", "2024-01-10", "--out", tmp_path], capsys)
    assert code == 0 and err == ""
    end = T0 + 9 * 96 * IV
    assert_same(stored(tmp_path), fake.truth(T0, end))
    assert out.startswith(f"fetched {9 * 96} new candle(s) BTCUSDT 15m: 2024-01-01 00:00:00 .. 2024-01-09 23:45:00")


@pytest.mark.parametrize("fault, words", [("418", "banned"), ("451", "restricted location")])
def test_cli_ban_stops_at_once_keeping_what_was_stored(binance_fake, tmp_path, capsys, fault, words):
    fake = binance_fake(synthetic_klines(T0, 4000))
    fake.inject(fault, at=2)
    code, out, err = run_cli(["data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-01-01",
                              "--out", tmp_path, "--base-url", fake.base_url], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: HTTP {fault} ")
    assert words in err and "kept the 2000 new candle(s)" in err
    assert len(fake.klines_log(None)) == 3  # no retry after the ban
    assert_same(stored(tmp_path), fake.truth().iloc[:2000])


def test_cli_invalid_symbol_exits_2_with_one_line(binance_fake, tmp_path, capsys):
    fake = binance_fake(synthetic_klines(T0, 10))
    code, out, err = run_cli(["data", "fetch", "--symbol", "NOPE", "--interval", "15m", "--start", "2024-01-01",
                              "--out", tmp_path, "--base-url", fake.base_url], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: Binance error -1121: Invalid symbol.") and err.count("\n") == 1
    assert "no new candles were stored" in err


def test_cli_bad_arguments_exit_2(tmp_path, capsys):
    code, _, err = run_cli(["data", "fetch", "--symbol", "BTCUSDT", "--interval", "15x", "--start", "2024-01-01",
                            "--out", tmp_path, "--base-url", "http://127.0.0.1:9"], capsys)
    assert code == 2 and "'15x' is not a Binance kline interval" in err and err.count("\n") == 1
    code, _, err = run_cli(["data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "soon",
                            "--out", tmp_path], capsys)
    assert code == 2 and "--start 'soon'" in err


# --------------------------------------------------------------------------- covering [start, now)

def _starts(fake, since: int) -> list[int]:
    return [int(e["params"]["startTime"]) for e in fake.klines_log(None)[since:]]


def test_an_earlier_start_fills_the_head_range_once(binance_fake, tmp_path):
    fake = binance_fake(synthetic_klines(T0, 3000))
    truth = fake.truth()
    fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0 + 1000 * IV, T0 + 2000 * IV, client=fake.client())
    assert_same(stored(tmp_path), truth.iloc[1000:2000])
    n = len(fake.klines_log(None))
    result = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    assert_same(stored(tmp_path), truth)
    # The head [T0, T0+1000 IV) in one request (one page holds it), then the tail once.
    assert _starts(fake, n) == [T0, T0 + 2000 * IV]
    assert fake.klines_log(None)[n]["params"]["endTime"] == str(T0 + 1000 * IV - 1)
    assert result.head_filled == 1000 and result.added == 1000 + len(truth) - 2000 and result.ranges == 2


def test_interior_gaps_are_filled_and_nothing_stored_is_asked_again(binance_fake, tmp_path):
    fake = binance_fake(synthetic_klines(T0, 5000))
    truth = fake.truth()
    holes = [range(100, 103), range(2500, 2510), range(4000, 4001)]
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", truth.drop(index=[i for r in holes for i in r]))
    n = len(fake.klines_log(None))
    result = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    assert_same(stored(tmp_path), truth)
    assert result.added == 14 and result.gaps.count == 0
    # Each hole is asked for once; the last one shares its request with the tail (within one page).
    assert _starts(fake, n) == [T0 + 100 * IV, T0 + 2500 * IV, T0 + 4000 * IV]
    again = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client())
    assert again.added == 0 and again.requests == 1  # only the tail


def test_outages_are_recorded_not_asked_again_and_listed_apart(binance_fake, tmp_path, capsys):
    k = synthetic_klines(T0, 3000)
    outage = range(1200, 1212)  # three hours the exchange has no candles for
    fake = binance_fake(k.drop(index=list(outage)).reset_index(drop=True))
    start = T0 - 96 * IV  # a day before the first candle the exchange has (like a listing date)
    result = fetch_candles(str(tmp_path), "BTCUSDT", "15m", start, client=fake.client())
    assert result.outages_found == [(start, T0), (T0 + 1200 * IV, T0 + 1212 * IV)]
    assert result.gaps.count == 0
    fake.advance(5 * 15 * 60)
    n = len(fake.klines_log(None))
    again = fetch_candles(str(tmp_path), "BTCUSDT", "15m", start, client=fake.client())
    assert _starts(fake, n) == [int(k.open_time.iloc[-1])]  # only the tail: no outage asked again
    assert again.added == 1 and again.outages_found == []
    code, out, err = run_cli(["data", "inspect", tmp_path], capsys)
    assert code == 0, err
    assert "gaps:     0\n" in out
    assert ("outages:  2 recorded, confirmed empty by the exchange (108 bar(s)): "
            "2023-12-31 00:00:00 .. 2024-01-01 00:00:00; 2024-01-13 12:00:00 .. 2024-01-13 15:00:00") in out
    # An unexplained hole still counts as a gap.
    df = stored(tmp_path)
    (tmp_path / "x").mkdir()
    upsert_candles(str(tmp_path / "x"), "BTCUSDT", "15m", df.drop(index=[5]))
    code, out, _ = run_cli(["data", "inspect", tmp_path / "x"], capsys)
    assert "gaps:     2 (13 missing bar(s)" in out and "outages:" not in out


def test_cli_fetch_earlier_start_says_what_it_filled(binance_fake, tmp_path, capsys):
    fake = binance_fake(synthetic_klines(T0, 400))
    argv = ["data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--out", tmp_path, "--base-url", fake.base_url]
    assert run_cli([*argv, "--start", "2024-01-03"], capsys)[0] == 0
    code, out, err = run_cli([*argv, "--start", "2024-01-01"], capsys)
    assert code == 0, err
    assert "(1 request(s); no gaps; 192 before the earlier first candle)" in out  # head and tail share a page
    assert_same(stored(tmp_path), fake.truth())


# --------------------------------------------------------------------------- every fetch ends

def test_a_dripping_server_cannot_hang_a_request():
    from engine.data.http_get import TransportError, http_get
    from fakes.drip_server import DripServer

    for where in ("body", "headers"):
        server = DripServer(every=0.1, where=where).start()
        try:
            started = time.monotonic()
            with pytest.raises(TransportError, match=r"no complete answer within 0.5 s"):
                http_get(server.base_url + "/api/v3/klines", timeout=0.5)
            assert time.monotonic() - started < 10  # the whole answer counts, not each byte's wait
        finally:
            server.stop()


def test_cli_fetch_from_a_dripping_server_ends_within_its_timeout(tmp_path):
    from fakes.drip_server import DripServer

    server = DripServer(every=0.2).start()
    try:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "backtest_cli", "data", "fetch", "--symbol", "BTCUSDT",
                               "--interval", "15m", "--start", "2024-01-01", "--out", str(tmp_path),
                               "--base-url", server.base_url, "--request-timeout", "1", "--timeout", "3"],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--timeout of 3 s ran out" in proc.stderr and "no new candles were stored" in proc.stderr
    assert server.connections >= 2  # the 1 s request deadline cut each attempt; retries followed
    assert elapsed < 30  # bounded by --timeout (3 s) plus start-up, never by the server


def test_a_huge_retry_after_stops_at_once_with_exit_2(binance_fake, tmp_path):
    fake = binance_fake(synthetic_klines(T0, 3000))
    fake.inject("429", at=1, retry_after=86_400)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "backtest_cli", "data", "fetch", "--symbol", "BTCUSDT",
                           "--interval", "15m", "--start", "2024-01-01", "--out", str(tmp_path),
                           "--base-url", fake.base_url], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "HTTP 429 with Retry-After 86400 s, above the 120 s cap" in proc.stderr
    assert "kept the 1000 new candle(s)" in proc.stderr
    assert time.monotonic() - started < 30  # it did not wait a day
    assert_same(stored(tmp_path), fake.truth().iloc[:1000])
    # A Retry-After under the cap is obeyed; the cap is a setting.
    fake.inject("429", at=len(fake.klines_log(None)), retry_after=100)
    result = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client(max_retry_after=100))
    assert 100 in fake.sleeps and result.added == len(fake.truth()) - 1000


def test_a_server_clock_ahead_never_stores_an_open_candle(binance_fake, tmp_path):
    k = synthetic_klines(T0, 1500)
    fake = binance_fake(k, now_ms=T0 + 1400 * IV + 60_000)  # the server says candle 1399 closed
    local = (T0 + 1300 * IV + 60_000) / 1000  # this machine's clock: only candles 0..1299 have closed
    result = fetch_candles(str(tmp_path), "BTCUSDT", "15m", T0, client=fake.client(clock=lambda: local))
    assert result.added == 1300
    assert_same(stored(tmp_path), k.iloc[:1300])
