"""The one retry loop for HTTP: the klines client and the bulk backfill both use it.

Transport failures (refused, reset, cut short, no complete answer in time), 429 and
5xx are retried with a bounded exponential back-off; a ``Retry-After`` is obeyed up
to a cap, and a longer one stops at once with a user error (waiting hours is not a
retry). Every other answer goes to the caller's ``accept``, which returns a value,
raises :class:`Retry`, or raises an error of its own. An optional :class:`Deadline`
bounds the whole command: no request or pause runs past it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import Message
from typing import Callable, TypeVar

from ..errors import UserError
from .http_get import HttpResponse, TransportError, http_get

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5               # attempts after the first
    backoff: float = 1.0           # first pause, doubled on each retry
    max_backoff: float = 60.0
    max_retry_after: float = 120.0  # a longer Retry-After is refused, not waited
    request_timeout: float = 30.0  # one request, whole response included

    def pause(self, attempt: int) -> float:
        """The back-off before retry number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))


class Retry(Exception):
    """Raised by an ``accept`` function: this answer is transient; try again (after ``after`` s)."""

    def __init__(self, problem: str, after: float | None = None):
        super().__init__(problem)
        self.problem, self.after = problem, after


class RetryAfterTooLong(UserError):
    """The server asked to wait longer than the cap allows."""


class DeadlineExceeded(UserError):
    """The command's own time limit (``--timeout``) ran out."""


class Deadline:
    """A wall-clock limit for a whole command (monotonic; None seconds = no limit)."""

    def __init__(self, seconds: float | None, label: str = "the time limit",
                 clock: Callable[[], float] = time.monotonic):
        self.seconds, self.label, self.clock = seconds, label, clock
        self.at = None if seconds is None else clock() + seconds

    def left(self) -> float | None:
        return None if self.at is None else self.at - self.clock()

    def check(self, what: str, need: float = 0.0) -> None:
        """Raise DeadlineExceeded if ``need`` more seconds do not fit before the deadline."""
        left = self.left()
        if left is not None and left <= need:
            raise DeadlineExceeded(f"{what}: stopped, {self.label} of {self.seconds:g} s ran out")

    def cap(self, seconds: float, what: str) -> float:
        """``seconds``, shortened to what is left (raises when nothing is left)."""
        self.check(what)
        left = self.left()
        return seconds if left is None else min(seconds, left)


def retry_after(headers: Message | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def get_with_retries(url: str, accept: Callable[[HttpResponse], T], *, policy: RetryPolicy,
                     sleep: Callable[[float], None] = time.sleep, headers: dict[str, str] | None = None,
                     deadline: Deadline | None = None, observe: Callable[[HttpResponse], None] | None = None,
                     before: Callable[[], None] | None = None, what: str | None = None,
                     error: type[UserError] = UserError) -> T:
    """GET ``url`` until ``accept`` takes an answer; give up after ``policy.retries`` retries.

    ``before()`` runs before each request (pacing, counting), ``observe(resp)`` sees every answer;
    giving up raises ``error``.
    """
    what = what or f"GET {url}"
    problem, wait = "", None
    for attempt in range(policy.retries + 1):
        if attempt:
            pause = wait if wait is not None else policy.pause(attempt)
            if deadline is not None:
                deadline.check(what, need=pause)
            sleep(pause)
            wait = None
        if before is not None:
            before()
        timeout = policy.request_timeout if deadline is None else deadline.cap(policy.request_timeout, what)
        try:
            resp = http_get(url, timeout=timeout, headers=headers)
        except TransportError as exc:
            if deadline is not None:
                deadline.check(what)
            problem = f"connection error ({exc})"
            continue
        if observe is not None:
            observe(resp)
        if resp.status == 429 or resp.status >= 500:
            problem = f"HTTP {resp.status}" + (" rate limited" if resp.status == 429 else "")
            wait = retry_after(resp.headers)
            if wait is not None and wait > policy.max_retry_after:
                raise RetryAfterTooLong(f"{what}: HTTP {resp.status} with Retry-After {wait:g} s, above the "
                                        f"{policy.max_retry_after:g} s cap; stopped without waiting; try again later")
            continue
        try:
            return accept(resp)
        except Retry as exc:
            problem, wait = exc.problem, exc.after
    raise error(f"{what}: gave up after {policy.retries + 1} attempts; last problem: {problem}")
