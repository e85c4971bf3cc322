"""``data sync --market um``: bring a dataset's USDⓈ-M series down from S3 (trade klines, mark klines, funding).

The source is the dataset's (spot) candles root, as everywhere else (``s3://B/candles/``); each kind
lives at its own root beside it (:func:`engine.storage_layout.kind_root`), locally the same way
(``DS/um/candles/``, ``DS/um/mark/``, ``DS/um/funding/``).

* Trade and mark klines are partitioned like spot candles, so each kind is synced by
  :func:`engine.data.sync.sync_dataset` on its own pair of roots: the committed generation per
  series, downloaded beside its targets, renamed into place under the series folder's lock while
  the series lock (``DS/um/<kind>/_locks/…``, the one ``data build/fetch --market um`` take) keeps
  other local writers out. A local reader sees one synced version or the next, never a mix.
* A funding table is one object per symbol (``symbol=S/part-0.parquet``), replaced whole by every
  writer, so one GET is one version of it. It is downloaded to a temporary file beside the local
  table and renamed over it while holding the table's lock (:func:`engine.data.series_lock.hold_table`);
  a local reader (which reads the one file) sees the old table or the new one. The manifest
  (``DS/um/funding/.sync-manifest.json``) keeps each table's ETag and size, so an unchanged table is
  not downloaded again; a table this sync brought down that S3 no longer has is removed.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..storage_layout import FUNDING_FILE, funding_file, kind_root, parse_s3_uri
from .binance import is_symbol
from .local_write import make_folder, staged
from .s3_errors import s3_error_code, s3_errors
from .s3_session import s3_client
from .series_lock import DEFAULT_WAIT_S, hold_table
from .sync import MANIFEST, SyncResult, read_manifest, sync_dataset, write_manifest

#: the kinds synced, in this order (the CLI prints one line each)
UM_KINDS = ("klines", "mark", "funding")
_FUNDING_KEY = re.compile(rf"^symbol=([^/]+)/{re.escape(FUNDING_FILE)}$")


@dataclass(frozen=True)
class PerpSyncResult:
    by_kind: dict[str, SyncResult]


def sync_perp(source: str, dest: str | Path, *, symbol: str | None = None, interval: str | None = None,
              client: Any = None, lock_wait: float = DEFAULT_WAIT_S,
              on_wait: Callable[[str], None] | None = None) -> PerpSyncResult:
    """Mirror the um series of the dataset whose candles root is ``source`` into the local dataset ``dest``."""
    try:
        _, key = parse_s3_uri(source)
    except ValueError as exc:
        raise UserError(f"sync: {exc}") from None
    if key.rstrip("/").endswith("um/candles"):
        raise UserError(f"sync: {source} is the um trade klines' root; --market um takes the dataset's candles "
                        "root (s3://BUCKET/candles/) and syncs its um/candles/, um/mark/ and um/funding/")
    client = client or s3_client()
    out: dict[str, SyncResult] = {}
    for kind in ("klines", "mark"):
        out[kind] = sync_dataset(kind_root(source, "um", kind), kind_root(str(dest), "um", kind), symbol=symbol,
                                 interval=interval, client=client, lock_wait=lock_wait, on_wait=on_wait)
    out["funding"] = sync_funding(kind_root(source, "um", "funding"), Path(kind_root(str(dest), "um", "funding")),
                                  symbol=symbol, client=client, lock_wait=lock_wait, on_wait=on_wait)
    return PerpSyncResult(out)


def _remote_tables(client: Any, bucket: str, root_key: str, symbol: str | None) -> tuple[dict[str, tuple], list]:
    """symbol -> (key, size, ETag) of every funding table under the root; keys outside the layout."""
    prefix = root_key + (f"symbol={symbol}/" if symbol else "")
    tables, ignored = {}, []
    with s3_errors(f"s3://{bucket}/{prefix}"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(root_key):]
                m = _FUNDING_KEY.match(rel)
                if m is None or not is_symbol(m.group(1)):
                    ignored.append(obj["Key"])
                    continue
                tables[m.group(1)] = (obj["Key"], int(obj["Size"]), obj["ETag"].strip('"'))
    return tables, ignored


def sync_funding(source: str, dest: Path, *, symbol: str | None = None, client: Any = None,
                 lock_wait: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None) -> SyncResult:
    """Mirror the funding tables under the S3 funding root ``source`` into the local funding root ``dest``."""
    bucket, key = parse_s3_uri(source)
    root_key = key if not key or key.endswith("/") else key + "/"
    dest = make_folder(dest, "sync destination")
    client = client or s3_client()
    remote, ignored = _remote_tables(client, bucket, root_key, symbol)
    manifest_path = dest / MANIFEST
    manifest = read_manifest(manifest_path)
    symbols = set(remote) | {m.group(1) for rel in manifest if (m := _FUNDING_KEY.match(rel))
                             and (symbol is None or m.group(1) == symbol)}
    copied, removed, skipped = [], [], 0
    for sym in sorted(symbols):
        rel = funding_file(sym)
        target = dest / rel
        with hold_table(str(dest), sym, wait=lock_wait, on_wait=on_wait, command="data sync"):
            if sym not in remote:  # gone from S3: drop what an earlier sync brought down
                if target.is_file():
                    target.unlink()
                    removed.append(rel)
                manifest.pop(rel, None)
                continue
            obj_key, size, etag = remote[sym]
            known = manifest.get(rel)
            if target.is_file() and target.stat().st_size == size and known == {"etag": etag, "size": size}:
                skipped += 1
                continue
            got = _download_table(client, bucket, obj_key, target)
            if got is None:  # deleted between the listing and the GET: nothing to mirror
                continue
            manifest[rel] = got
            copied.append(rel)
        write_manifest(manifest_path, manifest)
    write_manifest(manifest_path, manifest)
    return SyncResult(copied, skipped, removed, ignored)


def _download_table(client: Any, bucket: str, key: str, target: Path) -> dict | None:
    """One GET (one version of the table), staged beside ``target`` and renamed over it; its ETag and size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with s3_errors(f"s3://{bucket}/{key}"):
        try:
            answer = client.get_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if s3_error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        size = int(answer["ContentLength"])
        with staged(target) as (fh, tmp):
            shutil.copyfileobj(answer["Body"], fh, 1 << 20)
            if fh.tell() != size:
                raise UserError(f"s3://{bucket}/{key}: got {fh.tell()} bytes, expected {size}")
    try:
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"etag": answer["ETag"].strip('"'), "size": size}
