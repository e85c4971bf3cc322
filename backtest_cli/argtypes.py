"""argparse types shared by the commands: counts, and the Binance vocabulary (engine.data.binance).

A bad value is one line, exit 2."""

from __future__ import annotations

import argparse

from engine.data.binance import SYMBOL_PATTERN, interval_ms, is_symbol


def int_at_least(low: int, what: str):
    """An integer of at least ``low`` (``what``: how the message names such an integer)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1, "positive")
non_negative_int = int_at_least(0, "non-negative")


def interval(text: str) -> str:
    try:
        interval_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def symbol(text: str) -> str:
    """An upper-cased Binance symbol (``btcusdt`` is BTCUSDT)."""
    value = text.upper()
    if not is_symbol(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Binance symbol (pattern {SYMBOL_PATTERN}, like BTCUSDT)")
    return value


def _listed(text: str, one, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"{text!r}: expected {what} separated by commas, none empty")
    values = [one(t) for t in items]
    repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if repeated is not None:
        raise argparse.ArgumentTypeError(f"{repeated} is listed twice; each series is swept once")
    return values


def symbol_list(text: str) -> list[str] | str:
    """``A,B,C`` (upper-cased Binance symbols, none twice), or ``all``."""
    if text.strip().lower() == "all":
        return "all"
    return _listed(text, symbol, "symbols")


def interval_list(text: str) -> list[str]:
    """``15m,1h`` (Binance intervals, none twice)."""
    return _listed(text, interval, "intervals")


def symbol_names(text: str) -> list[str]:
    """``A,B,C``: upper-cased Binance symbols, none twice (no ``all``: a download names what it fetches)."""
    return _listed(text, symbol, "symbols")


def path(text: str):
    """A path that is not empty (``--out ""`` would otherwise mean the working folder)."""
    from pathlib import Path

    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def text(value: str) -> str:
    """A value that is not empty (``--data ""`` would otherwise fall back to the config's source)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected a value, got an empty string")
    return value
