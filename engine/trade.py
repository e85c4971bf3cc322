"""A round trip, as both engines report it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trade:
    entry_bar: int
    exit_bar: int
    entry_time: int  # open time (UTC ms) of the entry bar
    exit_time: int  # open time of the exit bar (the last bar for an open trade)
    entry_price: float  # fill price, slippage included
    exit_price: float  # fill price; the last close for an open trade
    qty: float
    fees: float  # entry fee + exit fee
    pnl: float  # net of both fees
    ret: float  # pnl / (qty * entry_price + entry fee)
    exit_reason: str  # "signal", "stop" or "open"

    @property
    def closed(self) -> bool:
        return self.exit_reason != "open"

    def as_json(self) -> dict:
        return {"entry_bar": self.entry_bar, "exit_bar": self.exit_bar, "entry_time": self.entry_time,
                "exit_time": self.exit_time, "entry_price": self.entry_price, "exit_price": self.exit_price,
                "qty": self.qty, "fees": self.fees, "pnl": self.pnl, "return": self.ret,
                "exit_reason": self.exit_reason}
