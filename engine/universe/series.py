"""The series of a universe: every (symbol, interval) pair, resolved against the data before any work.

Series are kept sorted by (symbol, interval length). On the embedded synthetic source the
i-th symbol of ``data.symbols`` (from 0, as written) is generated with seed ``data.seed + i``,
so a universe's first symbol is the single-series run's market.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..config.universe_checks import ALL
from ..data.binance import interval_ms, series_problem
from ..data.dataset import list_series
from ..data.spec import DataSpec
from ..errors import DataError
from ..storage_layout import is_s3_uri, kind_root

#: the synthetic source's interval when the config names none
SYNTHETIC_INTERVAL = "15m"


@dataclass(frozen=True)
class Series:
    symbol: str
    interval: str
    spec: DataSpec  # what loads it: the config's data section narrowed to this one series

    @property
    def key(self) -> str:
        """``SYMBOL/interval``: its name in validation.json and the report."""
        return f"{self.symbol}/{self.interval}"


def series_order(symbol: str, interval: str) -> tuple[str, int]:
    return symbol, interval_ms(interval)


def one_series(spec: DataSpec, symbol: str, interval: str, seed: int | None = None) -> DataSpec:
    return replace(spec, symbol=symbol, interval=interval, symbols=None, intervals=None,
                   seed=spec.seed if seed is None else seed)


def resolve_universe(spec: DataSpec, session=None) -> tuple[Series, ...]:
    """Every series of the universe ``spec`` names, sorted; DataError (one line) when one is missing."""
    if spec.source == "synthetic":
        return _synthetic(spec)
    if not (is_s3_uri(spec.source) or Path(spec.source).is_dir()):
        raise DataError(f"data.symbols/data.intervals: a universe needs a dataset folder, an s3:// dataset or the "
                        f"synthetic source; {spec.source} is one file (build a dataset: backtest data build)")
    # a perp universe is the dataset's um trade klines (each series' mark klines and funding beside them)
    root = kind_root(spec.source, spec.market, "klines")
    listed = [] if spec.market == "um" and not (is_s3_uri(root) or Path(root).is_dir()) else \
        list_series(root, session=session)
    held = [(s, i) for s, i in listed if not series_problem(s, i)]
    if not held and spec.market == "um":
        raise DataError(f"data.market: um, but {spec.source} holds no perp series (um/ trade klines); a perp "
                        "universe needs a perp dataset (backtest data build/fetch/backfill --market um)")
    if not held:
        raise DataError(f"{spec.source}: no symbol=…/interval=… series; not a candles dataset")
    names = sorted({s for s, _ in held})
    if spec.symbols == ALL:
        symbols = names
    elif spec.symbols or spec.symbol:
        symbols = list(spec.symbols or [spec.symbol])
    elif len(names) == 1:
        symbols = names
    else:
        raise DataError(f"{spec.source} holds {len(names)} symbols ({', '.join(names[:8])}); give data.symbols "
                        "(a list, or all) or data.symbol")
    if spec.intervals is not None:
        intervals = list(spec.intervals)
    elif spec.interval is not None:
        intervals = [spec.interval]
    else:
        intervals = sorted({i for s, i in held if s in symbols}, key=interval_ms)
    present = set(held)
    out = []
    for s in symbols:
        for i in intervals:
            if (s, i) not in present:
                have = ", ".join(f"{a}/{b}" for a, b in sorted(held, key=lambda p: series_order(*p))[:8])
                raise DataError(f"{spec.source}: no series {s}/{i} in the dataset; it holds {have}"
                                + (" …" if len(held) > 8 else ""))
            out.append(Series(s, i, one_series(spec, s, i)))
    return tuple(sorted(out, key=lambda x: series_order(x.symbol, x.interval)))


def _synthetic(spec: DataSpec) -> tuple[Series, ...]:
    if spec.symbols == ALL:
        raise DataError("data.symbols: all lists the symbols of a dataset; the synthetic source has none: "
                        "give a list such as [BTCUSDT, ETHUSDT]")
    symbols = list(spec.symbols) if spec.symbols else [spec.symbol or "BTCUSDT"]
    intervals = list(spec.intervals) if spec.intervals else [spec.interval or SYNTHETIC_INTERVAL]
    out = [Series(s, i, one_series(spec, s, i, seed=spec.seed + k))
           for k, s in enumerate(symbols) for i in intervals]
    return tuple(sorted(out, key=lambda x: series_order(x.symbol, x.interval)))
