"""Bring a candles dataset down from S3 into a local dataset folder (instead of ``aws s3 sync``).

Only objects that are new or changed are copied, judged by size and ETag (kept in
``.sync-manifest.json`` in the folder; without an entry a single-part ETag is
checked against the local file's MD5). Each file lands atomically (temp file +
os.replace). S3 writers replace a partition with a new file name, so after a
partition is copied, local data files in it that S3 no longer has are removed:
otherwise the old and the new copy would both be read.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from contextlib import ExitStack
from typing import Any, Callable

from ..errors import UserError
from ..storage_layout import parse_s3_uri, series_prefix
from .dataset_local import partition_files
from .s3_errors import s3_errors
from .series_lock import DEFAULT_WAIT_S, hold_series

MANIFEST = ".sync-manifest.json"


@dataclass(frozen=True)
class SyncResult:
    copied: list[str] = field(default_factory=list)   # paths relative to the dataset root
    skipped: int = 0                                   # already up to date
    removed: list[str] = field(default_factory=list)  # stale local files deleted


def _etag(value: str) -> str:
    return value.strip('"')


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _up_to_date(path: Path, size: int, etag: str, known: dict | None) -> bool:
    if not path.is_file() or path.stat().st_size != size:
        return False
    if known is not None:
        return known.get("etag") == etag and known.get("size") == size
    return "-" not in etag and _md5(path) == etag  # multipart ETags are not an MD5


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _download(client: Any, bucket: str, key: str, dest: Path, size: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with open(tmp, "wb") as fh:
            shutil.copyfileobj(body, fh, 1 << 20)
            fh.flush()
            os.fsync(fh.fileno())
        if tmp.stat().st_size != size:
            raise UserError(f"s3://{bucket}/{key}: got {tmp.stat().st_size} bytes, expected {size}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _series_of(folder: str) -> tuple[str, str] | None:
    parts = folder.split("/")
    if len(parts) >= 2 and parts[0].startswith("symbol=") and parts[1].startswith("interval="):
        return parts[0][len("symbol="):], parts[1][len("interval="):]
    return None


def sync_dataset(source: str, dest: str | Path, *, symbol: str | None = None, interval: str | None = None,
                 client: Any = None, lock_wait: float = DEFAULT_WAIT_S,
                 on_wait: Callable[[str], None] | None = None) -> SyncResult:
    """Mirror the Parquet files under ``source`` (``s3://bucket/candles/``) into the folder ``dest``."""
    try:
        bucket, key = parse_s3_uri(source)
    except ValueError as exc:
        raise UserError(f"sync: {exc}") from None
    if interval is not None and symbol is None:
        raise UserError("sync: --interval needs --symbol")
    root_key = key if not key or key.endswith("/") else key + "/"
    prefix = root_key
    if symbol is not None:
        prefix += series_prefix(symbol, interval) if interval else f"symbol={symbol}/"
    if client is None:
        import boto3

        client = boto3.client("s3")
    remote: dict[str, tuple[str, int, str]] = {}
    with s3_errors(source):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(root_key):]
                if rel.endswith(".parquet") and not rel.rsplit("/", 1)[-1].startswith((".", "_")):
                    remote[rel] = (obj["Key"], int(obj["Size"]), _etag(obj["ETag"]))
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    except (OSError, ValueError):
        manifest = {}  # unreadable: every file is checked against its ETag again
    copied, removed, skipped = [], [], 0
    by_folder: dict[str, list[str]] = {}
    for rel in sorted(remote):
        by_folder.setdefault(rel.rsplit("/", 1)[0] if "/" in rel else "", []).append(rel)
    # Each local series is written under its series lock, like any other writer's.
    for series, group in itertools.groupby(by_folder.items(), key=lambda item: _series_of(item[0])):
        with ExitStack() as held:
            if series is not None:
                held.enter_context(hold_series(str(dest), *series, wait=lock_wait, on_wait=on_wait,
                                               command="data sync"))
            for folder, rels in group:
                changed = False
                for rel in rels:
                    obj_key, size, etag = remote[rel]
                    local = dest / rel
                    if _up_to_date(local, size, etag, manifest.get(rel)):
                        skipped += 1
                        if rel not in manifest:
                            manifest[rel] = {"etag": etag, "size": size}
                        continue
                    with s3_errors(f"s3://{bucket}/{obj_key}"):
                        _download(client, bucket, obj_key, local, size)
                    manifest[rel] = {"etag": etag, "size": size}
                    copied.append(rel)
                    changed = True
                wanted = set(rels)
                for stale in partition_files(dest / folder):
                    rel = stale.relative_to(dest).as_posix()
                    if rel not in wanted:
                        stale.unlink()
                        manifest.pop(rel, None)
                        removed.append(rel)
                        changed = True
                if changed:
                    _write_json_atomic(manifest_path, manifest)
    # Partitions deleted on S3: drop the local copies this sync brought down earlier.
    for rel in sorted(set(manifest) - set(remote)):
        if rel.startswith(prefix[len(root_key):]):
            (dest / rel).unlink(missing_ok=True)
            manifest.pop(rel)
            removed.append(rel)
    _write_json_atomic(manifest_path, manifest)
    return SyncResult(copied, skipped, removed)
