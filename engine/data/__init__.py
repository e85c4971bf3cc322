"""Market data: Binance klines client, bulk backfill, Parquet dataset, the series lock and outages.

No AWS SDK imports at module level. Every writer of a series holds its lock
(:mod:`engine.data.series_lock`); :mod:`engine.data.dataset` writes, never locks.
"""
