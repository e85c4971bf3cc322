"""The simulation loop, compiled once per machine for every strategy: one streaming pass per
combination over time chunks, the indicators of each chunk computed first.

Nothing here knows a strategy. Each chunk's indicators come from the chunk functions compiled
per indicator definition (``engine.fast.indicator_unit``), and every decision of the rule from
the functions compiled per strategy (``engine.fast.rule_unit``): the tight loops that scan for an
entry and hold a position, with the rule inlined, and the rule on one bar. This loop calls them
through their addresses, which it takes as integers, so numba caches it on disk; a new or edited
rule compiles only its own small functions. The calls come once per indicator group per chunk and
once per position change, never per bar of a tight loop.

This file is a template: ``engine.fast.units`` loads a copy named after a hash of it and of the
modules it compiles in (``state``, ``account``, ``native``, ``engine.signals``), so an edit of
any of them compiles a new loop rather than running a stale cached one. Imports are absolute.

Semantics are those of ``engine.reference`` (docs/semantics.md), with the same floating-point
operations in the same order. Metrics accumulate as the pass goes (sums of r, r², min(r,0)²,
running peak, drawdown, trade statistics), so no (combinations × candles) array ever exists.
They live in two places only: ``engine.fast.account.mark`` folds each bar's equity into the
return and drawdown accumulators, and the "accumulators: the closed trade" block of
``simulate`` books every exit; new per-combination statistics belong there, with a column in
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
from numba import njit

from engine.fast.account import enter, liq_price, mark, perp_open
from engine.fast.native import call_bar, call_chunk, call_loop, float_ptr, int_ptr
from engine.fast.state import (A_BAR, A_HOLD_LONG, A_HOLD_LONG_BOTH, A_HOLD_SHORT, A_HOLD_SHORT_BOTH, A_SCAN_BOTH,
                               A_SCAN_LONG, A_SCAN_SHORT, AT_PEAK, BEST, BEST_PRICE, CASH, D_ENTRY, D_EXIT_LONG,
                               D_EXIT_SHORT, D_MAX_BARS, ENTRY_BAR, ENTRY_COST, ENTRY_FEE, ENTRY_PRICE, EXIT_ORDER,
                               EXPO, FEES, G_ADDR, H_BEST, H_CASH, H_DD_GATE, H_DOWN2, H_ENTRY_PRICE,
                               H_LEVEL, H_MAX_DD, H_MAX_DD_ABS, H_PEAK, H_PREV, H_QTY, H_SUM_R, H_SUM_R2, H_SUM_R3,
                               H_SUM_R4, H_TP_LEVEL, H_TRAIL_K, HELD_SUM, HI_AT_PEAK, HI_END_BAR, HI_ENTRY_BAR,
                               HI_MAX_DUR, HI_PEAK_I, LEVEL, LOSS_PNL, MAX_DD, MAX_DD_ABS, MAX_DUR, N_CLOSED,
                               N_MARGIN, N_REC, N_ROW, N_WINS, NODE_COLS, PEAK, PEAK_I, PENDING, PNL_SUM, POS,
                               PREV_E, QTY, R_SIZE, R_STOP, R_TAKE_PROFIT, R_TRAILING, REASON_BUST, REASON_SIGNAL,
                               CUM, FREE, LIQ_PRICE, MARGIN, MMR, N_LIQ, R_LEVERAGE, REASON_LIQUIDATION,
                               TOTAL_FUNDING, TRADE_FUNDING, WB, H_CUM, H_LIQ_PRICE, H_MMR, H_TOTAL_FUNDING,
                               H_TRADE_FUNDING, H_WB,
                               REASON_STOP, REASON_TAKE_PROFIT, REASON_TIME, REASON_TRAILING, REASON_WINDOW_END,
                               RAISED, RET_SUM, RUINED, SUM_DOWN2, SUM_R, SUM_R2, SUM_R3, SUM_R4, TP_LEVEL, WIN_PNL, WORST,
                               X_BUF, X_NODES, X_STOP, X_T0, X_T1)
from engine.signals import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT


@njit(nogil=True, error_model="numpy")
def indicators(ctx, groups, ngroups):
    """This block's indicator groups over the chunk ``ctx[X_T0]..ctx[X_T1]``, in order (a node's
    inputs come before it)."""
    for r in range(ngroups):
        call_chunk(groups[r, G_ADDR], ctx, r)


@njit(nogil=True, error_model="numpy")
def keep_margins(ctx, moves, nmoves):
    """After a chunk: each row that later chunks read back into keeps its last values before the
    next chunk's first bar (its margin), so ``x[t - k]`` reaches across chunks."""
    nodes, buf = int_ptr(ctx[X_NODES]), float_ptr(ctx[X_BUF])
    width = ctx[X_T1] - ctx[X_T0]
    for i in range(nmoves):
        q = moves[i]
        row, h = nodes[q * NODE_COLS + N_ROW], nodes[q * NODE_COLS + N_MARGIN]
        src, dst = row + width - h, row - h
        for k in range(h):  # forward: the ranges may overlap with src > dst
            buf[dst + k] = buf[src + k]


@njit(nogil=True, error_model="numpy")
def hold(addr, ctx, fr, ifr, j, t, t1, level, tp_level, best, trail_k, end_bar, entry_price, entry_bar, cash, qty,
         prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4):
    """Call a rule's hold loop: the position and the accumulators go in the block's frame."""
    fr[H_LEVEL], fr[H_TP_LEVEL], fr[H_BEST], fr[H_TRAIL_K], fr[H_ENTRY_PRICE], fr[H_CASH], fr[H_QTY] = \
        level, tp_level, best, trail_k, entry_price, cash, qty
    fr[H_PREV], fr[H_PEAK], fr[H_SUM_R], fr[H_SUM_R2], fr[H_DOWN2], fr[H_MAX_DD], fr[H_MAX_DD_ABS] = \
        prev, peak, sum_r, sum_r2, down2, max_dd, max_dd_abs
    fr[H_DD_GATE], fr[H_SUM_R3], fr[H_SUM_R4] = dd_gate, sum_r3, sum_r4
    ifr[HI_END_BAR], ifr[HI_ENTRY_BAR], ifr[HI_PEAK_I], ifr[HI_AT_PEAK], ifr[HI_MAX_DUR] = \
        end_bar, entry_bar, peak_i, at_peak, max_dur
    u = call_loop(addr, ctx, j, t, t1)
    return fr[H_PREV], fr[H_PEAK], ifr[HI_PEAK_I], ifr[HI_AT_PEAK], fr[H_SUM_R], fr[H_SUM_R2], fr[H_DOWN2], \
        fr[H_MAX_DD], fr[H_MAX_DD_ABS], ifr[HI_MAX_DUR], fr[H_DD_GATE], fr[H_SUM_R3], fr[H_SUM_R4], fr[H_BEST], u


# simulate compiles without numba's reference counting (``_nrt=False``; it allocates nothing
# and only borrows its arrays): with it, every call paid an atomic increment and decrement per
# array argument, a quarter of a 64-combination sweep's time (measured).
@njit(nogil=True, error_model="numpy", _nrt=False)
def simulate(j, t0, t1, n, ctx, fr, ifr, fns, o, h, lo, c, start_bar, R, D, slip, comm, next_open, window_end,
             moments, F, I, record, eq_out, tr_i, tr_f, perp, lh, ll, fund, brm, brr, brc):
    """Advance combination ``j`` over bars [t0, t1) (the chunk whose indicators ``ctx`` holds).

    ``perp``: USDⓈ-M rules P1-P5 (``lh``/``ll`` the range liquidation is checked on, ``fund`` each
    bar's F_t, ``brm``/``brr``/``brc`` the brackets). The cash of a perp position is
    ``free + WB − s·qty·entry``, so equity is ``cash ± qty·close`` as for spot. A perp sweep's hold
    loops (the rule unit's ``_perp`` ones, in ``fns``) book funding and move the liquidation price
    themselves, so a hold runs through funding bars; WB and the rest go through the frame."""
    cash, qty, entry_price, entry_fee, entry_cost, level, tp_level, best = F[j, CASH], F[j, QTY], \
        F[j, ENTRY_PRICE], F[j, ENTRY_FEE], F[j, ENTRY_COST], F[j, LEVEL], F[j, TP_LEVEL], F[j, BEST_PRICE]
    prev, peak, sum_r, sum_r2, down2, max_dd, max_dd_abs = F[j, PREV_E], F[j, PEAK], F[j, SUM_R], \
        F[j, SUM_R2], F[j, SUM_DOWN2], F[j, MAX_DD], F[j, MAX_DD_ABS]
    sum_r3, sum_r4 = F[j, SUM_R3], F[j, SUM_R4]
    wb, free, margin, lp, mmr, cum, tfund, totfund = F[j, WB], F[j, FREE], F[j, MARGIN], F[j, LIQ_PRICE], \
        F[j, MMR], F[j, CUM], F[j, TRADE_FUNDING], F[j, TOTAL_FUNDING]
    n_liq = I[j, N_LIQ]
    win_pnl, loss_pnl, ret_sum, best_ret, worst_ret, pnl_sum, fees = F[j, WIN_PNL], F[j, LOSS_PNL], \
        F[j, RET_SUM], F[j, BEST], F[j, WORST], F[j, PNL_SUM], F[j, FEES]
    pos, entry_bar, pending, peak_i, at_peak, max_dur = I[j, POS], I[j, ENTRY_BAR], I[j, PENDING], \
        I[j, PEAK_I], I[j, AT_PEAK], I[j, MAX_DUR]
    n_closed, n_wins, held_sum, expo, n_rec, ruined = I[j, N_CLOSED], I[j, N_WINS], I[j, HELD_SUM], I[j, EXPO], \
        I[j, N_REC], I[j, RUINED]
    if I[j, RAISED] != 0:  # its rule raised earlier: this combination has stopped
        return
    raised = 0
    sb = start_bar[j]
    stop_k, tp_k, trail_k, size = R[j, R_STOP], R[j, R_TAKE_PROFIT], R[j, R_TRAILING], R[j, R_SIZE]
    lev = R[j, R_LEVERAGE]
    inv_lev = 1.0 / lev
    entries, exit_long, exit_short, max_bars = D[j, D_ENTRY], D[j, D_EXIT_LONG], D[j, D_EXIT_SHORT], D[j, D_MAX_BARS]
    # the rule's loops for this combination's direction (engine.signals.entry_mask / exit_masks)
    scan = fns[A_SCAN_LONG] if entries == ENTER_LONG else fns[A_SCAN_SHORT] if entries == ENTER_SHORT \
        else fns[A_SCAN_BOTH]
    hold_long = fns[A_HOLD_LONG] if exit_long == EXIT_LONG else fns[A_HOLD_LONG_BOTH]
    hold_short = fns[A_HOLD_SHORT] if exit_short == EXIT_SHORT else fns[A_HOLD_SHORT_BOTH]
    rule = fns[A_BAR]
    trailing = trail_k != np.inf
    take_profit = tp_k != np.inf
    up = 1.0 + slip
    down = 1.0 - slip
    nan = np.nan
    dd_gate = peak * (1.0 - max_dd) * (1.0 + 1e-12)
    # A test window's last bar always goes through the full bar below (its position is closed
    # there), so the tight hold loops stop short of it.
    t_hold = min(t1, n - 1) if window_end else t1

    t = t0
    while t < t1:
        # The tight loops serve the sweep. A recording run (one combination, for its equity
        # curve and trades) takes every bar through the full bar below, which alone covers
        # every rule; the tests compare the two paths.
        if pending == 0 and not record:
            # Flat with nothing pending (most bars): only the entry rule can matter, so scan
            # for it in a tight loop; the entry bar itself goes through the full bar below.
            if pos == 0:
                if ruined:  # equity reached 0: no further trades, equity stays as it is
                    t = t1
                    break
                u = max(t, sb)
                t = call_loop(scan, ctx, j, u, t1)
                if t < u:  # the rule raised: a cfunc that raises returns 0
                    raised = u + 1
                    break
                if t >= t1:
                    break
            # In a position with nothing pending: mark to market in a tight loop until a level
            # comes within reach, the time limit or a bust arrives, or the exit rule fires (perp:
            # or the liquidation, after the bar's funding); that bar goes through the full bar below.
            else:
                if perp:
                    fr[H_WB], fr[H_LIQ_PRICE], fr[H_MMR], fr[H_CUM], fr[H_TRADE_FUNDING], fr[H_TOTAL_FUNDING] = \
                        wb, lp, mmr, cum, tfund, totfund
                prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, \
                    sum_r4, best, u = hold(hold_long if pos == 1 else hold_short, ctx, fr, ifr, j, t, t_hold, level,
                                           tp_level, best, trail_k, entry_bar + max_bars, entry_price, entry_bar,
                                           cash, qty, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd,
                                           max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4)
                if perp:
                    wb, lp, cash, tfund, totfund = fr[H_WB], fr[H_LIQ_PRICE], fr[H_CASH], fr[H_TRADE_FUNDING], \
                        fr[H_TOTAL_FUNDING]
                if u < t:  # the rule raised
                    raised = t + 1
                    break
                expo += u - t
                t = u
                if t >= t1:
                    break
        # The full bar: a fill, a level, a time limit, a bust or a signal may happen here.
        filled = False
        exit_price = 0.0
        reason = -1
        # 0. perp: the bar's funding, to a position held at the previous close (P3); a wallet
        # balance at or below 0 is liquidated at once (P4).
        if perp and pos != 0 and fund[t] != 0.0:
            amt = qty * fund[t]
            if pos == 1:
                amt = -amt
            wb += amt
            cash += amt
            tfund += amt
            totfund += amt
            lp = liq_price(pos, qty, entry_price, wb, mmr, cum)
            if wb <= 0.0:
                exit_price, reason = lp, REASON_LIQUIDATION
        # 1. next_open: yesterday's decision fills at today's open.
        if reason >= 0:
            pass
        elif pending == EXIT_ORDER:
            exit_price, reason = o[t] * (down if pos == 1 else up), REASON_SIGNAL
        elif pending != 0 and not (window_end and t == n - 1):  # no entry on a test window's last bar
            entry_price = o[t] * (up if pending == 1 else down)
            cash0 = cash
            qty, entry_fee, cash, entry_cost, level, tp_level = enter(pending, entry_price, cash, size, comm,
                                                                      stop_k, tp_k, inv_lev)
            if perp:
                margin, free, mmr, cum, lp = perp_open(pending, qty, entry_price, entry_fee, cash0, lev, brm, brr, brc)
                wb, tfund = margin, 0.0
            fees += entry_fee
            best = entry_price
            entry_bar, pos, filled = t, pending, True
        pending = 0
        if reason < 0 and pos != 0:
            # 2. the levels, before the strategy acts: the open decides a gap first; within the
            # bar an adverse level beats take-profit; the nearer of stop and trailing fills
            # (the stop on a tie).
            if perp and (ll[t] <= lp if pos == 1 else lh[t] >= lp):  # P4: liquidation beats every level
                exit_price, reason = lp, REASON_LIQUIDATION
            elif pos == 1:
                adverse, why = level, REASON_STOP
                if trailing:
                    trail = best * (1.0 - trail_k)
                    if trail > level:
                        adverse, why = trail, REASON_TRAILING
                if o[t] <= adverse:
                    exit_price, reason = o[t] * down, why
                elif take_profit and o[t] >= tp_level:
                    exit_price, reason = o[t] * down, REASON_TAKE_PROFIT
                elif lo[t] <= adverse:
                    exit_price, reason = adverse * down, why
                elif take_profit and h[t] >= tp_level:
                    exit_price, reason = tp_level * down, REASON_TAKE_PROFIT
            else:
                adverse, why = level, REASON_STOP
                if trailing:
                    trail = best * (1.0 + trail_k)
                    if trail < level:
                        adverse, why = trail, REASON_TRAILING
                if o[t] >= adverse:
                    exit_price, reason = o[t] * up, why
                elif take_profit and o[t] <= tp_level:
                    exit_price, reason = o[t] * up, REASON_TAKE_PROFIT
                elif h[t] >= adverse:
                    exit_price, reason = adverse * up, why
                elif take_profit and lo[t] <= tp_level:
                    exit_price, reason = tp_level * up, REASON_TAKE_PROFIT
            if reason < 0:
                # 3. the best price since the entry takes in this bar.
                best = max(best, h[t]) if pos == 1 else min(best, lo[t])
                # 4. at the close: a short's bust, then the time limit.
                if pos == -1 and not perp and cash - qty * c[t] <= 0.0:
                    exit_price, reason = c[t] * up, REASON_BUST
                elif t >= entry_bar + max_bars:
                    exit_price, reason = c[t] * (down if pos == 1 else up), REASON_TIME
        # 5. the strategy decides on this bar's close, seeing the position as it now is.
        live = pos != 0 and reason < 0
        code = 0
        if t >= sb:
            code = call_bar(rule, ctx, j, t, pos if live else 0, entry_price if live else nan,
                            t - entry_bar if live else 0, best if live else nan)
        if live and (code & (exit_long if pos == 1 else exit_short)) != 0:
            if next_open:
                if t < n - 1:
                    pending = EXIT_ORDER
            else:
                exit_price, reason = c[t] * (down if pos == 1 else up), REASON_SIGNAL
        # 5b. a test window's last bar: a position still open closes at the close.
        if window_end and t == n - 1 and pos != 0 and reason < 0:
            exit_price, reason = c[t] * (down if pos == 1 else up), REASON_WINDOW_END
        if reason >= 0:
            # --- accumulators: the closed trade (every exit is booked here, once) ---------------
            if reason == REASON_LIQUIDATION:  # P4: the whole WB is lost, free cash gains nothing
                fee = 0.0
                cash = free
                pnl = -(margin + entry_fee)
                n_liq += 1
            else:
                fee = comm * qty * exit_price
                if pos == 1:
                    cash = cash + qty * exit_price - fee
                    pnl = qty * exit_price - fee - entry_cost
                else:
                    cash = cash - qty * exit_price - fee
                    pnl = qty * (entry_price - exit_price) - entry_fee - fee
                if perp:
                    pnl = pnl + tfund
            fees += fee
            ret = pnl / (margin + entry_fee) if perp else pnl / entry_cost
            if record:
                tr_i[n_rec, 0], tr_i[n_rec, 1], tr_i[n_rec, 2], tr_i[n_rec, 3] = entry_bar, t, reason, pos
                tr_f[n_rec, 0], tr_f[n_rec, 1], tr_f[n_rec, 2] = entry_price, exit_price, qty
                tr_f[n_rec, 3], tr_f[n_rec, 4], tr_f[n_rec, 5], tr_f[n_rec, 6] = entry_fee + fee, pnl, ret, tfund
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
        if pos == 0 and ruined == 0 and not (window_end and t == n - 1):
            want = code & entries
            side = 1 if want == ENTER_LONG else -1 if want == ENTER_SHORT else 0  # both at once cancel
            if side != 0:
                if next_open:
                    if t < n - 1:
                        pending = side
                elif not filled:
                    entry_price = c[t] * (up if side == 1 else down)
                    cash0 = cash
                    qty, entry_fee, cash, entry_cost, level, tp_level = enter(side, entry_price, cash, size, comm,
                                                                              stop_k, tp_k, inv_lev)
                    if perp:
                        margin, free, mmr, cum, lp = perp_open(side, qty, entry_price, entry_fee, cash0, lev, brm, brr,
                                                               brc)
                        wb, tfund = margin, 0.0
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
                mark(e, t + 1, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate,
                     sum_r3, sum_r4, moments)
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
    F[j, WB], F[j, FREE], F[j, MARGIN], F[j, LIQ_PRICE], F[j, MMR], F[j, CUM], F[j, TRADE_FUNDING], \
        F[j, TOTAL_FUNDING] = wb, free, margin, lp, mmr, cum, tfund, totfund
    I[j, N_LIQ], I[j, RAISED] = n_liq, raised
    I[j, POS], I[j, ENTRY_BAR], I[j, PENDING], I[j, PEAK_I], I[j, AT_PEAK], I[j, MAX_DUR] = \
        pos, entry_bar, pending, peak_i, at_peak, max_dur
    I[j, N_CLOSED], I[j, N_WINS], I[j, HELD_SUM], I[j, EXPO], I[j, N_REC], I[j, RUINED] = \
        n_closed, n_wins, held_sum, expo, n_rec, ruined


# One call per thread block per time segment: each block computes, per chunk, only the
# indicators its combinations need into its own buffer, then streams its combinations over it.
# The runner hands the blocks to a pool of threads (this function releases the GIL); a numba
# parallel region would do the same, but compiling one costs seconds on every machine.
@njit(cache=True, nogil=True, error_model="numpy")
def sweep_block(b, t0, t1, n, chunk, ctxs, frames, iframes, groups, ngroups, moves, nmoves, block_lo, block_hi, fns,
                o, h, lo, c, start_bar, R, D, slip, comm, next_open, window_end, moments, F, I, perp, lh, ll, fund,
                brm, brr, brc):
    ctx = ctxs[b]
    eq = np.empty(0)
    tri = np.empty((0, 4), dtype=np.int64)
    trf = np.empty((0, 7))
    record = b < 0  # False, as a variable: one compiled simulate serves detail runs too
    for a in range(t0, t1, chunk):
        if ctx[X_STOP] != 0:  # interrupted (Ctrl-C): the caller discards the results
            return
        z = min(t1, a + chunk)
        ctx[X_T0], ctx[X_T1] = a, z
        indicators(ctx, groups[b], ngroups[b])
        for j in range(block_lo[b], block_hi[b]):
            simulate(j, a, z, n, ctx, frames[b], iframes[b], fns, o, h, lo, c, start_bar, R, D, slip, comm,
                     next_open, window_end, moments, F, I, record, eq, tri, trf, perp, lh, ll, fund, brm, brr, brc)
        keep_margins(ctx, moves[b], nmoves[b])


@njit(cache=True, error_model="numpy")
def run_detail(a, n, ctx, frame, iframe, groups, ngroups, fns, o, h, lo, c, start_bar, R, D, slip, comm, next_open,
               window_end, moments, F, I, eq, tri, trf, perp, lh, ll, fund, brm, brr, brc):
    """One combination over bars [a, n) in one chunk, recording its equity and trades; the
    indicators run from bar 0 (``ctx``'s buffer holds all n bars)."""
    ctx[X_T0], ctx[X_T1] = 0, n
    indicators(ctx, groups, ngroups)
    record = n >= 0  # True, as a variable (see sweep_block)
    j = n - n  # 0, as a variable: a literal argument would compile a second simulate
    simulate(j, a, n, n, ctx, frame, iframe, fns, o, h, lo, c, start_bar, R, D, slip, comm, next_open, window_end,
             moments, F, I, record, eq, tri, trf, perp, lh, ll, fund, brm, brr, brc)


@njit(cache=True, error_model="numpy")
def run_indicators(n, chunk, ctx, groups, ngroups, moves, nmoves, nodes, out):
    """The values of the nodes ``nodes`` over bars [0, n), computed chunk by chunk as a sweep does."""
    table = int_ptr(ctx[X_NODES])
    buf = float_ptr(ctx[X_BUF])
    for a in range(0, n, chunk):
        z = min(n, a + chunk)
        ctx[X_T0], ctx[X_T1] = a, z
        indicators(ctx, groups, ngroups)
        for k in range(nodes.shape[0]):
            row = table[nodes[k] * NODE_COLS + N_ROW]
            for t in range(a, z):
                out[k, t] = buf[row + t - a]
        keep_margins(ctx, moves, nmoves)
