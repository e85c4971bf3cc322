"""Config-driven backtesting engine for Binance candles.

Importing this package is cheap on purpose: the ingest Lambda imports
``engine.data`` and ``engine.storage_layout`` without numba or matplotlib.
"""

__version__ = "0.1.0"
