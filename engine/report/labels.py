"""Short, readable names for combinations: ``ma_crossover(short=25, long=70)``.

Only the swept columns appear, each under a short name: a parameter loses a ``_window``,
``_period`` or ``_length`` suffix, a position rule has a fixed abbreviation. The full values stay
in their own columns and the file names keep ``strategy_id``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

RULE_SHORT = {"direction": "dir", "size": "size", "stop_loss": "sl", "take_profit": "tp", "trailing_stop": "trail",
              "max_bars": "bars"}
_SUFFIXES = ("_window", "_period", "_length")


def short_name(column: str) -> str:
    if column in RULE_SHORT:
        return RULE_SHORT[column]
    for suffix in _SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            return column[: -len(suffix)]
    return column


def _value(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def short_label(strategy: str, swept: Sequence[str], row: Mapping[str, Any]) -> str:
    """``strategy(name=value, ...)`` over the swept columns, in their order; the bare name when none is."""
    if not swept:
        return strategy
    return f"{strategy}(" + ", ".join(f"{short_name(c)}={_value(row[c])}" for c in swept) + ")"


#: Per strategy, its swept columns in grid order (``Grid``: ``{sw.strategy.name: sw.swept}``).
Swept = Mapping[str, Sequence[str]]


def swept_of(grid) -> dict[str, tuple[str, ...]]:
    """Per strategy of ``grid`` (an ``engine.grid.Grid``), the columns with more than one value."""
    return {sw.strategy.name: tuple(sw.swept) for sw in grid}


def label_of(row: Mapping[str, Any], swept: Swept) -> str:
    """The short label of one summary row (it needs ``strategy`` and the swept columns)."""
    return short_label(str(row["strategy"]), swept.get(str(row["strategy"]), ()), row)


def labels_of(frame: pd.DataFrame, swept: Swept) -> list[str]:
    """The short label of every row of a summary frame, in its order."""
    cols = ["strategy", *dict.fromkeys(c for cs in swept.values() for c in cs if c in frame.columns)]
    return [label_of(r, swept) for r in frame[cols].to_dict("records")]
