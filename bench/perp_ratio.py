"""The perp kernel's throughput against spot's on the same 4,096-combination grid (issue 20's
target: at least 0.8), measured interleaved in one warm process: spot, perp, spot, perp…, the
best of REPEATS each. On a shared machine only such interleaved ratios mean anything: the two
sweeps see the same load.

Usage: python -m bench.perp_ratio [N_CANDLES ...] [--repeats R] [--only spot]
"""

from __future__ import annotations

import argparse
import json
import os
import time


def measure(n: int, repeats: int, kinds: tuple[str, ...]) -> dict:
    from bench.cases import data_spec, grid, perp_candles
    from engine.config import parse_config
    from engine.data.source import load_data
    from engine.sweep import run_sweep

    cases = {"spot": (parse_config(grid(4096)), lambda: load_data(data_spec("synthetic", n))),
             "perp": (parse_config(grid(4096, "perp-3x")), lambda: perp_candles(n))}
    cases = {k: (cfg, data()) for k, (cfg, data) in cases.items() if k in kinds}
    for cfg, data in cases.values():
        run_sweep(cfg, data)  # compile or load, and warm
    best = {k: float("inf") for k in cases}
    cpu = dict(best)
    load0 = os.getloadavg()[0]
    for _ in range(repeats):
        for k, (cfg, data) in cases.items():
            t, c = time.perf_counter(), time.process_time()
            run_sweep(cfg, data)
            best[k] = min(best[k], time.perf_counter() - t)
            cpu[k] = min(cpu[k], time.process_time() - c)
    # CPU seconds: less disturbed than wall seconds by other load on a shared machine
    out = {"candles": n, "combinations": 4096, **{f"{k}_s": round(v, 3) for k, v in best.items()},
           **{f"{k}_cpu_s": round(v, 3) for k, v in cpu.items()},
           "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}
    if len(best) == 2:
        out["perp_over_spot_throughput"] = round(best["spot"] / best["perp"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candles", nargs="*", type=int, default=[250_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("spot", "perp"))
    args = parser.parse_args()
    kinds = (args.only,) if args.only else ("spot", "perp")
    for n in args.candles:
        print(json.dumps(measure(n, args.repeats, kinds)), flush=True)


if __name__ == "__main__":
    main()
