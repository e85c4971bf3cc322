"""`make bench`: throughput, compile time and memory of the fast path vs the reference.

Each case runs in a fresh process with an EMPTY numba cache, so `cold_s` is
the first call on a fresh machine (compilation included); `warm_s` is the best
of the following calls, end to end (indicators + simulation + every metric).
The fast cases run twice: compiled for this machine's CPU and for the portable
target the Docker image uses (NUMBA_CPU_NAME=generic); the difference is what
portability costs. Prints a table; rewrites the committed bench/results.json
only with ``--save`` (``make bench SAVE=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import validation
from bench.cases import REAL_15M

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
CASES = [
    # engine, data, candles, combinations, warm repeats, position rules (bench.cases.RULES; "": long, 2% stop)
    ("fast", "real", 0, 64, 30, ""),
    ("fast", "synthetic", 1_000_000, 64, 5, ""),
    ("fast", "synthetic", 1_000_000, 4096, 2, ""),
    ("fast", "synthetic", 1_000_000, 4096, 2, "both-tp-trailing"),
    ("reference", "real", 0, 64, 0, ""),
]


#: numba's code target: this machine's CPU, or the portable x86-64 target the Docker image
#: compiles for (NUMBA_CPU_NAME=generic), so its cached kernels load on any host.
CPU_TARGETS = ("host", "generic")


def run_case(engine: str, kind: str, n: int, combos: int, repeats: int, cache: str, cpu: str = "host",
             rules: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    env["NUMBA_CACHE_DIR"] = cache
    if cpu != "host":
        env["NUMBA_CPU_NAME"] = cpu
    out = subprocess.run([sys.executable, "-m", "bench.case", engine, kind, str(n), str(combos), str(repeats),
                          rules], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "cpu_target": cpu}


def portable_target_cost(results: list[dict]) -> dict[str, float]:
    """Warm time on the generic target relative to the host CPU, per case (+0.05: 5 % slower)."""
    by_case: dict[str, dict[str, float]] = {}
    for r in results:
        if r["engine"] == "fast":
            case = f"{r['data']} {r['candles']:,} x {r['combinations']:,} ({r['rules']})"
            by_case.setdefault(case, {})[r["cpu_target"]] = r["warm_s"]
    return {case: round(t["generic"] / t["host"] - 1, 4) for case, t in by_case.items() if len(t) == 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", action="store_true", help="rewrite bench/results.json with this run's figures")
    args = parser.parse_args(argv)
    results = []
    for engine, kind, n, combos, repeats, rules in CASES:
        if kind == "real" and not REAL_15M.exists():
            print(f"skip {engine} {combos} on real candles: {REAL_15M} is absent")
            continue
        for cpu in CPU_TARGETS if engine == "fast" else ("host",):
            with tempfile.TemporaryDirectory() as cache:
                r = run_case(engine, kind, n, combos, repeats, cache, cpu, rules)
            results.append(r)
            print(f"{r['engine']:>9} {r['data']:>9} {r['rules']:>16} {r['candles']:>10,} x {r['combinations']:>5,} "
                  f"{cpu:>7}  "
                  f"cold {r['cold_s']:8.3f}s  warm {r['warm_s']:8.3f}s  "
                  f"{r['candle_strategies_per_s'] / 1e6:10.2f} M/s  rss {r['peak_rss_mb']:7.1f} MB", flush=True)
    portable = portable_target_cost(results)
    for case, cost in portable.items():
        print(f"portable CPU target (generic vs host), {case}: warm time {cost:+.1%}")
    host = [r for r in results if r["cpu_target"] == "host"]
    fast = next((r for r in host if r["engine"] == "fast" and r["data"] == "real"), None)
    ref = next((r for r in results if r["engine"] == "reference"), None)
    summary = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "processor": platform.processor() or platform.machine()},
               "cases": results}
    if portable:
        summary["portable_cpu_target_warm_time_change"] = portable
    big = [r for r in host if r["engine"] == "fast" and r["candles"] >= 1_000_000 and r["rules"] == "long, stop"]
    if fast and ref:
        summary["speedup_fast_over_reference"] = fast["candle_strategies_per_s"] / ref["candle_strategies_per_s"]
        print(f"speed-up over the reference engine, default grid on the same 40k candles, all cores: "
              f"{summary['speedup_fast_over_reference']:,.0f}x")
    if big and ref:
        summary["speedup_1m_cases_over_reference"] = (min(r["candle_strategies_per_s"] for r in big)
                                                      / ref["candle_strategies_per_s"])
        print(f"speed-up over the reference engine, slower of the 1M-candle cases: "
              f"{summary['speedup_1m_cases_over_reference']:,.0f}x")
    summary["validation"] = validation.run_all()
    if args.save:
        RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {RESULTS}")
    else:
        print(f"{RESULTS} left as it is (make bench SAVE=1 rewrites it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
