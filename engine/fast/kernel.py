"""The simulation kernel: one streaming pass per combination over a time chunk.

This file is a template. ``engine.fast.specialize`` writes a copy per strategy
in which the marked import binds ``signal_fn`` to that strategy's ``@njit``
signal rule, so numba inlines the rule and can cache the result on disk (numba
cannot cache a kernel that takes a function argument or closes over one).
Imports are absolute because the copies live outside the package.

Semantics are those of ``engine.reference`` (docs/semantics.md), with the same
floating-point operations in the same order. Metrics accumulate as the pass
goes (sums of r, r², min(r,0)², running peak, drawdown, trade statistics), so
no (combinations × candles) array ever exists.

Why threads (numba ``prange``) rather than processes, measured on this project's
2-core machine with the 64-combination grid split in two halves:

* warm, per sweep, the two are equal within noise: 40k candles 10.3 ms on threads
  vs 8.1 ms on a pool of 2 processes; 1M candles 210 ms vs 217 ms;
* but a pool costs 1.6 s (40k) to 2.2 s (1M) to start, since each worker must import
  numba, load the cached kernels and load the candles (another copy of them per
  process), and it cannot be forked instead: GNU OpenMP aborts a child forked after
  its threads exist. For one sweep per run, threads win by that start-up.
"""

import numpy as np
from numba import njit, prange

from engine.fast._placeholder_signal import signal_fn as _rule  # SPECIALISE
from engine.fast.indicators import compute_chunk
from engine.fast.state import (AT_PEAK, BEST, CASH, ENTRY_BAR, ENTRY_COST, ENTRY_FEE, ENTRY_PRICE, EXPO, FEES,
                               HELD_SUM, LEVEL, LOSS_PNL, MAX_DD, MAX_DD_ABS, MAX_DUR, N_CLOSED, N_REC, N_WINS,
                               PEAK, PEAK_I, PENDING, PNL_SUM, POS, PREV_E, QTY, RET_SUM, SUM_DOWN2, SUM_R,
                               SUM_R2, WIN_PNL, WORST)


# The kernel and the rule compile with NumPy's error model. Under the default
# (Python's) every division carries a zero test that may raise, and since raising
# is a side effect LLVM must then evaluate the whole rule on every bar, including
# the parts a loop ignores (the entry test while long). Division by zero in a rule
# gives inf/nan here where the reference engine raises ZeroDivisionError.
signal_fn = njit(nogil=True, error_model="numpy")(_rule.py_func)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _enter(price, cash, comm, stop_k):
    """All-in long entry at a slipped ``price``: qty, fee, cash left, cost basis, stop level."""
    qty = cash / (price * (1.0 + comm))
    fee = comm * qty * price
    return qty, fee, cash - qty * price - fee, qty * price + fee, price * (1.0 - stop_k)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _mark(e, i, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate):
    """Fold equity ``e`` at equity index ``i`` into the return and drawdown accumulators."""
    if at_peak == 1:
        peak_i = i - 1
    r = e / prev - 1.0
    sum_r += r
    sum_r2 += r * r
    neg = r if r < 0.0 else 0.0  # branch-free: the sign of r is a coin flip
    down2 += neg * neg
    if e >= peak:
        if at_peak == 0 and i - 1 - peak_i > max_dur:
            max_dur = i - 1 - peak_i
        peak, peak_i, at_peak = e, i, 1
        dd_gate = peak * (1.0 - max_dd) * (1.0 + 1e-12)
    else:
        at_peak = 0
        # Cheap multiply pre-filter (with slack for rounding); the division
        # below decides exactly as the reference does.
        if e < dd_gate:
            dd = 1.0 - e / peak
            if dd > max_dd:
                max_dd, max_dd_abs = dd, peak - e
                dd_gate = peak * (1.0 - max_dd) * (1.0 + 1e-12)
    return e, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate


# The two tight loops below are separate functions on purpose: inside ``simulate``
# some thirty state variables are live and the accumulators spill to the stack, so
# every bar would pay store-to-load latency on them.
@njit(cache=True, nogil=True, error_model="numpy")
def _scan_entry(u, t1, t0, o, h, lo, c, v0, v1, v2, v3, p0, p1, p2, p3):
    """First bar in [u, t1) whose rule says enter (t1 if none)."""
    # Eight bars per test of the loop exit: fewer taken branches (measured 7% faster).
    while u + 8 <= t1:
        hit = 0
        for k in range(u, u + 8):
            hit |= signal_fn(o[k], h[k], lo[k], c[k], v0[k - t0], v1[k - t0], v2[k - t0], v3[k - t0],
                             p0, p1, p2, p3)
        if hit & 1:
            break
        u += 8
    while u < t1 and (signal_fn(o[u], h[u], lo[u], c[u], v0[u - t0], v1[u - t0], v2[u - t0], v3[u - t0],
                                p0, p1, p2, p3) & 1) == 0:
        u += 1
    return u


@njit(cache=True, nogil=True, error_model="numpy")
def _hold(t, t1, t0, o, h, lo, c, v0, v1, v2, v3, p0, p1, p2, p3, has_stop, level, cash, qty, prev, peak,
          peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, record, eq_out):
    """Mark long bars to market from ``t`` until the stop comes within reach (low <= level;
    an open below the level implies it) or the exit rule fires. Returns the accumulators
    and that bar, which the caller handles in full."""
    while t < t1 and not (has_stop and lo[t] <= level) and (
            signal_fn(o[t], h[t], lo[t], c[t], v0[t - t0], v1[t - t0], v2[t - t0], v3[t - t0],
                      p0, p1, p2, p3) & 2) == 0:
        prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate = _mark(
            cash + qty * c[t], t + 1, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd,
            max_dd_abs, max_dur, dd_gate)
        if record:
            eq_out[t] = cash + qty * c[t]
        t += 1
    return prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, t


@njit(cache=True, nogil=True, error_model="numpy")
def simulate(j, t0, t1, n, o, h, lo, c, ind, slots, sparams, start_bar, stops, slip, comm, next_open,
             F, I, record, eq_out, tr_i, tr_f):
    """Advance combination ``j`` over bars [t0, t1); ``ind[:, t - t0]`` holds indicators at bar t."""
    cash, qty, entry_price, entry_fee, entry_cost, level = F[j, CASH], F[j, QTY], F[j, ENTRY_PRICE], \
        F[j, ENTRY_FEE], F[j, ENTRY_COST], F[j, LEVEL]
    prev, peak, sum_r, sum_r2, down2, max_dd, max_dd_abs = F[j, PREV_E], F[j, PEAK], F[j, SUM_R], \
        F[j, SUM_R2], F[j, SUM_DOWN2], F[j, MAX_DD], F[j, MAX_DD_ABS]
    win_pnl, loss_pnl, ret_sum, best, worst, pnl_sum, fees = F[j, WIN_PNL], F[j, LOSS_PNL], F[j, RET_SUM], \
        F[j, BEST], F[j, WORST], F[j, PNL_SUM], F[j, FEES]
    pos, entry_bar, pending, peak_i, at_peak, max_dur = I[j, POS], I[j, ENTRY_BAR], I[j, PENDING], \
        I[j, PEAK_I], I[j, AT_PEAK], I[j, MAX_DUR]
    n_closed, n_wins, held_sum, expo, n_rec = I[j, N_CLOSED], I[j, N_WINS], I[j, HELD_SUM], I[j, EXPO], \
        I[j, N_REC]
    # 1-D views of this combination's indicator rows, indexed by t - t0
    v0, v1, v2, v3 = ind[slots[j, 0]], ind[slots[j, 1]], ind[slots[j, 2]], ind[slots[j, 3]]
    p0, p1, p2, p3 = sparams[j, 0], sparams[j, 1], sparams[j, 2], sparams[j, 3]
    sb = start_bar[j]
    stop_k = stops[j]
    has_stop = not np.isnan(stop_k)
    up = 1.0 + slip
    down = 1.0 - slip
    dd_gate = peak * (1.0 - max_dd) * (1.0 + 1e-12)

    t = t0
    while t < t1:
        # Flat with nothing pending (most bars): only the entry rule can matter, so scan
        # for it in a tight loop; the entry bar itself goes through the full bar below.
        if pos == 0 and pending == 0:
            u = _scan_entry(max(t, sb), t1, t0, o, h, lo, c, v0, v1, v2, v3, p0, p1, p2, p3)
            if record:
                eq_out[t:min(u, t1)] = cash
            t = u
            if t >= t1:
                break
        # Long with nothing pending: mark to market in a tight loop until the stop comes
        # within reach (low <= level; an open below the level implies it) or the exit
        # rule fires; that bar goes through the full bar below.
        elif pos == 1 and pending == 0:
            prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, u = _hold(
                t, t1, t0, o, h, lo, c, v0, v1, v2, v3, p0, p1, p2, p3, has_stop, level, cash, qty, prev, peak,
                peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, record, eq_out)
            expo += u - t
            t = u
            if t >= t1:
                break
        # The full bar: a fill, a stop or an exit may happen here.
        filled = False
        exit_price = 0.0
        exit_reason = -1
        # 1. next_open: yesterday's decision fills at today's open.
        if pending == 1 and pos == 0:
            entry_price = o[t] * up
            qty, entry_fee, cash, entry_cost, level = _enter(entry_price, cash, comm, stop_k)
            fees += entry_fee
            entry_bar, pos, filled = t, 1, True
        elif pending == 2 and pos == 1:
            exit_price, exit_reason = o[t] * down, 0
        pending = 0
        # 2. the stop, checked before the strategy acts; a gap fills at the open.
        if exit_reason < 0 and pos == 1 and has_stop and (next_open or t > entry_bar):
            if o[t] <= level:
                exit_price, exit_reason = o[t] * down, 1
            elif lo[t] <= level:
                exit_price, exit_reason = level * down, 1
        stopped = exit_reason == 1
        # 3. the strategy decides on this bar's close. With fill=close an exit fills
        # now, and an entry only if the bar began flat (one fill per bar).
        code = 0
        if t >= sb:
            code = signal_fn(o[t], h[t], lo[t], c[t], v0[t - t0], v1[t - t0], v2[t - t0],
                             v3[t - t0], p0, p1, p2, p3)
        flat_before = pos == 0
        if not next_open and exit_reason < 0 and pos == 1 and (code & 2) != 0:
            exit_price, exit_reason = c[t] * down, 0
        if exit_reason >= 0:
            fee = comm * qty * exit_price
            cash = cash + qty * exit_price - fee
            fees += fee
            pnl = qty * exit_price - fee - entry_cost
            ret = pnl / entry_cost
            if record:
                tr_i[n_rec, 0], tr_i[n_rec, 1], tr_i[n_rec, 2] = entry_bar, t, exit_reason
                tr_f[n_rec, 0], tr_f[n_rec, 1], tr_f[n_rec, 2] = entry_price, exit_price, qty
                tr_f[n_rec, 3], tr_f[n_rec, 4], tr_f[n_rec, 5] = entry_fee + fee, pnl, ret
                n_rec += 1
            n_closed += 1
            held_sum += t - entry_bar
            pnl_sum += pnl
            ret_sum += ret
            if pnl > 0.0:
                n_wins += 1
                win_pnl += pnl
            elif pnl < 0.0:
                loss_pnl += pnl
            best = max(best, ret)
            worst = min(worst, ret)
            qty, pos, filled = 0.0, 0, True
        if next_open:
            if t < n - 1:
                if pos == 0 and (code & 1) != 0:
                    pending = 1
                elif pos == 1 and (code & 2) != 0:
                    pending = 2
        elif flat_before and not stopped and (code & 1) != 0:
            entry_price = c[t] * up
            qty, entry_fee, cash, entry_cost, level = _enter(entry_price, cash, comm, stop_k)
            fees += entry_fee
            entry_bar, pos, filled = t, 1, True
        # 4. mark to market. Flat with no fill: equity is unchanged and r = 0 exactly,
        # so the accumulators would not move; skip the division.
        if pos == 1:
            expo += 1
        if pos == 1 or filled:
            prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate = _mark(
                cash + qty * c[t], t + 1, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs,
                max_dur, dd_gate)
        if record:
            eq_out[t] = cash + qty * c[t]
        t += 1

    F[j, CASH], F[j, QTY], F[j, ENTRY_PRICE], F[j, ENTRY_FEE], F[j, ENTRY_COST], F[j, LEVEL] = \
        cash, qty, entry_price, entry_fee, entry_cost, level
    F[j, PREV_E], F[j, PEAK], F[j, SUM_R], F[j, SUM_R2], F[j, SUM_DOWN2], F[j, MAX_DD], F[j, MAX_DD_ABS] = \
        prev, peak, sum_r, sum_r2, down2, max_dd, max_dd_abs
    F[j, WIN_PNL], F[j, LOSS_PNL], F[j, RET_SUM], F[j, BEST], F[j, WORST], F[j, PNL_SUM], F[j, FEES] = \
        win_pnl, loss_pnl, ret_sum, best, worst, pnl_sum, fees
    I[j, POS], I[j, ENTRY_BAR], I[j, PENDING], I[j, PEAK_I], I[j, AT_PEAK], I[j, MAX_DUR] = \
        pos, entry_bar, pending, peak_i, at_peak, max_dur
    I[j, N_CLOSED], I[j, N_WINS], I[j, HELD_SUM], I[j, EXPO], I[j, N_REC] = n_closed, n_wins, held_sum, expo, n_rec


# One parallel region per time segment, not per chunk: each thread owns a block of
# combinations and computes, per chunk, only the indicators its block needs into its
# own buffer. Per-chunk parallel regions (one for indicators, one for the
# simulation) cost a thread hand-off each, and on a busy machine every hand-off
# waits for the other core's time slice; that made a 1M-candle sweep up to 10x
# slower under load. The module docstring says why threads rather than processes.
@njit(cache=True, parallel=True, error_model="numpy")
def sweep_segment(t0, t1, n, chunk, o, h, lo, c, kinds, periods, ind_state, need, block_lo, block_hi, slots,
                  sparams, start_bar, stops, slip, comm, next_open, F, I):
    k = kinds.shape[0]
    for b in prange(block_lo.shape[0]):
        buf = np.zeros((k + 1, chunk))  # row k stays zero: the target of unused slots
        eq = np.empty(0)
        tri = np.empty((0, 3), dtype=np.int64)
        trf = np.empty((0, 6))
        for a in range(t0, t1, chunk):
            z = min(t1, a + chunk)
            compute_chunk(kinds, periods, ind_state[b], need[b], h, lo, c, a, z, buf)
            for j in range(block_lo[b], block_hi[b]):
                simulate(j, a, z, n, o, h, lo, c, buf, slots, sparams, start_bar, stops, slip, comm, next_open,
                         F, I, False, eq, tri, trf)
