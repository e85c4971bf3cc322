"""``backtest run`` and ``backtest validate-config``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import argtypes

#: Columns of the printed top table after rank, strategy and the rank metric.
TABLE_METRICS = ("n_trades", "sharpe", "total_return", "max_drawdown", "win_rate", "profit_factor")
TOP_ROWS = 5
#: the printed tables fit in this many columns
WIDTH = 120


def register(sub) -> None:
    p = sub.add_parser("run", help="run a config's parameter sweep and write a results folder")
    p.add_argument("--config", type=Path, help="YAML config (default: configs/default.yaml on synthetic data)")
    p.add_argument("--data", type=argtypes.text, help="candles: a CSV/Parquet file, a dataset folder or s3:// URI (overrides data.source)")
    p.add_argument("--symbol", type=argtypes.symbol, help="data.symbol: the symbol to read from a dataset")
    p.add_argument("--interval", type=argtypes.interval, help="data.interval: the interval to read, e.g. 15m, 1h")
    p.add_argument("--symbols", type=argtypes.symbol_list,
                   help="data.symbols: a universe, e.g. BTCUSDT,ETHUSDT (or all: every symbol of the dataset)")
    p.add_argument("--intervals", type=argtypes.interval_list, help="data.intervals: a universe, e.g. 15m,1h")
    p.add_argument("--start", type=_time, help="data.start: first candle time, e.g. 2024-01-01 (UTC, inclusive)")
    p.add_argument("--end", type=_time, help="data.end: end time, e.g. 2025-01-01 (UTC, exclusive)")
    p.add_argument("--out", type=argtypes.path, default=Path("results"), help="results root (default: results/)")
    p.add_argument("--workers", type=argtypes.positive_int, help="parallel workers (default: parallel.workers or all CPUs)")
    p.add_argument("--engine", choices=("fast", "reference"), default="fast",
                   help="fast: compiled numba path (default); reference: the event-driven engine")
    p.add_argument("--run-id", type=_run_id, help="name of the run folder: a plain name (default: experiment name, "
                                                  "UTC time, random suffix)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_run)

    v = sub.add_parser("validate-config", help="check a config without running it")
    v.add_argument("config", type=Path)
    v.set_defaults(func=cmd_validate)


def _run_id(text: str) -> str:
    from engine.errors import UserError
    from engine.run_id import check_run_id

    try:
        return check_run_id(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time(text: str) -> str:
    from engine.errors import UserError
    from engine.timeutil import parse_time

    try:
        parse_time(text)
    except (UserError, ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; expected an ISO date like 2024-01-01, "
                                         "an ISO time like 2024-01-01T12:00, or epoch milliseconds") from None
    return text


def _load(path: Path | None, overrides: dict | None = None):
    from engine.config import DEFAULT_CONFIG, load_config

    return load_config(path or DEFAULT_CONFIG, overrides=overrides)


def cmd_validate(args) -> int:
    from engine.config import effective_config
    from engine.grid import build_grid
    from engine.grid_budget import estimate_bytes, human_bytes

    cfg = _load(args.config)
    grid = build_grid(cfg)
    total, filtered = len(grid), grid.filtered
    axes = max((len(sw.columns) for sw in grid), default=1)
    print(f"{args.config}: OK, {total} combination(s)" + (f" ({filtered} filtered by constraints)" if filtered else "")
          + f"; the grid needs about {human_bytes(estimate_bytes(total + filtered, axes))} of memory "
          f"(limit {cfg.limits.max_combinations:,} combinations)")
    if cfg.validation is not None:
        print(_validation_memory(cfg, total))
    print("\n# the effective config: every key as a run uses it; '# default' marks a value the file does not give")
    print(effective_config(cfg), end="")
    return 0


def _validation_memory(cfg, combinations: int) -> str:
    from engine.grid_budget import human_bytes
    from engine.validation.estimate import validation_estimate

    est = validation_estimate(cfg, combinations)
    if est.exact:
        folds = f" ({est.folds:,} walk-forward folds)" if est.folds else ""
        return f"validation adds about {human_bytes(est.bytes)}{folds}"
    return (f"validation adds up to {human_bytes(est.bytes)}" + (
        f" (at limits.max_folds = {est.folds:,} folds; the data's length decides)" if est.folds else ""))


def _prepare_out(args, cfg, grid) -> Path:
    """Everything about --out that can fail, before the data is read: folder, free space, stale partial folders."""
    from engine.report.size import estimate_run_folder_bytes
    from engine.run_store import clean_partial_folders

    from .preflight import check_free_space, check_output_root

    out = check_output_root(args.out)
    for stale in clean_partial_folders(out):
        print(f"note: removed {stale.path}, the incomplete folder of an interrupted run (process {stale.pid})",
              file=sys.stderr)
    check_free_space(out, estimate_run_folder_bytes(len(grid), cfg.report.top_k, len(grid.sweeps),
                                                    png=cfg.report.png, runs=cfg.report.runs))
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


def _step(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _observer(args, out: Path):
    from engine.experiment import RunObserver

    class Steps(RunObserver):
        """Step lines on stderr; a progress bar over the sweep alone."""

        bar = None

        def data_loaded(self, candles) -> None:
            gaps = candles.gaps.describe(candles.interval_ms) if candles.gaps else "no gaps"
            _step(f"data: {candles.source} · {candles.symbol} {candles.interval} · {len(candles):,} candles · {gaps}")

        started_at = 0.0

        def compile_started(self, what: str, why: str) -> None:
            import time

            self.started_at = time.perf_counter()
            self._say(f"compiling {what}: {why}…")

        def compile_finished(self, what: str, seconds: float) -> None:
            if self.bar is not None:  # a compile mid-sweep: the bar's rate counts sweep time only
                self.bar.start_t += seconds
                self.bar.last_print_t += seconds
            if seconds >= 2.0:
                self._say(f"compiled {what} in {seconds:.1f} s")

        def compiled(self, seconds: float) -> None:
            _step(f"compiled in {seconds:.1f} s (cached for later runs)")

        def _say(self, line: str) -> None:
            if self.bar is not None:
                self.bar.write(line, file=sys.stderr)
            else:
                _step(line)

        def sweep_started(self, total: int):
            if args.no_progress:
                return None
            from tqdm import tqdm

            # smoothing=0: the rate is combinations over the sweep's time (a compile mid-sweep is taken out)
            self.bar = tqdm(total=total, unit="combo", desc=f"{args.engine} sweep", file=sys.stderr,
                            dynamic_ncols=True, smoothing=0,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}, {rate_fmt}]")
            bar = self.bar

            def progress(done: float) -> None:
                # The fast path reports fractions per time chunk; float sums may overshoot by an ulp.
                bar.update(min(done, bar.total - bar.n))
                if bar.n >= bar.total - 1e-6 and bar is self.bar:
                    self.close()  # the sweep is over: the bar (and its rate) stop here
            return progress

        def sweep_finished(self, seconds: float) -> None:
            self.close()
            _step(f"sweep: {seconds:.2f} s")

        def writing_soon(self, needed_bytes: int) -> None:
            from .preflight import check_free_space

            check_free_space(out, needed_bytes)  # now that the trade counts are known

        def report_started(self, run_dir) -> None:
            _step(f"report: writing report.html, summary, trades and charts to {run_dir}…")

        def report_finished(self, seconds: float) -> None:
            _step(f"report: done in {seconds:.1f} s")

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Steps()


def _overrides(args) -> dict:
    given = {"data.symbol": args.symbol, "data.interval": args.interval, "data.start": args.start,
             "data.end": args.end, "data.symbols": args.symbols, "data.intervals": args.intervals}
    return {k: v for k, v in given.items() if v is not None}


#: shown after the headline metrics when a validated sweep has them
VALIDATION_TABLE_COLUMNS = ("oos_sharpe", "dsr")
#: narrower headers, so the table fits in 120 columns
SHORT_HEADERS = {"n_trades": "trades", "total_return": "return", "max_drawdown": "max_dd",
                 "profit_factor": "pf", "win_rate": "win_rate"}


def top_table(ranked, rank_by: str, rows: int = TOP_ROWS, swept: dict | None = None, width: int = WIDTH) -> str:
    """The best ``rows`` ranked combinations (one per group of identical returns): rank, the rank metric,
    trades and the headline metrics, after a validated sweep also the holdout's Sharpe and the deflated
    Sharpe, and each combination's short label (its swept values; ``swept``: per strategy, its swept
    columns; default the full strategy_id). The label is the last column when the lines fit in
    ``width`` characters, else listed below the table by rank."""
    from engine.report.labels import short_label
    from engine.validation.trials import first_of_groups

    top = first_of_groups(ranked[ranked["rank"].notna()]).head(rows).copy()
    if swept is not None:
        labels = [short_label(r["strategy"], swept.get(r["strategy"], ()), r) for r in top.to_dict("records")]
    else:
        labels = [str(x) for x in top["strategy_id"]]
    cols = ["rank", rank_by, *(m for m in TABLE_METRICS if m != rank_by)]
    cols += [c for c in VALIDATION_TABLE_COLUMNS if c in top.columns and c != rank_by]
    from engine.report.numbers import format_fixed

    table = top[cols].rename(columns=SHORT_HEADERS).to_string(index=False, float_format=format_fixed,
                                                              na_rep="—").splitlines()
    longest = max((len(x) for x in labels), default=0)
    if max(len(line) for line in table) + 2 + max(longest, len("combination")) <= width:
        return "\n".join(line + "  " + lab for line, lab in zip(table, ["combination", *labels]))
    ranks = [str(r) for r in top["rank"]]
    w = max(len(r) for r in ranks)
    return "\n".join(table + [""] + [f"{r.rjust(w)}  {lab}" for r, lab in zip(ranks, labels)])


def _warn_skipped(out: Path) -> None:
    """The run folders index.html left out (a malformed manifest), one warning each."""
    from engine.report.index import list_runs

    skipped: list[str] = []
    list_runs(out, skipped)
    for line in skipped:
        print(f"warning: {line}", file=sys.stderr)


def cmd_run(args) -> int:
    from engine.data.spec import DataSpec
    from engine.grid import build_grid

    cfg = _load(args.config, _overrides(args))
    grid = build_grid(cfg)
    # imported once the config holds: a refused config answers without loading pandas (half a second)
    from engine.experiment import run_experiment
    from engine.report.labels import swept_of

    out = _prepare_out(args, cfg, grid)
    workers = _workers(args, cfg)
    spec = DataSpec.from_config(cfg, args.data)
    steps = _observer(args, out)
    if spec.is_universe:
        from .universe import run_universe_cli

        return run_universe_cli(args, cfg, spec, grid, out, workers, steps)
    try:
        res = run_experiment(cfg, spec, out, engine=args.engine, workers=workers, run_id=args.run_id,
                             grid=grid, observer=steps)
    finally:
        steps.close()
    for notice in res.results.notices:
        print(f"note: {notice}", file=sys.stderr)
    _warn_skipped(out)
    ranked = res.ranked
    from engine.validation.trials import first_of_groups

    n_ranked = len(first_of_groups(ranked[ranked["rank"].notna()]))
    top = min(TOP_ROWS, n_ranked)
    rank_by, min_trades = cfg.report.rank_by, cfg.report.min_trades
    unranked = len(ranked) - int(ranked["rank"].notna().sum())
    note = (f"; {unranked} with fewer than {min_trades} trade{'s' if min_trades != 1 else ''} unranked"
            if unranked else "")
    where = " on the in-sample bars" if "oos_sharpe" in ranked.columns else ""
    dups = len(ranked) - len(first_of_groups(ranked))
    if dups:
        note += f"; {dups} with the same returns as a better-placed one not shown (duplicate_of)"
    if top:
        print(f"\nTop {top} of {len(ranked)} by {rank_by}{where}{note}:")
        print(top_table(ranked, rank_by, swept=swept_of(grid)))
    else:
        print(f"\nNo combination of {len(ranked)} is ranked: none has {min_trades} or more closed trades "
              f"(report.min_trades){where}.")
    if res.validation is not None:
        from engine.report.validation import text_block

        print()
        from engine.timeutil import periods_per_year

        print("\n".join(text_block(res.validation, ranked, periods_per_year(res.results.candles.interval_ms),
                                    width=WIDTH, names=swept_of(grid))))
    print(f"\nreport:  {res.run_dir / 'report.html'}")
    print(f"all runs: {out / 'index.html'}  (backtest runs --out {out})")
    print(f"results: {res.run_dir}")
    return 0
