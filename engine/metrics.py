"""Performance metrics: one pure function over an equity series and its trades.

``E`` is the equity series: ``E[0]`` is the starting capital and ``E[i]`` the
equity at the close of bar ``i-1`` (cash + qty × close), so a run over ``N``
bars has ``T = N`` bar returns ``r[i] = E[i]/E[i-1] - 1``. ``P`` is bars per
365-day year. A metric with no defined value is ``None`` (JSON ``null``).

======================  ===================================================
total_return            E_T/E_0 - 1
pnl                     E_T - E_0
sharpe                  mean(r)/std(r, ddof=1)*sqrt(P)        None if T<2 or std=0
sortino                 mean(r)/sqrt(mean(min(r,0)^2))*sqrt(P)  None if no r<0
max_drawdown            max(1 - E/cummax(E)), a fraction
max_drawdown_abs        cummax(E) - E where that fraction peaks (first time)
max_drawdown_duration   most bars spent since the last running maximum
cagr                    (E_T/E_0)^(P/T) - 1
calmar                  cagr/max_drawdown                     None if no drawdown
n_trades                closed trades (every exit but "open")
win_rate                share of closed trades with pnl > 0   None if no trades
profit_factor           winning pnl / |losing pnl|            None if no losing pnl
avg_trade_return        mean trade return                     None if no trades
best_trade, worst_trade max / min trade return                None if no trades
expectancy              mean trade pnl (quote currency)       None if no trades
exposure                share of bars at whose close a position is held
avg_bars_held           mean of exit bar - entry bar          None if no trades
total_fees              every fee paid, the open trade's entry fee included
buy_and_hold_return     close_last/close_first - 1
final_equity            E_T
total_funding           net funding received, every trade (the open one too)  (perp; 0 for spot)
n_liquidations          trades closed by liquidation                          (perp; 0 for spot)
======================  ===================================================

An open position at the end counts in the equity-based metrics only. A run that
busts (a short's equity reached 0 or below, so E_T <= 0) has no sharpe, sortino,
cagr or calmar: returns on non-positive equity mean nothing.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .trade import Trade

METRICS = ("sharpe", "sortino", "total_return", "pnl", "cagr", "calmar", "max_drawdown", "max_drawdown_abs",
           "max_drawdown_duration", "n_trades", "win_rate", "profit_factor", "avg_trade_return", "best_trade",
           "worst_trade", "expectancy", "exposure", "avg_bars_held", "total_fees", "buy_and_hold_return",
           "final_equity", "total_funding", "n_liquidations")
INT_METRICS = frozenset({"max_drawdown_duration", "n_trades", "n_liquidations"})
#: Metrics where smaller is better: they rank lowest first, and a fall is an improvement.
ASCENDING = frozenset({"max_drawdown", "max_drawdown_abs", "max_drawdown_duration", "total_fees"})

#: The holdout's columns a validated sweep adds to the summary, and the metric each is (on the holdout window).
OOS_METRICS = {"oos_sharpe": "sharpe", "oos_total_return": "total_return", "oos_max_drawdown": "max_drawdown",
               "oos_n_trades": "n_trades"}
#: The probabilistic and deflated Sharpe ratios a validated sweep adds (``report.rank_by`` accepts them).
SHARPE_TESTS = ("psr", "dsr")
#: Every column a validated sweep adds to the summary, in the summary's order.
VALIDATION_COLUMNS = (*OOS_METRICS, *SHARPE_TESTS)
#: What ``report.rank_by`` accepts (the Sharpe tests only with a ``validation`` section).
RANKABLE = METRICS + SHARPE_TESTS


def _opt(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def compute_metrics(equity: np.ndarray, trades: Sequence[Trade], *, periods_per_year: float,
                    close_first: float, close_last: float, bars_in_position: int) -> dict:
    """Every metric, from the equity series (length T+1) and the trade list."""
    E = np.asarray(equity, dtype=np.float64)
    T = len(E) - 1
    with np.errstate(divide="ignore", invalid="ignore"):  # a bust's zero equity: r is nan, and unused
        r = E[1:] / E[:-1] - 1.0
    busted = E[-1] <= 0.0  # a short bust: equity stays at E_T <= 0 from then on
    sq = math.sqrt(periods_per_year)
    sharpe = sortino = None
    if T >= 2 and not busted:
        sd = float(np.std(r, ddof=1))
        if sd > 0:
            sharpe = float(np.mean(r)) / sd * sq
    if T >= 1 and not busted:
        down = float(np.mean(np.minimum(r, 0.0) ** 2))
        if down > 0:
            sortino = float(np.mean(r)) / math.sqrt(down) * sq
    peak = np.maximum.accumulate(E)
    dd = 1.0 - E / peak
    i_max = int(np.argmax(dd))
    max_dd = float(dd[i_max])
    at_peak = np.flatnonzero(E >= peak)
    last_peak = at_peak[np.searchsorted(at_peak, np.arange(T + 1), side="right") - 1]
    duration = int(np.max(np.arange(T + 1) - last_peak))
    growth = E[-1] / E[0]
    with np.errstate(over="ignore"):  # a short run's huge annualised growth overflows to inf: None
        cagr = growth ** (periods_per_year / T) - 1.0 if T > 0 and not busted else None

    closed = [t for t in trades if t.closed]
    pnls = np.array([t.pnl for t in closed])
    rets = np.array([t.ret for t in closed])
    wins = pnls[pnls > 0].sum()
    losses = pnls[pnls < 0].sum()
    n = len(closed)
    return {
        "sharpe": _opt(sharpe),
        "sortino": _opt(sortino),
        "total_return": float(growth - 1.0),
        "pnl": float(E[-1] - E[0]),
        "cagr": _opt(cagr),
        "calmar": _opt(cagr / max_dd) if (cagr is not None and max_dd > 0) else None,
        "max_drawdown": max_dd,
        "max_drawdown_abs": float(peak[i_max] - E[i_max]),
        "max_drawdown_duration": duration,
        "n_trades": n,
        "win_rate": float((pnls > 0).sum() / n) if n else None,
        "profit_factor": _opt(wins / -losses) if losses < 0 else None,
        "avg_trade_return": float(rets.mean()) if n else None,
        "best_trade": float(rets.max()) if n else None,
        "worst_trade": float(rets.min()) if n else None,
        "expectancy": float(pnls.mean()) if n else None,
        "exposure": bars_in_position / T if T > 0 else None,
        "avg_bars_held": float(np.mean([t.exit_bar - t.entry_bar for t in closed])) if n else None,
        "total_fees": float(sum(t.fees for t in trades)),
        "buy_and_hold_return": float(close_last / close_first - 1.0),
        "final_equity": float(E[-1]),
        "total_funding": float(sum(t.funding for t in trades)),
        "n_liquidations": sum(t.exit_reason == "liquidation" for t in trades),
    }
