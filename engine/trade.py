"""A round trip, as both engines report it."""

from __future__ import annotations

from typing import NamedTuple

#: every exit_reason, in the order of the fast path's codes
EXIT_REASONS = ("signal", "stop", "trailing_stop", "take_profit", "time", "bust", "open", "window_end",
                "liquidation")


# A NamedTuple rather than a frozen dataclass: just as immutable, and built ~10x faster
# (a report re-simulates every combination's trade list, tens of thousands of trades).
class Trade(NamedTuple):
    entry_bar: int
    exit_bar: int
    entry_time: int  # open time (UTC ms) of the entry bar
    exit_time: int  # open time of the exit bar (the last bar for an open trade)
    entry_price: float  # fill price, slippage included
    exit_price: float  # fill price; the last close for an open trade
    qty: float  # always positive; see direction
    fees: float  # entry fee + exit fee
    pnl: float  # net of both fees
    ret: float  # pnl / (qty * entry_price / leverage + entry fee)
    exit_reason: str  # one of EXIT_REASONS
    direction: str = "long"  # or "short"
    funding: float = 0.0  # net funding received while held (perp; included in pnl)
    leverage: float = 1.0  # perp: the combination's leverage; spot: 1

    @property
    def closed(self) -> bool:
        return self.exit_reason != "open"


#: The trade's field names as written to trades/*.csv and report.html (``return`` for ``ret``).
JSON_KEYS = tuple("return" if f == "ret" else f for f in Trade._fields)
