"""``backtest data fetch|backfill|build --market um``: a perp symbol's three series.

Trade klines, mark-price klines and the funding table each go to their own root beside the
dataset's spot candles (:func:`engine.storage_layout.kind_root`), each under its own lock.
"""

from __future__ import annotations

import argparse
import os

from engine.errors import UserError
from engine.storage_layout import kind_root
from engine.timeutil import format_time, parse_time

KLINE_KINDS = (("klines", "trade kline"), ("mark", "mark kline"))


def _fapi_base(args: argparse.Namespace) -> str:
    from engine.data.klines import FAPI_BASE_URL

    return args.base_url or os.environ.get("BINANCE_FAPI_BASE_URL") or FAPI_BASE_URL


def fetch_um(args: argparse.Namespace) -> int:
    from engine.data.fetch import fetch_candles
    from engine.data.funding_fetch import FundingClient, fetch_funding
    from engine.data.http_retry import Deadline
    from engine.data.klines import fapi_client
    from engine.timeutil import check_range

    from .data import _local_out, _lock_wait, _say

    start = parse_time(args.start, "--start")
    end = parse_time(args.end, "--end") if args.end else None
    check_range(start, end, "fetch: --start/--end")
    _local_out(args.out, "--out")
    deadline = Deadline(args.timeout, "--timeout") if args.timeout else None
    options = dict(timeout=args.request_timeout, max_retry_after=args.max_retry_after, deadline=deadline)
    base = _fapi_base(args)
    parts, requests = [], 0
    for kind, label in KLINE_KINDS:
        client = fapi_client(kind, base, **options)
        r = fetch_candles(kind_root(args.out, "um", kind), args.symbol, args.interval, start, end, client=client,
                          lock_wait=_lock_wait(args), on_wait=_say)
        requests += r.requests
        parts.append(f"{r.added} {label}(s)" + (f" {format_time(r.first)} .. {format_time(r.last)} UTC"
                                                if r.added else ""))
    fr = fetch_funding(kind_root(args.out, "um", "funding"), args.symbol, start, end,
                       client=FundingClient(base, **options), lock_wait=_lock_wait(args), on_wait=_say)
    requests += fr.requests
    parts.append(f"{fr.added} funding event(s)")
    print(f"fetched {args.symbol} {args.interval} (um) into {args.out}: {', '.join(parts)} "
          f"({requests} request(s))")
    return 0


def backfill_um(args: argparse.Namespace) -> int:
    from engine.data.backfill import VISION_URL, VisionSource, backfill
    from engine.data.http_retry import Deadline
    from engine.data.perp_files import backfill_funding

    from .data import _local_out, _lock_wait, _say, backfill_range, note_missing

    start, end = backfill_range(args)
    target = args.out or args.to
    _local_out(target, "--out")
    deadline = Deadline(args.timeout, "--timeout") if args.timeout else None
    vision = VisionSource(args.source or VISION_URL, deadline=deadline)
    parts, files, missing = [], 0, []
    for kind, label in KLINE_KINDS:
        r = backfill(kind_root(target, "um", kind), args.symbol, args.interval, start, end, vision=vision,
                     market="um", kind=kind, lock_wait=_lock_wait(args), on_wait=_say)
        parts.append(f"{r.added} {label}(s)")
        files += len(r.files)
        missing += r.missing
    fr = backfill_funding(kind_root(target, "um", "funding"), args.symbol, start, end, vision=vision,
                          lock_wait=_lock_wait(args), on_wait=_say)
    parts.append(f"{fr.added} funding event(s)")
    files += len(fr.files)
    missing += fr.missing
    if not files:
        raise UserError(f"backfill: no {args.symbol} {args.interval} um files found at "
                        f"{args.source or VISION_URL} for {args.start} .. {args.end or 'yesterday'}")
    note_missing(missing)
    print(f"backfilled {args.symbol} {args.interval} (um) from {files} file(s) into {target}: {', '.join(parts)}")
    return 0


def build_um(args: argparse.Namespace) -> int:
    from engine.data.build import build_dataset

    from .data import _say

    root = kind_root(args.out, "um", args.kind)
    if args.kind == "funding":
        from engine.data.perp_files import build_funding

        rows, added, df = build_funding(args.input, root, args.symbol, lock_wait=args.lock_timeout, on_wait=_say,
                                        max_bytes=args.max_input_bytes)
        t = df["funding_time"]
        print(f"built {args.out}: {rows} funding event(s) {args.symbol} (um) {format_time(int(t.iloc[0]))} .. "
              f"{format_time(int(t.iloc[-1]))} UTC, {added} new")
        return 0
    result = build_dataset(args.input, root, args.symbol, args.interval, lock_wait=args.lock_timeout,
                           on_wait=_say, max_bytes=args.max_input_bytes)
    what = "trade kline(s)" if args.kind == "klines" else "mark kline(s)"
    print(f"built {args.out}: {result.rows} {what} {args.symbol} {args.interval} (um) "
          f"{format_time(result.first)} .. {format_time(result.last)} UTC, {result.added} new, "
          f"{len(result.partitions)} partition(s) written")
    return 0
