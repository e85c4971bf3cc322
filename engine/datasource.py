"""Resolve a config's ``data`` section (or a ``--data`` override) into candles."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .candles import Candles
from .errors import DataError
from .timeutil import check_range, format_time, interval_to_ms, parse_time


@dataclass(frozen=True)
class DataConfig:
    """A config's ``data`` section (checked by ``engine.config``, which imports this module: the data
    layer knows nothing of the experiment config)."""

    source: str = "synthetic"
    symbol: str | None = None
    interval: str | None = None
    start: str | None = None
    end: str | None = None
    synthetic_bars: int = 70_080
    seed: int = 42


class DataSpec(DataConfig):
    """Everything needed to load the same candles again, in another process or machine:
    a config's ``data`` section, optionally with ``--data`` in place of its source."""

    @classmethod
    def from_config(cls, cfg, override: str | None = None) -> "DataSpec":
        """From ``cfg.data`` (an :class:`engine.config.Config`), with ``override`` as the source if given."""
        fields = asdict(cfg.data)
        if override:
            fields["source"] = override
        return cls(**fields)


def load_data(spec: DataSpec) -> Candles:
    start = parse_time(spec.start, "data.start") if spec.start else None
    end = parse_time(spec.end, "data.end") if spec.end else None
    check_range(start, end, "data.start/data.end")
    if spec.source == "synthetic":
        from .synthetic import generate_candles

        kwargs = {"interval_ms": interval_to_ms(spec.interval)} if spec.interval else {}
        candles = generate_candles(spec.synthetic_bars, seed=spec.seed, symbol=spec.symbol or "BTCUSDT", **kwargs)
        first, last = candles.open_time[0], candles.open_time[-1]
        if start is not None or end is not None:
            lo = 0 if start is None else int((candles.open_time < start).sum())
            hi = len(candles) if end is None else int((candles.open_time < end).sum())
            candles = candles.slice(lo, hi)
            if len(candles) == 0:
                raise DataError(f"synthetic data: no candle in data.start/data.end ({spec.start} .. {spec.end}); "
                                f"the {spec.synthetic_bars} synthetic bars run from "
                                f"{format_time(int(first))} to {format_time(int(last))} UTC")
        return candles
    from .loader import load_candles

    return load_candles(spec.source, symbol=spec.symbol, interval=spec.interval, start=start, end=end)
