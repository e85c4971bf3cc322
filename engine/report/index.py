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
    best: dict | None  # strategy_id, metric, value; label (the short name) in runs since issue 21
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
        return f"{self.best.get('label') or self.best['strategy_id']} ({self.best['metric']} {shown})"


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


class MalformedRun(ValueError):
    """A run folder whose manifest.json is not a run's manifest: skipped, with this reason."""


def read_run(folder: Path) -> RunInfo | None:
    """The run in ``folder``; None if it is not a complete run folder (no manifest yet);
    :class:`MalformedRun` if its manifest is unreadable or not a run's."""
    try:
        text = (folder / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise MalformedRun(f"{MANIFEST} is unreadable ({type(exc).__name__})") from None
    try:
        m = json.loads(text)
    except ValueError:
        raise MalformedRun(f"{MANIFEST} is not JSON") from None
    if not isinstance(m, dict) or "run_id" not in m:
        raise MalformedRun(f"{MANIFEST} is not a run's manifest (no run_id)")
    try:
        data = m.get("data") or {}
        rank_by = str(m.get("rank_by", "sharpe"))
        best = m["best"] if "best" in m else _best_from_summary(folder, rank_by)
        if best is not None and not (isinstance(best, dict) and isinstance(best.get("value"), (int, float, type(None)))
                                     and "strategy_id" in best and "metric" in best):
            raise ValueError("best")
        info = RunInfo(
            run_id=str(m["run_id"]), folder=folder, experiment=str(m.get("experiment", "")),
            created_at=str(m.get("created_at", "")), engine=str(m.get("engine", "")), symbol=data.get("symbol"),
            interval=data.get("interval"), first=str(data.get("first_open_time", "")),
            last=str(data.get("last_open_time", "")), rows=int(data.get("rows", 0)),
            combinations=int(m.get("combinations", 0)), rank_by=rank_by, best=best, batch="batch" in m,
            has_report=(folder / REPORT).exists(), level=_level(m))
        info.data, info.best_text  # noqa: B018 - what the listing shows must render
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError):
        raise MalformedRun(f"{MANIFEST} has a field of the wrong type") from None
    return info


def _level(manifest: dict) -> str | None:
    v = manifest.get("validation")
    level = v.get("level") if isinstance(v, dict) else None
    return level if level in LEVELS else None


def list_runs(out_root: Path, skipped: list[str] | None = None) -> list[RunInfo]:
    """Every complete run directly under ``out_root``, oldest first. A folder with a malformed
    manifest is left out, never fatal; ``skipped`` (when given) receives one line for each."""
    root = Path(out_root)
    if not root.is_dir():
        return []
    runs = []
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith("."):
            continue
        try:
            r = read_run(p)
        except MalformedRun as exc:
            if skipped is not None:
                skipped.append(f"{p}: skipped, {exc}")
            continue
        if r is not None:
            runs.append(r)
    return sorted(runs, key=lambda r: (r.created_at, r.run_id))


def render_index(runs: list[RunInfo], skipped: list[str] = ()) -> str:
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
    skipped_html = "".join(f'<p class="skipped">{html.escape(line)}</p>\n' for line in skipped)
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
{skipped_html}
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
        skipped: list[str] = []
        runs = list_runs(root, skipped)
        write_text_atomic(path, render_index(runs, skipped))
    return path
