"""The runs under a results folder: listed (``backtest runs``) and linked from ``index.html``.

A run is a folder holding ``manifest.json`` (written last, so a folder without one is
incomplete and skipped, as are hidden folders). ``index.html`` is regenerated from
the manifests after every run, under the results lock (``engine.run_store``) and
through a temporary file and a rename, so two runs finishing at once both end up
listed and a reader never sees a half-written page.
"""

from __future__ import annotations

import csv
import html
import json
from dataclasses import dataclass
from pathlib import Path

from ..jsonio import write_text_atomic
from ..run_store import MANIFEST, results_lock
from ..validation.verdict import LEVELS
from .html import REPORT

INDEX = "index.html"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    folder: Path
    experiment: str
    created_at: str
    engine: str
    symbol: str | None
    interval: str | None
    first: str
    last: str
    rows: int
    combinations: int
    rank_by: str
    best: dict | None  # strategy_id, metric, value
    batch: bool
    has_report: bool
    level: str | None = None  # the validation verdict's level (fails, weak, promising), when validated

    @property
    def data(self) -> str:
        what = " ".join(x for x in (self.symbol, self.interval) if x) or "candles"
        return f"{what} {self.first[:10]} → {self.last[:10]} ({self.rows:,} rows)"

    @property
    def best_text(self) -> str:
        if not self.best:
            return "—"
        value = self.best.get("value")
        shown = "—" if value is None else f"{value:.4g}"
        return f"{self.best['strategy_id']} ({self.best['metric']} {shown})"


def _best_from_summary(folder: Path, rank_by: str) -> dict | None:
    """Runs written before manifests recorded their best: the first ranked row of summary.csv."""
    try:
        with open(folder / "summary.csv", newline="") as f:
            row = next(csv.DictReader(f), None)
    except OSError:
        return None
    if not row or not row.get("rank"):
        return None
    try:
        value = float(row[rank_by]) if row.get(rank_by) not in (None, "") else None
    except ValueError:
        value = None
    return {"strategy_id": row.get("strategy_id", "?"), "metric": rank_by, "value": value}


def read_run(folder: Path) -> RunInfo | None:
    """The run in ``folder``, or None if it is not a complete run folder."""
    try:
        m = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or "run_id" not in m:
        return None
    data = m.get("data") or {}
    rank_by = m.get("rank_by", "sharpe")
    best = m["best"] if "best" in m else _best_from_summary(folder, rank_by)
    return RunInfo(
        run_id=str(m["run_id"]), folder=folder, experiment=str(m.get("experiment", "")),
        created_at=str(m.get("created_at", "")), engine=str(m.get("engine", "")), symbol=data.get("symbol"),
        interval=data.get("interval"), first=str(data.get("first_open_time", "")),
        last=str(data.get("last_open_time", "")), rows=int(data.get("rows", 0)),
        combinations=int(m.get("combinations", 0)), rank_by=rank_by, best=best, batch="batch" in m,
        has_report=(folder / REPORT).exists(), level=_level(m))


def _level(manifest: dict) -> str | None:
    v = manifest.get("validation")
    level = v.get("level") if isinstance(v, dict) else None
    return level if level in LEVELS else None


def list_runs(out_root: Path) -> list[RunInfo]:
    """Every complete run directly under ``out_root``, oldest first."""
    root = Path(out_root)
    if not root.is_dir():
        return []
    runs = [read_run(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted((r for r in runs if r is not None), key=lambda r: (r.created_at, r.run_id))


def render_index(runs: list[RunInfo]) -> str:
    rows = []
    for r in reversed(runs):  # newest first
        name = html.escape(r.folder.name)
        link = f'<a href="{html.escape(r.folder.name, quote=True)}/{REPORT}">{name}</a>' if r.has_report else name
        engine = r.engine + (" · Batch" if r.batch else "")
        verdict = f'<span class="verdict-{r.level}">{r.level}</span>' if r.level else "—"
        cells = (link, verdict, html.escape(r.experiment), html.escape(r.data), f"{r.combinations:,}",
                 html.escape(r.best_text), html.escape(r.created_at), html.escape(engine))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body = "\n".join(rows) if rows else '<tr><td colspan="8">No runs yet.</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Backtest runs</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #1d2433; }}
table {{ border-collapse: collapse; font-size: 14px; }}
th, td {{ padding: 6px 12px; border-bottom: 1px solid #e3e7ee; text-align: left; white-space: nowrap; }}
th {{ background: #eef2f8; }}
tr:hover {{ background: #f1f6ff; }}
a {{ color: #1f5fa8; }}
.verdict-fails, .verdict-weak, .verdict-promising {{ color: #fff; padding: 2px 8px; border-radius: 4px; }}
.verdict-fails {{ background: #b03a2e; }}
.verdict-weak {{ background: #b9770e; }}
.verdict-promising {{ background: #1e8449; }}
</style>
</head>
<body>
<h1>Backtest runs</h1>
<p>{len(runs):,} run(s), newest first. Compare two with <code>backtest compare RUN_A RUN_B</code>.</p>
<table id="runs">
<thead><tr><th>run</th><th>verdict</th><th>experiment</th><th>data</th><th>combinations</th><th>best</th><th>created (UTC)</th>
<th>engine</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""


def write_index(out_root: Path) -> Path:
    """Regenerate ``out_root/index.html`` from every run folder in it (under the results lock)."""
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / INDEX
    with results_lock(root):
        write_text_atomic(path, render_index(list_runs(root)))
    return path
