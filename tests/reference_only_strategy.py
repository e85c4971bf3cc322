"""A strategy that needs position state (bars held), so it has no compiled signal rule."""

from __future__ import annotations

from engine.strategies import Action, Bound, Strategy


class TimedExit(Strategy):
    """Buy every time flat; sell after holding ``hold_bars`` bars."""

    name = "timed_exit"
    hold_bars: int = 5
    bounds = {"hold_bars": Bound(1)}

    def reset(self) -> None:
        self._held = 0

    def on_candle(self, candle, in_position: bool) -> Action:
        if not in_position:
            self._held = 0
            return Action.BUY
        self._held += 1
        return Action.SELL if self._held >= self.hold_bars else Action.HOLD
