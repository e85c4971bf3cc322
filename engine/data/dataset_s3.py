"""The S3 backend of the candle dataset: ``s3://bucket/candles/``.

An upsert writes one new object per month it touches, all of one generation, and only then
deletes the objects they replace (:mod:`engine.data.generations`). A reader reads the
committed objects only; when one vanishes before it is read (a newer generation was
committed and deleted it), it lists and reads again. Objects are listed, read, written and
deleted through one cached S3 client per session (:func:`engine.data.s3_session.s3_client`):
awswrangler made a new client (~10 ms of CPU) for every call. awswrangler/boto3 are imported
inside the functions: the ingest Lambda and the local CLI must not pay for them at import.
"""

from __future__ import annotations

import io
import time
from typing import Any, Callable, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..candles import time_filter
from ..errors import DataError
from ..storage_layout import PARTITION_COLUMNS, month_partition, series_prefix
from .checks import validate_frame
from .dataset_schema import (SCHEMA, STORED_COLUMNS, UpsertResult, check_schema, merge_frames, month_key,
                             month_overlaps, normalise_frame, parse_month, partition_value)
from .generations import committed, incomplete, next_generation, part_name
from .s3_errors import describe_s3_error, s3_error_code, s3_errors
from .s3_session import s3_client, session_or_default

#: Listings (and reads) a reader tries before it gives up on a series that keeps changing under it.
READ_ATTEMPTS = 20
_PAGE = 1000  # objects in one S3 listing page
_T = TypeVar("_T")
Files = dict[tuple[int, int], list[str]]


class _Vanished(Exception):
    """A listed object was deleted before it was read: a newer generation was committed meanwhile."""


def s3_root(root: str) -> str:
    return root if root.endswith("/") else root + "/"


def partition_values(prefix: str, key: str, session: Any) -> list[str]:
    import awswrangler as wr

    out = []
    with s3_errors(prefix):
        dirs = wr.s3.list_directories(prefix, boto3_session=session)
    for d in dirs:
        v = partition_value(d.rstrip("/").rsplit("/", 1)[-1], key)
        if v is not None:
            out.append(v)
    return sorted(out)


def _list_once(base: str, session: Any) -> list[str]:
    """The ``s3://`` paths of the Parquet objects under ``base``, sorted (through the session's
    cached client: awswrangler's ``list_objects`` makes a new client every call)."""
    bucket, _, prefix = base[len("s3://"):].partition("/")
    pages = s3_client(session).get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": _PAGE})
    return sorted(f"s3://{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", [])
                  if o["Key"].endswith(".parquet"))


def _list(base: str, session: Any) -> list[str]:
    """Every Parquet key under ``base``. A listing of more than one page is no snapshot (each page is
    listed at its own moment), so it is repeated until two agree."""
    previous = None
    for _ in range(READ_ATTEMPTS):
        with s3_errors(base):
            paths = _list_once(base, session)
        if len(paths) < _PAGE or paths == previous:
            return paths
        previous = paths
    raise DataError(f"{base}: the series kept changing while it was listed ({READ_ATTEMPTS} listings); try again")


def series_files(root: str, symbol: str, interval: str, session: Any, *, everything: bool = False) -> Files:
    """The committed Parquet objects of one series by (year, month), from one listing, in key order;
    ``everything`` keeps an incomplete generation's too."""
    base = root + series_prefix(symbol, interval)
    kept = []
    for path in _list(base, session):
        *folders, name = path[len(base):].split("/")
        if name.startswith((".", "_")):
            continue
        parts = dict(f.split("=", 1) for f in folders if "=" in f)
        if len(folders) != 2 or set(parts) != {"year", "month"}:
            continue  # not in a month partition: not part of the series
        kept.append((parse_month(parts["year"], parts["month"], base), path))
    chosen = {p for _, p in kept} if everything else set(committed(p for _, p in kept))
    out: Files = {}
    for month, path in kept:
        if path in chosen:
            out.setdefault(month, []).append(path)
    return out


def _consistent(base: str, attempt: Callable[[], _T]) -> _T:
    """``attempt()`` (list, then read), again while an object it listed vanishes before it is read."""
    for i in range(READ_ATTEMPTS):
        try:
            return attempt()
        except _Vanished:
            time.sleep(min(0.01 * 2 ** i, 0.5))
    raise DataError(f"{base}: the series was rewritten {READ_ATTEMPTS} times while it was being read; try again")


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path[len("s3://"):].partition("/")
    return bucket, key


def _read_object(path: str, base: str, columns: list[str] | None, session: Any) -> pd.DataFrame:
    """One Parquet object as a frame; a vanished object raises _Vanished, anything else one DataError."""
    bucket, key = _split(path)
    try:
        body = s3_client(session).get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - S3 failures become one line
        if s3_error_code(exc) in ("NoSuchKey", "404"):
            raise _Vanished(base) from None
        reason = describe_s3_error(exc)
        if reason is None:
            raise
        raise DataError(f"{base}: {reason}") from None
    try:
        table = pq.ParquetFile(io.BytesIO(body)).read(columns=columns)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt objects
        raise DataError(f"{base}: a partition file is not readable Parquet ({(str(exc).splitlines() or [exc])[0]})") \
            from None
    check_schema(table.schema, base)
    return table.to_pandas()


def read_months(root: str, symbol: str, interval: str, months: set[tuple[int, int]] | None,
                start: int | None, end: int | None, session: Any, columns: list[str] | None = None,
                files: Files | None = None) -> pd.DataFrame:
    """The listed (or all) month partitions of one series overlapping [start, end).

    Objects are read in key order; writers name them by generation, so on equal open times a
    later object wins in :func:`merge_frames`. A listed object that is gone raises _Vanished
    (:func:`_consistent` lists again).
    """
    base = root + series_prefix(symbol, interval)
    files = files if files is not None else series_files(root, symbol, interval, session)
    paths = [p for (y, m), ps in sorted(files.items())
             if (months is None or (y, m) in months) and month_overlaps(y, m, start, end) for p in ps]
    if not paths:
        return pd.DataFrame({c: [] for c in (columns or STORED_COLUMNS)})
    frames = [_read_object(path, base, columns, session) for path in paths]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    df = df.drop(columns=[c for c in PARTITION_COLUMNS if c in df.columns])
    return df if columns is not None else normalise_frame(df, root)


def series_names(root: str, session: Any) -> list[tuple[str, str]]:
    """Every (symbol, interval) folder pair of the dataset, sorted."""
    root, session = s3_root(root), session_or_default(session)
    return [(s, i) for s in partition_values(root, "symbol", session)
            for i in partition_values(f"{root}symbol={s}/", "interval", session)]


def read(root: str, symbol: str, interval: str, start: int | None, end: int | None,
         session: Any) -> pd.DataFrame | None:
    """The series' candles in ``[start, end)`` from the month partitions that range touches; None when the
    dataset has no object of that series."""
    session = session_or_default(session)
    root = s3_root(root)
    listed = series_files(root, symbol, interval, session)
    if not listed:
        return None

    def attempt() -> pd.DataFrame:
        nonlocal listed
        files, listed = listed or None, {}  # the first attempt reads what was just listed
        return read_months(root, symbol, interval, None, start, end, session, files=files)

    df = _consistent(root + series_prefix(symbol, interval), attempt)
    return time_filter(merge_frames(df), start, end)


def last_open_time(root: str, symbol: str, interval: str, session: Any) -> int | None:
    session = session_or_default(session)
    root = s3_root(root)

    def attempt() -> int | None:
        files = series_files(root, symbol, interval, session)
        for y, m in sorted(files, reverse=True):
            df = read_months(root, symbol, interval, {(y, m)}, None, None, session, columns=["open_time"],
                             files=files)
            if len(df):
                return int(df["open_time"].max())
        return None

    return _consistent(root + series_prefix(symbol, interval), attempt)


def open_times(root: str, symbol: str, interval: str, start: int | None, end: int | None,
               session: Any) -> np.ndarray:
    session = session_or_default(session)
    root = s3_root(root)
    df = _consistent(root + series_prefix(symbol, interval),
                     lambda: read_months(root, symbol, interval, None, start, end, session, columns=["open_time"]))
    return np.asarray(df["open_time"], dtype=np.int64)


def _delete(paths: list[str], where: str, session: Any) -> None:
    """Delete ``s3://`` paths of one bucket, 1,000 per request, through the session's cached client."""
    if not paths:
        return
    bucket = paths[0][len("s3://"):].partition("/")[0]
    keys = [p[len(f"s3://{bucket}/"):] for p in paths]
    with s3_errors(where):
        for i in range(0, len(keys), _PAGE):
            answer = s3_client(session).delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + _PAGE]], "Quiet": True})
            for error in answer.get("Errors", []):
                raise DataError(f"{where}: could not delete {error.get('Key')} ({error.get('Code')}: "
                                f"{error.get('Message')})")


def _drop_incomplete(root: str, symbol: str, interval: str, session: Any) -> tuple[Files, list[str]]:
    """Delete a dead writer's incomplete generation (only a holder of the series lock may); the
    committed objects and the ones deleted."""
    everything = series_files(root, symbol, interval, session, everything=True)
    litter = incomplete(p for ps in everything.values() for p in ps)
    _delete(litter, root + series_prefix(symbol, interval), session)
    gone = set(litter)
    files = {ym: kept for ym, ps in everything.items() if (kept := [p for p in ps if p not in gone])}
    return files, litter


def _put_parquet(path: str, df: pd.DataFrame, session: Any) -> None:
    """One month's frame as a snappy Parquet object, in the local partitions' schema (dataset_local)."""
    table = pa.Table.from_pandas(df[list(STORED_COLUMNS)], schema=SCHEMA, preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    bucket, key = _split(path)
    s3_client(session).put_object(Bucket=bucket, Key=key, Body=sink.getvalue())


def upsert(root: str, symbol: str, interval: str, df: pd.DataFrame, session: Any) -> UpsertResult:
    """Write the merged partition of every month touched as one new generation, then delete the
    objects it replaces.

    Never the other way round (awswrangler's ``overwrite_partitions`` deletes first): a kill
    before the generation is complete leaves the old version whole (readers leave the new
    objects out; the next writer deletes them); a kill after it leaves replaced objects whose
    rows the new ones hold, which the next writer merges away. The caller holds the series
    lock, so an incomplete generation found here is a dead writer's and goes first.
    """
    session = session_or_default(session)
    root = s3_root(root)
    base = root + series_prefix(symbol, interval)
    files, _ = _drop_incomplete(root, symbol, interval, session)
    keys = month_key(df["open_time"].to_numpy())
    months = np.unique(keys)
    generation = next_generation(p for ps in files.values() for p in ps)
    added, written, new, replaced = 0, [], [], []
    try:
        for key in months:
            y, m = int(key) // 100, int(key) % 100
            prefix = f"{base}year={y:04d}/month={m:02d}/"
            prev = merge_frames(read_months(root, symbol, interval, {(y, m)}, None, None, session, files=files))
            merged = merge_frames(prev, df.loc[keys == key])
            validate_frame(merged, prefix)
            path = prefix + part_name(generation, len(months))
            with s3_errors(prefix):
                _put_parquet(path, merged, session)
            new.append(path)
            replaced += files.get((y, m), [])
            added += len(merged) - len(prev)
            written.append(month_partition(symbol, interval, int(merged["open_time"].iloc[0])))
    except BaseException:
        try:
            _delete(new, base, session)  # the generation will never be complete: leave no litter
        except Exception:  # noqa: BLE001 - the first error is the one to report; the next writer tidies
            pass
        raise
    _delete(replaced, base, session)  # the generation is complete: what it replaces can go
    return UpsertResult(added, written)


def tidy(root: str, symbol: str, interval: str, session: Any) -> list[str]:
    """Delete an interrupted writer's incomplete generation, and merge the months it left with
    more than one object (a kill between a generation's completion and its deletions)."""
    session = session_or_default(session)
    root = s3_root(root)
    files, fixed = _drop_incomplete(root, symbol, interval, session)
    doubled = {ym for ym, paths in files.items() if len(paths) > 1}
    if doubled:
        df = merge_frames(read_months(root, symbol, interval, doubled, None, None, session, files=files))
        if len(df):
            upsert(root, symbol, interval, df, session)
            fixed += [files[ym][0].rsplit("/", 1)[0] + "/" for ym in sorted(doubled)]
    return fixed
