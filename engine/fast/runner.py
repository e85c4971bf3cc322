"""The pandas-facing side of the fast path: unwrap, call the kernels, re-wrap.

``sweep`` evaluates many combinations of one strategy in one streaming pass
over time chunks and returns every metric per combination; ``detail`` re-runs
one combination recording its equity curve and trades (used for the top-K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..candles import Candles
from ..execution import Execution
from ..grid import StrategySweep
from ..indicators import Indicator
from ..result import BLOCK_R, BLOCK_R2, POWER_SUMS, RunResult
from ..signals import DIRECTIONS, entry_mask, exit_masks
from ..timeutil import periods_per_year
from ..trade import EXIT_REASONS, Trade
from . import state as S
from .indicators import compute_full, encode, new_state
from .specialize import Features, kernel_for, param_layout

#: Bars per time chunk. The indicator block for a chunk stays cache-resident
#: while every combination streams over it.
CHUNK = 4096


@dataclass(frozen=True)
class _Plan:
    specs: list[Indicator]  # the distinct indicators, rows of the indicator block
    slots: np.ndarray  # (m, K) each combination's rows, in the strategy's declared order
    fparams: np.ndarray  # (m, nf) float parameters the rule reads
    iparams: np.ndarray  # (m, ni) integer and boolean ones
    start_bar: np.ndarray  # (m,) first bar on which every indicator of the combination is valid
    rules: np.ndarray  # (m, NR) stop, take-profit, trailing fractions (inf: off), size
    masks: np.ndarray  # (m, ND) entry / exit-long / exit-short masks, max_bars (NO_LIMIT: off)
    features: Features


def features(sweep: StrategySweep) -> Features:
    """The features the whole sweep uses (not a subset's, so sweep and detail share one kernel)."""
    col = sweep.columns
    return Features(short=bool(np.isin(col["direction"], ("short", "both")).any()),
                    take_profit=bool((~np.isnan(col["take_profit"])).any()),
                    trailing=bool((~np.isnan(col["trailing_stop"])).any()),
                    max_bars=bool((~np.isnan(col["max_bars"])).any()),
                    best_price=bool((~np.isnan(col["trailing_stop"])).any())
                    or "best_price" in sweep.strategy.binding().position_fields)


def _plan(sweep: StrategySweep, indices: np.ndarray, variant: Features | None = None) -> _Plan:
    cls = sweep.strategy
    binding = cls.binding()
    m = len(indices)
    index: dict[Indicator, int] = {}
    slots = np.zeros((m, len(binding.indicators)), dtype=np.int64)
    start_bar = np.zeros(m, dtype=np.int64)
    for k, name in enumerate(binding.indicators):
        template = cls.indicators[name]
        names = template.parameters
        # the distinct argument tuples among these combinations, resolved once each
        if names:
            cols = np.stack([sweep.columns[p][indices].astype(np.float64) for p in names], axis=1)
            uniq, inverse = np.unique(cols, axis=0, return_inverse=True)
        else:
            uniq, inverse = np.zeros((1, 0)), np.zeros(m, dtype=np.int64)
        rows, valid = np.empty(len(uniq), dtype=np.int64), np.empty(len(uniq), dtype=np.int64)
        for u, values in enumerate(uniq.tolist()):
            spec = template.resolve(dict(zip(names, values)))
            rows[u] = index.setdefault(spec, len(index))
            valid[u] = spec.valid_from
        slots[:, k] = rows[inverse.ravel()]
        start_bar = np.maximum(start_bar, valid[inverse.ravel()])
    layout = param_layout(cls)
    fparams = np.zeros((m, sum(s.array == "f" for s in layout)))
    iparams = np.zeros((m, sum(s.array == "i" for s in layout)), dtype=np.int64)
    for s in layout:
        (fparams if s.array == "f" else iparams)[:, s.column] = sweep.columns[s.name][indices]
    col = {k: v[indices] for k, v in sweep.columns.items()}
    rules = np.empty((m, S.NR))
    for c, name in ((S.R_STOP, "stop_loss"), (S.R_TAKE_PROFIT, "take_profit"), (S.R_TRAILING, "trailing_stop")):
        rules[:, c] = np.where(np.isnan(col[name]), np.inf, col[name])  # off: the level is out of reach
    rules[:, S.R_SIZE] = col["size"]
    masks = np.empty((m, S.ND), dtype=np.int64)
    for d, direction in enumerate(DIRECTIONS, start=1):
        rows = col["direction"] == direction
        masks[rows, S.D_ENTRY] = entry_mask(d)
        masks[rows, S.D_EXIT_LONG], masks[rows, S.D_EXIT_SHORT] = exit_masks(d)
    masks[:, S.D_MAX_BARS] = np.where(np.isnan(col["max_bars"]), S.NO_LIMIT,
                                      np.nan_to_num(col["max_bars"])).astype(np.int64)
    return _Plan(list(index), slots, fparams, iparams, start_bar, rules, masks, variant or features(sweep))


def _init_state(m: int, capital: float) -> tuple[np.ndarray, np.ndarray]:
    F = np.zeros((m, S.NF))
    I = np.zeros((m, S.NI), dtype=np.int64)
    F[:, S.CASH] = F[:, S.PREV_E] = F[:, S.PEAK] = capital
    F[:, S.BEST] = -np.inf
    F[:, S.WORST] = np.inf
    I[:, S.AT_PEAK] = 1
    return F, I


#: A sweep makes at most this many parallel calls (they drive the progress bar)…
SEGMENTS = 16
#: …each worth at least this many candle·strategies: a call costs a thread hand-off.
SEGMENT_WORK = 8_000_000


#: Large sweeps split into up to this many blocks per thread, of at least BLOCK_MIN
#: combinations, handed out one at a time: a thread slowed by other load on its core takes
#: fewer (with one block per thread the sweep waits for the slowest). Small sweeps keep one
#: block per thread: each block computes the indicators it needs, once per chunk.
BLOCKS_PER_THREAD, BLOCK_MIN = 4, 256


def _blocks(plan: _Plan, threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous combination blocks and which indicators each needs."""
    m, k = len(plan.start_bar), len(plan.specs)
    nb = max(1, min(m, threads * max(1, min(BLOCKS_PER_THREAD, m // (threads * BLOCK_MIN)))))
    edges = (np.arange(nb + 1) * m) // nb
    need = np.zeros((nb, k), dtype=np.bool_)
    for b in range(nb):
        need[b, plan.slots[edges[b]:edges[b + 1]].ravel()] = True
    return edges[:-1].copy(), edges[1:].copy(), need


def sweep(sweep: StrategySweep, candles: Candles, execution: Execution, *, indices: np.ndarray | None = None,
          chunk: int = CHUNK, progress=None, variant: Features | None = None, window: tuple[int, int] | None = None,
          test: bool = False, moments: bool = False, block_edges: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every metric for the combinations ``indices`` of ``sweep`` (default: all), as arrays.

    ``variant`` picks the compiled kernel (default: the features the sweep uses); any
    variant with at least those features gives the same results.

    Research validation (docs/semantics.md, "Windows"): ``window = (a, b)`` runs on bars
    [a, b) (indicators warm from bar 0), ``test`` makes it a test window. ``moments`` adds
    ``POWER_SUMS`` (m, 4): Σr, Σr², Σr³, Σr⁴; ``block_edges`` (S + 1 edges over the window's
    returns) adds ``BLOCK_R`` and ``BLOCK_R2`` (m, S): Σr and Σr² per block, the differences
    of the running sums at segment ends placed on the block edges (no extra work per bar)."""
    import numba

    indices = np.arange(len(sweep)) if indices is None else np.asarray(indices, dtype=np.int64)
    plan = _plan(sweep, indices, variant)
    m = len(indices)
    F, I = _init_state(m, execution.capital)
    kern = kernel_for(sweep.strategy, plan.features._replace(moments=moments or plan.features.moments,
                                                             window_end=test))
    c = candles
    a, n = (0, len(c)) if window is None else (int(window[0]), int(window[1]))
    chunk = max(1, min(chunk, n - a))
    lo, hi, need = _blocks(plan, numba.get_num_threads())
    e = encode(plan.specs)
    ind_state = np.stack([new_state(plan.specs) for _ in range(len(lo))])
    rings = np.zeros((len(lo), e.ring_size), dtype=np.int64)
    bars = max(-(-(n - a) // SEGMENTS), SEGMENT_WORK // m)
    segment = chunk * max(1, -(-bars // chunk))
    cuts = set(range(a, n, segment)) | {n}
    if block_edges is not None:
        block_ends = {a + int(x): k for k, x in enumerate(block_edges)}
        cuts |= set(block_ends)
        snaps = np.zeros((len(block_edges), 2, m))
    cuts = sorted(cuts)

    def call(t0, t1, blocks_hi):
        kern.sweep_segment(t0, t1, n, chunk, c.open, c.high, c.low, c.close, c.volume, e.kinds, e.periods,
                           e.mult, e.ring_off, ind_state, rings, need, lo, blocks_hi, plan.slots, plan.fparams,
                           plan.iparams, plan.start_bar, plan.rules, plan.masks, execution.slippage,
                           execution.commission, execution.next_open, F, I)

    previous_chunksize = numba.set_parallel_chunksize(1)  # blocks one at a time, to whichever thread is free
    try:
        # Indicators only over [0, a): no combination simulates there (empty blocks), so they are warm at a.
        for t0 in range(0, a, max(segment, chunk)):
            call(t0, min(a, t0 + max(segment, chunk)), lo)
        for t0, t1 in zip(cuts[:-1], cuts[1:]):
            call(t0, t1, hi)
            if block_edges is not None and t1 in block_ends:
                snaps[block_ends[t1], 0], snaps[block_ends[t1], 1] = F[:, S.SUM_R], F[:, S.SUM_R2]
            if progress is not None:
                progress(m * (t1 - t0) / (n - a))
    finally:
        numba.set_parallel_chunksize(previous_chunksize)
    cols = finalize(F, I, (a, n), candles, periods_per_year(candles.interval_ms), execution.capital)
    if moments:
        cols[POWER_SUMS] = F[:, [S.SUM_R, S.SUM_R2, S.SUM_R3, S.SUM_R4]].copy()
    if block_edges is not None:
        cols[BLOCK_R] = np.diff(snaps[:, 0], axis=0).T.copy()
        cols[BLOCK_R2] = np.diff(snaps[:, 1], axis=0).T.copy()
    return cols


def detail(sweep: StrategySweep, i: int, candles: Candles, execution: Execution, *,
           variant: Features | None = None, window: tuple[int, int] | None = None, test: bool = False) -> RunResult:
    """Re-simulate combination ``i`` recording its equity curve and trade list (on bars
    [a, b) of ``window``, a test window if ``test``)."""
    plan = _plan(sweep, np.array([i]), variant)
    F, I = _init_state(1, execution.capital)
    kern = kernel_for(sweep.strategy, plan.features._replace(window_end=test))
    c = candles
    a, n = (0, len(c)) if window is None else (int(window[0]), int(window[1]))
    # the kernel reads bar t's indicators at column t - t0 (t0 = a)
    ind = np.ascontiguousarray(compute_full(plan.specs, c.high, c.low, c.close)[:, a:])
    eq = np.empty(len(c))
    tri = np.empty((n - a + 1, 4), dtype=np.int64)
    trf = np.empty((n - a + 1, 6))
    kern.simulate(0, a, n, n, c.open, c.high, c.low, c.close, c.volume, ind, plan.slots, plan.fparams, plan.iparams,
                  plan.start_bar, plan.rules, plan.masks, execution.slippage, execution.commission,
                  execution.next_open, F, I, True, eq, tri, trf)
    t = c.open_time
    k = I[0, S.N_REC]
    trades = list(map(Trade, tri[:k, 0].tolist(), tri[:k, 1].tolist(), t[tri[:k, 0]].tolist(), t[tri[:k, 1]].tolist(),
                      *trf[:k].T.tolist(), [EXIT_REASONS[r] for r in tri[:k, 2].tolist()],
                      ["long" if d == 1 else "short" for d in tri[:k, 3].tolist()]))
    side = int(I[0, S.POS])
    if side != 0:
        qty, cost, entry_price, entry_fee = F[0, S.QTY], F[0, S.ENTRY_COST], F[0, S.ENTRY_PRICE], F[0, S.ENTRY_FEE]
        last = float(c.close[n - 1])
        # marked at the last close, no exit fee (the same operations as the reference)
        pnl = qty * last - 0.0 - cost if side == 1 else qty * (entry_price - last) - entry_fee - 0.0
        e = int(I[0, S.ENTRY_BAR])
        trades.append(Trade(e, n - 1, int(t[e]), int(t[n - 1]), float(entry_price), last, float(qty),
                            float(entry_fee), float(pnl), float(pnl / cost), "open", "long" if side == 1 else "short"))
    metrics = _row(finalize(F, I, (a, n), candles, periods_per_year(c.interval_ms), execution.capital), 0)
    return RunResult(np.concatenate([[execution.capital], eq[a:n]]), trades, metrics)


def _row(cols: dict[str, np.ndarray], i: int) -> dict:
    out = {}
    for k, v in cols.items():
        x = v[i].item()
        out[k] = None if isinstance(x, float) and math.isnan(x) else x
    return out


def finalize(F: np.ndarray, I: np.ndarray, window: tuple[int, int], candles: Candles, ppy: float,
             capital: float) -> dict[str, np.ndarray]:
    """Metrics from the streamed accumulators of a run on bars [a, b); NaN marks 'no defined value'."""
    a, b = window
    n = b - a
    T = float(n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e0 = capital
        eT = F[:, S.PREV_E]
        busted = eT <= 0.0  # a short's bust: returns on non-positive equity mean nothing
        mean = F[:, S.SUM_R] / T
        var = (F[:, S.SUM_R2] - F[:, S.SUM_R] * F[:, S.SUM_R] / T) / (T - 1.0) if n >= 2 else np.full(len(F), np.nan)
        sd = np.sqrt(np.maximum(var, 0.0))
        sharpe = np.where((sd > 0) & ~busted, mean / sd * math.sqrt(ppy), np.nan)
        down = F[:, S.SUM_DOWN2] / T
        sortino = np.where((down > 0) & ~busted, mean / np.sqrt(down) * math.sqrt(ppy), np.nan)
        growth = eT / e0
        cagr = np.where(busted, np.nan, growth ** (ppy / T) - 1.0)
        max_dd = F[:, S.MAX_DD]
        dur = np.where(I[:, S.AT_PEAK] == 1, I[:, S.MAX_DUR], np.maximum(I[:, S.MAX_DUR], b - I[:, S.PEAK_I]))
        nc = I[:, S.N_CLOSED].astype(np.float64)
        has = nc > 0
        loss = F[:, S.LOSS_PNL]
        cols = {
            "sharpe": sharpe,
            "sortino": sortino,
            "total_return": growth - 1.0,
            "pnl": eT - e0,
            "cagr": cagr,
            "calmar": np.where(max_dd > 0, cagr / max_dd, np.nan),
            "max_drawdown": max_dd,
            "max_drawdown_abs": F[:, S.MAX_DD_ABS],
            "max_drawdown_duration": dur.astype(np.int64),
            "n_trades": I[:, S.N_CLOSED].copy(),
            "win_rate": np.where(has, I[:, S.N_WINS] / nc, np.nan),
            "profit_factor": np.where(loss < 0, F[:, S.WIN_PNL] / -loss, np.nan),
            "avg_trade_return": np.where(has, F[:, S.RET_SUM] / nc, np.nan),
            "best_trade": np.where(has, F[:, S.BEST], np.nan),
            "worst_trade": np.where(has, F[:, S.WORST], np.nan),
            "expectancy": np.where(has, F[:, S.PNL_SUM] / nc, np.nan),
            "exposure": I[:, S.EXPO] / T,
            "avg_bars_held": np.where(has, I[:, S.HELD_SUM] / nc, np.nan),
            "total_fees": F[:, S.FEES].copy(),
            "buy_and_hold_return": np.full(len(F), candles.close[b - 1] / candles.close[a] - 1.0),
            "final_equity": eT.copy(),
        }
    for k in ("sharpe", "sortino", "cagr", "calmar", "profit_factor"):
        cols[k] = np.where(np.isfinite(cols[k]), cols[k], np.nan)
    return cols
