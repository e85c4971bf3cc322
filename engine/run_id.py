"""Run ids: the experiment name, the UTC time and a random suffix.

``sma_crossover_default-20250321-140502-3f9a1c``: readable in a folder listing, sorted
by time within an experiment, and unique per run even for the same config in the same
second. Letters, digits, ``-`` and ``_`` only (at most 63 characters), so an id is a
valid folder name and S3 key segment everywhere.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
NAME_CHARS = 40


def experiment_slug(name: str) -> str:
    """The experiment name reduced to ``[A-Za-z0-9_-]``, starting with a letter or digit."""
    slug = _UNSAFE.sub("-", name).strip("-_")[:NAME_CHARS].rstrip("-_")
    return slug or "run"


def new_run_id(experiment: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{experiment_slug(experiment)}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
