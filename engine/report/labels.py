"""Short, readable names for combinations: ``ma_crossover(short=25, long=70)``.

Only the swept columns appear, each under a short name: a parameter loses a ``_window``,
``_period`` or ``_length`` suffix, a position rule has a fixed abbreviation. The full values stay
in their own columns and the file names keep ``strategy_id``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

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
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def short_label(strategy: str, swept: Sequence[str], row: Mapping[str, Any]) -> str:
    """``strategy(name=value, ...)`` over the swept columns, in their order; the bare name when none is."""
    if not swept:
        return strategy
    return f"{strategy}(" + ", ".join(f"{short_name(c)}={_value(row[c])}" for c in swept) + ")"
