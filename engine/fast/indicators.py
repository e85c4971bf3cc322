"""Chunked indicator kernels with carried state.

Same arithmetic, in the same order, as the incremental reference in
``engine.indicators``; see that module for the definitions. Indicators are
computed one time-chunk at a time so memory stays O(chunk × indicators) however
long the series is, and each distinct indicator is computed once per run.

An indicator is described to the kernels by its kind code (``kinds[k]``), up to
three integer arguments (``periods[k]``: n, or fast/slow/signal) and a float
multiplier (``mult[k]``, Bollinger's k). Its carried state is one row of
``state`` (STATE_COLS floats); the rolling highest/lowest keep their monotone
deque of bar indices in a ring of n+1 slots at ``ring[ring_off[k]:]``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from ..indicators import KINDS, Indicator

SMA, EMA, RSI, HIGHEST, LOWEST, ATR, STD, BB_UPPER, BB_LOWER, MACD, MACD_SIGNAL, ROC = range(len(KINDS))
#: state columns: 0-2 running values (sum / ema / Wilder average; average loss or slow ema;
#: macd signal), 3 deque head, 4 deque length, 5 deque operations (the work a test checks is linear)
STATE_COLS = 6
HEAD, LENGTH, OPS = 3, 4, 5


class Specs(NamedTuple):
    """Indicators as the kernels take them."""

    kinds: np.ndarray  # (k,) int64 kind codes
    periods: np.ndarray  # (k, 3) int64 integer arguments
    mult: np.ndarray  # (k,) float64 multiplier
    ring_off: np.ndarray  # (k,) int64 offset of the deque ring (highest/lowest), else 0
    ring_size: int  # slots a ring buffer needs for all of them


def encode(specs: list[Indicator]) -> Specs:
    k = len(specs)
    kinds = np.array([KINDS.index(s.kind) for s in specs], dtype=np.int64)
    periods = np.zeros((k, 3), dtype=np.int64)
    mult = np.zeros(k)
    ring_off = np.zeros(k, dtype=np.int64)
    size = 0
    for i, s in enumerate(specs):
        ints = [a for a in s.args if isinstance(a, int)]
        periods[i, :len(ints)] = ints
        if s.kind in ("bb_upper", "bb_lower"):
            mult[i] = s.args[1]
        if s.kind in ("highest", "lowest"):
            ring_off[i] = size
            size += s.args[0] + 1
    return Specs(kinds, periods, mult, ring_off, max(size, 1))


def new_state(specs: list[Indicator]) -> np.ndarray:
    return np.zeros((len(specs), STATE_COLS))


@njit(cache=True, nogil=True)
def _rsi_value(gain, loss):
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


@njit(cache=True, nogil=True, inline="always")
def _wilder(avg, t, n, x):
    """Wilder's smoothing of a series that starts at bar 1 (see engine.indicators._Wilder)."""
    if t < n:
        return avg + x
    if t == n:
        return (avg + x) / n
    return (avg * (n - 1) + x) / n


@njit(cache=True, nogil=True, inline="always")
def _window_std(close, t, n):
    """Population standard deviation of close[t-n+1..t], two-pass, in window order."""
    s = 0.0
    for i in range(t - n + 1, t + 1):
        s += close[i]
    m = s / n
    q = 0.0
    for i in range(t - n + 1, t + 1):
        q += (close[i] - m) * (close[i] - m)
    return math.sqrt(q / n)


@njit(cache=True, nogil=True)
def _extreme(n, is_max, st, ring, off, src, t0, t1, out):
    """Max (min) of src over the n bars before t, with a monotone deque of bar indices in a
    ring of n+1 slots: each bar enters and leaves once, amortised O(1) per bar."""
    cap = n + 1
    head, length, ops = int(st[HEAD]), int(st[LENGTH]), st[OPS]
    nan = np.nan
    for t in range(t0, t1):
        while length > 0 and ring[off + head] < t - n:  # left the window
            head = head + 1 if head + 1 < cap else 0
            length -= 1
            ops += 1.0
        out[t - t0] = src[ring[off + head]] if t >= n else nan
        x = src[t]
        while length > 0:  # drop what x dominates: it can never be the extreme again
            back = head + length - 1
            if back >= cap:
                back -= cap
            y = src[ring[off + back]]
            if (y <= x) if is_max else (y >= x):
                length -= 1
                ops += 1.0
            else:
                break
        slot = head + length
        if slot >= cap:
            slot -= cap
        ring[off + slot] = t
        length += 1
    st[HEAD], st[LENGTH], st[OPS] = head, length, ops


@njit(cache=True, nogil=True)
def indicator_chunk(kind, p, mult, st, ring, off, high, low, close, t0, t1, out):
    """Advance one indicator over bars [t0, t1) into ``out[:t1-t0]``; ``st`` carries its state."""
    nan = np.nan
    n = p[0]
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
                gain = _wilder(gain, t, n, change if change > 0.0 else 0.0)
                loss = _wilder(loss, t, n, -change if change < 0.0 else 0.0)
            out[t - t0] = _rsi_value(gain, loss) if t >= n else nan
        st[0], st[1] = gain, loss
    elif kind == HIGHEST or kind == LOWEST:
        _extreme(n, kind == HIGHEST, st, ring, off, high if kind == HIGHEST else low, t0, t1, out)
    elif kind == ATR:
        a = st[0]
        for t in range(t0, t1):
            if t > 0:
                pc = close[t - 1]
                hi, lw = high[t], low[t]
                a = _wilder(a, t, n, max(hi - lw, max(abs(hi - pc), abs(lw - pc))))
            out[t - t0] = a if t >= n else nan
        st[0] = a
    elif kind == STD:
        for t in range(t0, t1):
            out[t - t0] = _window_std(close, t, n) if t >= n - 1 else nan
    elif kind == BB_UPPER or kind == BB_LOWER:
        s = st[0]
        for t in range(t0, t1):
            s += close[t]
            if t >= n:
                s -= close[t - n]
            if t >= n - 1:
                m = s / n
                sd = _window_std(close, t, n)
                out[t - t0] = m + mult * sd if kind == BB_UPPER else m - mult * sd
            else:
                out[t - t0] = nan
        st[0] = s
    elif kind == MACD or kind == MACD_SIGNAL:
        slow, sig = p[1], p[2]
        a1, a2 = 2.0 / (n + 1.0), 2.0 / (slow + 1.0)
        a3 = 2.0 / (sig + 1.0)
        valid = max(n, slow) - 1 + (sig - 1 if kind == MACD_SIGNAL else 0)
        e1, e2, g = st[0], st[1], st[2]
        for t in range(t0, t1):
            if t == 0:
                e1 = close[0]
                e2 = close[0]
            else:
                e1 = a1 * close[t] + (1.0 - a1) * e1
                e2 = a2 * close[t] + (1.0 - a2) * e2
            line = e1 - e2
            v = line
            if kind == MACD_SIGNAL:
                g = line if t == 0 else a3 * line + (1.0 - a3) * g
                v = g
            out[t - t0] = v if t >= valid else nan
        st[0], st[1], st[2] = e1, e2, g
    else:  # ROC
        for t in range(t0, t1):
            out[t - t0] = close[t] / close[t - n] - 1.0 if t >= n else nan


@njit(cache=True, nogil=True)
def _sma4(q, periods, state, close, t0, t1, out):
    """SMAs ``q[0..3]`` over bars [t0, t1), with the same operations per value as
    ``indicator_chunk``. One SMA alone is bound by the latency of its add-subtract
    chain; four in one loop overlap their chains and are left bound by the divisions
    (measured: four take 3x the time of one, not 4x)."""
    q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
    n0, n1, n2, n3 = periods[q0, 0], periods[q1, 0], periods[q2, 0], periods[q3, 0]
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
def compute_chunk(kinds, periods, mult, ring_off, state, ring, need, high, low, close, t0, t1, out):
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
            indicator_chunk(kinds[k], periods[k], mult[k], state[k], ring, ring_off[k], high, low, close, t0, t1,
                            out[k])
    for i in range(g):
        k = group[i]
        indicator_chunk(SMA, periods[k], mult[k], state[k], ring, ring_off[k], high, low, close, t0, t1, out[k])


def compute_full(specs: list[Indicator], high, low, close) -> np.ndarray:
    """Whole-series indicators, shape (len(specs), n): for single-combination detail runs."""
    n = close.shape[0]
    out = np.empty((len(specs), n))
    e = encode(specs)
    compute_chunk(e.kinds, e.periods, e.mult, e.ring_off, new_state(specs), np.zeros(e.ring_size, dtype=np.int64),
                  np.ones(len(specs), dtype=np.bool_), high, low, close, 0, n, out)
    return out
