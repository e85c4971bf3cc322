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
    p.add_argument("--run-id", help="name of the run folder (default: UTC time and config hash)")
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


def _load(path: Path | None):
    from engine.config import DEFAULT_CONFIG, load_config

    return load_config(path or DEFAULT_CONFIG)


def cmd_validate(args) -> int:
    cfg = _load(args.config)
    total, filtered = len(cfg.grid), cfg.grid.filtered
    print(f"{args.config}: OK, {total} combination(s)" + (f" ({filtered} filtered by constraints)" if filtered else ""))
    return 0


def cmd_run(args) -> int:
    from engine.datasource import DataSpec
    from engine.experiment import run_experiment

    from .preflight import check_output_root

    cfg = _load(args.config)
    check_output_root(args.out)  # before the data and the sweep: an unwritable folder must not cost a run
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
        res = run_experiment(cfg, spec, args.out, engine=args.engine, workers=args.workers, run_id=args.run_id,
                             on_sweep_start=start)
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
