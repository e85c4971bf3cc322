"""The seed strategy: SMA crossover with an EMA trend filter and a momentum-spread filter, mirrored for shorts."""

from __future__ import annotations

from ..signals import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT
from ..indicators import EMA, SMA
from ..indicators.jit import njit
from .base import Bound, Constraint, Strategy


@njit(cache=True, nogil=True)
def ma_crossover_signal(close, sma_short, sma_long, ema, momentum_spread):
    code = 0
    if sma_short > sma_long and close > ema and (sma_short - sma_long) / close > momentum_spread:
        code |= ENTER_LONG
    if sma_long > sma_short:
        code |= EXIT_LONG
    if sma_short < sma_long and close < ema and (sma_long - sma_short) / close > momentum_spread:
        code |= ENTER_SHORT
    if sma_short > sma_long:
        code |= EXIT_SHORT
    return code


class MACrossover(Strategy):
    """Long when the short SMA is above the long SMA, price is above the EMA trend and the SMA
    spread exceeds ``momentum_spread`` of price; exit when the long SMA is back above the short
    one. Short: the mirror image."""

    name = "ma_crossover"
    short_window: int = 10
    long_window: int = 50
    ema_period: int = 200
    momentum_spread: float = 0.001

    indicators = {"sma_short": SMA("short_window"), "sma_long": SMA("long_window"), "ema": EMA("ema_period")}
    signal = staticmethod(ma_crossover_signal)
    bounds = {"short_window": Bound(1), "long_window": Bound(2), "ema_period": Bound(1),
              "momentum_spread": Bound(0.0)}
    constraints = (Constraint("short_window < long_window", lambda s: s.short_window < s.long_window),)
