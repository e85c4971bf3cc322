"""`make bench` (report part): what writing the report costs after a warm sweep, and the run folder's size.

Warm numba cache. For the default config and for the realistic sweep (bench/realistic.yaml: the
four built-ins, ``direction: both``, take-profit, trailing stop, two sizes, full validation: 528
combinations on the real 15m sample), prints medians of several repetitions of:

* the warm sweep (the pipeline's ``sweep`` and ``validate`` stages);
* the report: ranking, the top-K detail runs and the run folder writer (what ``backtest run``
  prints as "report: done in"), against the target max(1 s, the sweep's time);
* report.html alone (payload, page, plotly.min.js copy);
* the run folder's bytes, by part, against the targets (default ≤ 8 MB, 528 combinations ≤ 20 MB);
* the wall time of the whole default ``backtest run`` (what ``make run`` runs).

Writes nothing to the repository.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cases import REALISTIC
from engine.config import DEFAULT_CONFIG, load_config
from engine.data.source import load_data
from engine.data.spec import DataSpec
from engine.grid import build_grid
from engine.pipeline import RunInputs, run_stages, stages
from engine.report.run_folder import write_run_folder
from engine.sweep import prepare

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5

def _bytes(folder: Path) -> dict[str, int]:
    parts: dict[str, int] = {}
    for p in folder.rglob("*"):
        if p.is_file():
            key = p.relative_to(folder).parts[0]
            parts[key] = parts.get(key, 0) + p.stat().st_size
    return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


def case(name: str, cfg, limit_mb: float, tmp: Path) -> None:
    grid = build_grid(cfg)
    candles = load_data(DataSpec.from_config(cfg))
    prepare(cfg, grid=grid)
    inputs = RunInputs(cfg, grid, candles)
    sweep_stages, report_stages = stages("sweep", "validate"), stages("rank", "detail")
    swept = run_stages(inputs, sweep_stages)  # warms every kernel of the sweep and the figures
    sweeps, reports, htmls = [], [], []
    for i in range(REPEATS):
        t0 = time.perf_counter()
        swept = run_stages(inputs, sweep_stages)
        t1 = time.perf_counter()
        results = run_stages(inputs, report_stages, state=swept).results()
        out = tmp / f"{name}-{i}"
        folder = write_run_folder(out, results, run_id=f"bench-{i}")
        t2 = time.perf_counter()
        sweeps.append(t1 - t0)
        reports.append(t2 - t1)
        htmls.append(folder.manifest["timings"]["report_html_s"])
    sizes = _bytes(tmp / f"{name}-0")
    sweep_s, report_s = statistics.median(sweeps), statistics.median(reports)
    target = max(1.0, sweep_s)
    total = sum(sizes.values())
    print(f"{name}: {len(grid):,} combinations on {len(candles):,} candles, median of {REPEATS}")
    print(f"  warm sweep (sweep + validation figures) {sweep_s:.3f} s")
    print(f"  report (rank, top-{cfg.report.top_k} detail runs, run folder) {report_s:.3f} s "
          f"(target max(1 s, sweep) = {target:.3f} s: {'met' if report_s <= target else 'MISSED'}); "
          f"report.html alone {statistics.median(htmls) * 1000:.0f} ms")
    print(f"  run folder {total:,} bytes ({total / 1e6:.2f} MB; target <= {limit_mb:g} MB: "
          f"{'met' if total <= limit_mb * 1e6 else 'MISSED'})")
    for part, size in sizes.items():
        print(f"    {part:<16} {size:>12,}")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        case("default", load_config(DEFAULT_CONFIG), 8, Path(tmp))
        case("realistic", load_config(REALISTIC), 20, Path(tmp))
        walls = []
        for i in range(REPEATS):
            done = subprocess.run([sys.executable, "-c", "import time, sys; t = time.perf_counter(); "
                                   "from backtest_cli import main; code = main(sys.argv[1:]); "
                                   "print(f'wall {time.perf_counter() - t:.4f}')",
                                   "run", "--out", str(Path(tmp) / "cli"), "--no-progress"],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            walls.append(float(done.stdout.strip().splitlines()[-1].split()[1]))
    print(f"default `backtest run` in-process wall time (imports excluded), median of {REPEATS}: "
          f"{statistics.median(walls):.3f} s (min {min(walls):.3f}, max {max(walls):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
