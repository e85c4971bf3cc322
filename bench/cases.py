"""Benchmark grids and data, shared by `make bench` and the scaling study."""

from __future__ import annotations

from pathlib import Path

REAL_15M = Path(__file__).resolve().parent.parent / "samples" / "BTCUSDT-15m-spot-2024-01-29_2025-03-21.csv.gz"
#: the realistic research sweep (4 built-ins, both directions, take-profit, trailing, size, full validation)
REALISTIC = Path(__file__).resolve().parent / "realistic.yaml"


#: position rules a case may add to its grid (same combination count)
RULES = {
    "": {},
    "both-tp-trailing": {"portfolio": {"direction": "both"}, "risk": {"take_profit": 0.03, "trailing_stop": 0.015}},
    # USDⓈ-M perps at 3x on the mark price, funding every 32 bars (data "perp": bench.cases.perp_candles)
    "perp-3x": {"data": {"market": "um", "symbol": "BTCUSDT"}, "portfolio": {"leverage": 3.0}},
}


def grid(combos: int, rules: str = "") -> dict:
    """An MA-crossover config with exactly ``combos`` combinations (64, 4096 or 65536), with the
    position rules ``RULES[rules]`` (default: the seed's long-only 2% stop)."""
    shorts = [5, 10, 15, 20, 25, 30, 35, 40]
    longs = [50, 60, 70, 80, 90, 100, 110, 120]
    spreads, stops = [0.001], [0.02]
    if combos >= 4096:
        shorts = list(range(4, 68, 4))  # 16
        longs = list(range(80, 400, 20))  # 16
        spreads = [0.0, 0.0005, 0.001, 0.002]
        stops = [0.01, 0.02, 0.03, 0.05]
    if combos >= 65536:
        shorts = list(range(2, 66, 2))  # 32
        longs = list(range(70, 390, 10))  # 32
        spreads = [0.0, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003]
        stops = [0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.08]
    doc = {
        "experiment": {"name": f"bench_{combos}"},
        "execution": {"commission": 0.001, "slippage": 0.0005, "fill": "close"},
        "portfolio": {"capital": 100_000},
        "risk": {"stop_loss": stops},
        "strategies": {"ma_crossover": {"short_window": shorts, "long_window": longs, "ema_period": 200,
                                        "momentum_spread": spreads}},
        "report": {"top_k": 10},
    }
    for section, values in RULES[rules].items():
        doc.setdefault(section, {}).update(values)
    if rules:
        doc["experiment"]["name"] += f"_{rules}"
    n = len(shorts) * len(longs) * len(spreads) * len(stops)
    if n != combos:
        raise ValueError(f"grid for {combos} has {n} combinations")
    return doc


def data_spec(kind: str, n: int = 0):
    """Real candles from samples/, or ``n`` seeded synthetic ones."""
    from engine.data.spec import DataSpec

    if kind == "real":
        return DataSpec(source=str(REAL_15M))
    if kind == "perp":
        return DataSpec(source="synthetic", synthetic_bars=int(n), seed=7, market="um", symbol="BTCUSDT")
    return DataSpec(source="synthetic", synthetic_bars=int(n), seed=7)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0




def perp_candles(n: int):
    """``n`` synthetic 15m candles with their synthetic mark klines, and funding every 32 bars (8h)."""
    import dataclasses

    import numpy as np

    from engine.data.source import load_data

    c = load_data(data_spec("perp", n))
    p = c.perp
    times = c.open_time[::32].copy()
    k = len(times)
    perp = dataclasses.replace(p, funding_time=times, funding_rate=0.0001 + 0.0002 * np.sin(np.arange(k) / 9.0),
                               funding_mark=np.full(k, np.nan), interval_hours=np.full(k, 8, dtype=np.int64))
    return dataclasses.replace(c, perp=perp)
