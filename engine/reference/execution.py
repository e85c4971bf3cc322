"""ExecutionEngine: turns a reference price into a fill with slippage and commission."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExecutionEngine:
    slippage: float
    commission: float

    def buy_price(self, ref: float) -> float:
        return ref * (1.0 + self.slippage)

    def sell_price(self, ref: float) -> float:
        return ref * (1.0 - self.slippage)

    def fee(self, qty: float, price: float) -> float:
        return self.commission * qty * price
