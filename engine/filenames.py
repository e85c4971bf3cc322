"""The one way to make a file name from user input (a strategy name, a run id, an experiment name).

:func:`file_name` keeps ASCII letters, digits, ``_``, ``-``, ``=``, ``+`` (a strategy id such as
``ma_crossover_short_window=5_stop_loss=1e+20`` stays as it is) and dots inside the name, and writes
every other byte of the UTF-8 text as ``%XX``: path separators, ``%`` itself, control
characters, spaces, non-ASCII letters, and a dot that starts or ends the name or follows another
dot. So a name is never empty, ``.`` or ``..``, never hidden, never holds a separator, and
different texts give different names (:func:`text_of` reads the text back). A name longer than
``max_length`` keeps its beginning and ends in ``~`` and 16 hex digits of the text's SHA-256
(``~`` is otherwise always encoded, so no shorter name can look like it).

Standard library only: every package may use it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.=+")
_ENCODED = re.compile(r"%([0-9A-F]{2})")
MAX_LENGTH = 120  # bytes; room for a suffix such as "-trades.csv" within the usual 255


def file_name(text: str, *, max_length: int = MAX_LENGTH) -> str:
    """A safe, reversible file name for ``text`` (see the module docstring); ValueError for "" or a non-string."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"a file name needs a non-empty text, got {text!r}")
    if max_length < 24:
        raise ValueError(f"max_length={max_length} leaves no room for the hash of a long name")
    out = []
    for i, ch in enumerate(text):
        dot_allowed = ch == "." and 0 < i < len(text) - 1 and text[i - 1] != "."
        if ch in _KEPT and (ch != "." or dot_allowed):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    name = "".join(out)
    if len(name) <= max_length:
        return name
    head = name[:max_length - 17]
    head = head[:head.rfind("%")] if "%" in head[-2:] else head  # never cut an escape in two
    return f"{head}~{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def text_of(name: str) -> str:
    """The text :func:`file_name` encoded (ValueError for a shortened name, whose end is a hash)."""
    if "~" in name:
        raise ValueError(f"{name!r} is a shortened name: its text is not all in it")
    return _ENCODED.sub(lambda m: chr(int(m[1], 16)), name).encode("latin-1").decode("utf-8", "surrogatepass")


def create_temp_beside(target: Path) -> tuple[int, Path]:
    """A new, empty temporary file in ``target``'s folder, open for writing: (descriptor, path).

    Its name (``.<target name>.<12 random hex>.tmp``) cannot be guessed, it is created with
    ``O_EXCL`` and ``O_NOFOLLOW`` (never an existing file or a planted link), and it gets the usual
    permissions, 0666 less the umask (``tempfile.mkstemp`` would give 0600: a dataset another
    user or a container uid reads must stay readable). The caller renames it over ``target``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{target}: no free temporary name")  # pragma: no cover - 100 collisions of 48 bits
