"""Generations of an S3 series: which of its partition objects make up its committed version.

S3 has no rename, so a writer cannot swap a month partition in place. Instead every upsert
writes one new object per month it touches, all named with one *generation* number ``g``
(larger than every number already in the series) and the count ``k`` of objects it writes:

    part-<g, 20 digits>-n<k>-<8 hex>.snappy.parquet

and only once all ``k`` exist deletes the objects they replace. The generation is committed
when its last object lands. So a listing of the series shows at most one generation that is
not complete, the newest, and only while its writer is at work (or after it died): readers
leave that generation's objects out (:func:`committed`) and read everything else, which is
the previous committed version plus, for the months the newest complete generation
rewrote, objects it has not deleted yet (their rows are a subset of the new object's, which
is read after them and wins). A writer holding the series lock deletes an incomplete
newest generation before it writes its own (:func:`incomplete`): then no older incomplete
generation can ever sit below a complete one.

Names written before generations (``part-<ns>-<8 hex>.snappy.parquet``, or awswrangler's)
count as complete. Standard library only.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Iterable, NamedTuple

_GENERATION = re.compile(r"^part-(\d{20})-n(\d{1,9})-[0-9a-f]{8}\.snappy\.parquet$")
_NUMBERED = re.compile(r"^part-(\d{20})-")


class Part(NamedTuple):
    number: int | None       # generation (or, in an older name, the write time in ns)
    count: int | None        # objects in its generation; None: an older name, complete by itself


def parse(name: str) -> Part:
    """What a partition object's file name says about its generation."""
    m = _GENERATION.match(name)
    if m:
        return Part(int(m[1]), int(m[2]))
    m = _NUMBERED.match(name)
    return Part(int(m[1]) if m else None, None)


def _name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def newest_number(keys: Iterable[str]) -> int:
    """The largest number any object name of the series carries (0 when none does)."""
    return max((p.number for p in map(parse, map(_name, keys)) if p.number is not None), default=0)


def next_generation(keys: Iterable[str], now_ns: int | None = None) -> int:
    """A generation above every number in the series; the clock keeps it above older names' write times."""
    now = time.time_ns() if now_ns is None else now_ns
    return max(now, newest_number(keys) + 1)


def part_name(generation: int, count: int) -> str:
    return f"part-{generation:020d}-n{count}-{uuid.uuid4().hex[:8]}.snappy.parquet"


def incomplete(keys: Iterable[str]) -> list[str]:
    """The objects of the newest generation when fewer than its count exist (a writer at work, or dead)."""
    keys = list(keys)
    by_generation: dict[int, list[str]] = {}
    counts: dict[int, int] = {}
    for key in keys:
        part = parse(_name(key))
        if part.count is not None:
            by_generation.setdefault(part.number, []).append(key)
            counts[part.number] = part.count
    if not by_generation:
        return []
    newest = max(by_generation)
    if newest < newest_number(keys):
        return []  # an older-style name is newer: no generation is at work
    found = by_generation[newest]
    return sorted(found) if len(found) < counts[newest] else []


def committed(keys: Iterable[str]) -> list[str]:
    """The keys readers read: all but an incomplete newest generation's, in key order (a later one wins)."""
    keys = sorted(keys)
    leave_out = set(incomplete(keys))
    return [k for k in keys if k not in leave_out]
