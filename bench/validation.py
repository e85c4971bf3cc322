"""Validation benchmarks (part of `make bench`): PBO by CSCV at S = 16.

Each case runs in a fresh process with an empty numba cache; results go into
bench/results.json under "validation".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PBO_CASES = [(4096, 16, 3), (65536, 16, 1)]  # combinations, blocks, warm repeats


def _case(args: list[str], cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-m", "bench.validation_case", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_all() -> list[dict]:
    results = []
    for combos, blocks, repeats in PBO_CASES:
        with tempfile.TemporaryDirectory() as cache:
            r = _case(["pbo", str(combos), str(blocks), str(repeats)], cache)
        results.append(r)
        print(f"      pbo  S={r['blocks']} {r['splits']:,} splits x {r['combinations']:>6,} combinations  "
              f"cold {r['cold_s']:8.3f}s  warm {r['warm_s']:8.3f}s  rss {r['peak_rss_mb']:7.1f} MB", flush=True)
    return results


def main() -> int:
    results = run_all()
    path = ROOT / "bench" / "results.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc["validation"] = results
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote bench/results.json (validation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
