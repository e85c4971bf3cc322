"""YAML experiment config: parsed once into frozen dataclasses, strictly validated.

Key names follow the seed project. Every value is checked; an unknown key, a
wrong type or an out-of-range value raises :class:`ConfigError` naming the key,
the value and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .data import binance
from .data.spec import DataSpec
from .errors import ConfigError, UserError
from .errors import shown as _show
from .execution import FILL_MODES, Execution
from .grid import Grid, expand_grid
from .grid_budget import DEFAULT_MAX_COMBINATIONS, MAX_COMBINATIONS_CEILING, estimate_bytes, human_bytes
from .metrics import METRICS
from .position_rules import RULE_COLUMNS
from .safe_yaml import MAX_BYTES, load_yaml
from .signals import DIRECTIONS
from .strategies import did_you_mean, get_strategy
from .timeutil import check_range, parse_time
from .validation.config import RANK_METRICS, ValidationConfig, parse_validation

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


@dataclass(frozen=True)
class LimitsConfig:
    """Resource guards: a grid above ``max_combinations`` is refused before it is built."""

    max_combinations: int = DEFAULT_MAX_COMBINATIONS


@dataclass(frozen=True)
class ReportConfig:
    top_k: int = 10
    rank_by: str = "sharpe"
    #: combinations with fewer closed trades are left unranked (they keep their summary row)
    min_trades: int = 1
    #: also draw PNG charts into plots/ (report.html has interactive ones either way)
    png: bool = False


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
    data: DataSpec = field(default_factory=DataSpec)
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
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    validation: ValidationConfig | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    #: every combination, expanded once at parse time
    grid: Grid = field(default_factory=lambda: Grid(()), compare=False, repr=False)

    def digest(self) -> str:
        """SHA-256 of the canonical config (key order and formatting do not matter)."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()


_SECTIONS = {
    "experiment": {"name"},
    "data": {"source", "path", "symbol", "interval", "start", "end", "synthetic_bars", "seed", "max_input_bytes"},
    "execution": {"commission", "slippage", "fill"},
    "portfolio": {"capital", "direction", "size"},
    "risk": {"stop_loss", "take_profit", "trailing_stop", "max_bars"},
    "strategies": None,
    "parallel": {"workers"},
    "report": {"top_k", "rank_by", "min_trades", "png"},
    "limits": {"max_combinations"},
    "validation": None,  # engine/validation/config.py checks its keys
}

# Bounds on values that size work or memory, or that overflow later arithmetic.
INT64_MAX = 2**63 - 1
CAPITAL_MAX = 1e15
SYNTHETIC_BARS_MAX = 20_000_000  # ~1.5 GB of candles and indicators; 570 years of 15m bars
TOP_K_MAX = 1_000  # two charts and one JSON file each
_STRATEGY_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """Parse and check the config file at ``path``; ``overrides`` (``{"data.symbol": "ETHUSDT"}``)
    replace keys before the check, so the config as run (and its hash) includes them."""
    return parse_config_text(decode_config(read_config_bytes(path), path), str(path), overrides)


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


def parse_config_text(text: str, source: str = "config", overrides: Mapping[str, Any] | None = None) -> Config:
    doc = load_yaml(text, source)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(doc).__name__}")
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if not isinstance(doc.get(section) or {}, dict):
            raise ConfigError(f"{section}: expected a mapping, got {_show(doc[section])}")
        doc[section] = {**(doc.get(section) or {}), name: value}
    return parse_config(doc)


def _section(doc: dict, name: str) -> dict:
    sec = doc.get(name) or {}
    if not isinstance(sec, dict):
        raise ConfigError(f"{name}: expected a mapping, got {_show(sec)}")
    allowed = _SECTIONS[name]
    if allowed is not None:
        unknown = sorted(set(sec) - allowed, key=str)
        if unknown:
            raise ConfigError(f"{name}.{_key(unknown[0])}: unknown key; expected one of {', '.join(sorted(allowed))}"
                              f"{did_you_mean(str(unknown[0]), allowed)}")
    return sec


def _key(key: Any) -> str:
    text = str(key)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(key: str, value: Any, *, low: float | None = None, high: float | None = None,
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
        lo = "" if low is None else f"{'>' if low_open else '>='} {_bound(low)}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {_bound(high)}"
        raise ConfigError(f"{key}: {_show(value)} is out of range; expected {' and '.join(x for x in (lo, hi) if x)}")
    return value if integer else float(value)


def _bound(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {_show(value)}")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a non-empty string, got {_show(value)}")
    return value.strip()


def _time(key: str, value: Any) -> str | None:
    if value is None:
        return None
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


def _check_interval(interval: str | None) -> None:
    if interval is None:
        return
    try:
        binance.interval_ms(interval)
    except ValueError as exc:
        raise ConfigError(f"data.interval: {exc}") from None


def _time_range(start: str | None, end: str | None) -> None:
    if start is not None and end is not None:
        try:
            check_range(parse_time(start), parse_time(end), "data.start/data.end")
        except UserError as exc:
            raise ConfigError(str(exc)) from None


def _range(key: str, raw: dict) -> tuple[float, float, int]:
    """``{start, stop, step}`` checked: (start, step, count), without building its values."""
    unknown = sorted(set(raw) - {"start", "stop", "step"}, key=str)
    if unknown or not {"start", "stop"} <= set(raw):
        raise ConfigError(f"{key}: a range needs start, stop and optional step, got {_show(raw)}")
    start = _number(f"{key}.start", raw["start"])
    stop = _number(f"{key}.stop", raw["stop"])
    step = _number(f"{key}.step", raw.get("step", 1), low=0, low_open=True)
    steps = (stop - start) / step + 1e-9
    if not math.isfinite(steps) or steps >= _SATURATED:
        return start, step, _SATURATED  # counted as too many by the grid budget
    count = int(math.floor(steps)) + 1
    if count < 1:
        raise ConfigError(f"{key}: range {_show(raw)} is empty")
    return start, step, count


def _axis_length(key: str, raw: Any) -> int:
    """How many values ``raw`` (a scalar, a list or a range) gives, before any is built."""
    if isinstance(raw, dict):
        return _range(key, raw)[2]
    return len(raw) if isinstance(raw, list) else 1


def _values(key: str, raw: Any) -> tuple[Any, ...]:
    """A scalar, a list, or ``{start, stop, step}`` (stop included)."""
    if isinstance(raw, dict):
        start, step, count = _range(key, raw)
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


# --- resource guards and strategy names ------------------------------------------------------------
_SATURATED = 10**18  # a count this large is "too many" whatever the limit; keeps products printable


def _limits(doc: dict) -> LimitsConfig:
    sec = _section(doc, "limits")
    return LimitsConfig(max_combinations=_number("limits.max_combinations",
                                                 sec.get("max_combinations", DEFAULT_MAX_COMBINATIONS), low=1,
                                                 high=MAX_COMBINATIONS_CEILING, integer=True))


def _check_grid_budget(strat_doc: dict, rules_raw: Mapping[str, Any], limits: LimitsConfig) -> None:
    """Refuse a grid above ``limits.max_combinations`` from its axis lengths, before it is expanded.
    ``rules_raw`` maps each position rule's config key to its raw value (every one is an axis)."""
    n_rules = 1
    for key, raw in rules_raw.items():
        n_rules = min(n_rules * _axis_length(key, raw), _SATURATED)
    total, widest = 0, 1
    for sname, params in strat_doc.items():
        cls = get_strategy(_strategy_name(sname))
        count = n_rules
        for p, raw in (params.items() if isinstance(params, dict) else ()):
            count = min(count * _axis_length(f"strategies.{sname}.{p}", raw), _SATURATED)
        total = min(total + count, _SATURATED)
        widest = max(widest, len(cls.param_specs()) + len(RULE_COLUMNS))
    if total > limits.max_combinations:
        shown = f"at least {_SATURATED:,}" if total >= _SATURATED else f"{total:,}"
        raise ConfigError(f"strategies: the grid has {shown} combinations (estimated memory to sweep them: "
                          f"{human_bytes(estimate_bytes(total, widest))}), above "
                          f"limits.max_combinations = {limits.max_combinations:,}; narrow the grid or raise the limit")


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
            raise ConfigError(f"{key}: {_show(v)} repeats a value already given{hint}")
        out.append(value)
    return tuple(out)


def _strategy_name(name: Any) -> str:
    """A registered name, or ``package.module:ClassName`` (checked before anything is imported)."""
    name = str(name)
    if ":" in name and not _STRATEGY_PATH.fullmatch(name):
        raise ConfigError(f"strategies: {_show(name)} is not a strategy name or a path like "
                          "package.module:ClassName")
    return name


def _check_int_params(sname: str, specs: dict, values: tuple[tuple[str, tuple[Any, ...]], ...]) -> None:
    """Integer parameters must fit the grid's int64 columns."""
    for pname, vals in values:
        if specs[pname][0] is int:
            for v in vals:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
                        and abs(v) > INT64_MAX:
                    raise ConfigError(f"strategies.{sname}.{pname}: {_show(v)} is too large; "
                                      f"expected at most {INT64_MAX:,}")


def _symbol(value: Any) -> str | None:
    """``data.symbol``: a Binance symbol (it names dataset folders), upper-cased like ``--symbol``."""
    if value is None:
        return None
    text = _string("data.symbol", value)
    if not binance.is_symbol(text.upper()):
        raise ConfigError(f"data.symbol: {_show(value)} is not a Binance symbol (pattern {binance.SYMBOL_PATTERN}, "
                          "like BTCUSDT)")
    return text.upper()


def parse_config(doc: dict) -> Config:
    unknown = sorted(set(doc) - set(_SECTIONS), key=str)
    if unknown:
        raise ConfigError(f"{_key(unknown[0])}: unknown section; expected one of {', '.join(_SECTIONS)}")
    exp = _section(doc, "experiment")
    name = _string("experiment.name", exp.get("name", "experiment"))

    d = _section(doc, "data")
    if "path" in d and "source" in d and d["path"] != d["source"]:
        raise ConfigError("data: give data.source or data.path, not both")
    source = _string("data.source", d.get("path", d.get("source", "synthetic")))
    data = DataSpec(
        source=source,
        symbol=_symbol(d.get("symbol")),
        interval=_string("data.interval", d["interval"]) if d.get("interval") is not None else None,
        start=_time("data.start", d.get("start")),
        end=_time("data.end", d.get("end")),
        synthetic_bars=_number("data.synthetic_bars", d.get("synthetic_bars", 70_080), low=2,
                               high=SYNTHETIC_BARS_MAX, integer=True),
        seed=_number("data.seed", d.get("seed", 42), low=0, integer=True),
        max_input_bytes=_number("data.max_input_bytes", d["max_input_bytes"], low=1, high=2 ** 50, integer=True)
        if d.get("max_input_bytes") is not None else None,
    )
    _time_range(data.start, data.end)
    _check_interval(data.interval)

    e = _section(doc, "execution")
    fill = e.get("fill", "close")
    if not isinstance(fill, str) or fill not in FILL_MODES:
        raise ConfigError(f"execution.fill: {_show(fill)}; expected one of {', '.join(FILL_MODES)}")
    portfolio = _section(doc, "portfolio")
    capital = _number("portfolio.capital", portfolio.get("capital", 100_000), low=0, low_open=True, high=CAPITAL_MAX)
    execution = Execution(
        capital=capital,
        commission=_number("execution.commission", e.get("commission", 0.001), low=0, high=0.1, high_open=True),
        slippage=_number("execution.slippage", e.get("slippage", 0.0005), low=0, high=0.1, high_open=True),
        fill=fill,
    )
    risk = _section(doc, "risk")
    rules_raw = {"portfolio.direction": portfolio.get("direction", "long"), "portfolio.size": portfolio.get("size", 1.0),
                 "risk.stop_loss": risk.get("stop_loss", 0.02), "risk.take_profit": risk.get("take_profit"),
                 "risk.trailing_stop": risk.get("trailing_stop"), "risk.max_bars": risk.get("max_bars")}
    limits = _limits(doc)
    strat_doc = doc.get("strategies")
    if isinstance(strat_doc, dict) and strat_doc:
        _check_grid_budget(strat_doc, rules_raw, limits)
    stops = _rule_values("risk.stop_loss", rules_raw["risk.stop_loss"], zero_is_none=True,
                         low=0, high=1, low_open=True, high_open=True)
    take_profit = _rule_values("risk.take_profit", rules_raw["risk.take_profit"], low=0, low_open=True)
    trailing = _rule_values("risk.trailing_stop", rules_raw["risk.trailing_stop"], low=0, high=1, low_open=True,
                            high_open=True)
    max_bars = _rule_values("risk.max_bars", rules_raw["risk.max_bars"], low=1, integer=True)
    size = _rule_values("portfolio.size", rules_raw["portfolio.size"], nullable=False, low=0, high=1, low_open=True)
    direction = []
    for v in _values("portfolio.direction", rules_raw["portfolio.direction"]):
        if not isinstance(v, str) or v not in DIRECTIONS:
            raise ConfigError(f"portfolio.direction: {_show(v)}; expected one of {', '.join(DIRECTIONS)} (or a list)")
        direction.append(v)

    strat_doc = doc.get("strategies")
    if not isinstance(strat_doc, dict) or not strat_doc:
        raise ConfigError("strategies: expected a mapping of strategy name to parameters, e.g. "
                          "strategies: {ma_crossover: {short_window: [5, 10]}}")
    grids = []
    for sname, params in strat_doc.items():
        cls = get_strategy(_strategy_name(sname))
        params = params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"strategies.{sname}: expected a mapping of parameter to value(s), got {_show(params)}")
        specs = cls.param_specs()
        unknown = sorted(set(params) - set(specs), key=str)
        if unknown:
            raise ConfigError(f"strategies.{sname}.{_key(unknown[0])}: unknown parameter; expected one of "
                              f"{', '.join(specs)}{did_you_mean(str(unknown[0]), specs)}")
        values = tuple((p, _values(f"strategies.{sname}.{p}", params[p])) for p in specs if p in params)
        _check_int_params(str(sname), specs, values)
        grids.append(StrategyGrid(str(sname), values))

    par = _section(doc, "parallel")
    workers = par.get("workers")
    if workers is not None:
        workers = _number("parallel.workers", workers, low=1, integer=True)

    validation = parse_validation(doc.get("validation"))
    r = _section(doc, "report")
    rank_by = r.get("rank_by", "sharpe")
    if not isinstance(rank_by, str) or rank_by not in METRICS + RANK_METRICS:
        raise ConfigError(f"report.rank_by: {_show(rank_by)}; expected one of {', '.join(METRICS + RANK_METRICS)}")
    if rank_by in RANK_METRICS and validation is None:
        raise ConfigError(f"report.rank_by: {rank_by} needs a validation section (validation: {{}} is enough)")
    report = ReportConfig(top_k=_number("report.top_k", r.get("top_k", 10), low=1, high=TOP_K_MAX, integer=True),
                          rank_by=rank_by,
                          min_trades=_number("report.min_trades", r.get("min_trades", 1), low=0, integer=True),
                          png=_bool("report.png", r.get("png", False)))

    # Type-checks every value and rejects a grid whose combinations are all invalid.
    rules = {"direction": tuple(direction), "size": size, "stop_loss": stops, "take_profit": take_profit,
             "trailing_stop": trailing, "max_bars": max_bars}
    grid = expand_grid(grids, rules)
    return Config(name=name, data=data, execution=execution, strategies=tuple(grids), workers=workers,
                  report=report, limits=limits, validation=validation, raw=doc, grid=grid, **rules)
