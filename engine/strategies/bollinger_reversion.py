"""Bollinger-band mean reversion, long and short."""

from __future__ import annotations

from ..indicators import BollingerLower, BollingerMiddle, BollingerUpper
from ..indicators.jit import njit
from ..signals import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT
from .base import Bound, Strategy


@njit(cache=True, nogil=True)
def bollinger_reversion_signal(close, middle, upper, lower):
    code = 0
    if close < lower:
        code |= ENTER_LONG
    if close > middle:
        code |= EXIT_LONG
    if close > upper:
        code |= ENTER_SHORT
    if close < middle:
        code |= EXIT_SHORT
    return code


class BollingerReversion(Strategy):
    """Long when the close falls below the lower band (SMA(bb_period) - bb_k standard deviations),
    exit when it is back above the middle band; short above the upper band, cover below the middle."""

    name = "bollinger_reversion"
    bb_period: int = 20
    bb_k: float = 2.0

    indicators = {"middle": BollingerMiddle("bb_period"), "upper": BollingerUpper("bb_period", "bb_k"),
                  "lower": BollingerLower("bb_period", "bb_k")}
    signal = staticmethod(bollinger_reversion_signal)
    bounds = {"bb_period": Bound(2), "bb_k": Bound(0.0, low_inclusive=False)}
