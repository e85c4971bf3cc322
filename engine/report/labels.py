"""Short, readable names for combinations: ``ma_crossover(short=25, long=70)``.

Only the swept columns appear, each under its short name (``engine.naming``, as in the
``strategy_id``, ``ma_crossover_short=25_long=70``, which names the files). The full values stay in
their own columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..naming import short_names, value_text

if TYPE_CHECKING:
    import pandas as pd


def short_label(strategy: str, swept: Sequence[str], row: Mapping[str, Any]) -> str:
    """``strategy(name=value, ...)`` over the swept columns, in their order; the bare name when none is."""
    return _label(strategy, swept, short_names(swept), row)


def _label(strategy: str, swept: Sequence[str], names: Sequence[str], row: Mapping[str, Any]) -> str:
    if not swept:
        return strategy
    return f"{strategy}(" + ", ".join(f"{n}={value_text(row[c])}" for n, c in zip(names, swept)) + ")"


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
    names = {s: short_names(cs) for s, cs in swept.items()}  # once per strategy, not per row
    labels = []
    for r in frame[cols].to_dict("records"):
        s = str(r["strategy"])
        labels.append(_label(s, swept.get(s, ()), names.get(s, ()), r))
    return labels
