"""YAML experiment config: parsed once into frozen dataclasses, strictly validated.

Key names follow the seed project. Every value is checked; an unknown key, a
wrong type or an out-of-range value raises :class:`ConfigError` naming the key,
the value and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, UserError
from .execution import FILL_MODES, Execution
from .grid import Grid, expand_grid
from .metrics import METRICS
from .signals import DIRECTIONS
from .strategies import did_you_mean, get_strategy
from .timeutil import interval_to_ms, parse_time

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


@dataclass(frozen=True)
class DataConfig:
    source: str = "synthetic"
    symbol: str | None = None
    interval: str | None = None
    start: str | None = None
    end: str | None = None
    synthetic_bars: int = 70_080
    seed: int = 42


@dataclass(frozen=True)
class ReportConfig:
    top_k: int = 10
    rank_by: str = "sharpe"


@dataclass(frozen=True)
class StrategyGrid:
    """One strategy and the values given for each parameter (scalars become 1-lists)."""

    name: str
    values: tuple[tuple[str, tuple[Any, ...]], ...]

    def as_dict(self) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self.values}


@dataclass(frozen=True)
class Config:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    execution: Execution = field(default_factory=Execution)
    # position rules: each a tuple of the values to sweep (one value: not swept)
    stop_loss: tuple[float | None, ...] = (0.02,)
    take_profit: tuple[float | None, ...] = (None,)
    trailing_stop: tuple[float | None, ...] = (None,)
    max_bars: tuple[int | None, ...] = (None,)
    direction: tuple[str, ...] = ("long",)
    size: tuple[float, ...] = (1.0,)
    strategies: tuple[StrategyGrid, ...] = ()
    workers: int | None = None
    report: ReportConfig = field(default_factory=ReportConfig)
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    #: every combination, expanded once at parse time
    grid: Grid = field(default_factory=lambda: Grid(()), compare=False, repr=False)

    def digest(self) -> str:
        """SHA-256 of the canonical config (key order and formatting do not matter)."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()


_SECTIONS = {
    "experiment": {"name"},
    "data": {"source", "path", "symbol", "interval", "start", "end", "synthetic_bars", "seed"},
    "execution": {"commission", "slippage", "fill"},
    "portfolio": {"capital", "direction", "size"},
    "risk": {"stop_loss", "take_profit", "trailing_stop", "max_bars"},
    "strategies": None,
    "parallel": {"workers"},
    "report": {"top_k", "rank_by"},
}


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    return parse_config_text(text, str(path))


def parse_config_text(text: str, source: str = "config") -> Config:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{source}: invalid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(doc).__name__}")
    return parse_config(doc)


def _section(doc: dict, name: str) -> dict:
    sec = doc.get(name) or {}
    if not isinstance(sec, dict):
        raise ConfigError(f"{name}: expected a mapping, got {sec!r}")
    allowed = _SECTIONS[name]
    if allowed is not None:
        unknown = sorted(set(sec) - allowed)
        if unknown:
            raise ConfigError(f"{name}.{unknown[0]}: unknown key{did_you_mean(unknown[0], allowed)} "
                              f"(expected one of {', '.join(sorted(allowed))})")
    return sec


def _number(key: str, value: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, integer: bool = False) -> Any:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(f"{key}: expected {kind}, got {value!r}")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        value = int(value)
    bad_low = low is not None and (value < low or (low_open and value == low))
    bad_high = high is not None and (value > high or (high_open and value == high))
    if bad_low or bad_high:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        raise ConfigError(f"{key}: {value!r} is out of range; expected {' and '.join(x for x in (lo, hi) if x)}")
    return value if integer else float(value)


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
    return value.strip()


def _time(key: str, value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    try:
        parse_time(text)
    except UserError:
        raise ConfigError(f"{key}: {value!r} is not a date; expected ISO format like 2024-01-01") from None
    return text


def _values(key: str, raw: Any) -> tuple[Any, ...]:
    """A scalar, a list, or ``{start, stop, step}`` (stop included)."""
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"start", "stop", "step"})
        if unknown or not {"start", "stop"} <= set(raw):
            raise ConfigError(f"{key}: a range needs start, stop and optional step, got {raw!r}")
        start = _number(f"{key}.start", raw["start"])
        stop = _number(f"{key}.stop", raw["stop"])
        step = _number(f"{key}.step", raw.get("step", 1), low=0, low_open=True)
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        if count < 1:
            raise ConfigError(f"{key}: range {raw!r} is empty")
        ints = all(isinstance(raw.get(k, 1), int) for k in ("start", "stop", "step"))
        vals = [start + i * step for i in range(count)]
        return tuple(int(round(v)) if ints else round(v, 12) for v in vals)
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{key}: empty list; give at least one value")
        if len(set(map(repr, raw))) != len(raw):
            raise ConfigError(f"{key}: duplicate values in {raw!r}")
        return tuple(raw)
    return (raw,)


def _rule_values(key: str, raw: Any, *, zero_is_none: bool = False, nullable: bool = True,
                 **bounds) -> tuple[Any, ...]:
    """A position rule's values: a number, a list or a range of them; null (or 0 for the
    stop, as before) means the rule is off for that combination."""
    out: list[Any] = []
    for v in _values(key, raw):
        off = nullable and (v is None or (zero_is_none and v == 0 and not isinstance(v, bool)))
        value = None if off else _number(key, v, **bounds)
        if value in out:
            hint = " (0 and null both mean none)" if zero_is_none else ""
            raise ConfigError(f"{key}: {v!r} repeats a value already given{hint}")
        out.append(value)
    return tuple(out)


def parse_config(doc: dict) -> Config:
    unknown = sorted(set(doc) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; expected one of {', '.join(_SECTIONS)}")
    exp = _section(doc, "experiment")
    name = _string("experiment.name", exp.get("name", "experiment"))

    d = _section(doc, "data")
    if "path" in d and "source" in d and d["path"] != d["source"]:
        raise ConfigError("data: give data.source or data.path, not both")
    source = _string("data.source", d.get("path", d.get("source", "synthetic")))
    data = DataConfig(
        source=source,
        symbol=_string("data.symbol", d["symbol"]) if d.get("symbol") is not None else None,
        interval=_string("data.interval", d["interval"]) if d.get("interval") is not None else None,
        start=_time("data.start", d.get("start")),
        end=_time("data.end", d.get("end")),
        synthetic_bars=_number("data.synthetic_bars", d.get("synthetic_bars", 70_080), low=2, integer=True),
        seed=_number("data.seed", d.get("seed", 42), low=0, integer=True),
    )
    if data.interval is not None:
        try:
            interval_to_ms(data.interval)
        except UserError:
            raise ConfigError(f"data.interval: {data.interval!r} is not an interval; expected e.g. 15m, 1h, 1d") from None

    e = _section(doc, "execution")
    fill = e.get("fill", "close")
    if fill not in FILL_MODES:
        raise ConfigError(f"execution.fill: {fill!r}; expected one of {', '.join(FILL_MODES)}")
    portfolio = _section(doc, "portfolio")
    capital = _number("portfolio.capital", portfolio.get("capital", 100_000), low=0, low_open=True)
    execution = Execution(
        capital=capital,
        commission=_number("execution.commission", e.get("commission", 0.001), low=0, high=0.1, high_open=True),
        slippage=_number("execution.slippage", e.get("slippage", 0.0005), low=0, high=0.1, high_open=True),
        fill=fill,
    )
    risk = _section(doc, "risk")
    stops = _rule_values("risk.stop_loss", risk.get("stop_loss", 0.02), zero_is_none=True,
                         low=0, high=1, low_open=True, high_open=True)
    take_profit = _rule_values("risk.take_profit", risk.get("take_profit"), low=0, low_open=True)
    trailing = _rule_values("risk.trailing_stop", risk.get("trailing_stop"), low=0, high=1, low_open=True,
                            high_open=True)
    max_bars = _rule_values("risk.max_bars", risk.get("max_bars"), low=1, integer=True)
    size = _rule_values("portfolio.size", portfolio.get("size", 1.0), nullable=False, low=0, high=1, low_open=True)
    direction = []
    for v in _values("portfolio.direction", portfolio.get("direction", "long")):
        if v not in DIRECTIONS:
            raise ConfigError(f"portfolio.direction: {v!r}; expected one of {', '.join(DIRECTIONS)} (or a list)")
        direction.append(v)

    strat_doc = doc.get("strategies")
    if not isinstance(strat_doc, dict) or not strat_doc:
        raise ConfigError("strategies: expected a mapping of strategy name to parameters, e.g. "
                          "strategies: {ma_crossover: {short_window: [5, 10]}}")
    grids = []
    for sname, params in strat_doc.items():
        cls = get_strategy(str(sname))
        params = params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"strategies.{sname}: expected a mapping of parameter to value(s), got {params!r}")
        specs = cls.param_specs()
        unknown = sorted(set(params) - set(specs))
        if unknown:
            raise ConfigError(f"strategies.{sname}.{unknown[0]}: unknown parameter{did_you_mean(unknown[0], specs)} "
                              f"(expected one of {', '.join(specs)})")
        grids.append(StrategyGrid(str(sname), tuple((p, _values(f"strategies.{sname}.{p}", params[p]))
                                                    for p in specs if p in params)))

    par = _section(doc, "parallel")
    workers = par.get("workers")
    if workers is not None:
        workers = _number("parallel.workers", workers, low=1, integer=True)

    r = _section(doc, "report")
    rank_by = r.get("rank_by", "sharpe")
    if rank_by not in METRICS:
        raise ConfigError(f"report.rank_by: {rank_by!r}; expected one of {', '.join(METRICS)}")
    report = ReportConfig(top_k=_number("report.top_k", r.get("top_k", 10), low=1, integer=True), rank_by=rank_by)

    # Type-checks every value and rejects a grid whose combinations are all invalid.
    rules = {"direction": tuple(direction), "size": size, "stop_loss": stops, "take_profit": take_profit,
             "trailing_stop": trailing, "max_bars": max_bars}
    grid = expand_grid(grids, rules)
    return Config(name=name, data=data, execution=execution, strategies=tuple(grids), workers=workers,
                  report=report, raw=doc, grid=grid, **rules)
