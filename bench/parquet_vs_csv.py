"""Parquet dataset vs CSV for the same candles: size on disk and load time.

    python bench/parquet_vs_csv.py [CSV]

Uses the sample samples/BTCUSDT-15m-spot-2024-01-29_2025-03-21.csv.gz by default, decompressed
to a plain CSV first (the comparison is against an uncompressed CSV).
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SAMPLE = REPO / "samples" / "BTCUSDT-15m-spot-2024-01-29_2025-03-21.csv.gz"
REPEATS = 7


def _best(fn) -> float:
    """Best of REPEATS wall-clock runs, in ms (the least disturbed by other load)."""
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*.parquet"))


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    import pandas as pd

    from engine.data.build import build_dataset
    from engine.data.dataset import read_candle_dataset
    from engine.data.loader import load_candles

    tmp = Path(tempfile.mkdtemp(prefix="bench-parquet-"))
    try:
        if argv:
            csv = Path(argv[0])
        else:
            csv = tmp / DEFAULT_SAMPLE.name.removesuffix(".gz")
            with gzip.open(DEFAULT_SAMPLE, "rb") as src, open(csv, "wb") as dst:
                shutil.copyfileobj(src, dst)
        ds = tmp / "candles"
        t = time.perf_counter()
        built = build_dataset([csv], str(ds), "BTCUSDT", "15m")
        build_ms = (time.perf_counter() - t) * 1000
        one = tmp / "one.parquet"
        read_candle_dataset(str(ds))[0].to_parquet(one, compression="snappy", index=False)
        csv_size, ds_size, one_size = _size(csv), _size(ds), _size(one)
        last_month = (built.last // 1000 - 30 * 86_400) * 1000
        rows = [
            ("CSV: pandas.read_csv", csv_size, _best(lambda: pd.read_csv(csv))),
            ("CSV: engine.data.loader.load_candles", csv_size, _best(lambda: load_candles(csv))),
            ("Parquet dataset: pandas.read_parquet", ds_size, _best(lambda: pd.read_parquet(ds))),
            ("Parquet dataset: load_candles", ds_size,
             _best(lambda: load_candles(ds, symbol="BTCUSDT", interval="15m"))),
            ("Parquet dataset: load_candles, last 30 days", ds_size,
             _best(lambda: load_candles(ds, symbol="BTCUSDT", interval="15m", start=last_month))),
            ("Parquet single file (all columns)", one_size, _best(lambda: pd.read_parquet(one))),
        ]
        print(f"{built.rows} candles {csv.name}; dataset: {len(built.partitions)} month partitions, "
              f"built in {build_ms:.0f} ms; best of {REPEATS} runs")
        print(f"{'':46} {'size':>10} {'vs CSV':>7} {'load':>9}")
        for name, size, ms in rows:
            print(f"{name:46} {size / 1e6:8.2f} MB {size / csv_size:6.0%} {ms:7.1f} ms")
        print("the dataset stores 11 columns (6 OHLCV + 5 nullable kline extras, null here); the CSV has 6")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
