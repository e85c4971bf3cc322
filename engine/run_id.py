"""Run ids: the experiment name, the UTC time and a random suffix.

``sma_crossover_default-20250321-140502-3f9a1c``: readable in a folder listing, sorted
by time within an experiment, and unique per run even for the same config in the same
second. Letters, digits, ``-`` and ``_`` only (at most 63 characters), so an id is a
valid folder name and S3 key segment everywhere.

An id given by the user (``--run-id``, local or on Batch) must follow the same rule
(``check_run_id``): a plain name, so ``../x``, ``a/b`` or ``.hidden`` never reach a path.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from .errors import UserError

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")
NAME_CHARS = 40


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        shown = run_id if len(run_id) <= 60 else run_id[:57] + "..."
        raise UserError(f"run id {shown!r}: expected 1-80 letters, digits, '-' or '_', starting with a letter or "
                        "digit")
    return run_id


def experiment_slug(name: str) -> str:
    """The experiment name reduced to ``[A-Za-z0-9_-]``, starting with a letter or digit."""
    slug = _UNSAFE.sub("-", name).strip("-_")[:NAME_CHARS].rstrip("-_")
    return slug or "run"


def new_run_id(experiment: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{experiment_slug(experiment)}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
