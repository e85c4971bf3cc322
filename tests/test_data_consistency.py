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
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import read_candle_dataset, upsert_candles
from fakes.candles import synthetic_klines
from fakes.moto_server import aws_process  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parent.parent
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
LOCAL_ROWS = 6 * 30 * 24   # six months of 1h bars: every rewrite replaces six partitions
S3_ROWS = 60 * 24          # two (moto reads are slower)
READS = 200

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


def _read_loop(read, rows: int, reads: int = READS) -> tuple[int, set[float]]:
    """``reads`` reads; (how many were mixed or short, every version seen)."""
    mixed, seen = 0, set()
    for _ in range(reads):
        df = read()
        volumes = set(np.unique(df["volume"].to_numpy()).tolist())
        if len(volumes) != 1 or len(df) != rows:
            mixed += 1
        seen |= volumes
    return mixed, seen


def _stop(proc: subprocess.Popen, stop: Path) -> str:
    stop.write_text("stop")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return err


def test_local_reader_never_sees_a_mix_during_rewrites(tmp_path):
    root = str(tmp_path / "ds")
    upsert_candles(root, "BTCUSDT", "1h", _version(synthetic_klines(T0, LOCAL_ROWS, "1h"), 1))
    stop = tmp_path / "stop"
    writer = _start_writer(root, stop, LOCAL_ROWS)
    try:
        _wait_for_first_rewrite(writer)
        mixed, seen = _read_loop(lambda: read_candle_dataset(root, symbol="BTCUSDT", interval="1h")[0], LOCAL_ROWS)
    finally:
        _stop(writer, stop)
    assert mixed == 0
    assert len(seen) >= 5, f"the writer committed too few versions during the reads: {sorted(seen)}"


@pytest.fixture
def bucket(aws_process):
    return aws_process.new_bucket("consistency")


def test_s3_reader_never_sees_a_mix_during_rewrites(aws_process, bucket, tmp_path):
    root = f"s3://{bucket}/candles/"
    upsert_candles(root, "BTCUSDT", "1h", _version(synthetic_klines(T0, S3_ROWS, "1h"), 1))
    stop = tmp_path / "stop"
    writer = _start_writer(root, stop, S3_ROWS, env=aws_process.subprocess_env())
    try:
        _wait_for_first_rewrite(writer)
        mixed, seen = _read_loop(lambda: read_candle_dataset(root, symbol="BTCUSDT", interval="1h")[0], S3_ROWS)
    finally:
        _stop(writer, stop)
    assert mixed == 0
    assert len(seen) >= 5, f"the writer committed too few versions during the reads: {sorted(seen)}"
