"""One loader for every layout: headed CSV, headerless Binance klines, zips, Parquet; units; gaps."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from engine.errors import DataError
from engine.data.loader import load_candles
from engine.timeutil import to_milliseconds

T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC in ms
STEP = 900_000


def frame(n: int = 6, t0: int = T0) -> pd.DataFrame:
    close = 100.0 + np.arange(n)
    return pd.DataFrame({"open_time": t0 + STEP * np.arange(n), "open": close - 0.5, "high": close + 1,
                         "low": close - 1, "close": close, "volume": np.full(n, 2.5)})


def kline_rows(df: pd.DataFrame, scale: int = 1) -> list[list]:
    return [[int(r.open_time) * scale, f"{r.open:.8f}", f"{r.high:.8f}", f"{r.low:.8f}", f"{r.close:.8f}",
             f"{r.volume:.8f}", int(r.open_time) * scale + STEP * scale - 1, "1.0", 10, "0.5", "0.6", "0"]
            for r in df.itertuples()]


def assert_same(c, df: pd.DataFrame):
    np.testing.assert_array_equal(c.open_time, df["open_time"].to_numpy())
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(c, col), df[col].to_numpy())


def test_headed_csv_any_case(tmp_path):
    df = frame()
    p = tmp_path / "x.csv"
    df.rename(columns={"open_time": "TIMESTAMP", "open": "Open", "high": "HIGH"}).to_csv(p, index=False)
    c = load_candles(p)
    assert_same(c, df)
    assert c.interval_ms == STEP and c.interval == "15m" and c.gaps.count == 0


@pytest.mark.parametrize("scale,label", [(1, "ms"), (1000, "µs")])
def test_headerless_binance_kline_csv_and_zip(tmp_path, scale, label):
    df = frame()
    rows = kline_rows(df, scale)
    p = tmp_path / f"BTCUSDT-15m-{label}.csv"
    p.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    assert_same(load_candles(p), df)
    z = tmp_path / f"BTCUSDT-15m-{label}.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(p, p.name)
    assert_same(load_candles(z), df)


def test_timestamp_units_detected_from_size():
    ms = 1_706_517_900_000
    got = to_milliseconds(np.array([ms // 1000, ms, ms * 1000, ms * 1_000_000]))
    np.testing.assert_array_equal(got, [ms, ms, ms, ms])


def test_parquet_file(tmp_path):
    df = frame()
    p = tmp_path / "x.parquet"
    df.to_parquet(p)
    assert_same(load_candles(p), df)


def test_time_filter_and_gap_report(tmp_path):
    df = frame(10)
    df = df.drop(index=[3, 4, 7]).reset_index(drop=True)  # a 2-bar hole and a 1-bar hole
    p = tmp_path / "g.csv"
    df.to_csv(p, index=False)
    c = load_candles(p)
    assert c.interval_ms == STEP
    assert (c.gaps.count, c.gaps.missing_bars, c.gaps.largest_ms) == (2, 3, 3 * STEP)
    assert c.gaps.largest_at == T0 + 5 * STEP
    cut = load_candles(p, start=T0 + 2 * STEP, end=T0 + 8 * STEP)
    np.testing.assert_array_equal(cut.open_time, T0 + STEP * np.array([2, 5, 6]))


def test_missing_file_and_wrong_layouts(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_candles(tmp_path / "nope.csv")
    p = tmp_path / "seven.csv"
    p.write_text("1706517900000,1,2,0.5,1.5,3,9\n")
    with pytest.raises(DataError, match="headerless CSV has 7 columns"):
        load_candles(p)
    q = tmp_path / "broken.parquet"
    q.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_candles(q)


# ------------------------------------------------------------------ units by plausible date, identity

def test_units_are_read_by_plausible_date_not_size():
    ms = 1_706_517_900_000  # 2024-01-29 08:45 UTC
    np.testing.assert_array_equal(to_milliseconds(np.array([1_706_517_900, ms, ms * 1000, ms * 1_000_000])),
                                  [ms] * 4)
    # 2099-12-31 in seconds (4.1e9) is seconds, not a January-1970 millisecond time.
    assert to_milliseconds(np.array([4_102_358_400]))[0] == 4_102_358_400_000
    # June 2100 in seconds is no date; as milliseconds it is one (February 1970): the coarsest unit that fits.
    assert to_milliseconds(np.array([4_115_750_400]))[0] == 4_115_750_400
    with pytest.raises(DataError, match=r"timestamp -86400000 \(row 2\) is not a date between 1970 and 2100"):
        to_milliseconds(np.array([0, -86_400_000]))  # milliseconds before 1970 are not seconds
    with pytest.raises(DataError, match="is not a date between 1970 and 2100"):
        to_milliseconds(np.array([2 ** 63 - 1]))


def test_symbol_comes_from_the_file_name_else_data_symbol_else_unknown(tmp_path):
    df = frame()
    named = tmp_path / "ETHUSDT-15m-spot-2025-01-01_2025-01-02.csv"
    df.to_csv(named, index=False)
    assert load_candles(named).symbol == "ETHUSDT"
    plain = tmp_path / "candles.csv"
    df.to_csv(plain, index=False)
    assert load_candles(plain).symbol == "unknown"
    assert load_candles(plain, symbol="SOLUSDT").symbol == "SOLUSDT"
    with pytest.raises(DataError, match="the file name says ETHUSDT but data.symbol is BTCUSDT"):
        load_candles(named, symbol="BTCUSDT")


def test_an_interval_that_contradicts_the_spacing_is_an_error(tmp_path):
    p = tmp_path / "x.csv"
    frame(20).to_csv(p, index=False)  # 15-minute bars
    assert load_candles(p, interval="15m").interval_ms == STEP
    with pytest.raises(DataError, match="data.interval is 5m but the candles are 15m apart"):
        load_candles(p, interval="5m")
    named = tmp_path / "BTCUSDT-1h-2025-01.csv"
    frame(20).to_csv(named, index=False)
    with pytest.raises(DataError, match="the file name says 1h but the candles are 15m apart"):
        load_candles(named)


def test_a_fifo_is_refused_without_being_opened(tmp_path):
    import os

    p = tmp_path / "pipe.csv"
    os.mkfifo(p)
    with pytest.raises(DataError, match="is a FIFO"):  # opening it would wait for a writer forever
        load_candles(p)
