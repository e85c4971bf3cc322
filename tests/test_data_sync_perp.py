"""``backtest data sync --market um``: a dataset's trade klines, mark klines and funding tables come down
from S3 (moto) as the spot candles do: only what changed, renamed into place under the series' locks,
and a local reader never sees a mix of two versions while a writer rewrites S3 and a syncer copies it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest

from engine.data.dataset import read_candle_dataset, upsert_candles
from engine.data.funding_table import read_funding, upsert_funding
from engine.data.source import load_data
from engine.data.spec import DataSpec
from engine.data.sync_perp import sync_perp
from fakes.candles import assert_same, stored, synthetic_klines
from fakes.cli import run_cli
from fakes.moto_server import aws_process, moto_process  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR = 3_600_000
ROOT = "s3://perp-bucket/candles/"


def _funding(n: int, start: int = T0, hours: int = 8, version: int = 1) -> pd.DataFrame:
    t = start + np.arange(n, dtype=np.int64) * hours * HOUR
    return pd.DataFrame({"funding_time": t, "funding_rate": np.full(n, version * 1e-6),
                         "mark_price": np.full(n, 100.0), "interval_hours": np.full(n, hours, np.int64)})


@pytest.fixture
def s3(data_aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket="perp-bucket")
    return client


def test_sync_um_copies_the_three_kinds_then_only_what_changed(s3, tmp_path, capsys):
    k = synthetic_klines(T0, 3000)                     # January .. February 2024, 15m
    mark = k.copy()
    for c in ("open", "high", "low", "close"):
        mark[c] = np.round(k[c] * 1.0002, 2)
    upsert_candles("s3://perp-bucket/um/candles/", "BTCUSDT", "15m", k)
    upsert_candles("s3://perp-bucket/um/mark/", "BTCUSDT", "15m", mark)
    upsert_funding("s3://perp-bucket/um/funding/", "BTCUSDT", _funding(93))   # 31 days of 8h events
    upsert_candles(ROOT, "BTCUSDT", "15m", k)          # spot candles: not part of an um sync
    out = tmp_path / "local"

    code, stdout, err = run_cli(["data", "sync", ROOT, out, "--market", "um"], capsys)
    assert code == 0, err
    assert stdout.splitlines() == [
        f"synced {ROOT} um klines -> {out}: 2 copied, 0 up to date, 0 stale removed",
        f"synced {ROOT} um mark -> {out}: 2 copied, 0 up to date, 0 stale removed",
        f"synced {ROOT} um funding -> {out}: 1 copied, 0 up to date, 0 stale removed"]
    assert not (out / "symbol=BTCUSDT").exists()       # the spot series stayed on S3
    assert_same(stored(out / "um" / "candles"), k)
    assert_same(stored(out / "um" / "mark"), mark)
    pd.testing.assert_frame_equal(read_funding(str(out / "um" / "funding"), "BTCUSDT"), _funding(93))
    # A perp run reads the local copy exactly as it reads S3 (trade, mark and funding alike).
    spec = DataSpec(source=str(out), market="um", symbol="BTCUSDT", interval="15m")
    local, remote = load_data(spec), load_data(DataSpec(source=ROOT, market="um", symbol="BTCUSDT", interval="15m"))
    assert local.fingerprint() == remote.fingerprint()
    np.testing.assert_array_equal(local.perp.mark_low, remote.perp.mark_low)
    np.testing.assert_array_equal(local.perp.funding_rate, remote.perp.funding_rate)

    again = sync_perp(ROOT, out, client=s3).by_kind
    assert [(len(r.copied), r.skipped, len(r.removed)) for r in again.values()] == [(0, 2, 0), (0, 2, 0), (0, 1, 0)]

    # New funding events replace the table; new candles rewrite February of the trade klines only.
    upsert_funding("s3://perp-bucket/um/funding/", "BTCUSDT", _funding(3, start=T0 + 93 * 8 * HOUR))
    upsert_candles("s3://perp-bucket/um/candles/", "BTCUSDT", "15m", synthetic_klines(T0 + 3000 * 900_000, 10))
    third = sync_perp(ROOT, out, client=s3).by_kind
    assert third["funding"].copied == ["symbol=BTCUSDT/part-0.parquet"]
    assert [(len(r.copied), r.skipped) for r in third.values()] == [(1, 1), (0, 2), (1, 0)]
    assert len(read_funding(str(out / "um" / "funding"), "BTCUSDT")) == 96
    assert len(stored(out / "um" / "candles")) == 3010

    # A table deleted on S3 goes from the local copy too; --symbol limits the sync to one symbol.
    s3.delete_object(Bucket="perp-bucket", Key="um/funding/symbol=BTCUSDT/part-0.parquet")
    upsert_funding("s3://perp-bucket/um/funding/", "ETHUSDT", _funding(5))
    only_eth = sync_perp(ROOT, out, symbol="ETHUSDT", client=s3).by_kind["funding"]
    assert only_eth.copied == ["symbol=ETHUSDT/part-0.parquet"] and only_eth.removed == []
    gone = sync_perp(ROOT, out, client=s3).by_kind["funding"]
    assert gone.removed == ["symbol=BTCUSDT/part-0.parquet"] and gone.skipped == 1
    assert read_funding(str(out / "um" / "funding"), "BTCUSDT") is None
    manifest = json.loads((out / "um" / "funding" / ".sync-manifest.json").read_text())
    assert sorted(manifest) == ["symbol=ETHUSDT/part-0.parquet"]
    assert not list(out.rglob("*.tmp"))


def test_sync_um_refuses_the_um_root_in_one_line(tmp_path, capsys):
    code, _, err = run_cli(["data", "sync", "s3://perp-bucket/um/candles/", tmp_path, "--market", "um"], capsys)
    assert code == 2 and err.count("\n") == 1 and "takes the dataset's candles root" in err
    code, _, err = run_cli(["data", "sync", ROOT, tmp_path, "--market", "um", "--interval", "15m"], capsys)
    assert code == 2 and err == "error: sync: --interval needs --symbol\n"


# --------------------------------------------------------------------------- consistency under rewrites

ROWS = 60 * 24  # two months of 1h bars: every rewrite replaces both mark partitions and the funding table

_WRITER = textwrap.dedent("""
    import sys, pathlib
    import numpy as np, pandas as pd
    sys.path.insert(0, "tests")
    from fakes.candles import synthetic_klines
    from engine.data.dataset import upsert_candles
    from engine.data.funding_table import upsert_funding
    from engine.data.series_lock import hold_series, hold_table
    bucket, stop, rows = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3])
    mark_root, funding_root = f"s3://{bucket}/um/mark/", f"s3://{bucket}/um/funding/"
    k = synthetic_klines(T0_MS, rows, "1h")
    t = T0_MS + np.arange(rows // 8, dtype=np.int64) * 8 * 3_600_000
    v = 1
    while not stop.exists():
        v += 1
        k["volume"] = float(v)
        with hold_series(mark_root, "BTCUSDT", "1h", command="rewriter"):
            upsert_candles(mark_root, "BTCUSDT", "1h", k)
        with hold_table(funding_root, "BTCUSDT", command="rewriter"):
            upsert_funding(funding_root, "BTCUSDT", pd.DataFrame({"funding_time": t, "funding_rate": v * 1e-6,
                           "mark_price": 100.0, "interval_hours": 8}))
        print(v, flush=True)
""").replace("T0_MS", str(T0))

_SYNCER = textwrap.dedent("""
    import sys, pathlib
    from engine.data.sync_perp import sync_perp
    source, dest, stop = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    while not stop.exists():
        if any(r.copied for r in sync_perp(source, dest).by_kind.values()):
            print("synced", flush=True)
""")


def test_sync_um_destination_reader_never_sees_a_mix(aws_process, tmp_path):
    bucket = aws_process.new_bucket("perpsync")
    root, local, stop = f"s3://{bucket}/candles/", tmp_path / "local", tmp_path / "stop"
    env = aws_process.subprocess_env()
    procs = []
    try:
        for script, args in ((_WRITER, [bucket, str(stop), str(ROWS)]), (_SYNCER, [root, str(local), str(stop)])):
            procs.append(subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            line = procs[-1].stdout.readline()
            assert line.strip(), procs[-1].stderr.read()
        mixed, marks, rates = 0, set(), set()
        # until 3 synced versions of each came down under the reader (15 reads at least: the writer and the
        # syncer never pause, so every read overlaps a sync; 30 exercised nothing more, at twice the CPU)
        for i in range(400):
            if i >= 15 and len(marks) >= 3 and len(rates) >= 3:
                break
            mk = read_candle_dataset(str(local / "um" / "mark"), symbol="BTCUSDT", interval="1h")[0]
            fu = read_funding(str(local / "um" / "funding"), "BTCUSDT")
            vol, rate = set(np.unique(mk["volume"]).tolist()), set(np.unique(fu["funding_rate"]).tolist())
            mixed += len(vol) != 1 or len(mk) != ROWS or len(rate) != 1 or len(fu) != ROWS // 8
            marks |= vol
            rates |= rate
            time.sleep(0.02)
    finally:
        stop.write_text("stop")
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    assert mixed == 0
    assert len(marks) >= 3 and len(rates) >= 3, f"too few synced versions during the reads: {marks}, {rates}"
