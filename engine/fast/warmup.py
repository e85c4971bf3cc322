"""Compile (and disk-cache) the fast path for every built-in strategy.

``python -m engine.fast.warmup`` runs at image build time so containers do not
spend their first half-minute compiling. numba still recompiles if the CPU the
container lands on differs from the build machine's.
"""

from __future__ import annotations

import numpy as np

from ..config import parse_config
from ..strategies import REGISTRY
from ..synthetic import generate_candles
from .runner import detail, sweep


def warm_up() -> list[str]:
    candles = generate_candles(600, seed=1)
    done = []
    for name in sorted(REGISTRY):
        for fill in ("close", "next_open"):
            cfg = parse_config({"strategies": {name: {}}, "execution": {"fill": fill}})
            (sw,) = cfg.grid
            ex = cfg.execution
            sweep(sw, candles, ex, indices=np.arange(len(sw)))
            detail(sw, 0, candles, ex)
        done.append(name)
    return done


if __name__ == "__main__":
    print("compiled:", ", ".join(warm_up()))
