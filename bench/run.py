"""`make bench`: throughput, compile time and memory of the fast path vs the reference.

Each case runs in a fresh process with an EMPTY numba cache, so `cold_s` is
the first call on a fresh machine (compilation included); `warm_s` is the best
of the following calls, end to end (indicators + simulation + every metric).
Writes bench/results.json and prints a table.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.cases import REAL_15M

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    # engine, data, candles, combinations, warm repeats, position rules (bench.cases.RULES)
    ("fast", "real", 0, 64, 30, ""),
    ("fast", "synthetic", 1_000_000, 64, 5, ""),
    ("fast", "synthetic", 1_000_000, 4096, 2, ""),
    ("fast", "synthetic", 1_000_000, 4096, 2, "both-tp-trailing"),
    ("reference", "real", 0, 64, 0, ""),
]


def run_case(engine: str, kind: str, n: int, combos: int, repeats: int, cache: str, rules: str = "") -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-m", "bench.case", engine, kind, str(n), str(combos), str(repeats),
                          rules], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    results = []
    for engine, kind, n, combos, repeats, rules in CASES:
        if kind == "real" and not REAL_15M.exists():
            print(f"skip {engine} {combos} on real candles: {REAL_15M} is absent")
            continue
        with tempfile.TemporaryDirectory() as cache:
            r = run_case(engine, kind, n, combos, repeats, cache, rules)
        results.append(r)
        print(f"{r['engine']:>9} {r['data']:>9} {r['rules']:>16} {r['candles']:>10,} x {r['combinations']:>5,}  "
              f"cold {r['cold_s']:8.3f}s  warm {r['warm_s']:8.3f}s  "
              f"{r['candle_strategies_per_s'] / 1e6:10.2f} M/s  rss {r['peak_rss_mb']:7.1f} MB", flush=True)
    fast = next((r for r in results if r["engine"] == "fast" and r["data"] == "real"), None)
    ref = next((r for r in results if r["engine"] == "reference"), None)
    summary = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "processor": platform.processor() or platform.machine()},
               "cases": results}
    big = [r for r in results if r["engine"] == "fast" and r["candles"] >= 1_000_000 and r["rules"] == "long, stop"]
    if fast and ref:
        summary["speedup_fast_over_reference"] = fast["candle_strategies_per_s"] / ref["candle_strategies_per_s"]
        print(f"speed-up over the reference engine, default grid on the same 40k candles, all cores: "
              f"{summary['speedup_fast_over_reference']:,.0f}x")
    if big and ref:
        summary["speedup_1m_cases_over_reference"] = (min(r["candle_strategies_per_s"] for r in big)
                                                      / ref["candle_strategies_per_s"])
        print(f"speed-up over the reference engine, slower of the 1M-candle cases: "
              f"{summary['speedup_1m_cases_over_reference']:,.0f}x")
    (ROOT / "bench" / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("wrote bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
