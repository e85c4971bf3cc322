"""The simulation kernel: one streaming pass per combination over a time chunk.

This file is a template. ``engine.fast.specialize`` writes a copy per strategy
and feature set in which three marked regions are replaced:

* the rule import binds ``_rule`` to the strategy's ``@njit`` signal rule, so
  numba inlines it and can cache the result on disk (numba cannot cache a
  kernel that takes a function argument or closes over one);
* the feature flags become compile-time constants: a sweep that never goes
  short, or sets no take-profit, trailing stop or time limit, compiles a
  kernel without that code, so options that are not used cost nothing;
* the binding (``_views``, ``_params``, ``_signal``) feeds the rule its
  arguments by name: prices, the combination's indicator rows, its parameters
  (integers stay integers) and the position view.

Imports are absolute because the copies live outside the package.

Semantics are those of ``engine.reference`` (docs/semantics.md), with the same
floating-point operations in the same order. Metrics accumulate as the pass
goes (sums of r, r², min(r,0)², running peak, drawdown, trade statistics), so
no (combinations × candles) array ever exists. They live in two places only:
``_mark`` folds each bar's equity into the return and drawdown accumulators,
and the "accumulators: the closed trade" block of ``simulate`` books every
exit; new per-combination statistics belong there, with a column in
``engine.fast.state`` and a line in ``runner.finalize``.

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

from engine.fast._placeholder_signal import signal_fn as _rule  # SPECIALISE: rule
from engine.fast.indicators import compute_chunk
from engine.fast.state import (AT_PEAK, BEST, BEST_PRICE, CASH, D_ENTRY, D_EXIT_LONG, D_EXIT_SHORT, D_MAX_BARS,
                               ENTRY_BAR, ENTRY_COST, ENTRY_FEE, ENTRY_PRICE, EXIT_ORDER, EXPO, FEES, HELD_SUM,
                               LEVEL, LOSS_PNL, MAX_DD, MAX_DD_ABS, MAX_DUR, N_CLOSED, N_REC, N_WINS, PEAK, PEAK_I,
                               PENDING, PNL_SUM, POS, PREV_E, QTY, R_SIZE, R_STOP, R_TAKE_PROFIT, R_TRAILING,
                               REASON_BUST, REASON_SIGNAL, REASON_STOP, REASON_TAKE_PROFIT, REASON_TIME,
                               REASON_TRAILING, REASON_WINDOW_END, RET_SUM, RUINED, SUM_DOWN2, SUM_R, SUM_R2, SUM_R3,
                               SUM_R4, TP_LEVEL, WIN_PNL, WORST)
from engine.signals import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT

# the masks of direction `both` (engine.signals.entry_mask / exit_masks), as constants
ENTER_BOTH = ENTER_LONG | ENTER_SHORT
EXIT_LONG_BOTH = EXIT_LONG | ENTER_SHORT
EXIT_SHORT_BOTH = EXIT_SHORT | ENTER_LONG

# Compile-time features of this copy (all on in the template). MOMENTS and WINDOW_END serve
# research validation: Σr³, Σr⁴ for the deflated Sharpe, and bar n-1 ending a test window.
SHORT, TAKE_PROFIT, TRAILING, MAX_BARS, BEST_TRACKED, MOMENTS, WINDOW_END = True, True, True, True, True, True, True  # SPECIALISE: features

# The kernel and the rule compile with NumPy's error model. Under the default
# (Python's) every division carries a zero test that may raise, and since raising
# is a side effect LLVM must then evaluate the whole rule on every bar, including
# the parts a loop ignores (the entry test while long). Division by zero in a rule
# gives inf/nan here where the reference engine raises ZeroDivisionError.
signal_fn = njit(nogil=True, error_model="numpy")(_rule.py_func)


# SPECIALISE: binding {
@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _views(ind, slots, j):
    """This combination's indicator rows (1-D views of the chunk's block, indexed by t - t0)."""
    return (ind[slots[j, 0]],)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _params(fp, ip, j):
    """This combination's rule parameters, in the rule's argument order."""
    return (fp[j, 0],)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _signal(t, t0, o, h, lo, c, v, V, P, position, entry_price, bars_held, best_price):
    """The rule's code at bar t, its arguments fed by name."""
    return signal_fn(c[t])
# } SPECIALISE: binding


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _enter(side, price, cash, size, comm, stop_k, tp_k):
    """Commit ``size`` of the cash at a slipped ``price``: qty, fee, cash after, cost basis,
    stop level, take-profit level. A rule that is off (k = inf) puts its level out of reach."""
    qty = size * cash / (price * (1.0 + comm))
    fee = comm * qty * price
    if side == 1:
        return qty, fee, cash - qty * price - fee, qty * price + fee, price * (1.0 - stop_k), price * (1.0 + tp_k)
    return qty, fee, cash + qty * price - fee, qty * price + fee, price * (1.0 + stop_k), price * (1.0 - tp_k)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _mark(e, i, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3,
          sum_r4):
    """Fold equity ``e`` at equity index ``i`` into the return and drawdown accumulators."""
    if at_peak == 1:
        peak_i = i - 1
    r = e / prev - 1.0
    r2 = r * r
    sum_r += r
    sum_r2 += r2
    if MOMENTS:
        sum_r3 += r2 * r
        sum_r4 += r2 * r2
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
    return e, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4


# The tight loops below are separate functions on purpose: inside ``simulate``
# some forty state variables are live and the accumulators spill to the stack, so
# every bar would pay store-to-load latency on them.
#
# They (and ``simulate``) compile without numba's reference counting (``_nrt=False``;
# they allocate nothing and only borrow their arrays). With it, every call paid an
# atomic increment and decrement per array argument, ~18 of them: at one call per
# position change that was a quarter of the 64-combination sweep's time and 43% of
# a ``direction: both`` sweep's, which changes position every ~28 bars (measured).
@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _scan_entry(u, t1, t0, o, h, lo, c, v, V, P, mask):
    """First bar in [u, t1) whose rule says enter (t1 if none)."""
    # One copy of the loop per mask, each inlined with the mask a constant: LLVM then drops
    # the rule's tests for the codes the loop ignores (the short side of a long-only sweep).
    if not SHORT or mask == ENTER_LONG:
        return _scan_loop(u, t1, t0, o, h, lo, c, v, V, P, ENTER_LONG)
    if mask == ENTER_SHORT:
        return _scan_loop(u, t1, t0, o, h, lo, c, v, V, P, ENTER_SHORT)
    return _scan_loop(u, t1, t0, o, h, lo, c, v, V, P, ENTER_BOTH)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _scan_loop(u, t1, t0, o, h, lo, c, v, V, P, m):
    nan = np.nan
    # The bar right after an exit first: under `both` the next entry is often there, and the
    # batches below would evaluate eight bars to find it.
    if u < t1 and (_signal(u, t0, o, h, lo, c, v, V, P, 0, nan, 0, nan) & m) != 0:
        return u
    # Eight bars per test of the loop exit: fewer taken branches (measured 7% faster).
    while u + 8 <= t1:
        hit = 0
        for k in range(u, u + 8):
            hit |= _signal(k, t0, o, h, lo, c, v, V, P, 0, nan, 0, nan)
        if hit & m:
            break
        u += 8
    while u < t1 and (_signal(u, t0, o, h, lo, c, v, V, P, 0, nan, 0, nan) & m) == 0:
        u += 1
    return u


# The hold loops take the position and the accumulators as tuples: a call with more than
# 30 arguments compiles to CALL_FUNCTION_EX (*args), which numba cannot inline.
@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _hold_long(t, t1, t0, o, h, lo, c, v, V, P, mask, position, acc):
    """Mark long bars to market from ``t`` until a level comes within reach (an open beyond it
    implies the range reaches it), the time limit arrives or the exit rule fires. ``position``
    is (level, tp_level, best, trail_k, end_bar, entry_price, entry_bar, cash, qty), ``acc``
    the ``_mark`` accumulators. Returns the accumulators, the best price and that bar, which
    the caller handles in full."""
    if not SHORT or mask == EXIT_LONG:  # one inlined loop per mask, as in _scan_entry
        return _hold_long_loop(t, t1, t0, o, h, lo, c, v, V, P, EXIT_LONG, position, acc)
    return _hold_long_loop(t, t1, t0, o, h, lo, c, v, V, P, EXIT_LONG_BOTH, position, acc)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _hold_long_loop(t, t1, t0, o, h, lo, c, v, V, P, m, position, acc):
    level, tp_level, best, trail_k, end_bar, entry_price, entry_bar, cash, qty = position
    prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4 = acc
    adverse = max(level, best * (1.0 - trail_k)) if TRAILING else level
    while t < t1:
        if lo[t] <= adverse:
            break
        if TAKE_PROFIT and h[t] >= tp_level:
            break
        if MAX_BARS and t >= end_bar:
            break
        b = max(best, h[t]) if BEST_TRACKED else best
        if _signal(t, t0, o, h, lo, c, v, V, P, 1, entry_price, t - entry_bar, b) & m:
            break
        best = b
        if TRAILING:
            adverse = max(level, best * (1.0 - trail_k))
        prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4 = \
            _mark(cash + qty * c[t], t + 1, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd,
                  max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4)
        t += 1
    return prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4, \
        best, t


@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _hold_short(t, t1, t0, o, h, lo, c, v, V, P, mask, position, acc):
    """``_hold_long`` mirrored for a short, which also stops at a bust (equity <= 0 at the close)."""
    if mask == EXIT_SHORT:
        return _hold_short_loop(t, t1, t0, o, h, lo, c, v, V, P, EXIT_SHORT, position, acc)
    return _hold_short_loop(t, t1, t0, o, h, lo, c, v, V, P, EXIT_SHORT_BOTH, position, acc)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _hold_short_loop(t, t1, t0, o, h, lo, c, v, V, P, m, position, acc):
    level, tp_level, best, trail_k, end_bar, entry_price, entry_bar, cash, qty = position
    prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4 = acc
    adverse = min(level, best * (1.0 + trail_k)) if TRAILING else level
    while t < t1:
        if h[t] >= adverse:
            break
        if TAKE_PROFIT and lo[t] <= tp_level:
            break
        if MAX_BARS and t >= end_bar:
            break
        e = cash - qty * c[t]
        if e <= 0.0:
            break
        b = min(best, lo[t]) if BEST_TRACKED else best
        if _signal(t, t0, o, h, lo, c, v, V, P, -1, entry_price, t - entry_bar, b) & m:
            break
        best = b
        if TRAILING:
            adverse = min(level, best * (1.0 + trail_k))
        prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4 = \
            _mark(e, t + 1, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate,
                  sum_r3, sum_r4)
        t += 1
    return prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4, \
        best, t


@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def simulate(j, t0, t1, n, o, h, lo, c, v, ind, slots, fparams, iparams, start_bar, R, D, slip, comm, next_open,
             F, I, record, eq_out, tr_i, tr_f):
    """Advance combination ``j`` over bars [t0, t1); ``ind[:, t - t0]`` holds indicators at bar t."""
    cash, qty, entry_price, entry_fee, entry_cost, level, tp_level, best = F[j, CASH], F[j, QTY], \
        F[j, ENTRY_PRICE], F[j, ENTRY_FEE], F[j, ENTRY_COST], F[j, LEVEL], F[j, TP_LEVEL], F[j, BEST_PRICE]
    prev, peak, sum_r, sum_r2, down2, max_dd, max_dd_abs = F[j, PREV_E], F[j, PEAK], F[j, SUM_R], \
        F[j, SUM_R2], F[j, SUM_DOWN2], F[j, MAX_DD], F[j, MAX_DD_ABS]
    sum_r3, sum_r4 = F[j, SUM_R3], F[j, SUM_R4]
    win_pnl, loss_pnl, ret_sum, best_ret, worst_ret, pnl_sum, fees = F[j, WIN_PNL], F[j, LOSS_PNL], \
        F[j, RET_SUM], F[j, BEST], F[j, WORST], F[j, PNL_SUM], F[j, FEES]
    pos, entry_bar, pending, peak_i, at_peak, max_dur = I[j, POS], I[j, ENTRY_BAR], I[j, PENDING], \
        I[j, PEAK_I], I[j, AT_PEAK], I[j, MAX_DUR]
    n_closed, n_wins, held_sum, expo, n_rec, ruined = I[j, N_CLOSED], I[j, N_WINS], I[j, HELD_SUM], I[j, EXPO], \
        I[j, N_REC], I[j, RUINED]
    V = _views(ind, slots, j)
    P = _params(fparams, iparams, j)
    sb = start_bar[j]
    stop_k, tp_k, trail_k, size = R[j, R_STOP], R[j, R_TAKE_PROFIT], R[j, R_TRAILING], R[j, R_SIZE]
    # without shorts in this copy the masks are the long-only constants
    entries = D[j, D_ENTRY] if SHORT else ENTER_LONG
    exit_long = D[j, D_EXIT_LONG] if SHORT else EXIT_LONG
    exit_short = D[j, D_EXIT_SHORT]
    max_bars = D[j, D_MAX_BARS]
    up = 1.0 + slip
    down = 1.0 - slip
    nan = np.nan
    dd_gate = peak * (1.0 - max_dd) * (1.0 + 1e-12)
    # A test window's last bar always goes through the full bar below (its position is closed
    # there), so the tight hold loops stop short of it.
    t_hold = min(t1, n - 1) if WINDOW_END else t1

    t = t0
    while t < t1:
        # The tight loops serve the sweep. A recording run (one combination, for its equity
        # curve and trades) takes every bar through the full bar below, which alone covers
        # every rule: the loops are not compiled a second time for it, and the tests compare
        # the two paths.
        if pending == 0 and not record:
            # Flat with nothing pending (most bars): only the entry rule can matter, so scan
            # for it in a tight loop; the entry bar itself goes through the full bar below.
            if pos == 0:
                if ruined:  # equity reached 0: no further trades, equity stays as it is
                    t = t1
                    break
                t = _scan_entry(max(t, sb), t1, t0, o, h, lo, c, v, V, P, entries)
                if t >= t1:
                    break
            # In a position with nothing pending: mark to market in a tight loop until a level
            # comes within reach, the time limit or a bust arrives, or the exit rule fires;
            # that bar goes through the full bar below.
            elif pos == 1:
                prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, \
                    sum_r4, best, u = _hold_long(t, t_hold, t0, o, h, lo, c, v, V, P, exit_long,
                               (level, tp_level, best, trail_k, entry_bar + max_bars, entry_price, entry_bar, cash,
                                qty),
                               (prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur,
                                dd_gate, sum_r3, sum_r4))
                expo += u - t
                t = u
                if t >= t1:
                    break
            elif SHORT:
                prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, \
                    sum_r4, best, u = _hold_short(t, t_hold, t0, o, h, lo, c, v, V, P, exit_short,
                                (level, tp_level, best, trail_k, entry_bar + max_bars, entry_price, entry_bar, cash,
                                 qty),
                                (prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur,
                                 dd_gate, sum_r3, sum_r4))
                expo += u - t
                t = u
                if t >= t1:
                    break
        # The full bar: a fill, a level, a time limit, a bust or a signal may happen here.
        filled = False
        exit_price = 0.0
        reason = -1
        # 1. next_open: yesterday's decision fills at today's open.
        if pending == EXIT_ORDER:
            exit_price, reason = o[t] * (down if pos == 1 else up), REASON_SIGNAL
        elif pending != 0 and not (WINDOW_END and t == n - 1):  # no entry on a test window's last bar
            entry_price = o[t] * (up if pending == 1 else down)
            qty, entry_fee, cash, entry_cost, level, tp_level = _enter(pending, entry_price, cash, size, comm,
                                                                       stop_k, tp_k)
            fees += entry_fee
            best = entry_price
            entry_bar, pos, filled = t, pending, True
        pending = 0
        if reason < 0 and pos != 0:
            # 2. the levels, before the strategy acts: the open decides a gap first; within the
            # bar an adverse level beats take-profit; the nearer of stop and trailing fills
            # (the stop on a tie).
            if pos == 1:
                adverse, why = level, REASON_STOP
                if TRAILING:
                    trail = best * (1.0 - trail_k)
                    if trail > level:
                        adverse, why = trail, REASON_TRAILING
                if o[t] <= adverse:
                    exit_price, reason = o[t] * down, why
                elif TAKE_PROFIT and o[t] >= tp_level:
                    exit_price, reason = o[t] * down, REASON_TAKE_PROFIT
                elif lo[t] <= adverse:
                    exit_price, reason = adverse * down, why
                elif TAKE_PROFIT and h[t] >= tp_level:
                    exit_price, reason = tp_level * down, REASON_TAKE_PROFIT
            elif SHORT:
                adverse, why = level, REASON_STOP
                if TRAILING:
                    trail = best * (1.0 + trail_k)
                    if trail < level:
                        adverse, why = trail, REASON_TRAILING
                if o[t] >= adverse:
                    exit_price, reason = o[t] * up, why
                elif TAKE_PROFIT and o[t] <= tp_level:
                    exit_price, reason = o[t] * up, REASON_TAKE_PROFIT
                elif h[t] >= adverse:
                    exit_price, reason = adverse * up, why
                elif TAKE_PROFIT and lo[t] <= tp_level:
                    exit_price, reason = tp_level * up, REASON_TAKE_PROFIT
            if reason < 0:
                # 3. the best price since the entry takes in this bar.
                if BEST_TRACKED:
                    best = max(best, h[t]) if pos == 1 else min(best, lo[t])
                # 4. at the close: a short's bust, then the time limit.
                if SHORT and pos == -1 and cash - qty * c[t] <= 0.0:
                    exit_price, reason = c[t] * up, REASON_BUST
                elif MAX_BARS and t >= entry_bar + max_bars:
                    exit_price, reason = c[t] * (down if pos == 1 else up), REASON_TIME
        # 5. the strategy decides on this bar's close, seeing the position as it now is.
        live = pos != 0 and reason < 0
        code = 0
        if t >= sb:
            code = _signal(t, t0, o, h, lo, c, v, V, P, pos if live else 0, entry_price if live else nan,
                           t - entry_bar if live else 0, best if live else nan)
        if live and (code & (exit_long if pos == 1 else exit_short)) != 0:
            if next_open:
                if t < n - 1:
                    pending = EXIT_ORDER
            else:
                exit_price, reason = c[t] * (down if pos == 1 else up), REASON_SIGNAL
        # 5b. a test window's last bar: a position still open closes at the close.
        if WINDOW_END and t == n - 1 and pos != 0 and reason < 0:
            exit_price, reason = c[t] * (down if pos == 1 else up), REASON_WINDOW_END
        if reason >= 0:
            # --- accumulators: the closed trade (every exit is booked here, once) ---------------
            fee = comm * qty * exit_price
            if pos == 1:
                cash = cash + qty * exit_price - fee
                pnl = qty * exit_price - fee - entry_cost
            else:
                cash = cash - qty * exit_price - fee
                pnl = qty * (entry_price - exit_price) - entry_fee - fee
            fees += fee
            ret = pnl / entry_cost
            if record:
                tr_i[n_rec, 0], tr_i[n_rec, 1], tr_i[n_rec, 2], tr_i[n_rec, 3] = entry_bar, t, reason, pos
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
            best_ret = max(best_ret, ret)
            worst_ret = min(worst_ret, ret)
            # --- end of the trade accumulators ------------------------------------------------
            qty, pos, filled = 0.0, 0, True
            if cash <= 0.0:
                ruined = 1
        if pos == 0 and ruined == 0 and not (WINDOW_END and t == n - 1):
            want = code & entries
            side = 1 if want == ENTER_LONG else -1 if want == ENTER_SHORT else 0  # both at once cancel
            if side != 0:
                if next_open:
                    if t < n - 1:
                        pending = side
                elif not filled:
                    entry_price = c[t] * (up if side == 1 else down)
                    qty, entry_fee, cash, entry_cost, level, tp_level = _enter(side, entry_price, cash, size, comm,
                                                                               stop_k, tp_k)
                    fees += entry_fee
                    best = entry_price
                    entry_bar, pos, filled = t, side, True
        # 6. mark to market. Flat with no fill: equity is unchanged and r = 0 exactly,
        # so the accumulators would not move; skip the division.
        e = cash - qty * c[t] if pos == -1 else cash + qty * c[t]
        if pos != 0:
            expo += 1
        if pos != 0 or filled:
            prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4 = \
                _mark(e, t + 1, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate,
                      sum_r3, sum_r4)
        if record:
            eq_out[t] = e
        t += 1

    F[j, CASH], F[j, QTY], F[j, ENTRY_PRICE], F[j, ENTRY_FEE], F[j, ENTRY_COST], F[j, LEVEL], F[j, TP_LEVEL], \
        F[j, BEST_PRICE] = cash, qty, entry_price, entry_fee, entry_cost, level, tp_level, best
    F[j, PREV_E], F[j, PEAK], F[j, SUM_R], F[j, SUM_R2], F[j, SUM_DOWN2], F[j, MAX_DD], F[j, MAX_DD_ABS] = \
        prev, peak, sum_r, sum_r2, down2, max_dd, max_dd_abs
    F[j, WIN_PNL], F[j, LOSS_PNL], F[j, RET_SUM], F[j, BEST], F[j, WORST], F[j, PNL_SUM], F[j, FEES] = \
        win_pnl, loss_pnl, ret_sum, best_ret, worst_ret, pnl_sum, fees
    F[j, SUM_R3], F[j, SUM_R4] = sum_r3, sum_r4
    I[j, POS], I[j, ENTRY_BAR], I[j, PENDING], I[j, PEAK_I], I[j, AT_PEAK], I[j, MAX_DUR] = \
        pos, entry_bar, pending, peak_i, at_peak, max_dur
    I[j, N_CLOSED], I[j, N_WINS], I[j, HELD_SUM], I[j, EXPO], I[j, N_REC], I[j, RUINED] = \
        n_closed, n_wins, held_sum, expo, n_rec, ruined


# One parallel region per time segment, not per chunk: each thread owns a block of
# combinations and computes, per chunk, only the indicators its block needs into its
# own buffer. Per-chunk parallel regions (one for indicators, one for the
# simulation) cost a thread hand-off each, and on a busy machine every hand-off
# waits for the other core's time slice; that made a 1M-candle sweep up to 10x
# slower under load. The module docstring says why threads rather than processes.
@njit(cache=True, parallel=True, error_model="numpy")
def sweep_segment(t0, t1, n, chunk, o, h, lo, c, v, kinds, periods, mult, ring_off, ind_state, rings, need,
                  block_lo, block_hi, slots, fparams, iparams, start_bar, R, D, slip, comm, next_open, F, I):
    k = kinds.shape[0]
    for b in prange(block_lo.shape[0]):
        buf = np.zeros((k, chunk))
        eq = np.empty(0)
        tri = np.empty((0, 4), dtype=np.int64)
        trf = np.empty((0, 6))
        for a in range(t0, t1, chunk):
            z = min(t1, a + chunk)
            compute_chunk(kinds, periods, mult, ring_off, ind_state[b], rings[b], need[b], h, lo, c, a, z, buf)
            for j in range(block_lo[b], block_hi[b]):
                simulate(j, a, z, n, o, h, lo, c, v, buf, slots, fparams, iparams, start_bar, R, D, slip, comm,
                         next_open, F, I, False, eq, tri, trf)
