"""`make bench`, universe case: 20 series × 4,096 combinations × 100,000 candles, against one series.

The same grid (bench.cases.grid(4096)) on one synthetic series of 100,000 candles (the best of
two sweeps, warm) and on a synthetic universe of 20 symbols (one sweep of every series through
``engine.universe.runner.run_universe``: load once, sweep, aggregate, rank, the top K's detail
runs). Throughput is candles × combinations per second; the universe must keep at least 90% of
the single series'. Memory: peak RSS after each step (the universe keeps its candles, O(series ×
candles), and its summaries, O(series × combinations)). Prints one JSON line.
"""

from __future__ import annotations

import json
import time

from bench.cases import grid, peak_rss_mb

SERIES, BARS, COMBOS = 20, 100_000, 4096
SYMBOLS = [f"S{i:02d}USDT" for i in range(SERIES)]


def main() -> None:
    from engine.config import parse_config
    from engine.data.source import load_data
    from engine.grid import build_grid
    from engine.sweep import prepare, run_sweep
    from engine.universe.runner import load_universe, run_universe

    doc = grid(COMBOS)
    doc["data"] = {"source": "synthetic", "synthetic_bars": BARS, "seed": 7}
    single = parse_config(doc)
    g = build_grid(single)
    prepare(single, grid=g)
    candles = load_data(single.data)
    run_sweep(single, candles, grid=g)  # warm-up: threads, caches
    best = min(_timed(lambda: run_sweep(single, candles, grid=g)) for _ in range(2))
    rss_single = peak_rss_mb()

    doc["data"] = {"source": "synthetic", "synthetic_bars": BARS, "seed": 7, "symbols": SYMBOLS}
    cfg = parse_config(doc)
    t0 = time.perf_counter()
    series, loaded = load_universe(cfg, cfg.data)
    load_s = time.perf_counter() - t0
    universe_s = _timed(lambda: run_universe(cfg, g, series, loaded))
    work = SERIES * COMBOS * BARS
    single_rate = COMBOS * BARS / best
    universe_rate = work / universe_s
    print(json.dumps({"case": f"universe {SERIES} x {COMBOS:,} x {BARS:,}", "single_sweep_s": round(best, 3),
                      "single_candle_strategies_per_s": round(single_rate), "universe_load_s": round(load_s, 3),
                      "universe_s": round(universe_s, 3), "universe_candle_strategies_per_s": round(universe_rate),
                      "ratio": round(universe_rate / single_rate, 3), "peak_rss_single_mb": round(rss_single),
                      "peak_rss_universe_mb": round(peak_rss_mb())}))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
