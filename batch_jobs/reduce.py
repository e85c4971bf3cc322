"""``backtest batch reduce``: merge every shard of a run and publish its report.

Checks that shards ``0..N-1`` are all present (else fails naming the missing ones),
that each was computed for this run's config, slice and candles, concatenates them in
grid order (``combination``), finishes the run with the same pipeline a local ``backtest run``
uses (``engine.pipeline.finish_run``: validation figures, ranking, detail runs), writes the
same run folder (report.html, ranked summary, per-combination JSON, trades; plots when the
config asks) into a temporary folder and uploads it under ``runs/<run_id>/report/``,
``manifest.json`` last: its presence means the report is complete.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.cpus import available_cpus
from engine.data.source import load_data
from engine.data.spec import DataSpec
from engine.errors import UserError
from engine.grid import build_grid
from engine.pipeline import RunInputs, finish_run
from engine.report.run_folder import write_run_folder
from engine.run_store import MANIFEST
from engine.storage_layout import report_prefix, s3_uri, shard_key, shards_prefix
from engine.sweep import SweepResult
from engine.validation.columns import ValidationColumns
from engine.validation.plan import resolve

from .aws import content_type, get_bytes, list_objects, parallel_map, put_bytes, session_or_default
from .contract import RunTarget, shard_bounds
from .shardfile import ShardHeader, from_bytes, read_run
from .universe import run_universe_reduce

#: How many missing shard indices an error message lists before "…".
LIST_MISSING = 20


@dataclass(frozen=True)
class ReduceResult:
    report_uri: str
    combinations: int
    files: int
    best: str | None  # strategy_id ranked first
    seconds: float


def missing_shards(s3: Any, run: RunTarget) -> list[int]:
    present = list_objects(s3, run.bucket, shards_prefix(run.run_id))
    return [i for i in range(run.array_size) if shard_key(run.run_id, i) not in present]


def _describe(indices: list[int]) -> str:
    shown = ", ".join(map(str, indices[:LIST_MISSING]))
    return shown + (f", … ({len(indices) - LIST_MISSING} more)" if len(indices) > LIST_MISSING else "")


def load_shards(s3: Any, run: RunTarget) -> tuple[pd.DataFrame, list[ShardHeader]]:
    """Every shard, checked and concatenated in grid order."""
    missing = missing_shards(s3, run)
    if missing:
        raise UserError(f"run {run.run_id}: {len(missing)} of {run.array_size} shard(s) missing under "
                        f"{s3_uri(run.bucket, shards_prefix(run.run_id))}: {_describe(missing)}")

    def read(i: int) -> tuple[pd.DataFrame, ShardHeader]:
        key = shard_key(run.run_id, i)
        return from_bytes(get_bytes(s3, run.bucket, key, what="shard"), s3_uri(run.bucket, key))

    parts = parallel_map(read, range(run.array_size))
    frames = [df for df, h in parts if h.stop > h.first]
    summary = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return summary, [h for _, h in parts]


def check_shards(run: RunTarget, headers: list[ShardHeader], summary: pd.DataFrame, config_hash: str,
                 total: int) -> str | None:
    """Every shard belongs to this run, config and slice, and all saw the same candles. Returns their fingerprint."""
    for h in headers:
        first, stop = shard_bounds(h.index, run.array_size, total)
        if (h.run_id, h.array_size, h.config_hash, h.first, h.stop) != (run.run_id, run.array_size, config_hash,
                                                                        first, stop):
            raise UserError(f"run {run.run_id}: shard {h.index} was written for another run, config or array size "
                            f"(run {h.run_id}, size {h.array_size}, combinations [{h.first}, {h.stop})); "
                            f"re-run that shard")
    prints = sorted({h.data_fingerprint for h in headers if h.data_fingerprint is not None})
    if len(prints) > 1:
        bad = [h.index for h in headers if h.data_fingerprint not in (None, prints[0])]
        raise UserError(f"run {run.run_id}: shards read different candles (the dataset changed during the run?); "
                        f"shards {_describe(bad)} differ from the others; pin data.start/data.end and re-run them")
    got = summary["combination"].to_numpy() if len(summary) else np.array([], np.int64)
    if len(got) != total or not np.array_equal(np.sort(got), np.arange(total)):
        raise UserError(f"run {run.run_id}: the shards hold {len(got)} rows, not combinations 0..{total - 1} once each")
    return prints[0] if prints else None


def run_reduce(run: RunTarget, *, session: Any = None) -> ReduceResult:
    t0 = time.perf_counter()
    s3 = session_or_default(session).client("s3")
    cfg = read_run(s3, run)
    grid = build_grid(cfg)
    total = len(grid)
    summary, headers = load_shards(s3, run)
    if cfg.data.is_universe:
        uri, units, files, best = run_universe_reduce(run, cfg, grid, summary, headers, s3, upload_folder)
        return ReduceResult(uri, units, files, best, round(time.perf_counter() - t0, 3))
    fingerprint = check_shards(run, headers, summary, cfg.digest(), total)
    summary = summary.sort_values("combination", kind="stable").reset_index(drop=True)
    t_shards = time.perf_counter()

    # The candles once, for the top-K re-simulation (equity curves, trades) and the plots.
    spec = DataSpec.from_config(cfg)
    candles = load_data(spec)
    if fingerprint is not None and candles.fingerprint() != fingerprint:
        raise UserError(f"run {run.run_id}: the candles changed since the shards ran (fingerprint differs); "
                        "pin data.start/data.end in the config and re-run the shards")
    notices = tuple(sorted({n for h in headers for n in h.notices}))
    plan = columns = None
    if cfg.validation is not None:  # every figure from the shards' sums (walk-forward's test windows run here)
        plan = resolve(cfg.validation, len(candles), candles.interval_ms, cfg.limits.max_folds)
        columns = ValidationColumns.from_frame(summary)
        summary = ValidationColumns.strip(summary)
    t_load = time.perf_counter()
    results = finish_run(RunInputs(cfg, grid, candles, workers=available_cpus()),
                         SweepResult(summary, grid, notices, plan, columns))
    t_finish = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"reduce-{run.run_id}-") as tmp:
        out = Path(tmp) / "report"
        folder = write_run_folder(
            out, results, run_id=run.run_id, workers=available_cpus(),
            timings={"shards_read_s": round(t_shards - t0, 3), "load_s": round(t_load - t_shards, 3),
                     "finish_s": round(t_finish - t_load, 3)},
            extra={"batch": {"array_size": run.array_size, "config_uri": run.config_uri,
                             "shards": s3_uri(run.bucket, shards_prefix(run.run_id)),
                             **({"strategy_code": {"uri": run.code_uri, "sha256": run.code_sha256}}
                                if run.code_uri is not None else {})},
                   "stage_timings": dict(results.timings)})
        files = upload_folder(s3, out, run.bucket, report_prefix(run.run_id), last=MANIFEST)
    b = folder.manifest["best"]
    best = (b.get("label") or b["strategy_id"]) if b else None  # the short label: the log line stays readable
    return ReduceResult(s3_uri(run.bucket, report_prefix(run.run_id)), total, files, best,
                        round(time.perf_counter() - t0, 3))


def upload_folder(s3: Any, folder: Path, bucket: str, prefix: str, *, last: str | None = None) -> int:
    """Upload every file under ``folder`` to ``prefix``; ``last`` (relative path) only after all others."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def put(rel: str) -> str:
        return put_bytes(s3, bucket, prefix + rel, (folder / rel).read_bytes(), content_type(rel))

    parallel_map(put, [f for f in files if f != last])
    if last in files:
        put(last)
    return len(files)
