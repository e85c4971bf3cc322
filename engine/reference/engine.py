"""BacktestingEngine: the candle loop that ties feed, strategy, execution and portfolio together."""

from __future__ import annotations

import numpy as np

from ..candles import Candles
from ..execution import Execution
from ..metrics import compute_metrics
from ..result import RunResult
from ..strategies import Action, Strategy
from ..timeutil import periods_per_year
from .execution import ExecutionEngine
from .feed import DataFeed
from .portfolio import Portfolio


class BacktestingEngine:
    def __init__(self, candles: Candles, strategy: Strategy, execution: Execution, *,
                 stop_loss: float | None = None):
        self.feed = DataFeed(candles)
        self.candles = candles
        self.strategy = strategy
        self.capital = execution.capital
        self.execution = ExecutionEngine(execution.slippage, execution.commission)
        self.stop_loss = stop_loss
        self.next_open = execution.next_open

    def run(self) -> RunResult:
        n = len(self.feed)
        pf = Portfolio(self.capital, self.stop_loss, self.execution)
        ex = self.execution
        self.strategy.reset()
        equity = np.empty(n + 1)
        equity[0] = self.capital
        pending = Action.HOLD
        in_position_bars = 0
        candle = None
        for candle in self.feed:
            t = candle.index
            # 1. next_open: yesterday's decision fills at today's open.
            if pending == Action.BUY and not pf.in_position:
                pf.buy(candle, candle.open)
            elif pending == Action.SELL and pf.in_position:
                pf.sell(candle, ex.sell_price(candle.open), "signal")
            pending = Action.HOLD
            # 2. the stop, before the strategy acts; not on a close-fill entry bar.
            stopped = False
            if pf.in_position and (self.next_open or t > pf.entry_bar):
                price = pf.stop_exit_price(candle)
                if price is not None:
                    pf.sell(candle, price, "stop")
                    stopped = True
            # 3. the strategy decides on this bar's close.
            action = self.strategy.on_candle(candle, pf.in_position)
            if self.next_open:
                if action != Action.HOLD and t < n - 1:
                    pending = action
            elif not stopped:  # at most one fill per bar
                if action == Action.BUY and not pf.in_position:
                    pf.buy(candle, candle.close)
                elif action == Action.SELL and pf.in_position:
                    pf.sell(candle, ex.sell_price(candle.close), "signal")
            if pf.in_position:
                in_position_bars += 1
            equity[t + 1] = pf.equity(candle.close)
        if candle is not None:
            pf.mark_open_trade(candle)
        c = self.candles
        metrics = compute_metrics(equity, pf.trades, periods_per_year=periods_per_year(c.interval_ms),
                                  close_first=float(c.close[0]), close_last=float(c.close[-1]),
                                  bars_in_position=in_position_bars)
        return RunResult(equity, pf.trades, metrics)
