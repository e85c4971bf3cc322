"""One benchmark case in its own process, so peak RSS and cold compilation are its own.

Usage: python -m bench.case ENGINE DATA N_CANDLES COMBOS REPEATS [RULES]
RULES names a set of position rules in bench.cases.RULES (default: none). Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    engine, kind, n, combos, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    rules = sys.argv[6] if len(sys.argv) > 6 else ""
    from bench.cases import data_spec, grid, peak_rss_mb
    from engine.config import parse_config
    from engine.data.source import load_data
    from engine.sweep import run_sweep

    spec = data_spec(kind, n)
    data = load_data(spec)
    cfg = parse_config(grid(combos, rules))
    t = time.perf_counter()
    res = run_sweep(cfg, data, engine=engine)  # first call: numba compiles
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        run_sweep(cfg, data, engine=engine)
        warm.append(time.perf_counter() - t)
    best = min(warm) if warm else cold
    print(json.dumps({
        "engine": engine, "data": kind, "rules": rules or "long, stop", "candles": len(data),
        "combinations": len(res.summary),
        "cold_s": round(cold, 4), "warm_s": round(best, 4),
        "candle_strategies_per_s": len(data) * len(res.summary) / best,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "best_sharpe": float(res.summary["sharpe"].max()),
    }))


if __name__ == "__main__":
    main()
