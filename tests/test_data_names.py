"""Names that cannot escape (issue 22 item 3) and the data-side odd values (item 6).

* ``engine.filenames.file_name``: the one way to make a file name from user input.
* A symbol given to the data layer's API (not only through the CLI's checks) never reaches a path.
* Planted symlinks at the data layer's predictable names are never followed.
* ``data sync`` copies only keys in the dataset layout.
* One candle and off-grid candles; a sync destination that cannot be written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.backfill import backfill
from engine.data.build import build_dataset
from engine.data.dataset import read_candle_dataset, upsert_candles
from engine.data.fetch import fetch_candles
from engine.data.inspect import inspect_path
from engine.data.loader import load_candles
from engine.data.outages import record_outages
from engine.data.series_lock import hold_series
from engine.data.sync import MANIFEST, sync_dataset
from engine.errors import UserError
from engine.filenames import file_name, text_of
from fakes.candles import assert_same, stored, synthetic_klines
from fakes.cli import run_cli
from fakes.cli_process import can_mount_tmpfs, is_root, run_console, tmpfs

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
IV = 900_000


# --------------------------------------------------------------------------- file names from user input

@pytest.mark.parametrize("text,name", [
    ("ma_crossover", "ma_crossover"),
    ("ma_crossover_short_window=5_stop_loss=1e+20", "ma_crossover_short_window=5_stop_loss=1e+20"),
    ("mypkg.strategies:TrendRSI", "mypkg.strategies%3ATrendRSI"),
    ("../../x", "%2E%2E%2F.%2E%2Fx"),        # a leading dot and a dot after a dot are encoded; "/" always
    ("BTC/USDT", "BTC%2FUSDT"),
    ("a\\b", "a%5Cb"),
    ("a\x00b\nc", "a%00b%0Ac"),
    ("50%", "50%25"),
    ("café", "caf%C3%A9"),
    (".", "%2E"),
    ("..", "%2E%2E"),
    (".hidden", "%2Ehidden"),
    ("name.", "name%2E"),
    ("<!--<script>", "%3C!--%3Cscript%3E".replace("!", "%21")),
    ("a b~c", "a%20b%7Ec"),
])
def test_file_name_table(text, name):
    assert file_name(text) == name
    assert text_of(name) == text


def test_file_name_refuses_nothing_to_name():
    for bad in ("", None, 3):
        with pytest.raises(ValueError):
            file_name(bad)


def test_long_names_end_in_a_hash_of_the_whole_text():
    text = "a" * 200
    assert file_name(text) == "a" * 103 + "~" + hashlib.sha256(text.encode()).hexdigest()[:16]
    assert len(file_name(text)) == 120
    # an escape is never cut in two: 102 kept characters, then "%2F" would straddle the cut
    cut = file_name("b" * 102 + "/" * 40)
    assert cut.startswith("b" * 102 + "~") and len(cut) == 102 + 17
    with pytest.raises(ValueError, match="shortened"):
        text_of(cut)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_file_names_are_safe_distinct_and_reversible(a, b):
    na, nb = file_name(a), file_name(b)
    for name in (na, nb):
        assert name and "/" not in name and "\\" not in name and "\x00" not in name
        assert not name.startswith(".") and ".." not in name and not name.endswith(".")
        assert all(32 < ord(c) < 127 for c in name)
    if "~" not in na:  # a shortened name ends in a hash instead
        assert text_of(na) == a
    assert (na == nb) == (a == b)


# --------------------------------------------------------------------------- symbols never reach a path

def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _csv(path: Path, n: int = 50, times=None) -> Path:
    k = synthetic_klines(T0, n)
    if times is not None:
        k["open_time"] = times
    k[["open_time", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    return path


@pytest.mark.parametrize("symbol", ["../../../X", "", "BTC/USDT", ".", "..", "btc\nusdt", "A" * 21])
def test_no_symbol_outside_the_pattern_reaches_a_path(tmp_path, symbol):
    """Straight through the API, past the CLI's own checks: every writer refuses before any path exists."""
    src = _csv(tmp_path / "in.csv")
    out = tmp_path / "a" / "b" / "c" / "out"
    before = _tree(tmp_path)
    attempts = [
        lambda: build_dataset([src], str(out), symbol, "15m"),
        lambda: fetch_candles(str(out), symbol, "15m", T0, T0 + 10 * IV),
        lambda: backfill(str(out), symbol, "15m", T0, T0 + 10 * IV, source=str(tmp_path)),
        lambda: upsert_candles(str(out), symbol, "15m", synthetic_klines(T0, 10)),
        lambda: hold_series(str(out), symbol, "15m").__enter__(),
        lambda: record_outages(str(out), symbol, "15m", [(T0, T0 + IV)]),
        lambda: sync_dataset("s3://bucket/candles/", out, symbol=symbol),
    ]
    for attempt in attempts:
        with pytest.raises(UserError, match="is not a Binance symbol"):
            attempt()
    assert _tree(tmp_path) == before


def test_an_interval_outside_the_list_never_reaches_a_path(tmp_path):
    out = tmp_path / "out"
    for interval in ("../x", "15", "1M"):
        with pytest.raises(UserError, match="is not a Binance kline interval"):
            upsert_candles(str(out), "BTCUSDT", interval, synthetic_klines(T0, 10))
    assert not out.exists()


# --------------------------------------------------------------------------- planted symlinks

def test_a_symlink_planted_at_the_series_lock_is_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    out = tmp_path / "ds"
    lock = out / "_locks/symbol=BTCUSDT/interval=15m.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    with pytest.raises(UserError, match="the series lock file is a symbolic link"):
        build_dataset([_csv(tmp_path / "in.csv")], str(out), "BTCUSDT", "15m")
    assert victim.read_text() == "keep me\n" and not (out / "symbol=BTCUSDT").exists()


def test_symlinks_planted_at_final_names_are_replaced_not_followed(tmp_path):
    """part-0.parquet, outages.json: written to a temporary file and renamed over the name, so a link
    planted there is replaced and its target keeps its bytes."""
    k = synthetic_klines(T0, 200)
    out = tmp_path / "ds"
    upsert_candles(str(out), "BTCUSDT", "15m", k.iloc[:100])
    part = out / "symbol=BTCUSDT/interval=15m/year=2024/month=01/part-0.parquet"
    target = tmp_path / "elsewhere.parquet"
    target.write_bytes(part.read_bytes())
    part.unlink()
    part.symlink_to(target)
    outages = out / "_meta/symbol=BTCUSDT/interval=15m/outages.json"
    outages.parent.mkdir(parents=True)
    victim = tmp_path / "victim.json"
    victim.write_text("keep me\n")
    outages.symlink_to(victim)
    before = target.read_bytes()
    upsert_candles(str(out), "BTCUSDT", "15m", k.iloc[100:])
    with pytest.raises(UserError):
        record_outages(str(out), "BTCUSDT", "15m", [(T0 - IV, T0)])  # reads the planted file first: not JSON
    outages.unlink()
    outages.symlink_to(tmp_path / "victim2.json")
    (tmp_path / "victim2.json").write_text(json.dumps({"outages": []}))
    record_outages(str(out), "BTCUSDT", "15m", [(T0 - IV, T0)])
    assert not part.is_symlink() and target.read_bytes() == before
    assert not outages.is_symlink() and (tmp_path / "victim2.json").read_text() == json.dumps({"outages": []})
    assert victim.read_text() == "keep me\n"
    assert_same(stored(out), k)


# --------------------------------------------------------------------------- sync

@pytest.fixture
def s3(data_aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket="candle-bucket")
    return client


def test_sync_copies_only_keys_in_the_dataset_layout(s3, tmp_path):
    root = "s3://candle-bucket/candles/"
    k = synthetic_klines(T0, 500)
    upsert_candles(root, "BTCUSDT", "15m", k)
    body = next(iter(s3.list_objects_v2(Bucket="candle-bucket")["Contents"]))["Key"]
    data = s3.get_object(Bucket="candle-bucket", Key=body)["Body"].read()
    strays = ["candles/symbol=../../../escape/interval=15m/year=2024/month=01/p.parquet",
              "candles/symbol=BTCUSDT/interval=15m/year=2024/month=01/../../../../../../escape.parquet",
              "candles/symbol=btc usdt/interval=15m/year=2024/month=01/p.parquet",
              "candles/symbol=BTCUSDT/interval=15m/year=2024/month=13/p.parquet",
              "candles/symbol=BTCUSDT/interval=15m/p.parquet"]
    for key in strays:
        s3.put_object(Bucket="candle-bucket", Key=key, Body=data)
    out = tmp_path / "deep" / "copy"
    result = sync_dataset(root, out, client=s3)
    assert sorted(result.ignored) == sorted(strays)
    assert _tree(tmp_path) == {"deep", "deep/copy", *(f"deep/copy/{p}" for p in _tree(out))}
    assert all(p.startswith(("symbol=BTCUSDT", "_locks", MANIFEST)) for p in _tree(out))
    assert_same(stored(out), k)


def test_sync_to_a_read_only_folder_is_one_line(tmp_path):
    why = can_mount_tmpfs(tmp_path)
    if why:
        pytest.skip(f"cannot make a read-only folder: {why}")
    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        for dest, needle in ((ro, f"sync destination {ro}: not writable (read-only file system)"),
                             (ro / "sub", f"sync destination {ro / 'sub'}: cannot create the folder "
                                          "(read-only file system)")):
            done = run_console(["data", "sync", "s3://candle-bucket/candles/", dest])
            assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
            assert needle in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- one candle, off the grid

def test_one_candle_needs_an_interval_and_then_reads(tmp_path, capsys):
    one = _csv(tmp_path / "one.csv", n=1)
    with pytest.raises(UserError, match="one candle, so its interval cannot be read from the data"):
        load_candles(one)
    assert load_candles(one, interval="15m").interval_ms == IV
    code, stdout, err = run_cli(["data", "inspect", one, "--interval", "4h"], capsys)
    assert code == 0, err
    assert "rows:     1" in stdout and "interval: 4h" in stdout and "problems: none" in stdout
    # A dataset's folder names the interval: one stored candle reads as 15m, not 1m.
    upsert_candles(str(tmp_path / "ds"), "BTCUSDT", "15m", synthetic_klines(T0, 1))
    assert load_candles(tmp_path / "ds").interval_ms == IV
    # A range that holds one candle of a longer file keeps the file's spacing.
    five = _csv(tmp_path / "five.csv", n=5)
    assert load_candles(five, start=T0 + IV, end=T0 + 2 * IV).interval_ms == IV
    # data build knows the interval from --interval.
    result = build_dataset([one], str(tmp_path / "built"), "BTCUSDT", "15m")
    assert result.rows == 1 and load_candles(tmp_path / "built").interval_ms == IV


def test_off_grid_candles_are_a_problem_in_a_dataset_and_refused_by_build(tmp_path):
    k = synthetic_klines(T0, 300)
    shifted = k.copy()
    shifted.loc[200, "open_time"] += 60_000  # one candle one minute late
    upsert_candles(str(tmp_path / "ds"), "BTCUSDT", "15m", shifted)
    (report,) = inspect_path(str(tmp_path / "ds"))
    assert report.problems == ["1 open time(s) off the 15m grid (not a whole number of 15m bars after the first "
                               "candle at 2024-01-01 00:00:00); first at 2024-01-03 02:01:00"]
    src = _csv(tmp_path / "shifted.csv", n=300, times=shifted.open_time.to_numpy())
    with pytest.raises(UserError, match=r"build: 1 open time\(s\) off the 15m grid .*; nothing was written"):
        build_dataset([src], str(tmp_path / "built"), "BTCUSDT", "15m")
    assert not (tmp_path / "built").exists()
    # On the grid with a hole: a gap, no problem.
    holes = k.drop(index=[200])
    upsert_candles(str(tmp_path / "ok"), "BTCUSDT", "15m", holes)
    (report,) = inspect_path(str(tmp_path / "ok"))
    assert report.problems == [] and report.gaps.count == 1 and report.gaps.missing_bars == 1


def test_reading_an_unknown_series_names_what_there_is(tmp_path):
    upsert_candles(str(tmp_path), "BTCUSDT", "15m", synthetic_klines(T0, 10))
    with pytest.raises(UserError, match=r"no symbol=ETHUSDT in the dataset \(found: BTCUSDT\)"):
        read_candle_dataset(str(tmp_path), symbol="ETHUSDT", interval="15m")
    with pytest.raises(UserError, match=r"no interval=1h in the dataset \(found: 15m\)"):
        read_candle_dataset(str(tmp_path), symbol="BTCUSDT", interval="1h")
    assert isinstance(read_candle_dataset(str(tmp_path), symbol="BTCUSDT", interval="15m")[0], pd.DataFrame)


def test_written_files_get_the_usual_permissions(tmp_path):
    """Partitions and JSON documents are created 0666 less the umask, like any file: a dataset built
    by one user (or a container's uid) stays readable by another (the image runs under --user)."""
    import os
    import stat

    from engine.jsonio import write_json_atomic

    old = os.umask(0o022)
    try:
        upsert_candles(str(tmp_path / "ds"), "BTCUSDT", "15m", synthetic_klines(T0, 50))
        write_json_atomic(tmp_path / "doc.json", {"a": 1})
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "ds").rglob("*.parquet")] + [tmp_path / "doc.json"]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files), \
        {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
