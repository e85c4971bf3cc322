"""The one list of Binance kline fields (REST rows, bulk CSVs, raw batches, the stored columns)."""

from __future__ import annotations

#: A kline as Binance sends it: 12 fields, the last unused.
KLINE_FIELDS = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
                "trades", "taker_buy_base_volume", "taker_buy_quote_volume", "ignore")
#: What is kept of it (the dataset's columns, the raw batches' columns): all but "ignore".
KEPT_FIELDS = KLINE_FIELDS[:-1]
INT_FIELDS = ("open_time", "close_time", "trades")
FLOAT_FIELDS = tuple(f for f in KEPT_FIELDS if f not in INT_FIELDS)
