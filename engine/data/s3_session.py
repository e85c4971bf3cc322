"""The boto3 session and S3 client the data layer uses when its caller passes none.

awswrangler given no session makes a new ``boto3.Session()`` on every call unless boto3's
default session exists, and each new session parses botocore's service models again
(about 0.1 s of JSON per call). One default session per process is made here instead.
boto3 is imported inside the functions: importing the data layer never costs it.
"""

from __future__ import annotations

from typing import Any


def session_or_default(session: Any = None) -> Any:
    """``session``, else boto3's default session (made once, from the environment)."""
    if session is not None:
        return session
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def s3_client(session: Any = None) -> Any:
    """An S3 client at the endpoint awswrangler uses (``wr.config.s3_endpoint_url``)."""
    import awswrangler as wr

    return session_or_default(session).client("s3", endpoint_url=wr.config.s3_endpoint_url)
