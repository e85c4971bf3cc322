"""Checks of one config value against its row of the key table (``engine.config.schema.Key``).

Each check names the key, the value and what was expected, in one line, and returns the
value converted (an int, a float, a tuple of axis values...).
"""

from __future__ import annotations

import difflib

import math
import re
from typing import Any

from ..data import binance
from ..errors import ConfigError, UserError
from ..errors import shown as _show
from ..grid_budget import MAX_COMBINATIONS_CEILING
from ..timeutil import parse_time
from .model import Span

INT64_MAX = 2**63 - 1
#: an axis length this large is "too many" whatever the limit; keeps products printable
SATURATED = 10**18

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def key_text(key: Any) -> str:
    """A key as a message shows it: at most 60 characters."""
    text = str(key)
    return text if len(text) <= 60 else text[:57] + "..."


def number(key: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, integer: bool = False) -> Any:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(f"{key}: expected {kind}, got {_show(value)}")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        value = int(value)
    if integer and abs(value) > INT64_MAX:
        raise ConfigError(f"{key}: {_show(value)} is too large; expected at most {INT64_MAX:,}")
    bad_low = low is not None and (value < low or (low_open and value == low))
    bad_high = high is not None and (value > high or (high_open and value == high))
    if bad_low or bad_high:
        raise ConfigError(f"{key}: {_show(value)} is out of range; expected "
                          f"{range_text(low, high, low_open, high_open)}")
    return value if integer else float(value)


def range_text(low, high, low_open: bool = False, high_open: bool = False) -> str:
    lo = "" if low is None else f"{'>' if low_open else '>='} {_bound(low)}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {_bound(high)}"
    return " and ".join(x for x in (lo, hi) if x)


def _bound(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


#: YAML 1.1's other booleans: text in a config, refused where a boolean is expected
YAML11_BOOLEANS = {"yes": True, "no": False, "on": True, "off": False, "y": True, "n": False}


def boolean_hint(value: Any) -> str:
    """A hint for yes/no/on/off given as a boolean: write true or false."""
    if isinstance(value, str) and value.strip().lower() in YAML11_BOOLEANS:
        return f" (write {str(YAML11_BOOLEANS[value.strip().lower()]).lower()}: yes/no/on/off are not booleans here)"
    return ""


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {_show(value)}{boolean_hint(value)}")
    return value


def string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a non-empty string, got {_show(value)}")
    return value.strip()


def choice(key: str, value: Any, choices: tuple[str, ...], *, listed: bool = False) -> str:
    if not isinstance(value, str) or value not in choices:
        near = difflib.get_close_matches(value, choices, n=1, cutoff=0.6) if isinstance(value, str) else []
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ConfigError(f"{key}: {_show(value)}{hint}; expected one of {', '.join(choices)}"
                          + (" (or a list)" if listed else ""))
    return value


def time(key: str, value: Any) -> str:
    """A date or time, kept as text (ISO or epoch), between 1970 and 2100."""
    text = value.isoformat() if hasattr(value, "isoformat") else value
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ConfigError(f"{key}: expected a date like 2024-01-01, got {_show(value)}")
    text = str(text)
    try:
        parse_time(text, key)  # the one rule for times: ISO or epoch, between 1970 and 2100
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    except (ValueError, OverflowError):
        raise ConfigError(f"{key}: {_show(text)} is not a date; expected ISO format like 2024-01-01") from None
    return text


def interval(key: str, value: Any) -> str:
    text = string(key, value)
    try:
        binance.interval_ms(text)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return text


def symbol(key: str, value: Any) -> str:
    """A Binance symbol (it names dataset folders), upper-cased like ``--symbol``."""
    text = string(key, value)
    if not binance.is_symbol(text.upper()):
        raise ConfigError(f"{key}: {_show(value)} is not a Binance symbol (pattern {binance.SYMBOL_PATTERN}, "
                          "like BTCUSDT)")
    return text.upper()


def span(key: str, value: Any) -> Span:
    """A window length: a duration (``30d``: m, h, d or w) or a bar count."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m or int(m.group(1)) == 0:
            raise ConfigError(f"{key}: {_show(value)} is not a duration; expected a number and one of m, h, d, w "
                              "(like 30d) or a bar count")
        return Span(text=f"{int(m.group(1))}{m.group(2)}", ms=int(m.group(1)) * _UNIT_MS[m.group(2)])
    bars = number(key, value, low=1, integer=True)
    return Span(text=f"{bars} bars", bars=bars)


def span_size(s: Span) -> int:
    return s.bars if s.bars is not None else s.ms


# --- axes: a value, a list of values, or {start, stop, step} ---------------------------------------

def value_range(key: str, raw: dict) -> tuple[float, float, int]:
    """``{start, stop, step}`` checked: (start, step, count), without building its values."""
    unknown = sorted(set(raw) - {"start", "stop", "step"}, key=str)
    if unknown or not {"start", "stop"} <= set(raw):
        raise ConfigError(f"{key}: a range needs start, stop and optional step, got {_show(raw)}")
    start = number(f"{key}.start", raw["start"])
    stop = number(f"{key}.stop", raw["stop"])
    step = number(f"{key}.step", raw.get("step", 1), low=0, low_open=True)
    steps = (stop - start) / step + 1e-9
    if not math.isfinite(steps) or steps >= SATURATED:
        return start, step, SATURATED  # counted as too many by the grid budget
    count = int(math.floor(steps)) + 1
    if count < 1:
        raise ConfigError(f"{key}: range {_show(raw)} is empty")
    return start, step, count


def axis_length(key: str, raw: Any) -> int:
    """How many values ``raw`` (a scalar, a list or a range) gives, before any is built."""
    if isinstance(raw, dict):
        return value_range(key, raw)[2]
    return len(raw) if isinstance(raw, list) else 1


def axis_values(key: str, raw: Any) -> tuple[Any, ...]:
    """A scalar, a list, or ``{start, stop, step}`` (stop included), as a tuple of values."""
    if isinstance(raw, dict):
        start, step, count = value_range(key, raw)
        if count > MAX_COMBINATIONS_CEILING:
            raise ConfigError(f"{key}: range {_show(raw)} has more than {MAX_COMBINATIONS_CEILING:,} values")
        ints = all(isinstance(raw.get(k, 1), int) for k in ("start", "stop", "step"))
        vals = [start + i * step for i in range(count)]
        return tuple(int(round(v)) if ints else round(v, 12) for v in vals)
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{key}: empty list; give at least one value")
        if len(set(map(repr, raw))) != len(raw):
            raise ConfigError(f"{key}: duplicate values in {_show(raw)}")
        return tuple(raw)
    return (raw,)
