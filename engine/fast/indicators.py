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


# Serial on purpose: it serves single-combination detail runs, and a parallel region
# per call would wake (and leave spinning) the thread pool for a few microseconds of work.
@njit(cache=True, nogil=True)
def compute_chunk(kinds, periods, state, high, low, close, t0, t1, out):
    """Fill ``out[k, :t1-t0]`` with indicator k over bars [t0, t1), advancing ``state``."""
    for k in range(kinds.shape[0]):
        indicator_chunk(kinds[k], periods[k], state[k], high, low, close, t0, t1, out[k])


def compute_full(specs: list[Indicator], high, low, close) -> np.ndarray:
    """Whole-series indicators, shape (len(specs), n): for single-combination detail runs."""
    n = close.shape[0]
    out = np.empty((len(specs), n))
    kinds = np.array([s.code for s in specs], dtype=np.int64)
    periods = np.array([s.period for s in specs], dtype=np.int64)
    compute_chunk(kinds, periods, new_state(specs), high, low, close, 0, n, out)
    return out
