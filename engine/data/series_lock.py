"""The series lock: one writer at a time per (symbol, interval), for every writer.

Every upsert is read-merge-write of whole month partitions, so two writers of one
series can drop each other's rows. ``data fetch``, ``data backfill``, ``data build``
and the ingest Lambda therefore take this lock around their writes.

* **Local dataset folder**: an OS file lock (``fcntl.flock``) on
  ``<root>/_locks/symbol=S/interval=I.lock`` (storage_layout.local_lock_path), a
  folder the dataset readers skip. The file records the holder's pid, host and
  command for the waiting writer's message. The kernel releases the lock when its
  holder dies, however it dies, so a dead pid never blocks the next writer.
* **S3** (``s3://bucket/...``): a lease object at the bucket's
  ``locks/symbol=S/interval=I.json`` (storage_layout.series_lock_key), never inside
  ``candles/``. It is created with a conditional PUT (``If-None-Match: *``), renewed
  with ``If-Match`` on its own ETag, and released with a conditional DELETE. It
  names its expiry; once that has passed, the next writer takes it over with
  ``If-Match`` on the stale lease's ETag, so a killed holder blocks no one for long.
  A holder whose lease was taken over stops before its next write (:class:`LockLost`).

A second writer waits, saying so once, up to a timeout, then raises
:class:`SeriesLocked` (exit code 2): it never writes without the lock. Once the lock
is taken, what an interrupted writer left (temp files; doubled S3 partition files)
is cleared (:func:`engine.data.dataset.tidy_series`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from ..errors import UserError
from ..storage_layout import (is_s3_uri, local_lock_path, local_table_lock_path, lock_key_for_root, parse_s3_uri,
                              s3_uri)
from ..timeutil import format_time
from .binance import is_symbol, series_problem
from .dataset import tidy_series
from .s3_errors import s3_error_code, s3_errors
from .s3_session import s3_client

DEFAULT_WAIT_S = 60.0
LEASE_TTL_MS = 120_000          # an S3 lease of a command-line writer, renewed every third of it
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
_MISSING = ("NoSuchKey", "404")


class SeriesLocked(UserError):
    """Another writer still holds the series after the wait."""


class LockLost(UserError):
    """This writer's S3 lease expired and was taken over: it must not write again."""


class SeriesLock(Protocol):
    description: str

    def try_acquire(self) -> bool: ...
    def holder(self) -> dict | None: ...
    def check(self) -> None: ...
    def release(self) -> None: ...


def _who(command: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command}


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "another writer"
    parts = []
    if holder.get("pid") is not None:
        parts.append(f"pid {holder['pid']}" + (f" on {holder['host']}" if holder.get("host") else ""))
    elif holder.get("owner"):
        parts.append(str(holder["owner"]))
    if holder.get("command"):
        parts.append(str(holder["command"]))
    since = holder.get("acquired_ms")
    if isinstance(since, int):
        parts.append(f"since {format_time(since)} UTC")
    return ", ".join(parts) or "another writer"


# --------------------------------------------------------------------------- local

class LocalSeriesLock:
    """``flock`` on the series' lock file in the dataset folder."""

    def __init__(self, root: str | Path, symbol: str, interval: str | None, *, command: str = "",
                 clock: Callable[[], float] = time.time):
        # interval None: a one-file-per-symbol table (funding)
        self.path = Path(root) / (local_lock_path(symbol, interval) if interval else local_table_lock_path(symbol))
        self.description = f"{symbol} {interval or 'funding'} in {root}"
        self.command, self.clock = command, clock
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Never through a symlink planted at this predictable name: its target would be truncated.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UserError(f"{self.path}: the series lock file is a symbolic link; remove it (a lock file "
                                "is never a link)") from None
            raise UserError(f"{self.path}: cannot create the series lock file ({exc.strerror or exc})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UserError(f"{self.path}: the series lock file is not a regular file; remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise UserError(f"{self.path}: cannot lock ({exc.strerror or exc}); "
                            "the dataset folder's file system must support file locks") from None
        body = json.dumps({**_who(self.command), "acquired_ms": int(self.clock() * 1000)}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, body, 0)
        self._fd = fd
        return True

    def holder(self) -> dict | None:
        try:
            data = json.loads(self.path.read_bytes() or b"null")
        except (OSError, ValueError):
            return None  # being rewritten, or gone
        return data if isinstance(data, dict) else None

    def check(self) -> None:
        if self._fd is None:
            raise LockLost(f"{self.description}: the series lock is not held")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # free: no holder to name (the file stays; unlinking it would race)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock


# --------------------------------------------------------------------------- S3

class S3Lease:
    """A lease object taken and released with S3 conditional writes.

    ``ttl_ms()`` gives the lease's length at each write (a Lambda passes its remaining
    time plus a grace); ``renew_every`` (seconds), when set, renews it from a
    background thread for as long as it is held.
    """

    def __init__(self, client: Any, bucket: str, key: str, *, owner: str | None = None, command: str = "",
                 ttl_ms: Callable[[], int] = lambda: LEASE_TTL_MS, renew_every: float | None = None,
                 clock: Callable[[], float] = time.time, extra: dict | None = None):
        self.client, self.bucket, self.key = client, bucket, key
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.description = s3_uri(bucket, key)
        self.command, self.ttl_ms, self.renew_every, self.clock = command, ttl_ms, renew_every, clock
        self.extra = extra or {}
        self.etag: str | None = None
        self.expires_ms = 0
        self._lost: str | None = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> tuple[bytes, int]:
        now = int(self.clock() * 1000)
        expires = now + max(0, int(self.ttl_ms()))
        body = {"owner": self.owner, **_who(self.command), **self.extra, "acquired_ms": now, "expires_ms": expires}
        return json.dumps(body).encode(), expires

    def _put(self, **condition: str) -> bool:
        body, expires = self._body()
        try:
            etag = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                          ContentType="application/json", **condition)["ETag"]
        except Exception as exc:  # botocore ClientError; anything else propagates
            if s3_error_code(exc) in _CONFLICT or s3_error_code(exc) in _MISSING:
                return False
            raise
        self.etag, self.expires_ms = etag, expires
        return True

    def _get(self) -> tuple[dict | None, str | None]:
        try:
            held = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if s3_error_code(exc) in _MISSING:
                return None, None
            raise
        try:
            data = json.loads(held["Body"].read())
        except ValueError:
            data = None
        return (data if isinstance(data, dict) else {}), held["ETag"]

    def try_acquire(self) -> bool:
        with self._mutex:
            if self.etag is not None:
                return True
            for _ in range(2):
                if self._put(IfNoneMatch="*"):
                    break
                held, etag = self._get()
                if etag is None:
                    continue  # released meanwhile: try again
                try:
                    expires = int(held.get("expires_ms", 0))
                except (TypeError, ValueError):
                    expires = 0  # unreadable: treat as stale
                if expires > self.clock() * 1000:
                    return False
                if self._put(IfMatch=etag):  # stale: take it over unless someone else just did
                    break
                return False
            else:
                return False
        if self.renew_every:
            self._stop.clear()
            self._thread = threading.Thread(target=self._heartbeat, name="series-lease", daemon=True)
            self._thread.start()
        return True

    def holder(self) -> dict | None:
        held, _ = self._get()
        return held

    def renew(self) -> None:
        with self._mutex:
            if self.etag is None or self._lost:
                return
            try:
                ok = self._put(IfMatch=self.etag)
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried until the lease runs out
                ok = None
                if self.clock() * 1000 >= self.expires_ms:
                    self._lost = f"could not renew it ({exc})"
            if ok is False:
                self._lost = "it expired and another writer took it over"

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.renew_every):
            self.renew()
            if self._lost:
                return

    def check(self) -> None:
        """Raise LockLost unless the lease is still ours and unexpired (call before every write)."""
        if self.etag is None:
            raise LockLost(f"{self.description}: the series lease is not held")
        if self._lost is None and self.clock() * 1000 >= self.expires_ms:
            self._lost = "it expired before it could be renewed"
        if self._lost:
            raise LockLost(f"{self.description}: lost the series lease ({self._lost}); stopped before writing "
                           "again; what was written stays")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._mutex:
            etag, self.etag = self.etag, None
        if etag is None or self._lost:
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except Exception as exc:
            if s3_error_code(exc) not in _CONFLICT and s3_error_code(exc) not in _MISSING:
                raise
            # expired and taken over, or already gone: not ours to delete


def s3_lease(root: str, symbol: str, interval: str | None, *, client: Any = None, session: Any = None,
             **options: Any) -> S3Lease:
    """The lease of one series of the S3 dataset at ``root`` (storage_layout.lock_key_for_root: spot's
    ``locks/…``, a perp kind's ``um/locks/…``); ``interval`` None: a funding table's."""
    bucket, key = parse_s3_uri(root)
    return S3Lease(client or s3_client(session), bucket, lock_key_for_root(key, symbol, interval), **options)


# --------------------------------------------------------------------------- taking it

def make_lock(root: str, symbol: str, interval: str | None, *, command: str = "", session: Any = None,
              client: Any = None) -> SeriesLock:
    """The lock of one series (``interval`` None: of a symbol's funding table)."""
    problem = (series_problem(symbol, interval) if interval is not None else  # names become the path or key
               None if is_symbol(symbol) else f"{symbol!r} is not a Binance symbol")
    if problem:
        raise UserError(f"{root}: {problem}; nothing was written")
    if is_s3_uri(root):
        return s3_lease(root, symbol, interval, client=client, session=session, command=command,
                        renew_every=LEASE_TTL_MS / 3000)
    return LocalSeriesLock(root, symbol, interval, command=command)


def acquire(lock: SeriesLock, *, wait: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None,
            poll: float = 0.1, sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic) -> None:
    """Take ``lock``, waiting up to ``wait`` seconds (telling ``on_wait`` once), else SeriesLocked."""
    give_up = clock() + max(0.0, wait)
    told = False
    while not _s3_safe(lock, lock.try_acquire):
        holder = _s3_safe(lock, lock.holder)
        if clock() >= give_up:
            raise SeriesLocked(f"{lock.description}: still locked by {describe_holder(holder)} after "
                               f"{wait:g} s; nothing was written; try again when it has finished "
                               "(or wait longer with --lock-timeout)")
        if not told and on_wait is not None:
            on_wait(f"waiting for the series lock on {lock.description} (held by {describe_holder(holder)}; "
                    f"up to {wait:g} s)")
            told = True
        sleep(min(poll, max(0.0, give_up - clock())))


def _s3_safe(lock: SeriesLock, call: Callable[[], Any]) -> Any:
    with s3_errors(lock.description):
        return call()


@contextmanager
def hold_series(root: str, symbol: str, interval: str, *, wait: float = DEFAULT_WAIT_S,
                on_wait: Callable[[str], None] | None = None, command: str = "", session: Any = None,
                client: Any = None, lock: SeriesLock | None = None) -> Iterator[SeriesLock]:
    """Hold the series lock for the block (see the module docstring); clears an earlier writer's litter first.

    ``lock`` given: it is already held by the caller and is only checked.
    """
    if lock is not None:
        lock.check()
        yield lock
        return
    lock = make_lock(root, symbol, interval, command=command, session=session, client=client)
    acquire(lock, wait=wait, on_wait=on_wait)
    try:
        tidy_series(root, symbol, interval, session=session)
        yield lock
    finally:
        _s3_safe(lock, lock.release)


@contextmanager
def hold_table(root: str, symbol: str, *, wait: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None,
               command: str = "", session: Any = None, lock: SeriesLock | None = None) -> Iterator[SeriesLock]:
    """Hold the lock of a symbol's funding table at ``root`` for the block (one writer at a time)."""
    if lock is not None:
        lock.check()
        yield lock
        return
    lock = make_lock(root, symbol, None, command=command, session=session)
    acquire(lock, wait=wait, on_wait=on_wait)
    try:
        yield lock
    finally:
        _s3_safe(lock, lock.release)
