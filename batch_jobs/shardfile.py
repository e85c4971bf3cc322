"""A shard's object (``runs/<run_id>/shards/<index>.parquet``) and the run's config in S3.

A shard file is the slice's summary rows (the same columns as a local sweep's summary)
plus a JSON header in the Parquet key-value metadata saying which run, slice, config
and candles it was computed from, so ``reduce`` can refuse stale or mixed inputs. The
bytes are a pure function of the inputs (no timestamps): a retried shard writes an
identical object.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import Config, parse_config_text
from engine.errors import UserError
from engine.storage_layout import parse_s3_uri

from .aws import get_bytes
from .contract import RunTarget
from .strategy_code import check_imported_from, install_code

META_KEY = b"backtest.shard"


@dataclass(frozen=True)
class ShardHeader:
    run_id: str
    index: int
    array_size: int
    combinations: int  # of the whole grid
    first: int  # global combinations [first, stop)
    stop: int
    config_hash: str
    data_fingerprint: str | None  # None for an empty slice (no candles loaded)
    engine_version: str
    notices: tuple[str, ...] = ()


def to_bytes(summary: pd.DataFrame, header: ShardHeader) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(summary, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(asdict(header), sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue()


def from_bytes(body: bytes, where: str) -> tuple[pd.DataFrame, ShardHeader]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(body))
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise ValueError("no shard header in the Parquet metadata")
        doc = json.loads(raw)
        doc["notices"] = tuple(doc.get("notices", ()))
        header = ShardHeader(**doc)
    except Exception as exc:  # pyarrow/json/TypeError: whatever it is, the object is not a shard
        raise UserError(f"{where}: not a shard file ({' '.join(str(exc).split())[:200]})") from None
    return table.to_pandas(), header


def read_run(s3: Any, run: RunTarget) -> Config:
    """The run's config, with the user strategy modules uploaded with it installed first (checked against
    their recorded SHA-256) and every user strategy imported from them."""
    folder = None
    if run.code_uri is not None:
        bucket, key = parse_s3_uri(run.code_uri)
        archive = get_bytes(s3, bucket, key, what="the run's strategy code")
        folder = install_code(archive, run.code_sha256, code_folder(run))
    cfg, _ = read_run_config(s3, run.config_uri)
    if folder is not None:
        check_imported_from([g.path for g in cfg.strategies], folder)
    return cfg


def code_folder(run: RunTarget) -> Path:
    """Where a job unpacks its run's strategy code: a folder of the run's own, named by the code's hash."""
    return Path(tempfile.gettempdir()) / "backtest-runs" / run.run_id / f"strategies-{run.code_sha256[:16]}"


def read_run_config(s3: Any, config_uri: str) -> tuple[Config, str]:
    """The run's config (parsed and validated) and its text, from S3."""
    bucket, key = parse_s3_uri(config_uri)
    body = get_bytes(s3, bucket, key, what="run config")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{config_uri}: config is not UTF-8 text") from None
    return parse_config_text(text, config_uri), text
