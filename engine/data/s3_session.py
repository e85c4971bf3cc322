"""The boto3 session and S3 client the data layer uses when its caller passes none.

awswrangler given no session makes a new ``boto3.Session()`` on every call unless boto3's
default session exists, and each new session parses botocore's service models again
(about 0.1 s of JSON per call). One default session per process is made here instead.
Making an S3 client from a session costs another ~10 ms of CPU (its endpoint rules are built
anew), so :func:`s3_client` keeps one per session and endpoint (clients are thread-safe).
boto3 is imported inside the functions: importing the data layer never costs it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_clients: "weakref.WeakKeyDictionary[Any, dict[str | None, Any]]" = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()  # a session is not thread-safe while it makes a client


def session_or_default(session: Any = None) -> Any:
    """``session``, else boto3's default session (made once, from the environment)."""
    if session is not None:
        return session
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def s3_client(session: Any = None) -> Any:
    """An S3 client at the endpoint awswrangler uses (``wr.config.s3_endpoint_url``), made once per
    session and endpoint."""
    import awswrangler as wr

    session, endpoint = session_or_default(session), wr.config.s3_endpoint_url
    with _clients_lock:
        per_endpoint = _clients.setdefault(session, {})
        if endpoint not in per_endpoint:
            per_endpoint[endpoint] = session.client("s3", endpoint_url=endpoint)
        return per_endpoint[endpoint]
