"""``trades/<strategy_id>.csv``: one combination's trade list as a table.

Every field of :class:`engine.trade.Trade` (``return`` for ``ret``, as in the JSON),
times as ISO 8601 UTC (``2024-01-29T08:45:00Z``), prices and amounts in Python's
shortest round-trip form, so a value reads back to the very float of the JSON.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from ..timeutil import iso_times
from ..trade import JSON_KEYS, Trade

TIME_FIELDS = ("entry_time", "exit_time")


def trades_table(trades: Sequence[Trade]) -> tuple[tuple[str, ...], list[list]]:
    """Header and rows, times already in ISO form."""
    columns = list(zip(*trades)) if trades else [() for _ in JSON_KEYS]
    cols = dict(zip(JSON_KEYS, (list(c) for c in columns)))
    for name in TIME_FIELDS:
        cols[name] = iso_times(cols[name]) if trades else []
    return JSON_KEYS, [list(r) for r in zip(*cols.values())]


def write_trades_csv(path: Path, trades: Sequence[Trade]) -> None:
    header, rows = trades_table(trades)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([repr(float(v)) if isinstance(v, float) else v for v in row] for row in rows)
    path.write_text(buf.getvalue())
