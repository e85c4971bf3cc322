"""Bad data inputs, each through the REAL command line in its own process (fakes/cli_process.run_console:
forked from an interpreter that has the engine imported, or the console script spawned, as in CI).

Every case must end with exit code 2 and exactly one line on stderr naming the problem, no
traceback, and leave the stored dataset byte for byte as it was. Cases that could block (a
FIFO, a device) run under a subprocess timeout, so a hang fails the test instead of the suite.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.dataset import upsert_candles
from fakes.candles import synthetic_klines
from fakes.cli_process import SETPRIV, run_console
from fakes.moto_server import moto_aws  # noqa: F401  (fixture)

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
IV = 900_000


# --------------------------------------------------------------------------- inputs

def _ohlcv_csv(path: Path, n: int = 300, step: int = IV, t0: int = T0, times=None) -> Path:
    k = synthetic_klines(t0, n)
    t = t0 + step * np.arange(n) if times is None else times
    df = pd.DataFrame({"Timestamp": t, "Open": k.open, "High": k.high, "Low": k.low, "Close": k.close,
                       "Volume": k.volume})
    df.to_csv(path, index=False)
    return path


def _kline_csv_bytes(n: int = 2000) -> bytes:
    k = synthetic_klines(T0, n)
    return k.assign(ignore=0).to_csv(header=False, index=False).encode()


def truncated_gz(tmp: Path) -> Path:
    data = gzip.compress(_ohlcv_csv(tmp / "plain.csv", 3000).read_bytes())
    p = tmp / "candles.csv.gz"
    p.write_bytes(data[: len(data) // 2])
    return p


def truncated_zip(tmp: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("BTCUSDT-15m-2024-01.csv", _kline_csv_bytes())
    p = tmp / "BTCUSDT-15m-2024-01.zip"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return p


def two_member_zip(tmp: Path) -> Path:
    p = tmp / "two.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("a.csv", _kline_csv_bytes(10))
        z.writestr("b.csv", _kline_csv_bytes(10))
    return p


def unreadable(tmp: Path) -> Path:
    p = _ohlcv_csv(tmp / "secret.csv")
    p.chmod(0)
    return p


def fifo(tmp: Path) -> Path:
    p = tmp / "pipe.csv"
    os.mkfifo(p)
    return p


def empty(tmp: Path) -> Path:
    p = tmp / "empty.csv"
    p.write_bytes(b"")
    return p


def garbage(tmp: Path) -> Path:
    p = tmp / "noise.csv"
    p.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return p


def csv_named_parquet(tmp: Path) -> Path:
    p = tmp / "candles.parquet"
    p.write_bytes(_ohlcv_csv(tmp / "x.csv").read_bytes())
    return p


def negative_ms(tmp: Path) -> Path:  # milliseconds before 1970: never read as seconds
    return _ohlcv_csv(tmp / "old.csv", times=-86_400_000 * 365 + IV * np.arange(300))


def iso_2150(tmp: Path) -> Path:
    p = tmp / "future.csv"
    df = pd.read_csv(_ohlcv_csv(tmp / "x.csv"))
    df["Timestamp"] = pd.date_range("2150-01-01", periods=len(df), freq="15min").strftime("%Y-%m-%dT%H:%M:%SZ")
    df.to_csv(p, index=False)
    return p


def beyond_int64(tmp: Path) -> Path:
    p = tmp / "huge.csv"
    df = pd.read_csv(_ohlcv_csv(tmp / "x.csv"))
    df["Timestamp"] = [str(10 ** 19 + i) for i in range(len(df))]
    df.to_csv(p, index=False)
    return p


def five_minute_named_15m(tmp: Path) -> Path:
    return _ohlcv_csv(tmp / "ETHUSDT-15m-2024-01.csv", step=300_000)


def five_minute_csv(tmp: Path) -> Path:
    return _ohlcv_csv(tmp / "five.csv", step=300_000)


def eth_file(tmp: Path) -> Path:
    return _ohlcv_csv(tmp / "ETHUSDT-15m-spot-2024-01-01_2024-01-04.csv")


def _dataset(tmp: Path, name: str = "bad_ds") -> Path:
    root = tmp / name
    upsert_candles(str(root), "BTCUSDT", "15m", synthetic_klines(T0, 3000))
    return root


def string_prices(tmp: Path) -> Path:
    root = _dataset(tmp)
    part = root / "symbol=BTCUSDT/interval=15m/year=2024/month=01/part-0.parquet"
    t = pq.read_table(part)
    t = t.set_column(t.schema.get_field_index("open"), "open", pa.array([str(v) for v in t["open"].to_pylist()]))
    pq.write_table(t, part)
    return root


def month_13(tmp: Path) -> Path:
    root = _dataset(tmp)
    shutil.copytree(root / "symbol=BTCUSDT/interval=15m/year=2024/month=01",
                    root / "symbol=BTCUSDT/interval=15m/year=2024/month=13")
    return root


def year_abc(tmp: Path) -> Path:
    root = _dataset(tmp)
    shutil.copytree(root / "symbol=BTCUSDT/interval=15m/year=2024", root / "symbol=BTCUSDT/interval=15m/year=20x4")
    return root


def not_a_dataset(tmp: Path) -> Path:
    p = tmp / "just_a_folder"
    p.mkdir()
    (p / "notes.txt").write_text("hello")
    return p


def _repetitive_csv_bytes(rows: int) -> bytes:
    """A valid OHLCV CSV of ``rows`` rows that compresses about 100 to 1."""
    t = T0 + IV * np.arange(rows)
    return ("Timestamp,Open,High,Low,Close,Volume\n" + "".join(f"{v},100,101,99,100,1\n" for v in t)).encode()


def gz_claiming_3gb(tmp: Path) -> Path:
    """A small gzip whose ISIZE field (the header's size estimate) says 3,000,000,000 bytes."""
    data = bytearray(gzip.compress(_repetitive_csv_bytes(100)))
    data[-4:] = (3_000_000_000).to_bytes(4, "little")
    p = tmp / "claims-3gb.csv.gz"
    p.write_bytes(bytes(data))
    return p


def zip_of_5mb(tmp: Path) -> Path:
    p = tmp / "big.csv.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.csv", _repetitive_csv_bytes(120_000))  # 3.7 MB of text
    return p


def two_member_gz(tmp: Path) -> Path:
    """3.7 MB of text in two gzip members: the last member's ISIZE (what a header check sees) says 37 bytes."""
    text = _repetitive_csv_bytes(120_000)
    p = tmp / "members.csv.gz"
    p.write_bytes(gzip.compress(text) + gzip.compress(b"\n" * 37))
    return p


def one_row(tmp: Path) -> Path:
    return _ohlcv_csv(tmp / "one.csv", n=1)


def one_minute_off_grid(tmp: Path) -> Path:
    times = T0 + IV * np.arange(300)
    times[150:] += 60_000  # from row 151 on, every open is one minute late
    return _ohlcv_csv(tmp / "shifted.csv", times=times)


def bad_symbol_folder(tmp: Path) -> Path:
    root = tmp / "odd_ds"
    upsert_candles(str(root), "BTCUSDT", "15m", synthetic_klines(T0, 300))
    (root / "symbol=BTCUSDT").rename(root / "symbol=btc usdt")
    return root


def config(tmp: Path, **data) -> Path:
    lines = ["data:"] + [f"  {k}: {v}" for k, v in data.items()]
    lines += ["strategies:", "  ma_crossover: {short_window: [5], long_window: [20]}"]
    p = tmp / "cfg.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


# --------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Path, Path], list]   # (tmp, the stored dataset) -> arguments after `backtest`
    expect: str                          # words the one error line must hold


def _inspect(make):
    return lambda tmp, ds: ["data", "inspect", make(tmp)]


def _run(make, **cfg):
    def argv(tmp, ds):
        path = make(tmp)
        return ["run", "--config", config(tmp, **cfg), "--data", path, "--out", tmp / "results", "--no-progress"]
    return argv


def _build(make):
    return lambda tmp, ds: ["data", "build", "--input", make(tmp), "--symbol", "BTCUSDT", "--interval", "15m",
                            "--out", ds]


LOCAL_CASES = [
    Case("truncated csv.gz: inspect", _inspect(truncated_gz), "truncated or corrupt compressed file"),
    Case("truncated csv.gz: run", _run(truncated_gz), "truncated or corrupt compressed file"),
    Case("truncated csv.gz: build", _build(truncated_gz), "truncated or corrupt compressed file"),
    Case("truncated zip: inspect", _inspect(truncated_zip), "truncated or corrupt compressed file"),
    Case("truncated zip: build", _build(truncated_zip), "truncated or corrupt compressed file"),
    Case("zip with two CSVs", _inspect(two_member_zip), "not a readable CSV"),
    Case("unreadable file", _inspect(unreadable), "permission denied"),
    Case("FIFO: inspect", _inspect(fifo), "is a FIFO (named pipe), not a candle file"),
    Case("FIFO: run --data", _run(fifo), "is a FIFO (named pipe), not a candle file"),
    Case("FIFO: build --input", _build(fifo), "is a FIFO (named pipe), not a candle file"),
    Case("character device", lambda tmp, ds: ["data", "inspect", "/dev/zero"], "is a character device"),
    Case("empty file", _inspect(empty), "file is empty"),
    Case("random bytes", _inspect(garbage), "noise.csv"),
    Case("CSV named .parquet", _inspect(csv_named_parquet), "not a readable Parquet file"),
    Case("ms before 1970", _inspect(negative_ms), "is not a date between 1970 and 2100"),
    Case("ISO time in 2150", _inspect(iso_2150), "is outside 1970-01-01 .. 2100-01-01"),
    Case("timestamp beyond int64", _inspect(beyond_int64), "is not a date between 1970 and 2100"),
    Case("file name interval vs spacing", _inspect(five_minute_named_15m),
         "the file name says 15m but the candles are 5m apart"),
    Case("data.interval vs spacing", _run(five_minute_csv, interval="15m"),
         "data.interval is 15m but the candles are 5m apart"),
    Case("file name symbol vs data.symbol", _run(eth_file, symbol="BTCUSDT"),
         "the file name says ETHUSDT but data.symbol is BTCUSDT"),
    Case("string prices in a partition: inspect", _inspect(string_prices), "column open is string"),
    Case("string prices in a partition: run", _run(string_prices), "column open is string"),
    Case("month=13 partition: inspect", _inspect(month_13), "bad partition folder year=2024/month=13"),
    Case("month=13 partition: run", _run(month_13), "bad partition folder year=2024/month=13"),
    Case("month=13 partition: fetch", lambda tmp, ds: [
        "data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-01-01", "--end", "2024-02-01",
        "--out", month_13(tmp), "--base-url", "http://127.0.0.1:9"], "bad partition folder year=2024/month=13"),
    Case("year=20x4 partition", _inspect(year_abc), "bad partition folder year=20x4"),
    Case("folder that is not a dataset", _inspect(not_a_dataset), "not a candles dataset"),
    Case("start > end: synthetic", lambda tmp, ds: [
        "run", "--config", config(tmp, source="synthetic", start="2023-06-01", end="2023-01-01"),
        "--out", tmp / "results"], "is not before the end"),
    Case("start > end: file", _run(lambda tmp: _ohlcv_csv(tmp / "ok.csv"), start="2024-01-03", end="2024-01-02"),
         "is not before the end"),
    Case("start > end: dataset", lambda tmp, ds: [
        "run", "--config", config(tmp, start="2024-01-03", end="2024-01-02"), "--data", ds, "--out", tmp / "r"],
         "is not before the end"),
    Case("start > end: fetch", lambda tmp, ds: [
        "data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-02-01", "--end", "2024-01-01",
        "--out", ds, "--base-url", "http://127.0.0.1:9"], "is not before the end"),
    Case("start > end: backfill", lambda tmp, ds: [
        "data", "backfill", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-03", "--end", "2024-01",
        "--source", tmp, "--out", ds], "--start 2024-03 is after --end 2024-01"),
    Case("month 13 in backfill --start", lambda tmp, ds: [
        "data", "backfill", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-13", "--source", tmp,
        "--out", ds], "month from 01 to 12"),
    Case("fetch --start in 1900", lambda tmp, ds: [
        "data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "1900-01-01", "--out", ds,
        "--base-url", "http://127.0.0.1:9"], "outside 1970-01-01 .. 2100-01-01"),
    Case("fetch --start too large", lambda tmp, ds: [
        "data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "9" * 30, "--out", ds,
        "--base-url", "http://127.0.0.1:9"], "is not a date between 1970 and 2100"),
    Case("data.start in 2150", lambda tmp, ds: [
        "run", "--config", config(tmp, start="2150-01-01"), "--data", ds, "--out", tmp / "r"], "data.start"),
    # issue 22 item 2: compressed inputs are bounded, and the line says how to raise the bound
    Case("gz header says 3 GB: inspect", _inspect(gz_claiming_3gb),
         "decompresses to 3,000,000,000 bytes, above the limit of 1,073,741,824 bytes per candle file; if it is "
         "meant to be this large, raise data.max_input_bytes in the config (or --max-input-bytes on backtest data)"),
    Case("gz header says 3 GB: run", _run(gz_claiming_3gb), "raise data.max_input_bytes"),
    Case("gz header says 3 GB: build", _build(gz_claiming_3gb), "decompresses to 3,000,000,000 bytes"),
    Case("zip member above --max-input-bytes: inspect", lambda tmp, ds: [
        "data", "inspect", zip_of_5mb(tmp), "--max-input-bytes", "1000000"],
         "decompresses to 3,720,037 bytes, above the limit of 1,000,000 bytes"),  # 37 + 120,000 × 31
    Case("two-member gz past the bound while streaming: run", _run(two_member_gz, max_input_bytes=1_000_000),
         "decompresses to more than the limit of 1,000,000 bytes per candle file"),
    Case("two-member gz past the bound while streaming: build", lambda tmp, ds: [
        "data", "build", "--input", two_member_gz(tmp), "--symbol", "BTCUSDT", "--interval", "15m", "--out", ds,
        "--max-input-bytes", "1000000"], "decompresses to more than the limit of 1,000,000 bytes"),
    Case("--max-input-bytes 0", lambda tmp, ds: ["data", "inspect", zip_of_5mb(tmp), "--max-input-bytes", "0"],
         "expected bytes from 1 to 2^50"),
    Case("data.max_input_bytes: -1", _run(lambda tmp: _ohlcv_csv(tmp / "ok.csv"), max_input_bytes=-1),
         "data.max_input_bytes"),
    # issue 22 item 3: names that could escape --out
    Case("build --symbol ../../../X", lambda tmp, ds: [
        "data", "build", "--input", _ohlcv_csv(tmp / "ok.csv"), "--symbol", "../../../X", "--interval", "15m",
        "--out", ds], "'../../../X' is not a Binance symbol"),
    Case("fetch --symbol ../../../X", lambda tmp, ds: [
        "data", "fetch", "--symbol", "../../../X", "--interval", "15m", "--start", "2024-01-01", "--out", ds,
        "--base-url", "http://127.0.0.1:9"], "is not a Binance symbol"),
    Case("build --symbol ''", lambda tmp, ds: [
        "data", "build", "--input", _ohlcv_csv(tmp / "ok.csv"), "--symbol", "", "--interval", "15m", "--out", ds],
         "'' is not a Binance symbol"),
    Case("backfill --symbol BTC/USDT", lambda tmp, ds: [
        "data", "backfill", "--symbol", "BTC/USDT", "--interval", "15m", "--start", "2024-01", "--source", tmp,
        "--out", ds], "'BTC/USDT' is not a Binance symbol"),
    Case("data.symbol ../x", _run(lambda tmp: _ohlcv_csv(tmp / "ok.csv"), symbol="../x"),
         "data.symbol: '../x' is not a Binance symbol"),
    Case("dataset folder symbol=btc usdt: run", _run(bad_symbol_folder),
         "folder symbol=btc usdt/interval=15m: 'btc usdt' is not a Binance symbol"),
    Case("dataset folder symbol=btc usdt: inspect", _inspect(bad_symbol_folder),
         "1 problem(s); first: "),
    Case("build --out ''", lambda tmp, ds: [
        "data", "build", "--input", _ohlcv_csv(tmp / "ok.csv"), "--symbol", "BTCUSDT", "--interval", "15m",
        "--out", ""], "empty path"),
    Case("inspect ''", lambda tmp, ds: ["data", "inspect", ""], "empty path"),
    # issue 22 item 6: off the grid, and one row
    Case("one minute off the 15m grid: inspect", _inspect(one_minute_off_grid),
         "150 open time(s) off the 15m grid (not a whole number of 15m bars after the first candle at "
         "2024-01-01 00:00:00); first at 2024-01-02 13:31:00"),
    Case("one row: inspect", _inspect(one_row), "one candle, so its interval cannot be read from the data"),
    Case("one row: run", _run(one_row), "one candle, so its interval cannot be read from the data; set "
         "data.interval"),
    Case("build --out a file", lambda tmp, ds: [
        "data", "build", "--input", _ohlcv_csv(tmp / "ok.csv"), "--symbol", "BTCUSDT", "--interval", "15m",
        "--out", _ohlcv_csv(tmp / "a-file.csv")], "is a file, not a folder"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every stored file (the lock file, which holds no data, is left out)."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files if not p.relative_to(root).as_posix().startswith("_locks/")}


def _cli(argv: list, env: dict | None = None) -> subprocess.CompletedProcess:
    """``backtest <argv>`` in a process of its own, without any capability: root reads any file, and an
    ordinary user has none of them."""
    return run_console(argv, env=dict(os.environ) if env is None else env, inherit_env=False, drop_caps=True,
                       timeout=90)


def _check(proc: subprocess.CompletedProcess, expect: str) -> None:
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expect in lines[0], lines[0]


@pytest.mark.parametrize("case", LOCAL_CASES, ids=[c.id for c in LOCAL_CASES])
def test_bad_local_input_is_one_line_and_exit_2(case: Case, tmp_path: Path):
    if case.id == "unreadable file" and os.geteuid() == 0 and not SETPRIV:
        pytest.skip("running as root without setpriv: no way to make a file unreadable")
    ds = _dataset(tmp_path, "stored")
    before = _snapshot(ds)
    argv = case.argv(tmp_path, ds)
    inputs = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in argv
              if isinstance(p, Path) and p.is_file() and os.access(p, os.R_OK) and p.suffix != ".yaml"}
    proc = _cli(argv)
    if os.environ.get("SHOW_BAD_INPUTS"):
        print(f"\nCASE {case.id} | exit {proc.returncode} | {proc.stderr.strip()}")
    _check(proc, case.expect)
    assert _snapshot(ds) == before
    for p, digest in inputs.items():
        assert hashlib.sha256(Path(p).read_bytes()).hexdigest() == digest


# --------------------------------------------------------------------------- S3 (a moto server)

S3_CASES = [
    Case("unknown bucket: inspect", lambda b, ds: ["data", "inspect", "s3://no-such-bucket-x1/candles/"],
         "s3://no-such-bucket-x1/candles/: no such bucket"),
    Case("unknown bucket: run", lambda b, ds: ["run", "--config", config(ds.parent), "--data",
                                               "s3://no-such-bucket-x1/candles/", "--out", ds.parent / "r"],
         "no such bucket"),
    Case("unknown bucket: fetch", lambda b, ds: [
        "data", "fetch", "--symbol", "BTCUSDT", "--interval", "15m", "--start", "2024-01-01",
        "--out", "s3://no-such-bucket-x1/candles/", "--base-url", "http://127.0.0.1:9"], "no such bucket"),
    Case("unknown bucket: sync", lambda b, ds: ["data", "sync", "s3://no-such-bucket-x1/candles/",
                                                ds.parent / "copy"], "no such bucket"),
    Case("unknown key: inspect", lambda b, ds: ["data", "inspect", f"s3://{b}/nothing-here/"],
         "not a candles dataset"),
    Case("unknown key: run", lambda b, ds: ["run", "--config", config(ds.parent), "--data",
                                            f"s3://{b}/nothing-here/", "--out", ds.parent / "r"],
         "not a candles dataset"),
    Case("unknown symbol: run", lambda b, ds: ["run", "--config", config(ds.parent, symbol="SOLUSDT"), "--data",
                                               f"s3://{b}/candles/", "--out", ds.parent / "r"],
         "no symbol=SOLUSDT in the dataset (found: BTCUSDT)"),
    # issue 22 item 4: a sync destination that cannot be a dataset folder
    Case("sync to a file", lambda b, ds: ["data", "sync", f"s3://{b}/candles/", _ohlcv_csv(ds.parent / "f.csv")],
         "sync destination "),
    Case("sync to /dev/null", lambda b, ds: ["data", "sync", f"s3://{b}/candles/", "/dev/null"],
         "sync destination /dev/null: is a device or other special file, not a folder"),
    Case("sync under a file", lambda b, ds: ["data", "sync", f"s3://{b}/candles/",
                                             _ohlcv_csv(ds.parent / "g.csv") / "sub"], "is a file, not a folder"),
    Case("sync --symbol ../x", lambda b, ds: ["data", "sync", f"s3://{b}/candles/", ds.parent / "copy",
                                              "--symbol", "../x"], "is not a Binance symbol"),
]


@pytest.fixture
def bucket_with_candles(moto_aws):  # noqa: F811
    import awswrangler as wr

    bucket = moto_aws.new_bucket("bad-inputs")
    wr.config.s3_endpoint_url = moto_aws.endpoint
    try:
        import boto3

        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        upsert_candles(f"s3://{bucket}/candles/", "BTCUSDT", "15m", synthetic_klines(T0, 500), session=session)
    finally:
        wr.config.reset("s3_endpoint_url")
    return moto_aws, bucket


def _s3_snapshot(aws, bucket: str) -> dict[str, str]:
    client = aws.client("s3")
    return {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


@pytest.mark.parametrize("case", S3_CASES, ids=[c.id for c in S3_CASES])
def test_bad_s3_input_is_one_line_and_exit_2(case: Case, bucket_with_candles, tmp_path: Path):
    aws, bucket = bucket_with_candles
    before = _s3_snapshot(aws, bucket)
    ds = tmp_path / "unused"
    proc = _cli(case.argv(bucket, ds), env=aws.subprocess_env())
    if os.environ.get("SHOW_BAD_INPUTS"):
        print(f"\nCASE {case.id} | exit {proc.returncode} | {proc.stderr.strip()}")
    _check(proc, case.expect)
    assert _s3_snapshot(aws, bucket) == before
    assert not (tmp_path / "copy").exists() or not any((tmp_path / "copy").rglob("*.parquet"))
