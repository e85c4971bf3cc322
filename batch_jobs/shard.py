"""``backtest batch shard``: one array child evaluates its contiguous slice of the grid.

Shard ``i`` of ``N`` takes global combinations ``[i*total//N, (i+1)*total//N)`` of the
grid in its stable order (``Config.grid``), reads only the candle
partitions its config's ``data`` section needs (``s3://BUCKET/candles/`` through the
engine loader and awswrangler), runs the slice on the local fast engine with every CPU
the container may use, and writes ``runs/<run_id>/shards/<i>.parquet`` in one PutObject.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import __version__
from engine.datasource import DataSpec, load_data
from engine.storage_layout import s3_uri, shard_key
from engine.sweep import run_sweep

from .aws import content_type, put_bytes, session_or_default
from .contract import ShardTask, shard_bounds
from .shardfile import ShardHeader, read_run_config, to_bytes


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


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (Fargate/ECS limits)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, math.ceil(quota)) if quota else n)


def _cgroup_cpu_quota() -> float | None:
    try:  # cgroup v2: "max 100000" or "200000 100000"
        q, p = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if q == "max" else int(q) / int(p)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if q <= 0 or p <= 0 else q / p
    except (OSError, ValueError):
        return None


def run_shard(task: ShardTask, *, workers: int | None = None, session: Any = None) -> ShardResult:
    """Evaluate shard ``task.index`` of ``task.run`` and write its object. Idempotent."""
    t0 = time.perf_counter()
    run = task.run
    s3 = session_or_default(session).client("s3")
    cfg, _ = read_run_config(s3, run.config_uri)
    total = len(cfg.grid)
    first, stop = shard_bounds(task.index, run.array_size, total)
    workers = workers or available_cpus()
    spec = DataSpec.from_config(cfg)
    if stop > first:
        # Candles come through the engine loader (awswrangler, default session and endpoint).
        candles = load_data(spec)
        result = run_sweep(cfg, candles, indices=np.arange(first, stop), workers=workers)
        summary, notices, fingerprint, n_candles = result.summary, result.notices, candles.fingerprint(), len(candles)
    else:  # more shards than combinations: an empty, still well-formed shard
        import pandas as pd

        summary, notices, fingerprint, n_candles = pd.DataFrame({"combination": np.array([], np.int64)}), (), None, 0
    header = ShardHeader(run.run_id, task.index, run.array_size, total, first, stop, cfg.digest(), fingerprint,
                         __version__, tuple(notices))
    key = shard_key(run.run_id, task.index)
    etag = put_bytes(s3, run.bucket, key, to_bytes(summary, header), content_type(key))
    return ShardResult(s3_uri(run.bucket, key), task.index, first, stop, total, n_candles, etag, workers,
                       round(time.perf_counter() - t0, 3))
