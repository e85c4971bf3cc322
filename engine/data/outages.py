"""Time ranges of a series: what is missing, and what the exchange confirmed empty (outages).

A range is ``(lo, hi)``: the open times ``lo <= t < hi`` (ms); ``hi`` None means "up to now".
An outage is a range the exchange answered with no candle although it was asked for it
and had candles after it (a real exchange outage, or the time before a symbol was
listed). Outages are recorded beside the dataset so that a later fetch does not ask for
them again, and ``data inspect`` tells them apart from unexplained gaps:

* locally ``<root>/_meta/symbol=S/interval=I/outages.json`` (storage_layout.local_outages_path,
  a folder the dataset readers skip), written atomically;
* on S3 ``meta/symbol=S/interval=I/outages.json`` at the bucket level (storage_layout.outages_key).

Only a writer holding the series lock writes the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import numpy as np

from ..candles import GapReport
from ..errors import DataError
from ..storage_layout import is_s3_uri, local_outages_path, outages_key, parse_s3_uri, s3_uri
from ..timeutil import format_time
from .s3_errors import s3_error_code, s3_errors
from .binance import series_problem
from .local_write import write_atomic
from .s3_session import s3_client

Range = tuple[int, "int | None"]


class Missing(NamedTuple):
    lo: int
    hi: int | None       # None: open towards now
    bounded: bool        # a stored candle follows it (head, interior gap), so the exchange's answer is final


def normalise(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-empty, with overlapping or touching ranges merged."""
    out: list[list[int]] = []
    for lo, hi in sorted((int(a), int(b)) for a, b in ranges if int(b) > int(a)):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


def subtract(ranges: Iterable[Missing], known: list[tuple[int, int]]) -> list[Missing]:
    """The parts of ``ranges`` not covered by the (normalised) ``known`` ranges."""
    out = []
    for r in ranges:
        lo = r.lo
        for a, b in known:
            if r.hi is not None and a >= r.hi:
                break
            if b <= lo:
                continue
            if a > lo:
                out.append(Missing(lo, a, True))
            lo = max(lo, b)
        if r.hi is None or lo < r.hi:
            out.append(Missing(lo, r.hi, r.bounded))
    return out


def missing_ranges(stored: np.ndarray, start: int, end: int | None, interval_ms: int,
                   known_empty: list[tuple[int, int]] = ()) -> list[Missing]:
    """What a fetch of ``[start, end)`` must ask for, given the stored open times (sorted, in range).

    The head before the first stored candle, every interior gap and the tail after the last,
    minus the ranges known to be empty. A head or tail shorter than one interval holds no candle.
    """
    iv = interval_ms
    t = np.asarray(stored, dtype=np.int64)
    if len(t) == 0:
        out = [Missing(start, end, False)]
    else:
        out = []
        if int(t[0]) - start >= iv:
            out.append(Missing(start, int(t[0]), True))
        d = np.diff(t)
        for i in np.flatnonzero(d > iv):
            out.append(Missing(int(t[i]) + iv, int(t[i + 1]), True))
        tail = int(t[-1]) + iv
        if end is None or end > tail:
            out.append(Missing(tail, end, False))
    return subtract(out, normalise(known_empty))


def confirmed_empty(asked: list[Missing], received: np.ndarray, interval_ms: int) -> list[tuple[int, int]]:
    """The parts of the ``asked`` ranges the exchange's complete answer left without a candle.

    A bounded range is final up to its end; an open (tail) range only up to the last candle received.
    """
    t = np.asarray(received, dtype=np.int64)
    covered = normalise((int(x), int(x) + interval_ms) for x in t)
    out = []
    for r in asked:
        hi = r.hi if r.bounded and r.hi is not None else (int(t[-1]) if len(t) else None)
        if r.hi is not None and hi is not None:
            hi = min(hi, r.hi)
        if hi is None or hi <= r.lo:
            continue
        out += [(m.lo, m.hi) for m in subtract([Missing(r.lo, hi, True)], covered)]
    return normalise(out)


def unexplained_gaps(t: np.ndarray, interval_ms: int, known_empty: list[tuple[int, int]]) -> GapReport:
    """Interior holes of the sorted open times ``t`` not covered by recorded outages."""
    if len(t) < 2:
        return GapReport(0, 0, None, 0)
    holes = [m for m in missing_ranges(t, int(t[0]), int(t[-1]), interval_ms, known_empty) if m.bounded]
    if not holes:
        return GapReport(0, 0, None, 0)
    big = max(holes, key=lambda m: m.hi - m.lo)
    return GapReport(len(holes), big.hi - big.lo + interval_ms, big.hi, bars([(m.lo, m.hi) for m in holes],
                                                                              interval_ms))


def bars(ranges: Iterable[tuple[int, int]], interval_ms: int) -> int:
    """Candle slots in the ranges (a partial slot counts when it holds an open time on the grid)."""
    return sum(max(0, -(-(hi - lo) // interval_ms)) for lo, hi in ranges)


def describe(ranges: list[tuple[int, int]], limit: int = 3) -> str:
    shown = [f"{format_time(lo)} .. {format_time(hi)}" for lo, hi in ranges[:limit]]
    return "; ".join(shown) + (f"; … ({len(ranges) - limit} more)" if len(ranges) > limit else "")


# --------------------------------------------------------------------------- the file beside the dataset

def outages_location(root: str, symbol: str, interval: str) -> str:
    problem = series_problem(symbol, interval)  # the names become the file's path or key
    if problem:
        raise DataError(f"{root}: {problem}")
    if is_s3_uri(root):
        return s3_uri(parse_s3_uri(root).bucket, outages_key(symbol, interval))
    return str(Path(root) / local_outages_path(symbol, interval))


def _parse(text: bytes, where: str) -> list[tuple[int, int]]:
    try:
        doc = json.loads(text)
        return normalise((int(r["from_ms"]), int(r["to_ms"])) for r in doc["outages"])
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{where}: unreadable outages file ({type(exc).__name__}: {exc}); "
                        "delete it to forget the recorded outages") from None


def _render(symbol: str, interval: str, ranges: list[tuple[int, int]]) -> bytes:
    doc = {"symbol": symbol, "interval": interval,
           "note": "open-time ranges [from, to) the exchange confirmed empty; not requested again",
           "outages": [{"from_ms": lo, "to_ms": hi, "from": format_time(lo), "to": format_time(hi)}
                       for lo, hi in ranges]}
    return (json.dumps(doc, indent=1) + "\n").encode()


def read_outages(root: str, symbol: str, interval: str, *, session: Any = None,
                 client: Any = None) -> list[tuple[int, int]]:
    where = outages_location(root, symbol, interval)
    if is_s3_uri(root):
        uri = parse_s3_uri(where)
        with s3_errors(where):
            try:
                body = (client or s3_client(session)).get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
            except Exception as exc:
                if s3_error_code(exc) in ("NoSuchKey", "404"):
                    return []
                raise
        return _parse(body, where)
    p = Path(where)
    if not p.is_file():
        return []
    try:
        return _parse(p.read_bytes(), where)
    except OSError as exc:
        raise DataError(f"{where}: cannot read ({exc.strerror or exc})") from None


def record_outages(root: str, symbol: str, interval: str, found: list[tuple[int, int]], *,
                   session: Any = None, client: Any = None) -> list[tuple[int, int]]:
    """Add ``found`` to the recorded outages (caller holds the series lock); returns all of them."""
    if not found:
        return read_outages(root, symbol, interval, session=session, client=client)
    ranges = normalise(read_outages(root, symbol, interval, session=session, client=client) + list(found))
    body = _render(symbol, interval, ranges)
    where = outages_location(root, symbol, interval)
    if is_s3_uri(root):
        uri = parse_s3_uri(where)
        with s3_errors(where):
            (client or s3_client(session)).put_object(Bucket=uri.bucket, Key=uri.key, Body=body,
                                                      ContentType="application/json")
        return ranges
    write_atomic(Path(where), body)
    return ranges
