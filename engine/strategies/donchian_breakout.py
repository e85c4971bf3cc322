"""Donchian channel breakout (turtle style)."""

from __future__ import annotations

from numba import njit

from ..indicators import Highest, Lowest
from .base import ENTRY, EXIT, Bound, Strategy


@njit(cache=True, nogil=True)
def donchian_signal(o, h, lo, c, upper, lower, _v2, _v3, _p0, _p1, _p2, _p3):
    code = 0
    if c > upper:
        code |= ENTRY
    if c < lower:
        code |= EXIT
    return code


class DonchianBreakout(Strategy):
    """Long when the close breaks above the highest high of the previous
    ``entry_window`` bars; exit when it breaks below the lowest low of the
    previous ``exit_window`` bars."""

    name = "donchian_breakout"
    entry_window: int = 20
    exit_window: int = 10

    signal = staticmethod(donchian_signal)
    bounds = {"entry_window": Bound(1), "exit_window": Bound(1)}

    def indicators(self):
        return (Highest(self.entry_window), Lowest(self.exit_window))
