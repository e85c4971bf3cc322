"""The ``perp`` section of a config, once checked (``engine.config.schema`` lists its keys)."""

from __future__ import annotations

from dataclasses import dataclass

from .brackets import Bracket

MARGIN_MODES = ("isolated", "cross")
BASES = ("mark", "last")


@dataclass(frozen=True)
class PerpConfig:
    margin: str = "isolated"
    brackets: tuple[Bracket, ...] | None = None  # None: the committed default for the symbol
    liquidation_price: str | None = None  # None: mark when mark klines exist, else last
    funding: bool = True  # False: funding skipped deliberately (the report's header says so)
