"""Truth arrays that back the fakes: full 12-field klines, synthetic or from the real CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.timeutil import interval_to_ms

COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
           "taker_buy_base_volume", "taker_buy_quote_volume")
FLOATS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base_volume",
          "taker_buy_quote_volume")


def _exact(values: np.ndarray, decimals: int) -> np.ndarray:
    """Values as Binance would send them: decimal strings that parse back to the same float."""
    return np.array([float(f"{v:.{decimals}f}") for v in values], dtype=np.float64)


def _complete(open_time: np.ndarray, o, h, lo, c, v, interval: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    iv = interval_to_ms(interval)
    v = _exact(v, 8)
    taker = _exact(v * rng.uniform(0.3, 0.7, len(v)), 8)
    return pd.DataFrame({
        "open_time": open_time.astype(np.int64), "open": o, "high": h, "low": lo, "close": c, "volume": v,
        "close_time": (open_time + iv - 1).astype(np.int64),
        "quote_volume": _exact(v * c, 4), "trades": rng.integers(100, 5000, len(v)).astype(np.int64),
        "taker_buy_base_volume": taker, "taker_buy_quote_volume": _exact(taker * c, 4),
    })


def synthetic_klines(start_ms: int, n: int, interval: str = "15m", seed: int = 7) -> pd.DataFrame:
    """A valid random-walk series of n candles from start_ms (no shared data needed)."""
    rng = np.random.default_rng(seed)
    t = start_ms + np.arange(n, dtype=np.int64) * interval_to_ms(interval)
    close = _exact(30000 * np.exp(np.cumsum(rng.normal(0, 0.002, n))), 2)
    open_ = np.concatenate([[30000.0], close[:-1]])
    high = _exact(np.maximum(open_, close) * (1 + rng.uniform(0, 0.003, n)), 2)
    low = _exact(np.minimum(open_, close) * (1 - rng.uniform(0, 0.003, n)), 2)
    high = np.maximum(high, np.maximum(open_, close))
    low = np.minimum(low, np.minimum(open_, close))
    return _complete(t, open_, high, low, close, rng.uniform(1, 500, n), interval, seed)


def klines_from_csv(path: Path, interval: str = "15m") -> pd.DataFrame:
    """Real OHLCV from ../shared/data, completed with deterministic extra kline fields."""
    raw = pd.read_csv(path, dtype={"Timestamp": np.int64})
    return _complete(raw["Timestamp"].to_numpy(), *(raw[k].to_numpy(np.float64) for k in
                                                   ("Open", "High", "Low", "Close", "Volume")), interval, 11)


def kline_row(r) -> list:
    """One REST row: times and trades as ints, the rest as 8-decimal strings, plus the ignored field."""
    return [int(r.open_time), *(f"{getattr(r, k):.8f}" for k in ("open", "high", "low", "close", "volume")),
            int(r.close_time), f"{r.quote_volume:.8f}", int(r.trades), f"{r.taker_buy_base_volume:.8f}",
            f"{r.taker_buy_quote_volume:.8f}", "0"]


def stored(root, symbol: str = "BTCUSDT", interval: str = "15m", **kw) -> pd.DataFrame:
    """The dataset's rows with plain int64 extras, comparable to a truth frame."""
    from engine.data.dataset import read_candle_dataset

    df, _ = read_candle_dataset(str(root), symbol=symbol, interval=interval, **kw)
    return df.astype({"close_time": np.int64, "trades": np.int64})


def assert_same(actual: pd.DataFrame, truth: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual.reset_index(drop=True), truth.reset_index(drop=True)[list(COLUMNS)],
                                  check_exact=True)
