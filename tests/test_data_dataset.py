"""The Parquet dataset: upsert, pruning, atomic writes, hive compatibility, build/inspect CLI, S3 variant."""

from __future__ import annotations

from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import engine.data.dataset_local as dio
from engine.data.dataset import last_open_time, read_candle_dataset, upsert_candles
from engine.data.dataset_local import PART_FILE
from engine.errors import DataError
from engine.data.loader import load_candles
from fakes.candles import assert_same, stored, synthetic_klines
from fakes.cli import run_cli

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
IV = 900_000
MAR_2024 = 1_709_251_200_000
APR_2024 = 1_711_929_600_000
S3_ROOT = "s3://candle-bucket/candles/"


def _part(root, year: int, month: int, symbol="BTCUSDT", interval="15m") -> Path:
    return Path(root) / f"symbol={symbol}/interval={interval}/year={year:04d}/month={month:02d}" / PART_FILE


def _corrupt(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 this is not parquet PAR1")


@pytest.fixture
def k():
    return synthetic_klines(T0, 12_000)  # 2024-01-01 .. 2024-05-05: five month partitions


def test_upsert_writes_one_file_per_month_without_partition_columns(tmp_path, k):
    result = upsert_candles(str(tmp_path), "BTCUSDT", "15m", k)
    assert result.added == len(k)
    assert result.partitions == [f"symbol=BTCUSDT/interval=15m/year=2024/month={m:02d}/" for m in range(1, 6)]
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [r + PART_FILE for r in result.partitions]
    schema = pq.read_schema(_part(tmp_path, 2024, 1))
    assert not set(schema.names) & {"symbol", "interval", "year", "month"}
    assert pq.ParquetFile(_part(tmp_path, 2024, 1)).metadata.row_group(0).column(0).compression == "SNAPPY"
    assert_same(stored(tmp_path), k)
    # pyarrow's hive discovery and pandas read the root as a whole.
    table = ds.dataset(tmp_path, partitioning="hive").to_table()
    assert table.num_rows == len(k) and set(table.column("symbol").to_pylist()) == {"BTCUSDT"}
    assert len(pd.read_parquet(tmp_path)) == len(k)


def test_upsert_dedupes_later_copy_wins_and_never_loses_rows(tmp_path, k):
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k.iloc[:5000])
    changed = k.iloc[4000:7000].copy()
    changed["volume"] = changed["volume"] + 1.0
    result = upsert_candles(str(tmp_path), "BTCUSDT", "15m", changed.iloc[::-1])  # order does not matter
    assert result.added == 2000
    expected = pd.concat([k.iloc[:4000], changed], ignore_index=True)
    assert_same(stored(tmp_path), expected)


def test_read_prunes_partitions_by_time_range(tmp_path, k):
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k)
    _corrupt(_part(tmp_path, 2024, 4))  # must not be opened by a read of March
    df = stored(tmp_path, start=MAR_2024 + 10 * IV, end=APR_2024)
    t = k.open_time
    assert_same(df, k.loc[(t >= MAR_2024 + 10 * IV) & (t < APR_2024)])
    candles = load_candles(tmp_path, symbol="BTCUSDT", interval="15m", start=MAR_2024, end=APR_2024)
    assert candles.open_time[0] == MAR_2024 and candles.open_time[-1] == APR_2024 - IV
    assert candles.gaps.count == 0 and candles.symbol == "BTCUSDT"
    with pytest.raises(DataError, match=r"month=04/part-0.parquet: not a readable Parquet file"):
        read_candle_dataset(str(tmp_path))


def test_read_opens_only_needed_files(tmp_path, k, monkeypatch):
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k)
    opened = []
    real = dio._read_table  # every Parquet read goes through it
    monkeypatch.setattr(dio, "_read_table", lambda p, *a, **kw: opened.append(Path(p)) or real(p, *a, **kw))
    read_candle_dataset(str(tmp_path), symbol="BTCUSDT", interval="15m", start=MAR_2024 - IV, end=MAR_2024 + IV)
    assert opened == [_part(tmp_path, 2024, 2), _part(tmp_path, 2024, 3)]
    opened.clear()
    assert last_open_time(str(tmp_path), "BTCUSDT", "15m") == k.open_time.iloc[-1]
    assert opened == [_part(tmp_path, 2024, 5)]


def test_watermark_reads_only_the_newest_partition(tmp_path, k):
    assert last_open_time(str(tmp_path), "BTCUSDT", "15m") is None
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k)
    _corrupt(_part(tmp_path, 2024, 1))
    assert last_open_time(str(tmp_path), "BTCUSDT", "15m") == k.open_time.iloc[-1]


def test_several_series_need_a_choice(tmp_path, k):
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k.iloc[:100])
    upsert_candles(str(tmp_path), "ETHUSDT", "15m", k.iloc[:100])
    upsert_candles(str(tmp_path), "ETHUSDT", "1h", k.iloc[::4].iloc[:100])
    with pytest.raises(DataError, match=r"several symbols \(BTCUSDT, ETHUSDT\)"):
        read_candle_dataset(str(tmp_path))
    with pytest.raises(DataError, match=r"several intervals \(15m, 1h\)"):
        read_candle_dataset(str(tmp_path), symbol="ETHUSDT")
    with pytest.raises(DataError, match=r"no symbol=SOLUSDT in the dataset \(found: BTCUSDT, ETHUSDT\)"):
        read_candle_dataset(str(tmp_path), symbol="SOLUSDT")
    df, symbol = read_candle_dataset(str(tmp_path), symbol="ETHUSDT", interval="1h")
    assert symbol == "ETHUSDT" and len(df) == 100


def test_interrupted_write_leaves_the_old_partition_whole(tmp_path, k, monkeypatch):
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k.iloc[:4000])
    before = _part(tmp_path, 2024, 2).read_bytes()

    def half_then_crash(table, where, **kw):
        where.write(b"PAR1 half a file")  # the writer writes through the temp file's descriptor
        raise KeyboardInterrupt

    monkeypatch.setattr(dio.pq, "write_table", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        upsert_candles(str(tmp_path), "BTCUSDT", "15m", k.iloc[3000:6000])
    monkeypatch.undo()
    assert _part(tmp_path, 2024, 2).read_bytes() == before
    assert sorted(p.name for p in _part(tmp_path, 2024, 2).parent.iterdir()) == [PART_FILE]
    assert_same(stored(tmp_path), k.iloc[:4000])
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k.iloc[3000:6000])
    assert_same(stored(tmp_path), k.iloc[:6000])


def test_invalid_candles_are_refused_and_nothing_written(tmp_path, k):
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k.iloc[:100])
    bad = k.iloc[100:200].copy()
    bad.loc[bad.index[5], "high"] = bad.loc[bad.index[5], "low"] - 1
    with pytest.raises(DataError, match=r"row 106 \(2024-01-02 02:15:00\): high=.* is below low=.*"):
        upsert_candles(str(tmp_path), "BTCUSDT", "15m", bad)
    assert_same(stored(tmp_path), k.iloc[:100])


def test_extras_unknown_are_null(tmp_path, k):
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", k[["open_time", "open", "high", "low", "close", "volume"]])
    df, _ = read_candle_dataset(str(tmp_path))
    assert df.close_time.isna().all() and df.trades.isna().all() and df.quote_volume.isna().all()
    assert str(pq.read_schema(_part(tmp_path, 2024, 1)).field("trades").type) == "int64"


# ------------------------------------------------------------------ build / inspect CLI

def _csv(path: Path, k: pd.DataFrame) -> Path:
    k[["open_time", "open", "high", "low", "close", "volume"]].rename(columns={"open_time": "Timestamp"}).rename(
        columns=str.title).to_csv(path, index=False, float_format="%.8f")
    return path


def test_build_from_csv_later_input_wins_then_inspect(tmp_path, k, capsys):
    a = _csv(tmp_path / "a.csv", k.iloc[:6000])
    changed = k.iloc[5000:9000].copy()
    changed["volume"] = [float(f"{v + 2:.8f}") for v in changed.volume]  # exact through the CSV
    b = _csv(tmp_path / "b.csv", changed)
    out = tmp_path / "ds"
    code, stdout, err = run_cli(["data", "build", "--input", a, b, "--symbol", "BTCUSDT", "--interval", "15m",
                                 "--out", out], capsys)
    assert code == 0 and err == ""
    last = pd.Timestamp(int(k.open_time[8999]), unit="ms").strftime("%Y-%m-%d %H:%M:%S")
    assert f"9000 candle(s) BTCUSDT 15m 2024-01-01 00:00:00 .. {last} UTC, 9000 new" in stdout
    df, _ = read_candle_dataset(str(out))
    assert np.array_equal(df.volume, np.concatenate([k.volume[:5000], changed.volume]))
    code, stdout, err = run_cli(["data", "inspect", out], capsys)
    assert code == 0, err
    assert "rows:     9000" in stdout and "gaps:     0" in stdout and "problems: none" in stdout


def test_build_keeps_binance_extra_columns_and_checks_interval(tmp_path, k, capsys):
    src = tmp_path / "klines.csv"
    k.iloc[:500].assign(ignore=0).to_csv(src, header=False, index=False, float_format="%.8f")
    code, _, err = run_cli(["data", "build", "--input", src, "--symbol", "BTCUSDT", "--interval", "15m",
                            "--out", tmp_path / "ds"], capsys)
    assert code == 0, err
    assert_same(stored(tmp_path / "ds"), k.iloc[:500])
    code, _, err = run_cli(["data", "build", "--input", src, "--symbol", "BTCUSDT", "--interval", "5m",
                            "--out", tmp_path / "ds"], capsys)
    assert code == 2 and "bars are 15m apart but --interval is 5m" in err


def test_build_and_inspect_real_candles(real_15m_csv, tmp_path, capsys):
    code, stdout, err = run_cli(["data", "build", "--input", real_15m_csv, "--symbol", "BTCUSDT",
                                 "--interval", "15m", "--out", tmp_path], capsys)
    assert code == 0, err
    assert "40000 candle(s)" in stdout and "no gaps" in stdout
    raw = pd.read_csv(real_15m_csv)
    candles = load_candles(tmp_path, symbol="BTCUSDT", interval="15m")
    assert np.array_equal(candles.open_time, raw.Timestamp) and np.array_equal(candles.close, raw.Close)
    assert candles.fingerprint() == load_candles(real_15m_csv).fingerprint()


def test_inspect_reports_gaps_and_problems(tmp_path, k, capsys):
    holes = k.drop(index=list(range(100, 103)) + [5000])
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", holes)
    code, stdout, _ = run_cli(["data", "inspect", tmp_path], capsys)
    assert code == 0
    assert "gaps:     2 (4 missing bar(s); largest 3 missing bar(s) before 2024-01-02 01:45:00)" in stdout
    _corrupt(_part(tmp_path, 2024, 3))
    code, stdout, err = run_cli(["data", "inspect", tmp_path], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path}: 1 problem(s); first: ") and "month=03/part-0.parquet" in err
    assert "problems: 1" in stdout


def test_inspect_bad_file_exits_2_with_one_line(tmp_path, k, capsys):
    bad = k.iloc[:50].copy()
    bad.loc[10, "low"] = -1.0
    path = _csv(tmp_path / "bad.csv", bad)
    code, stdout, err = run_cli(["data", "inspect", path], capsys)
    assert code == 2 and stdout == ""
    assert err.startswith(f"error: {path}: row 11 (2024-01-01 02:30:00): low=") and err.count("\n") == 1
    assert err.endswith("must be a finite price above 0\n")
    code, stdout, err = run_cli(["data", "inspect", _csv(tmp_path / "ok.csv", k.iloc[:50])], capsys)
    assert code == 0 and "rows:     50" in stdout and "interval: 15m" in stdout


# ------------------------------------------------------------------ S3

@pytest.fixture
def bucket(data_aws):
    boto3.client("s3").create_bucket(Bucket="candle-bucket")
    return boto3.Session()


def test_s3_upsert_read_prune_and_watermark(bucket, k):
    upsert_candles(S3_ROOT, "BTCUSDT", "15m", k.iloc[:7000], session=bucket)
    changed = k.iloc[6000:].copy()
    changed["close"] = changed["close"]  # same values: re-writing is idempotent
    result = upsert_candles(S3_ROOT, "BTCUSDT", "15m", changed, session=bucket)
    assert result.added == len(k) - 7000
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="candle-bucket")["Contents"]]
    assert len(keys) == 5 and all(key.endswith(".snappy.parquet") for key in keys)  # one file per month
    assert_same(stored(S3_ROOT, session=bucket), k)
    assert last_open_time(S3_ROOT, "BTCUSDT", "15m", session=bucket) == k.open_time.iloc[-1]
    # A broken object in April must not be read for March.
    s3.put_object(Bucket="candle-bucket", Body=b"not parquet",
                  Key="candles/symbol=BTCUSDT/interval=15m/year=2024/month=04/zzz.parquet")
    t = k.open_time
    assert_same(stored(S3_ROOT, start=MAR_2024, end=APR_2024, session=bucket),
                k.loc[(t >= MAR_2024) & (t < APR_2024)])
    candles = load_candles(S3_ROOT, symbol="BTCUSDT", interval="15m", start=MAR_2024, end=APR_2024)
    assert len(candles) == int(((t >= MAR_2024) & (t < APR_2024)).sum())
    # hive reading of the files written by awswrangler: no partition columns inside
    obj = s3.get_object(Bucket="candle-bucket", Key=sorted(keys)[0])["Body"].read()
    import io
    assert not set(pq.read_schema(io.BytesIO(obj)).names) & {"symbol", "interval", "year", "month"}


def test_s3_several_symbols_named(bucket, k):
    upsert_candles(S3_ROOT, "BTCUSDT", "15m", k.iloc[:10], session=bucket)
    upsert_candles(S3_ROOT, "ETHUSDT", "15m", k.iloc[:10], session=bucket)
    with pytest.raises(DataError, match=r"several symbols \(BTCUSDT, ETHUSDT\)"):
        read_candle_dataset(S3_ROOT, session=bucket)


def test_inspect_s3_dataset(bucket, k, capsys):
    upsert_candles(S3_ROOT, "BTCUSDT", "15m", k.iloc[:3000], session=bucket)
    code, stdout, err = run_cli(["data", "inspect", S3_ROOT], capsys)
    assert code == 0, err
    assert f"{S3_ROOT}: BTCUSDT 15m" in stdout and "rows:     3000" in stdout and "problems: none" in stdout
