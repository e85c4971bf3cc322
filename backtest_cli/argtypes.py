"""argparse types for the Binance vocabulary (engine.data.binance): a bad value is one line, exit 2."""

from __future__ import annotations

import argparse

from engine.data.binance import SYMBOL_PATTERN, interval_ms, is_symbol


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
