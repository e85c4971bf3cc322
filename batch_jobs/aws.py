"""Small boto3 helpers shared by the jobs and the workstation commands.

Every function takes the client it uses (made once by the caller from an injectable
``boto3.Session``). AWS answers that are the user's to fix (missing bucket or key,
denied access, no credentials) become one-line :class:`UserError`\\ s via :func:`aws_errors`.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

from engine.errors import UserError
from engine.storage_layout import s3_uri

T = TypeVar("T")
R = TypeVar("R")

#: Parallel S3 requests when reading shards or uploading/downloading a report.
IO_THREADS = 16


def session_or_default(session: Any = None) -> Any:
    import boto3

    return session if session is not None else boto3.Session()


@contextlib.contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn AWS client errors into a one-line UserError naming what was being done."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = err.get("Code", "error")
        message = " ".join(str(err.get("Message", "")).split())
        raise UserError(f"{action}: AWS {code}{': ' + message if message else ''}") from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise UserError(f"{action}: {exc}") from None
    except BotoCoreError as exc:
        raise UserError(f"{action}: {' '.join(str(exc).split())}") from None


def is_not_found(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def get_bytes(s3: Any, bucket: str, key: str, *, what: str = "object") -> bytes:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if is_not_found(exc):
            raise UserError(f"{what} not found: {s3_uri(bucket, key)}") from None
        raise


def put_bytes(s3: Any, bucket: str, key: str, body: bytes, content_type: str, *, tagging: str | None = None) -> str:
    """One PutObject of the whole body (no multipart): a repeat replaces the object whole. Returns the ETag.

    ``tagging`` (``key=value``) tags the object as it is written (storage_layout.SHARD_TAGGING: the
    lifecycle rule that expires shards finds them by it)."""
    extra = {"Tagging": tagging} if tagging else {}
    return s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **extra)["ETag"]


def list_objects(s3: Any, bucket: str, prefix: str) -> dict[str, dict]:
    """Every object under ``prefix``: key -> listing entry (Size, ETag, LastModified)."""
    out: dict[str, dict] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj
    return out


def parallel_map(fn: Callable[[T], R], items: Iterable[T], threads: int = IO_THREADS) -> list[R]:
    """``[fn(x) for x in items]`` on a thread pool (boto3 clients are thread-safe), order kept."""
    items = list(items)
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


CONTENT_TYPES = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
    ".png": "image/png",
    ".yaml": "application/yaml",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
}


def content_type(name: str) -> str:
    dot = name.rfind(".")
    return CONTENT_TYPES.get(name[dot:].lower() if dot >= 0 else "", "application/octet-stream")
