"""The validation figures as files and text: ``validation.json``, ``walk_forward.csv``,
the charts, the report.html section, the block ``backtest run`` prints and its one-line verdict.

Everything here is a pure function of the outcome (``engine.validation.evaluate``), the
ranked summary and the candles, so a local run and a Batch ``reduce`` write the same bytes.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..candles import Candles
from ..grid import Grid
from ..jsonio import clean as _clean
from ..metrics import METRICS, OOS_METRICS
from ..timeutil import iso_time
from ..validation.cscv import SAMPLE_SEED, CscvResult
from ..validation.evaluate import ValidationOutcome
from ..validation.trials import CLUSTER_RHO
from ..validation.verdict import Evidence, Verdict
from ..validation.verdict import verdict as judge
from ..validation.walk_forward import efficiency_text
from ..validation.windows import Window
from .display import envelope_indices
from .labels import Swept, label_of, labels_of, short_label
from .numbers import format_per_bar, format_sig

VALIDATION_JSON = "validation.json"
WALK_FORWARD_CSV = "walk_forward.csv"
#: a deflated Sharpe above this is significant at the usual 5% level
DSR_LEVEL = 0.95


def window_times(candles: Candles, w: Window) -> list[str]:
    """``[from, to)``: the open time of bar ``a`` and the end of bar ``b - 1``."""
    return [iso_time(candles.open_time[w.a]), iso_time(candles.open_time[w.b - 1] + candles.interval_ms)]


def evidence(outcome: ValidationOutcome, top: dict | None) -> Evidence:
    """The figures the verdict reads, from the outcome and the top combination."""
    c, wf = outcome.cscv, outcome.walk_forward
    return Evidence(
        ranked=top is not None, top_sharpe=None if top is None else top["sharpe_per_bar"],
        dsr=None if top is None else top["dsr"], trials=outcome.deflated.N,
        cscv=c is not None, pbo=None if c is None else c.pbo, prob_oos_loss=None if c is None else c.prob_oos_loss,
        holdout=outcome.holdout is not None, holdout_sharpe=None if top is None else top.get("oos_sharpe"),
        walk_forward=wf is not None, wf_return=None if wf is None else _clean(wf.metrics["total_return"]))


def verdict(outcome: ValidationOutcome, top: dict | None) -> Verdict:
    """The level and its sentences (engine.validation.verdict)."""
    return judge(evidence(outcome, top))


def _top(outcome: ValidationOutcome, ranked: pd.DataFrame, names: Swept | None = None) -> dict | None:
    """The top combination's figures; with ``names`` (per strategy, its swept columns) its short label."""
    if not len(ranked):
        return None
    row = ranked.iloc[0]
    g = int(row["combination"])
    d = outcome.deflated
    doc = {"combination": g, "strategy_id": str(row["strategy_id"]),
           **({"label": label_of(row, names)} if names is not None else {}),
           outcome.rank_by: _clean(row[outcome.rank_by]),
           "sharpe_per_bar": _clean(d.sharpe[g]), "psr": _clean(d.psr[g]), "dsr": _clean(d.dsr[g])}
    for c in OOS_METRICS:
        if c in ranked:
            doc[c] = _clean(row[c])
    return doc


def document(outcome: ValidationOutcome, ranked: pd.DataFrame, candles: Candles, *,
             holdout_fraction: float | None, names: Swept | None = None) -> dict:
    """Every figure with its inputs (``validation.json``)."""
    plan, d = outcome.plan, outcome.deflated
    top = _top(outcome, ranked, names)
    inputs = {
        "bars": plan.n,
        "combinations": len(d.sharpe),
        "rank_by": outcome.rank_by,
        "in_sample": {"bars": [plan.in_sample.a, plan.in_sample.b], "utc": window_times(candles, plan.in_sample),
                      "T": plan.T},
        "holdout": None if plan.holdout is None else {
            "fraction": holdout_fraction, "bars": [plan.holdout.a, plan.holdout.b],
            "utc": window_times(candles, plan.holdout)},
        "cscv": None if plan.blocks is None else {
            "S": plan.blocks, "splits": outcome.cscv.splits, "all_splits": outcome.cscv.all_splits,
            "sampled": outcome.cscv.sampled, "sample_seed": SAMPLE_SEED if outcome.cscv.sampled else None,
            "block_edges": plan.block_edges.tolist()},
        "deflated_sharpe": {"T": plan.T, "N": d.N, "trials": plan.trials, "V": _clean(d.V), "SR0": _clean(d.SR0),
                            "defined_sharpes": int(np.isfinite(d.sharpe).sum())},
        "walk_forward": None if not plan.folds else {
            **dict(zip(("train", "test", "step", "anchored"), plan.walk_forward)),
            "folds": [{"fold": f.index, "train": [f.train.a, f.train.b], "test": [f.test.a, f.test.b],
                       "train_utc": window_times(candles, f.train), "test_utc": window_times(candles, f.test)}
                      for f in plan.folds]},
    }
    v = verdict(outcome, top)
    doc = {"verdict": v.sentence, "level": v.level, "inputs": inputs, "top": top,
           "trials": trials_doc(outcome)}
    c = outcome.cscv
    doc["pbo"] = None if c is None else {
        "pbo": c.pbo, "prob_oos_loss": c.prob_oos_loss,
        "degradation": {"slope": _clean(c.slope), "intercept": _clean(c.intercept)},
        "logits": [_clean(x) for x in c.logits.tolist()],
    }
    doc["deflated_sharpe"] = {
        "V": _clean(d.V), "N": d.N, "SR0": _clean(d.SR0),
        "psr_above_0.95": int(np.sum(d.psr >= DSR_LEVEL)), "dsr_above_0.95": int(np.sum(d.dsr >= DSR_LEVEL)),
    }
    h = outcome.holdout
    doc["holdout"] = None if h is None else {"metric": h.metric, "spearman": _clean(h.spearman)}
    wf = outcome.walk_forward
    doc["walk_forward"] = None if wf is None else {
        "folds": len(wf.folds), "efficiency": _clean(wf.efficiency),
        "efficiency_text": efficiency_text(wf.efficiency, [fo.in_sample_cagr for fo in wf.folds]),
        "stitched": {m: _clean(wf.metrics[m]) for m in METRICS},
    }
    return doc


def splits_text(c: CscvResult) -> str:
    """'12,870 splits', or '200,000 of 601,080,390 splits, a seeded sample'."""
    if not c.sampled:
        return f"{c.splits:,} splits"
    return f"{c.splits:,} of {c.all_splits:,} splits, a seeded sample"


def trials_doc(outcome: ValidationOutcome) -> dict:
    """The trial counts: combinations, distinct return series, clusters, and the DSR's N."""
    return {"combinations": len(outcome.deflated.sharpe), "distinct": outcome.distinct_trials,
            "effective": outcome.effective_trials, "cluster_rho": CLUSTER_RHO, "dsr_N": outcome.deflated.N}


def walk_forward_frame(outcome: ValidationOutcome, grid: Grid, candles: Candles) -> pd.DataFrame:
    """One row per fold: windows (ISO UTC), the chosen combination and params, its
    in-sample ``rank_by`` value and CAGR, and its out-of-sample metrics."""
    rows = []
    for fo in outcome.walk_forward.folds:
        sw, i = grid.locate(fo.combination)
        train, test = window_times(candles, fo.fold.train), window_times(candles, fo.fold.test)
        row = {"fold": fo.fold.index, "train_from": train[0], "train_to": train[1], "test_from": test[0],
               "test_to": test[1], "combination": fo.combination, "strategy_id": sw.strategy_id(i),
               "label": short_label(sw.strategy.name, sw.swept, {c: sw.columns[c][i].item() for c in sw.swept}),
               "strategy": sw.strategy.name, "params": json.dumps(sw.params(i), sort_keys=True),
               **asdict(sw.rules(i)), f"is_{outcome.rank_by}": fo.in_sample, "is_cagr": fo.in_sample_cagr}
        row.update({f"oos_{m}": fo.result.metrics[m] for m in METRICS})
        rows.append(row)
    return pd.DataFrame(rows)


def _num(v, fmt: str = ".3f") -> str:
    """``fmt``, but a nonzero value it would print as 0 keeps 2 significant digits."""
    if v is None:
        return "—"
    text = format(v, fmt)
    return f"{v:.1e}" if v != 0 and float(text) == 0 else text


def text_block(outcome: ValidationOutcome, ranked: pd.DataFrame, per_year: float | None = None,
               width: int | None = None, names: Swept | None = None) -> list[str]:
    """The lines ``backtest run`` prints. ``per_year``: bars per year, to annualise per-bar Sharpes;
    ``width``: wrap the lines to it (the verdict's sentences); ``names``: to name the top by its short label."""
    plan, d = outcome.plan, outcome.deflated
    top = _top(outcome, ranked, names)
    where = f"in-sample bars 0–{plan.in_sample.b - 1:,}"
    if plan.holdout is not None:
        where += f", holdout {plan.holdout.a:,}–{plan.holdout.b - 1:,}"
    t = trials_doc(outcome)
    eff = "—" if t["effective"] is None else f"{t['effective']:,}"
    lines = [f"Validation ({where}; {t['combinations']:,} combinations, {t['distinct']:,} distinct return "
             f"series, {eff} effective trials at ρ ≥ {CLUSTER_RHO}):"]
    c = outcome.cscv
    if c is not None:
        lines.append(f"  CSCV: PBO {c.pbo:.3f} (S={c.blocks}, {splits_text(c)}) · P(OOS Sharpe < 0) "
                     f"{c.prob_oos_loss:.3f} · degradation slope {_num(_clean(c.slope), '.2f')}")
    if top is not None:
        lines.append(f"  top {top.get('label', '(rank 1)')}: PSR {_num(top['psr'])} · DSR {_num(top['dsr'])} "
                     f"(N={d.N:,}) · SR0 {format_per_bar(_clean(d.SR0), per_year)}")
    h = outcome.holdout
    if h is not None and top is not None:
        lines.append(f"  holdout: Spearman of in/out-of-sample {h.metric} {_num(h.spearman)} · top's "
                     f"out-of-sample Sharpe {_num(top.get('oos_sharpe'))}")
    wf = outcome.walk_forward
    if wf is not None:
        m = wf.metrics
        eff = efficiency_text(wf.efficiency, [fo.in_sample_cagr for fo in wf.folds])
        lines.append(f"  walk-forward ({len(wf.folds)} folds): out-of-sample return {m['total_return']:+.2%} · "
                     f"Sharpe {_num(m['sharpe'])} · efficiency {eff}")
    lines.append(f"  verdict: {verdict(outcome, top).sentence}")
    return wrap_lines(lines, width)


def wrap_lines(lines: list[str], width: int | None) -> list[str]:
    """``lines`` wrapped at ``width`` columns (continuations indented by four), or as they are."""
    if width is None:
        return lines
    return [w for line in lines for w in textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False)]


def charts(outcome: ValidationOutcome, folder: Path, ranked: pd.DataFrame) -> list[tuple]:
    """Chart jobs for ``engine.report.writer.ChartPool`` (module-qualified function names)."""
    jobs = []
    c = outcome.cscv
    if c is not None:
        jobs.append(("validation_plots.plot_logits", folder / "validation_logits.png", (c.logits,),
                     {"pbo": c.pbo, "title": f"CSCV: λ over {c.splits:,} splits (S = {c.blocks})"}))
        jobs.append(("validation_plots.plot_is_oos", folder / "validation_is_oos_cscv.png",
                     (c.is_sharpe, c.oos_sharpe),
                     {"title": "CSCV: the in-sample best's Sharpe, in and out of sample (per bar)",
                      "xlabel": "in-sample Sharpe (per bar)", "ylabel": "out-of-sample Sharpe (per bar)",
                      "slope": c.slope, "intercept": c.intercept}))
    if outcome.holdout is not None and "oos_sharpe" in ranked:
        jobs.append(("validation_plots.plot_is_oos", folder / "validation_is_oos_holdout.png",
                     (ranked["sharpe"].to_numpy(np.float64), ranked["oos_sharpe"].to_numpy(np.float64)),
                     {"title": "Holdout: every combination's Sharpe, in sample and out of sample (annualised)",
                      "xlabel": "in-sample Sharpe", "ylabel": "holdout Sharpe"}))
    wf = outcome.walk_forward
    if wf is not None:
        # each fold starts at the equity point before its first test bar
        starts = np.cumsum([0] + [len(fo.fold.test) for fo in wf.folds[:-1]])
        jobs.append(("validation_plots.plot_walk_forward", folder / "validation_walk_forward.png",
                     (wf.times, wf.equity, wf.benchmark, wf.times[starts]),
                     {"title": f"Walk-forward: {len(wf.folds)} folds stitched out of sample"}))
    return jobs



#: points a chart in report.html draws at most (its data is embedded in the page)
HTML_POINTS = 2_000


def _sig(x, digits: int = 6):
    x = _clean(x)
    return None if x is None else float(f"{x:.{digits}g}")


def _names(rows: pd.DataFrame, names: Swept | None) -> list[str]:
    """Hover text of scatter points: short labels up to ``LABELLED`` points, else the strategy_id."""
    if names is None or len(rows) > LABELLED:
        return rows["strategy_id"].astype(str).tolist()
    return labels_of(rows, names)


#: points of a scatter that get their short label (the label costs Python time per row)
LABELLED = 20_000


def _every(n: int, limit: int = HTML_POINTS) -> np.ndarray:
    return np.arange(0, n, max(1, -(-n // limit)))


def html_section(outcome: ValidationOutcome, ranked: pd.DataFrame, folds: pd.DataFrame | None, *,
                 names: Swept | None = None, per_year: float | None = None) -> dict:
    """The validation section of report.html (``engine.report.html``'s extension point). ``names``: per
    strategy, its swept columns (the combinations' short labels); ``per_year``: bars per year (SR0 annualised)."""
    top = _top(outcome, ranked, names)
    d, c, h, wf = outcome.deflated, outcome.cscv, outcome.holdout, outcome.walk_forward
    metrics: dict = {}
    t = trials_doc(outcome)
    if c is not None:
        metrics.update({"CSCV · PBO": c.pbo, "CSCV · P(OOS Sharpe < 0)": c.prob_oos_loss,
                        "CSCV · degradation slope": _clean(c.slope), "CSCV · blocks (S)": c.blocks,
                        "CSCV · splits": splits_text(c)})
    if top is not None:
        metrics.update({"top · combination": top.get("label", top["strategy_id"]), "top · PSR": top["psr"],
                        "top · DSR": top["dsr"]})
    metrics.update({"trials · combinations": t["combinations"], "trials · distinct return series": t["distinct"],
                    f"trials · effective (clusters at ρ ≥ {CLUSTER_RHO})": t["effective"],
                    "trials · DSR's N": d.N, "DSR · SR0": format_per_bar(_clean(d.SR0), per_year),
                    "DSR · V (variance of per-bar Sharpes)": format_sig(_clean(d.V)),
                    "DSR · returns (T)": outcome.plan.T})
    if h is not None:
        metrics[f"holdout · Spearman ({h.metric})"] = _clean(h.spearman)
        if top is not None:
            metrics["holdout · top's out-of-sample Sharpe"] = top.get("oos_sharpe")
    if wf is not None:
        metrics.update({"walk-forward · folds": len(wf.folds),
                        "walk-forward · efficiency": efficiency_text(wf.efficiency,
                                                                     [fo.in_sample_cagr for fo in wf.folds]),
                        "walk-forward · total_return": wf.metrics["total_return"],
                        "walk-forward · cagr": wf.metrics["cagr"], "walk-forward · Sharpe": wf.metrics["sharpe"],
                        "walk-forward · max_drawdown": wf.metrics["max_drawdown"]})
    v = verdict(outcome, top)
    section = {"title": "Validation", "summary": v.sentence, "level": v.level,
               "metrics": metrics, "tables": [], "charts": []}
    if folds is not None and len(folds):
        cols = ["fold", "test_from", "test_to", "label", f"is_{outcome.rank_by}", "oos_sharpe",
                "oos_total_return", "oos_max_drawdown", "oos_n_trades"]
        section["tables"].append({"title": "Walk-forward folds", "columns": cols,
                                  "rows": [[_clean(v) for v in row] for row in folds[cols].itertuples(index=False)]})
    if c is not None:
        counts, edges = np.histogram(c.logits, bins=40)
        centers = (edges[:-1] + edges[1:]) / 2
        section["charts"].append({
            "title": f"λ over {c.splits:,} CSCV splits (λ ≤ 0: the in-sample best fell to the lower half)",
            "data": [{"type": "bar", "x": [_sig(x) for x in centers], "y": counts.tolist(),
                      "marker": {"color": ["#c0392b" if x <= 0 else "#1f5fa8" for x in centers]}}],
            "layout": {"height": 320, "xaxis": {"title": {"text": "λ"}}, "yaxis": {"title": {"text": "splits"}}}})
        i = _every(c.splits)
        section["charts"].append({
            "title": "The in-sample best's Sharpe per bar, in sample against out of sample (CSCV splits)",
            "data": [{"type": "scattergl", "mode": "markers", "x": [_sig(x) for x in c.is_sharpe[i]],
                      "y": [_sig(y) for y in c.oos_sharpe[i]], "marker": {"size": 4, "opacity": 0.4}}],
            "layout": {"height": 360, "xaxis": {"title": {"text": "in-sample Sharpe"}},
                       "yaxis": {"title": {"text": "out-of-sample Sharpe"}}}})
    if h is not None and "oos_sharpe" in ranked.columns:
        both = ranked.dropna(subset=["sharpe", "oos_sharpe"])
        section["charts"].append({
            "title": "Every combination's Sharpe ratio (annualised), in sample against the holdout",
            "data": [{"type": "scattergl", "mode": "markers", "x": [_sig(x) for x in both["sharpe"]],
                      "y": [_sig(y) for y in both["oos_sharpe"]], "text": _names(both, names),
                      "marker": {"size": 6, "opacity": 0.6}}],
            "layout": {"height": 360, "xaxis": {"title": {"text": "in-sample Sharpe"}},
                       "yaxis": {"title": {"text": "holdout Sharpe"}}}})
    if wf is not None:
        i = envelope_indices(len(wf.equity), wf.equity)
        section["charts"].append({
            "title": "Walk-forward: stitched out-of-sample equity and buy & hold",
            "data": [{"type": "scatter", "mode": "lines", "name": "walk-forward", "x": wf.times[i].tolist(),
                      "y": [_sig(v) for v in wf.equity[i]]},
                     {"type": "scatter", "mode": "lines", "name": "buy & hold", "x": wf.times[i].tolist(),
                      "y": [_sig(v) for v in wf.benchmark[i]], "line": {"color": "#8c8c8c"}}],
            "layout": {"height": 360, "xaxis": {"type": "date"},
                       "shapes": [{"type": "line", "xref": "x", "yref": "paper", "x0": int(t), "x1": int(t), "y0": 0,
                                   "y1": 1, "line": {"color": "#d9d9d9", "width": 1}}
                                  for t in wf.times[np.cumsum([0] + [len(fo.fold.test) for fo in wf.folds[:-1]])]]}})
    return section
