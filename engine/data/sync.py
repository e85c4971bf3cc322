"""Bring a candles dataset down from S3 into a local dataset folder (instead of ``aws s3 sync``).

Per series, the committed version on S3 (:mod:`engine.data.generations`) is what is copied:
only objects that are new or changed, judged by size and ETag (kept in
``.sync-manifest.json`` in the folder; without an entry a single-part ETag is checked
against the local file's MD5). Every file is downloaded to a temporary file beside its
target first; then, holding the series folder's lock exclusively (:mod:`engine.data.folder_lock`),
they are renamed into place and the local files of that series that S3 no longer has are
removed. A local reader therefore sees the series as one synced version or the next, never a
mix, as it does during any other write; the series lock (:mod:`engine.data.series_lock`) keeps
other local writers out meanwhile. An object deleted on S3 while it was being copied (a newer
generation was committed) makes the series be listed and copied again.

Only keys in the dataset layout are copied (``symbol=S/interval=I/year=YYYY/month=MM/NAME.parquet``
with a Binance symbol and interval and a plain file name): anything else could name a path
outside the destination, so it is counted and left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError, UserError
from ..storage_layout import parse_s3_uri, series_prefix
from .binance import INTERVAL_MS, SYMBOL_PATTERN, is_symbol
from .dataset_local import partition_files
from .dataset_s3 import READ_ATTEMPTS
from .folder_lock import series_folder_lock
from .generations import committed
from .local_write import make_folder, staged, write_atomic
from .s3_errors import s3_error_code, s3_errors
from .s3_session import s3_client
from .series_lock import DEFAULT_WAIT_S, hold_series

MANIFEST = ".sync-manifest.json"
_MONTH_FOLDERS = re.compile(r"^year=\d{4}/month=(0[1-9]|1[0-2])$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.parquet$")
Remote = dict[str, tuple[str, int, str]]  # relative path -> (key, size, ETag)


@dataclass(frozen=True)
class SyncResult:
    copied: list[str] = field(default_factory=list)   # paths relative to the dataset root
    skipped: int = 0                                   # already up to date
    removed: list[str] = field(default_factory=list)  # stale local files deleted
    ignored: list[str] = field(default_factory=list)  # keys outside the dataset layout, not copied


class _Vanished(Exception):
    """An object listed a moment ago is gone: a newer generation replaced it."""


def read_manifest(path: Path) -> dict:
    """What earlier syncs copied (relative path -> ETag and size); unreadable: empty, so every file is
    checked against its ETag again."""
    try:
        manifest = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def write_manifest(path: Path, manifest: dict) -> None:
    write_atomic(path, json.dumps(manifest, indent=1, sort_keys=True).encode())


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


def _series_of(rel: str) -> tuple[str, str] | None:
    """(symbol, interval) of a key in the dataset layout with a safe name, else None."""
    parts = rel.split("/")
    if len(parts) != 5 or not parts[0].startswith("symbol=") or not parts[1].startswith("interval="):
        return None
    symbol, interval = parts[0][len("symbol="):], parts[1][len("interval="):]
    if not is_symbol(symbol) or interval not in INTERVAL_MS or not _MONTH_FOLDERS.match("/".join(parts[2:4])) \
            or not _FILE_NAME.match(parts[4]):
        return None
    return symbol, interval


def _list(client: Any, bucket: str, prefix: str, root_key: str) -> tuple[dict[tuple[str, str], Remote], list[str]]:
    """The committed objects under ``prefix`` by series, and the keys outside the layout."""
    found: dict[tuple[str, str], Remote] = {}
    ignored = []
    with s3_errors(f"s3://{bucket}/{prefix}"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(root_key):]
                if not rel.endswith(".parquet") or rel.rsplit("/", 1)[-1].startswith((".", "_")):
                    continue
                series = _series_of(rel)
                if series is None:
                    ignored.append(obj["Key"])
                    continue
                found.setdefault(series, {})[rel] = (obj["Key"], int(obj["Size"]), _etag(obj["ETag"]))
    for series, objects in found.items():
        keep = set(committed(objects))
        found[series] = {rel: v for rel, v in objects.items() if rel in keep}
    return found, ignored


def _download(client: Any, bucket: str, key: str, dest: Path, size: int) -> Path:
    """The object in a temporary file beside ``dest`` (the caller renames it)."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:
        if s3_error_code(exc) in ("NoSuchKey", "404"):
            raise _Vanished(key) from None
        raise
    with staged(dest) as (fh, tmp):
        shutil.copyfileobj(body, fh, 1 << 20)
        got = fh.tell()
        if got != size:
            raise UserError(f"s3://{bucket}/{key}: got {got} bytes, expected {size}")
    return tmp


def sync_dataset(source: str, dest: str | Path, *, symbol: str | None = None, interval: str | None = None,
                 client: Any = None, lock_wait: float = DEFAULT_WAIT_S,
                 on_wait: Callable[[str], None] | None = None) -> SyncResult:
    """Mirror the committed Parquet files under ``source`` (``s3://bucket/candles/``) into the folder ``dest``."""
    try:
        bucket, key = parse_s3_uri(source)
    except ValueError as exc:
        raise UserError(f"sync: {exc}") from None
    if interval is not None and symbol is None:
        raise UserError("sync: --interval needs --symbol")
    if symbol is not None and not is_symbol(symbol):
        raise UserError(f"sync: {symbol!r} is not a Binance symbol (pattern {SYMBOL_PATTERN}, like BTCUSDT)")
    if interval is not None and interval not in INTERVAL_MS:
        raise UserError(f"sync: {interval!r} is not a kline interval; expected one of {', '.join(INTERVAL_MS)}")
    dest = make_folder(Path(dest), "sync destination")
    root_key = key if not key or key.endswith("/") else key + "/"
    prefix = root_key
    if symbol is not None:
        prefix += series_prefix(symbol, interval) if interval else f"symbol={symbol}/"
    client = client or s3_client()
    remote, ignored = _list(client, bucket, prefix, root_key)
    manifest_path = dest / MANIFEST
    manifest = read_manifest(manifest_path)
    # Series this sync brought down earlier that S3 no longer has: their local copies go too.
    for rel in manifest:
        series = _series_of(rel)
        if series is not None and rel.startswith(prefix[len(root_key):]):
            remote.setdefault(series, {})
    copied, removed, skipped = [], [], 0
    for series in sorted(remote):
        with hold_series(str(dest), *series, wait=lock_wait, on_wait=on_wait, command="data sync"):
            objects = remote[series]
            for attempt in range(READ_ATTEMPTS):
                try:
                    result = _SeriesSync(client, bucket, dest, series, objects, manifest).run()
                    break
                except _Vanished:
                    time.sleep(min(0.01 * 2 ** attempt, 0.5))
                    objects = _list(client, bucket, root_key + series_prefix(*series), root_key)[0].get(series, {})
            else:
                raise DataError(f"{source}: {series[0]} {series[1]} was rewritten {READ_ATTEMPTS} times while it "
                                "was being copied; try again")
        copied += result.copied
        removed += result.removed
        skipped += result.skipped
        if result.copied or result.removed:
            write_manifest(manifest_path, manifest)
    write_manifest(manifest_path, manifest)
    return SyncResult(copied, skipped, removed, ignored)


class _SeriesSync:
    """One series: download what changed beside its targets, then swap it all in under the folder lock."""

    def __init__(self, client: Any, bucket: str, dest: Path, series: tuple[str, str], objects: Remote,
                 manifest: dict):
        self.client, self.bucket, self.dest, self.objects, self.manifest = client, bucket, dest, objects, manifest
        self.prefix = series_prefix(*series)

    def run(self) -> SyncResult:
        staged_files: list[tuple[str, Path]] = []
        skipped = 0
        try:
            for rel in sorted(self.objects):
                obj_key, size, etag = self.objects[rel]
                if _up_to_date(self.dest / rel, size, etag, self.manifest.get(rel)):
                    skipped += 1
                    continue
                with s3_errors(f"s3://{self.bucket}/{obj_key}"):
                    staged_files.append((rel, _download(self.client, self.bucket, obj_key, self.dest / rel, size)))
            removed = self._commit(staged_files)
        finally:
            for _, tmp in staged_files:
                tmp.unlink(missing_ok=True)
        for rel in [r for r in self.manifest if r.startswith(self.prefix) and r not in self.objects]:
            del self.manifest[rel]
        for rel, (_, size, etag) in self.objects.items():
            self.manifest[rel] = {"etag": etag, "size": size}
        return SyncResult([rel for rel, _ in staged_files], skipped, removed)

    def _stale(self) -> list[Path]:
        """Local files S3 no longer has: any other file in a month S3 has, and what an earlier sync brought
        down of a month S3 no longer has (files written locally in such a month stay)."""
        folders = {(self.dest / rel).parent for rel in self.objects}
        stale = {f for folder in folders for f in partition_files(folder)
                 if f.relative_to(self.dest).as_posix() not in self.objects}
        stale |= {self.dest / rel for rel in self.manifest
                  if rel.startswith(self.prefix) and rel not in self.objects and (self.dest / rel).is_file()}
        return sorted(stale)

    def _commit(self, staged_files: list[tuple[str, Path]]) -> list[str]:
        stale = self._stale()
        if not staged_files and not stale:
            return []
        with series_folder_lock(self.dest / self.prefix, exclusive=True):
            for rel, tmp in staged_files:
                os.replace(tmp, self.dest / rel)
            for path in stale:
                path.unlink(missing_ok=True)
        return [p.relative_to(self.dest).as_posix() for p in stale]
