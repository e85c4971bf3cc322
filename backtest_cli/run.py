"""``backtest run`` and ``backtest validate-config``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TABLE_METRICS = ("sharpe", "total_return", "max_drawdown", "n_trades", "win_rate", "profit_factor")


def register(sub) -> None:
    p = sub.add_parser("run", help="run a config's parameter sweep and write a results folder")
    p.add_argument("--config", type=Path, help="YAML config (default: configs/default.yaml on synthetic data)")
    p.add_argument("--data", help="candles: a CSV/Parquet file, a dataset folder or s3:// URI (overrides data.source)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results root (default: results/)")
    p.add_argument("--workers", type=_positive_int, help="parallel workers (default: parallel.workers or all CPUs)")
    p.add_argument("--engine", choices=("fast", "reference"), default="fast",
                   help="fast: compiled numba path (default); reference: the event-driven engine")
    p.add_argument("--run-id", type=_run_id, help="name of the run folder: a plain name (default: UTC time and "
                                                  "config hash)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_run)

    v = sub.add_parser("validate-config", help="check a config without running it")
    v.add_argument("config", type=Path)
    v.set_defaults(func=cmd_validate)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _run_id(text: str) -> str:
    from engine.errors import UserError
    from engine.report.run_folder import check_run_id

    try:
        return check_run_id(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(path: Path | None):
    from engine.config import DEFAULT_CONFIG, load_config

    return load_config(path or DEFAULT_CONFIG)


def cmd_validate(args) -> int:
    from engine.grid_budget import estimate_bytes, human_bytes

    cfg = _load(args.config)
    total, filtered = len(cfg.grid), cfg.grid.filtered
    axes = max((len(sw.columns) for sw in cfg.grid), default=1)
    print(f"{args.config}: OK, {total} combination(s)" + (f" ({filtered} filtered by constraints)" if filtered else "")
          + f"; the grid needs about {human_bytes(estimate_bytes(total + filtered, axes))} of memory "
          f"(limit {cfg.limits.max_combinations:,} combinations)")
    return 0


def _prepare_out(args, cfg) -> Path:
    """Everything about --out that can fail, before the data is read: folder, free space, stale partial folders."""
    from engine.report.run_folder import clean_partial_folders, estimate_run_folder_bytes

    from .preflight import check_free_space, check_output_root

    out = check_output_root(args.out)
    for stale in clean_partial_folders(out):
        print(f"note: removed {stale.path}, the incomplete folder of an interrupted run (process {stale.pid})",
              file=sys.stderr)
    check_free_space(out, estimate_run_folder_bytes(len(cfg.grid), cfg.report.top_k, len(cfg.grid.sweeps)))
    return out


def _workers(args, cfg) -> int:
    from engine.cpus import available_cpus

    from .preflight import cpu_clamp

    requested = args.workers or cfg.workers
    if requested is None:
        return available_cpus()
    workers, notice = cpu_clamp(requested, available_cpus())
    if notice:
        source = "--workers" if args.workers else "parallel.workers"
        print(f"note: {source}: {notice}", file=sys.stderr)
    return workers


def cmd_run(args) -> int:
    from engine.datasource import DataSpec
    from engine.experiment import run_experiment

    from .preflight import check_free_space

    cfg = _load(args.config)
    out = _prepare_out(args, cfg)
    workers = _workers(args, cfg)
    spec = DataSpec.from_config(cfg, args.data)
    bars: list = []

    def start(total: int, candles):
        gaps = candles.gaps.describe(candles.interval_ms) if candles.gaps else "no gaps"
        print(f"data: {candles.source} · {candles.symbol} {candles.interval} · {len(candles):,} candles · {gaps}",
              file=sys.stderr)
        if args.no_progress:
            return None
        from tqdm import tqdm

        bar = tqdm(total=total, unit="combo", desc=f"{args.engine} sweep", file=sys.stderr, dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}, {rate_fmt}]")
        bars.append(bar)
        # The fast path reports fractions per time chunk; float sums may overshoot by an ulp.
        return lambda done: bar.update(min(done, bar.total - bar.n))

    try:
        res = run_experiment(cfg, spec, out, engine=args.engine, workers=workers, run_id=args.run_id,
                             on_sweep_start=start, on_write_start=lambda need: check_free_space(out, need))
    finally:
        for bar in bars:
            bar.close()
    for notice in res.sweep.notices:
        print(f"note: {notice}", file=sys.stderr)
    top = res.ranked.head(5)
    cols = ["rank", "strategy_id", *TABLE_METRICS]
    print(f"\nTop {len(top)} of {len(res.ranked)} by {cfg.report.rank_by}:")
    print(top[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}", na_rep="—"))
    print(f"\nresults: {res.run_dir}")
    return 0
