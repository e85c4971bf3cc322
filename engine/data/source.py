"""Resolve a :class:`~engine.data.spec.DataSpec` into candles: the embedded synthetic market,
a candle file or a dataset."""

from __future__ import annotations

from ..candles import Candles
from ..errors import DataError
from ..timeutil import check_range, format_time, interval_to_ms, parse_time
from .loader import load_candles
from .spec import DataSpec
from .synthetic import generate_candles
from ..perp.synthetic import with_perp
from .perp_source import load_perp


def load_data(spec: DataSpec) -> Candles:
    start = parse_time(spec.start, "data.start") if spec.start else None
    end = parse_time(spec.end, "data.end") if spec.end else None
    check_range(start, end, "data.start/data.end")
    if spec.source == "synthetic":
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
        if spec.market == "um":
            candles = with_perp(candles, spec.seed)
        return candles
    if spec.market == "um":
        return load_perp(spec, start, end)
    return load_candles(spec.source, symbol=spec.symbol, interval=spec.interval, start=start, end=end,
                        max_bytes=spec.max_input_bytes)
