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
from ..grid import StrategySweep
from ..indicators import Indicator
from ..execution import Execution
from ..result import RunResult
from ..timeutil import periods_per_year
from ..trade import Trade
from . import state as S
from .indicators import compute_full, new_state
from .specialize import kernel_for

#: Bars per time chunk. The indicator block for a chunk stays cache-resident
#: while every combination streams over it.
CHUNK = 4096


@dataclass(frozen=True)
class _Plan:
    specs: list[Indicator]
    slots: np.ndarray  # (m, 4) rows of the indicator block; unused slots point at a zero row
    sparams: np.ndarray  # (m, 4) signal parameters
    start_bar: np.ndarray  # (m,) first bar on which every indicator of the combination is valid
    stops: np.ndarray  # (m,) stop-loss fraction, NaN for none


def _plan(sweep: StrategySweep, indices: np.ndarray) -> _Plan:
    cls = sweep.strategy
    if len(cls.signal_params) > 4:
        raise ValueError(f"{cls.name}: the fast path takes at most 4 signal parameters")
    m = len(indices)
    names = sweep.param_names
    rows = zip(*(sweep.columns[p][indices].tolist() for p in names))
    index: dict[Indicator, int] = {}
    known: dict[tuple, tuple[list[int], int]] = {}
    slots = np.full((m, 4), -1, dtype=np.int64)
    start_bar = np.zeros(m, dtype=np.int64)
    for row, values in enumerate(rows):
        strat = cls.__new__(cls)  # values were validated when the grid was expanded
        strat.__dict__.update(zip(names, values))
        specs = strat.indicators()
        if specs not in known:
            if len(specs) > 4:
                raise ValueError(f"{cls.name}: the fast path takes at most 4 indicators")
            known[specs] = ([index.setdefault(sp, len(index)) for sp in specs],
                            max((sp.valid_from for sp in specs), default=0))
        ks, start_bar[row] = known[specs]
        slots[row, :len(ks)] = ks
    slots[slots < 0] = len(index)  # the zero row appended after the real indicators
    sparams = np.zeros((m, 4))
    for k, p in enumerate(cls.signal_params):
        sparams[:, k] = sweep.columns[p][indices]
    stops = np.ascontiguousarray(sweep.columns["stop_loss"][indices], dtype=np.float64)
    return _Plan(list(index), slots, sparams, start_bar, stops)


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


def _blocks(plan: _Plan, threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous combination blocks, one per thread, and which indicators each needs."""
    m, k = len(plan.stops), len(plan.specs)
    nb = max(1, min(threads, m))
    edges = (np.arange(nb + 1) * m) // nb
    need = np.zeros((nb, k), dtype=np.bool_)
    for b in range(nb):
        used = plan.slots[edges[b]:edges[b + 1]].ravel()
        need[b, used[used < k]] = True
    return edges[:-1].copy(), edges[1:].copy(), need


def sweep(sweep: StrategySweep, candles: Candles, execution: Execution, *, indices: np.ndarray | None = None,
          chunk: int = CHUNK, progress=None) -> dict[str, np.ndarray]:
    """Every metric for the combinations ``indices`` of ``sweep`` (default: all), as arrays."""
    import numba

    indices = np.arange(len(sweep)) if indices is None else np.asarray(indices, dtype=np.int64)
    plan = _plan(sweep, indices)
    m = len(indices)
    F, I = _init_state(m, execution.capital)
    kern = kernel_for(sweep.strategy)
    c = candles
    n = len(c)
    chunk = max(1, min(chunk, n))
    lo, hi, need = _blocks(plan, numba.get_num_threads())
    kinds = np.array([s.code for s in plan.specs], dtype=np.int64)
    periods = np.array([s.period for s in plan.specs], dtype=np.int64)
    ind_state = np.stack([new_state(plan.specs) for _ in range(len(lo))])
    bars = max(-(-n // SEGMENTS), SEGMENT_WORK // m)
    segment = chunk * max(1, -(-bars // chunk))
    for t0 in range(0, n, segment):
        t1 = min(n, t0 + segment)
        kern.sweep_segment(t0, t1, n, chunk, c.open, c.high, c.low, c.close, kinds, periods, ind_state, need, lo,
                           hi, plan.slots, plan.sparams, plan.start_bar, plan.stops, execution.slippage,
                           execution.commission, execution.fill == "next_open", F, I)
        if progress is not None:
            progress(m * (t1 - t0) / n)
    return finalize(F, I, n, candles, periods_per_year(candles.interval_ms), execution.capital)


def detail(sweep: StrategySweep, i: int, candles: Candles, execution: Execution) -> RunResult:
    """Re-simulate combination ``i`` recording its equity curve and trade list."""
    plan = _plan(sweep, np.array([i]))
    F, I = _init_state(1, execution.capital)
    kern = kernel_for(sweep.strategy)
    c = candles
    n = len(c)
    ind = np.vstack([compute_full(plan.specs, c.high, c.low, c.close), np.zeros((1, n))])
    eq = np.empty(n)
    tri = np.empty((n + 1, 3), dtype=np.int64)
    trf = np.empty((n + 1, 6))
    kern.simulate(0, 0, n, n, c.open, c.high, c.low, c.close, ind, plan.slots, plan.sparams, plan.start_bar,
                  plan.stops, execution.slippage, execution.commission, execution.fill == "next_open", F, I, True,
                  eq, tri, trf)
    t = c.open_time
    k = I[0, S.N_REC]
    trades = list(map(Trade, tri[:k, 0].tolist(), tri[:k, 1].tolist(), t[tri[:k, 0]].tolist(), t[tri[:k, 1]].tolist(),
                      *trf[:k].T.tolist(), ["stop" if r == S.REASON_STOP else "signal" for r in tri[:k, 2].tolist()]))
    if I[0, S.POS] == 1:
        qty, cost = F[0, S.QTY], F[0, S.ENTRY_COST]
        last = float(c.close[-1])
        pnl = qty * last - 0.0 - cost
        a = int(I[0, S.ENTRY_BAR])
        trades.append(Trade(a, n - 1, int(t[a]), int(t[-1]), float(F[0, S.ENTRY_PRICE]), last, float(qty),
                            float(F[0, S.ENTRY_FEE]), float(pnl), float(pnl / cost), "open"))
    metrics = _row(finalize(F, I, n, candles, periods_per_year(c.interval_ms), execution.capital), 0)
    return RunResult(np.concatenate([[execution.capital], eq]), trades, metrics)


def _row(cols: dict[str, np.ndarray], i: int) -> dict:
    out = {}
    for k, v in cols.items():
        x = v[i].item()
        out[k] = None if isinstance(x, float) and math.isnan(x) else x
    return out


def finalize(F: np.ndarray, I: np.ndarray, n: int, candles: Candles, ppy: float, capital: float) -> dict[str, np.ndarray]:
    """Metrics from the streamed accumulators; NaN marks 'no defined value'."""
    T = float(n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e0 = capital
        eT = F[:, S.PREV_E]
        mean = F[:, S.SUM_R] / T
        var = (F[:, S.SUM_R2] - F[:, S.SUM_R] * F[:, S.SUM_R] / T) / (T - 1.0) if n >= 2 else np.full(len(F), np.nan)
        sd = np.sqrt(np.maximum(var, 0.0))
        sharpe = np.where(sd > 0, mean / sd * math.sqrt(ppy), np.nan)
        down = F[:, S.SUM_DOWN2] / T
        sortino = np.where(down > 0, mean / np.sqrt(down) * math.sqrt(ppy), np.nan)
        growth = eT / e0
        cagr = growth ** (ppy / T) - 1.0
        max_dd = F[:, S.MAX_DD]
        dur = np.where(I[:, S.AT_PEAK] == 1, I[:, S.MAX_DUR], np.maximum(I[:, S.MAX_DUR], n - I[:, S.PEAK_I]))
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
            "buy_and_hold_return": np.full(len(F), candles.close[-1] / candles.close[0] - 1.0),
            "final_equity": eT.copy(),
        }
    for k in ("sharpe", "sortino", "cagr", "calmar", "profit_factor"):
        cols[k] = np.where(np.isfinite(cols[k]), cols[k], np.nan)
    return cols
