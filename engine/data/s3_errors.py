"""S3 failures as one line: the error code of a botocore error, and a block that turns any S3
or AWS failure into a :class:`DataError` naming the location.

botocore is imported only when an error is described: the ingest Lambda and the local CLI
must not pay for it on the happy path.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import DataError

_KNOWN = {"NoSuchBucket": "no such bucket", "NoSuchKey": "no such key", "404": "not found",
          "AccessDenied": "access denied", "403": "access denied", "AllAccessDisabled": "access denied",
          "InvalidAccessKeyId": "the AWS access key is not valid",
          "SignatureDoesNotMatch": "the AWS secret key does not match",
          "ExpiredToken": "the AWS session token has expired", "InvalidBucketName": "invalid bucket name"}


def s3_error_code(exc: BaseException) -> str:
    """The error code of a botocore ClientError (``NoSuchKey``, ``PreconditionFailed``, ``404`` …), else ""."""
    response = getattr(exc, "response", None) or {}
    err = response.get("Error", {})
    return str(err.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def describe_s3_error(exc: BaseException) -> str | None:
    """A one-line reason for an S3/AWS failure, or None when ``exc`` is not one."""
    try:
        import botocore.exceptions as bx
    except ImportError:  # pragma: no cover - boto3 is a runtime dependency
        return None
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = s3_error_code(exc)
        return _KNOWN.get(code) or f"S3 error {code}: {err.get('Message') or exc}"
    if isinstance(exc, bx.NoCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return f"cannot reach S3 ({exc})"
    if isinstance(exc, bx.ParamValidationError):
        return f"invalid S3 location ({str(exc).splitlines()[0]})"
    if isinstance(exc, bx.BotoCoreError):
        return f"AWS error ({exc})"
    return None


@contextmanager
def s3_errors(uri: str) -> Iterator[None]:
    """Turn an S3 failure inside the block into one DataError naming ``uri``."""
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        reason = describe_s3_error(exc)
        if reason is None:
            raise
        raise DataError(f"{uri}: {reason}") from None
