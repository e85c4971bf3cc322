"""The universe keys: ``data.symbols``, ``data.intervals`` and what joins them to the rest.

A universe is every (symbol, interval) pair of ``data.symbols`` × ``data.intervals``
(``engine.universe.series`` resolves it against the data). What can be told from the
config alone is refused here, before anything is read.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..errors import shown as _show
from . import checks

#: ``data.symbols: all``: every symbol of the dataset
ALL = "all"
#: the cross-sectional PBO splits the series in two halves: fewer than this leaves nothing to split
MIN_CROSS_SERIES = 4


def _items(key: str, value: Any, what: str) -> list:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")] if "," in value else [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of {what}, got {_show(value)}")
    if not value:
        raise ConfigError(f"{key}: the universe is empty; give at least one {what[:-1]}")
    return list(value)


def _no_repeats(key: str, values: list[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"{key}: {v} is listed twice; each series is swept once")
        seen.add(v)
    return tuple(values)


def symbols(key: str, value: Any) -> tuple[str, ...] | str:
    """A list of Binance symbols (upper-cased), or ``all``."""
    if isinstance(value, str) and value.strip().lower() == ALL:
        return ALL
    return _no_repeats(key, [checks.symbol(key, v) for v in _items(key, value, "symbols")])


def intervals(key: str, value: Any) -> tuple[str, ...]:
    return _no_repeats(key, [checks.interval(key, v) for v in _items(key, value, "intervals")])


def joint(values: dict[str, Any], validated: bool) -> None:
    """One series or a universe, not both; the cross-sectional PBO needs a universe of 4 series or more."""
    for one, many in (("data.symbol", "data.symbols"), ("data.interval", "data.intervals")):
        if values[one] is not None and values[many] is not None:
            raise ConfigError(f"{many}: give {one} (one series) or {many} (a universe), not both")
    if not validated or not values.get("validation.cross_series"):
        return
    syms, ivs = values["data.symbols"], values["data.intervals"]
    if syms is None and ivs is None:
        raise ConfigError("validation.cross_series: needs a universe (data.symbols or data.intervals) of at least "
                          f"{MIN_CROSS_SERIES} series")
    if syms != ALL:
        count = len(syms or (1,)) * len(ivs or (1,))
        if count < MIN_CROSS_SERIES:
            raise ConfigError(f"validation.cross_series: the universe has {count} series; the cross-sectional PBO "
                              f"needs at least {MIN_CROSS_SERIES}")
