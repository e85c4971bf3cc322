"""The seed strategy: SMA crossover with an EMA trend filter and a momentum-spread filter."""

from __future__ import annotations

from numba import njit

from ..indicators import EMA, SMA
from .base import ENTRY, EXIT, Bound, Constraint, Strategy


@njit(cache=True, nogil=True)
def ma_crossover_signal(o, h, lo, c, sma_short, sma_long, ema, _v3, momentum_spread, _p1, _p2, _p3):
    code = 0
    if sma_short > sma_long and c > ema and (sma_short - sma_long) / c > momentum_spread:
        code |= ENTRY
    if sma_long > sma_short:
        code |= EXIT
    return code


class MACrossover(Strategy):
    """Long when the short SMA is above the long SMA, price is above the EMA trend
    and the SMA spread exceeds ``momentum_spread`` of price; exit when the long
    SMA is back above the short one."""

    name = "ma_crossover"
    short_window: int = 10
    long_window: int = 50
    ema_period: int = 200
    momentum_spread: float = 0.001

    signal = staticmethod(ma_crossover_signal)
    signal_params = ("momentum_spread",)
    bounds = {"short_window": Bound(1), "long_window": Bound(2), "ema_period": Bound(1),
              "momentum_spread": Bound(0.0)}
    constraints = (Constraint("short_window < long_window", lambda s: s.short_window < s.long_window),)

    def indicators(self):
        return (SMA(self.short_window), SMA(self.long_window), EMA(self.ema_period))
