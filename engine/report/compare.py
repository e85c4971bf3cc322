"""Two runs side by side: how their configs differ and how the metric distributions moved."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..errors import UserError
from ..metrics import ASCENDING, METRICS, OOS_METRICS, VALIDATION_COLUMNS
from .index import MANIFEST, list_runs

MISSING = object()
#: Metrics without a better direction: their change is only higher or lower.
NEUTRAL = frozenset({"n_trades", "exposure", "avg_bars_held", "buy_and_hold_return", "oos_n_trades"})
#: Every summary column compared: the metrics, then the holdout's and the Sharpe tests (validated runs).
COMPARED = (*METRICS, *VALIDATION_COLUMNS)


@dataclass(frozen=True)
class Run:
    folder: Path
    manifest: dict
    config: dict
    summary: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.folder.name))


def resolve_run(ref: str, out_root: Path) -> Path:
    """A run folder from a path, a run id under ``out_root``, or an unambiguous prefix of one."""
    path = Path(ref)
    if (path / MANIFEST).is_file():
        return path
    candidate = Path(out_root) / ref
    if (candidate / MANIFEST).is_file():
        return candidate
    matches = [r.folder for r in list_runs(out_root) if r.folder.name.startswith(ref) or r.run_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(sorted(m.name for m in matches)[:5])
        raise UserError(f"run {ref!r} is ambiguous under {out_root}: {names}{', …' if len(matches) > 5 else ''}")
    raise UserError(f"run {ref!r}: no run folder (with {MANIFEST}) at that path or under {out_root}; "
                    f"list runs with: backtest runs --out {out_root}")


def load_run(folder: Path) -> Run:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        # a universe run: every (combination, series) pair's metrics
        by_series = folder / "summary_by_series.csv"
        summary = pd.read_csv(by_series if "universe" in manifest and by_series.is_file() else folder / "summary.csv")
    except FileNotFoundError as exc:
        raise UserError(f"{folder}: not a complete run folder ({Path(exc.filename).name} is missing)") from None
    except (ValueError, yaml.YAMLError, pd.errors.ParserError) as exc:
        raise UserError(f"{folder}: cannot read the run ({type(exc).__name__}: {exc})") from None
    return Run(folder, manifest, config if isinstance(config, dict) else {}, summary)


def _flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, dict) and doc:
        out: dict[str, Any] = {}
        for k in doc:
            out.update(_flatten(doc[k], f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: doc}


def config_diff(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every key that differs; ``MISSING`` where absent."""
    fa, fb = _flatten(a), _flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k, MISSING), fb.get(k, MISSING)) for k in keys if fa.get(k, MISSING) != fb.get(k, MISSING)]


def data_diff(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    da, db = a.get("data") or {}, b.get("data") or {}
    keys = ("source", "symbol", "interval", "first_open_time", "last_open_time", "rows", "gaps", "fingerprint")
    da, db = {**da, **_series_prints(da)}, {**db, **_series_prints(db)}
    keys += ("series",)
    return [(k, da.get(k, MISSING), db.get(k, MISSING)) for k in keys if da.get(k, MISSING) != db.get(k, MISSING)]


def _series_prints(data: dict) -> dict:
    """A universe run's series, each with the start of its fingerprint: two runs on the same candles match."""
    if "series" not in data:
        return {}
    return {"series": ", ".join(f"{s['series']} ({s['fingerprint'][:12]})" for s in data["series"])}


@dataclass(frozen=True)
class Distribution:
    count: int  # combinations with a defined value
    p25: float | None
    median: float | None
    p75: float | None
    best: float | None


def distribution(values: pd.Series, metric: str) -> Distribution:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return Distribution(0, None, None, None, None)
    p25, med, p75 = (float(x) for x in np.percentile(v, [25, 50, 75]))
    best = float(v.min() if _ascending(metric) else v.max())
    return Distribution(int(v.size), p25, med, p75, best)


@dataclass(frozen=True)
class MetricMove:
    metric: str
    a: Distribution
    b: Distribution

    @property
    def median_change(self) -> float | None:
        a, b = self.a.median, self.b.median
        if a is None or b is None:
            return None
        return 0.0 if math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15) else b - a

    @property
    def direction(self) -> str:
        """How the median moved: ``better``/``worse`` by the metric's sense, ``higher``/``lower``
        for metrics without one (``NEUTRAL``), ``same`` or ``n/a``."""
        d = self.median_change
        if d is None:
            return "n/a"
        if d == 0:
            return "same"
        if self.metric in NEUTRAL:
            return "higher" if d > 0 else "lower"
        return "better" if (d < 0) == _ascending(self.metric) else "worse"


def _ascending(metric: str) -> bool:
    """Lower is better: drawdowns and fees, in sample or on the holdout."""
    return OOS_METRICS.get(metric, metric) in ASCENDING


def metric_moves(a: pd.DataFrame, b: pd.DataFrame, metrics: tuple[str, ...] = COMPARED) -> list[MetricMove]:
    metrics = tuple(m for m in metrics if m in METRICS or m in a or m in b)
    return [MetricMove(m, distribution(a[m], m) if m in a else distribution(pd.Series(dtype=float), m),
                       distribution(b[m], m) if m in b else distribution(pd.Series(dtype=float), m))
            for m in metrics]


@dataclass(frozen=True)
class Comparison:
    a: Run
    b: Run
    config: list[tuple[str, Any, Any]]
    data: list[tuple[str, Any, Any]]
    moves: list[MetricMove]
    validation: list[tuple[str, Any, Any]]  # run-level figures (verdict level, PBO, trials, ...), A then B


def compare_runs(a: Path, b: Path) -> Comparison:
    ra, rb = load_run(a), load_run(b)
    return Comparison(ra, rb, config_diff(ra.config, rb.config), data_diff(ra.manifest, rb.manifest),
                      metric_moves(ra.summary, rb.summary), validation_figures(ra, rb))


#: The run-level validation figures compared, as (label, path in validation.json)
RUN_FIGURES = (("verdict level", ("level",)), ("top combination", ("top", "label")), ("PBO", ("pbo", "pbo")), ("P(OOS Sharpe < 0)", ("pbo", "prob_oos_loss")),
               ("top's DSR", ("top", "dsr")), ("top's oos_sharpe", ("top", "oos_sharpe")),
               ("combinations", ("trials", "combinations")), ("distinct return series", ("trials", "distinct")),
               ("effective trials", ("trials", "effective")), ("DSR's N", ("trials", "dsr_N")),
               ("holdout Spearman", ("holdout", "spearman")),
               ("walk-forward return", ("walk_forward", "stitched", "total_return")),
               ("walk-forward efficiency", ("walk_forward", "efficiency")))


def _validation_doc(run: Run) -> dict | None:
    try:
        doc = json.loads((run.folder / "validation.json").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _dig(doc: dict | None, path: tuple[str, ...]):
    for k in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(k)
    return doc


def validation_figures(a: Run, b: Run) -> list[tuple[str, Any, Any]]:
    """Each run-level figure in A and B (None where a run has none); empty when neither validated."""
    da, db = _validation_doc(a), _validation_doc(b)
    if da is None and db is None:
        return []
    return [(label, _dig(da, path), _dig(db, path)) for label, path in RUN_FIGURES]
