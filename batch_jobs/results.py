"""``backtest results RUN_ID --out DIR``: download a run's report to ``DIR/<run_id>/``.

The files land in a hidden temporary folder beside the destination, which is renamed
into place only when every file is there: ``DIR/<run_id>/`` is complete or absent.
An existing destination is never written into.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from engine.errors import UserError
from engine.run_store import MANIFEST
from engine.storage_layout import report_prefix, s3_uri

from .aws import list_objects, parallel_map, session_or_default


def _relative(key: str, prefix: str) -> str:
    rel = PurePosixPath(key[len(prefix):])
    if rel.is_absolute() or not rel.parts or any(p in ("", ".", "..") for p in rel.parts):
        raise UserError(f"refusing to download {key!r}: not a plain path under {prefix}")
    return rel.as_posix()


def download_report(run_id: str, bucket: str, out_root: Path, *, session: Any = None) -> Path:
    s3 = session_or_default(session).client("s3")
    prefix = report_prefix(run_id)
    listed = list_objects(s3, bucket, prefix)
    rels = sorted(_relative(k, prefix) for k in listed if not k.endswith("/"))
    if MANIFEST not in rels:
        raise UserError(f"run {run_id}: no complete report at {s3_uri(bucket, prefix)} yet "
                        f"(the reduce job has not finished); check with: backtest status {run_id}")
    dest = Path(out_root) / run_id
    if dest.exists():
        raise UserError(f"{dest} already exists; remove it or choose another --out")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{run_id}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        def fetch(rel: str) -> None:
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, prefix + rel, str(path))

        parallel_map(fetch, rels)
        try:
            os.rename(tmp, dest)  # atomic; fails if dest appeared meanwhile
        except OSError:
            raise UserError(f"{dest} appeared while downloading; remove it or choose another --out") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
