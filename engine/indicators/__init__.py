"""Indicators: one definition each (an ``@njit`` step function, its state size, when it becomes
valid and how far back it reads), run candle by candle on the reference engine and compiled into
chunk loops on the fast path, with the same floating-point operations in both.

``engine.indicators.protocol`` describes the protocol a user definition follows,
``engine.indicators.builtin`` holds the built-ins (and their table), and
``engine.indicators.reference`` the candle-by-candle feed of the reference engine.
"""

from .builtin import (ATR, EMA, HL2, MACD, OHLC4, ROC, RSI, SMA, BollingerLower, BollingerMiddle, BollingerUpper,
                      DEFINITIONS, Highest, KeltnerLower, KeltnerMiddle, KeltnerUpper, Lag, LowerBand, Lowest,
                      MACDSignal, StdDev, Typical, UpperBand, rsi_value, wilder, window_std)
from .protocol import PRICES, Definition, Indicator, Param, derived_prices, indicator
from .reference import Feed, series

__all__ = ["ATR", "EMA", "HL2", "MACD", "OHLC4", "ROC", "RSI", "SMA", "BollingerLower", "BollingerMiddle",
           "BollingerUpper", "DEFINITIONS", "Definition", "Feed", "Highest", "Indicator", "KeltnerLower",
           "KeltnerMiddle", "KeltnerUpper", "Lag", "LowerBand", "Lowest", "MACDSignal", "PRICES", "Param", "StdDev",
           "Typical", "UpperBand", "derived_prices", "indicator", "rsi_value", "series", "wilder", "window_std"]
