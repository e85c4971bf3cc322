"""``trades/<strategy_id>.csv``: one combination's trade list as a table, and its reader.

Every field of :class:`engine.trade.Trade` (``return`` for ``ret``), times as ISO 8601 UTC
(``2024-01-29T08:45:00Z``), prices and amounts in Python's shortest round-trip form
(``repr``), so :func:`read_trades_csv` gives back the very floats the engine produced. This file
is the one copy of a combination's trades: ``runs/<id>.json`` names it (``trades_csv``).

Written a column at a time (``map`` over each column, then one join per line): a 1M-candle
report's 52,000 trades once took 0.4 s through ``csv.writer`` and a ``repr`` per value. No field
can hold a comma, a quote or a line break (numbers, ISO times and the fixed words of
``exit_reason`` and ``direction``), so nothing needs quoting.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..timeutil import iso_times
from ..trade import JSON_KEYS, Trade

TIME_FIELDS = ("entry_time", "exit_time")
INT_FIELDS = ("entry_bar", "exit_bar")
TEXT_FIELDS = ("exit_reason", "direction")
FLOAT_FIELDS = tuple(k for k in JSON_KEYS if k not in TIME_FIELDS + INT_FIELDS + TEXT_FIELDS)


def _text(name: str, values: list) -> list[str]:
    if name in TIME_FIELDS:
        return iso_times(values)
    if name in INT_FIELDS:
        return list(map(str, map(int, values)))
    if name in TEXT_FIELDS:
        bad = {v for v in values if not str(v).isidentifier()}
        if bad:
            raise ValueError(f"a trade's {name} {sorted(bad)[0]!r} is not a plain word")
        return list(map(str, values))
    return list(map(repr, map(float, values)))


def trades_csv_text(trades: Sequence[Trade]) -> str:
    """The file's text: a header line, then one line per trade."""
    header = ",".join(JSON_KEYS) + "\n"
    if not trades:
        return header
    columns = [_text(name, list(col)) for name, col in zip(JSON_KEYS, zip(*trades))]
    return header + "\n".join(map(",".join, zip(*columns))) + "\n"


def write_trades_csv(path: Path, trades: Sequence[Trade]) -> None:
    Path(path).write_text(trades_csv_text(trades), encoding="utf-8")


def _ms(iso: list[str]) -> list[int]:
    t = np.array([s.removesuffix("Z") for s in iso], dtype="datetime64[ms]")
    return t.astype(np.int64).tolist()


def read_trades_csv(path: Path) -> list[Trade]:
    """The trades of a ``trades/<id>.csv``, exactly as they were written (times back in epoch ms)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != JSON_KEYS:
        raise ValueError(f"{path}: not a trades file (its header is not {','.join(JSON_KEYS)})")
    body = rows[1:]
    if not body:
        return []
    cols = dict(zip(JSON_KEYS, map(list, zip(*body))))
    for name in TIME_FIELDS:
        cols[name] = _ms(cols[name])
    for name in INT_FIELDS:
        cols[name] = list(map(int, cols[name]))
    for name in FLOAT_FIELDS:
        cols[name] = list(map(float, cols[name]))
    return list(map(Trade, *cols.values()))


def run_trades(run_json: Path) -> list[Trade]:
    """The trades of the combination whose ``runs/<id>.json`` is ``run_json``: the file its
    ``trades_csv`` names, relative to the run folder (and never outside it)."""
    run_json = Path(run_json)
    folder = run_json.resolve().parent.parent
    name = json.loads(run_json.read_text(encoding="utf-8"))["trades_csv"]
    path = (folder / name).resolve()
    if folder not in path.parents:
        raise ValueError(f"{run_json}: trades_csv {name!r} is outside the run folder")
    return read_trades_csv(path)
