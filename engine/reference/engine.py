"""BacktestingEngine: the candle loop that ties feed, strategy, execution and portfolio together."""

from __future__ import annotations

import numpy as np

from ..candles import Candles
from ..execution import Execution
from ..metrics import compute_metrics
from ..perp.inputs import PerpInputs
from ..position_rules import PositionRules
from ..result import RunResult
from ..signals import ENTER_LONG, ENTER_SHORT, direction_code, entry_mask, exit_masks
from ..strategies import Strategy
from ..timeutil import periods_per_year
from .execution import ExecutionEngine
from .feed import DataFeed
from .perp import PerpPortfolio
from .portfolio import Portfolio
from .rule import FLAT, RuleRunner

EXIT_ORDER = 2  # a pending order that closes the position (entries are +1 long, -1 short)


class BacktestingEngine:
    def __init__(self, candles: Candles, strategy: Strategy, execution: Execution,
                 rules: PositionRules = PositionRules(), perp: PerpInputs | None = None):
        self.feed = DataFeed(candles)
        self.candles = candles
        self.strategy = strategy
        self.capital = execution.capital
        self.execution = ExecutionEngine(execution.slippage, execution.commission)
        self.rules = rules
        self.next_open = execution.next_open
        self.perp = perp  # USDⓈ-M rules P1-P5 when given

    def run(self, window: tuple[int, int] | None = None, test: bool = False) -> RunResult:
        """docs/semantics.md, "Order of events within bar t", step by step; on bars [a, b) of
        ``window`` (a test window if ``test``) by the rules of its "Windows" section."""
        a, n = (0, len(self.feed)) if window is None else window
        rules = self.rules
        perp = self.perp
        pf = Portfolio(self.capital, rules, self.execution) if perp is None else \
            PerpPortfolio(self.capital, rules, self.execution, perp)
        rule = RuleRunner(self.strategy)
        d = direction_code(rules.direction)
        entries = entry_mask(d)
        exit_long, exit_short = exit_masks(d)
        equity = np.empty(n - a + 1)
        equity[0] = self.capital
        pending = 0
        in_position_bars = 0
        candle = None
        for candle in self.feed:
            t = candle.index
            if t < a:  # W2, W3: the indicators warm up; nothing acts
                rule.step(candle, FLAT)
                continue
            if t >= n:
                break
            last = test and t == n - 1  # W5: a test window's last bar
            filled = False
            # 0. perp: funding first (P3); a wallet balance at or below 0 is liquidated at once (P4).
            if perp is not None and pf.fund(t):
                pf.liquidate(candle)
                filled = True
                pending = 0
            # 1. next_open: yesterday's decision fills at today's open.
            if pending == EXIT_ORDER and not pf.flat:
                pf.exit(candle, pf.fill_price(-pf.side, candle.open), "signal")
                filled = True
            elif pending in (1, -1) and pf.flat and not last:
                pf.enter(candle, pending, candle.open)
                filled = True
            pending = 0
            # 2. perp: liquidation (P4), which beats every level; then the levels (stop, trailing
            # stop, take-profit), before the strategy acts.
            if perp is not None and not pf.flat and pf.liquidation_reached(t):
                pf.liquidate(candle)
                filled = True
            if not pf.flat:
                hit = pf.level_exit(candle)
                if hit is not None:
                    pf.exit(candle, *hit)
                    filled = True
            # 3. the best price since the entry takes in this bar.
            if not pf.flat:
                pf.track(candle)
            # 4. at the close, before the strategy: a short's bust, then the time limit.
            if not pf.flat:
                close_exit = pf.fill_price(-pf.side, candle.close)
                if pf.side < 0 and perp is None and pf.equity(candle.close) <= 0.0:
                    pf.exit(candle, close_exit, "bust")
                    filled = True
                elif rules.max_bars is not None and t >= pf.entry_bar + rules.max_bars:
                    pf.exit(candle, close_exit, "time")
                    filled = True
            # 5. the strategy decides on this bar's close; one fill per bar with fill=close.
            code = rule.step(candle, pf.view(candle))
            if pf.flat and not last:
                want = code & entries
                side = 1 if want == ENTER_LONG else -1 if want == ENTER_SHORT else 0  # both: they cancel
                if side != 0 and not pf.ruined:
                    if self.next_open:
                        if t < n - 1:
                            pending = side
                    elif not filled:
                        pf.enter(candle, side, candle.close)
            elif not pf.flat and code & (exit_long if pf.side > 0 else exit_short):
                if self.next_open:
                    if t < n - 1:
                        pending = EXIT_ORDER
                else:
                    pf.exit(candle, pf.fill_price(-pf.side, candle.close), "signal")
            if last and not pf.flat:  # W5: closed at the close, with slippage and commission
                pf.exit(candle, pf.fill_price(-pf.side, candle.close), "window_end")
            if not pf.flat:
                in_position_bars += 1
            equity[t - a + 1] = pf.equity(candle.close)
            end = candle
        if n > a:
            pf.mark_open_trade(end)
        c = self.candles
        metrics = compute_metrics(equity, pf.trades, periods_per_year=periods_per_year(c.interval_ms),
                                  close_first=float(c.close[a]), close_last=float(c.close[n - 1]),
                                  bars_in_position=in_position_bars)
        if perp is not None:  # summed as the events came, as the fast path sums them
            metrics["total_funding"] = pf.total_funding
        return RunResult(equity, pf.trades, metrics)
