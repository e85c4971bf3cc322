"""The reference engine's perp account (docs/semantics.md, "Perpetual futures", P1-P5).

The position's cash is kept as ``free + WB − s·qty·entry``, so equity, a normal exit and the
spot pnl formulas read as the spot portfolio's (P2); WB, free cash and the liquidation price are
kept beside it."""

from __future__ import annotations

import math

from ..perp.brackets import liquidation_price, lookup
from ..perp.inputs import PerpInputs
from ..position_rules import PositionRules
from ..trade import Trade
from .execution import ExecutionEngine
from .feed import Candle
from .portfolio import Portfolio


class PerpPortfolio(Portfolio):
    def __init__(self, capital: float, rules: PositionRules, execution: ExecutionEngine, perp: PerpInputs):
        super().__init__(capital, rules, execution)
        self.perp = perp
        self.leverage = rules.leverage
        self.wb = self.free = self.margin = self.lp = self.mmr = self.cum = math.nan
        self.funding = 0.0  # the open trade's
        self.total_funding = 0.0

    def enter(self, candle: Candle, side: int, ref_price: float) -> None:
        """P1: qty = size·E / (fill·(1/L + c)); M = qty·fill/L; free cash = E − M − fee."""
        cash_before = self.cash
        super().enter(candle, side, ref_price)
        qty, price = self.qty, self.entry_price
        self.margin = qty * price / self.leverage
        self.free = cash_before - self.margin - self.entry_fee
        self.wb = self.margin
        self.mmr, self.cum = lookup(self.perp.brackets, qty * price)
        self.lp = liquidation_price(side, qty, price, self.wb, self.mmr, self.cum)
        self.funding = 0.0

    def _sizing_denominator(self, price: float) -> float:
        return price * (1.0 / self.leverage + self.execution.commission)

    def fund(self, t: int) -> bool:
        """P3 at the start of bar t: −s·qty·F_t into WB (and the cash); True when WB is now ≤ 0."""
        f = float(self.perp.funding[t])
        if self.flat or f == 0.0:
            return False
        amt = self.qty * f
        if self.side == 1:
            amt = -amt
        self.wb += amt
        self.cash += amt
        self.funding += amt
        self.total_funding += amt
        self.lp = liquidation_price(self.side, self.qty, self.entry_price, self.wb, self.mmr, self.cum)
        return self.wb <= 0.0

    def liquidation_reached(self, t: int) -> bool:
        """P4: the mark (or trade) low at or below a long's LP, the high at or above a short's."""
        if self.side > 0:
            return float(self.perp.liq_low[t]) <= self.lp
        return float(self.perp.liq_high[t]) >= self.lp

    def liquidate(self, candle: Candle) -> None:
        """The whole WB is lost: free cash gains nothing; exit price LP, no exit fee."""
        self.cash = self.free
        pnl = -(self.margin + self.entry_fee)
        self._append(candle, self.lp, 0.0, pnl, "liquidation")
        self.qty, self.side = 0.0, 0
        if self.cash <= 0.0:
            self.ruined = True

    def _record(self, candle: Candle, price: float, exit_fee: float, reason: str) -> None:
        if self.side > 0:
            pnl = self.qty * price - exit_fee - self.cost
        else:
            pnl = self.qty * (self.entry_price - price) - self.entry_fee - exit_fee
        self._append(candle, price, exit_fee, pnl + self.funding, reason)

    def _append(self, candle: Candle, price: float, exit_fee: float, pnl: float, reason: str) -> None:
        self.trades.append(Trade(self.entry_bar, candle.index, self.entry_time, candle.open_time, self.entry_price,
                                 price, self.qty, self.entry_fee + exit_fee, pnl, pnl / (self.margin + self.entry_fee),
                                 reason, "long" if self.side > 0 else "short", self.funding, self.leverage))
