"""A lower bound of a run folder's size, known before anything is written.

``backtest run`` checks the free space against it twice: before the data is read
(from the grid's size) and after the sweep (with the trade counts). A disk with less
free space cannot hold the folder.

Lower bounds of what each file takes, measured on the default run (70,080 candles, 64
combinations): a summary row 466 bytes, a runs/*.json 1,700 bytes, a trades/*.csv line 181
bytes, report.html 677 KB, a PNG chart 74-78 KB; plotly.min.js is copied whole. Trades are
stored once, in trades/*.csv (a run's JSON names its file).
"""

from __future__ import annotations

import math

import pandas as pd

from .html import plotly_js_path
from .writer import PARQUET_LIMIT

SUMMARY_ROW_BYTES = 150
PARQUET_ROW_BYTES = 12
JSON_HEAD_BYTES = 1_000
TRADE_LINE_BYTES = 100
REPORT_HTML_BYTES = 50_000
CHART_BYTES = 40_000
BLOCK = 4096


def json_files(combinations: int, top_k: int, runs: str) -> int:
    """How many ``runs/<id>.json`` files ``report.runs`` asks for."""
    return {"none": 0, "top": min(top_k, combinations), "all": combinations}[runs]


def estimate_run_folder_bytes(combinations: int, top_k: int, strategies: int = 1, trade_lines: int = 0, *,
                              png: bool = False, runs: str = "top") -> int:
    """A lower bound of the size of a run folder.

    ``trade_lines`` is the number of trades its trades/*.csv files will list, when known (after the sweep).
    """
    top = min(top_k, combinations)

    def blocks(n: int) -> int:
        return math.ceil(n / BLOCK) * BLOCK

    summary = blocks(SUMMARY_ROW_BYTES * combinations)
    if combinations > PARQUET_LIMIT:
        summary += blocks(PARQUET_ROW_BYTES * combinations)
    files = (json_files(combinations, top_k, runs) * blocks(JSON_HEAD_BYTES) + trade_lines * TRADE_LINE_BYTES
             + max(top, json_files(combinations, top_k, runs)) * BLOCK)  # + trades/*.csv
    files += blocks(REPORT_HTML_BYTES) + blocks(_plotly_bytes())
    if png:
        files += (2 * top + strategies) * blocks(CHART_BYTES)
    return summary + files + 3 * BLOCK  # config.yaml, manifest.json, the lock file


def _plotly_bytes() -> int:
    try:
        return plotly_js_path().stat().st_size
    except (OSError, RuntimeError):
        return 0


def trade_lines_in_report(summary: pd.DataFrame, top_k: int, runs: str = "top") -> int:
    """How many lines the run's trades/*.csv files will hold (the top K's estimated from the median)."""
    if not len(summary) or "n_trades" not in summary:
        return 0
    trades = summary["n_trades"].fillna(0)
    if runs == "all":
        return int(trades.sum())
    return int(trades.median() * min(top_k, len(summary)))
