"""The code compiled per strategy: its rule on one bar, and the tight loops with the rule inlined.

For a strategy this writes the source of a module (``engine.fast.units`` names it after a hash of
everything compiled into it and loads it) holding:

* ``bar``: the rule's code on one bar, fed its arguments by name (the full bar of the loop);
* ``scan_long``, ``scan_short``, ``scan_both``: the first bar whose rule says enter, flat;
* ``hold_long``/``hold_short`` and their ``_both`` forms, with and without the moment sums
  (``_m``): mark a position to market until a level comes within reach, the time limit or a bust
  arrives, or the exit rule fires;
* the same hold loops for USDⓈ-M perps (``_perp``): they also book each bar's funding into the
  isolated wallet WB and move the liquidation price with it (P3, P4), and stop at the bar whose
  funding or price range would liquidate, so a hold runs through funding bars uninterrupted.

Each is a ``cfunc`` with a signature from ``engine.fast.native``, called through its address by
the compiled loop (``engine.fast.loop``), and compiled only when a sweep needs it. In each loop
the rule is inlined and the signal mask is a constant, so LLVM drops the rule's tests for the
codes the loop ignores (the short side of a long-only sweep).

The rule and the kernel compile with NumPy's error model. Under the default (Python's) every
division carries a zero test that may raise, and since raising is a side effect LLVM must then
evaluate the whole rule on every bar, including the parts a loop ignores. Division by zero in a
rule gives inf/nan here where the reference engine raises ZeroDivisionError.
"""

from __future__ import annotations

from typing import NamedTuple

from ..strategies import Strategy

#: the loops of a rule unit, by name: (kind, signal mask constant, moment sums, perp)
LOOPS = {
    "scan_long": ("scan", "ENTER_LONG", False, False),
    "scan_short": ("scan", "ENTER_SHORT", False, False),
    "scan_both": ("scan", "ENTER_LONG | ENTER_SHORT", False, False),
    **{f"hold_{side}{both}{p}{m}": ("hold_" + side, mask, m == "_m", p == "_perp")
       for side, plain, with_both in (("long", "EXIT_LONG", "EXIT_LONG | ENTER_SHORT"),
                                      ("short", "EXIT_SHORT", "EXIT_SHORT | ENTER_LONG"))
       for both, mask in (("", plain), ("_both", with_both)) for p in ("", "_perp") for m in ("", "_m")},
}

_PRICE_EXPR = {"open": "o[{t}]", "high": "h[{t}]", "low": "lo[{t}]", "close": "c[{t}]", "volume": "v[{t}]"}


class ParamSlot(NamedTuple):
    name: str
    array: str  # "f": float parameters, "i": integer and boolean ones
    column: int
    boolean: bool


def param_layout(strategy: type[Strategy]) -> list[ParamSlot]:
    """Where each parameter the rule reads sits in the runner's float or integer parameter array."""
    specs = strategy.param_specs()
    slots, nf, ni = [], 0, 0
    for name in strategy.binding().params:
        if specs[name][0] is float:
            slots.append(ParamSlot(name, "f", nf, False))
            nf += 1
        else:
            slots.append(ParamSlot(name, "i", ni, specs[name][0] is bool))
            ni += 1
    return slots


def _call(strategy: type[Strategy], t: str, position: str, entry_price: str, bars_held: str, best: str) -> str:
    """The rule's call at bar ``t`` with the position view given as expressions."""
    b = strategy.binding()
    view = {"position": position, "entry_price": entry_price, "bars_held": bars_held, "best_price": best,
            "unrealised_return": f"({position} * (c[{t}] - {entry_price}) / {entry_price})"}
    args = []
    for source, name in b.arguments:
        if source == "price":
            args.append(_PRICE_EXPR[name].format(t=t))
        elif source == "indicator":
            args.append(f"V{b.indicators.index(name)}[{t}]")
        elif source == "param":
            args.append(f"P{b.params.index(name)}")
        else:
            args.append(view[name])
    return f"signal_fn({', '.join(args)})"


def _prologue(strategy: type[Strategy]) -> list[str]:
    """Lines that bind the prices, this combination's indicator rows and its parameters (raw
    pointers: no bounds, no reference counts)."""
    b = strategy.binding()
    layout = param_layout(strategy)
    nf = sum(s.array == "f" for s in layout)
    ni = len(layout) - nf
    lines = [
        "    ctx = ctx_p",
        "    o, h = float_ptr(ctx[X_O]), float_ptr(ctx[X_H])",
        "    lo, c, v = float_ptr(ctx[X_L]), float_ptr(ctx[X_C]), float_ptr(ctx[X_V])",
    ]
    if b.indicators:
        lines += [
            "    t0, buf = ctx[X_T0], ctx[X_BUF]",
            "    nodes, slots = int_ptr(ctx[X_NODES]), int_ptr(ctx[X_SLOTS])",
        ]
        for k in range(len(b.indicators)):
            lines.append(f"    V{k} = float_ptr(buf + 8 * (nodes[slots[j * {len(b.indicators)} + {k}] * NODE_COLS"
                         " + N_ROW] - t0))")
    if nf:
        lines.append("    fp = float_ptr(ctx[X_FP])")
    if ni:
        lines.append("    ip = int_ptr(ctx[X_IP])")
    for k, s in enumerate(layout):
        width = nf if s.array == "f" else ni
        lines.append(f"    P{k} = {'fp' if s.array == 'f' else 'ip'}[j * {width} + {s.column}]"
                     + (" != 0" if s.boolean else ""))
    lines.append("    nan = np.nan")
    return lines


def _scan(strategy, name: str, mask: str) -> list[str]:
    flat = lambda t: _call(strategy, t, "0", "nan", "0", "nan")  # noqa: E731
    return [
        f"def {name}(ctx_p, j, u, t1):",
        '    """First bar in [u, t1) whose rule says enter (t1 if none)."""',
        *_prologue(strategy),
        f"    m = {mask}",
        "    # the bar right after an exit first: under `both` the next entry is often there",
        f"    if u < t1 and ({flat('u')} & m) != 0:",
        "        return u",
        "    # eight bars per test of the loop exit: fewer taken branches (measured 7% faster)",
        "    while u + 8 <= t1:",
        "        hit = 0",
        "        for k in range(u, u + 8):",
        f"            hit |= {flat('k')}",
        "        if hit & m:",
        "            break",
        "        u += 8",
        f"    while u < t1 and ({flat('u')} & m) == 0:",
        "        u += 1",
        "    return u",
    ]


def _hold(strategy, name: str, side: str, mask: str, moments: bool, perp: bool = False) -> list[str]:
    long = side == "hold_long"
    call = _call(strategy, "t", "1" if long else "-1", "entry_price", "t - entry_bar", "b")
    acc = "prev, peak, peak_i, at_peak, sum_r, sum_r2, down2, max_dd, max_dd_abs, max_dur, dd_gate, sum_r3, sum_r4"
    equity = "cash + qty * c[t]" if long else "cash - qty * c[t]" if perp else "e"
    what = ("a level or the liquidation price comes within reach (an open beyond it implies the range reaches it), "
            "funding takes the wallet to 0" if perp else
            "a level comes within reach (an open beyond it implies the range reaches it)")
    body = [
        f"def {name}(ctx_p, j, t, t1):",
        f'    """Mark a {"long" if long else "short"} to market from bar t until {what}, the time limit arrives'
        + ("" if long or perp else ", equity reaches 0 (a bust)") + ' or the exit rule fires; that bar is returned."""',
        *_prologue(strategy),
        "    fr, ifr = float_ptr(ctx[X_FRAME]), int_ptr(ctx[X_IFRAME])",
        "    level, tp_level, best, trail_k = fr[H_LEVEL], fr[H_TP_LEVEL], fr[H_BEST], fr[H_TRAIL_K]",
        "    entry_price, cash, qty = fr[H_ENTRY_PRICE], fr[H_CASH], fr[H_QTY]",
        "    prev, peak, sum_r, sum_r2, down2 = fr[H_PREV], fr[H_PEAK], fr[H_SUM_R], fr[H_SUM_R2], fr[H_DOWN2]",
        "    max_dd, max_dd_abs, dd_gate = fr[H_MAX_DD], fr[H_MAX_DD_ABS], fr[H_DD_GATE]",
        "    sum_r3, sum_r4 = fr[H_SUM_R3], fr[H_SUM_R4]",
        "    end_bar, entry_bar, peak_i = ifr[HI_END_BAR], ifr[HI_ENTRY_BAR], ifr[HI_PEAK_I]",
        "    at_peak, max_dur = ifr[HI_AT_PEAK], ifr[HI_MAX_DUR]",
    ]
    if perp:
        body += [
            "    liq, fund = float_ptr(ctx[" + ("X_LIQ_LOW" if long else "X_LIQ_HIGH") + "]), float_ptr(ctx[X_FUND])",
            "    gate = float_ptr(ctx[" + ("X_GATE_LOW" if long else "X_GATE_HIGH") + "])",
            "    lp = fr[H_LIQ_PRICE]",
        ]
    body += [
        f"    m = {mask}",
        # a trailing stop that is off has trail_k = inf: its level is -inf (long) / inf (short)
        "    adverse = " + ("max(level, best * (1.0 - trail_k))" if long else "min(level, best * (1.0 + trail_k))"),
        "    while t < t1:",
    ]
    if perp:
        # P3 first in the bar, then P4 on the LP that funding moved: the same operations, in the
        # same order, as the full bar of engine.fast.loop.simulate, which takes the bar this stops at
        # (and then books its funding itself: nothing is committed here before every test passed).
        # One test per bar: a funding bar's gate is beyond any LP, so only it and a liquidation in
        # reach take the branch; WB and the funding sums stay in the frame.
        body += [
            "        funded = False",
            # written so that a NaN LP takes the branch too (the full bar then decides)
            "        if not " + ("gate[t] > lp" if long else "gate[t] < lp") + ":",
            "            f = fund[t]",
            "            if f == 0.0:",
            "                break",
            "            amt = qty * f",
            *(["            amt = -amt"] if long else []),
            "            nwb = fr[H_WB] + amt",
            f"            nlp = liq_price({1 if long else -1}, qty, entry_price, nwb, fr[H_MMR], fr[H_CUM])",
            "            if nwb <= 0.0:",
            "                break",
            "            if " + ("liq[t] <= nlp" if long else "liq[t] >= nlp") + ":",
            "                break",
            "            funded = True",
        ]
    body += [
        "        if " + ("lo[t] <= adverse" if long else "h[t] >= adverse") + ":",
        "            break",
        "        if " + ("h[t] >= tp_level" if long else "lo[t] <= tp_level") + ":  # inf / -inf when off",
        "            break",
        "        if t >= end_bar:",
        "            break",
    ]
    if not long and not perp:
        body += ["        e = cash - qty * c[t]",
                 "        if e <= 0.0:",
                 "            break"]
    body += [
        "        b = " + ("max(best, h[t])" if long else "min(best, lo[t])"),
        f"        if {call} & m:",
        "            break",
    ]
    if perp:
        body += [
            "        if funded:",
            "            fr[H_WB] = nwb",
            "            lp = nlp",
            "            cash += amt",
            "            fr[H_TRADE_FUNDING] += amt",
            "            fr[H_TOTAL_FUNDING] += amt",
        ]
    body += [
        "        best = b",
        "        adverse = " + ("max(level, best * (1.0 - trail_k))" if long else "min(level, best * (1.0 + trail_k))"),
        f"        {acc} = \\",
        f"            mark({equity}, t + 1, {acc}, {moments})",
        "        t += 1",
        "    fr[H_PREV], fr[H_PEAK], fr[H_SUM_R], fr[H_SUM_R2], fr[H_DOWN2] = prev, peak, sum_r, sum_r2, down2",
        "    fr[H_MAX_DD], fr[H_MAX_DD_ABS], fr[H_DD_GATE] = max_dd, max_dd_abs, dd_gate",
        "    fr[H_SUM_R3], fr[H_SUM_R4], fr[H_BEST] = sum_r3, sum_r4, best",
        "    ifr[HI_PEAK_I], ifr[HI_AT_PEAK], ifr[HI_MAX_DUR] = peak_i, at_peak, max_dur",
    ]
    if perp:
        body += ["    fr[H_LIQ_PRICE], fr[H_CASH] = lp, cash"]
    body += ["    return t"]
    return body


def _bar(strategy) -> list[str]:
    return [
        "def bar(ctx_p, j, t, position, entry_price, bars_held, best_price):",
        '    """The rule\'s code at bar t, with the position view as the loop sees it."""',
        *_prologue(strategy),
        f"    return {_call(strategy, 't', 'position', 'entry_price', 'bars_held', 'best_price')}",
    ]


HEADER = '''"""Generated by engine.fast.rule_unit for strategy {name} (rule {rule}); do not edit."""

import numpy as np
from numba import njit

from engine.fast.account import liq_price, mark
from engine.fast.native import float_ptr, int_ptr
from engine.fast.state import *  # noqa: F401,F403 - the layout
from engine.signals import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT
from {module} import {qualname} as _rule

signal_fn = njit(nogil=True, error_model="numpy")(_rule.py_func)
'''


def source(strategy: type[Strategy]) -> str:
    """The rule unit's module source for ``strategy``."""
    py = strategy.binding().rule.py_func
    parts = [HEADER.format(name=strategy.name, rule=f"{py.__module__}.{py.__qualname__}", module=py.__module__,
                           qualname=py.__qualname__), "\n".join(_bar(strategy))]
    for name, (kind, mask, moments, perp) in LOOPS.items():
        lines = _scan(strategy, name, mask) if kind == "scan" else _hold(strategy, name, kind, mask, moments, perp)
        parts.append("\n".join(lines))
    return "\n\n\n".join(parts) + "\n"
