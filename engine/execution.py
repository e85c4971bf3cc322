"""Execution settings: the one type shared by the config, the reference engine and the fast path."""

from __future__ import annotations

from dataclasses import dataclass

FILL_MODES = ("close", "next_open")


@dataclass(frozen=True)
class Execution:
    """How orders fill, for every combination of a run (docs/semantics.md, rules 2-4)."""

    capital: float = 100_000.0
    slippage: float = 0.0005  # buys at ref*(1+s), sells at ref*(1-s)
    commission: float = 0.001  # fraction of notional, per fill
    fill: str = "close"  # or "next_open"

    @property
    def next_open(self) -> bool:
        return self.fill == "next_open"
