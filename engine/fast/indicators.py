"""Chunked indicator kernels with carried state.

Same arithmetic, in the same order, as the incremental reference in
``engine.indicators``; see that module for the definitions. Indicators are
computed one time-chunk at a time so memory stays O(chunk × indicators) however
long the series is, and each distinct indicator is computed once per run.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..indicators import KINDS, Indicator

SMA, EMA, RSI, HIGHEST, LOWEST = range(len(KINDS))
#: state columns: 0 running sum / ema / avg gain, 1 avg loss, 2 previous close, 3 extreme value, 4 its index
STATE_COLS = 5


def new_state(specs: list[Indicator]) -> np.ndarray:
    state = np.zeros((len(specs), STATE_COLS))
    state[:, 4] = -1.0
    return state


@njit(cache=True, nogil=True)
def _rsi_value(gain, loss):
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


@njit(cache=True, nogil=True)
def indicator_chunk(kind, n, st, high, low, close, t0, t1, out):
    """Advance one indicator over bars [t0, t1) into ``out[:t1-t0]``; ``st`` carries its state."""
    nan = np.nan
    if kind == SMA:
        s = st[0]
        for t in range(t0, t1):
            s += close[t]
            if t >= n:
                s -= close[t - n]
            out[t - t0] = s / n if t >= n - 1 else nan
        st[0] = s
    elif kind == EMA:
        alpha = 2.0 / (n + 1.0)
        e = st[0]
        for t in range(t0, t1):
            if t == 0:
                e = close[0]
            else:
                e = alpha * close[t] + (1.0 - alpha) * e
            out[t - t0] = e if t >= n - 1 else nan
        st[0] = e
    elif kind == RSI:
        gain, loss = st[0], st[1]
        for t in range(t0, t1):
            if t > 0:
                change = close[t] - close[t - 1]
                g = change if change > 0.0 else 0.0
                ls = -change if change < 0.0 else 0.0
                if t < n:
                    gain += g
                    loss += ls
                elif t == n:
                    gain = (gain + g) / n
                    loss = (loss + ls) / n
                else:
                    gain = (gain * (n - 1) + g) / n
                    loss = (loss * (n - 1) + ls) / n
            out[t - t0] = _rsi_value(gain, loss) if t >= n else nan
        st[0], st[1] = gain, loss
    else:
        # Rolling extreme of the n bars before t: keep the current extreme and its
        # index, and rescan only when that index leaves the window (amortised O(1)).
        src = high if kind == HIGHEST else low
        sign = 1.0 if kind == HIGHEST else -1.0
        best, best_i = st[3], int(st[4])
        for t in range(t0, t1):
            if t < n:
                out[t - t0] = nan
                continue
            lo_i = t - n
            if best_i < lo_i:
                best_i = lo_i
                best = src[lo_i] * sign
                for i in range(lo_i + 1, t):
                    if src[i] * sign >= best:
                        best, best_i = src[i] * sign, i
            else:
                v = src[t - 1] * sign
                if v >= best:
                    best, best_i = v, t - 1
            out[t - t0] = best * sign
        st[3], st[4] = best, best_i


@njit(cache=True, nogil=True)
def _sma4(q, periods, state, close, t0, t1, out):
    """SMAs ``q[0..3]`` over bars [t0, t1), with the same operations per value as
    ``indicator_chunk``. One SMA alone is bound by the latency of its add-subtract
    chain; four in one loop overlap their chains and are left bound by the divisions
    (measured: four take 3x the time of one, not 4x)."""
    q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
    n0, n1, n2, n3 = periods[q0], periods[q1], periods[q2], periods[q3]
    s0, s1, s2, s3 = state[q0, 0], state[q1, 0], state[q2, 0], state[q3, 0]
    o0, o1, o2, o3 = out[q0], out[q1], out[q2], out[q3]
    nan = np.nan
    for t in range(t0, t1):
        x = close[t]
        s0 += x
        s1 += x
        s2 += x
        s3 += x
        if t >= n0:
            s0 -= close[t - n0]
        if t >= n1:
            s1 -= close[t - n1]
        if t >= n2:
            s2 -= close[t - n2]
        if t >= n3:
            s3 -= close[t - n3]
        o0[t - t0] = s0 / n0 if t >= n0 - 1 else nan
        o1[t - t0] = s1 / n1 if t >= n1 - 1 else nan
        o2[t - t0] = s2 / n2 if t >= n2 - 1 else nan
        o3[t - t0] = s3 / n3 if t >= n3 - 1 else nan
    state[q0, 0], state[q1, 0], state[q2, 0], state[q3, 0] = s0, s1, s2, s3


# Serial on purpose: the sweep calls it inside each thread's own block, and detail
# runs call it for one combination, where a parallel region would wake (and leave
# spinning) the thread pool for a few microseconds of work.
@njit(cache=True, nogil=True)
def compute_chunk(kinds, periods, state, need, high, low, close, t0, t1, out):
    """Fill ``out[k, :t1-t0]`` for each indicator k with ``need[k]`` over bars [t0, t1), advancing ``state``."""
    group = np.empty(4, dtype=np.int64)
    g = 0
    for k in range(kinds.shape[0]):
        if not need[k]:
            continue
        if kinds[k] == SMA:
            group[g] = k
            g += 1
            if g == 4:
                _sma4(group, periods, state, close, t0, t1, out)
                g = 0
        else:
            indicator_chunk(kinds[k], periods[k], state[k], high, low, close, t0, t1, out[k])
    for i in range(g):
        indicator_chunk(SMA, periods[group[i]], state[group[i]], high, low, close, t0, t1, out[group[i]])


def compute_full(specs: list[Indicator], high, low, close) -> np.ndarray:
    """Whole-series indicators, shape (len(specs), n): for single-combination detail runs."""
    n = close.shape[0]
    out = np.empty((len(specs), n))
    kinds = np.array([s.code for s in specs], dtype=np.int64)
    periods = np.array([s.period for s in specs], dtype=np.int64)
    compute_chunk(kinds, periods, new_state(specs), np.ones(len(specs), dtype=np.bool_), high, low, close, 0, n,
                  out)
    return out
