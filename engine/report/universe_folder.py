"""The run folder of a universe run, shared by ``backtest run`` and Batch ``reduce``.

    config.yaml            the config as run
    summary.csv            one row per combination: its aggregates over the series, ranked
    summary_by_series.csv  one row per (series, combination): every metric (and oos_* with a holdout)
    validation.json        with a validation section: per series, the cross-series summary and PBO
    report.html            ranking, heatmap, spread, equity per series, validation
    manifest.json          written last

Everything but manifest.json and report.html's run element is byte-identical for the same
config and data.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import __version__
from ..jsonio import write_json
from ..run_store import MANIFEST
from ..strategies import strategy_path
from ..timeutil import format_time, utc_now_iso
from ..universe.aggregate import SUMMARY_BY_SERIES_CSV
from ..universe.runner import UniverseResults
from .universe_validation import document as validation_document
from .labels import label_of, swept_of
from .run_folder import RunFolder
from .universe_html import write_universe_html
from .validation import VALIDATION_JSON
from .writer import config_text


def universe_data(res: UniverseResults) -> dict:
    """The manifest's data block: the series joined, and each series on its own."""
    series = [{"series": r.series.key, "source": r.candles.source, "symbol": r.series.symbol,
               "interval": r.series.interval, "rows": len(r.candles),
               "first_open_time": format_time(r.candles.open_time[0]),
               "last_open_time": format_time(r.candles.open_time[-1]),
               "gaps": r.candles.gaps.count if r.candles.gaps else 0, "fingerprint": r.candles.fingerprint()}
              for r in res.runs]
    symbols = list(dict.fromkeys(s["symbol"] for s in series))
    intervals = list(dict.fromkeys(s["interval"] for s in series))
    return {"source": res.runs[0].series.spec.source, "symbol": ",".join(symbols), "interval": ",".join(intervals),
            "rows": sum(s["rows"] for s in series), "first_open_time": min(s["first_open_time"] for s in series),
            "last_open_time": max(s["last_open_time"] for s in series), "series": series}


def best(res: UniverseResults) -> dict | None:
    if not res.top:
        return None
    row = res.ranked.iloc[0]
    return {"strategy_id": str(row["strategy_id"]), "label": label_of(row, swept_of(res.grid)),
            "metric": res.rank_key, "value": float(row[res.rank_key]),
            "n_trades": int(row["n_trades"])}


def write_universe_folder(out: Path, res: UniverseResults, *, run_id: str, timings: dict | None = None,
                          extra: dict | None = None) -> RunFolder:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cfg = res.cfg
    (out / "config.yaml").write_text(config_text(cfg.raw))
    res.ranked.to_csv(out / "summary.csv", index=False, lineterminator="\n")
    res.by_series.to_csv(out / SUMMARY_BY_SERIES_CSV, index=False, lineterminator="\n")
    validation = None
    if cfg.validation is not None:
        validation = validation_document(res)
        write_json(out / VALIDATION_JSON, validation)
    created_at = utc_now_iso()
    write_universe_html(out, res, validation, {"run_id": run_id, "created_at": created_at,
                                               "timings": dict(timings or {})})
    data = universe_data(res)
    manifest = {
        "run_id": run_id, "created_at": created_at, "experiment": cfg.name, "engine": res.engine,
        "engine_version": __version__, "config_hash": cfg.digest(), "data": data,
        "universe": {"series": [s["series"] for s in data["series"]], "aggregate": cfg.report.aggregate},
        "strategies": {sw.strategy.name: strategy_path(sw.strategy) for sw in res.grid},
        "combinations": len(res.grid), "filtered_by_constraints": res.grid.filtered,
        "rank_by": res.rank_key, "min_trades": cfg.report.min_trades, "ranked": len(res.ranked),
        "best": best(res), "report": "report.html",
        "notices": sorted({n for r in res.runs for n in r.notices}),
        **({"validation": {"verdict": validation["verdict"], "summary": validation["summary"],
                           "cross_series_pbo": (validation["cross_series"] or {}).get("pbo")}}
           if validation is not None else {}),
        **(extra or {}),
        "timings": {**(timings or {}), "report_s": round(time.perf_counter() - t0, 3)},
    }
    write_json(out / MANIFEST, manifest)
    return RunFolder(out, res.ranked, manifest)
