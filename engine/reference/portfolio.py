"""Portfolio: cash, the one long position, its stop-loss and the trade list."""

from __future__ import annotations

from ..trade import Trade
from .execution import ExecutionEngine
from .feed import Candle


class Portfolio:
    def __init__(self, capital: float, stop_loss: float | None, execution: ExecutionEngine):
        self.cash = float(capital)
        self.qty = 0.0
        self.stop_loss = stop_loss
        self.execution = execution
        self.trades: list[Trade] = []
        self.total_fees = 0.0
        self._entry: tuple[int, int, float, float, float] | None = None  # bar, time, price, fee, cost

    @property
    def in_position(self) -> bool:
        return self._entry is not None

    @property
    def entry_bar(self) -> int:
        return self._entry[0]

    @property
    def stop_level(self) -> float | None:
        if self._entry is None or self.stop_loss is None:
            return None
        return self._entry[2] * (1.0 - self.stop_loss)

    def equity(self, close: float) -> float:
        return self.cash + self.qty * close

    def buy(self, candle: Candle, ref_price: float) -> None:
        """Deploy all cash: qty = cash / (price * (1 + commission))."""
        ex = self.execution
        price = ex.buy_price(ref_price)
        qty = self.cash / (price * (1.0 + ex.commission))
        fee = ex.fee(qty, price)
        self.cash = self.cash - qty * price - fee
        self.qty = qty
        self.total_fees += fee
        self._entry = (candle.index, candle.open_time, price, fee, qty * price + fee)

    def sell(self, candle: Candle, price: float, reason: str) -> None:
        """Close the position at an already-slipped ``price``."""
        fee = self.execution.fee(self.qty, price)
        self.cash = self.cash + self.qty * price - fee
        self.total_fees += fee
        self._record(candle, price, fee, reason)
        self.qty = 0.0
        self._entry = None

    def stop_exit_price(self, candle: Candle) -> float | None:
        """The stop's fill on this bar, if it triggers: a gap below the level fills at the open."""
        level = self.stop_level
        if level is None:
            return None
        if candle.open <= level:
            return self.execution.sell_price(candle.open)
        if candle.low <= level:
            return self.execution.sell_price(level)
        return None

    def mark_open_trade(self, last: Candle) -> None:
        """Report a position still open at the end, marked at the last close with no exit costs."""
        if self._entry is not None:
            self._record(last, last.close, 0.0, "open")

    def _record(self, candle: Candle, price: float, exit_fee: float, reason: str) -> None:
        bar, time, entry_price, entry_fee, cost = self._entry
        pnl = self.qty * price - exit_fee - cost
        self.trades.append(Trade(bar, candle.index, time, candle.open_time, entry_price, price, self.qty,
                                 entry_fee + exit_fee, pnl, pnl / cost, reason))
