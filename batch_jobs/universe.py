"""A universe run on Batch: shards over (series × combination blocks), reduce into the local run's folder.

The work is S × N units, series-major: unit ``u`` is combination ``u % N`` on series ``u // N``
(series in universe order). Shard ``i`` takes units ``shard_bounds(i, array size, S × N)``, so it
touches a contiguous run of series, loads each of them alone (only that series' partitions are
read) and sweeps its block of combinations there. Its rows carry a ``series`` column; its header's
fingerprint lists ``index=fingerprint`` for every series it read. Reduce checks every shard, loads
each series once, finishes each series' validation figures from the shards' sums exactly as a
local run does (``engine.pipeline`` stage ``validate``), then aggregates, ranks and writes with
the same functions as ``backtest run`` (``engine.universe.runner.finish_universe``,
``engine.report.universe_folder``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine import __version__
from engine.config import Config
from engine.cpus import available_cpus
from engine.data.source import load_data
from engine.data.spec import DataSpec
from engine.perp.inputs import check_perp_run
from engine.errors import UserError
from engine.grid import Grid
from engine.pipeline import RunInputs, RunState, run_stages, stages
from engine.ranking import rank
from engine.report.universe_folder import write_universe_folder
from engine.run_store import MANIFEST
from engine.storage_layout import SHARD_TAGGING, report_prefix, s3_uri, shard_key
from engine.sweep import SweepResult, run_sweep
from engine.universe.runner import SeriesRun, finish_universe, series_config
from engine.universe.series import Series, resolve_universe
from engine.validation.columns import ValidationColumns
from engine.validation.plan import resolve

from .aws import content_type, put_bytes
from .contract import RunTarget, ShardTask, shard_bounds
from .shardfile import ShardHeader, to_bytes

SERIES_COLUMN = "series"


def universe_series(cfg: Config) -> tuple[Series, ...]:
    return resolve_universe(DataSpec.from_config(cfg))


def blocks(first: int, stop: int, n: int) -> list[tuple[int, int, int]]:
    """(series index, first combination, stop) for units [first, stop) of a grid of ``n``."""
    out = []
    u = first
    while u < stop:
        s, g = divmod(u, n)
        end = min(stop, (s + 1) * n)
        out.append((s, g, g + end - u))
        u = end
    return out


def run_universe_shard(task: ShardTask, cfg: Config, grid: Grid, s3: Any, workers: int) -> tuple:
    """Sweep shard ``task.index``'s blocks and write its object: (first, stop, total, candles, etag)."""
    run = task.run
    series = universe_series(cfg)
    n = len(grid)
    total = n * len(series)
    first, stop = shard_bounds(task.index, run.array_size, total)
    frames, notices, prints, n_candles = [], [], [], 0
    for s, lo, hi in blocks(first, stop, n):
        candles = load_data(series[s].spec)
        if cfg.perp is not None:  # the data may have changed since submit checked it
            check_perp_run(cfg.perp, candles)
        result = run_sweep(series_config(cfg, series[s]), candles, grid=grid, indices=np.arange(lo, hi),
                           workers=workers)
        frame = result.summary
        if result.validation is not None:
            frame = pd.concat([frame, result.validation.to_frame()], axis=1)
        frame.insert(0, SERIES_COLUMN, np.full(len(frame), s, dtype=np.int64))
        frames.append(frame)
        notices += result.notices
        prints.append(f"{s}={candles.fingerprint()}")
        n_candles += len(candles)
    summary = (pd.concat(frames, ignore_index=True) if frames
               else pd.DataFrame({SERIES_COLUMN: np.array([], np.int64), "combination": np.array([], np.int64)}))
    header = ShardHeader(run.run_id, task.index, run.array_size, total, first, stop, cfg.digest(),
                         ";".join(prints) or None, __version__, tuple(sorted(set(notices))))
    key = shard_key(run.run_id, task.index)
    etag = put_bytes(s3, run.bucket, key, to_bytes(summary, header), content_type(key), tagging=SHARD_TAGGING)
    return first, stop, total, n_candles, etag


def run_universe_reduce(run: RunTarget, cfg: Config, grid: Grid, summary: pd.DataFrame,
                        headers: list[ShardHeader], s3: Any, upload) -> tuple[str, int, int, str | None]:
    """Finish and publish a universe run from its shards: (report uri, units, files, best strategy id)."""
    t0 = time.perf_counter()
    series = universe_series(cfg)
    n, total = len(grid), len(grid) * len(series)
    prints: dict[int, str] = {}
    for h in headers:
        if (h.run_id, h.array_size, h.config_hash, (h.first, h.stop), h.combinations) != (
                run.run_id, run.array_size, cfg.digest(), shard_bounds(h.index, run.array_size, total), total):
            raise UserError(f"run {run.run_id}: shard {h.index} was written for another run, config, universe or "
                            f"array size; re-run that shard")
        for item in (h.data_fingerprint or "").split(";") if h.data_fingerprint else ():
            s, fp = item.split("=", 1)
            if prints.setdefault(int(s), fp) != fp:
                raise UserError(f"run {run.run_id}: shards read different candles of {series[int(s)].key} (the "
                                "dataset changed during the run?); pin data.start/data.end and re-run them")
    if len(summary) != total:
        raise UserError(f"run {run.run_id}: the shards hold {len(summary)} rows, not {total} (series × combinations)")
    notices = tuple(sorted({x for h in headers for x in h.notices}))
    runs = []
    for s, one in enumerate(series):
        rows = summary[summary[SERIES_COLUMN] == s].drop(columns=[SERIES_COLUMN])
        rows = rows.sort_values("combination", kind="stable").reset_index(drop=True)
        if not np.array_equal(rows["combination"].to_numpy(), np.arange(n)):
            raise UserError(f"run {run.run_id}: the shards do not hold every combination of {one.key} once")
        candles = load_data(one.spec)
        if prints.get(s) not in (None, candles.fingerprint()):
            raise UserError(f"run {run.run_id}: the candles of {one.key} changed since the shards ran; pin "
                            "data.start/data.end in the config and re-run the shards")
        plan = columns = None
        if cfg.validation is not None:
            plan = resolve(cfg.validation, len(candles), candles.interval_ms, cfg.limits.max_folds)
            columns = ValidationColumns.from_frame(rows)
            rows = ValidationColumns.strip(rows)
        inputs = RunInputs(series_config(cfg, one), grid, candles, workers=available_cpus())
        state = run_stages(inputs, stages("validate"),
                           state=RunState(inputs, sweep=SweepResult(rows, grid, notices if s == 0 else (), plan,
                                                                    columns)))
        runs.append(SeriesRun(one, candles, state.summary, rank(state.summary, cfg.report.rank_by,
                                                                 cfg.report.min_trades), state.outcome,
                              notices if s == 0 else ()))
    res = finish_universe(cfg, grid, tuple(runs), engine="fast")
    with tempfile.TemporaryDirectory(prefix=f"reduce-{run.run_id}-") as tmp:
        out = Path(tmp) / "report"
        folder = write_universe_folder(out, res, run_id=run.run_id,
                                       timings={"finish_s": round(time.perf_counter() - t0, 3)},
                                       extra={"batch": {"array_size": run.array_size, "config_uri": run.config_uri}})
        files = upload(s3, out, run.bucket, report_prefix(run.run_id), last=MANIFEST)
    b = folder.manifest["best"]
    best = (b.get("label") or b["strategy_id"]) if b else None  # the short label: the log line stays readable
    return s3_uri(run.bucket, report_prefix(run.run_id)), total, files, best
