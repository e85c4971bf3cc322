"""Deterministic synthetic perp series beside the synthetic trade candles: mark-price klines
that track the trade price with a small basis and an occasional deeper mark wick, and funding
every 8 hours for the first half of the range, then every 4 hours (an interval change, as real
symbols have). Same seed, same series: the README's perp example runs offline on these."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..candles import Candles
from .funding import HOUR_MS
from .series import PerpData

#: one bar in this many has a mark wick below (or above) the trade range
WICK_EVERY = 997


def with_perp(candles: Candles, seed: int) -> Candles:
    """``candles`` carrying synthetic mark klines and funding (``Candles.perp``)."""
    n = len(candles)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x9E3779B9])))
    basis = 1.0 + rng.normal(0.0, 0.0002, n)  # mark = trade × (1 + a few bp)
    mo = np.round(candles.open * basis, 2)
    mc = np.round(candles.close * basis, 2)
    mh = np.maximum(np.round(candles.high * basis, 2), np.maximum(mo, mc))
    ml = np.minimum(np.round(candles.low * basis, 2), np.minimum(mo, mc))
    wick = np.arange(n) % WICK_EVERY == WICK_EVERY // 2
    down = rng.random(n) < 0.5
    depth = 1.0 + rng.uniform(0.005, 0.02, n)
    ml = np.where(wick & down, np.round(ml / depth, 2), ml)
    mh = np.where(wick & ~down, np.round(mh * depth, 2), mh)
    t0, t1 = int(candles.open_time[0]), int(candles.open_time[-1]) + candles.interval_ms
    mid = t0 + (t1 - t0) // 2
    first = -(-t0 // (8 * HOUR_MS)) * 8 * HOUR_MS
    times8 = np.arange(first, mid, 8 * HOUR_MS, dtype=np.int64)
    start4 = times8[-1] + 4 * HOUR_MS if len(times8) else first
    times4 = np.arange(start4, t1, 4 * HOUR_MS, dtype=np.int64)
    times = np.concatenate([times8, times4])
    hours = np.concatenate([np.full(len(times8), 8), np.full(len(times4), 4)]).astype(np.int64)
    k = np.arange(len(times))
    rate = np.round(0.0001 + 0.00025 * np.sin(k / 9.0) + rng.normal(0.0, 0.00005, len(times)), 8)
    bar = np.minimum((times - t0) // candles.interval_ms, n - 1)
    mark = np.round(candles.open[bar] * basis[bar], 2)
    perp = PerpData(mo, mh, ml, times, rate, mark, hours)
    return dataclasses.replace(candles, perp=perp, source=candles.source + " perp")
