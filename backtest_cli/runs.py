"""``backtest runs`` and ``backtest compare``: the runs under a results folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import argtypes
from .run import WIDTH


def register(sub) -> None:
    p = sub.add_parser("runs", help="list the runs under a results folder")
    p.add_argument("--out", type=argtypes.path, default=Path("results"), help="results root (default: results/)")
    p.set_defaults(func=cmd_runs)

    c = sub.add_parser("compare", help="how two runs' configs differ and how their metric distributions moved")
    c.add_argument("run_a", metavar="RUN_A", help="a run id under --out (or a unique prefix), or a run folder")
    c.add_argument("run_b", metavar="RUN_B", help="the run to compare with RUN_A")
    c.add_argument("--out", type=argtypes.path, default=Path("results"), help="results root (default: results/)")
    c.set_defaults(func=cmd_compare)


def _table(header: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def cmd_runs(args) -> int:
    from engine.errors import UserError
    from engine.report.index import list_runs

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out}: not a folder")
    skipped: list[str] = []
    runs = list_runs(args.out, skipped)
    for line in skipped:
        print(f"warning: {line}", file=sys.stderr)
    if not runs:
        print(f"no runs under {args.out}/ yet (backtest run --out {args.out} writes one)")
        return 0
    print(runs_listing(list(reversed(runs))))  # newest first, as in index.html
    print(f"\n{len(runs)} run(s), newest first · index: {args.out / 'index.html'}")
    return 0


#: metrics counted in bars
DURATIONS = ("max_drawdown_duration", "avg_bars_held")


def runs_listing(runs: list, width: int = WIDTH) -> str:
    """One line per run (id, verdict, combinations, created), then its data and its best combination
    indented beneath: the lines fit in ``width`` columns (a longer best is wrapped)."""
    import textwrap

    rows = [[r.folder.name, r.level or "—", f"{r.combinations:,}", r.created_at[:16].replace("T", " ")]
            for r in runs]
    table = _table(["id", "verdict", "combinations", "created (UTC)"], rows, right={2}).splitlines()
    out = table[:2]
    for line, r in zip(table[2:], runs):
        out.append(line)
        for text in (f"data: {r.data}", f"best: {r.best_text}"):
            out += textwrap.wrap(text, width, initial_indent="    ", subsequent_indent="      ",
                                 break_on_hyphens=False)
    return "\n".join(out)


def _value(v) -> str:
    from engine.report.compare import MISSING

    if v is MISSING:
        return "(absent)"
    return json.dumps(v, default=str) if not isinstance(v, str) else v


def _num(v: float | None, sign: str = "") -> str:
    """4 significant digits; whole numbers with thousands separators from 1,000 on."""
    if v is None:
        return "—"
    return f"{v:{sign},.0f}" if abs(v) >= 1000 else f"{v:{sign}.4g}"


def _changes(title: str, changes: list, same: str) -> None:
    print(f"\n{title}")
    if not changes:
        print(f"  {same}")
        return
    width = max(len(k) for k, _, _ in changes)
    for key, va, vb in changes:
        print(f"  {key.ljust(width)}  {_value(va)} → {_value(vb)}")


def cmd_compare(args) -> int:
    from engine.report.compare import compare_runs, resolve_run

    a, b = resolve_run(args.run_a, args.out), resolve_run(args.run_b, args.out)
    cmp = compare_runs(a, b)
    print(f"A: {cmp.a.run_id}  ({cmp.a.folder})")
    print(f"B: {cmp.b.run_id}  ({cmp.b.folder})")

    _changes("config (A → B):", cmp.config, "identical")
    _changes("data (A → B):", cmp.data, "identical candles (same fingerprint)")

    na, nb = len(cmp.a.summary), len(cmp.b.summary)
    print(f"\nmetrics over every combination (A: {na:,}, B: {nb:,}): the median, how it moved")
    rows = [[mv.metric, _num(mv.a.median), _num(mv.b.median), _num(mv.median_change, "+"), mv.direction]
            for mv in cmp.moves]
    print(_table(["metric", "A median", "B median", "change", "median is"], rows, right={1, 2, 3}))
    print("\nthe spread: interquartile range and best value")
    rows = [[mv.metric, f"{_num(mv.a.p25)} … {_num(mv.a.p75)}", f"{_num(mv.b.p25)} … {_num(mv.b.p75)}",
             _num(mv.a.best), _num(mv.b.best)] for mv in cmp.moves]
    print(_table(["metric", "A p25 … p75", "B p25 … p75", "A best", "B best"], rows, right={3, 4}))
    units = [m for m in DURATIONS if any(mv.metric == m for mv in cmp.moves)]
    if units:
        print(f"({' and '.join(units)} in bars)")
    if cmp.validation:
        print("\nvalidation (A → B):")
        shown = [[label, _shown(va), _shown(vb)] for label, va, vb in cmp.validation]
        print(_table(["figure", "A", "B"], shown, right={1, 2}))
    return 0


def _shown(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"
    return str(v)
