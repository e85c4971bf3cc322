"""Per-combination position rules: direction, sizing and the exits (docs/semantics.md).

The config gives each rule one value or a list (swept like a strategy parameter);
``engine.grid`` crosses them with the strategy's parameters and
``StrategySweep.rules(i)`` hands one combination's rules to either engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from .signals import DIRECTIONS

#: the grid columns holding position rules, in grid order (after the strategy's parameters)
RULE_COLUMNS = ("direction", "size", "stop_loss", "take_profit", "trailing_stop", "max_bars", "leverage")


@dataclass(frozen=True)
class PositionRules:
    direction: str = "long"  # long | short | both
    size: float = 1.0  # fraction of equity committed per entry, in (0, 1]
    stop_loss: float | None = None  # fraction below (long) / above (short) the entry fill
    take_profit: float | None = None  # fraction above (long) / below (short) the entry fill
    trailing_stop: float | None = None  # fraction below the peak (long) / above the trough (short)
    max_bars: int | None = None  # closed at the close of bar entry_bar + max_bars
    leverage: float = 1.0  # data.market: um only (P1); spot runs keep 1

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction {self.direction!r}; expected one of {', '.join(DIRECTIONS)}")
        if not 0.0 < self.size <= 1.0:
            raise ValueError(f"size {self.size!r}; expected a fraction in (0, 1]")
        if not 1.0 <= self.leverage <= 125.0:
            raise ValueError(f"leverage {self.leverage!r}; expected a value in [1, 125]")
