"""One validation benchmark case in its own process (fresh numba cache: cold includes compilation).

Usage:
  python -m bench.validation_case pbo COMBOS BLOCKS REPEATS
  python -m bench.validation_case accumulate COMBOS CANDLES BLOCKS REPEATS
  python -m bench.validation_case walk_forward COMBOS CANDLES TRAIN TEST REPEATS
Prints one JSON line.
"""

from __future__ import annotations

import json
import math
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


def _timed(fn, repeats: int) -> tuple[float, float]:
    """Cold (first call, numba compiles) and best warm seconds of ``fn()``."""
    t = time.perf_counter()
    fn()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t)
    return cold, min(warm) if warm else cold


def _validated_sweep(cfg, data):
    """What ``backtest run`` computes for a validated config: the sweep and every figure."""
    from engine.sweep import run_sweep
    from engine.validation.finish import finish

    res = run_sweep(cfg, data)
    if res.plan is None:
        return res, None
    return res, finish(cfg, data, res.summary, res.plan, res.validation)[1]


def accumulate_case(combos: int, n: int, blocks: int, repeats: int) -> dict:
    """The same sweep with and without CSCV: what streaming the per-block sums and the
    moments costs the sweep (``run_sweep``); PBO, PSR and DSR afterwards are timed apart."""
    from bench.cases import data_spec, grid, peak_rss_mb
    from engine.config import parse_config
    from engine.data.source import load_data
    from engine.sweep import run_sweep
    from engine.validation.finish import finish

    data = load_data(data_spec("synthetic", n))
    plain = parse_config(grid(combos))
    cscv = parse_config({**grid(combos), "validation": {"cscv": {"blocks": blocks}}})
    p_cold = _timed(lambda: run_sweep(plain, data), 0)[0]
    c_cold = _timed(lambda: run_sweep(cscv, data), 0)[0]
    # interleaved, best of each: this host drifts between a fast and a slow phase
    p_warm = c_warm = math.inf
    for _ in range(repeats):
        p_warm = min(p_warm, _timed(lambda: run_sweep(plain, data), 0)[0])
        c_warm = min(c_warm, _timed(lambda: run_sweep(cscv, data), 0)[0])
    res = run_sweep(cscv, data)
    figures_s = _timed(lambda: finish(cscv, data, res.summary, res.plan, res.validation), 1)[1]
    rate = lambda s: len(data) * combos / s  # noqa: E731
    return {"case": "accumulate", "combinations": combos, "candles": len(data), "blocks": blocks,
            "plain_cold_s": round(p_cold, 4), "plain_warm_s": round(p_warm, 4),
            "cscv_cold_s": round(c_cold, 4), "cscv_warm_s": round(c_warm, 4),
            "plain_candle_strategies_per_s": rate(p_warm), "cscv_candle_strategies_per_s": rate(c_warm),
            "throughput_cost": round(1 - p_warm / c_warm, 4), "figures_s": round(figures_s, 4),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def walk_forward_case(combos: int, n: int, train: int, test: int, repeats: int) -> dict:
    """A walk-forward sweep against a plain one on the same candles. Its work is the full
    sweep's bars (ranking, PSR/DSR) plus every train window's, each for every combination;
    the chosen combinations' test windows are counted as nothing."""
    from bench.cases import data_spec, grid, peak_rss_mb
    from engine.config import parse_config
    from engine.data.source import load_data

    data = load_data(data_spec("synthetic", n))
    plain = parse_config(grid(combos))
    wf = parse_config({**grid(combos), "validation": {"walk_forward": {"train": train, "test": test}}})
    p_cold, p_warm = _timed(lambda: _validated_sweep(plain, data), repeats)
    w_cold, w_warm = _timed(lambda: _validated_sweep(wf, data), repeats)
    res, outcome = _validated_sweep(wf, data)
    folds = res.plan.folds
    bars = len(data) + sum(len(f.train) for f in folds)
    plain_rate = len(data) * combos / p_warm
    wf_rate = bars * combos / w_warm
    return {"case": "walk_forward", "combinations": combos, "candles": len(data), "train_bars": train,
            "test_bars": test, "folds": len(folds), "bars_simulated_per_combination": bars,
            "plain_warm_s": round(p_warm, 4), "walk_forward_cold_s": round(w_cold, 4),
            "walk_forward_warm_s": round(w_warm, 4), "plain_candle_strategies_per_s": plain_rate,
            "walk_forward_candle_strategies_per_s": wf_rate, "kept": round(wf_rate / plain_rate, 4),
            "efficiency": outcome.walk_forward.efficiency, "peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    kind, args = sys.argv[1], [int(a) for a in sys.argv[2:]]
    if kind == "pbo":
        print(json.dumps(pbo_case(*args)))
    elif kind == "accumulate":
        print(json.dumps(accumulate_case(*args)))
    elif kind == "walk_forward":
        print(json.dumps(walk_forward_case(*args)))
    else:
        raise SystemExit(f"unknown case {kind!r}")


if __name__ == "__main__":
    main()
