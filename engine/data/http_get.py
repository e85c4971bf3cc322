"""One HTTP GET over the standard library (the ingest Lambda has no requests) that always ends.

urllib's ``timeout`` bounds each socket wait, not the request: a server that drips
one byte every few seconds keeps every wait short and the request alive forever.
Here a watchdog timer shuts the connection's socket down when the request's own
deadline passes, whatever it is doing (connecting, sending, reading headers or
body), so the whole response counts. Proxies configured in the environment still
apply (urllib's handlers do the work; only the connection class is watched).
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request
from email.message import Message
from typing import NamedTuple

USER_AGENT = "backtest-engine/0.1 (+market-data)"
MAX_BODY_BYTES = 512 * 1024 * 1024  # far above any kline page or bulk zip
_CHUNK = 1 << 16


class HttpResponse(NamedTuple):
    status: int
    headers: Message
    body: bytes


class TransportError(Exception):
    """No complete HTTP answer: refused, reset, dropped, timed out or cut short."""


class _Watch:
    """The sockets of one request, shut down together when its deadline passes."""

    def __init__(self) -> None:
        self.expired = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def cut(self) -> None:
        self.expired.set()  # before looking at the sockets: see Watched.connect
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:  # the plain socket's shutdown, also for TLS: wakes a blocked read at once
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass

    def add(self, sock: socket.socket | None) -> None:
        # urllib drops the connection's reference once the headers are in (the response
        # keeps reading from the same socket), so the socket itself is remembered.
        if sock is not None:
            with self._lock:
                self._socks.append(sock)

    def watched(self, base: type) -> type:
        watch = self

        class Watched(base):  # type: ignore[misc, valid-type]
            def connect(self):
                super().connect()
                watch.add(self.sock)
                if watch.expired.is_set():  # the deadline passed while connecting
                    self.close()
                    raise socket.timeout("deadline passed while connecting")

        return Watched


def _opener(watch: _Watch) -> urllib.request.OpenerDirector:
    class Http(urllib.request.HTTPHandler):
        def do_open(self, http_class, req, **kw):
            return super().do_open(watch.watched(http_class), req, **kw)

    class Https(urllib.request.HTTPSHandler):
        def do_open(self, http_class, req, **kw):
            return super().do_open(watch.watched(http_class), req, **kw)

    return urllib.request.build_opener(Http(), Https())


def _read(resp, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = resp.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise TransportError(f"answer larger than {max_bytes} bytes")
        chunks.append(chunk)


def http_get(url: str, *, timeout: float = 30.0, headers: dict[str, str] | None = None,
             max_bytes: int = MAX_BODY_BYTES) -> HttpResponse:
    """One GET, finished within ``timeout`` seconds (connect, headers and the whole body).

    Any status comes back as a response; no complete answer in time raises TransportError.
    """
    if timeout <= 0:
        raise TransportError("no time left for the request")
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    watch = _Watch()
    timer = threading.Timer(timeout, watch.cut)
    timer.daemon = True
    timer.start()
    try:
        try:
            with _opener(watch).open(req, timeout=timeout) as resp:
                status, head, body = resp.status, resp.headers, _read(resp, max_bytes)
        except urllib.error.HTTPError as exc:
            try:
                status, head, body = exc.code, exc.headers, _read(exc, max_bytes)
            except (OSError, http.client.HTTPException):
                status, head, body = exc.code, exc.headers, b""
            finally:
                exc.close()
        if watch.expired.is_set():
            raise TransportError(f"no complete answer within {timeout:g} s")
        return HttpResponse(status, head, body)
    except TransportError:
        raise
    except urllib.error.URLError as exc:
        if watch.expired.is_set():
            raise TransportError(f"no complete answer within {timeout:g} s") from None
        raise TransportError(str(exc.reason)) from None
    except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError, ValueError) as exc:
        if watch.expired.is_set():
            raise TransportError(f"no complete answer within {timeout:g} s") from None
        raise TransportError(f"{type(exc).__name__}: {exc}") from None
    finally:
        timer.cancel()
