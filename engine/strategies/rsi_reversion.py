"""RSI mean reversion: buy oversold and sell once the RSI has recovered; short overbought and cover once it has fallen."""

from __future__ import annotations

from ..indicators import RSI
from ..indicators.jit import njit
from ..signals import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT
from .base import Bound, Constraint, Strategy


@njit(cache=True, nogil=True)
def rsi_reversion_signal(rsi, oversold, overbought):
    code = 0
    if rsi < oversold:
        code |= ENTER_LONG | EXIT_SHORT
    if rsi > overbought:
        code |= EXIT_LONG | ENTER_SHORT
    return code


class RSIReversion(Strategy):
    """Long when Wilder's RSI drops below ``oversold``, exit when it rises above ``overbought``;
    short when it rises above ``overbought``, cover when it drops below ``oversold``."""

    name = "rsi_reversion"
    rsi_period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0

    indicators = {"rsi": RSI("rsi_period")}
    signal = staticmethod(rsi_reversion_signal)
    bounds = {"rsi_period": Bound(2), "oversold": Bound(0.0, 100.0), "overbought": Bound(0.0, 100.0)}
    constraints = (Constraint("oversold < overbought", lambda s: s.oversold < s.overbought),)
