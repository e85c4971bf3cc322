"""A perp symbol's three series (trade klines, mark klines, funding) through ``backtest data
fetch|backfill|build --market um`` and ``data inspect``, and a ``backtest run`` on the built dataset.

Truths come from tests/fakes/perp_market.py; a fake /fapi server stands in for Binance and zips in
the futures archive layout for data.binance.vision."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.funding_table import read_funding
from engine.storage_layout import kind_root
from fakes.candles import assert_same, stored
from fakes.cli import run_cli
from fakes.perp_market import FakeFapi, build_um_archive, funding_csv, kline_csv, perp_truth

JAN_25_2024 = 1_706_140_800_000  # 2024-01-25 00:00 UTC
HOUR = 3_600_000


def _same_funding(got: pd.DataFrame, truth: pd.DataFrame, *, mark: bool, hours: np.ndarray) -> None:
    assert got["funding_time"].tolist() == truth["funding_time"].tolist()
    assert got["funding_rate"].tolist() == [float(f"{r:.8f}") for r in truth["funding_rate"]]
    if mark:
        assert got["mark_price"].tolist() == [float(f"{m:.8f}") for m in truth["mark_price"]]
    else:
        assert got["mark_price"].isna().all()
    assert got["interval_hours"].tolist() == hours.tolist()


def _spacing_hours(t: np.ndarray) -> np.ndarray:
    """REST rows carry no interval: each event's is the hours since the one before (the first: to the next)."""
    d = np.diff(t) // HOUR
    return np.concatenate([[d[0]], d])


def test_fetch_um_pages_all_three_series_and_resumes(tmp_path, capsys):
    truth = perp_truth(JAN_25_2024, 3100, "1h")  # 3 kline pages of 1,500; funding: ~1,940 events, 2 pages
    n_funding = len(truth["funding"])
    assert 1000 < n_funding < 2000
    end = int(truth["klines"]["open_time"].iat[-1]) + HOUR
    fake = FakeFapi(truth, interval="1h").start()
    ds = tmp_path / "ds"
    args = ["data", "fetch", "--market", "um", "--symbol", "BTCUSDT", "--interval", "1h", "--start", JAN_25_2024,
            "--end", end, "--out", ds, "--base-url", fake.base_url]
    try:
        fake.fail_after["/fapi/v1/fundingRate"] = 1  # the second funding page fails
        code, out, err = run_cli(args, capsys)
        assert code == 2 and err.count("\n") == 1 and "kept the 1000 new event(s)" in err
        assert len(read_funding(kind_root(str(ds), "um", "funding"), "BTCUSDT")) == 1000
        for path in ("/fapi/v1/klines", "/fapi/v1/markPriceKlines"):
            got = fake.requests(path)
            assert [e["params"]["limit"] for e in got] == ["1500"] * 3 and [e["rows"] for e in got] == [1500, 1500, 100]
        fake.fail_after.clear()
        fake.log.clear()
        code, out, err = run_cli(args, capsys)
        assert code == 0, err
        assert "0 trade kline(s), 0 mark kline(s), " in out and f"{n_funding - 1000} funding event(s)" in out
        # resumed: nothing asked again but the funding after the 1,000th event
        assert not fake.requests("/fapi/v1/klines") and not fake.requests("/fapi/v1/markPriceKlines")
        (resume,) = fake.requests("/fapi/v1/fundingRate")
        assert int(resume["params"]["startTime"]) == int(truth["funding"]["funding_time"].iat[999]) + 1
        assert resume["params"]["limit"] == "1000"
    finally:
        fake.stop()
    assert_same(stored(kind_root(str(ds), "um", "klines"), interval="1h"), truth["klines"])
    assert_same(stored(kind_root(str(ds), "um", "mark"), interval="1h"), truth["mark"])
    got = read_funding(kind_root(str(ds), "um", "funding"), "BTCUSDT")
    _same_funding(got, truth["funding"], mark=True, hours=_spacing_hours(truth["funding"]["funding_time"].to_numpy()))
    assert not (ds / "symbol=BTCUSDT").exists()  # nothing written as spot


def test_backfill_um_from_archive_zips_and_a_checksum_mismatch(tmp_path, capsys):
    truth = perp_truth(JAN_25_2024, 12 * 96, "15m")  # 12 days: January and February files
    mirror = tmp_path / "mirror"
    names = build_um_archive(mirror, truth)
    assert "BTCUSDT-fundingRate-2024-02.zip" in names and "BTCUSDT-15m-2024-01.zip" in names
    ds = tmp_path / "ds"
    code, out, err = run_cli(["data", "backfill", "--market", "um", "--symbol", "BTCUSDT", "--interval", "15m",
                              "--start", "2024-01", "--end", "2024-02", "--source", mirror, "--out", ds], capsys)
    assert code == 0, err
    assert f"{12 * 96} trade kline(s), {12 * 96} mark kline(s), {len(truth['funding'])} funding event(s)" in out
    assert_same(stored(kind_root(str(ds), "um", "klines")), truth["klines"])
    assert_same(stored(kind_root(str(ds), "um", "mark")), truth["mark"])
    got = read_funding(kind_root(str(ds), "um", "funding"), "BTCUSDT")
    _same_funding(got, truth["funding"], mark=False, hours=truth["funding"]["interval_hours"].to_numpy())
    assert sorted(set(got["interval_hours"])) == [1, 4]  # the archive's own intervals, never assumed 8h

    bad = tmp_path / "bad"
    build_um_archive(bad, truth, bad_checksum={"BTCUSDT-15m-2024-02.zip"})
    code, out, err = run_cli(["data", "backfill", "--market", "um", "--symbol", "BTCUSDT", "--interval", "15m",
                              "--start", "2024-01", "--end", "2024-02", "--source", bad, "--out",
                              tmp_path / "ds2"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "BTCUSDT-15m-2024-02.zip" in err and "CHECKSUM" in err


def _build_perp_dataset(tmp_path: Path, capsys, truth) -> Path:
    files = tmp_path / "files"
    files.mkdir()
    (files / "BTCUSDT-15m-trade.csv").write_text(kline_csv(truth["klines"]))
    (files / "BTCUSDT-15m-mark.csv").write_text(kline_csv(truth["mark"]))
    (files / "BTCUSDT-fundingRate.csv").write_text(funding_csv(truth["funding"]))
    ds = tmp_path / "ds"
    for kind, name in (("klines", "BTCUSDT-15m-trade.csv"), ("mark", "BTCUSDT-15m-mark.csv"),
                       ("funding", "BTCUSDT-fundingRate.csv")):
        argv = ["data", "build", "--market", "um", "--kind", kind, "--input", files / name, "--symbol", "BTCUSDT",
                "--out", ds] + ([] if kind == "funding" else ["--interval", "15m"])
        code, out, err = run_cli(argv, capsys)
        assert code == 0, err
    return ds


RUN = """
experiment: {name: perp_dataset}
data: {source: SOURCE, market: um, symbol: BTCUSDT, interval: 15m}
execution: {commission: 0.0005, slippage: 0.0, fill: next_open}
portfolio: {capital: 10000, direction: both, size: 1.0, leverage: 3}
strategies:
  ma_crossover: {short_window: 10, long_window: 40, ema_period: 50}
report: {top_k: 1, min_trades: 0}
"""


def test_build_inspect_and_run_on_a_perp_dataset(tmp_path, capsys):
    truth = perp_truth(JAN_25_2024, 10 * 96, "15m")
    ds = _build_perp_dataset(tmp_path, capsys, truth)
    assert_same(stored(kind_root(str(ds), "um", "mark")), truth["mark"])
    got = read_funding(kind_root(str(ds), "um", "funding"), "BTCUSDT")
    _same_funding(got, truth["funding"], mark=False, hours=truth["funding"]["interval_hours"].to_numpy())

    code, out, err = run_cli(["data", "inspect", ds], capsys)
    assert code == 0, err
    assert "(um trade klines): BTCUSDT 15m" in out and "(um mark klines): BTCUSDT 15m" in out
    assert f"rows:     {10 * 96}" in out
    assert f"events:   {len(truth['funding'])}" in out and "funding intervals: 1h, 4h" in out
    switch = int(truth["funding"]["funding_time"][truth["funding"]["interval_hours"] == 1].iat[0])
    assert f"from {pd.Timestamp(switch, unit='ms'):%Y-%m-%d %H:%M:%S} UTC: every 1h" in out

    cfg = tmp_path / "run.yaml"
    cfg.write_text(RUN.replace("SOURCE", str(ds)))
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out", "--no-progress", "--run-id", "r"],
                             capsys)
    assert code == 0, err
    with open(tmp_path / "out" / "r" / "summary.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert int(row["n_trades"]) > 0 and float(row["total_funding"]) != 0.0  # the table's events were charged
    html = (tmp_path / "out" / "r" / "report.html").read_text()
    assert '"liquidation_price":"mark"' in html  # the dataset's mark klines are the default basis


def test_a_spot_dataset_run_with_market_um_is_one_line(tmp_path, capsys):
    truth = perp_truth(JAN_25_2024, 2 * 96, "15m")
    files = tmp_path / "BTCUSDT-15m-spot.csv"
    files.write_text(kline_csv(truth["klines"], header=False))
    ds = tmp_path / "spot"
    code, _, err = run_cli(["data", "build", "--input", files, "--symbol", "BTCUSDT", "--interval", "15m",
                            "--out", ds], capsys)
    assert code == 0, err
    cfg = tmp_path / "run.yaml"
    cfg.write_text(RUN.replace("SOURCE", str(ds)))
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out", "--no-progress"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "holds spot candles only, no perp series" in err and str(ds) in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_perp_build_inputs_are_one_line(tmp_path, capsys):
    bad = tmp_path / "BTCUSDT-fundingRate-2024-01.csv"
    bad.write_text("time,rate\n1706140800000,0.0001\n")
    ok = tmp_path / "f.csv"
    ok.write_text("calc_time,funding_interval_hours,last_funding_rate\n1706140800000,4,0.0001\n1706155200000,4,1.5\n")
    base = ["data", "build", "--symbol", "BTCUSDT", "--out", tmp_path / "ds"]
    for argv, needle in [
        (["--kind", "mark", "--interval", "15m", "--input", bad], "--kind mark needs --market um"),
        (["--market", "um", "--kind", "funding", "--interval", "15m", "--input", bad], "takes no --interval"),
        (["--market", "um", "--kind", "mark", "--input", bad], "--kind mark needs --interval"),
        (["--market", "um", "--kind", "funding", "--input", bad],
         "columns time, rate; expected calc_time, funding_interval_hours, last_funding_rate"),
        (["--market", "um", "--kind", "funding", "--input", ok], "row 2: funding rate 1.5 is not a rate"),
    ]:
        code, _, err = run_cli(base + argv, capsys)
        assert code == 2 and err.count("\n") == 1 and needle in err, (argv, err)
    assert not (tmp_path / "ds" / "um").exists()  # nothing written


def test_backfill_um_to_s3_inspect_and_run_from_s3(tmp_path, capsys, data_aws):
    """On S3 the perp series sit beside the spot candles root: s3://B/um/candles/, um/mark/, um/funding/."""
    import boto3

    truth = perp_truth(JAN_25_2024, 6 * 96, "15m")
    build_um_archive(tmp_path / "mirror", truth)
    boto3.client("s3").create_bucket(Bucket="perp-bucket")
    code, out, err = run_cli(["data", "backfill", "--market", "um", "--symbol", "BTCUSDT", "--interval", "15m",
                              "--start", "2024-01", "--end", "2024-01", "--source", tmp_path / "mirror",
                              "--to", "s3://perp-bucket/candles/"], capsys)
    assert code == 0, err
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="perp-bucket")["Contents"]}
    assert {k.split("/symbol=")[0] for k in keys} == {"um/candles", "um/mark", "um/funding"}
    assert "um/funding/symbol=BTCUSDT/part-0.parquet" in keys
    assert not any(k.startswith("locks/") or k.startswith("um/locks/") for k in keys)  # leases released
    assert_same(stored("s3://perp-bucket/um/mark/"), truth["mark"])
    code, out, err = run_cli(["data", "inspect", "s3://perp-bucket/candles/"], capsys)
    assert code == 0, err
    assert "(um mark klines): BTCUSDT 15m" in out and f"events:   {len(truth['funding'])}" in out
    cfg = tmp_path / "run.yaml"
    cfg.write_text(RUN.replace("SOURCE", "s3://perp-bucket/candles/"))
    code, out, err = run_cli(["run", "--config", cfg, "--out", tmp_path / "out", "--no-progress", "--run-id", "s"],
                             capsys)
    assert code == 0, err
    with open(tmp_path / "out" / "s" / "summary.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["total_funding"]) != 0.0
