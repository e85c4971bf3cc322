"""One validation benchmark case in its own process (fresh numba cache: cold includes compilation).

Usage: python -m bench.validation_case pbo COMBOS BLOCKS REPEATS
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time


def pbo_case(combos: int, blocks: int, repeats: int) -> dict:
    import numpy as np

    from bench.cases import peak_rss_mb
    from engine.validation.cscv import BlockStats, cscv

    # Per-block statistics shaped like a sweep's on 1M candles: 1M/S returns per block,
    # per-bar Sharpe ~1e-3, a common market factor plus each combination's own noise.
    rng = np.random.default_rng(1)
    T = 1_000_000
    counts = np.diff(np.linspace(0, T, blocks + 1).astype(np.int64))
    sigma = 0.004
    market = rng.normal(0, 1, blocks)
    mean = 1e-5 * (market[None, :] + rng.normal(0, 1, (combos, blocks)))
    s1 = mean * counts
    s2 = (sigma * rng.uniform(0.8, 1.2, (combos, 1))) ** 2 * counts + s1 * mean
    stats = BlockStats(counts, s1, s2)
    t = time.perf_counter()
    res = cscv(stats)
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        cscv(stats)
        warm.append(time.perf_counter() - t)
    return {"case": "pbo", "combinations": combos, "blocks": blocks, "splits": res.splits,
            "cold_s": round(cold, 4), "warm_s": round(min(warm) if warm else cold, 4),
            "pbo": res.pbo, "peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    kind = sys.argv[1]
    if kind == "pbo":
        print(json.dumps(pbo_case(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
    else:
        raise SystemExit(f"unknown case {kind!r}")


if __name__ == "__main__":
    main()
