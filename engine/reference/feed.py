"""DataFeed: yields candles one at a time."""

from __future__ import annotations

from typing import Iterator, NamedTuple

from ..candles import Candles


class Candle(NamedTuple):
    index: int
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class DataFeed:
    def __init__(self, candles: Candles):
        self.candles = candles

    def __len__(self) -> int:
        return len(self.candles)

    def __iter__(self) -> Iterator[Candle]:
        c = self.candles
        for i, row in enumerate(zip(c.open_time.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(),
                                    c.close.tolist(), c.volume.tolist())):
            yield Candle(i, *row)
