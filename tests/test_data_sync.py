"""``backtest data sync s3://… DIR``: copy only new or changed files, atomically, and drop stale ones."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from engine.data.dataset import upsert_candles
from engine.data.sync import MANIFEST, sync_dataset
from engine.data.loader import load_candles
from fakes.candles import assert_same, stored, synthetic_klines
from fakes.cli import run_cli

T0 = 1_704_067_200_000
ROOT = "s3://candle-bucket/candles/"


@pytest.fixture
def s3(data_aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket="candle-bucket")
    return client


def _keys(client) -> dict[str, str]:
    return {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket="candle-bucket")["Contents"]}


def _local_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))


def test_sync_copies_only_new_or_changed_and_removes_stale(s3, tmp_path, capsys):
    k = synthetic_klines(T0, 8000)  # January .. March 2024
    upsert_candles(ROOT, "BTCUSDT", "15m", k.iloc[:6000])
    out = tmp_path / "local"
    code, stdout, err = run_cli(["data", "sync", ROOT, out], capsys)
    assert code == 0, err
    assert stdout.startswith(f"synced {ROOT} -> {out}: 3 copied, 0 up to date, 0 stale removed")
    assert _local_files(out) == sorted(key[len("candles/"):] for key in _keys(s3))
    assert_same(stored(out), k.iloc[:6000])

    result = sync_dataset(ROOT, out, client=s3)
    assert result.copied == [] and result.skipped == 3 and result.removed == []

    # New candles rewrite March (new object name) and add nothing else.
    before = _keys(s3)
    upsert_candles(ROOT, "BTCUSDT", "15m", k.iloc[6000:])
    changed = sorted(set(_keys(s3)) - set(before))
    result = sync_dataset(ROOT, out, client=s3)
    assert [("candles/" + r) for r in result.copied] == changed and len(changed) == 1
    assert result.skipped == 2 and len(result.removed) == 1 and "month=03" in result.removed[0]
    assert_same(stored(out), k)
    assert load_candles(out, symbol="BTCUSDT", interval="15m").fingerprint() == \
        load_candles(ROOT, symbol="BTCUSDT", interval="15m").fingerprint()
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest) == _local_files(out)
    assert not [p for p in out.rglob("*.tmp")]


def test_sync_without_manifest_trusts_matching_md5(s3, tmp_path):
    upsert_candles(ROOT, "BTCUSDT", "15m", synthetic_klines(T0, 3000))
    out = tmp_path / "local"
    sync_dataset(ROOT, out, client=s3)
    (out / MANIFEST).unlink()
    result = sync_dataset(ROOT, out, client=s3)
    assert result.copied == [] and result.skipped == 2


def test_sync_filters_by_series_and_refreshes_a_damaged_copy(s3, tmp_path):
    k = synthetic_klines(T0, 3000)
    upsert_candles(ROOT, "BTCUSDT", "15m", k)
    upsert_candles(ROOT, "ETHUSDT", "15m", k)
    out = tmp_path / "local"
    result = sync_dataset(ROOT, out, symbol="ETHUSDT", interval="15m", client=s3)
    assert len(result.copied) == 2 and all(r.startswith("symbol=ETHUSDT/interval=15m/") for r in result.copied)
    victim = out / result.copied[0]
    victim.write_bytes(b"damaged")
    again = sync_dataset(ROOT, out, symbol="ETHUSDT", client=s3)
    assert again.copied == [result.copied[0]]
    assert_same(stored(out, symbol="ETHUSDT"), k)


def test_sync_bad_uri_is_a_user_error(tmp_path, capsys):
    code, _, err = run_cli(["data", "sync", "bucket/candles", tmp_path], capsys)
    assert code == 2 and err.startswith("error: sync: not an s3:// URI") and err.count("\n") == 1
