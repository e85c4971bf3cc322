"""Short names for a combination's swept columns, shared by its id and its label.

A parameter loses a ``_window``, ``_period`` or ``_length`` suffix and a position rule has a fixed
abbreviation (``stop_loss`` → ``sl``). Two columns of one strategy never share a name: where short
names would clash (``rsi_period`` and a parameter ``rsi``), those columns keep their full names.
A value prints as the shortest text that reads back to the same number (``0.02``, ``1`` for 1.0),
``none`` for an unset rule, so distinct values always print differently.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

RULE_SHORT = {"direction": "dir", "size": "size", "stop_loss": "sl", "take_profit": "tp", "trailing_stop": "trail",
              "max_bars": "bars", "leverage": "lev"}
_SUFFIXES = ("_window", "_period", "_length")


def short_name(column: str) -> str:
    if column in RULE_SHORT:
        return RULE_SHORT[column]
    for suffix in _SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            return column[: -len(suffix)]
    return column


def short_names(columns: Sequence[str]) -> list[str]:
    """The short name of each column, or its full name where the short one would clash with another's."""
    short = [short_name(c) for c in columns]
    counts = Counter(short)
    full = set(columns)
    return [s if counts[s] == 1 and (s == c or s not in full) else c for c, s in zip(columns, short)]


def value_text(v: Any) -> str:
    """``none`` for a missing value; a float as its shortest exact text, without a trailing ``.0``."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ == "NAType":
        return "none"
    if isinstance(v, float):
        text = repr(float(v))  # the shortest text that reads back to v (numpy scalars too)
        return text[:-2] if text.endswith(".0") else text
    return str(v)
