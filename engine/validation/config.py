"""The optional ``validation`` config section, parsed into frozen dataclasses.

```yaml
validation:
  holdout: 0.3        # last 30% of bars held out: rank on the rest, report out-of-sample
  walk_forward:
    train: 90d        # a duration (m, h, d, w) or a bar count
    test: 30d
    step: 30d         # default: test
    anchored: false   # true: every train window starts at the first bar
  cscv:
    blocks: 16        # S: even, 4..32
  trials: null        # N for the deflated Sharpe; default: combinations evaluated
```

Checks that need only the config happen here; the ones that need the number of
bars (a window longer than the data, too few returns per block) happen in
:func:`engine.validation.plan.resolve`, right after the data is loaded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, shown
from ..timeutil import ms_to_interval

#: per-combination columns a validated sweep adds, which ``report.rank_by`` accepts
RANK_METRICS = ("psr", "dsr")
#: every column a validated sweep adds to the summary: the holdout's, then the Sharpe tests
SUMMARY_COLUMNS = ("oos_sharpe", "oos_total_return", "oos_max_drawdown", "oos_n_trades", *RANK_METRICS)
KEYS = ("holdout", "walk_forward", "cscv", "trials")
WALK_FORWARD_KEYS = ("train", "test", "step", "anchored")
CSCV_KEYS = ("blocks",)
MIN_BLOCKS, MAX_BLOCKS, DEFAULT_BLOCKS = 4, 32, 16
#: beyond this 1 - 1/N rounds towards 1 and the deflated Sharpe's quantiles lose their meaning
MAX_TRIALS = 10**12

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


@dataclass(frozen=True)
class Span:
    """A window length: a bar count, or a duration in milliseconds (``text`` as written)."""

    text: str
    bars: int | None = None
    ms: int | None = None

    def to_bars(self, interval_ms: int, key: str) -> int:
        if self.bars is not None:
            return self.bars
        if self.ms % interval_ms:
            raise ConfigError(f"{key}: {self.text} is not a whole number of bars of {ms_to_interval(interval_ms)}")
        return self.ms // interval_ms


@dataclass(frozen=True)
class WalkForwardConfig:
    train: Span
    test: Span
    step: Span  # the test length unless given
    anchored: bool = False


@dataclass(frozen=True)
class CscvConfig:
    blocks: int = DEFAULT_BLOCKS


@dataclass(frozen=True)
class ValidationConfig:
    holdout: float | None = None
    walk_forward: WalkForwardConfig | None = None
    cscv: CscvConfig | None = None
    trials: int | None = None


def parse_validation(raw: Any) -> ValidationConfig | None:
    """The ``validation`` section, or None when it is absent or null."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"validation: expected a mapping, got {shown(raw)}")
    _known("validation", raw, KEYS)
    holdout = raw.get("holdout")
    if holdout is not None:
        holdout = _fraction("validation.holdout", holdout)
    wf = raw.get("walk_forward")
    if wf is not None:
        wf = _walk_forward(wf)
    cscv = raw.get("cscv")
    if cscv is not None:
        cscv = _cscv(cscv)
    trials = raw.get("trials")
    if trials is not None:
        trials = _integer("validation.trials", trials, low=2, high=MAX_TRIALS)
    return ValidationConfig(holdout=holdout, walk_forward=wf, cscv=cscv, trials=trials)


def _walk_forward(raw: Any) -> WalkForwardConfig:
    key = "validation.walk_forward"
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping with train and test, got {shown(raw)}")
    _known(key, raw, WALK_FORWARD_KEYS)
    for need in ("train", "test"):
        if raw.get(need) is None:
            raise ConfigError(f"{key}.{need}: missing; give a duration like 30d or a bar count")
    train = _span(f"{key}.train", raw["train"])
    test = _span(f"{key}.test", raw["test"])
    step = test if raw.get("step") is None else _span(f"{key}.step", raw["step"])
    anchored = raw.get("anchored", False)
    if not isinstance(anchored, bool):
        raise ConfigError(f"{key}.anchored: expected true or false, got {shown(anchored)}")
    # Same unit: the comparison is exact now; mixed units are compared once bars are known.
    if (step.bars is not None) == (test.bars is not None) and _size(step) < _size(test):
        raise ConfigError(f"{key}.step: {step.text} is shorter than test {test.text}; the test windows would "
                          "overlap and the stitched out-of-sample equity would count bars twice")
    return WalkForwardConfig(train=train, test=test, step=step, anchored=anchored)


def _cscv(raw: Any) -> CscvConfig:
    key = "validation.cscv"
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping like {{blocks: 16}}, got {shown(raw)}")
    _known(key, raw, CSCV_KEYS)
    blocks = _integer(f"{key}.blocks", raw.get("blocks", DEFAULT_BLOCKS), low=MIN_BLOCKS, high=MAX_BLOCKS)
    if blocks % 2:
        raise ConfigError(f"{key}.blocks: {blocks} is odd; expected an even number from {MIN_BLOCKS} to "
                          f"{MAX_BLOCKS} (half the blocks form each in-sample set)")
    return CscvConfig(blocks=blocks)


def _known(key: str, raw: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(map(str, set(raw) - set(allowed)))
    if unknown:
        name = unknown[0] if len(unknown[0]) <= 60 else unknown[0][:57] + "..."
        raise ConfigError(f"{key}.{name}: unknown key; expected one of {', '.join(allowed)}")


def _integer(key: str, value: Any, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{key}: expected an integer, got {shown(value)}")
    value = int(value)
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"from {low} to {high}"
        raise ConfigError(f"{key}: {value} is out of range; expected an integer {rng}")
    return value


def _fraction(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: expected a number between 0 and 1, got {shown(value)}")
    if not 0 < value < 1:
        raise ConfigError(f"{key}: {shown(value)} is out of range; expected a fraction strictly between 0 and 1")
    return float(value)


def _span(key: str, value: Any) -> Span:
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m or int(m.group(1)) == 0:
            raise ConfigError(f"{key}: {shown(value)} is not a duration; expected a number and one of m, h, d, w "
                              "(like 30d) or a bar count")
        return Span(text=f"{int(m.group(1))}{m.group(2)}", ms=int(m.group(1)) * _UNIT_MS[m.group(2)])
    bars = _integer(key, value, low=1)
    return Span(text=f"{bars} bars", bars=bars)


def _size(span: Span) -> int:
    return span.bars if span.bars is not None else span.ms

