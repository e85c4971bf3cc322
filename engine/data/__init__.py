"""Market data: everything between a source of candles and the engines.

* Loading: :mod:`.spec` (what to load, the config's ``data`` section), :mod:`.source`
  (``load_data``), :mod:`.loader` (files and datasets), :mod:`.candle_file` and
  :mod:`.kline_csv` (reading files safely, with a size bound), :mod:`.checks` (candle rules).
* Datasets: :mod:`.dataset` (the API), :mod:`.dataset_schema`, :mod:`.dataset_local`,
  :mod:`.dataset_s3` and :mod:`.generations`, with :mod:`.folder_lock` and :mod:`.local_write`;
  writers hold :mod:`.series_lock`; :mod:`.outages` records what the exchange confirmed empty.
* Ingest: :mod:`.klines` (REST), :mod:`.fetch`, :mod:`.backfill` (bulk zips), :mod:`.build`,
  :mod:`.sync`, :mod:`.inspect`, over :mod:`.http_get` and :mod:`.http_retry`.
* The embedded market: :mod:`.synthetic` (the model) over :mod:`.portable_math`.
* Perps (``market: um``): :mod:`.funding_table` (a symbol's funding events), :mod:`.funding_fetch`
  (``/fapi/v1/fundingRate``), :mod:`.perp_files` (the funding archive and local files),
  :mod:`.perp_inspect`, and :mod:`.perp_source` (a perp run's three series from a dataset); the
  trade and mark klines use the spot modules on their own roots (``storage_layout.kind_root``).
* :mod:`.binance`: the one Binance vocabulary (standard library only).

The package imports only ``engine.errors``, ``engine.timeutil``, ``engine.candles`` and
``engine.storage_layout`` from the rest of ``engine``, none of which imports it. No AWS SDK is
imported at module level.
"""
