"""Compile (and disk-cache) the fast path for every built-in strategy and indicator.

``python -m engine.warmup`` runs at image build time so containers compile nothing at run
time: the loop (one for every strategy), every function of each built-in strategy's rule unit
(its rule, the entry scans and hold loops of every direction, with and without the validation
moment sums), both chunk functions of every built-in indicator definition, and the CSCV passes a
``validation`` section runs (each built-in goes once through that whole path: sweep, figures, top
combinations on the in-sample bars). numba compiles the loop once per array layout: warmup feeds
both layouts candles arrive in, the synthetic generator's and the one every loader (CSV, Parquet,
awswrangler) produces through ``Candles.from_frame``. numba also keys its cache on the CPU; the
image compiles for a portable target (``NUMBA_CPU_NAME=generic``) so a host with another CPU finds
the code too. A user strategy or indicator compiles its own small unit on first use (about a
second), never the loop.
"""

from __future__ import annotations

import sys

import numpy as np

from .candles import Candles
from .config import parse_config
from .data.synthetic import generate_candles
from .fast import rule_unit, units
from .fast.plan import plan
from .fast.runner import detail, sweep
from .grid import build_grid
from .indicators import DEFINITIONS
from .pipeline import RunInputs, run_pipeline
from .strategies import ALIASES, get_strategy

#: every window kind and the CSCV passes, on the warm-up's 600 bars
VALIDATION = {"holdout": 0.3, "walk_forward": {"train": 200, "test": 100}, "cscv": {"blocks": 4}}


def warm_up(strategies: list[str] | None = None) -> list[str]:
    """Compile everything (the image's build), or only what ``strategies`` need on spot data: the loop,
    their rule units' spot functions and the indicator definitions their default combination reads
    (the tests' warmup)."""
    synthetic = generate_candles(600, seed=1)
    loaded = Candles.from_frame(synthetic.to_frame(), interval_ms=synthetic.interval_ms)
    names = sorted(ALIASES) if strategies is None else sorted(get_strategy(n).name for n in strategies)
    definitions = DEFINITIONS if strategies is None else _definitions(names)
    for d in definitions:
        units.indicator_functions(d, ["chunk1", "chunk4"])
    loops = [n for n, (_, _, _, perp) in rule_unit.LOOPS.items() if strategies is None or not perp]
    done = []
    for name in names:
        units.rule_functions(get_strategy(name), ["bar", *loops])
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


def _definitions(names: list[str]) -> list:
    """The indicator definitions (their inputs included) of each strategy's default combination."""
    found = {}
    for name in names:
        (sw,) = build_grid(parse_config({"strategies": {name: {}}}))
        for node in plan(sw, np.arange(1)).nodes:
            found[id(node.definition)] = node.definition
    return list(found.values())


if __name__ == "__main__":
    print("compiled:", ", ".join(warm_up(sys.argv[1:] or None)))
