"""validation.json of a universe run: each series' figures, their cross-series summary, the
cross-sectional PBO and one verdict on the universe's top combination."""

from __future__ import annotations

import math

import numpy as np

from ..jsonio import clean
from . import validation as vr
from .labels import label_of, swept_of
from ..universe.runner import UniverseResults


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def cross_summary(res: UniverseResults) -> dict:
    """The median per-series PBO; the share of series where the series' own top combination's DSR > 0.95,
    and the same for the universe's top combination."""
    pbos = [r.outcome.cscv.pbo for r in res.runs if r.outcome is not None and r.outcome.cscv is not None]
    own, universe = [], []
    best = res.top[0] if res.top else None
    for r in res.runs:
        d = r.outcome.deflated
        ranked = r.ranked[r.ranked["rank"].notna()]
        if len(ranked):
            own.append(bool(d.dsr[int(ranked.iloc[0]["combination"])] > vr.DSR_LEVEL))
        if best is not None:
            universe.append(bool(d.dsr[best] > vr.DSR_LEVEL))
    return {"series": len(res.runs), "median_pbo": _median(pbos), "series_with_pbo": len(pbos),
            "top_dsr_above_0.95_share": float(np.mean(own)) if own else None,
            "universe_top_dsr_above_0.95_share": float(np.mean(universe)) if universe else None}


def cross_series_doc(res: UniverseResults) -> dict | None:
    c = res.cross
    if c is None:
        return None
    keys = res.keys
    return {"pbo": c.pbo, "metric": res.cfg.report.rank_by, "series": list(keys),
            "combinations": len(res.grid), "splits": [
                {"in_sample": [keys[i] for i in inside], "best": int(b), "oos_rank": float(r),
                 "lambda": clean(float(x))}
                for inside, b, r, x in zip(c.splits, c.best, c.oos_rank, c.logits)]}


def verdict(res: UniverseResults, summary: dict | None) -> str:
    """One sentence on the universe's top combination: how it holds across series."""
    if not res.top:
        return f"no combination has a defined {res.cfg.report.rank_by} on any series: nothing to judge"
    row = res.ranked.iloc[0]
    n = len(res.runs)
    share = float(row["profitable_share"])
    parts = [f"top {label_of(row, swept_of(res.grid))} ({res.cfg.report.aggregate} {res.cfg.report.rank_by} "
             f"{_fmt(row[res.rank_key])}) is profitable on {round(share * n)} of {n} series"]
    if res.cross is not None:
        p = res.cross.pbo
        if p >= 0.5:
            parts.append(f"cross-sectional PBO {p:.2f}: the best on some series is more likely than not below the "
                         "median on the others, so the choice does not carry across markets")
        elif p >= 0.2:
            parts.append(f"cross-sectional PBO {p:.2f}: the choice mostly carries across markets, but luck is "
                         "plausible")
        else:
            parts.append(f"cross-sectional PBO {p:.2f}: the choice carries across markets")
    if summary is not None and summary["universe_top_dsr_above_0.95_share"] is not None:
        parts.append(f"its Sharpe is significant (DSR > 0.95) on {round(summary['universe_top_dsr_above_0.95_share'] * n)}"
                     f" of {n} series")
    return "; ".join(parts)


def _fmt(x) -> str:
    x = float(x)
    return "—" if not math.isfinite(x) else f"{x:.3f}"


def document(res: UniverseResults) -> dict:
    """Every figure (``validation.json``)."""
    holdout = res.cfg.validation.holdout
    series = {r.series.key: vr.document(r.outcome, r.ranked, r.candles, holdout_fraction=holdout,
                                                names=swept_of(res.grid)) for r in res.runs}
    summary = cross_summary(res)
    return {"verdict": verdict(res, summary), "summary": summary, "cross_series": cross_series_doc(res),
            "series": series}


def text_block(res: UniverseResults, width: int | None = None) -> list[str]:
    """The lines ``backtest run`` prints after the top table (wrapped to ``width`` when given)."""
    summary = cross_summary(res)
    n = len(res.runs)
    lines = [f"Validation across {n} series:"]
    if summary["median_pbo"] is not None:
        lines.append(f"  median PBO (CSCV per series) {summary['median_pbo']:.3f}")
    if summary["top_dsr_above_0.95_share"] is not None:
        lines.append(f"  series where their top combination's DSR > 0.95: {summary['top_dsr_above_0.95_share']:.0%}")
    if res.cross is not None:
        c = res.cross
        lines.append(f"  cross-sectional PBO {c.pbo:.3f} ({len(c.splits)} splits of the series, "
                     f"{len(res.runs) // 2} in sample)")
    lines.append(f"  verdict: {verdict(res, summary)}")
    return vr.wrap_lines(lines, width)
