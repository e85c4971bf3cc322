"""RSI mean reversion: buy oversold, sell once the RSI has recovered."""

from __future__ import annotations

from numba import njit

from ..indicators import RSI
from .base import ENTRY, EXIT, Bound, Constraint, Strategy


@njit(cache=True, nogil=True)
def rsi_reversion_signal(o, h, lo, c, rsi, _v1, _v2, _v3, oversold, overbought, _p2, _p3):
    code = 0
    if rsi < oversold:
        code |= ENTRY
    if rsi > overbought:
        code |= EXIT
    return code


class RSIReversion(Strategy):
    """Long when Wilder's RSI drops below ``oversold``; exit when it rises above ``overbought``."""

    name = "rsi_reversion"
    rsi_period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0

    signal = staticmethod(rsi_reversion_signal)
    signal_params = ("oversold", "overbought")
    bounds = {"rsi_period": Bound(2), "oversold": Bound(0.0, 100.0), "overbought": Bound(0.0, 100.0)}
    constraints = (Constraint("oversold < overbought", lambda s: s.oversold < s.overbought),)

    def indicators(self):
        return (RSI(self.rsi_period),)
