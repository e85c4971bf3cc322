"""``backtest data …``: inspect, fetch, backfill, build, sync."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime, timezone

from engine.errors import UserError
from engine.timeutil import format_time, parse_time

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
_DAY_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def register(sub) -> None:
    p = sub.add_parser("data", help="candle data: inspect, fetch, backfill, build, sync")
    dsub = p.add_subparsers(dest="data_command", required=True, parser_class=type(p))

    q = dsub.add_parser("inspect", help="rows, time range, interval, gaps and problems of a file or dataset")
    q.add_argument("path", help="candle file, dataset folder or s3://bucket/candles/")
    q.set_defaults(func=cmd_inspect)

    q = dsub.add_parser("fetch", help="download new closed klines from the Binance REST API into a dataset")
    _series_args(q)
    q.add_argument("--start", required=True, help="first open time: ISO date/time (UTC) or epoch ms")
    q.add_argument("--end", help="stop before this open time (default: now)")
    q.add_argument("--out", required=True, help="dataset folder or s3://bucket/candles/")
    q.add_argument("--base-url", help="REST base URL (default: $BINANCE_BASE_URL or https://data-api.binance.vision)")
    q.set_defaults(func=cmd_fetch)

    q = dsub.add_parser("backfill", help="merge data.binance.vision monthly/daily kline zips into a dataset")
    _series_args(q)
    q.add_argument("--start", required=True, help="first month or day: YYYY-MM or YYYY-MM-DD")
    q.add_argument("--end", help="last month or day, included: YYYY-MM or YYYY-MM-DD (default: yesterday)")
    q.add_argument("--source", default=None, help="base URL or local mirror folder (default: https://data.binance.vision)")
    out = q.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="dataset folder")
    out.add_argument("--to", help="dataset on S3, like s3://BUCKET/candles/")
    q.set_defaults(func=cmd_backfill)

    q = dsub.add_parser("build", help="build a dataset from raw candle files (a later file wins)")
    q.add_argument("--input", nargs="+", required=True, help="candle files, any layout the loader reads")
    _series_args(q)
    q.add_argument("--out", required=True, help="dataset folder or s3://bucket/candles/")
    q.set_defaults(func=cmd_build)

    q = dsub.add_parser("sync", help="copy new or changed dataset files from S3 to a local folder")
    q.add_argument("source", help="s3://BUCKET/candles/")
    q.add_argument("dest", help="local dataset folder")
    q.add_argument("--symbol", help="only this symbol")
    q.add_argument("--interval", help="only this interval (needs --symbol)")
    q.set_defaults(func=cmd_sync)


def _series_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--symbol", required=True, type=str.upper, help="like BTCUSDT")
    q.add_argument("--interval", required=True, help="like 15m")


def _utc_ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=timezone.utc).timestamp() * 1000)


def period_start(text: str) -> int:
    """``YYYY-MM`` or ``YYYY-MM-DD`` (or any time :func:`parse_time` reads) as the first ms."""
    m = _MONTH_RE.match(text.strip())
    return _utc_ms(int(m[1]), int(m[2]), 1) if m else parse_time(text)


def period_end(text: str) -> int:
    """Exclusive end of a named month or day (so the named period is included)."""
    text = text.strip()
    if m := _MONTH_RE.match(text):
        y, mo = int(m[1]), int(m[2])
        return _utc_ms(y + (mo == 12), mo % 12 + 1, 1)
    if _DAY_RE.match(text):
        return parse_time(text) + 86_400_000
    return parse_time(text)


def _bar(desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def cmd_inspect(args: argparse.Namespace) -> int:
    from engine.data.inspect import inspect_path

    reports = inspect_path(args.path)
    for r in reports:
        print("\n".join(r.lines()))
    problems = [p for r in reports for p in r.problems]
    if problems:
        raise UserError(f"{args.path}: {len(problems)} problem(s); first: {problems[0]}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from engine.data.fetch import fetch_candles
    from engine.data.klines import DEFAULT_BASE_URL, KlinesClient

    start = parse_time(args.start)
    end = parse_time(args.end) if args.end else None
    if end is not None and end <= start:
        raise UserError("fetch: --end must be after --start")
    client = KlinesClient(args.base_url or os.environ.get("BINANCE_BASE_URL") or DEFAULT_BASE_URL)
    with _bar(f"{args.symbol} {args.interval}", "candle") as bar:
        def set_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        result = fetch_candles(args.out, args.symbol, args.interval, start, end, progress=bar.update,
                               total=set_total, client=client)
    if result.added:
        print(f"fetched {result.added} new candle(s) {args.symbol} {args.interval}: "
              f"{format_time(result.first)} .. {format_time(result.last)} UTC into {args.out} "
              f"({result.requests} request(s); {'no gaps' if not result.gaps.count else f'{result.gaps.count} gap(s)'})")
    else:
        print(f"{args.symbol} {args.interval} in {args.out} is up to date: no closed candle from "
              f"{format_time(result.requested_from)} UTC on")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from engine.data.backfill import VISION_URL, backfill

    start = period_start(args.start)
    if args.end:
        end = period_end(args.end)
    else:
        end = (int(time.time() * 1000) // 86_400_000) * 86_400_000  # today 00:00 UTC: through yesterday
    target = args.out or args.to
    with _bar(f"{args.symbol} {args.interval}", "file") as bar:
        result = backfill(target, args.symbol, args.interval, start, end, source=args.source or VISION_URL,
                          progress=lambda name: bar.update(1))
    if not result.files:
        raise UserError(f"backfill: no {args.symbol} {args.interval} kline zips found at "
                        f"{args.source or VISION_URL} for {args.start} .. {args.end or 'yesterday'}")
    if result.missing:
        shown = ", ".join(result.missing[:5]) + (" …" if len(result.missing) > 5 else "")
        print(f"note: {len(result.missing)} file(s) not found at the source: {shown}", file=sys.stderr)
    print(f"backfilled {result.added} new candle(s) {args.symbol} {args.interval} from {len(result.files)} "
          f"file(s) into {target} ({len(set(result.partitions))} partition(s))")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from engine.data.build import build_dataset

    result = build_dataset(args.input, args.out, args.symbol, args.interval)
    gaps = "no gaps" if not result.gaps.count else (
        f"{result.gaps.count} gap(s), {result.gaps.missing_bars} missing bar(s), largest before "
        f"{format_time(result.gaps.largest_at)}")
    print(f"built {args.out}: {result.rows} candle(s) {args.symbol} {args.interval} "
          f"{format_time(result.first)} .. {format_time(result.last)} UTC, {result.added} new, "
          f"{len(result.partitions)} partition(s) written; {gaps}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from engine.data.sync import sync_dataset

    result = sync_dataset(args.source, args.dest, symbol=args.symbol.upper() if args.symbol else None,
                          interval=args.interval)
    print(f"synced {args.source} -> {args.dest}: {len(result.copied)} copied, {result.skipped} up to date, "
          f"{len(result.removed)} stale removed")
    return 0
