"""`make bench` (report part): what report.html adds to the default run, and the size of its folder.

Warm numba cache. Prints, as medians of several repetitions:
* the time to build and write report.html (+ plotly.min.js) inside the run-folder writer;
* the wall time of the whole default ``backtest run`` (what ``make run`` runs);
* the bytes of the default run folder, by part.
Writes nothing to the repository.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.config import DEFAULT_CONFIG, load_config
from engine.data.source import load_data
from engine.data.spec import DataSpec
from engine.report.run_folder import write_run_folder
from engine.sweep import prepare, run_sweep
from engine.validation.finish import finish

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 7


def _bytes(folder: Path) -> dict[str, int]:
    parts: dict[str, int] = {}
    for p in folder.rglob("*"):
        if p.is_file():
            key = p.relative_to(folder).parts[0]
            parts[key] = parts.get(key, 0) + p.stat().st_size
    return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


def main() -> int:
    cfg = load_config(DEFAULT_CONFIG)
    candles = load_data(DataSpec.from_config(cfg))
    prepare(cfg)
    res = run_sweep(cfg, candles)
    summary, outcome = res.summary, None
    if res.plan is not None:  # as `backtest run` does: the default config validates
        summary, outcome = finish(cfg, candles, summary, res.plan, res.validation)
    html, report = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(REPEATS):
            out = Path(tmp) / f"r{i}"
            out.mkdir()
            folder = write_run_folder(out, cfg, summary, candles, run_id=f"bench-{i}", outcome=outcome)
            html.append(folder.manifest["timings"]["report_html_s"])
            report.append(folder.manifest["timings"]["report_s"])
        sizes = _bytes(Path(tmp) / "r0")
        walls = []
        for i in range(REPEATS):
            done = subprocess.run([sys.executable, "-c", "import time, sys; t = time.perf_counter(); "
                                   "from backtest_cli import main; code = main(sys.argv[1:]); "
                                   "print(f'wall {time.perf_counter() - t:.4f}')",
                                   "run", "--out", str(Path(tmp) / "cli"), "--no-progress"],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            walls.append(float(done.stdout.strip().splitlines()[-1].split()[1]))
    print(f"report.html (payload + page + plotly.min.js copy), median of {REPEATS}: "
          f"{statistics.median(html) * 1000:.0f} ms (min {min(html) * 1000:.0f}, max {max(html) * 1000:.0f})")
    print(f"whole run folder writer, median of {REPEATS}: {statistics.median(report):.3f} s")
    print(f"default `backtest run` in-process wall time (imports excluded), median of {REPEATS}: "
          f"{statistics.median(walls):.3f} s (min {min(walls):.3f}, max {max(walls):.3f})")
    total = sum(sizes.values())
    print(f"default run folder: {total:,} bytes ({total / 1e6:.2f} MB)")
    for name, size in sizes.items():
        print(f"  {name:<16} {size:>12,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
