"""Validation benchmarks (part of `make bench`):

* the cost of the streamed per-block sums and moments (CSCV, S = 16) on 4,096 combinations
  x 1M candles, against the same sweep without a ``validation`` section (target: at most 15 %);
* PBO by CSCV at S = 16 (12,870 splits) on 4,096 and 65,536 combinations (targets: 2 s, 30 s);
* a walk-forward sweep's candle·strategies per second, counting each train window's bars,
  against a plain sweep's (target: at least 80 %).

Each case runs in a fresh process with an empty numba cache (cold includes compilation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    ["accumulate", 4096, 1_000_000, 16, 4],  # combinations, candles, blocks, warm repeats
    ["pbo", 4096, 16, 3],  # combinations, blocks, warm repeats
    ["pbo", 65536, 16, 1],
    ["walk_forward", 4096, 1_000_000, 250_000, 125_000, 3],  # combinations, candles, train, test bars, repeats
]


def _case(args: list, cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-m", "bench.validation_case", *map(str, args)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _line(r: dict) -> str:
    if r["case"] == "accumulate":
        return (f"  validation accumulate  S={r['blocks']} {r['candles']:,} x {r['combinations']:,}  "
                f"plain {r['plain_warm_s']:.3f}s ({r['plain_candle_strategies_per_s'] / 1e6:.0f} M/s)  "
                f"with CSCV sums {r['cscv_warm_s']:.3f}s ({r['cscv_candle_strategies_per_s'] / 1e6:.0f} M/s)  "
                f"cost {r['throughput_cost']:+.1%} (target <= 15%); then PSR, DSR and PBO {r['figures_s']:.2f}s")
    if r["case"] == "pbo":
        return (f"  validation pbo  S={r['blocks']} {r['splits']:,} splits x {r['combinations']:,} combinations  "
                f"cold {r['cold_s']:.3f}s  warm {r['warm_s']:.3f}s  rss {r['peak_rss_mb']:.0f} MB "
                f"(target {'2' if r['combinations'] <= 4096 else '30'} s)")
    return (f"  validation walk-forward  {r['folds']} folds, train {r['train_bars']:,} / test {r['test_bars']:,} bars, "
            f"{r['candles']:,} x {r['combinations']:,}  {r['walk_forward_warm_s']:.3f}s  "
            f"{r['walk_forward_candle_strategies_per_s'] / 1e6:.0f} M/s vs plain "
            f"{r['plain_candle_strategies_per_s'] / 1e6:.0f} M/s: kept {r['kept']:.0%} (target >= 80%)")


def run_all() -> list[dict]:
    results = []
    for args in CASES:
        with tempfile.TemporaryDirectory() as cache:
            r = _case(args, cache)
        results.append(r)
        print(_line(r), flush=True)
    return results


def main() -> int:
    run_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
