"""The one description of Binance's vocabulary: kline intervals, the symbol pattern, kline fields.

Standard library only: the CDK stacks, the ingest Lambda, the CLI and the engine all import
it, and ``tests/test_binance_vocabulary.py`` fails if any of them accepts something else.
"""

from __future__ import annotations

import re

#: Kline intervals the project stores and sweeps, shortest first, with their length in ms.
#: Binance's ``1M`` (a calendar month) is left out: its bars have no fixed length, so no
#: return, Sharpe or walk-forward window in bars can be defined on it.
INTERVAL_MS: dict[str, int] = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
INTERVALS: tuple[str, ...] = tuple(INTERVAL_MS)

#: Binance's documented symbol pattern, ``^[A-Z0-9-_.]{1,20}$``, with a letter or digit first:
#: a symbol names folders and S3 keys (``symbol=S/``), so "." and ".." can never be one.
SYMBOL_PATTERN = r"[A-Z0-9][A-Z0-9_.-]{0,19}"
SYMBOL_RE = re.compile(SYMBOL_PATTERN)  # use fullmatch: "$" would let a trailing newline in

#: A kline as Binance sends it: 12 fields, the last unused.
KLINE_FIELDS = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
                "trades", "taker_buy_base_volume", "taker_buy_quote_volume", "ignore")
#: What is kept of it (the dataset's columns, the raw batches' columns): all but "ignore".
KEPT_FIELDS = KLINE_FIELDS[:-1]
INT_FIELDS = ("open_time", "close_time", "trades")
FLOAT_FIELDS = tuple(f for f in KEPT_FIELDS if f not in INT_FIELDS)


def is_symbol(value: object) -> bool:
    """Whether ``value`` is a string matching :data:`SYMBOL_PATTERN` (no path separator, no dot first)."""
    return isinstance(value, str) and SYMBOL_RE.fullmatch(value) is not None


def interval_ms(name: object) -> int:
    """The length of a Binance kline interval in ms; ValueError naming the choices otherwise."""
    if not isinstance(name, str) or name not in INTERVAL_MS:
        raise ValueError(f"{name!r} is not a Binance kline interval; expected one of {', '.join(INTERVALS)}")
    return INTERVAL_MS[name]


def series_problem(symbol: object, interval: object) -> str | None:
    """Why (symbol, interval) cannot name a stored series (it becomes folder and key names), or None."""
    if not is_symbol(symbol):
        return f"{symbol!r} is not a Binance symbol (pattern {SYMBOL_PATTERN}, like BTCUSDT)"
    if not isinstance(interval, str) or interval not in INTERVAL_MS:
        return f"{interval!r} is not a Binance kline interval; expected one of {', '.join(INTERVALS)}"
    return None
