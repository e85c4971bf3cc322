"""Consistent reads: a reader looping while another process rewrites the series sees one committed
version of it every time, never a mix of old and new month partitions (docs/semantics.md, Data).

Each version v of the series holds ``volume == v`` on every row of every month, and every rewrite
touches every month, so a read that mixes versions shows two volumes. The writer is a real second
process holding the series lock, as ``data build``/``fetch`` do; the reader checks that it saw the
writer's versions change under it (the test is not vacuous) and that no read was mixed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import read_candle_dataset, upsert_candles
from fakes.candles import synthetic_klines
from fakes.moto_server import aws_process, moto_process  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
LOCAL_ROWS = 6 * 30 * 24   # six months of 1h bars: every rewrite replaces six partitions
S3_ROWS = 60 * 24          # two (moto reads are slower)
#: A loop reads until it has seen ``VERSIONS`` versions (the writer's commits changed the series under it three
#: times over; every read checked for a mix), and at least MIN_READS times; at most READS times, where the test
#: fails if it saw too few versions. The writer commits without pause, so every read overlaps a rewrite: 15 reads
#: across four versions exercise the race as 30 across five did, at half the CPU (both processes and moto).
VERSIONS = 4
MIN_READS = 15
READS = 400

_WRITER = textwrap.dedent("""
    import sys, pathlib
    sys.path.insert(0, "tests")
    from fakes.candles import synthetic_klines
    from engine.data.dataset import upsert_candles
    from engine.data.series_lock import hold_series
    root, stop, rows = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3])
    k = synthetic_klines({t0}, rows, "1h")
    v = 1
    while not stop.exists():
        v += 1
        k["volume"] = float(v)
        with hold_series(root, "BTCUSDT", "1h", command="rewriter"):
            upsert_candles(root, "BTCUSDT", "1h", k)
        print(v, flush=True)
""").format(t0=T0)


def _version(k, v: int):
    k = k.copy()
    k["volume"] = float(v)
    return k


def _start_writer(root: str, stop: Path, rows: int, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, root, str(stop), str(rows)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_first_rewrite(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip(), proc.stderr.read()


def _read_loop(read, rows: int, reads: int = READS, versions: int = VERSIONS, pause: float = 0.0
               ) -> tuple[int, set[float]]:
    """Reads until ``versions`` versions were seen (after MIN_READS reads), at most ``reads``; (how many
    were mixed or short, every version seen)."""
    mixed, seen = 0, set()
    for i in range(reads):
        df = read()
        volumes = set(np.unique(df["volume"].to_numpy()).tolist())
        if len(volumes) != 1 or len(df) != rows:
            mixed += 1
        seen |= volumes
        if len(seen) >= versions and i + 1 >= MIN_READS:
            break
        time.sleep(pause)
    return mixed, seen


def _stop(proc: subprocess.Popen, stop: Path) -> str:
    stop.write_text("stop")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return err


def _reads_during_rewrites(root: str, rows: int, stop: Path, env=None) -> None:
    """Store version 1, start the rewriting process, read while it commits VERSIONS versions, then stop it."""
    upsert_candles(root, "BTCUSDT", "1h", _version(synthetic_klines(T0, rows, "1h"), 1))
    writer = _start_writer(root, stop, rows, env=env)
    try:
        _wait_for_first_rewrite(writer)
        mixed, seen = _read_loop(lambda: read_candle_dataset(root, symbol="BTCUSDT", interval="1h")[0], rows)
    finally:
        _stop(writer, stop)
    assert mixed == 0
    assert len(seen) >= VERSIONS, f"the writer committed too few versions during the reads: {sorted(seen)}"


def test_local_reader_never_sees_a_mix_during_rewrites(tmp_path):
    _reads_during_rewrites(str(tmp_path / "ds"), LOCAL_ROWS, tmp_path / "stop")


@pytest.fixture
def bucket(aws_process):
    return aws_process.new_bucket("consistency")


def test_s3_reader_never_sees_a_mix_during_rewrites(aws_process, bucket, tmp_path):
    _reads_during_rewrites(f"s3://{bucket}/candles/", S3_ROWS, tmp_path / "stop", env=aws_process.subprocess_env())


_SYNCER = textwrap.dedent("""
    import sys, pathlib
    from engine.data.sync import sync_dataset
    source, dest, stop = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    while not stop.exists():
        if sync_dataset(source, dest).copied:
            print("synced", flush=True)
""")


def test_sync_destination_reader_never_sees_a_mix(aws_process, bucket, tmp_path):
    """A writer rewrites the S3 series, ``data sync`` copies it down again and again, and a reader of the
    local copy sees one synced version at a time."""
    from engine.data.sync import sync_dataset

    root, local = f"s3://{bucket}/candles/", tmp_path / "local"
    upsert_candles(root, "BTCUSDT", "1h", _version(synthetic_klines(T0, S3_ROWS, "1h"), 1))
    sync_dataset(root, local)
    stop = tmp_path / "stop"
    env = aws_process.subprocess_env()
    writer = _start_writer(root, stop, S3_ROWS, env=env)
    syncer = subprocess.Popen([sys.executable, "-c", _SYNCER, root, str(local), str(stop)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_first_rewrite(writer)
        _wait_for_first_rewrite(syncer)
        # the reads are spread over several syncs
        mixed, seen = _read_loop(lambda: read_candle_dataset(str(local), symbol="BTCUSDT", interval="1h")[0],
                                 S3_ROWS, versions=3, pause=0.02)
    finally:
        _stop(writer, stop)
        _stop(syncer, stop)
    assert mixed == 0
    assert len(seen) >= 3, f"too few synced versions during the reads: {sorted(seen)}"


# --------------------------------------------------------------------------- the rules, case by case

def test_generations_name_what_is_committed():
    """The worked example of docs/semantics.md, "Data"."""
    from engine.data import generations as g

    def key(month: int, number: int, count: int | None, tag: str = "0a0b0c0d") -> str:
        name = (f"part-{number:020d}-n{count}-{tag}.snappy.parquet" if count is not None
                else f"part-{number:020d}-{tag}.snappy.parquet")
        return f"candles/symbol=BTCUSDT/interval=1h/year=2024/month={month:02d}/{name}"

    jan10, feb10 = key(1, 10, 2), key(2, 10, 2)
    assert g.committed([feb10, jan10]) == [jan10, feb10] and g.incomplete([jan10, feb10]) == []
    # A writer at work (or dead) after one of its two objects: readers leave it out.
    jan20 = key(1, 20, 2)
    assert g.incomplete([jan10, feb10, jan20]) == [jan20]
    assert g.committed([jan10, feb10, jan20]) == [jan10, feb10]
    # Complete, before it deleted what it replaced: all four are read, the newer object wins in each month.
    feb20 = key(2, 20, 2)
    assert g.committed([jan10, feb10, jan20, feb20]) == [jan10, jan20, feb10, feb20]
    # Generation 30 rewrote February only and deleted feb20: 20 is no longer whole, but it is not the
    # newest, so it was committed (only the newest generation can be incomplete).
    feb30 = key(2, 30, 1)
    assert g.incomplete([jan20, feb30]) == [] and g.committed([jan20, feb30]) == [jan20, feb30]
    # Generation 40 was killed after January: left out, while 20 and 30 stay whole.
    jan40 = key(1, 40, 2)
    assert g.incomplete([jan20, jan40, feb30]) == [jan40] and g.committed([jan20, jan40, feb30]) == [jan20, feb30]
    # Names written before generations count as complete.
    legacy = key(1, 5, None)
    assert g.parse(legacy.rsplit("/", 1)[1]) == g.Part(5, None) and g.committed([legacy]) == [legacy]
    assert g.parse("zzz.parquet") == g.Part(None, None)
    # A new generation is above every number in the series and not below the clock.
    assert g.next_generation([jan20, feb30], now_ns=7) == 31
    assert g.next_generation([jan20], now_ns=1_000) == 1_000
    assert g.parse(g.part_name(31, 4)) == g.Part(31, 4)


def _parquet_bytes(df) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.data.dataset_schema import SCHEMA, STORED_COLUMNS

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df[list(STORED_COLUMNS)], schema=SCHEMA, preserve_index=False), buf)
    return buf.getvalue()


def test_s3_dead_writers_generation_is_left_out_then_cleared(aws_process, bucket):
    """A writer killed after the first of its two objects: readers keep the old version, and the next
    holder of the series lock deletes the orphan before it writes."""
    from engine.data.series_lock import hold_series

    root = f"s3://{bucket}/candles/"
    k = synthetic_klines(T0, S3_ROWS, "1h")
    upsert_candles(root, "BTCUSDT", "1h", _version(k, 1))
    s3 = aws_process.client("s3")
    orphan = (f"candles/symbol=BTCUSDT/interval=1h/year=2024/month=01/"
              f"part-{2 * 10 ** 19:020d}-n2-deadbeef.snappy.parquet")
    january = _version(k, 2).iloc[:31 * 24]
    s3.put_object(Bucket=bucket, Key=orphan, Body=_parquet_bytes(january))
    df, _ = read_candle_dataset(root, symbol="BTCUSDT", interval="1h")
    assert set(df.volume) == {1.0} and len(df) == S3_ROWS
    with hold_series(root, "BTCUSDT", "1h", command="test"):
        pass
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="candles/")["Contents"]]
    assert orphan not in keys and len(keys) == 2
    upsert_candles(root, "BTCUSDT", "1h", _version(k, 3))
    df, _ = read_candle_dataset(root, symbol="BTCUSDT", interval="1h")
    assert set(df.volume) == {3.0} and len(df) == S3_ROWS


def test_local_reader_waits_for_a_commit_and_says_so_when_it_does_not_end(tmp_path, monkeypatch):
    from engine.data import folder_lock
    from engine.errors import DataError

    root = tmp_path / "ds"
    upsert_candles(str(root), "BTCUSDT", "1h", synthetic_klines(T0, 100, "1h"))
    series = root / "symbol=BTCUSDT/interval=1h"
    monkeypatch.setattr(folder_lock, "READ_WAIT_S", 0.0)
    with folder_lock.series_folder_lock(series, exclusive=True):  # a writer renaming its partitions
        with pytest.raises(DataError, match="a writer has been replacing this series' partitions for 0 s"):
            read_candle_dataset(str(root), symbol="BTCUSDT", interval="1h")
    with folder_lock.series_folder_lock(series, exclusive=False):  # readers share it
        assert len(read_candle_dataset(str(root), symbol="BTCUSDT", interval="1h")[0]) == 100
        with pytest.raises(DataError, match="readers kept the series busy for 0 s; nothing was replaced"):
            with folder_lock.series_folder_lock(series, exclusive=True, wait=0.0):
                pass
