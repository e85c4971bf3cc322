"""Compile (and disk-cache) the fast path for every built-in strategy.

``python -m engine.warmup`` runs at image build time so containers do not
spend their first seconds compiling. Each strategy gets its default kernel (long
only, stop-loss); a sweep that uses other position rules (shorts, take-profit,
trailing stop, time limit) compiles the kernel for its mix once (~10 s; with 32
mixes, warming them all would cost more than it saves). One kernel serves both fill
modes. A ``validation`` section (the default config has one) runs the kernels with the
moment sums and the test-window ending compiled in, and the CSCV passes; warmup runs each
built-in once through that whole path too (sweep, figures, top combinations on the
in-sample bars). numba compiles one kernel per array layout: warmup feeds both layouts
candles arrive in, the synthetic generator's and the one
every loader (CSV, Parquet, awswrangler) produces through ``Candles.from_frame``.
numba also keys its cache on the CPU; the image compiles for a portable target
(``NUMBA_CPU_NAME=generic``) so a host with another CPU finds the kernels too.
"""

from __future__ import annotations

import numpy as np

from .candles import Candles
from .config import parse_config
from .fast.runner import detail, sweep
from .grid import build_grid
from .pipeline import RunInputs, run_pipeline
from .strategies import ALIASES
from .data.synthetic import generate_candles

#: every window kind and the CSCV passes, on the warm-up's 600 bars
VALIDATION = {"holdout": 0.3, "walk_forward": {"train": 200, "test": 100}, "cscv": {"blocks": 4}}


def warm_up() -> list[str]:
    synthetic = generate_candles(600, seed=1)
    loaded = Candles.from_frame(synthetic.to_frame(), interval_ms=synthetic.interval_ms)
    done = []
    for name in sorted(ALIASES):
        cfg = parse_config({"strategies": {name: {}}, "risk": {"stop_loss": 0.02}})
        (sw,) = build_grid(cfg)
        ex = cfg.execution
        validated = parse_config({"strategies": {name: {}}, "risk": {"stop_loss": 0.02}, "validation": VALIDATION})
        vgrid = build_grid(validated)
        for candles in (synthetic, loaded):
            sweep(sw, candles, ex, indices=np.arange(len(sw)))
            detail(sw, 0, candles, ex)
            run_pipeline(RunInputs(validated, vgrid, candles, workers=1))  # sweep, figures, top combinations
        done.append(name)
    return done


if __name__ == "__main__":
    print("compiled:", ", ".join(warm_up()))
