"""Portfolio: cash, the one position (long or short), its exit levels and the trade list."""

from __future__ import annotations

import math

from ..position_rules import PositionRules
from ..trade import Trade
from .execution import ExecutionEngine
from .feed import Candle
from .rule import FLAT, PositionView


class Portfolio:
    def __init__(self, capital: float, rules: PositionRules, execution: ExecutionEngine):
        self.cash = float(capital)
        self.qty = 0.0  # always positive; side says which way
        self.side = 0  # +1 long, -1 short, 0 flat
        self.rules = rules
        self.execution = execution
        self.trades: list[Trade] = []
        self.total_fees = 0.0
        self.ruined = False  # equity reached 0 or below: no further trades
        self.entry_bar = self.entry_time = -1
        self.entry_price = self.entry_fee = self.cost = self.best = math.nan
        self.stop_level: float | None = None
        self.tp_level: float | None = None

    @property
    def flat(self) -> bool:
        return self.side == 0

    def equity(self, close: float) -> float:
        return self.cash - self.qty * close if self.side < 0 else self.cash + self.qty * close

    def fill_price(self, side: int, ref: float) -> float:
        """A buy (side +1) pays up, a sell (side -1) receives less."""
        return self.execution.buy_price(ref) if side > 0 else self.execution.sell_price(ref)

    def enter(self, candle: Candle, side: int, ref_price: float) -> None:
        """Commit ``size`` of equity (all cash while flat): qty = size*cash / (price*(1 + c))."""
        ex, r = self.execution, self.rules
        price = self.fill_price(side, ref_price)
        qty = r.size * self.cash / self._sizing_denominator(price)
        fee = ex.fee(qty, price)
        if side > 0:
            self.cash = self.cash - qty * price - fee
        else:
            self.cash = self.cash + qty * price - fee
        self.qty, self.side = qty, side
        self.total_fees += fee
        self.entry_bar, self.entry_time, self.entry_price, self.entry_fee = candle.index, candle.open_time, price, fee
        self.cost = qty * price + fee
        self.best = price
        k, tp = r.stop_loss, r.take_profit
        self.stop_level = None if k is None else price * (1.0 - k) if side > 0 else price * (1.0 + k)
        self.tp_level = None if tp is None else price * (1.0 + tp) if side > 0 else price * (1.0 - tp)

    def _sizing_denominator(self, price: float) -> float:
        return price * (1.0 + self.execution.commission)

    def exit(self, candle: Candle, price: float, reason: str) -> None:
        """Close the position at an already-slipped ``price``."""
        fee = self.execution.fee(self.qty, price)
        if self.side > 0:
            self.cash = self.cash + self.qty * price - fee
        else:
            self.cash = self.cash - self.qty * price - fee
        self.total_fees += fee
        self._record(candle, price, fee, reason)
        self.qty, self.side = 0.0, 0
        if self.cash <= 0.0:
            self.ruined = True

    def adverse_level(self) -> tuple[float | None, str]:
        """The nearer of the stop and the trailing level (the stop on a tie), and its exit reason."""
        k = self.rules.trailing_stop
        trail = None if k is None else self.best * (1.0 - k) if self.side > 0 else self.best * (1.0 + k)
        stop = self.stop_level
        if stop is None:
            return trail, "trailing_stop"
        if trail is None or (stop >= trail if self.side > 0 else stop <= trail):
            return stop, "stop"
        return trail, "trailing_stop"

    def level_exit(self, candle: Candle) -> tuple[float, str] | None:
        """The exit a level forces within this bar, if any: the open decides a gap first, then an
        adverse level (stop or trailing) beats take-profit."""
        level, reason = self.adverse_level()
        tp = self.tp_level
        o, h, lo = candle.open, candle.high, candle.low
        cover = -self.side  # the exit trade's side: a long sells, a short buys
        if self.side > 0:
            adverse_gap, tp_gap = level is not None and o <= level, tp is not None and o >= tp
            adverse_hit, tp_hit = level is not None and lo <= level, tp is not None and h >= tp
        else:
            adverse_gap, tp_gap = level is not None and o >= level, tp is not None and o <= tp
            adverse_hit, tp_hit = level is not None and h >= level, tp is not None and lo <= tp
        if adverse_gap:
            return self.fill_price(cover, o), reason
        if tp_gap:
            return self.fill_price(cover, o), "take_profit"
        if adverse_hit:
            return self.fill_price(cover, level), reason
        if tp_hit:
            return self.fill_price(cover, tp), "take_profit"
        return None

    def track(self, candle: Candle) -> None:
        """After the bar's level checks: the best price now includes this bar's high (long) / low (short)."""
        self.best = max(self.best, candle.high) if self.side > 0 else min(self.best, candle.low)

    def view(self, candle: Candle) -> PositionView:
        if self.side == 0:
            return FLAT
        ep = self.entry_price
        return PositionView(self.side, ep, candle.index - self.entry_bar, self.side * (candle.close - ep) / ep,
                            self.best)

    def mark_open_trade(self, last: Candle) -> None:
        """Report a position still open at the end, marked at the last close with no exit costs."""
        if self.side != 0:
            self._record(last, last.close, 0.0, "open")

    def _record(self, candle: Candle, price: float, exit_fee: float, reason: str) -> None:
        if self.side > 0:
            pnl = self.qty * price - exit_fee - self.cost
        else:
            pnl = self.qty * (self.entry_price - price) - self.entry_fee - exit_fee
        self.trades.append(Trade(self.entry_bar, candle.index, self.entry_time, candle.open_time, self.entry_price,
                                 price, self.qty, self.entry_fee + exit_fee, pnl, pnl / self.cost, reason,
                                 "long" if self.side > 0 else "short"))
