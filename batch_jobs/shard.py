"""``backtest batch shard``: one array child evaluates its contiguous slice of the grid.

Shard ``i`` of ``N`` takes global combinations ``[i*total//N, (i+1)*total//N)`` of the
grid in its stable order (``engine.grid.build_grid``), reads only the candle
partitions its config's ``data`` section needs (``s3://BUCKET/candles/`` through the
engine loader and awswrangler), runs the slice on the local fast engine with every CPU
the container may use, and writes ``runs/<run_id>/shards/<i>.parquet`` in one PutObject.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import __version__
from engine.cpus import available_cpus
from engine.data.source import load_data
from engine.data.spec import DataSpec
from engine.perp.inputs import check_perp_run
from engine.grid import build_grid
from engine.storage_layout import SHARD_TAGGING, s3_uri, shard_key
from engine.sweep import run_sweep

from .aws import content_type, put_bytes, session_or_default
from .contract import ShardTask, shard_bounds
from .shardfile import ShardHeader, read_run, to_bytes
from .universe import run_universe_shard


@dataclass(frozen=True)
class ShardResult:
    uri: str
    index: int
    first: int
    stop: int
    combinations: int
    candles: int
    etag: str
    workers: int
    seconds: float


def run_shard(task: ShardTask, *, workers: int | None = None, session: Any = None) -> ShardResult:
    """Evaluate shard ``task.index`` of ``task.run`` and write its object. Idempotent."""
    t0 = time.perf_counter()
    run = task.run
    s3 = session_or_default(session).client("s3")
    cfg = read_run(s3, run)
    grid = build_grid(cfg)
    workers = workers or available_cpus()
    if cfg.data.is_universe:  # shards over (series × combination blocks)
        first, stop, total, n_candles, etag = run_universe_shard(task, cfg, grid, s3, workers)
        return ShardResult(s3_uri(run.bucket, shard_key(run.run_id, task.index)), task.index, first, stop, total,
                           n_candles, etag, workers, round(time.perf_counter() - t0, 3))
    total = len(grid)
    first, stop = shard_bounds(task.index, run.array_size, total)
    spec = DataSpec.from_config(cfg)
    if stop > first:
        # Candles come through the engine loader (awswrangler, default session and endpoint).
        candles = load_data(spec)
        if cfg.perp is not None:  # the data may have changed since submit checked it
            check_perp_run(cfg.perp, candles)
        result = run_sweep(cfg, candles, grid=grid, indices=np.arange(first, stop), workers=workers)
        summary, notices, fingerprint, n_candles = result.summary, result.notices, candles.fingerprint(), len(candles)
        if result.validation is not None:  # the slice's per-block sums, moments and fold metrics, as columns
            import pandas as pd

            summary = pd.concat([summary, result.validation.to_frame()], axis=1)
    else:  # more shards than combinations: an empty, still well-formed shard
        import pandas as pd

        summary, notices, fingerprint, n_candles = pd.DataFrame({"combination": np.array([], np.int64)}), (), None, 0
    header = ShardHeader(run.run_id, task.index, run.array_size, total, first, stop, cfg.digest(), fingerprint,
                         __version__, tuple(notices))
    key = shard_key(run.run_id, task.index)
    etag = put_bytes(s3, run.bucket, key, to_bytes(summary, header), content_type(key), tagging=SHARD_TAGGING)
    return ShardResult(s3_uri(run.bucket, key), task.index, first, stop, total, n_candles, etag, workers,
                       round(time.perf_counter() - t0, 3))
