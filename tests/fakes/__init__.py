"""Test doubles for the market-data work: fake Binance REST and data.binance.vision servers."""
