"""Market data: Binance klines client, bulk backfill, Parquet dataset. No AWS SDK imports at module level."""
