"""``backtest run`` on a universe: the run, then the top table by the aggregate and the validation block."""

from __future__ import annotations

import sys

from .run import WIDTH

TOP_ROWS = 5
#: the perp sums' headers in the top table (summary.csv keeps the full names)
PERP_HEADERS = {"total_funding": "funding", "n_liquidations": "liqs"}


def top_table(ranked, rank_by: str, aggregate: str, rows: int = TOP_ROWS, names=None) -> str:
    """The best ``rows``: rank, the aggregate, M_min, profitable_share, n_trades summed over series (perp: also
    total_funding and n_liquidations) and the
    combination's short label (``names``: per strategy, its swept columns; default the full strategy_id)."""
    from engine.report.labels import labels_of
    from engine.report.numbers import format_fixed
    from engine.universe.aggregate import PERP_SUMS

    key = f"{rank_by}_{aggregate}"
    cols = ["rank", key, *([f"{rank_by}_min"] if aggregate != "min" else []), "profitable_share", "n_trades",
            *[c for c in PERP_SUMS if c in ranked.columns]]
    top = ranked[ranked[key].notna()].head(rows)
    labels = labels_of(top, names) if names is not None else [str(x) for x in top["strategy_id"]]
    shown = top[cols].rename(columns=PERP_HEADERS)  # short headers keep a perp table within 120 columns
    table = shown.to_string(index=False, float_format=format_fixed, na_rep="—").splitlines()
    return "\n".join(f"{line}  {lab}" for line, lab in zip(table, ["combination", *labels]))


def run_universe_cli(args, cfg, spec, grid, out, workers, steps) -> int:
    from engine.report.labels import swept_of
    from engine.universe_experiment import run_universe_experiment

    try:
        res = run_universe_experiment(cfg, spec, out, engine=args.engine, workers=workers, run_id=args.run_id,
                                      grid=grid, observer=steps)
    finally:
        steps.close()
    u = res.results
    for notice in sorted({n for r in u.runs for n in r.notices}):
        print(f"note: {notice}", file=sys.stderr)
    rank_by, aggregate = cfg.report.rank_by, cfg.report.aggregate
    defined = int(u.ranked[u.rank_key].notna().sum())
    where = " on the in-sample bars" if cfg.validation is not None and cfg.validation.holdout else ""
    print(f"\nTop {min(TOP_ROWS, defined)} of {len(u.ranked)} by {aggregate} {rank_by} over {len(u.runs)} series"
          f"{where}:")
    if defined:
        print(top_table(u.ranked, rank_by, aggregate, names=swept_of(grid)))
    if cfg.validation is not None:
        from engine.report.universe_validation import text_block

        print()
        print("\n".join(text_block(u, width=WIDTH)))
    print(f"\nreport:  {res.run_dir / 'report.html'}")
    print(f"by series: {res.run_dir / 'summary_by_series.csv'}")
    print(f"results: {res.run_dir}")
    return 0
