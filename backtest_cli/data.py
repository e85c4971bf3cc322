"""``backtest data …``: inspect, fetch, backfill, build, sync."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import UserError
from engine.timeutil import format_time, parse_time

from . import argtypes

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
_DAY_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def register(sub) -> None:
    p = sub.add_parser("data", help="candle data: inspect, fetch, backfill, build, sync")
    dsub = p.add_subparsers(dest="data_command", required=True, parser_class=type(p))

    q = dsub.add_parser("inspect", help="rows, time range, interval, gaps and problems of a file or dataset")
    q.add_argument("path", type=_location, help="candle file, dataset folder or s3://bucket/candles/")
    q.add_argument("--interval", type=argtypes.interval,
                   help="the file's interval, when it cannot be read from the data (a file of one candle)")
    _max_input_arg(q)
    q.set_defaults(func=cmd_inspect)

    q = dsub.add_parser("fetch", help="download new closed klines from the Binance REST API into a dataset")
    _many_series_args(q)
    q.add_argument("--start", required=True, help="first open time: ISO date/time (UTC) or epoch ms")
    q.add_argument("--end", help="stop before this open time (default: now)")
    q.add_argument("--out", required=True, type=_location, help="dataset folder or s3://bucket/candles/")
    _market_arg(q)
    q.add_argument("--base-url", help="REST base URL (default: $BINANCE_BASE_URL or https://data-api.binance.vision; "
                   "--market um: $BINANCE_FAPI_BASE_URL or https://fapi.binance.com)")
    q.add_argument("--timeout", type=_seconds, help="give up after this many seconds in all (default: no limit)")
    q.add_argument("--request-timeout", type=_seconds, default=30.0,
                   help="seconds one request may take, whole answer included (default: 30)")
    q.add_argument("--max-retry-after", type=_seconds, default=120.0,
                   help="longest Retry-After to wait; a longer one stops the fetch (default: 120)")
    _lock_arg(q)
    q.set_defaults(func=_each_series(cmd_fetch))

    q = dsub.add_parser("backfill", help="merge data.binance.vision monthly/daily kline zips into a dataset")
    _many_series_args(q)
    q.add_argument("--start", required=True, help="first month or day: YYYY-MM or YYYY-MM-DD")
    q.add_argument("--end", help="last month or day, included: YYYY-MM or YYYY-MM-DD (default: yesterday)")
    q.add_argument("--source", default=None, help="base URL or local mirror folder (default: https://data.binance.vision)")
    _market_arg(q)
    out = q.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=_location, help="dataset folder")
    out.add_argument("--to", type=_location, help="dataset on S3, like s3://BUCKET/candles/")
    q.add_argument("--timeout", type=_seconds, help="give up after this many seconds in all (default: no limit)")
    _lock_arg(q)
    q.set_defaults(func=_each_series(cmd_backfill))

    q = dsub.add_parser("build", help="build a dataset from raw candle files (a later file wins)")
    q.add_argument("--input", nargs="+", required=True, type=_location,
                   help="candle files, any layout the loader reads (--kind funding: fundingRate CSV/zip or "
                        "REST JSON)")
    q.add_argument("--symbol", required=True, type=argtypes.symbol, help="like BTCUSDT")
    q.add_argument("--interval", type=argtypes.interval, help="like 15m (not for --kind funding)")
    _market_arg(q)
    q.add_argument("--kind", choices=("klines", "mark", "funding"), default="klines",
                   help="--market um: trade klines, mark-price klines or the funding table (default: klines)")
    q.add_argument("--out", required=True, type=_location, help="dataset folder or s3://bucket/candles/")
    _lock_arg(q)
    _max_input_arg(q)
    q.set_defaults(func=cmd_build)

    q = dsub.add_parser("sync", help="copy new or changed dataset files from S3 to a local folder")
    q.add_argument("source", type=_location, help="s3://BUCKET/candles/")
    q.add_argument("dest", type=_location, help="local dataset folder")
    q.add_argument("--symbol", type=argtypes.symbol, help="only this symbol")
    q.add_argument("--interval", type=argtypes.interval, help="only this interval (needs --symbol)")
    _market_arg(q)
    q.set_defaults(func=cmd_sync)


def _market_arg(q: argparse.ArgumentParser) -> None:
    q.add_argument("--market", choices=("spot", "um"), default="spot",
                   help="spot (default) or um: USDⓈ-M perpetuals (trade klines, mark klines and funding)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 10 ** 7:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds above 0 (at most 10^7)")
    return value


def _location(text: str) -> str:
    """A path or URI: an empty one would silently mean the working directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path; give a file, folder or s3:// URI")
    return text


def _byte_count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes") from None
    if not 1 <= value <= 2 ** 50:
        raise argparse.ArgumentTypeError(f"{text!r}: expected bytes from 1 to 2^50")
    return value


def _max_input_arg(q: argparse.ArgumentParser) -> None:
    from engine.data.spec import MAX_INPUT_BYTES

    q.add_argument("--max-input-bytes", type=_byte_count, default=None,
                   help=f"most bytes a candle file may hold once decompressed (default: {MAX_INPUT_BYTES:,})")


def _local_out(path: str, label: str) -> None:
    """A local dataset folder this process can write in, checked before any work; S3 is checked by its writes."""
    from engine.storage_layout import is_s3_uri

    from .preflight import check_output_root

    if not is_s3_uri(path):
        check_output_root(Path(path), label=label)


def _lock_arg(q: argparse.ArgumentParser) -> None:
    q.add_argument("--lock-timeout", type=_seconds, default=60.0,
                   help="seconds to wait for another writer of the same series to finish (default: 60)")


def _say(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def _many_series_args(q: argparse.ArgumentParser) -> None:
    """One series (--symbol, --interval) or several (--symbols A,B --intervals 15m,1h: every pair)."""
    sym = q.add_mutually_exclusive_group(required=True)
    sym.add_argument("--symbol", type=argtypes.symbol, help="like BTCUSDT")
    sym.add_argument("--symbols", type=argtypes.symbol_names, help="several, like BTCUSDT,ETHUSDT")
    ivs = q.add_mutually_exclusive_group(required=True)
    ivs.add_argument("--interval", type=argtypes.interval, help="like 15m")
    ivs.add_argument("--intervals", type=argtypes.interval_list, help="several, like 15m,1h")


def _each_series(command):
    """``command`` once per (symbol, interval) pair of --symbols × --intervals, in that order."""
    def run(args: argparse.Namespace) -> int:
        for symbol in args.symbols or [args.symbol]:
            for interval in args.intervals or [args.interval]:
                command(argparse.Namespace(**{**vars(args), "symbol": symbol, "interval": interval}))
        return 0

    return run


def _month_ms(m: re.Match, after: int = 0) -> int:
    """The first ms of the matched YYYY-MM month (``after=1``: of the month after)."""
    y, mo = int(m[1]), int(m[2])
    if not 1 <= mo <= 12:
        raise UserError(f"month {m[0]!r}: expected YYYY-MM with a month from 01 to 12")
    y, mo = (y + (mo == 12), mo % 12 + 1) if after else (y, mo)
    try:
        first = datetime(y, mo, 1, tzinfo=timezone.utc)
    except ValueError:
        raise UserError(f"month {m[0]!r}: is outside 1970-01-01 .. 2100-01-01") from None
    return parse_time(first, f"month {m[0]!r}")


def period_start(text: str) -> int:
    """``YYYY-MM`` or ``YYYY-MM-DD`` (or any time :func:`parse_time` reads) as the first ms."""
    m = _MONTH_RE.match(text.strip())
    return _month_ms(m) if m else parse_time(text, "--start")


def period_end(text: str) -> int:
    """Exclusive end of a named month or day (so the named period is included)."""
    text = text.strip()
    if m := _MONTH_RE.match(text):
        return _month_ms(m, 1)
    if _DAY_RE.match(text):
        return parse_time(text, "--end") + 86_400_000
    return parse_time(text, "--end")


def _bar(desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def cmd_inspect(args: argparse.Namespace) -> int:
    from engine.data.inspect import inspect_path

    reports = inspect_path(args.path, interval=args.interval, max_bytes=args.max_input_bytes)
    for r in reports:
        print("\n".join(r.lines()))
    problems = [p for r in reports for p in r.problems]
    if problems:
        raise UserError(f"{args.path}: {len(problems)} problem(s); first: {problems[0]}")
    return 0


def _lock_wait(args: argparse.Namespace) -> float:
    return min(args.lock_timeout, args.timeout) if getattr(args, "timeout", None) else args.lock_timeout


def cmd_fetch(args: argparse.Namespace) -> int:
    if args.market == "um":
        from .data_perp import fetch_um

        return fetch_um(args)
    from engine.data.fetch import fetch_candles
    from engine.data.http_retry import Deadline
    from engine.data.klines import DEFAULT_BASE_URL, KlinesClient
    from engine.data.outages import bars, describe
    from engine.timeutil import check_range, interval_to_ms

    start = parse_time(args.start, "--start")
    end = parse_time(args.end, "--end") if args.end else None
    check_range(start, end, "fetch: --start/--end")
    _local_out(args.out, "--out")
    deadline = Deadline(args.timeout, "--timeout") if args.timeout else None
    client = KlinesClient(args.base_url or os.environ.get("BINANCE_BASE_URL") or DEFAULT_BASE_URL,
                          timeout=args.request_timeout, max_retry_after=args.max_retry_after, deadline=deadline)
    with _bar(f"{args.symbol} {args.interval}", "candle") as bar:
        def set_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        result = fetch_candles(args.out, args.symbol, args.interval, start, end, progress=bar.update,
                               total=set_total, client=client, lock_wait=_lock_wait(args), on_wait=_say)
    iv = interval_to_ms(args.interval)
    notes = []
    if result.head_filled:
        notes.append(f"{result.head_filled} before the earlier first candle")
    if result.outages_found:
        notes.append(f"{len(result.outages_found)} outage(s) recorded, confirmed empty by the exchange "
                     f"({bars(result.outages_found, iv)} bar(s): {describe(result.outages_found)})")
    gaps = "no gaps" if not result.gaps.count else f"{result.gaps.count} unexplained gap(s)"
    if result.added:
        print(f"fetched {result.added} new candle(s) {args.symbol} {args.interval}: "
              f"{format_time(result.first)} .. {format_time(result.last)} UTC into {args.out} "
              f"({result.requests} request(s); {gaps}" + "".join(f"; {n}" for n in notes) + ")")
    elif result.requested_from is None:
        print(f"{args.symbol} {args.interval} in {args.out} is up to date: nothing missing in the range"
              + (f" ({gaps})" if result.gaps.count else ""))
    else:
        print(f"{args.symbol} {args.interval} in {args.out} is up to date: no closed candle from "
              f"{format_time(result.requested_from)} UTC on" + "".join(f"; {n}" for n in notes))
    return 0


def backfill_range(args: argparse.Namespace) -> tuple[int, int]:
    """``--start``/``--end`` of a backfill as [start, end) ms; no --end: through yesterday."""
    start = period_start(args.start)
    if args.end:
        end = period_end(args.end)
    else:
        end = (int(time.time() * 1000) // 86_400_000) * 86_400_000  # today 00:00 UTC: through yesterday
    if end <= start:
        raise UserError(f"backfill: --start {args.start} is after --end {args.end or 'yesterday'}")
    return start, end


def cmd_backfill(args: argparse.Namespace) -> int:
    if args.market == "um":
        from .data_perp import backfill_um

        return backfill_um(args)
    from engine.data.backfill import VISION_URL, VisionSource, backfill
    from engine.data.http_retry import Deadline

    start, end = backfill_range(args)
    target = args.out or args.to
    _local_out(target, "--out")
    deadline = Deadline(args.timeout, "--timeout") if args.timeout else None
    vision = VisionSource(args.source or VISION_URL, deadline=deadline)
    with _bar(f"{args.symbol} {args.interval}", "file") as bar:
        result = backfill(target, args.symbol, args.interval, start, end, vision=vision,
                          progress=lambda name: bar.update(1), lock_wait=_lock_wait(args), on_wait=_say)
    if not result.files:
        raise UserError(f"backfill: no {args.symbol} {args.interval} kline zips found at "
                        f"{args.source or VISION_URL} for {args.start} .. {args.end or 'yesterday'}")
    note_missing(result.missing)
    print(f"backfilled {result.added} new candle(s) {args.symbol} {args.interval} from {len(result.files)} "
          f"file(s) into {target} ({len(set(result.partitions))} partition(s))")
    return 0


def note_missing(missing: list[str]) -> None:
    """Name (the first five of) the files the backfill source did not have."""
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        print(f"note: {len(missing)} file(s) not found at the source: {shown}", file=sys.stderr)


def cmd_build(args: argparse.Namespace) -> int:
    from engine.data.build import build_dataset

    if args.market == "spot" and args.kind != "klines":
        raise UserError(f"build: --kind {args.kind} needs --market um (spot has trade klines only)")
    if args.kind == "funding":
        if args.interval:
            raise UserError("build: --kind funding takes no --interval (the table holds each event's interval)")
    elif not args.interval:
        raise UserError(f"build: --kind {args.kind} needs --interval, like 15m")
    _local_out(args.out, "--out")
    if args.market == "um":
        from .data_perp import build_um

        return build_um(args)
    result = build_dataset(args.input, args.out, args.symbol, args.interval, lock_wait=args.lock_timeout,
                           on_wait=_say, max_bytes=args.max_input_bytes)
    gaps = "no gaps" if not result.gaps.count else (
        f"{result.gaps.count} gap(s), {result.gaps.missing_bars} missing bar(s), largest before "
        f"{format_time(result.gaps.largest_at)}")
    print(f"built {args.out}: {result.rows} candle(s) {args.symbol} {args.interval} "
          f"{format_time(result.first)} .. {format_time(result.last)} UTC, {result.added} new")
    print(f"  {len(result.partitions)} partition(s) written; {gaps}")  # a second line: both fit in 120 columns
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from engine.data.sync import sync_dataset

    _local_out(args.dest, "sync destination")
    symbol = args.symbol.upper() if args.symbol else None
    if args.market == "um":
        from engine.data.sync_perp import sync_perp

        if args.interval is not None and symbol is None:
            raise UserError("sync: --interval needs --symbol")
        results = sync_perp(args.source, args.dest, symbol=symbol, interval=args.interval).by_kind
        for kind, result in results.items():
            print(f"synced {args.source} um {kind} -> {args.dest}: {len(result.copied)} copied, "
                  f"{result.skipped} up to date, {len(result.removed)} stale removed")
        ignored = [k for r in results.values() for k in r.ignored]
    else:
        result = sync_dataset(args.source, args.dest, symbol=symbol, interval=args.interval)
        print(f"synced {args.source} -> {args.dest}: {len(result.copied)} copied, {result.skipped} up to date, "
              f"{len(result.removed)} stale removed")
        ignored = result.ignored
    if ignored:
        shown = ", ".join(ignored[:3]) + (" …" if len(ignored) > 3 else "")
        print(f"note: {len(ignored)} object(s) outside the dataset layout (symbol=S/interval=I/year=YYYY/"
              f"month=MM/NAME.parquet with a Binance symbol) were not copied: {shown}", file=sys.stderr)
    return 0
