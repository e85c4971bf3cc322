"""`make bench`: compile, sweep and report times, folder sizes, throughput and memory of the fast
path, against the reference engine.

Each case runs in a fresh process with an EMPTY numba cache (bench/case.py): *cold* is a whole
run on a fresh machine (load, compile, sweep, report), *warm* the best of the following sweeps,
*warm run* a whole run again with the cache warm. The fast cases run twice: compiled for this
machine's CPU and for the portable target the Docker image uses (NUMBA_CPU_NAME=generic); the
difference is what portability costs. The cases are the seed's grids and the realistic research
sweep of bench/realistic.yaml. Prints a table; rewrites the committed bench/results.json (with the
CPU model, its flags and the load average during each case) only with ``--save``
(``make bench SAVE=1``).
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
    ("fast", "perp", 1_000_000, 4096, 2, "perp-3x"),  # against the spot case on the same grid: >= 80%
    ("fast", "realistic", 0, 0, 5, ""),  # bench/realistic.yaml: 528 combinations, validated
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


def machine() -> dict:
    """What the figures were measured on: the CPU model and flags (from /proc/cpuinfo), the CPU numba
    compiles for, the CPUs this process may use."""
    import llvmlite.binding as llvm
    import numba

    from engine.cpus import available_cpus

    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return {"cpu_model": info.get("model name") or platform.processor() or platform.machine(),
            "cpu_flags": info.get("flags", ""), "llvm_host_cpu": llvm.get_host_cpu_name(), "cpus": os.cpu_count(),
            "available_cpus": available_cpus(), "python": platform.python_version(), "numba": numba.__version__}


def case_name(r: dict) -> str:
    if r["data"] == "realistic":
        return f"realistic {r['candles']:,} x {r['combinations']:,}"
    return f"{r['data']} {r['candles']:,} x {r['combinations']:,} ({r['rules']})"


def line(r: dict) -> str:
    text = (f"{r['engine']:>9} {case_name(r):<48} {r['cpu_target']:>7}  warm {r['warm_s']:8.3f}s "
            f"{r['candle_strategies_per_s'] / 1e6:9.1f} M/s  rss {r['peak_rss_mb']:6.0f} MB  "
            f"load {r['load_avg_1m'][0]:.1f}-{r['load_avg_1m'][1]:.1f}")
    for key in ("cold", "warm_run"):
        if key in r:
            c = r[key]
            text += (f"\n{'':>12}{key:<9} {c['total_s']:7.2f}s in all ({c['total_cpu_s']:.2f}s CPU): compile "
                     f"{c['compile_s']:6.2f}s ({c['compile_cpu_s']:.2f}s CPU, {c['compiles']} compiles), sweep "
                     f"{c['sweep_s']:6.2f}s, report {c['report_s']:6.2f}s, folder {c['folder_bytes'] / 1e6:7.2f} MB")
    return text


def portable_target_cost(results: list[dict]) -> dict[str, float]:
    """Warm time on the generic target relative to the host CPU, per case (+0.05: 5 % slower)."""
    by_case: dict[str, dict[str, float]] = {}
    for r in results:
        if r["engine"] == "fast":
            by_case.setdefault(case_name(r), {})[r["cpu_target"]] = r["warm_s"]
    return {case: round(t["generic"] / t["host"] - 1, 4) for case, t in by_case.items() if len(t) == 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", action="store_true", help="rewrite bench/results.json with this run's figures")
    args = parser.parse_args(argv)
    results = []
    for engine, kind, n, combos, repeats, rules in CASES:
        if kind in ("real", "realistic") and not REAL_15M.exists():
            print(f"skip {engine} {kind}: {REAL_15M} is absent")
            continue
        for cpu in CPU_TARGETS if engine == "fast" else ("host",):
            with tempfile.TemporaryDirectory() as cache:
                r = run_case(engine, kind, n, combos, repeats, cache, cpu, rules)
            results.append(r)
            print(line(r), flush=True)
    portable = portable_target_cost(results)
    for case, cost in portable.items():
        print(f"portable CPU target (generic vs host), {case}: warm time {cost:+.1%}")
    host = [r for r in results if r["cpu_target"] == "host"]
    fast = next((r for r in host if r["engine"] == "fast" and r["data"] == "real"), None)
    ref = next((r for r in results if r["engine"] == "reference"), None)
    summary = {"machine": machine(), "cases": results}
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
    cli = next((r for r in host if r["combinations"] == 4096 and r["rules"] == "long, stop"), None)
    if cli and "warm_run" in cli:
        ratio = cli["warm_run"]["total_s"] / cli["warm_s"]
        summary["cli_over_kernel_4096x1m"] = round(ratio, 3)
        print(f"4,096 x 1M through `backtest run` (load, sweep, report) against the kernel's warm sweep: "
              f"{cli['warm_run']['total_s']:.2f}s / {cli['warm_s']:.2f}s = {ratio:.2f}x (target <= 1.3x)")
    summary["validation"] = validation.run_all()
    if args.save:
        RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {RESULTS}")
    else:
        print(f"{RESULTS} left as it is (make bench SAVE=1 rewrites it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
