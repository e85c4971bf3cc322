"""Scaling study for the README: throughput vs candles and vs combinations.

`python -m bench.scaling` (several minutes). Each case runs in its own process
with a shared, warm numba cache; the figure is the best warm end-to-end time.
Writes bench/scaling.json and prints a Markdown table.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.run import run_case

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    # data, candles, combinations, warm repeats
    ("synthetic", 35_000, 64, 5),
    ("synthetic", 1_000_000, 64, 3),
    ("synthetic", 10_000_000, 64, 1),
    ("synthetic", 1_000_000, 4096, 1),
    ("synthetic", 1_000_000, 65536, 1),
]


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        run_case("fast", "synthetic", 10_000, 64, 0, cache)  # compile once into the shared cache
        for kind, n, combos, repeats in CASES:
            r = run_case("fast", kind, n, combos, repeats, cache)
            rows.append(r)
            print(f"| {r['candles']:>12,} | {r['combinations']:>7,} | {r['warm_s']:9.3f} | "
                  f"{r['candle_strategies_per_s'] / 1e6:8.1f} | {r['peak_rss_mb']:8.0f} |", flush=True)
    (ROOT / "bench" / "scaling.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    print("| candles | combinations | warm s | M candle·strategies/s | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|")
    sys.exit(main())
