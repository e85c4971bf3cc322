"""What to load: a config's ``data`` section, or the same with ``--data`` in its place.

Standard library only: the config parser builds it, and a Batch shard rebuilds it from the
config it is handed, so the same candles load again in another process or machine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

#: The most text one candle file may decompress to (about 10 million Binance 12-field rows). Here,
#: not in candle_file, so that the CLI's help reads it without loading pandas.
MAX_INPUT_BYTES = 1 << 30


@dataclass(frozen=True)
class DataSpec:
    source: str = "synthetic"
    symbol: str | None = None
    interval: str | None = None
    start: str | None = None
    end: str | None = None
    synthetic_bars: int = 70_080
    seed: int = 42
    max_input_bytes: int | None = None  # None: MAX_INPUT_BYTES
    market: str = "spot"  # or um: USDⓈ-M perpetual futures
    #: a universe (``engine.universe.series``): the symbols ("all": every one of the dataset), the intervals
    symbols: tuple[str, ...] | str | None = None
    intervals: tuple[str, ...] | None = None

    @property
    def is_universe(self) -> bool:
        return self.symbols is not None or self.intervals is not None

    @classmethod
    def from_config(cls, cfg: Any, override: str | None = None) -> "DataSpec":
        """``cfg.data`` (a parsed config), with ``override`` (``--data``) as its source when given."""
        spec: DataSpec = cfg.data
        return replace(spec, source=override) if override else spec
