"""Donchian channel breakout (turtle style), long and short."""

from __future__ import annotations

from ..indicators import Highest, Lowest
from ..indicators.jit import njit
from ..signals import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT
from .base import Bound, Strategy


@njit(cache=True, nogil=True)
def donchian_signal(close, entry_high, exit_low, entry_low, exit_high):
    code = 0
    if close > entry_high:
        code |= ENTER_LONG
    if close < exit_low:
        code |= EXIT_LONG
    if close < entry_low:
        code |= ENTER_SHORT
    if close > exit_high:
        code |= EXIT_SHORT
    return code


class DonchianBreakout(Strategy):
    """Long when the close breaks above the highest high of the previous ``entry_window`` bars,
    exit when it breaks below the lowest low of the previous ``exit_window`` bars; short when it
    breaks below the lowest low of the previous ``entry_window`` bars, cover when it breaks
    above the highest high of the previous ``exit_window`` bars."""

    name = "donchian_breakout"
    entry_window: int = 20
    exit_window: int = 10

    indicators = {"entry_high": Highest("entry_window"), "exit_low": Lowest("exit_window"),
                  "entry_low": Lowest("entry_window"), "exit_high": Highest("exit_window")}
    signal = staticmethod(donchian_signal)
    bounds = {"entry_window": Bound(1), "exit_window": Bound(1)}
