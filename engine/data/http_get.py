"""Minimal HTTP GET over the standard library (the ingest Lambda has no requests)."""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from email.message import Message
from typing import Callable, NamedTuple

USER_AGENT = "backtest-engine/0.1 (+market-data)"


class HttpResponse(NamedTuple):
    status: int
    headers: Message
    body: bytes


class TransportError(Exception):
    """No complete HTTP answer: refused, reset, dropped, timed out or cut short."""


#: ``opener(request, timeout)`` like :func:`urllib.request.urlopen`; injectable for tests.
Opener = Callable[..., object]


def http_get(url: str, *, timeout: float = 30.0, headers: dict[str, str] | None = None,
             opener: Opener | None = None) -> HttpResponse:
    """One GET. Any status comes back as a response; transport failures raise TransportError."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    open_ = opener or urllib.request.urlopen
    try:
        with open_(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read()
        except (OSError, http.client.HTTPException):
            body = b""
        return HttpResponse(exc.code, exc.headers, body)
    except urllib.error.URLError as exc:
        raise TransportError(str(exc.reason)) from None
    except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError) as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from None
