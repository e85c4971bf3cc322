"""``backtest data backfill`` from a fake data.binance.vision (HTTP and local folder)."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest

from engine.data.backfill import backfill, plan_months
from engine.errors import DataError
from fakes.candles import assert_same, klines_from_csv, stored, synthetic_klines
from fakes.cli import run_cli
from fakes.vision_server import build_vision_tree

NOV_2024 = 1_730_419_200_000  # 2024-11-01 00:00 UTC
JAN_2025 = 1_735_689_600_000
FEB_2025 = 1_738_368_000_000
FEB_06 = FEB_2025 + 5 * 86_400_000
IV = 900_000
MONTHS = ["2024-11", "2024-12", "2025-01"]
DAYS = [f"2025-02-{d:02d}" for d in range(1, 6)]  # February has no monthly zip yet


@pytest.fixture
def truth_and_tree(tmp_path):
    k = synthetic_klines(NOV_2024, (FEB_2025 - NOV_2024) // IV + 10 * 96)
    build_vision_tree(tmp_path / "mirror", k, months=MONTHS, days=DAYS)
    return k, tmp_path / "mirror"


def _truth(k, start, end):
    t = k.open_time
    return k.loc[(t >= start) & (t < end)].reset_index(drop=True)


def test_the_fake_really_mixes_ms_and_us_files(truth_and_tree):
    _, mirror = truth_and_tree
    for label, digits in (("2024-12", 13), ("2025-01", 16), ("2025-02-03", 16)):
        kind = "monthly" if label.count("-") == 1 else "daily"
        zpath = mirror / f"data/spot/{kind}/klines/BTCUSDT/15m/BTCUSDT-15m-{label}.zip"
        with zipfile.ZipFile(zpath) as z:
            first = z.read(z.namelist()[0]).decode().split("\n", 1)[0].split(",")
        assert len(first[0]) == digits and len(first[6]) == digits and len(first) == 12


def test_backfill_over_http_mixes_ms_and_us(truth_and_tree, vision_fake, tmp_path):
    k, mirror = truth_and_tree
    server = vision_fake(mirror)
    out = tmp_path / "ds"
    result = backfill(str(out), "BTCUSDT", "15m", NOV_2024, FEB_06, source=server.base_url)
    truth = _truth(k, NOV_2024, FEB_06)
    df = stored(out)
    assert_same(df, truth)
    assert df.open_time[df.open_time >= JAN_2025].iloc[0] == JAN_2025  # µs era lands on the right ms
    assert df.open_time[df.open_time < JAN_2025].iloc[-1] == JAN_2025 - IV
    assert result.files == [f"BTCUSDT-15m-{x}.zip" for x in MONTHS + DAYS]
    assert result.missing == [] and result.added == len(truth)
    assert "/data/spot/monthly/klines/BTCUSDT/15m/BTCUSDT-15m-2025-02.zip" in server.requests  # tried, 404


def test_backfill_cli_from_local_folder_partial_months_and_missing_days(truth_and_tree, tmp_path, capsys):
    k, mirror = truth_and_tree
    out = tmp_path / "ds"
    code, stdout, err = run_cli(["data", "backfill", "--symbol", "BTCUSDT", "--interval", "15m",
                                 "--start", "2024-12-15", "--end", "2025-02-07", "--source", mirror,
                                 "--out", out], capsys)
    assert code == 0
    assert_same(stored(out), _truth(k, NOV_2024 + 44 * 86_400_000, FEB_06))  # Dec 15 .. Feb 5 (6, 7 missing)
    assert err == "note: 2 file(s) not found at the source: BTCUSDT-15m-2025-02-06.zip, BTCUSDT-15m-2025-02-07.zip\n"
    assert "from 7 file(s)" in stdout  # December and January monthly (cut to the range), 5 February days
    # Re-running adds nothing and duplicates nothing.
    code, stdout, _ = run_cli(["data", "backfill", "--symbol", "BTCUSDT", "--interval", "15m",
                               "--start", "2024-12-15", "--end", "2025-02-05", "--source", mirror / "data",
                               "--out", out], capsys)
    assert code == 0 and stdout.startswith("backfilled 0 new candle(s)")
    assert_same(stored(out), _truth(k, NOV_2024 + 44 * 86_400_000, FEB_06))


def test_bad_checksum_is_refused_by_name(tmp_path, vision_fake, capsys):
    k = synthetic_klines(NOV_2024, 61 * 96)
    build_vision_tree(tmp_path / "m", k, months=["2024-11", "2024-12"], bad_checksum={"BTCUSDT-15m-2024-12.zip"})
    server = vision_fake(tmp_path / "m")
    code, out, err = run_cli(["data", "backfill", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-11",
                              "--end", "2024-12", "--source", server.base_url, "--out", tmp_path / "ds"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: BTCUSDT-15m-2024-12.zip: SHA-256 ") and "file refused" in err
    # The good month before it was merged and stays.
    assert_same(stored(tmp_path / "ds"), _truth(k, NOV_2024, NOV_2024 + 30 * 86_400_000))


def test_corrupt_zip_with_matching_checksum_is_refused_by_name(tmp_path):
    import hashlib

    rel = "data/spot/monthly/klines/BTCUSDT/15m/BTCUSDT-15m-2024-11.zip"
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    path.with_name(path.name + ".CHECKSUM").write_text(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  BTCUSDT-15m-2024-11.zip\n")
    with pytest.raises(DataError, match=r"^BTCUSDT-15m-2024-11.zip: not a valid zip"):
        backfill(str(tmp_path / "ds"), "BTCUSDT", "15m", NOV_2024, NOV_2024 + 30 * 86_400_000, source=str(tmp_path))


def test_missing_checksum_is_refused(tmp_path):
    k = synthetic_klines(NOV_2024, 30 * 96)
    build_vision_tree(tmp_path, k, months=["2024-11"])
    (tmp_path / "data/spot/monthly/klines/BTCUSDT/15m/BTCUSDT-15m-2024-11.zip.CHECKSUM").unlink()
    with pytest.raises(DataError, match="BTCUSDT-15m-2024-11.zip: no .*CHECKSUM"):
        backfill(str(tmp_path / "ds"), "BTCUSDT", "15m", NOV_2024, NOV_2024 + 30 * 86_400_000, source=str(tmp_path))


def test_nothing_found_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["data", "backfill", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-11",
                            "--end", "2024-11", "--source", tmp_path / "empty", "--out", tmp_path / "ds"], capsys)
    assert code == 2 and "no BTCUSDT 15m kline zips found" in err


def test_real_candles_backfill_across_the_2025_unit_change(real_15m_csv, tmp_path, vision_fake):
    k = klines_from_csv(real_15m_csv)
    build_vision_tree(tmp_path / "m", k, months=["2024-11", "2024-12", "2025-01", "2025-02"],
                      days=[f"2025-03-{d:02d}" for d in range(1, 21)])
    server = vision_fake(tmp_path / "m")
    end = FEB_2025 + (28 + 20) * 86_400_000  # through 2025-03-20
    backfill(str(tmp_path / "ds"), "BTCUSDT", "15m", NOV_2024, end, source=server.base_url)
    assert_same(stored(tmp_path / "ds"), _truth(k, NOV_2024, end))


def test_backfill_to_s3(truth_and_tree, vision_fake, capsys, data_aws):
    k, mirror = truth_and_tree
    server = vision_fake(mirror)
    boto3.client("s3").create_bucket(Bucket="candle-bucket")
    code, out, err = run_cli(["data", "backfill", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-12",
                              "--end", "2025-01", "--source", server.base_url,
                              "--to", "s3://candle-bucket/candles/"], capsys)
    assert code == 0, err
    assert_same(stored("s3://candle-bucket/candles/"), _truth(k, NOV_2024 + 30 * 86_400_000, FEB_2025))
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="candle-bucket")["Contents"]]
    assert sorted(k.rsplit("/", 1)[0] for k in keys) == [
        "candles/symbol=BTCUSDT/interval=15m/year=2024/month=12", "candles/symbol=BTCUSDT/interval=15m/year=2025/month=01"]


def test_plan_months_splits_partial_months():
    plan = plan_months(NOV_2024 + 86_400_000, JAN_2025 + 86_400_000)
    assert [(lo.strftime("%Y-%m-%d"), hi.strftime("%Y-%m-%d")) for lo, hi in plan] == [
        ("2024-11-02", "2024-12-01"), ("2024-12-01", "2025-01-01"), ("2025-01-01", "2025-01-02")]


def test_futures_style_header_row_is_skipped(tmp_path):
    from engine.data.backfill import read_vision_zip

    k = synthetic_klines(NOV_2024, 4)
    rows = "\n".join(",".join(map(str, [r.open_time, r.open, r.high, r.low, r.close, r.volume, r.close_time,
                                        r.quote_volume, r.trades, r.taker_buy_base_volume,
                                        r.taker_buy_quote_volume, 0])) for r in k.itertuples())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.csv", "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                            "taker_buy_volume,taker_buy_quote_volume,ignore\n" + rows)
    df = read_vision_zip("x.zip", buf.getvalue())
    assert df.open_time.tolist() == k.open_time.tolist()


def test_backfill_cli_takes_several_symbols_and_intervals(tmp_path, capsys):
    """--symbols A,B --intervals 15m,1h backfills every pair, each into its own series."""
    k15 = synthetic_klines(NOV_2024, 30 * 96)
    k1h = synthetic_klines(NOV_2024, 30 * 24, interval="1h", seed=8)
    mirror = tmp_path / "mirror"
    for sym in ("BTCUSDT", "ETHUSDT"):
        build_vision_tree(mirror, k15, symbol=sym, interval="15m", months=["2024-11"])
        build_vision_tree(mirror, k1h, symbol=sym, interval="1h", months=["2024-11"])
    out = tmp_path / "ds"
    code, stdout, err = run_cli(["data", "backfill", "--symbols", "BTCUSDT,ETHUSDT", "--intervals", "15m,1h",
                                 "--start", "2024-11", "--end", "2024-11", "--source", mirror, "--out", out], capsys)
    assert code == 0, err
    assert stdout.count("backfilled") == 4
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert_same(stored(out, sym, "15m"), k15)
        assert_same(stored(out, sym, "1h"), k1h)
    code, _, err = run_cli(["data", "backfill", "--symbols", "BTCUSDT,BTCUSDT", "--interval", "15m",
                            "--start", "2024-11", "--source", mirror, "--out", out], capsys)
    assert code == 2 and "listed twice" in err
