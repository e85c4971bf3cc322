"""``backtest data …``: inspect, fetch, backfill, build, sync. (Filled in by the market-data work.)"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("data", help="candle data: inspect, fetch, backfill, build, sync")
    p.add_subparsers(dest="data_command", required=True)
