"""Compile (and disk-cache) the fast path for every built-in strategy.

``python -m engine.fast.warmup`` runs at image build time so containers do not
spend their first half-minute compiling. Each strategy gets two kernels: the
default one (long only, stop-loss) and the one with every feature (both
directions, take-profit, trailing stop, time limit). A sweep using another mix
compiles its own kernel on first use. numba still recompiles if the CPU the
container lands on differs from the build machine's.
"""

from __future__ import annotations

import numpy as np

from ..config import parse_config
from ..strategies import REGISTRY
from ..synthetic import generate_candles
from .runner import detail, sweep

VARIANTS = (
    {},
    {"portfolio": {"direction": "both"}, "risk": {"take_profit": 0.05, "trailing_stop": 0.02, "max_bars": 100}},
)


def warm_up() -> list[str]:
    candles = generate_candles(600, seed=1)
    done = []
    for name in sorted(REGISTRY):
        for variant in VARIANTS:
            cfg = parse_config({"strategies": {name: {}}, **variant})
            (sw,) = cfg.grid
            sweep(sw, candles, cfg.execution, indices=np.arange(len(sw)))
            detail(sw, 0, candles, cfg.execution)
        done.append(name)
    return done


if __name__ == "__main__":
    print("compiled:", ", ".join(warm_up()))
