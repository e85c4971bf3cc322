"""Resolve a config's ``data`` section (or a ``--data`` override) into candles."""

from __future__ import annotations

from dataclasses import asdict

from .candles import Candles
from .config import Config, DataConfig
from .timeutil import interval_to_ms, parse_time


class DataSpec(DataConfig):
    """Everything needed to load the same candles again, in another process or machine:
    a config's ``data`` section, optionally with ``--data`` in place of its source."""

    @classmethod
    def from_config(cls, cfg: Config, override: str | None = None) -> "DataSpec":
        fields = asdict(cfg.data)
        if override:
            fields["source"] = override
        return cls(**fields)


def load_data(spec: DataSpec) -> Candles:
    start = parse_time(spec.start) if spec.start else None
    end = parse_time(spec.end) if spec.end else None
    if spec.source == "synthetic":
        from .synthetic import generate_candles

        kwargs = {"interval_ms": interval_to_ms(spec.interval)} if spec.interval else {}
        candles = generate_candles(spec.synthetic_bars, seed=spec.seed, symbol=spec.symbol or "BTCUSDT", **kwargs)
        if start is not None or end is not None:
            lo = 0 if start is None else int((candles.open_time < start).sum())
            hi = len(candles) if end is None else int((candles.open_time < end).sum())
            candles = candles.slice(lo, hi)
        return candles
    from .loader import load_candles

    return load_candles(spec.source, symbol=spec.symbol, interval=spec.interval, start=start, end=end)
