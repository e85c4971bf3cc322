"""A strategy that needs position state: it exits after holding ``hold_bars`` bars.

Its rule reads the position view (``bars_held``), so it compiles and runs on the fast
path like any other, with identical results on both engines.
"""

from __future__ import annotations

from numba import njit

from engine.strategies import ENTER_LONG, EXIT_LONG, Bound, Strategy


@njit(cache=True)
def timed_exit_signal(position, bars_held, hold_bars):
    if position == 0:
        return ENTER_LONG
    return EXIT_LONG if bars_held >= hold_bars else 0


class TimedExit(Strategy):
    """Buy every time flat; sell after holding ``hold_bars`` bars."""

    name = "timed_exit"
    hold_bars: int = 5
    bounds = {"hold_bars": Bound(1)}

    signal = staticmethod(timed_exit_signal)
