"""Reading a config file defensively: a regular file of bounded size, UTF-8, bounded YAML.

A FIFO would block forever and a device such as /dev/zero never ends, so the file
type is checked before the open and again on the open descriptor, and the open does
not block. The YAML itself is read by :mod:`engine.config.safe_yaml`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import ConfigError
from .safe_yaml import MAX_BYTES


def decode_config(body: bytes, path: str | Path) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{body[exc.start]:02x} at offset {exc.start})") from None


def read_config_bytes(path: str | Path) -> bytes:
    """A config file's bytes: a readable regular file of at most ``MAX_BYTES``, else a one-line ConfigError.

    The file type is checked before opening and again on the open descriptor, and the
    open does not block: a FIFO would wait forever for a writer, and a device such as
    /dev/zero never ends.
    """
    try:
        _check_regular(path, os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{path}: config file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read config (permission denied)") from None
    except (OSError, ValueError) as exc:  # ELOOP, ENAMETOOLONG, EIO, an embedded NUL...
        raise ConfigError(f"{path}: cannot read config ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        _check_regular(path, os.fstat(fd))
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES:,} bytes; a config is a short YAML file")
    return b"".join(chunks)


def _check_regular(path: str | Path, st: os.stat_result) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        if st.st_size > MAX_BYTES:
            raise ConfigError(f"{path}: {st.st_size:,} bytes; a config may be at most {MAX_BYTES:,} bytes")
        return
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    raise ConfigError(f"{path}: is {kind}, not a config file" if kind != "not a regular file"
                      else f"{path}: not a regular file")
