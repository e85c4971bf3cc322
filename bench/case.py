"""One benchmark case in its own process, so peak RSS and cold compilation are its own.

Usage: python -m bench.case ENGINE DATA N_CANDLES COMBOS REPEATS [RULES]

DATA is ``real`` (samples/), ``synthetic`` (N_CANDLES seeded candles) or ``realistic`` (the sweep
of bench/realistic.yaml on the real candles; COMBOS and RULES are then ignored). RULES names a set
of position rules in bench.cases.RULES (default: none). Prints one JSON line with, for the fast
engine:

* ``cold``: the whole run as ``backtest run`` does it, on the empty cache this process starts
  with: load, compile, sweep (with validation when the config has it), report; its parts, and
  the run folder's size;
* ``warm_s``: the best of REPEATS sweeps (``run_sweep``: grid expansion, indicators, simulation,
  every metric, the summary table) and its throughput;
* ``warm_run``: the whole run again, on the warm cache;
* the 1-minute load average at the start and at the end (the machine is shared: figures taken
  under load are slower).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _whole_run(cfg, spec, root: Path) -> dict:
    """``run_experiment`` as the CLI calls it, timed in parts."""
    from engine.experiment import RunObserver, run_experiment

    class Timings(RunObserver):
        compile_s = compile_cpu_s = cpu = 0.0
        compiles = 0

        def compile_started(self, what: str, why: str) -> None:
            self.cpu = time.process_time()

        def compile_finished(self, what: str, seconds: float) -> None:
            self.compile_s += seconds
            self.compile_cpu_s += time.process_time() - self.cpu
            self.compiles += 1

    obs = Timings()
    t, cpu = time.perf_counter(), time.process_time()
    res = run_experiment(cfg, spec, root, observer=obs)
    total, total_cpu = time.perf_counter() - t, time.process_time() - cpu
    timings = res.timings
    # CPU seconds are less disturbed by other load on a shared machine than wall seconds (compiling
    # uses one core; a sweep uses every core it may)
    return {"total_s": round(total, 4), "total_cpu_s": round(total_cpu, 4), "load_s": timings.get("load_s"),
            "compile_s": round(obs.compile_s, 4), "compile_cpu_s": round(obs.compile_cpu_s, 4),
            "compiles": obs.compiles, "sweep_s": timings.get("sweep_s"), "report_s": timings.get("report_s"),
            "folder_bytes": _folder_bytes(res.run_dir)}


def main() -> None:
    engine, kind, n, combos, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    rules = sys.argv[6] if len(sys.argv) > 6 else ""
    load_start = os.getloadavg()[0]
    t = time.perf_counter()
    from bench.cases import REALISTIC, data_spec, grid, peak_rss_mb, perp_candles
    from engine.config import load_config, parse_config
    from engine.data.source import load_data
    from engine.data.spec import DataSpec
    from engine.sweep import run_sweep

    imports = time.perf_counter() - t
    if kind == "realistic":
        cfg = load_config(REALISTIC)
        spec = DataSpec.from_config(cfg)
    else:
        cfg = parse_config(grid(combos, rules))
        spec = data_spec(kind, n)
    out: dict = {"engine": engine, "data": kind, "rules": "bench/realistic.yaml" if kind == "realistic"
                 else rules or "long, stop", "imports_s": round(imports, 3)}
    with tempfile.TemporaryDirectory() as tmp:
        if engine == "fast" and kind != "perp":
            out["cold"] = _whole_run(cfg, spec, Path(tmp) / "cold")
        data = perp_candles(n) if kind == "perp" else load_data(spec)
        t = time.perf_counter()
        res = run_sweep(cfg, data, engine=engine)  # the fast path has compiled everything by now
        first = time.perf_counter() - t
        warm = []
        for _ in range(repeats):
            t = time.perf_counter()
            run_sweep(cfg, data, engine=engine)
            warm.append(time.perf_counter() - t)
        best = min(warm) if warm else first
        if engine == "fast" and kind != "perp":
            out["warm_run"] = _whole_run(cfg, spec, Path(tmp) / "warm")
    out.update({
        "candles": len(data), "combinations": len(res.summary),
        "warm_s": round(best, 4), "candle_strategies_per_s": len(data) * len(res.summary) / best,
        "peak_rss_mb": round(peak_rss_mb(), 1), "best_sharpe": float(res.summary["sharpe"].max()),
        "load_avg_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
