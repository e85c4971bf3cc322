"""``report.html``: the interactive page of a run folder.

The page opens from the file system with no server and no network: its data is
embedded as JSON, its own script and style are inline, and plotly.js is loaded
from ``plotly.min.js`` beside it (copied once per run folder from the pinned
``plotly`` package).

Sections: a header (experiment; data: symbol, interval, range, rows, gaps,
fingerprint; execution and risk; engine and version; timings), the ranked summary
as a sortable, filterable table, parameter heatmaps (colour metric and axes
selectable, every metric on hover), and for each top-K combination its equity with
buy & hold (log-scale toggle) and drawdown, a candlestick chart with entries and
exits at their exact times and prices, and its trade list.

Table sizes: up to ``TABLE_ALL`` rows every row is in the page; up to
``TABLE_VIRTUAL`` the table scrolls virtually (rows are drawn as they scroll into
view); above that the page holds the top ``TABLE_ALL`` with a note, and each
heatmap cell the combination best by the rank metric.

Compact: long arrays are embedded as base64 binary, float32 where they are only drawn
(equity, drawdown, candles), float64 where they must stay exact (times, trade prices).

Reproducible: table numbers are rounded to fixed significant digits, binary arrays
are little-endian, JSON keys are sorted, and everything that changes
from run to run (run id, creation time, timings) lives in one element,
``<script id="report-run">``, so two runs of the same config and data give files
that differ there only.

**Extension point: validation.** ``validation`` (a JSON-able dict) is rendered as
its own section, after the top combinations, when given::

    {"title": "Walk-forward validation",            # optional, default "Validation"
     "summary": "3 of 4 folds kept a positive Sharpe ratio.",   # optional text
     "metrics": {"folds": 4, "mean_oos_sharpe": 0.81},          # optional name -> value
     "tables": [{"title": "Folds", "columns": ["fold", "is_sharpe", "oos_sharpe"],
                 "rows": [[1, 1.2, 0.9], [2, 1.1, -0.1]]}],        # optional
     "charts": [{"title": "Out-of-sample equity", "data": [...plotly traces...],
                 "layout": {...}}]}                                 # optional plotly figures
"""

from __future__ import annotations

import base64
import importlib.util
import math
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..filenames import file_name
from ..candles import Candles
from ..jsonio import clean, encode
from ..metrics import ASCENDING, INT_METRICS, METRICS
from ..metrics import VALIDATION_COLUMNS as SUMMARY_COLUMNS
from ..position_rules import RULE_COLUMNS
from ..result import RunResult
from ..trade import JSON_KEYS
from . import display
from .labels import Swept, label_of, labels_of

REPORT = "report.html"
PLOTLY_JS = "plotly.min.js"
TABLE_ALL = 1_000
TABLE_VIRTUAL = 10_000
#: Trades per combination embedded in the page (all of them are in trades/<id>.csv).
TRADES_SHOWN = 5_000
#: Significant digits of the summary table's numbers.
TABLE_DIGITS = 7

_ASSETS = Path(__file__).with_name("assets")
_VOLATILE_ID = "report-run"


@dataclass(frozen=True)
class TopCombination:
    row: dict  # the ranked summary row
    params: tuple[str, ...]
    result: RunResult


# --- numbers ----------------------------------------------------------------------------------
#
# Long numeric arrays travel as base64 of little-endian binary ({"dtype": "f4", "b64": ...}):
# a third of the size of decimal text, exact for f8, decoded in the page with atob().

_F4_MAX = 3.0e38


def _binary(values, dtype: str) -> dict:
    a = np.ascontiguousarray(values, dtype={"f4": "<f4", "f8": "<f8", "i4": "<i4"}[dtype])
    return {"dtype": dtype, "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def _exact(values) -> dict:
    """Float64: every value exactly (times in ms are exact too, below 2**53)."""
    return _binary(np.asarray(values, dtype=np.float64), "f8")


def _shown(values) -> dict:
    """Values for display: float32 (7 significant digits) unless one is beyond its range."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    big = finite.size and float(np.max(np.abs(finite))) >= _F4_MAX
    return _binary(v, "f8" if big else "f4")


def _ints(values) -> dict:
    v = np.asarray(values, dtype=np.int64)
    small = not v.size or (int(v.min()) >= -2**31 and int(v.max()) < 2**31)
    return _binary(v, "i4") if small else _binary(v.astype(np.float64), "f8")


def _codes(values: Sequence[str]) -> dict:
    """Text values as their distinct names and one character per value (the name's position)."""
    names = sorted(set(values))
    pos = {n: chr(48 + i) for i, n in enumerate(names)}
    return {"dtype": "codes", "names": names, "codes": "".join(pos[v] for v in values)}


def _scalar(v, digits: int = TABLE_DIGITS):
    """One table cell: int, float rounded to ``digits`` significant digits, str or None."""
    v = clean(v)
    if isinstance(v, float):
        return float(f"{v:.{digits}g}") + 0.0  # + 0.0 turns -0.0 into 0.0
    return v if v is None or isinstance(v, (bool, int)) else str(v)


def _column(series: pd.Series, name: str) -> list:
    if name == "rank":
        return [None if x is pd.NA else int(x) for x in series.tolist()]
    if name in INT_METRICS:
        return [None if x is None or (isinstance(x, float) and not math.isfinite(x)) else int(x)
                for x in series.tolist()]
    dtype = series.dtype
    if name in METRICS or name in SUMMARY_COLUMNS or isinstance(dtype, np.dtype) and dtype.kind == "f":
        # what _scalar gives a float, a column at a time
        return [float(f"{x:.{TABLE_DIGITS}g}") + 0.0 if math.isfinite(x) else None
                for x in series.to_numpy(dtype=np.float64).tolist()]
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return series.tolist()  # Python ints and bools, as _scalar gives them
    return [_scalar(x) for x in series.tolist()]


# --- payload ----------------------------------------------------------------------------------

#: Shown right after the rank metric, so the table's first screen answers "how good, how often".
HEADLINE = ("n_trades", "total_return", "max_drawdown")
#: After a validated sweep, the out-of-sample evidence next to the headline (issue 21).
EVIDENCE = ("oos_sharpe", "psr", "dsr")


def _columns(ranked: pd.DataFrame, rank_by: str) -> list[str]:
    """rank, label, the rank metric and the headline metrics, the parameters, the other metrics, strategy
    and the full strategy_id last (the label shows the swept values only: ``ma_crossover(short=25, long=70)``)."""
    first = ["rank", "label", rank_by, *(m for m in HEADLINE if m != rank_by)]
    first += [c for c in EVIDENCE if c in ranked.columns and c not in first]  # out of sample, beside in sample
    params = [c for c in ranked.columns if c not in METRICS and c not in SUMMARY_COLUMNS and c not in first
              and c not in ("combination", "strategy", "duplicate_of", "strategy_id")]
    extra = [c for c in SUMMARY_COLUMNS if c in ranked.columns and c not in first]  # validation's
    dup = ["duplicate_of"] if "duplicate_of" in ranked.columns else []
    return first + params + [m for m in METRICS if m not in first] + extra + dup + ["strategy", "strategy_id"]


def _table(ranked: pd.DataFrame, limit: int | None, rank_by: str, names: Swept) -> dict:
    cols = _columns(ranked, rank_by)
    rows = ranked if limit is None else ranked.head(limit)
    data = [labels_of(rows, names) if c == "label" else _column(rows[c], c) for c in cols]
    return {"columns": cols, "rows": [list(r) for r in zip(*data)] if len(rows) else []}


def _best_per_cell(ranked: pd.DataFrame, swept: dict[str, list[str]], rank_by: str) -> pd.DataFrame:
    """For a table too large to embed: each heatmap cell's best row by ``rank_by``."""
    keep = []
    for name, axes in swept.items():
        group = ranked[ranked["strategy"] == name]
        if not axes:
            continue
        # ``ranked`` is best first, so the first row of each cell is its best.
        first = group.drop_duplicates(subset=axes[:2], keep="first")
        keep.append(first)
    return pd.concat(keep) if keep else ranked.head(0)


#: Trade fields kept exact in the page: markers sit at these times and prices.
EXACT_FIELDS = frozenset({"entry_time", "exit_time", "entry_price", "exit_price"})


def _trades(result: RunResult) -> dict:
    shown = result.trades[:TRADES_SHOWN]
    columns = dict(zip(JSON_KEYS, zip(*shown))) if shown else {k: () for k in JSON_KEYS}
    encoded = {}
    for name, values in columns.items():
        if values and isinstance(values[0], str) or not values and name == "exit_reason":
            encoded[name] = _codes(values)
        elif name in EXACT_FIELDS:
            encoded[name] = _exact(values)
        elif values and all(isinstance(v, (int, np.integer)) for v in values[:1]):
            encoded[name] = _ints(values)
        else:
            encoded[name] = _shown(values)
    return {"fields": list(JSON_KEYS), "columns": encoded, "total": len(result.trades), "shown": len(shown)}


def _top(top: TopCombination, k: int, names: Swept) -> dict:
    row, res = top.row, top.result
    return {
        "rank": int(row["rank"]),
        "strategy_id": str(row["strategy_id"]),
        "label": label_of(row, names),
        "file": file_name(str(row["strategy_id"])),  # trades/<file>.csv and runs/<file>.json
        "strategy": str(row["strategy"]),
        "params": {p: _scalar(row[p], 12) for p in top.params},
        **{rule: _scalar(row[rule], 12) for rule in RULE_COLUMNS},  # stop_loss, direction, size, ...
        "rules": {rule: _scalar(row[rule], 12) for rule in RULE_COLUMNS},
        "evidence": {c: _scalar(row[c], 12) for c in EVIDENCE if c in row},
        "metrics": {m: _scalar(res.metrics[m], 12) for m in METRICS},
        "equity": _shown(display.band_buckets(res.equity, k).last),
        "drawdown": _shown(display.band_buckets(display.drawdown(res.equity), k).high),
        "trades": _trades(res),
    }


def build_payload(*, header: dict, ranked: pd.DataFrame, swept: dict[str, list[str]], candles: Candles,
                  capital: float, top: Sequence[TopCombination], rank_by: str, config_text: str,
                  validation: dict | None = None, cut: int | None = None, names: Swept | None = None) -> dict:
    """Everything the page draws, as plain JSON-able values (deterministic for the same inputs).

    ``names``: per strategy, the columns its short labels show (``engine.report.labels.swept_of``);
    default ``swept``.

    ``cut``: the first holdout bar of ``candles`` (the charts shade from there on), or None.

    ``swept``: per strategy, the parameters that take more than one value (heatmap axes).
    """
    names = swept if names is None else names
    n = len(ranked)
    mode = "all" if n <= TABLE_ALL else "virtual" if n <= TABLE_VIRTUAL else "top"
    table = _table(ranked, TABLE_ALL if mode == "top" else None, rank_by, names)
    heat_rows = None
    if mode == "top":
        heat_rows = _table(_best_per_cell(ranked, swept, rank_by), None, rank_by, names)

    c = candles
    kc = display.bucket_size(len(c))
    ohlc = display.ohlc_buckets(c.open_time, c.open, c.high, c.low, c.close, kc)
    # E[0] is the capital at the first open; E[i] the equity at the close of bar i-1.
    eq_time = np.concatenate([[c.open_time[0]], c.open_time + c.interval_ms])
    bench = np.concatenate([[capital], c.close / c.close[0] * capital])
    ke = display.bucket_size(len(eq_time))
    return {
        "header": header,
        "metrics": list(METRICS),
        "ascending": sorted(ASCENDING),
        "rank_by": rank_by,
        "table": {**table, "mode": mode, "total": n},
        "heatmap": {"axes": swept, "rows": heat_rows},
        "candles": {"bucket": kc, "time": _exact(ohlc.time), "open": _shown(ohlc.open), "high": _shown(ohlc.high),
                    "low": _shown(ohlc.low), "close": _shown(ohlc.close)},
        "equity": {"bucket": ke, "time": _exact(display.bucket_times(eq_time, ke)),
                   "benchmark": _shown(display.band_buckets(bench, ke).last)},
        "top": [_top(t, ke, names) for t in top],
        "config_text": config_text,
        "validation": validation,
        "holdout_from": None if cut is None else int(c.open_time[cut]),
    }


# --- page -------------------------------------------------------------------------------------

def _json_for_script(obj: Any) -> str:
    """JSON safe inside <script>: every "<" is written \\u003c (JSON reads it back as "<"), so no text, in
    any case, can close the element ("</script"), open a comment ("<!--") or a nested "<script" (which
    together keep a browser's script data open to the end of the page)."""
    text = encode(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_html(payload: dict, volatile: dict) -> str:
    title = _escape(f"{payload['header'].get('experiment', 'run')} · backtest report")
    page = _asset("report.html")
    parts = {
        "{{TITLE}}": title,
        "{{CSS}}": _asset("report.css"),
        "{{PLOTLY}}": PLOTLY_JS,
        "{{DATA}}": _json_for_script(payload),
        "{{RUN}}": _json_for_script(volatile),
        "{{JS}}": _asset("report.js"),
    }
    out = []
    rest = page
    # Replace placeholders in template order without rescanning inserted text.
    while True:
        at = [(rest.find(k), k) for k in parts if rest.find(k) >= 0]
        if not at:
            out.append(rest)
            break
        pos, key = min(at)
        out.append(rest[:pos])
        out.append(parts[key])
        rest = rest[pos + len(key):]
    return "".join(out)


def volatile_span(html: str) -> tuple[int, int]:
    """Start and end of the one element that differs between runs of the same config and data."""
    start = html.index(f'<script id="{_VOLATILE_ID}"')
    return start, html.index("</script>", start) + len("</script>")


def plotly_js_path() -> Path:
    """plotly.min.js of the pinned ``plotly`` package, found without importing it."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed (it is in requirements.txt)")
    return Path(spec.submodule_search_locations[0]) / "package_data" / PLOTLY_JS


def write_html_report(out: Path, payload: dict, volatile: dict) -> Path:
    """``report.html`` and ``plotly.min.js`` into the run folder ``out``."""
    shutil.copyfile(plotly_js_path(), out / PLOTLY_JS)
    path = out / REPORT
    path.write_text(render_html(payload, volatile), encoding="utf-8")
    return path
