"""Accounting shared by the compiled loop and every rule's hold loops, inlined into each.

Not cached on their own: they are compiled into the loop and the rule units, whose cache keys
cover this file (``engine.fast.units``), so an edit here never leaves a stale compiled copy.
"""

from numba import njit


@njit(nogil=True, error_model="numpy", inline="always")
def enter(side, price, cash, size, comm, stop_k, tp_k, inv_lev):
    """Commit ``size`` of the cash at a slipped ``price``: qty, fee, cash after, cost basis,
    stop level, take-profit level. A rule that is off (k = inf) puts its level out of reach.
    ``inv_lev`` is 1/L (1.0 for spot: qty = size·cash / (price·(1 + c)))."""
    qty = size * cash / (price * (inv_lev + comm))
    fee = comm * qty * price
    if side == 1:
        return qty, fee, cash - qty * price - fee, qty * price + fee, price * (1.0 - stop_k), price * (1.0 + tp_k)
    return qty, fee, cash + qty * price - fee, qty * price + fee, price * (1.0 + stop_k), price * (1.0 - tp_k)


@njit(nogil=True, error_model="numpy", inline="always")
def mark(e, i, prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3,
         sum_r4, moments):
    """Fold equity ``e`` at equity index ``i`` into the return and drawdown accumulators (Σr³ and
    Σr⁴ too when ``moments``: validation's deflated Sharpe)."""
    if at_peak == 1:
        peak_i = i - 1
    r = e / prev - 1.0
    r2 = r * r
    sum_r += r
    sum_r2 += r2
    if moments:
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


@njit(nogil=True, error_model="numpy", inline="always")
def liq_price(side, qty, entry, wb, mmr, cum):
    """P4: LP = (WB + cum − s·qty·entry) / (qty·mmr − s·qty) (engine.perp.brackets.liquidation_price)."""
    if side == 1:
        return (wb + cum - qty * entry) / (qty * mmr - qty)
    return (wb + cum + qty * entry) / (qty * mmr + qty)


@njit(nogil=True, error_model="numpy", inline="always")
def perp_open(side, qty, price, fee, cash_before, lev, brm, brr, brc):
    """P1, P4 at an entry: initial margin M, free cash, the bracket's (mmr, cum) for the entry
    notional and the liquidation price."""
    margin = qty * price / lev
    free = cash_before - margin - fee
    notional = qty * price
    k = 0
    while k < brm.shape[0] - 1 and notional > brm[k]:
        k += 1
    mmr, cum = brr[k], brc[k]
    return margin, free, mmr, cum, liq_price(side, qty, price, margin, mmr, cum)
